/*
 * test_ledger.c - the delivery ledger (src/ledger.c) and the schema it
 * lives in (src/db.c, sql/).
 *
 * Each test opens a fresh database file, so migrations run for real.
 * Invariants from ledger.h are cited by number: (2) claim counts the attempt
 * and stores the Message-ID, (3) the snapshot takes exactly the eligible
 * subscribers, (5) recover returns in-flight rows, (6) someone who left
 * after the snapshot is skipped; plus the retry schedule and window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/db.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/subscriber.h"

struct fixture {
	char     path[TEMPDB_PATH_MAX];
	sqlite3 *db;
	long long list_id, issue_id;
	long long sub[5];
};

static long long
add_sub(struct fixture *f, const char *addr, int confirmed)
{
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;
	struct list l;

	assert_int_equal(address_parse(addr, &a, &err), 0);
	assert_int_equal(list_get_by_id(f->db, f->list_id, &l, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.unconfirmed = !confirmed;
	r.source = SIGNUP_ADMIN;
	assert_int_equal(subscriber_signup(f->db, &l, &r, &res, &err), 0);
	assert_true(res.subscriber_id > 0);
	return res.subscriber_id;
}

/* (3) with the fixture's one list as the audience */
static int
snapshot(struct fixture *f, long long *n, struct herr *err)
{
	struct audience a = AUDIENCE_INIT;
	int rc;

	assert_int_equal(audience_add_list(&a, f->list_id, err), 0);
	rc = ledger_snapshot(f->db, f->issue_id, &a, n, err);
	audience_clear(&a);
	return rc;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;

	if (tempdb_open(f->path, "ledger", &f->db) < 0)
		return -1;
	if (list_create(f->db, "news", "News", 0, 0, &f->list_id, &err) < 0)
		return -1;
	f->sub[0] = add_sub(f, "a@example.org", 1);
	f->sub[1] = add_sub(f, "b@example.org", 1);
	f->sub[2] = add_sub(f, "c@example.org", 0);   /* unconfirmed: not a recipient */
	f->sub[3] = add_sub(f, "d@example.org", 1);
	f->sub[4] = add_sub(f, "e@example.org", 1);
	assert_int_equal(subscriber_block(f->db, f->sub[4], &err), 0); /* blocked */
	if (sqlite3_exec(f->db, "INSERT INTO issues (list_id, subject, from_addr, markdown, html, "
	                 "text, created_at) VALUES (1, 's', 'n@example.org', '', '', '', 0)",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	f->issue_id = sqlite3_last_insert_rowid(f->db);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static int
fake_mid(void *ctx, long long sub, char *out, size_t n)
{
	(void)ctx;
	snprintf(out, n, "mid.%lld@example.org", sub);
	return 0;
}

static const char *
status_of(struct fixture *f, long long sub, char *buf)
{
	sqlite3_stmt *st;

	sqlite3_prepare_v2(f->db, "SELECT status FROM deliveries WHERE issue_id = ?1 AND "
	                   "subscriber_id = ?2", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, f->issue_id);
	sqlite3_bind_int64(st, 2, sub);
	if (sqlite3_step(st) == SQLITE_ROW)
		strcpy(buf, (const char *)sqlite3_column_text(st, 0));
	else
		strcpy(buf, "none");
	sqlite3_finalize(st);
	return buf;
}

static void
test_db_open_schema(void **state)
{
	struct fixture *f = *state;
	sqlite3_stmt *st;
	struct herr err;
	sqlite3 *again;

	assert_int_equal(db_schema_version(f->db), db_schema_latest());
	assert_true(db_schema_latest() >= 1);
	sqlite3_prepare_v2(f->db, "PRAGMA journal_mode", -1, &st, NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_prepare_v2(f->db, "PRAGMA foreign_keys", -1, &st, NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	/* a second open migrates nothing and keeps the data */
	assert_int_equal(db_open(f->path, DB_OPEN_EXISTING, 1000, &again, &err), 0);
	assert_int_equal(db_schema_version(again), db_schema_latest());
	db_close(again);
	/* a newer schema than we know is refused */
	assert_int_equal(sqlite3_exec(f->db, "PRAGMA user_version = 999", NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(db_open(f->path, DB_OPEN_EXISTING, 1000, &again, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, "newer"));
	{
		char sql[64];

		/* an older one too, until `herald db migrate`; maintenance opens
		 * either as it is */
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", db_schema_latest() - 1);
		sqlite3_exec(f->db, sql, NULL, NULL, NULL);
		assert_int_equal(db_open(f->path, DB_OPEN_EXISTING, 1000, &again, &err), -1);
		assert_int_equal(err.code, EX_CONFIG);
		assert_non_null(strstr(err.msg, "herald db migrate"));
		assert_int_equal(db_open(f->path, DB_OPEN_CREATE, 1000, &again, &err), -1);
		assert_int_equal(db_open(f->path, DB_OPEN_MAINTAIN, 1000, &again, &err), 0);
		assert_int_equal(db_schema_version(again), db_schema_latest() - 1);
		db_close(again);
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", db_schema_latest());
		sqlite3_exec(f->db, sql, NULL, NULL, NULL);
	}
	/* a missing file is not created by a normal open */
	assert_int_equal(db_open("/tmp/herald-does-not-exist.db", DB_OPEN_EXISTING, 1000, &again,
	                         &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(access("/tmp/herald-does-not-exist.db", F_OK), -1);
}

static void
test_ledger_snapshot_takes_eligible_only(void **state)
{
	struct fixture *f = *state;
	struct ledger_counts c;
	struct herr err;
	long long n;
	char buf[16];

	/* (3) */
	assert_int_equal(snapshot(f, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(status_of(f, f->sub[0], buf), "pending");
	assert_string_equal(status_of(f, f->sub[2], buf), "none"); /* unconfirmed */
	assert_string_equal(status_of(f, f->sub[4], buf), "none"); /* blocked */
	/* sendjob takes the snapshot once, when the send starts; run again, it
	 * never duplicates a row (ON CONFLICT DO NOTHING) */
	assert_int_equal(snapshot(f, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ledger_counts(f->db, f->issue_id, &c, &err), 0);
	assert_int_equal(c.total, 3);
	assert_int_equal(c.pending, 3);
}

static void
test_ledger_claim_mark_and_recover(void **state)
{
	struct fixture *f = *state;
	struct ledger *l;
	struct ledger_row row;
	struct smtp_result r;
	struct herr err;
	long long n;
	char buf[16];

	assert_int_equal(snapshot(f, &n, &err), 0);
	assert_int_equal(ledger_open(f->db, f->issue_id, &l, &err), 0);

	/* (2) a claim is committed with its attempt and Message-ID */
	assert_int_equal(ledger_claim(l, 1000, fake_mid, NULL, &row, &err), 1);
	assert_true(row.subscriber_id == f->sub[0]);
	assert_int_equal(row.attempts, 1);
	assert_string_equal(row.email, "a@example.org");
	assert_string_equal(status_of(f, f->sub[0], buf), "sending");
	memset(&r, 0, sizeof r);
	r.outcome = SMTP_SENT;
	r.code = 250;
	strcpy(r.reply, "250 2.0.0 Ok: queued as X1");
	assert_int_equal(ledger_mark(l, row.subscriber_id, row.attempts, &r, "smtp", 1001, &err), 0);
	assert_string_equal(status_of(f, f->sub[0], buf), "sent");
	ledger_row_clear(&row);

	/* next: b, claimed then "crash": (5) recover returns it to pending */
	assert_int_equal(ledger_claim(l, 1002, fake_mid, NULL, &row, &err), 1);
	assert_true(row.subscriber_id == f->sub[1]);
	ledger_row_clear(&row);
	ledger_close(l);
	assert_int_equal(ledger_recover(f->db, f->issue_id, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(status_of(f, f->sub[1], buf), "pending");
	/* the next run opens the ledger afresh */
	assert_int_equal(ledger_open(f->db, f->issue_id, &l, &err), 0);
	/* claimed again: the attempt count says it is the second */
	assert_int_equal(ledger_claim(l, 1003, fake_mid, NULL, &row, &err), 1);
	assert_true(row.subscriber_id == f->sub[1]);
	assert_int_equal(row.attempts, 2);
	r.outcome = SMTP_REJECTED;
	r.code = 550;
	r.stage = SMTP_STAGE_RCPT;
	strcpy(r.reply, "550 5.1.1 user unknown");
	assert_int_equal(ledger_mark(l, row.subscriber_id, row.attempts, &r, "smtp", 1004, &err), 0);
	assert_string_equal(status_of(f, f->sub[1], buf), "bounced");
	ledger_row_clear(&row);

	/* (6) d unsubscribes after the snapshot: skipped, never claimed */
	assert_int_equal(subscription_unsubscribe(f->db, f->list_id, f->sub[3], "test", &err), 0);
	assert_int_equal(ledger_claim(l, 1005, fake_mid, NULL, &row, &err), 0);
	assert_string_equal(status_of(f, f->sub[3], buf), "skipped");
	ledger_close(l);
}

static void
test_ledger_deferred_retry_and_window(void **state)
{
	struct fixture *f = *state;
	struct ledger *l;
	struct ledger_row row;
	struct smtp_result r;
	struct herr err;
	long long n, t = 100000;
	char buf[16];
	int i;

	assert_int_equal(snapshot(f, &n, &err), 0);
	assert_int_equal(ledger_open(f->db, f->issue_id, &l, &err), 0);
	memset(&r, 0, sizeof r);
	r.outcome = SMTP_DEFERRED;
	r.code = 451;
	strcpy(r.reply, "451 4.7.1 try later");
	/* all three rows deferred at t */
	for (i = 0; i < 3; i++) {
		assert_int_equal(ledger_claim(l, t, fake_mid, NULL, &row, &err), 1);
		assert_int_equal(ledger_mark(l, row.subscriber_id, row.attempts, &r, "smtp", t, &err), 0);
		ledger_row_clear(&row);
	}
	assert_string_equal(status_of(f, f->sub[0], buf), "deferred");
	/* not due before the first backoff */
	assert_int_equal(ledger_claim(l, t + ledger_backoff(1) - 1, fake_mid, NULL, &row, &err), 0);
	/* due at it */
	assert_int_equal(ledger_claim(l, t + ledger_backoff(1), fake_mid, NULL, &row, &err), 1);
	assert_int_equal(row.attempts, 2);
	/* deferred again far past the 3-day window: failed */
	assert_int_equal(ledger_mark(l, row.subscriber_id, row.attempts, &r, "smtp",
	                             t + LEDGER_RETRY_WINDOW + 1, &err), 0);
	assert_string_equal(status_of(f, row.subscriber_id, buf), "failed");
	ledger_row_clear(&row);
	assert_int_equal(ledger_backoff(1), 300);
	assert_int_equal(ledger_backoff(2), 900);
	assert_int_equal(ledger_backoff(3), 3600);
	assert_int_equal(ledger_backoff(4), 14400);
	assert_int_equal(ledger_backoff(5), 43200);
	assert_int_equal(ledger_backoff(9), 43200);
	ledger_close(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_db_open_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_snapshot_takes_eligible_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_claim_mark_and_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_deferred_retry_and_window, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
