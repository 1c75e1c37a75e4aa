/*
 * webprefs.h - the per-form nonce of the pages a mail's token opens: the
 * preference centre (/p/TOKEN and the forms it shows, also /p/TOKEN/export
 * and /p/TOKEN/forget) and the leaving survey on /u/TOKEN.
 *
 * A GET of such a page never changes anything (web.c invariant 3); its
 * forms carry a hidden field `nonce` (WEBPREFS_NONCE_FIELD) that the POST
 * must bring back.  The token in the URL proves the link came from the
 * reader's mail; the nonce proves the POST came from a page herald served
 * for that token lately, so a page elsewhere cannot post a reader's
 * choices with a link it got hold of, and an old saved page stops working:
 *
 *   nonce = hex(HMAC-SHA256(secret, "herald-form-nonce" 0x00 TOKEN 0x00
 *                           WINDOW)[0..15])
 *
 * where WINDOW is floor(now / WEBPREFS_NONCE_WINDOW) in decimal and the
 * secret is the token secret (token.h).  A nonce is accepted in its own
 * window and the next, so it lives one to two windows; it is bound to the
 * token's exact characters (a nonce of one token is refused with another),
 * 128 bits, compared in constant time.  No state is kept: a nonce may be
 * used more than once within its life (the changes it carries are the
 * reader's own and idempotent).
 */
#ifndef HERALD_WEBPREFS_H
#define HERALD_WEBPREFS_H

#include <stddef.h>

#include "herald/token.h"

#define WEBPREFS_NONCE_FIELD  "nonce"
#define WEBPREFS_NONCE_WINDOW 3600   /* seconds; prefs.h PREFS_SURVEY_SPAN is two */
#define WEBPREFS_NONCE_LEN    32     /* hex characters */
#define WEBPREFS_NONCE_MAX    (WEBPREFS_NONCE_LEN + 1)

/* The nonce of the `len` characters of `token` at Unix time `now`, into
 * `out` (NUL-terminated).  Returns 0, or -1 when the HMAC fails. */
int webprefs_nonce_make(const struct token_key *k, const char *token, size_t len,
                        long long now, char out[WEBPREFS_NONCE_MAX]);

/* 0 when `nonce` (NULL: missing) is the nonce of `token` made at most one
 * window before `now`'s; -1 otherwise (missing, malformed, of another
 * token, expired, or from the future). */
int webprefs_nonce_check(const struct token_key *k, const char *token, size_t len,
                         const char *nonce, long long now);

#endif
