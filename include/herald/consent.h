/*
 * consent.h - consent records: how each subscription came to be, was
 * confirmed and ended, kept to prove it (UK GDPR Art. 7(1), PECR reg. 22).
 *
 * Owns the consent_log table (sql/013_consent.sql).  Rows are written only
 * by consent_record(), and only from the core functions that change a
 * subscription, in their transaction (subscriber.c: subscriber_signup*,
 * subscription_confirm*, confirmation_use, subscription_unsubscribe_in,
 * subscription_unsubscribe_all for complaints, subscriber_reactivate), so
 * a change and its record commit or vanish together.  Read by `herald sub
 * show` and `sub export --with-consent`.
 *
 * What a record holds:
 *   (1) kind: subscribe (a new or renewed consent), confirm (double opt-in
 *       confirmed), unsubscribe, reactivate (an admin took back a blocked,
 *       bounced or complained address; no list);
 *   (2) source: how.  Sign-ups: "web form", "cli" (`sub add`), "import
 *       FILE", "api", "admin", "preferences" (a list ticked in the
 *       preference centre); "confirmation link" and "unsubscribe page"
 *       (its "subscribe again" button) for the reader's confirmations;
 *       unsubscribes: "one-click header" (RFC 8058), "page", "mailto"
 *       (RFC 2369), "complaint", "admin" (consent_unsubscribe_how() maps
 *       the events' source words onto these); a dated consent brought in
 *       from another system keeps that system's words (import's
 *       consent_source column);
 *   (3) at: when consent was given or withdrawn (an import's consent_at),
 *       recorded_at: when herald wrote it;
 *   (4) detail: the consent text or list title shown, "" when none (web
 *       sign-ups: list_consent_shown() of list.h);
 *   (5) ip and user_agent: web sign-ups and confirmations only.  The
 *       address is cut as [privacy] store_ip says at the one write
 *       (consent_record()), so no caller can store more than allowed.
 *       These two columns are the only place herald keeps a client's
 *       address or browser: erasing a person (`sub forget`) wipes them
 *       here, and `sub rm` deletes the rows with the subscriber;
 *   (6) reason: why they left, when they said; set after the unsubscribe
 *       (consent_set_reason()), since the question comes after leaving
 *       and answering it is never a condition.
 */
#ifndef HERALD_CONSENT_H
#define HERALD_CONSENT_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/config.h"
#include "herald/herr.h"

#define CONSENT_SOURCE_MAX 200   /* bytes of a source, e.g. an import's consent_source */
#define CONSENT_TEXT_MAX   1000  /* bytes of the consent text kept */
#define CONSENT_UA_MAX     512   /* bytes of a User-Agent kept (longer ones are cut) */
#define CONSENT_REASON_MAX 1000
#define CONSENT_IP_MAX     64    /* "ffff:...:ffff/48" and its NUL fit */

/* How a consent came to be, from the caller that saw it.  Every member may
 * be NULL (0): then the core function's default (its source word, now, no
 * text, no client). */
struct consent_ctx {
	const char          *source;     /* (2) */
	const char          *text;       /* (4) consent text or list title shown */
	const char          *ip;         /* the client's address as the server saw it */
	const char          *user_agent; /* its User-Agent header */
	enum config_store_ip store_ip;   /* [privacy] store_ip: applied to `ip` */
	long long            at;         /* (3) given at (an import's consent_at); 0: now */
};

/*
 * What of `ip` may be stored under `mode`, into `out` (CONSENT_IP_MAX):
 * yes: the address as given (an IPv4 address seen through an IPv6 socket,
 * ::ffff:a.b.c.d, as a.b.c.d); truncated: "a.b.c.0/24", or the /48 of an
 * IPv6 address as "x:y:z::/48"; no: nothing.  Returns 1 when `out` holds
 * something to store, 0 when nothing may be (mode no, no address, or one
 * that does not parse when it must be cut).
 */
int consent_ip_store(const char *ip, enum config_store_ip mode, char *out, size_t size);

/* The consent word (2) for an unsubscribe whose event source is `source`
 * ("one-click" -> "one-click header", "web" -> "page", "cli" -> "admin",
 * "mailto", "complaint"); any other word as it is. */
const char *consent_unsubscribe_how(const char *source);

/* Write one record, in the caller's transaction.  `kind` is (1);
 * `list_id` 0 for none (reactivate); `c->source` must be set.  `reason`
 * NULL for none.  Text longer than its cap is cut at a UTF-8 boundary. */
int consent_record(sqlite3 *db, const char *kind, long long subscriber_id, long long list_id,
                   const struct consent_ctx *c, const char *reason, struct herr *err);
/* The same with its INSERT kept in *cache for a loop (db_prepare_cached). */
int consent_record_cached(sqlite3 *db, sqlite3_stmt **cache, const char *kind,
                          long long subscriber_id, long long list_id,
                          const struct consent_ctx *c, const char *reason, struct herr *err);

/* (6): the reason of the latest unsubscribe of subscriber x list, when it
 * has none yet (an answer is not rewritten).  EX_NOINPUT when there is no
 * such unsubscribe; EX_DATAERR for a reason with control characters. */
int consent_set_reason(sqlite3 *db, long long subscriber_id, long long list_id,
                       const char *reason, struct herr *err);

/* One record, as read back; pointers valid during the callback only; ip,
 * user_agent and reason are NULL when not kept. */
struct consent_entry {
	long long   id, list_id;       /* list_id 0: none */
	const char *list_name;         /* "" when none */
	const char *kind, *source, *detail, *ip, *user_agent, *reason;
	long long   at, recorded_at;
};

/* Every record of a subscriber, oldest first (by at, then id).  Return -1
 * from `fn` to stop (the call then returns -1, `err` untouched). */
int consent_each(sqlite3 *db, long long subscriber_id,
                 int (*fn)(void *ctx, const struct consent_entry *e), void *ctx,
                 struct herr *err);

/*
 * The consent a subscription stands on now, for export: the latest
 * 'subscribe' record of subscriber x list (its at and source).  Prepared
 * once for a whole export.  *at 0 and source "" when there is none.
 */
struct consent_reader;
int consent_reader_open(sqlite3 *db, struct consent_reader **out, struct herr *err);
int consent_reader_latest(struct consent_reader *r, long long list_id, long long subscriber_id,
                          long long *at, char *source, size_t size, struct herr *err);
void consent_reader_close(struct consent_reader *r);

#endif
