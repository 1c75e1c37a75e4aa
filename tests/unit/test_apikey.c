/*
 * test_apikey.c - API keys (src/apikey.c, apikey.h rules (1)-(3)) on a
 * fresh migrated database.
 *
 * Covers: scope words parsed in any order to the canonical list, an
 * unknown word and an empty list refused; a key's shape (hrk_ and 43
 * URL-safe characters), only its SHA-256 and first 12 characters stored;
 * verify: valid, a changed character unknown, the wrong length or prefix
 * unknown without a lookup, revoked, expired at expires_at exactly; a
 * taken or bad name refused; revoking an unknown name EX_NOINPUT;
 * apikey_mark_used() writing last_used_at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/apikey.h"
#include "herald/db.h"

static void
test_scopes(void **state)
{
	unsigned s;
	char text[96];
	struct herr err;

	(void)state;
	assert_int_equal(apikey_scopes_parse("mail:send,lists:read,subscribers:read", &s, &err), 0);
	assert_int_equal(s, APIKEY_MAIL_SEND | APIKEY_LISTS_READ | APIKEY_SUBSCRIBERS_READ);
	apikey_scopes_text(s, text, sizeof text);
	assert_string_equal(text, "subscribers:read,lists:read,mail:send");
	assert_int_equal(apikey_scopes_parse("lists:read,lists:write", &s, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_non_null(strstr(err.msg, "lists:write"));
	assert_int_equal(apikey_scopes_parse("", &s, &err), -1);
}

static void
test_create_verify_revoke(void **state)
{
	char path[TEMPDB_PATH_MAX], key[APIKEY_LEN + 1], bad[APIKEY_LEN + 1], other[APIKEY_LEN + 1];
	enum apikey_state st;
	struct apikey k;
	struct herr err;
	sqlite3 *db;
	sqlite3_stmt *q;
	size_t i;

	(void)state;
	assert_int_equal(tempdb_open(path, "apikey", &db), 0);
	assert_int_equal(apikey_create(db, "crm", APIKEY_LISTS_READ, 0, 100, key, &err), 0);
	assert_int_equal(strlen(key), APIKEY_LEN);
	assert_memory_equal(key, "hrk_", 4);
	for (i = 4; i < APIKEY_LEN; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                       "0123456789-_", key[i]));
	/* only the hash and the prefix are kept */
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT key_hash, prefix FROM api_keys", -1, &q,
	                                    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(strlen((const char *)sqlite3_column_text(q, 0)), 64);
	assert_null(strstr((const char *)sqlite3_column_text(q, 0), key + 4));
	assert_int_equal(strncmp((const char *)sqlite3_column_text(q, 1), key, APIKEY_SHOWN), 0);
	assert_int_equal(strlen((const char *)sqlite3_column_text(q, 1)), APIKEY_SHOWN);
	sqlite3_finalize(q);

	assert_int_equal(apikey_verify(db, key, 200, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_VALID);
	assert_string_equal(k.name, "crm");
	assert_int_equal(k.scopes, APIKEY_LISTS_READ);
	memcpy(bad, key, sizeof bad);
	bad[20] = bad[20] == 'A' ? 'B' : 'A';
	assert_int_equal(apikey_verify(db, bad, 200, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_UNKNOWN);
	assert_int_equal(apikey_verify(db, "hrk_short", 200, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_UNKNOWN);
	assert_int_equal(apikey_verify(db, NULL, 200, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_UNKNOWN);

	assert_int_equal(apikey_create(db, "crm", APIKEY_LISTS_READ, 0, 100, other, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(apikey_create(db, "Bad Name", APIKEY_LISTS_READ, 0, 100, other, &err), -1);
	assert_int_equal(apikey_create(db, "none", 0, 0, 100, other, &err), -1);

	/* expiry: valid before expires_at, expired from it on */
	assert_int_equal(apikey_create(db, "short", APIKEY_MAIL_SEND, 1000, 100, other, &err), 0);
	assert_int_equal(apikey_verify(db, other, 999, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_VALID);
	assert_int_equal(apikey_verify(db, other, 1000, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_EXPIRED);

	assert_int_equal(apikey_revoke(db, "crm", 300, &err), 0);
	assert_int_equal(apikey_verify(db, key, 301, &k, &st, &err), 0);
	assert_int_equal(st, APIKEY_REVOKED);
	assert_int_equal(k.revoked_at, 300);
	assert_int_equal(apikey_revoke(db, "nosuch", 300, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);

	assert_int_equal(apikey_mark_used(db, k.id, 400, &err), 0);
	assert_int_equal(apikey_verify(db, key, 401, &k, &st, &err), 0);
	assert_int_equal(k.last_used_at, 400);
	tempdb_remove(path, db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_create_verify_revoke),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
