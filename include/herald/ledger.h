/*
 * ledger.h - the per-recipient delivery state of one issue's send.
 *
 * One deliveries row per recipient.  States and the function that moves a
 * row along each edge:
 *
 *                 ledger_claim()            ledger_mark()
 *     pending ------------------> sending ----------------> sent
 *        ^                         |  |  |
 *        | ledger_recover()        |  |  +----------------> bounced
 *        +-------------------------+  |
 *        | ledger_release()           +-------------------> deferred --+
 *                                     |                      (due)     |
 *                                     +-------------------> failed     |
 *                 ledger_claim() <-------------------------------------+
 *     pending|deferred -- ledger_claim() finds the person gone --> skipped
 *     failed -- ledger_retry_failed() (herald issue retry) --> pending
 *
 * Invariants (tests cite them by number):
 *   (1) a row becomes `sent` only after the relay accepted the end of data;
 *   (2) a row is claimed and its attempt counted in one committed
 *       transaction before any byte of its message goes to the relay;
 *   (3) the rows of an issue are all created in one transaction when its
 *       send starts (the snapshot); later subscribers are never added
 *       (but to a welcome issue, (8));
 *   (4) an issue becomes `sent` only when none of its rows is pending,
 *       sending or deferred;
 *   (5) a row found in `sending` when a send starts was in flight when a
 *       process died: ledger_recover() returns it to pending, and it is sent
 *       again with the same Message-ID;
 *   (6) someone who unsubscribed or was blocked after the snapshot is
 *       `skipped` at claim time, never mailed: no longer confirmed on any
 *       of the issue's lists (audience.h AUDIENCE_SQL_ISSUE_MEMBER);
 *   (7) a holdout row of a subject test (deliveries.variant 0,
 *       subjecttest.h) is not claimed before the test's winner is
 *       recorded; it then goes out, once, with the winner's subject;
 *   (8) a welcome issue (welcome.h) has no snapshot: ledger_add() adds one
 *       pending row in the transaction that confirms the subscription,
 *       at most once per subscriber and list (the welcomes table).  A
 *       sequence step (sequence.h) likewise: one row in the transaction
 *       that moves the subscriber's enrolment past the step (rule (1)).
 */
#ifndef HERALD_LEDGER_H
#define HERALD_LEDGER_H

#include <sqlite3.h>

#include "herald/audience.h"
#include "herald/herr.h"
#include "herald/smtp.h"

/* Retry schedule for deferred rows (seconds after the attempt), then the
 * row fails once LEDGER_RETRY_WINDOW has passed since its first attempt. */
#define LEDGER_RETRY_WINDOW (3 * 24 * 3600)

struct ledger_counts {
	long long pending, sending, sent, deferred, bounced, failed, skipped, total;
};

struct ledger_row {
	long long subscriber_id;
	int       attempts;        /* including this one */
	char      email[512];
	int       variant;         /* (7) the subject test's variant it gets, 1-based;
	                              0: the issue's subject */
	char     *name;            /* owned; freed by ledger_row_clear() */
	char     *attributes;
	char     *lists;           /* owned: titles of the issue's lists the reader
	                              is on, 0x1f between them (message.h) */
};
void ledger_row_clear(struct ledger_row *r);

struct ledger;

/* (3): create one pending row per person of the audience `a` (audience.h:
 * the issue's lists and filter, each person once).  Returns the number
 * created in *n.  Call inside the transaction that moves the issue to
 * `sending`. */
int ledger_snapshot(sqlite3 *db, long long issue_id, const struct audience *a, long long *n,
                    struct herr *err);

/* (8): one pending row of a welcome issue for `subscriber_id`, inside the
 * caller's transaction; *added: 0 when the row was there already (may be
 * NULL). */
int ledger_add(sqlite3 *db, long long issue_id, long long subscriber_id, int *added,
               struct herr *err);

/* failed -> pending for the whole issue, attempts counted afresh (the
 * retry window starts again); *n says how many.  Inside the caller's
 * transaction (issue_retry_failed() reopens a sent issue in the same). */
int ledger_retry_failed(sqlite3 *db, long long issue_id, long long *n, struct herr *err);
/* (7): a subject test's split, in the snapshot's transaction: every row of
 * the issue is the holdout (variant 0), then ids[i] gets variant[i] where
 * that is not 0 (subjecttest.c decides who). */
int ledger_set_variants(sqlite3 *db, long long issue_id, const long long *ids,
                        const int *variant, size_t n, struct herr *err);
/* Erasure (privacy.h): every row of subscriber `from` becomes `to`'s (the
 * tombstone that keeps the counts); *n how many.  In the caller's
 * transaction. */
int ledger_move_subscriber(sqlite3 *db, long long from, long long to, long long *n,
                           struct herr *err);
/* Retention (retention.h): remove at most `limit` rows of issue `issue_id`
 * that are final (sent, bounced, failed, skipped) and older than `before`;
 * *n how many.  The ledger never looks at a final row again. */
int ledger_prune(sqlite3 *db, long long issue_id, long long before, long long limit,
                 long long *n, struct herr *err);

/* (5): in-flight rows back to pending; *n says how many. */
int ledger_recover(sqlite3 *db, long long issue_id, long long *n, struct herr *err);

int ledger_open(sqlite3 *db, long long issue_id, struct ledger **out, struct herr *err);
void ledger_close(struct ledger *l);

/* (2), (6): claim the next due row.  Returns 1 with `row` filled, 0 when no
 * row is due, -1 on error.  `message_id_fn` gives the row's Message-ID,
 * stored with the claim. */
int ledger_claim(struct ledger *l, long long now,
                 int (*message_id_fn)(void *ctx, long long subscriber_id, char *out, size_t n),
                 void *ctx, struct ledger_row *row, struct herr *err);
/* Claim up to `max` due rows in one transaction into rows[0..*n). */
int ledger_claim_batch(struct ledger *l, long long now, size_t max,
                       int (*message_id_fn)(void *ctx, long long subscriber_id, char *out,
                                            size_t n),
                       void *ctx, struct ledger_row *rows, size_t *n, struct herr *err);

/* Group the marks (and relayuse.h records) of one turn of the send loop into one
 * transaction: each result is still committed within milliseconds of the
 * relay's answer, without a commit per message. */
int ledger_batch_begin(struct ledger *l, struct herr *err);
int ledger_batch_commit(struct ledger *l, struct herr *err);


/* Use this backoff schedule and retry window instead of the defaults. */
void ledger_set_retry(struct ledger *l, const long *schedule, size_t n, long window);
/* Soft bounces at SMTP time count towards [bounce] soft_limit within
 * soft_window, as the ones that come back later do (bouncelog.h). */
void ledger_set_bounce_policy(struct ledger *l, long soft_limit, long soft_window);

/* (1): record the outcome of an attempt: sent, bounced, deferred (or failed
 * when the retry window is over), from the relay's reply. */
int ledger_mark(struct ledger *l, long long subscriber_id, int attempts,
                const struct smtp_result *r, const char *relay, long long now,
                struct herr *err);

/* A claimed row that was never attempted (the relay was unreachable or the
 * send stopped): back to its previous due state, the attempt not counted. */
int ledger_release(struct ledger *l, long long subscriber_id, struct herr *err);

/* A recipient whose message could not be built (bad stored data): failed. */
int ledger_fail(struct ledger *l, long long subscriber_id, const char *why, long long now,
                struct herr *err);

/* The issue's deliveries by status, from the counts sql/026's triggers keep
 * in the same transactions as the rows (so never a scan). */
int ledger_counts(sqlite3 *db, long long issue_id, struct ledger_counts *c, struct herr *err);

/* One deliveries row as the reports show it. */
struct ledger_delivery {
	long long   issue_id;
	const char *subject;     /* the issue's */
	const char *email;       /* the subscriber's */
	const char *status;
	int         attempts;
	int         smtp_code;   /* 0 when none */
	const char *smtp_reply;  /* "" when none */
	long long   updated_at;
};
typedef int (*ledger_delivery_fn)(void *ctx, const struct ledger_delivery *d);

/* The failed and bounced deliveries of an issue, by address (issue
 * failures).  The pointers are valid during the call; return -1 to stop. */
int ledger_each_failure(sqlite3 *db, long long issue_id, ledger_delivery_fn fn, void *ctx,
                        struct herr *err);
/* A subscriber's deliveries, newest issue first, at most `limit` (sub show). */
int ledger_each_of_subscriber(sqlite3 *db, long long subscriber_id, int limit,
                              ledger_delivery_fn fn, void *ctx, struct herr *err);

/* Seconds to wait after the Nth failed attempt (1-based). */
long ledger_backoff(int attempt);

#endif
