/*
 * privacy.h - a person's data on request: export (a subject access
 * request, UK GDPR Art. 15 and 20) and erasure (Art. 17).
 *
 * Owns the two answers and the tables only they write (sql/016_erasure.sql):
 * `erased` (keyed hashes of erased addresses), `erasures` (the log) and
 * `erase_requests` (a reader's "delete me", waiting for the mailed link).
 * Called by src/cmd/sub.c (`sub export-data`, `sub forget`), by the web
 * handlers of src/webprivacy.c (the preference centre's "download my
 * data" and "delete me") and by subscriber.c (rule 10: imports skip the
 * erased).  Export and erasure read and change the same places; a table
 * that names a person must be added to both (privacy.c lists them).
 *
 * Erasure, in one transaction (privacy_forget()):
 *   (1) the subscriber row goes, and with it (ON DELETE CASCADE) their
 *       name, attributes, subscriptions, confirmations, consent records
 *       (consent_log: the only place of consent IPs and user agents),
 *       welcomes and pending erase requests; their "why are you leaving"
 *       notes are cleared (the reasons stay counted);
 *   (2) deliveries, events and bounces stay, so every issue's stats stay
 *       the same, but move to a tombstone: a new subscriber row with no
 *       address, no name, status blocklisted and no subscriptions, one
 *       per erasure.  The unique counts need one id per person; the new
 *       id means old links in the person's mailbox (their tokens name the
 *       old id) find nobody and record nothing.  User agents are removed
 *       from their open and click events;
 *   (3) any text that names the address (bounce recipients and
 *       diagnostics, delivery replies, bounce events, inbound summaries
 *       and To addresses, suppression notes) has it replaced by
 *       "[erased]", wherever it is, also where no subscriber was matched;
 *   (4) a suppression of the address itself is removed and kept only as
 *       the `suppressed` flag of its hash; domain patterns are untouched;
 *   (5) the keyed hash goes into `erased`, and a row into `erasures` with
 *       the time and `by`, nothing else.
 * SQLite keeps deleted bytes in free space and in the WAL until they are
 * overwritten, so the erasure runs with PRAGMA secure_delete on (deleted
 * content is zeroed in the pages written) and ends with a TRUNCATE
 * checkpoint (those pages are copied into the database file and the WAL
 * is emptied).  A reader holding an old snapshot (a long `stats`, say)
 * can stop the checkpoint: the erasure stands, res->checkpointed says 0,
 * and the next erasure or SQLite's own checkpoints finish the job.
 *
 * The export is one JSON object, a contract documented in docs/privacy.md
 * ("A person's data: export and erasure"):
 *   schema          "herald-personal-data"
 *   schema_version  1
 *   exported_at     Unix time
 *   address         the address asked about, as given
 *   subscriber      {id, email, name, status, attributes, created_at,
 *                   updated_at}, or null when herald has no subscriber of
 *                   that address (then only what names it is listed)
 *   subscriptions   [{list, list_title, status, created_at, confirmed_at,
 *                   unsubscribed_at}]
 *   consent         [{list, kind, at, recorded_at, source, detail, ip,
 *                   user_agent, reason, ...}]: consent_log's rows, every
 *                   column but the ids; [] when the database has no
 *                   consent records
 *   confirmations   [{list, created_at, used_at}]
 *   deliveries      [{issue, subject, status, attempts, message_id,
 *                   smtp_code, smtp_reply, relay, created_at, sent_at,
 *                   updated_at}]
 *   opens           [{issue, at, ua, agent}]
 *   clicks          [{issue, at, link, url, ua, agent}]
 *   events          [{kind, issue, list, at, detail}]: the rest of the
 *                   history (subscribe, confirm, unsubscribe, bounce,
 *                   complaint)
 *   bounces         [{issue, at, recipient, source, class, reason, status,
 *                   reply_code, diagnostic, remote_mta, why}]
 *   suppressions    [{pattern, reason, note, created_at}]: the address's
 *                   own and its domain's
 *   leave_answers   [{issue, reason, note, answered_at}] ([] without them)
 *   mails           [{id, subject, status, smtp_code, smtp_reply, relay,
 *                   message_id, created_at, sent_at}]: one-off mail the
 *                   HTTP API sent to the address (apimail.h); erasure
 *                   deletes these rows
 *   sequences       [{sequence, start_at, enrolled_at, state, passed,
 *                   left_at, left_reason}]: their places in sequences
 *                   (sequence.h; [] without them)
 * Times are Unix seconds, null when unset; keys are always present.
 */
#ifndef HERALD_PRIVACY_H
#define HERALD_PRIVACY_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/address.h"
#include "herald/buf.h"
#include "herald/config.h"
#include "herald/dkim.h"
#include "herald/herr.h"
#include "herald/token.h"

#define PRIVACY_SCHEMA         "herald-personal-data"
#define PRIVACY_SCHEMA_VERSION 1
#define PRIVACY_BY_MAX         200   /* bytes of the erasure log's `by` */
#define PRIVACY_BY_WEB         "preference centre"
#define PRIVACY_REDACTED       "[erased]"
#define PRIVACY_CODE_LEN       32    /* hex characters of an erase link's code */

struct json_t; /* jansson's json_t */

/*
 * Everything herald holds about the address (schema above) into *out, a
 * new jansson object the caller json_decref()s.  Read in one transaction.
 * EX_NOINPUT when herald holds nothing about it at all.
 */
int privacy_export(sqlite3 *db, const struct address *a, long long now, struct json_t **out,
                   struct herr *err);
/* The same for a subscriber by id (the web: the token names the id). */
int privacy_export_id(sqlite3 *db, long long subscriber_id, long long now,
                      struct json_t **out, struct herr *err);

/*
 * consent_log's rows of a subscriber as a JSON array (every column but
 * the ids, the list by name), oldest first, into *out; an empty array
 * when the database has no consent_log table.
 */
int privacy_consent_rows(sqlite3 *db, long long subscriber_id, struct json_t **out,
                         struct herr *err);

struct privacy_forget_result {
	int       subscriber;   /* a subscriber row was erased */
	long long kept;         /* deliveries, events and bounces kept for stats */
	long long redacted;     /* texts where the address was replaced */
	int       suppressed;   /* the address's suppression is now only its hash */
	int       checkpointed; /* the WAL was checkpointed and emptied */
};

/*
 * Erase the person with address `a` (invariants (1)-(5) above), logged
 * as done by `by` (1..PRIVACY_BY_MAX bytes, no control characters, not
 * naming the address: EX_DATAERR).  `key` is the token secret for the
 * hash.  EX_NOINPUT when herald holds nothing about the address.
 */
int privacy_forget(sqlite3 *db, const struct token_key *key, const struct address *a,
                   const char *by, long long now, struct privacy_forget_result *res,
                   struct herr *err);

/*
 * Rule 10 of subscriber.h: 0 when the identity key `addr_key` was never
 * erased, 1 when it was, 2 when it was and had been suppressed (still
 * refused to everyone), -1 on error.  In the caller's transaction.
 */
int privacy_erased_check(sqlite3 *db, const struct token_key *key, const char *addr_key,
                         struct herr *err);
/* 1 when any address was ever erased, 0 when none: with none, a bulk
 * import (one transaction) skips the keyed hash of every row.  -1 on error. */
int privacy_erased_any(sqlite3 *db, struct herr *err);
/* The same with its SELECT kept in *cache for a loop (db_prepare_cached). */
int privacy_erased_check_cached(sqlite3 *db, sqlite3_stmt **cache, const struct token_key *key,
                                const char *addr_key, struct herr *err);

/* ---- the reader's own "delete me" (webprivacy.c) ---- */

enum privacy_request_state {
	PRIVACY_REQUEST_OPEN,     /* may be followed */
	PRIVACY_REQUEST_USED,     /* the link worked already */
	PRIVACY_REQUEST_EXPIRED,  /* older than ttl */
	PRIVACY_REQUEST_UNKNOWN,  /* no such link (or its person is gone) */
};

/* A new erase request of the subscriber; `code` (PRIVACY_CODE_LEN + 1
 * bytes) gets the random code for the mailed link /erase/CODE. */
int privacy_request_new(sqlite3 *db, long long subscriber_id, long long now, char *code,
                        struct herr *err);
/* What the link with `code` is worth now; *subscriber_id when known. */
int privacy_request_state(sqlite3 *db, const char *code, long long now, long ttl,
                          enum privacy_request_state *st, long long *subscriber_id,
                          struct herr *err);
/* Follow the link: when open, erase its subscriber (by PRIVACY_BY_WEB)
 * in the same transaction; *st says what the link was (nothing changes
 * unless PRIVACY_REQUEST_OPEN). */
int privacy_request_use(sqlite3 *db, const struct token_key *key, const char *code,
                        long long now, long ttl, enum privacy_request_state *st,
                        struct privacy_forget_result *res, struct herr *err);

/* ---- the mails ---- */

struct message_out;
/*
 * The export mailed to the subscriber's own address: a short text and
 * the JSON document (`json`, `len` bytes) in full in the text part, an
 * HTML part saying the same with the document in a <pre>.  Automatic mail
 * as the confirmation is (Auto-Submitted, random Message-ID, the plain
 * return path), DKIM-signed when `dkim` is not NULL.
 */
int privacy_mail_export(const struct config *cfg, const struct dkim_signer *dkim,
                        const char *email, const char *json, size_t len, long long now,
                        struct buf *out, struct message_out *mo, struct herr *err);
/* The "confirm the erasure" mail with the link BASE/erase/CODE. */
int privacy_mail_erase(const struct config *cfg, const struct dkim_signer *dkim,
                       const char *email, const char *code, long ttl, long long now,
                       struct buf *out, struct message_out *mo, struct herr *err);

#endif
