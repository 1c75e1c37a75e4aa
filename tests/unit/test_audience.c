/*
 * test_audience.c - audience.c: who is in an audience (one list or several,
 * with or without a segment) and how many of them lack each merge field,
 * on a real migrated database.  The audience rule is the one
 * ledger_snapshot() sends to, so the snapshot tests take one and compare,
 * and a reader reached through a second list is claimed, not skipped
 * (ledger.h (6)).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "herald/audience.h"
#include "herald/ledger.h"
#include "herald/segment.h"
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
 * List 3 'research' overlaps list 1: Ada (1) and Bo (2) are confirmed on
 * both, Un (7, unconfirmed on list 1) and Ian (11) only here; the
 * suppressed (10) and blocklisted (9) are confirmed here too and Out (8)
 * is unconfirmed here as well.
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
	        " 'active', 0, 0),"
	        "(11, 'i@y.org', 'i@y.org', 'Ian', '{\"role\":\"sw\"}', 'active', 0, 0);"
	        "INSERT INTO lists (id, name, created_at) VALUES (3, 'research', 0);"
	        "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) VALUES "
	        "(3, 1, 'confirmed', 0), (3, 2, 'confirmed', 0), (3, 7, 'confirmed', 0),"
	        "(3, 11, 'confirmed', 0), (3, 10, 'confirmed', 0), (3, 9, 'confirmed', 0),"
	        "(3, 8, 'unconfirmed', 0);"
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

/* An audience of the lists in ids[0..n) and, when expr is not NULL, that
 * segment. */
static void
make(struct fixture *f, struct audience *a, const long long *ids, size_t n, const char *expr)
{
	struct herr err;
	size_t i;

	memset(a, 0, sizeof *a);
	herr_clear(&err);
	for (i = 0; i < n; i++)
		assert_int_equal(audience_add_list(a, ids[i], &err), 0);
	if (expr && segment_compile(f->db, expr, "test", 1000, &a->seg, &err) < 0)
		fail_msg("%s: %s: %s", expr, err.where, err.msg);
}

static long long
count_of(struct fixture *f, const long long *ids, size_t n, const char *expr)
{
	struct audience a;
	struct herr err;
	long long c = -1;

	make(f, &a, ids, n, expr);
	herr_clear(&err);
	assert_int_equal(audience_count(f->db, &a, &c, &err), 0);
	audience_clear(&a);
	return c;
}

/* audience_each's rows as "id:email:lists;" */
struct seen {
	char text[1024];
	int  n;
};

static int
collect(void *ctx, const struct audience_row *r)
{
	struct seen *s = ctx;
	size_t k = strlen(s->text);

	snprintf(s->text + k, sizeof s->text - k, "%lld:%s:%s;", r->id, r->email, r->lists);
	s->n++;
	return 0;
}

static void
listing(struct fixture *f, const long long *ids, size_t n, const char *expr, struct seen *out)
{
	struct audience a;
	struct herr err;

	memset(out, 0, sizeof *out);
	make(f, &a, ids, n, expr);
	herr_clear(&err);
	assert_int_equal(audience_each(f->db, &a, collect, out, &err), 0);
	audience_clear(&a);
}

/*
 * The query plan of the audience a snapshot takes (two lists, a segment
 * with attribute and engagement terms, sunset on): subscriptions are
 * searched by their primary key or an index, subscribers and suppressions
 * by key, events and deliveries by an index - never a full scan of any
 * table but the one the rows come from.  The plan is printed on failure.
 */
static void plan_check(struct fixture *f, const struct audience *a);

static void
test_audience_query_plan_uses_indexes(void **state)
{
	static const long long ids[] = { 1, 2 };
	struct fixture *f = *state;
	struct audience a;

	/* sunset applies (the filter does not target engagement) ... */
	make(f, &a, ids, 2, "attr.role = \"social worker\" and not bounced_soft_within 30d "
	     "and received 30d");
	audience_set_sunset(365 * 86400LL);
	assert_true(audience_sunset_applies(&a));
	plan_check(f, &a);
	audience_clear(&a);
	/* ... and a segment of engagement terms */
	make(f, &a, ids, 2, "engaged 180d or attr.role = \"social worker\"");
	plan_check(f, &a);
	audience_set_sunset(0);
	audience_clear(&a);
}

static void
plan_check(struct fixture *f, const struct audience *a)
{
	struct buf sql, plan;
	sqlite3_stmt *st;
	int scans = 0;

	buf_init(&sql, 1 << 20);
	buf_init(&plan, 1 << 20);
	assert_int_equal(buf_adds(&sql, "EXPLAIN QUERY PLAN SELECT s.id FROM subscribers s WHERE "),
	                 0);
	assert_int_equal(audience_sql(a, &sql), 0);
	assert_int_equal(sqlite3_prepare_v2(f->db, buf_str(&sql), -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);

		buf_adds(&plan, d);
		buf_addc(&plan, '\n');
		/* "SCAN s" is the rows themselves and json_each the list ids;
		 * any other SCAN without an index reads a whole table */
		if (!strncmp(d, "SCAN ", 5) && strcmp(d, "SCAN s") && !strstr(d, "INDEX"))
			scans++;
	}
	sqlite3_finalize(st);
	if (scans)
		fail_msg("%d full scans in the audience plan:\n%s", scans, buf_str(&plan));
	buf_free(&sql);
	buf_free(&plan);
}

static void
test_audience_one_list(void **state)
{
	struct fixture *f = *state;
	long long news = 1, empty = 2;
	struct seen s;

	assert_int_equal(count_of(f, &news, 1, NULL), 6);
	assert_int_equal(count_of(f, &empty, 1, NULL), 0);
	/* no list at all is nobody, not everybody */
	assert_int_equal(count_of(f, NULL, 0, NULL), 0);
	listing(f, &news, 1, NULL, &s);
	assert_string_equal(s.text, "1:a@x.org:news;2:b@x.org:news;3:c@x.org:news;"
	                            "4:d@x.org:news;5:e@x.org:news;6:f@x.org:news;");
}

/* The union, each person once, with the lists they are reached through in
 * the audience's order. */
static void
test_audience_union_each_person_once(void **state)
{
	struct fixture *f = *state;
	long long both[] = { 1, 3 }, back[] = { 3, 1 }, twice[] = { 1, 3, 1 }, research = 3;
	struct seen s;

	/* six on news, Un and Ian only on research; Ada and Bo once */
	assert_int_equal(count_of(f, both, 2, NULL), 8);
	assert_int_equal(count_of(f, &research, 1, NULL), 4);
	assert_int_equal(count_of(f, twice, 3, NULL), 8);
	listing(f, both, 2, NULL, &s);
	assert_int_equal(s.n, 8);
	assert_string_equal(s.text, "1:a@x.org:news,research;2:b@x.org:news,research;"
	                            "3:c@x.org:news;4:d@x.org:news;5:e@x.org:news;"
	                            "6:f@x.org:news;7:u@x.org:research;11:i@y.org:research;");
	listing(f, back, 2, NULL, &s);
	assert_non_null(strstr(s.text, "1:a@x.org:research,news;"));
}

static void
test_audience_segment_filters(void **state)
{
	struct fixture *f = *state;
	long long both[] = { 1, 3 }, news = 1;
	struct seen s;

	/* role "r": Un (via research) only; Out, Blk and Sup have it too but
	 * are not in the audience */
	listing(f, both, 2, "attr.role = \"r\"", &s);
	assert_string_equal(s.text, "7:u@x.org:research;");
	assert_int_equal(count_of(f, both, 2, "attr.role = \"r\""), 1);
	/* a segment only narrows: on one list, Un is not there */
	assert_int_equal(count_of(f, &news, 1, "attr.role = \"r\""), 0);
	/* sw: Ada (both lists) once, and Ian */
	listing(f, both, 2, "attr.role = \"SW\"", &s);
	assert_string_equal(s.text, "1:a@x.org:news,research;11:i@y.org:research;");
	/* a segment term about lists is about all of them, not the audience's */
	assert_int_equal(count_of(f, both, 2, "not list news"), 2);
	assert_int_equal(count_of(f, both, 2, "email ends_with \"@x.org\""), 7);
}

static void
test_audience_suppressed_excluded(void **state)
{
	struct fixture *f = *state;
	long long both[] = { 1, 3 };
	struct seen s;

	exec_ok(f->db, "INSERT INTO suppressions (pattern, created_at) VALUES ('b@x.org', 0)");
	assert_int_equal(count_of(f, both, 2, NULL), 7);
	listing(f, both, 2, NULL, &s);
	assert_null(strstr(s.text, "b@x.org"));
	assert_null(strstr(s.text, "s@x.org"));
	/* a domain; and the statuses AUDIENCE_SQL_MEMBER leaves out */
	exec_ok(f->db, "INSERT INTO suppressions (pattern, created_at) VALUES ('@y.org', 0);"
	               "UPDATE subscribers SET status = 'bounced' WHERE id = 1;"
	               "UPDATE subscribers SET status = 'complained' WHERE id = 3;");
	listing(f, both, 2, NULL, &s);
	assert_string_equal(s.text, "4:d@x.org:news;5:e@x.org:news;6:f@x.org:news;"
	                            "7:u@x.org:research;");
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

	struct audience a;
	long long news = 1;

	make(f, &a, &news, 1, NULL);
	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, &a, g, 5, &total, &err), 0);
	audience_clear(&a);
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

	struct audience a;
	long long news = 1;

	make(f, &a, &news, 1, NULL);
	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, &a, g, 2, &total, &err), 0);
	audience_clear(&a);
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

	struct audience a;
	long long empty = 2;

	make(f, &a, &empty, 1, NULL);
	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, &a, g, 1, &total, &err), 0);
	audience_clear(&a);
	assert_int_equal(total, 0);
	assert_int_equal(g[0].missing, 0);
	assert_string_equal(g[0].suggest, "");
}

/* The gaps of a filtered union: only its people count. */
static void
test_audience_field_gaps_of_union_and_segment(void **state)
{
	struct fixture *f = *state;
	struct audience_gap g[2] = { { .field = "attr.organisation" }, { .field = "name" } };
	long long both[] = { 1, 3 }, total = -1;
	struct audience a;
	struct herr err;

	make(f, &a, both, 2, "attr.role in (\"sw\", \"r\")");
	herr_clear(&err);
	assert_int_equal(audience_field_gaps(f->db, &a, g, 2, &total, &err), 0);
	audience_clear(&a);
	/* Ada, Un, Ian: only Ada has an organisation, all have a name */
	assert_int_equal(total, 3);
	assert_int_equal(g[0].missing, 2);
	assert_int_equal(g[1].missing, 0);
}

/* What the checks count is whom the send snapshots. */
static void
test_audience_matches_snapshot(void **state)
{
	struct fixture *f = *state;
	long long n = -1, total = -1, news = 1;
	struct audience a;
	struct herr err;

	herr_clear(&err);
	exec_ok(f->db, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, "
	               "text, created_at) VALUES (1, 1, 's', 'n@x.org', '', '', '', 0)");
	make(f, &a, &news, 1, NULL);
	assert_int_equal(audience_field_gaps(f->db, &a, NULL, 0, &total, &err), 0);
	assert_int_equal(ledger_snapshot(f->db, 1, &a, &n, &err), 0);
	audience_clear(&a);
	assert_int_equal(n, total);
}

static int
fake_mid(void *ctx, long long sub, char *out, size_t n)
{
	(void)ctx;
	snprintf(out, n, "<%lld@test>", sub);
	return 0;
}

/* Two lists and a segment: the snapshot is the listing, each person once,
 * and the one reached only through the second list is claimed, not
 * skipped as "gone" (ledger.h (6) asks about all the lists). */
static void
test_audience_snapshot_of_union_is_claimed(void **state)
{
	struct fixture *f = *state;
	long long both[] = { 1, 3 }, n = -1, claimed[8];
	struct ledger_row row;
	struct ledger *l;
	struct audience a;
	struct herr err;
	struct seen s;
	size_t k = 0;
	int rc;

	herr_clear(&err);
	/* the trigger of sql/009 puts list 1 at position 0 */
	exec_ok(f->db, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, "
	               "text, created_at) VALUES (1, 1, 's', 'n@x.org', '', '', '', 0);"
	               "INSERT INTO issue_lists (issue_id, list_id, position) VALUES (1, 3, 1);");
	make(f, &a, both, 2, "attr.role in (\"sw\", \"r\") or name = \"Bo\"");
	assert_int_equal(ledger_snapshot(f->db, 1, &a, &n, &err), 0);
	audience_clear(&a);
	listing(f, both, 2, "attr.role in (\"sw\", \"r\") or name = \"Bo\"", &s);
	assert_string_equal(s.text, "1:a@x.org:news,research;2:b@x.org:news,research;"
	                            "7:u@x.org:research;11:i@y.org:research;");
	assert_int_equal(n, 4);
	assert_int_equal(ledger_open(f->db, 1, &l, &err), 0);
	while ((rc = ledger_claim(l, 1000, fake_mid, NULL, &row, &err)) == 1) {
		assert_true(k < 8);
		claimed[k++] = row.subscriber_id;
		ledger_row_clear(&row);
	}
	assert_int_equal(rc, 0);
	ledger_close(l);
	assert_int_equal(k, 4);
	assert_true(claimed[0] == 1 && claimed[1] == 2 && claimed[2] == 7 && claimed[3] == 11);
}

/* (6) across lists: gone from every list of the issue is skipped; gone
 * from one of two is still a reader. */
static void
test_audience_claim_skips_only_the_gone(void **state)
{
	struct fixture *f = *state;
	long long both[] = { 1, 3 }, n;
	struct ledger_row row;
	struct ledger *l;
	struct audience a;
	struct herr err;
	int rc, k = 0;

	herr_clear(&err);
	exec_ok(f->db, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, "
	               "text, created_at) VALUES (1, 1, 's', 'n@x.org', '', '', '', 0);"
	               "INSERT INTO issue_lists (issue_id, list_id, position) VALUES (1, 3, 1);");
	make(f, &a, both, 2, "name = \"Ada\" or name = \"Ian\"");
	assert_int_equal(ledger_snapshot(f->db, 1, &a, &n, &err), 0);
	audience_clear(&a);
	assert_int_equal(n, 2);
	/* Ada leaves news (still on research); Ian leaves research, his only */
	exec_ok(f->db, "UPDATE subscriptions SET status = 'unsubscribed' WHERE "
	               "(list_id = 1 AND subscriber_id = 1) OR (list_id = 3 AND subscriber_id = 11)");
	assert_int_equal(ledger_open(f->db, 1, &l, &err), 0);
	while ((rc = ledger_claim(l, 1000, fake_mid, NULL, &row, &err)) == 1) {
		assert_true(row.subscriber_id == 1);
		ledger_row_clear(&row);
		k++;
	}
	ledger_close(l);
	assert_int_equal(rc, 0);
	assert_int_equal(k, 1);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT status FROM deliveries WHERE "
		                                    "issue_id = 1 AND subscriber_id = 11", -1, &st,
		                                    NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "skipped");
		sqlite3_finalize(st);
	}
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
		cmocka_unit_test_setup_teardown(test_audience_one_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_query_plan_uses_indexes, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_audience_union_each_person_once, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_audience_segment_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_suppressed_excluded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audience_field_gaps_of_union_and_segment, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_audience_snapshot_of_union_is_claimed, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_audience_claim_skips_only_the_gone, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
