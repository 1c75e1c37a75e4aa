/*
 * bouncelog.h - record what returned mail means, and act on it.
 *
 * bounce.c says what a message means; this module finds whose it is and
 * writes the consequences, in one transaction per message:
 *
 *   - the message's digest in `inbound`, so a second copy changes nothing;
 *   - one `bounces` row and one `events` row per failed recipient;
 *   - a hard bounce marks the subscriber 'bounced' (no list mails them
 *     again); `soft_limit` soft bounces within `soft_window` do the same;
 *   - a complaint marks them 'complained', unsubscribes them from every
 *     list and suppresses the address (suppress.h);
 *   - a mail to the List-Unsubscribe mailto address (unsubscribe+TOKEN@)
 *     unsubscribes from the list the token names;
 *   - a "delayed" notice gets a `bounces` row of class 'delayed', for
 *     `sub show`, and nothing else: no event, and it never counts toward
 *     the soft limit (only class 'soft' does; an expiry is soft);
 *   - auto-replies and success notices are noted and ignored.
 *
 * Every row keeps the classifier's `why` (bounce_recipient.why), and the
 * inbound row the address the message came back to and the returned
 * original's To: a failure naming nobody herald knows is kept with
 * subscriber_id NULL, and bouncelog_each_unmatched() lists those with a
 * best guess of whom they were about, for a person to look at.
 *
 * Whose it is, in this order (issue 6): the VERP token in the address the
 * bounce was sent to (message.c puts it there); the returned original's
 * Message-ID, which carries the issue and subscriber ids under an HMAC
 * (message_id_for); the address the report names, looked up among the
 * subscribers.  Tokens and Message-IDs are checked with the secret, so a
 * forged bounce cannot unsubscribe anybody by id; a bounce naming an
 * address herald knows is believed (that is how every bulk sender works:
 * whoever can forge a DSN to our return path could as well have asked to
 * unsubscribe).
 *
 * SMTP-time rejections met by the sender go through bouncelog_record()
 * with source "smtp", so both kinds share the tables and the policy.
 */
#ifndef HERALD_BOUNCELOG_H
#define HERALD_BOUNCELOG_H

#include <sqlite3.h>

#include "herald/bounce.h"
#include "herald/herr.h"
#include "herald/token.h"

struct bouncelog_policy {
	long soft_limit;   /* soft bounces that make an address bounced ... */
	long soft_window;  /* ... within this many seconds */
};
#define BOUNCELOG_POLICY_DEFAULT { 3, 30L * 86400 }

/* What one ingested message did. */
struct bouncelog_outcome {
	int  duplicate;     /* seen before: nothing changed */
	const char *kind;   /* bounce, complaint, autoreply, delayed, delivered,
	                       unsubscribe, unknown (static) */
	long hard, soft, complaints;
	long delayed;       /* delay notices recorded (class 'delayed') */
	long ignored;       /* recipients noted only: auto-replies, successes */
	long unmatched;     /* failures naming nobody herald knows */
	long marked;        /* subscribers newly marked bounced or complained */
	long unsubscribed;  /* subscriptions ended (complaints, mailto) */
	char summary[512];  /* one line for the log: who, what, why */
};

/* Record `r` (parsed from the message whose digest it carries).  `source`
 * says where it came from ("stdin", "maildir:NAME", "imap:UID", ...).
 * Runs its own transaction: on error nothing is written.  EX_TEMPFAIL when
 * the database is busy (an MTA pipe should then retry). */
int bouncelog_ingest(sqlite3 *db, const struct token_key *key,
                     const struct bouncelog_policy *pol, const struct bounce_report *r,
                     const char *source, struct bouncelog_outcome *out, struct herr *err);

/* One failure for a known subscriber, inside the caller's transaction.
 * `source` is "smtp", "dsn" or "arf"; cls BOUNCE_HARD, BOUNCE_SOFT,
 * BOUNCE_COMPLAINT or BOUNCE_DELAYED (recorded only: no event, no policy).
 * Applies the policy; *marked is set to 1 when the subscriber was newly
 * marked bounced or complained. */
struct bouncelog_failure {
	long long   subscriber_id;   /* 0: nobody known (row kept for diagnosis) */
	long long   issue_id;        /* 0: unknown */
	long long   list_id;         /* 0: unknown (taken from the issue) */
	long long   inbound_id;      /* 0: none (SMTP time) */
	const char *recipient;       /* "": the subscriber's address */
	const char *source;
	enum bounce_class cls;
	const char *reason;
	const char *status;          /* "" if none */
	int         reply_code;      /* 0 if none */
	const char *diagnostic;
	const char *remote_mta;
	const char *stage;           /* SMTP time: RCPT, DATA, ...; else NULL */
	const char *why;             /* bounce_recipient.why; NULL or "" if none */
};
int bouncelog_record(sqlite3 *db, const struct bouncelog_policy *pol,
                     const struct bouncelog_failure *f, int *marked, struct herr *err);

/* A recorded failure, for `sub show` and `stats`. */
struct bouncelog_entry {
	long long   issue_id;      /* 0: unknown */
	const char *recipient;
	const char *source;        /* smtp, dsn, arf */
	const char *cls;           /* hard, soft, complaint, delayed */
	const char *reason;
	const char *status;
	int         reply_code;
	const char *diagnostic;
	long long   at;
	const char *why;           /* how class and reason were decided; "" if unknown */
};
/* The newest `limit` failures of a subscriber (subscriber_id > 0) or of an
 * issue (issue_id > 0), newest first.  fn returning non-zero stops. */
int bouncelog_each(sqlite3 *db, long long subscriber_id, long long issue_id, int limit,
                   int (*fn)(void *ctx, const struct bouncelog_entry *e), void *ctx,
                   struct herr *err);

/* A failure kept with no subscriber (bounces.subscriber_id NULL), for
 * `herald bounce unmatched`.  Strings are never NULL ("" when unknown) and
 * live until fn returns. */
struct bouncelog_unmatched {
	long long   id;             /* bounces.id */
	long long   at;
	long long   issue_id;       /* 0: unknown */
	long long   inbound_id;     /* 0: none */
	const char *inbound_source; /* stdin, maildir:NAME, imap:UID, ... */
	const char *message_id;     /* of the bounce message itself, without <> */
	const char *source;         /* dsn, arf */
	const char *cls;            /* hard, soft, complaint */
	const char *reason;
	const char *status;
	int         reply_code;
	const char *diagnostic;
	const char *recipient;      /* the address the report named */
	/* Whom it was most likely about: the recipient named, else the
	 * returned original's To, else the address the bounce came back to
	 * (the VERP address); guess_from says which ("recipient",
	 * "original-to", "envelope-to", or "" when there is none). */
	const char *guess;
	const char *guess_from;
	const char *why;
};
/* The newest `limit` unmatched failures, newest first.  Delay notices are
 * left out: they are not failures and ask nothing of anybody.  Reads
 * only.  fn returning non-zero stops (and is returned). */
int bouncelog_each_unmatched(sqlite3 *db, int limit,
                             int (*fn)(void *ctx, const struct bouncelog_unmatched *u),
                             void *ctx, struct herr *err);

/* The RFC 3463 code in an SMTP reply text ("550 5.1.1 <a@b>: ..." ->
 * "5.1.1"), or "" when it has none. */
void bouncelog_status_from_reply(const char *reply, int code, char out[16]);

#endif
