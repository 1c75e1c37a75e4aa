/*
 * apimail.h - one-off mail through the HTTP API (POST /api/v1/mail): a
 * message rendered from a Markdown body, or from a stored issue's, merged
 * with the caller's data, sent once to one address through the single-mail
 * path (mailsend.h: relays, failover, relay usage, DKIM), with its result
 * kept in api_mails (sql/023_api_mail.sql).
 *
 * Rules:
 *   (1) never to a suppressed address, nor one erased and suppressed
 *       (409 with the reason); an erased one may get mail it asks for;
 *   (2) everything that can be wrong with the request is found before
 *       anything is stored or queued: the address, the subject (no
 *       control character after merging: a header value), the Markdown
 *       (render.h), the merge fields (tmpl.h: name, first_name, email and
 *       attr.KEY for each data key; an unknown field is a 422);
 *   (3) with an Idempotency-Key, the first request makes the row and
 *       queues the mail; any later one with the same key and the same
 *       body gets that row and queues nothing; with another body, 422;
 *   (4) a mail is tried once: status sent, deferred (the relays said
 *       later) or failed, with the relay's words; the caller retries a
 *       deferred one with a new request if it still matters.
 * The message is automatic mail (message_build_automatic()): no
 * List-Unsubscribe, no tracking; the data never reaches a header but the
 * subject.
 */
#ifndef HERALD_APIMAIL_H
#define HERALD_APIMAIL_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/address.h"
#include "herald/api.h"
#include "herald/buf.h"
#include "herald/config.h"
#include "herald/mailsend.h"
#include "herald/message.h"
#include "herald/token.h"

#define APIMAIL_SUBJECT_MAX  998
#define APIMAIL_MARKDOWN_MAX (1u << 20)

/* A request, checked and merged (rule (2)): what the mail thread sends. */
struct apimail {
	long long      id;         /* its api_mails row, once made */
	struct address to;
	char          *subject;    /* merged */
	struct buf     text, html; /* merged parts */
};
void apimail_free(struct apimail *m);

/*
 * Read the request object {to, subject, markdown, data} or {to, issue,
 * data} into a new *out (rule (2)); 4xx in `e` otherwise.  `db` reads
 * the stored issue and the suppressions (rule (1), 409).
 */
int apimail_prepare(sqlite3 *db, const struct config *cfg, const struct token_key *key,
                    struct json_t *req, struct apimail **out, struct api_error *e);

/*
 * Rule (3): make m's row for API key `key_id` with `idem_key` (NULL:
 * none) and `body_hash`; *existing is 1 when an earlier request with that
 * key made one (m->id is then that row's, and nothing is to be queued),
 * and 422 when its body differed.
 */
int apimail_record(sqlite3 *db, struct apimail *m, long long key_id, const char *idem_key,
                   const char *body_hash, int *existing, struct api_error *e);

/* The message of `m` for mailsend_one() (message_build_automatic()). */
int apimail_build(const struct apimail *m, const struct config *cfg,
                  const struct dkim_signer *dkim, struct buf *out, struct message_out *mo,
                  struct herr *err);

/* Rule (4): the answer of the send (rc of mailsend_one()) into the row. */
int apimail_result(sqlite3 *db, long long id, int rc, const struct mailsend_result *res,
                   const char *message_id, const struct herr *send_err, struct herr *err);

/* The row `id` as the API shows it; EX_NOINPUT when it is not the key's. */
int apimail_json(sqlite3 *db, long long id, long long key_id, struct json_t **out,
                 struct herr *err);

#endif
