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
 */
#ifndef HERALD_SUBSCRIBER_H
#define HERALD_SUBSCRIBER_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/address.h"
#include "herald/herr.h"
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
	SUBSCRIBE_SKIPPED_SUPPRESSED,   /* rule (5) */
	SUBSCRIBE_N_RESULTS
};

struct subscribe_req {
	const struct address   *addr;
	const char             *name;     /* NULL or "": keep the existing name */
	const struct tmpl_attr *attrs;    /* merged into existing attributes */
	size_t                  n_attrs;  /* empty values are not stored */
	int                     confirmed;   /* status of a new subscription */
	int                     resubscribe; /* rule (2) */
};

/* Prepared statements for adding many subscribers in one transaction. */
struct subscriber_writer;

int subscriber_writer_open(sqlite3 *db, struct subscriber_writer **out, struct herr *err);
void subscriber_writer_close(struct subscriber_writer *w);

/* Add or update one subscriber and their subscription to `list_id`.  Does
 * not open a transaction: the caller groups calls in one.  EX_DATAERR for a
 * name or attribute breaking rule (3). */
int subscriber_subscribe(struct subscriber_writer *w, long long list_id,
                         const struct subscribe_req *r, enum subscribe_result *res,
                         struct herr *err);

/* Check a name / attribute key / attribute value against rule (3).
 * `what` names the thing in the message. */
int subscriber_check_text(const char *what, const char *s, size_t max, struct herr *err);

/* Find a subscriber by address (any case).  EX_NOINPUT when unknown. */
int subscriber_get(sqlite3 *db, const char *addr, struct subscriber *out, struct herr *err);

/* Remove a subscriber with all their subscriptions and ledger rows. */
int subscriber_remove(sqlite3 *db, long long id, struct herr *err);

/* Set the global status to blocklisted: no list mails them again. */
/* Set the global status: active, blocklisted, bounced or complained. */
int subscriber_set_status(sqlite3 *db, long long id, const char *status, struct herr *err);
int subscriber_block(sqlite3 *db, long long id, struct herr *err);

/* Mark the subscription unsubscribed and record an 'unsubscribe' event with
 * `source` ("cli", "web", "one-click", ...).  Returns 0, or -1 with EX_NOINPUT
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

/* Confirm a subscription (double opt-in) or take someone back who had
 * unsubscribed; records a 'confirm' or 'subscribe' event with `source`.
 * EX_NOINPUT when the subscriber has no subscription to the list;
 * EX_DATAERR when the address is blocked, bounced or complained (rule 1).
 * Confirming an already confirmed subscription changes nothing. */
int subscription_confirm(sqlite3 *db, long long list_id, long long subscriber_id,
                         const char *source, struct herr *err);

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

/* Every subscriber of a list, by address; `status` filters on the
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

struct delivery_info {
	long long   issue_id;
	const char *subject;
	const char *status;
	int         attempts;
	int         smtp_code;   /* 0 when none */
	const char *smtp_reply;  /* "" when none */
	long long   updated_at;
};

/* The subscriber's deliveries, newest issue first, at most `limit`. */
int subscriber_each_delivery(sqlite3 *db, long long subscriber_id, int limit,
                             int (*fn)(void *ctx, const struct delivery_info *d),
                             void *ctx, struct herr *err);

#endif
