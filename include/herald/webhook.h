/*
 * webhook.h - outgoing webhooks: each event herald records (an
 * unsubscribe, a bounce, a complaint, a click, an open, a sign-up, a
 * confirmation) POSTed as JSON to the URLs that asked for its kind, signed,
 * from a durable outbox.
 *
 * Owns the tables webhooks and webhook_outbox (sql/020_webhooks.sql); the
 * outbox rows are written by that file's trigger in the transaction of the
 * event itself.  Delivered by `herald serve` (a look every second) and by
 * `herald run` (after its sends), through webhook_deliver_due().
 *
 * The request:
 *   POST URL, Content-Type: application/json, User-Agent: herald/VERSION,
 *   Herald-Event: KIND, Herald-Delivery: OUTBOX_ID (the same on every
 *   retry: a receiver can drop repeats), and
 *   Herald-Signature: t=UNIX_TIME,v1=HEX
 *   where HEX is the hex HMAC-SHA256, keyed with the webhook's secret, of
 *   the bytes "UNIX_TIME." followed by the body.  A receiver recomputes it,
 *   compares in constant time, and refuses a t more than a few minutes old
 *   (replays).  The body: {"id", "type", "at", "email", "subscriber_id",
 *   "list", "issue", "detail"} (docs/web.md, "Webhooks").
 *
 * Rules:
 *   (1) a 2xx answer delivers; anything else (another status, no answer
 *       within WEBHOOK_TIMEOUT seconds, a refused connection) is retried
 *       after [webhooks] retry's next step, the last step repeating, until
 *       [webhooks] give_up after the event; then the row is `failed`
 *       (`herald webhook failures` lists them, `webhook retry` re-queues);
 *   (2) each webhook's rows go oldest first, at most WEBHOOK_BATCH per
 *       call, and a webhook whose receiver failed is not tried again in the
 *       same call: one receiver that is down or slow delays only itself;
 *   (3) delivered rows are removed after WEBHOOK_KEEP_DELIVERED seconds.
 */
#ifndef HERALD_WEBHOOK_H
#define HERALD_WEBHOOK_H

#include <signal.h>
#include <sqlite3.h>

#include "herald/config.h"
#include "herald/herr.h"

#define WEBHOOK_TIMEOUT         10L      /* seconds for one POST */
#define WEBHOOK_BATCH           100
#define WEBHOOK_KEEP_DELIVERED  (7L * 86400)
#define WEBHOOK_SECRET_MAX      256

/* "unsubscribe,bounce" -> canonical list in `out` (>= 96 bytes); EX_USAGE
 * naming an unknown kind.  Kinds: subscribe, confirm, unsubscribe, bounce,
 * complaint, click, open. */
int webhook_events_parse(const char *text, char *out, size_t size, struct herr *err);

/* A new webhook; `secret` NULL makes one (hex of 32 random bytes) into
 * `made` (65 bytes).  EX_DATAERR for a URL that is not http(s) or a
 * secret shorter than 16 bytes. */
int webhook_add(sqlite3 *db, const char *url, const char *events, const char *secret,
                char *made, long long now, long long *id, struct herr *err);
int webhook_remove(sqlite3 *db, long long id, struct herr *err);

struct webhook_info {
	long long   id;
	const char *url, *events;
	long long   created_at;
	long long   pending, delivered, failed;
};
int webhook_each(sqlite3 *db, int (*fn)(void *ctx, const struct webhook_info *w), void *ctx,
                 struct herr *err);

struct webhook_failure {
	long long   id, webhook_id, event_id, created_at, attempts;
	const char *url, *kind, *last_error;
};
int webhook_each_failure(sqlite3 *db, int (*fn)(void *ctx, const struct webhook_failure *f),
                         void *ctx, struct herr *err);
/* Rule (1): failed rows (of webhook `id`, 0: all) pending again, due now;
 * *n how many. */
int webhook_retry_failed(sqlite3 *db, long long id, long long now, long long *n,
                         struct herr *err);

struct webhook_report {
	long long delivered, retried, failed;
};

/*
 * Deliver what is due (rules (1)-(3)) until nothing is, `deadline`
 * (monotonic seconds, 0: none) passes or *stop is set.  The caller's
 * thread blocks on the receivers (WEBHOOK_TIMEOUT at most per POST).
 */
int webhook_deliver_due(sqlite3 *db, const struct config *cfg, volatile sig_atomic_t *stop,
                        double deadline, struct webhook_report *rep, struct herr *err);

/* "t=T,v1=HEX" of `body` at time `t` with `secret` into out (>= 96 bytes). */
int webhook_sign(const char *secret, long long t, const char *body, size_t len, char *out,
                 size_t size);

#endif
