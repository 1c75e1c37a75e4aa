/*
 * apikey.c - keys of the HTTP API (see apikey.h for rules (1)-(3)).
 *
 * Owns the table api_keys (sql/019_api.sql).
 */
#include "herald/apikey.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "herald/db.h"
#include "herald/token.h"

static const char *const scope_names[APIKEY_N_SCOPES] = {
	"subscribers:read", "subscribers:write", "lists:read", "issues:read", "mail:send",
};

const char *
apikey_scope_name(enum apikey_scope s)
{
	int i;

	for (i = 0; i < APIKEY_N_SCOPES; i++)
		if ((unsigned)s == 1u << i)
			return scope_names[i];
	return "?";
}

int
apikey_scopes_parse(const char *text, unsigned *out, struct herr *err)
{
	const char *p = text, *end;
	size_t n;
	int i;

	*out = 0;
	while (p && *p) {
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		for (i = 0; i < APIKEY_N_SCOPES; i++)
			if (strlen(scope_names[i]) == n && !strncmp(p, scope_names[i], n))
				break;
		if (i == APIKEY_N_SCOPES)
			return herr_set(err, EX_USAGE, NULL, "unknown scope '%.*s' (scopes: "
			                "subscribers:read, subscribers:write, lists:read, "
			                "issues:read, mail:send)", (int)(n > 64 ? 64 : n), p);
		*out |= 1u << i;
		p = end ? end + 1 : NULL;
	}
	if (!*out)
		return herr_set(err, EX_USAGE, NULL, "a key needs at least one scope");
	return 0;
}

void
apikey_scopes_text(unsigned scopes, char *out, size_t size)
{
	size_t len = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < APIKEY_N_SCOPES; i++)
		if (scopes & (1u << i)) {
			snprintf(out + len, size - len, "%s%s", len ? "," : "", scope_names[i]);
			len = strlen(out);
		}
}

/* The hex SHA-256 of `key`; 0, or -1 when OpenSSL failed. */
static int
key_hash(const char *key, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	if (EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -1;
	for (i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int
name_check(const char *name, struct herr *err)
{
	size_t n = strlen(name);

	if (!n || n > APIKEY_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		return herr_set(err, EX_DATAERR, NULL, "a key name is 1-%d characters of a-z, "
		                "0-9, '.', '_' and '-'", APIKEY_NAME_MAX);
	return 0;
}

int
apikey_create(sqlite3 *db, const char *name, unsigned scopes, long long expires_at,
              long long now, char *key, struct herr *err)
{
	unsigned char rnd[32];
	char hash[65], text[96];
	sqlite3_stmt *st;
	int rc;

	if (name_check(name, err) < 0)
		return -1;
	if (!scopes)
		return herr_set(err, EX_DATAERR, NULL, "a key needs at least one scope");
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make a random key");
	/* 32 bytes as 43 base64url characters, as tokens are written */
	memcpy(key, APIKEY_PREFIX, sizeof APIKEY_PREFIX - 1);
	token_b64url_encode(rnd, sizeof rnd, key + sizeof APIKEY_PREFIX - 1);
	if (key_hash(key, hash) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot hash the key");
	apikey_scopes_text(scopes, text, sizeof text);
	if (db_prepare(db, &st, "INSERT INTO api_keys (name, key_hash, prefix, scopes, "
	               "created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key, APIKEY_SHOWN, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	if (expires_at)
		sqlite3_bind_int64(st, 6, expires_at);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return herr_set(err, EX_DATAERR, NULL, "a key named '%s' exists already", name);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "create the key");
	return 0;
}

int
apikey_revoke(sqlite3 *db, const char *name, long long now, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) "
	               "WHERE name = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "revoke the key");
	if (!sqlite3_changes(db))
		return herr_set(err, EX_NOINPUT, NULL, "no key named '%s'", name);
	return 0;
}

#define KEY_COLUMNS \
	"SELECT id, name, prefix, scopes, created_at, ifnull(expires_at, 0), " \
	"ifnull(revoked_at, 0), ifnull(last_used_at, 0) FROM api_keys "

static void
row_to_key(sqlite3_stmt *st, struct apikey *k)
{
	unsigned scopes = 0;
	struct herr ignored;
	const char *t;

	memset(k, 0, sizeof *k);
	k->id = sqlite3_column_int64(st, 0);
	t = (const char *)sqlite3_column_text(st, 1);
	snprintf(k->name, sizeof k->name, "%s", t ? t : "");
	t = (const char *)sqlite3_column_text(st, 2);
	snprintf(k->prefix, sizeof k->prefix, "%s", t ? t : "");
	t = (const char *)sqlite3_column_text(st, 3);
	/* written by apikey_create() only: words it knows */
	if (apikey_scopes_parse(t ? t : "", &scopes, &ignored) < 0)
		scopes = 0;
	k->scopes = scopes;
	k->created_at = sqlite3_column_int64(st, 4);
	k->expires_at = sqlite3_column_int64(st, 5);
	k->revoked_at = sqlite3_column_int64(st, 6);
	k->last_used_at = sqlite3_column_int64(st, 7);
}

int
apikey_each(sqlite3 *db, int (*fn)(void *ctx, const struct apikey *k), void *ctx,
            struct herr *err)
{
	struct apikey k;
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, KEY_COLUMNS "ORDER BY name", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_key(st, &k);
		if (fn(ctx, &k) < 0) {
			sqlite3_finalize(st);
			return 0;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_error(db, err, "read the keys");
}

int
apikey_verify(sqlite3 *db, const char *presented, long long now, struct apikey *out,
              enum apikey_state *state, struct herr *err)
{
	sqlite3_stmt *st;
	char hash[65];
	int rc;

	*state = APIKEY_UNKNOWN;
	if (!presented || strlen(presented) != APIKEY_LEN ||
	    strncmp(presented, APIKEY_PREFIX, sizeof APIKEY_PREFIX - 1) != 0)
		return 0;
	if (key_hash(presented, hash) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "cannot hash the key");
	if (db_prepare(db, &st, KEY_COLUMNS "WHERE key_hash = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_to_key(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return db_error(db, err, "check the key");
	if (out->revoked_at)
		*state = APIKEY_REVOKED;
	else if (out->expires_at && now >= out->expires_at)
		*state = APIKEY_EXPIRED;
	else
		*state = APIKEY_VALID;
	return 0;
}

int
apikey_mark_used(sqlite3 *db, long long id, long long now, struct herr *err)
{
	return db_run2(db, "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", id, now, NULL,
	               "mark the key used", err);
}
