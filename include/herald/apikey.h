/*
 * apikey.h - keys of the HTTP API (`herald apikey`, /api/v1/ of `herald
 * serve`).
 *
 * Owns the table api_keys (sql/019_api.sql).  A key is "hrk_" and 43
 * URL-safe base64 characters (32 random bytes); it is printed once by
 * apikey_create() and only its SHA-256 is stored.  Each key has a name
 * (a-z 0-9 . _ -, like a list's), a set of scopes, and may expire or be
 * revoked.
 *
 * Rules:
 *   (1) a key is valid when its hash is known, it is not revoked and,
 *       with an expiry, now < expires_at; apikey_verify() says which of
 *       unknown / revoked / expired it is not, for the log only (the API
 *       answers all three with the same 401);
 *   (2) scopes are fixed words (APIKEY_SCOPE_NAMES); a request needs the
 *       one its endpoint names, else 403;
 *   (3) the comparison is of hashes looked up by an index: the time it
 *       takes says nothing about how close a wrong key was.
 */
#ifndef HERALD_APIKEY_H
#define HERALD_APIKEY_H

#include <sqlite3.h>

#include "herald/herr.h"

#define APIKEY_PREFIX     "hrk_"
#define APIKEY_LEN        47      /* "hrk_" + 43 */
#define APIKEY_SHOWN      12      /* characters `apikey ls` shows */
#define APIKEY_NAME_MAX   64

enum apikey_scope {
	APIKEY_SUBSCRIBERS_READ  = 1u << 0,  /* "subscribers:read" */
	APIKEY_SUBSCRIBERS_WRITE = 1u << 1,  /* "subscribers:write" */
	APIKEY_LISTS_READ        = 1u << 2,  /* "lists:read" */
	APIKEY_ISSUES_READ       = 1u << 3,  /* "issues:read" */
	APIKEY_MAIL_SEND         = 1u << 4,  /* "mail:send" */
};
#define APIKEY_N_SCOPES 5

struct apikey {
	long long id;
	char      name[APIKEY_NAME_MAX + 1];
	char      prefix[APIKEY_SHOWN + 1];
	unsigned  scopes;
	long long created_at, expires_at, revoked_at, last_used_at; /* 0: none */
};

/* "subscribers:read,lists:read" -> the bits; EX_USAGE naming an unknown word. */
int apikey_scopes_parse(const char *text, unsigned *out, struct herr *err);
/* The bits as the canonical comma list into out (>= 96 bytes). */
void apikey_scopes_text(unsigned scopes, char *out, size_t size);
/* The word of one scope bit. */
const char *apikey_scope_name(enum apikey_scope s);

/* A new key `name` with `scopes`, expiring at `expires_at` (0: never);
 * the key into `key` (APIKEY_LEN + 1 bytes).  EX_DATAERR for a bad or
 * taken name or no scope. */
int apikey_create(sqlite3 *db, const char *name, unsigned scopes, long long expires_at,
                  long long now, char *key, struct herr *err);
/* Revoke key `name`; EX_NOINPUT when there is none (revoking twice is fine). */
int apikey_revoke(sqlite3 *db, const char *name, long long now, struct herr *err);
/* Every key by name; stops when fn returns -1. */
int apikey_each(sqlite3 *db, int (*fn)(void *ctx, const struct apikey *k), void *ctx,
                struct herr *err);

enum apikey_state {
	APIKEY_VALID,
	APIKEY_UNKNOWN,   /* no such key (or not even shaped like one) */
	APIKEY_REVOKED,
	APIKEY_EXPIRED,
};
/* Rule (1): what `presented` is worth at `now`; *out filled when VALID.
 * Reads only.  -1 only when the database failed. */
int apikey_verify(sqlite3 *db, const char *presented, long long now, struct apikey *out,
                  enum apikey_state *state, struct herr *err);
/* Record the key's use at `now` (a write: callers do it at most once a
 * minute per key, not per request). */
int apikey_mark_used(sqlite3 *db, long long id, long long now, struct herr *err);

#endif
