/*
 * test_webhook.c - webhook.c's pure parts and its outbox trigger
 * (sql/020_webhooks.sql), on a fresh migrated database per test.
 *
 * Covers: webhook_sign() against a vector computed with Python's hmac
 * module; webhook_events_parse() (canonical order, unknown kinds, empty);
 * webhook_add() refusing a non-http URL, a control character, a short
 * secret, and making a 64-hex secret when none is given; the trigger
 * writing one outbox row per matching webhook in the event's own
 * transaction (a rolled-back event leaves none), with the payload's
 * fields; webhook_retry_failed().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/db.h"
#include "herald/webhook.h"

static void
test_sign_vector(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(webhook_sign("0123456789abcdef-secret", 1700000000, "{\"a\":1}", 7, out,
	                              sizeof out), 0);
	assert_string_equal(out, "t=1700000000,v1="
	                    "6948a2dc6985c92d09b9edade5c97dce2ba201452d91a72e4a20d35abe4d3420");
	assert_int_equal(webhook_sign("0123456789abcdef-secret", 1700000000, "{\"a\":1}", 7, out,
	                              20), -1);
}

static void
test_events_parse(void **state)
{
	char out[96];
	struct herr err;

	(void)state;
	assert_int_equal(webhook_events_parse("open,unsubscribe,bounce", out, sizeof out, &err), 0);
	assert_string_equal(out, "unsubscribe,bounce,open");
	assert_int_equal(webhook_events_parse("unsubscribe,unsubscribed", out, sizeof out, &err),
	                 -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_non_null(strstr(err.msg, "unsubscribed"));
	assert_int_equal(webhook_events_parse("", out, sizeof out, &err), -1);
}

static long long
count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void
test_add_and_trigger(void **state)
{
	char path[TEMPDB_PATH_MAX], made[65];
	struct herr err;
	long long id, n;
	sqlite3 *db;

	(void)state;
	assert_int_equal(tempdb_open(path, "webhook", &db), 0);
	assert_int_equal(webhook_add(db, "ftp://x.example/", "open", NULL, made, 1, &id, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(webhook_add(db, "http://x.example/a b", "open", NULL, made, 1, &id, &err),
	                 -1);
	assert_int_equal(webhook_add(db, "http://x.example/", "open", "short", made, 1, &id, &err),
	                 -1);
	assert_int_equal(count(db, "SELECT count(*) FROM webhooks"), 0);
	/* with no webhook, an event writes no outbox row */
	assert_int_equal(db_exec(db, "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0);"
	                         "INSERT INTO subscribers (id, email, email_key, created_at, "
	                         "updated_at) VALUES (1, 'ada@example.org', 'ada@example.org', 0, 0);"
	                         "INSERT INTO events (kind, subscriber_id, list_id, at) VALUES "
	                         "('unsubscribe', 1, 1, 5)", &err), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM webhook_outbox"), 0);
	made[0] = '\0';
	assert_int_equal(webhook_add(db, "http://127.0.0.1:9/a", "unsubscribe,bounce", NULL, made, 1,
	                             &id, &err), 0);
	assert_int_equal(strlen(made), 64);
	assert_int_equal(webhook_add(db, "http://127.0.0.1:9/b", "open", "0123456789abcdef", made, 1,
	                             &id, &err), 0);
	assert_int_equal(db_exec(db, "INSERT INTO events (kind, subscriber_id, list_id, at, detail) "
	                         "VALUES ('unsubscribe', 1, 1, 7, '{\"source\":\"web\"}')", &err), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM webhook_outbox"), 1);
	assert_int_equal(count(db, "SELECT count(*) FROM webhook_outbox WHERE webhook_id = 1 AND "
	                           "kind = 'unsubscribe' AND next_at = 7 AND "
	                           "json_extract(payload, '$.email') = 'ada@example.org' AND "
	                           "json_extract(payload, '$.list') = 'news' AND "
	                           "json_extract(payload, '$.detail.source') = 'web'"), 1);
	/* the event and its row commit or vanish together */
	assert_int_equal(db_exec(db, "BEGIN; INSERT INTO events (kind, subscriber_id, at) VALUES "
	                         "('bounce', 1, 8); ROLLBACK", &err), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM webhook_outbox"), 1);
	/* retry: failed rows pending again */
	assert_int_equal(db_exec(db, "UPDATE webhook_outbox SET status = 'failed'", &err), 0);
	assert_int_equal(webhook_retry_failed(db, 0, 100, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(count(db, "SELECT count(*) FROM webhook_outbox WHERE status = 'pending' "
	                           "AND next_at = 100"), 1);
	/* the person's rows go with them */
	assert_int_equal(db_exec(db, "DELETE FROM subscribers WHERE id = 1", &err), 0);
	assert_int_equal(count(db, "SELECT count(*) FROM webhook_outbox"), 0);
	tempdb_remove(path, db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_vector),
		cmocka_unit_test(test_events_parse),
		cmocka_unit_test(test_add_and_trigger),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
