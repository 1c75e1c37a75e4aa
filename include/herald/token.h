/*
 * token.h - compact, unforgeable tokens for the links and addresses in a mail.
 *
 * One module mints and checks every token herald puts in a message: the
 * unsubscribe link, and (in later features) the open pixel, click redirects,
 * VERP return paths and opt-in confirmations.  A token is URL-safe base64
 * (RFC 4648 §5, no padding) of:
 *
 *   OFFSET  SIZE   DESCRIPTION
 *   0       1      version (high nibble, 1) and kind (low nibble, enum token_kind)
 *   1       1..9   subscriber id, unsigned LEB128 varint
 *   ..      1..9   list id, varint (0 when none)
 *   ..      1..9   issue id, varint (0 when none)
 *   ..      12     HMAC-SHA256(secret, bytes above), first 96 bits
 *
 * so a typical token is 20 bytes, 27 characters.  96 bits of MAC make a
 * forgery a 2^-96 guess per try; comparison is constant-time
 * (CRYPTO_memcmp).  The secret is 32 random bytes in a file (mode 0600)
 * created by `herald init`; it is never printed or stored in the database.
 * Changing any byte of a token, truncating it or extending it makes
 * token_verify() fail.
 */
#ifndef HERALD_TOKEN_H
#define HERALD_TOKEN_H

#include <stddef.h>

#include "herald/herr.h"

#define TOKEN_SECRET_LEN 32
#define TOKEN_MAC_LEN    12
#define TOKEN_MAX        64   /* characters, including the NUL */

enum token_kind {
	TOKEN_UNSUBSCRIBE = 1,
	TOKEN_OPEN        = 2,
	TOKEN_CLICK       = 3,
	TOKEN_BOUNCE      = 4,
	TOKEN_CONFIRM     = 5,
	TOKEN_VIEW        = 6, /* the web copy of an issue of a list that is not public */
	TOKEN_PREFERENCES = 7, /* the preference centre /p/TOKEN: subscriber, the
	                          mail's list and issue (message.c, webprefs.c) */
	TOKEN_OPEN_ANON   = 8, /* [tracking] mode = anonymous (tracking.h): the */
	TOKEN_CLICK_ANON  = 9, /* pixel and redirects, subscriber always 0, so
	                          one token serves every copy of the issue */
};

struct token {
	enum token_kind    kind;
	unsigned long long subscriber_id;
	unsigned long long list_id;
	unsigned long long issue_id;
};

struct token_key {
	unsigned char secret[TOKEN_SECRET_LEN];
};

/* HMAC-SHA256 (RFC 2104) of `len` bytes at `p` keyed with the secret: the
 * tokens' MAC, and every other keyed hash herald makes with it (Message-ID
 * suffixes, erased-address hashes, preference-form nonces).  0, or -1 when
 * OpenSSL fails. */
#define TOKEN_HMAC_LEN 32
int token_hmac(const struct token_key *k, const void *p, size_t len,
               unsigned char out[TOKEN_HMAC_LEN]);

/* Write the token for `t` into `out` (NUL-terminated). Returns 0, or -1 if
 * the HMAC could not be computed. */
int token_make(const struct token_key *k, const struct token *t, char out[TOKEN_MAX]);

/* Check `len` characters of `s`.  Returns 0 and fills `out` when the token is
 * well-formed and its MAC matches; -1 otherwise (no reason is given on
 * purpose: a forged token and a damaged one look the same to the caller). */
int token_verify(const struct token_key *k, const char *s, size_t len, struct token *out);

/* Read the secret from `path`.  EX_NOINPUT when missing (run herald init),
 * EX_CONFIG when it has the wrong size or is readable by others. */
/* `len` bytes as unpadded URL-safe base64 (RFC 4648 §5) into `out`
 * (4 * ceil(len / 3) + 1 bytes), NUL-terminated; the length written.
 * Also the API keys' encoding (apikey.c). */
size_t token_b64url_encode(const unsigned char *in, size_t len, char *out);

int token_key_load(const char *path, struct token_key *k, struct herr *err);

/* Create `path` with a new random secret, mode 0600, unless it exists.
 * Returns 1 when created, 0 when it already existed, -1 on error. */
int token_key_create(const char *path, struct herr *err);

#endif
