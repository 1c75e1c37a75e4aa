/*
 * subscriber.h - subscribers, their subscriptions, and the rules for adding them.
 *
 * One row per person (identity: the address lower-cased, see address.h),
 * one subscription row per list they are on.  The rules that protect
 * recipients live here so the CLI, the CSV import and (later) the web form
 * all obey them:
 *   (1) a blocklisted, bounced or complained address is never subscribed;
 *   (2) a bulk import never resubscribes someone who unsubscribed; only an
 *       explicit single `sub add` by an admin does (`resubscribe`);
 *   (3) names and attribute values never hold control characters, so
 *       nothing taken from a subscriber can start a mail header line;
 *   (4) the spelling of the address first given is kept for sending.
 *   (5) an address or domain in the suppression table (suppress.h) is
 *       never subscribed, not even by an admin's `sub add`;
 *   (6) a sign-up on the public form never renames someone known nor
 *       changes their attributes (tracking_consent among them): anyone
 *       can post an address;
 *   (7) an address that is blocked, bounced or complained comes back only
 *       through an admin's `sub reactivate`, and never while suppressed;
 *   (8) the public form (and any sign-up on a reader's behalf) only ever
 *       creates a subscription: one that exists stays as it is, so a
 *       withdrawn consent (unsubscribed) or a pending one (unconfirmed)
 *       changes only through the reader's own confirmation
 *       (subscription_confirm()); the form at most sends that mail.  Only
 *       an admin (`sub add`) may resubscribe directly.
 *   (9) unsubscribing from an issue's mail (its token names the issue)
 *       ends the subscriptions of every list the issue was sent through,
 *       one 'unsubscribe' event each (subscription_unsubscribe_in()).
 *  (10) an erased address (privacy.h) is never brought back by a bulk
 *       import; an explicit sign-up (`sub add`, the form) may, as the
 *       person's new consent, unless it was suppressed when erased.  The
 *       check needs the token secret (signup_req.erased_key).
 *
 * Every way in goes through subscriber_signup() (one address, its own
 * transaction: `sub add`, the web form, the API) or subscriber_signup_in()
 * (many, in the caller's transaction: CSV import, bulk API calls); the
 * source decides rules (2) and (6) and is recorded with the event.  A
 * subscription that becomes confirmed (either way in, or
 * subscription_confirm()) queues the list's welcome mail in the same
 * transaction: welcome_enqueue(), welcome.h.
 *
 * Every edge below also writes a consent record (consent.h) in the same
 * transaction: how, when, and for the reader's own web requests from
 * where (struct consent_ctx, passed down by the caller that saw it).
 *
 * A subscription's states, and who moves it along each edge:
 *
 *               subscriber_signup() (double opt-in)
 *   (none) ----------------------------------------> unconfirmed
 *     |                                                   |
 *     | subscriber_signup() (single opt-in, or an admin)  | subscription_confirm() (the reader)
 *     v                                                   v
 *   confirmed <------------------------------------- confirmed
 *     |   ^
 *     |   | subscription_confirm() (the reader: the unsubscribe page, or
 *     |   | the mail the form sent, rule 8); subscriber_signup() by an admin
 *     v   |
 *   unsubscribed <- subscription_unsubscribe() (the reader: page, one-click,
 *                   mailto; an admin; a complaint)
 */
#ifndef HERALD_SUBSCRIBER_H
#define HERALD_SUBSCRIBER_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/address.h"
#include "herald/buf.h"
#include "herald/consent.h"
#include "herald/herr.h"
#include "herald/list.h"
#include "herald/tmpl.h"

#define SUBSCRIBER_NAME_MAX     256 /* bytes */
#define SUBSCRIBER_ATTR_KEY_MAX 64
#define SUBSCRIBER_ATTR_VAL_MAX 1024

struct subscriber {
	long long id;
	char      email[512];         /* as given, domain lower-cased */
	char      name[SUBSCRIBER_NAME_MAX + 1];
	char     *attributes;         /* JSON object text; free with subscriber_clear() */
	char      status[16];         /* active | blocklisted | bounced | complained */
	long long created_at, updated_at;
};
void subscriber_clear(struct subscriber *s);

enum subscribe_result {
	SUBSCRIBE_ADDED,       /* new subscription (and maybe new subscriber) */
	SUBSCRIBE_UPDATED,     /* existing: status, name or attributes changed */
	SUBSCRIBE_UNCHANGED,   /* already there with the same data */
	SUBSCRIBE_SKIPPED_UNSUBSCRIBED, /* rule (2) */
	SUBSCRIBE_SKIPPED_BLOCKED,      /* rule (1) */
	SUBSCRIBE_SKIPPED_SUPPRESSED,   /* rule (5), (10) */
	SUBSCRIBE_SKIPPED_ERASED,       /* rule (10) */
	SUBSCRIBE_N_RESULTS
};

/* Who asks for a sign-up: decides rules (2) and (6). */
enum signup_source {
	SIGNUP_ADMIN,   /* herald sub add: may resubscribe, sets the name */
	SIGNUP_IMPORT,  /* a CSV import: never resubscribes (rule 2), no event */
	SIGNUP_WEB,     /* the public form: never renames (rule 6) */
	SIGNUP_API,     /* the HTTP API (api.h): a key's holder may set the name and
	                   attributes, but subscriptions follow the form's rules
	                   (confirmation mail, rule 8: never resubscribes) */
};

struct signup_req {
	const struct address   *addr;
	const char             *name;     /* NULL or "": none given */
	const struct tmpl_attr *attrs;    /* merged into existing attributes */
	size_t                  n_attrs;  /* empty values are not stored */
	int                     unconfirmed; /* admin, import, and a web sign-up on
	                                        the reader's behalf (a new address
	                                        in the preference centre, prefs.h):
	                                        add as unconfirmed */
	enum signup_source      source;
	const struct consent_ctx *consent; /* how consent was given; NULL or a NULL
	                              source: "cli", "import", "web form" by `source` */
	int                     welcome;  /* import: queue the list's welcome mail
	                                     (welcome.h (2)); the others always do */
	const struct token_key *erased_key; /* the token secret, for rule (10);
	                                       NULL: erased addresses not checked */
	int                     absent;   /* 1: the caller has just looked, in this
	                                     transaction, and no subscriber has the
	                                     address (the import's merge of its
	                                     sorted rows with the address index):
	                                     the writer does not look again */
};

struct signup_result {
	enum subscribe_result res;
	long long subscriber_id;   /* 0 when refused (blocked, suppressed) */
	int       confirm_mail;    /* a confirmation mail should go to them: a
	                              double opt-in sign-up, or (rule 8) a form
	                              sign-up of an unconfirmed or unsubscribed one */
	long long confirm_id;      /* then: its confirmation (confirmation_new()) */
};

/* Prepared statements for adding many subscribers. */
struct subscriber_writer;

int subscriber_writer_open(sqlite3 *db, struct subscriber_writer **out, struct herr *err);
void subscriber_writer_close(struct subscriber_writer *w);
/* Declare that `w` serves only the caller's current transaction, until it
 * is closed (a bulk import): it may then remember facts of that
 * transaction instead of asking per row; today whether any address was ever
 * erased, so that with none the keyed hash of each address (rule 10) is
 * skipped, and whether any suppression exists (rule 5: with none, no
 * lookup).  Call it inside the transaction. */
int subscriber_writer_bulk(struct subscriber_writer *w, struct herr *err);

/*
 * One sign-up to list `l` inside the caller's transaction: the rules
 * above, the list's opt-in (a web sign-up to a double opt-in list waits
 * unconfirmed and asks for a confirmation mail), and, for a reader's own
 * sign-up on the form, the 'subscribe' event when it became confirmed.  EX_DATAERR for a name or
 * attribute breaking rule (3), with nothing written.
 */
int subscriber_signup_in(struct subscriber_writer *w, const struct list *l,
                         const struct signup_req *r, struct signup_result *out,
                         struct herr *err);
/* The same in a transaction of its own. */
int subscriber_signup(sqlite3 *db, const struct list *l, const struct signup_req *r,
                      struct signup_result *out, struct herr *err);

/* A reader's new name (the preference centre, prefs.h), in the caller's
 * transaction: EX_DATAERR when it breaks rule (3) or is not UTF-8;
 * "" clears it.  *changed: whether it differed. */
int subscriber_set_name_in(sqlite3 *db, long long id, const char *name, int *changed,
                           struct herr *err);

/* The reader's answer to "may we see what you open and click?" for
 * [tracking] mode = consent (tracking.h): sets the attribute
 * tracking_consent to "yes" or "no", in the caller's transaction or its
 * own statement.  For the preference centre and the API; a CSV column and
 * the sign-up form's checkbox write the same attribute.  *changed: whether
 * it differed. */
int subscriber_set_tracking_consent(sqlite3 *db, long long id, int yes, int *changed,
                                    struct herr *err);
/* Whether subscriber `id` has consented (tracking_consented()); EX_NOINPUT
 * when there is no such subscriber. */
int subscriber_tracking_consent(sqlite3 *db, long long id, int *yes, struct herr *err);

/* Rule (7): blocked, bounced or complained -> active, the subscriptions as
 * they were, with a 'reactivate' consent record (source "admin").
 * EX_DATAERR while the address or its domain is suppressed, naming the
 * pattern; `was` gets the former status (16 bytes). */
int subscriber_reactivate(sqlite3 *db, long long id, char *was, struct herr *err);

/* Check a name / attribute key / attribute value against rule (3).
 * `what` names the thing in the message. */
int subscriber_check_text(const char *what, const char *s, size_t max, struct herr *err);

/* Find a subscriber by address (any case).  EX_NOINPUT when unknown. */
int subscriber_get(sqlite3 *db, const char *addr, struct subscriber *out, struct herr *err);

/* Remove a subscriber with all their subscriptions and ledger rows. */
int subscriber_remove(sqlite3 *db, long long id, struct herr *err);

/* Set the global status to blocklisted: no list mails them again. */
int subscriber_block(sqlite3 *db, long long id, struct herr *err);
/* What came back says the address is dead or the person complained:
 * `status` "bounced" or "complained" unless it is already, or the
 * subscriber is blocklisted (an admin's decision outranks a bounce), or
 * (for "bounced") they complained.  *changed: whether it moved.  In the
 * caller's transaction (bouncelog.c). */
int subscriber_mark(sqlite3 *db, long long id, const char *status, int *changed,
                    struct herr *err);
/* Off every list at once (a complaint), without an event each but with a
 * consent record each whose source is `how` ("complaint"); *n: how many
 * subscriptions ended.  In the caller's transaction. */
int subscription_unsubscribe_all(sqlite3 *db, long long subscriber_id, const char *how,
                                 long long *n, struct herr *err);

/* Mark the subscription unsubscribed and record an 'unsubscribe' event with
 * `source` ("cli", "web", "one-click", ...), and a consent record saying
 * how (consent_unsubscribe_how(source)).  Returns 0, or -1 with EX_NOINPUT
 * when the subscriber is not on the list. */
int subscription_unsubscribe(sqlite3 *db, long long list_id, long long subscriber_id,
                             const char *source, struct herr *err);
/* The same, naming the issue whose mail the person unsubscribed from (the
 * web and mail paths know it from the token), so stats can count it. */
int subscription_unsubscribe_issue(sqlite3 *db, long long list_id, long long subscriber_id,
                                   long long issue_id, const char *source, struct herr *err);
/* The same inside the caller's transaction; *changed is 1 when the
 * subscription ended now (0: it had already). */
int subscription_unsubscribe_in(sqlite3 *db, long long list_id, long long subscriber_id,
                                long long issue_id, const char *source, int *changed,
                                struct herr *err);

/* What rule (9) would end now for this subscriber, for the page that asks
 * and the one that confirms: the titles (else names) of the lists the
 * token's list and issue reach that they are still on, the token's list
 * first, 0x1f between them, appended to `titles`; *n how many. */
int subscription_unsubscribe_scope(sqlite3 *db, long long list_id, long long subscriber_id,
                                   long long issue_id, struct buf *titles, size_t *n,
                                   struct herr *err);

/* Confirm a subscription (double opt-in) or take someone back who had
 * unsubscribed; records a 'confirm' or 'subscribe' event with `source`.
 * EX_NOINPUT when the subscriber has no subscription to the list;
 * EX_DATAERR when the address is blocked, bounced or complained (rule 1).
 * Confirming an already confirmed subscription changes nothing. */
int subscription_confirm(sqlite3 *db, long long list_id, long long subscriber_id,
                         const char *source, struct herr *err);
/* The same with the consent record's how and where (`c`, NULL: the event's
 * `source` as how, no client). */
int subscription_confirm_consent(sqlite3 *db, long long list_id, long long subscriber_id,
                                 const char *source, const struct consent_ctx *c,
                                 struct herr *err);

/*
 * Confirmation links.  Each confirmation mail has a row (its id travels in
 * the link: the issue-id field of a TOKEN_CONFIRM, token.h); a link works
 * once, and for `ttl` seconds ([web] confirm_ttl).  A used or expired link
 * changes nothing; the page offers a fresh mail instead.
 */
enum confirm_state {
	CONFIRM_OPEN,     /* may be followed */
	CONFIRM_USED,     /* followed already */
	CONFIRM_EXPIRED,  /* older than ttl, or a link from before confirmations had rows */
};

/* A new confirmation of `subscriber_id` on `list_id`; *id for the link. */
int confirmation_new(sqlite3 *db, long long subscriber_id, long long list_id, long long *id,
                     struct herr *err);
/* What the confirmation `confirm_id` of subscriber x list is worth now.
 * EX_NOINPUT when there is no such confirmation for them. */
int confirmation_state(sqlite3 *db, long long confirm_id, long long subscriber_id,
                       long long list_id, long ttl, enum confirm_state *st, struct herr *err);
/* Follow the link: when open, mark it used and confirm the subscription
 * (as subscription_confirm(), source "web", with a consent record whose
 * source is "confirmation link") in one transaction; *st says what it was
 * (nothing changes unless CONFIRM_OPEN).  EX_DATAERR when the address may
 * not be mailed (rule 1). */
int confirmation_use(sqlite3 *db, long long confirm_id, long long subscriber_id,
                     long long list_id, long ttl, enum confirm_state *st, struct herr *err);
/* The same with the consent record's how and where (`c`: the web request
 * that followed the link; a NULL source is "confirmation link"). */
int confirmation_use_consent(sqlite3 *db, long long confirm_id, long long subscriber_id,
                             long long list_id, long ttl, const struct consent_ctx *c,
                             enum confirm_state *st, struct herr *err);

/* The subscription's status ("confirmed", ...) into `status` (16 bytes);
 * EX_NOINPUT when there is none. */
int subscription_status(sqlite3 *db, long long list_id, long long subscriber_id,
                        char *status, struct herr *err);

/* A subscriber by id; EX_NOINPUT when unknown. */
int subscriber_get_by_id(sqlite3 *db, long long id, struct subscriber *out,
                         struct herr *err);

struct subscription_info {
	const char *list_name;
	const char *status;
	long long   created_at, confirmed_at, unsubscribed_at; /* 0 when unset */
};

int subscriber_each_subscription(sqlite3 *db, long long subscriber_id,
                                 int (*fn)(void *ctx, const struct subscription_info *s),
                                 void *ctx, struct herr *err);

struct member {
	const struct subscriber *sub;
	const char *sub_status;     /* subscription status on this list */
};

/* Every subscriber of a list, in the order they were added (subscriber
 * id: the subscriptions' primary key order, so rows stream from the first
 * without a sort, whatever the list's size); `status` filters on the
 * subscription status (NULL: all).  The callback's pointers are valid only
 * during the call; return -1 from it to stop. */
int subscriber_each_member(sqlite3 *db, long long list_id, const char *status,
                           int (*fn)(void *ctx, const struct member *m), void *ctx,
                           struct herr *err);

/* Every distinct attribute key among the list's members with subscription
 * status `status` (NULL: all), sorted; for CSV export's header. */
int subscriber_attr_keys(sqlite3 *db, long long list_id, const char *status,
                         int (*fn)(void *ctx, const char *key), void *ctx,
                         struct herr *err);

#endif
