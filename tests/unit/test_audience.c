/*
 * test_audience.c - audience.c: who counts as a recipient of a list, and
 * how many of them lack each merge field, on a real migrated database.
 * The audience rule is the one ledger_snapshot() sends to, so the last
 * test takes a snapshot and compares.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "herald/audience.h"
#include "herald/ledger.h"
#include "tempdb.h"

struct fixture {
	char     path[TEMPDB_PATH_MAX];
	sqlite3 *db;
};

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

/*
 * List 1: six confirmed readers and one of each kind that is not in the
 * audience (unconfirmed, unsubscribed, blocklisted, suppressed), each of
 * those with every field, so counting them would show.  List 2 is empty.
 */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f || tempdb_open(f->path, "audience", &f->db) < 0)
		return -1;
	exec_ok(f->db,
	        "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0), (2, 'empty', 0);"
	        "INSERT INTO subscribers (id, email, email_key, name, attributes, status, "
	        "created_at, updated_at) VALUES "
	        "(1, 'a@x.org', 'a@x.org', 'Ada', '{\"organisation\":\"Lambeth\",\"role\":\"sw\"}',"
	        " 'active', 0, 0),"
	        "(2, 'b@x.org', 'b@x.org', 'Bo', '{\"organisation\":\"Leeds\",\"a.b\\\"c\":\"q\"}',"
	        " 'active', 0, 0),"
	        "(3, 'c@x.org', 'c@x.org', '  ', '{\"organisation\":\"\",\"role\":\"tm\"}',"
	        " 'active', 0, 0),"
	        "(4, 'd@x.org', 'd@x.org', '', '{\"organisation\":42,\"role\":\"x\"}',"
	        " 'active', 0, 0),"
	        "(5, 'e@x.org', 'e@x.org', 'Eve', '{\"organisation\":\"Hull\"}', 'active', 0, 0),"
	        "(6, 'f@x.org', 'f@x.org', 'Fay', '{}', 'active', 0, 0),"
	        "(7, 'u@x.org', 'u@x.org', 'Un', '{\"organization\":\"U\",\"role\":\"r\"}',"
	        " 'active', 0, 0),"
	        "(8, 'o@x.org', 'o@x.org', 'Out', '{\"organization\":\"O\",\"role\":\"r\"}',"
	        " 'active', 0, 0),"
	        "(9, 'k@x.org', 'k@x.org', 'Blk', '{\"organization\":\"K\",\"role\":\"r\"}',"
	        " 'blocklisted', 0, 0),"
	        "(10, 's@x.org', 's@x.org', 'Sup', '{\"organization\":\"S\",\"role\":\"r\"}',"
	        " 'active', 0, 0);"
	        "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) VALUES "
	        "(1, 1, 'confirmed', 0), (1, 2, 'confirmed', 0), (1, 3, 'confirmed', 0),"
	        "(1, 4, 'confirmed', 0), (1, 5, 'confirmed', 0), (1, 6, 'confirmed', 0),"
	        "(1, 7, 'unconfirmed', 0), (1, 8, 'unsubscribed', 0), (1, 9, 'confirmed', 0),"
	        "(1, 10, 'confirmed', 0);"
	        "INSERT INTO suppressions (pattern, created_at) VALUES ('s@x.org', 0);");
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

static void
test_audience_field_gaps_counts(void **state)
{
	struct fixture *f = *state;
	struct audience_gap g[5] = {
		{ .field = "name" },
		{ .field = "first_name" },
		{ .field = "attr.organisation" },
		{ .field = "attr.role" },
		{ .field = "attr.a.b\"c" },
	};
	long long total = -1;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, 1, g, 5, &total, &err), 0);
	assert_int_equal(total, 6);
	assert_int_equal(g[0].missing, 2);   /* "  " and "" */
	assert_int_equal(g[1].missing, 2);
	/* "" and the number 42 print nothing; {} lacks it */
	assert_int_equal(g[2].missing, 3);
	assert_int_equal(g[3].missing, 3);
	/* a key with a dot and a quote is a key, not a JSON path */
	assert_int_equal(g[4].missing, 5);
}

static void
test_audience_field_gaps_suggests_the_key_they_have(void **state)
{
	struct fixture *f = *state;
	struct audience_gap g[2] = { { .field = "attr.organization" }, { .field = "attr.rle" } };
	long long total;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, 1, g, 2, &total, &err), 0);
	assert_int_equal(g[0].missing, 6);
	/* the outsiders had "organization": only the audience's keys count */
	assert_string_equal(g[0].suggest, "organisation");
	assert_int_equal(g[0].suggest_have, 3);
	assert_string_equal(g[1].suggest, "role");
	assert_int_equal(g[1].suggest_have, 3);
}

static void
test_audience_field_gaps_empty_list(void **state)
{
	struct fixture *f = *state;
	struct audience_gap g[1] = { { .field = "attr.organisation" } };
	long long total = -1;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, 2, g, 1, &total, &err), 0);
	assert_int_equal(total, 0);
	assert_int_equal(g[0].missing, 0);
	assert_string_equal(g[0].suggest, "");
}

/* What the checks count is whom the send snapshots. */
static void
test_audience_matches_snapshot(void **state)
{
	struct fixture *f = *state;
	long long n = -1, total = -1;
	struct herr err;

	herr_clear(&err);
	exec_ok(f->db, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, "
	               "text, created_at) VALUES (1, 1, 's', 'n@x.org', '', '', '', 0)");
	assert_int_equal(audience_field_gaps(f->db, 1, NULL, 0, &total, &err), 0);
	assert_int_equal(ledger_snapshot(f->db, 1, 1, &n, &err), 0);
	assert_int_equal(n, total);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_audience_field_gaps_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_field_gaps_suggests_the_key_they_have,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_field_gaps_empty_list, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_audience_matches_snapshot, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
