/*
 * test_engagement.c - engagement.c and the sunset rule in audience.c, on a
 * real migrated database: the last human open, click and issue of a
 * subscriber (engagement.h (2): machine opens ignored), who is unengaged
 * (3), that the audience leaves exactly them out when sunset_after is set,
 * that an audience whose filter has an `engaged` term (a re-engagement
 * issue) reaches them, and what audience_record() keeps for stats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "herald/audience.h"
#include "herald/db.h"
#include "herald/engagement.h"
#include "herald/ledger.h"
#include "herald/segment.h"
#include "tempdb.h"

#define DAY  86400LL
#define NOW  1800000000LL
#define SPAN (365 * DAY)

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

static void
execf(sqlite3 *db, const char *fmt, ...)
{
	char *sql;
	va_list ap;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_non_null(sql);
	exec_ok(db, sql);
	sqlite3_free(sql);
}

/*
 * List 1 'news', everyone confirmed.  Issue 1 went out 400 days before NOW,
 * issue 2 100 days before; issue 3 is the one the tests send.
 *   1 Ada  both issues, a human open of issue 2 50 days ago     engaged
 *   2 Bo   both issues, only machine opens: one flagged by the server
 *          (ua machine) 50 days ago, one a second after issue 2
 *          arrived (a scanner)                                  UNENGAGED
 *   3 Cy   both issues, a click 30 days ago (no open at all)     engaged
 *   4 Di   only issue 2: not yet mailed for the whole span       kept
 *   5 Ed   only issue 1: nothing sent within the span            kept
 *   6 Fi   both issues, a human open 380 days ago (before it)    UNENGAGED
 *   7 Gu   both issues, unengaged, but on list 2 only            -
 */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	long long t1 = NOW - 400 * DAY, t2 = NOW - 100 * DAY;

	if (!f || tempdb_open(f->path, "engagement", &f->db) < 0)
		return -1;
	exec_ok(f->db,
	        "INSERT INTO lists (id, name, title, created_at) VALUES (1, 'news', 'The News', 0),"
	        " (2, 'other', '', 0);"
	        "INSERT INTO subscribers (id, email, email_key, name, created_at, updated_at) VALUES "
	        "(1, 'ada@x.org', 'ada@x.org', 'Ada', 0, 0), (2, 'bo@x.org', 'bo@x.org', 'Bo', 0, 0),"
	        "(3, 'cy@x.org', 'cy@x.org', 'Cy', 0, 0), (4, 'di@x.org', 'di@x.org', 'Di', 0, 0),"
	        "(5, 'ed@x.org', 'ed@x.org', 'Ed', 0, 0), (6, 'fi@x.org', 'fi@x.org', 'Fi', 0, 0),"
	        "(7, 'gu@x.org', 'gu@x.org', 'Gu', 0, 0);"
	        "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) VALUES "
	        "(1, 1, 'confirmed', 0), (1, 2, 'confirmed', 0), (1, 3, 'confirmed', 0),"
	        "(1, 4, 'confirmed', 0), (1, 5, 'confirmed', 0), (1, 6, 'confirmed', 0),"
	        "(2, 7, 'confirmed', 0);"
	        "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, status,"
	        " created_at) VALUES (1, 1, 'First', 'n@x.org', '', '', '', 'sent', 0),"
	        " (2, 1, 'Second', 'n@x.org', '', '', '', 'sent', 0),"
	        " (3, 1, 'Third', 'n@x.org', '', '', '', 'draft', 0);");
	execf(f->db, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
	      "updated_at, sent_at) VALUES "
	      "(1, 1, 'sent', 0, 0, %lld), (2, 1, 'sent', 0, 0, %lld),"
	      "(1, 2, 'sent', 0, 0, %lld), (2, 2, 'sent', 0, 0, %lld),"
	      "(1, 3, 'sent', 0, 0, %lld), (2, 3, 'sent', 0, 0, %lld),"
	      "(2, 4, 'sent', 0, 0, %lld), (1, 5, 'sent', 0, 0, %lld),"
	      "(1, 6, 'sent', 0, 0, %lld), (2, 6, 'sent', 0, 0, %lld),"
	      "(1, 7, 'sent', 0, 0, %lld), (2, 7, 'sent', 0, 0, %lld)",
	      t1, t2, t1, t2, t1, t2, t2, t1, t1, t2, t1, t2);
	execf(f->db, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) VALUES "
	      "('open', 2, 1, 1, %lld, '{}'),"
	      "('open', 2, 2, 1, %lld, '{\"ua\":\"machine\"}'),"
	      "('open', 2, 2, 1, %lld, '{}'),"
	      "('click', 2, 3, 1, %lld, '{\"n\":1}'),"
	      "('open', 1, 6, 1, %lld, '{}')",
	      NOW - 50 * DAY, NOW - 50 * DAY + 7, t2 + 1, NOW - 30 * DAY, NOW - 380 * DAY);
	db_set_now(NOW);
	audience_set_sunset(0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	audience_set_sunset(0);
	db_set_now(0);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static void
test_engagement_get_ignores_machine_opens(void **state)
{
	struct fixture *f = *state;
	struct engagement e = ENGAGEMENT_INIT;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(engagement_get(f->db, 1, SPAN, NOW, &e, &err), 0);
	assert_int_equal(e.last_open_at, NOW - 50 * DAY);
	assert_int_equal(e.last_open_issue, 2);
	assert_int_equal(e.last_click_at, 0);
	assert_int_equal(e.last_sent_at, NOW - 100 * DAY);
	assert_int_equal(e.last_sent_issue, 2);
	assert_string_equal(e.last_sent_subject, "Second");
	assert_int_equal(e.unengaged, 0);
	engagement_clear(&e);

	/* Bo's two opens are machine opens (flagged; a second after arrival) */
	assert_int_equal(engagement_get(f->db, 2, SPAN, NOW, &e, &err), 0);
	assert_int_equal(e.last_open_at, 0);
	assert_int_equal(e.last_click_at, 0);
	assert_int_equal(e.unengaged, 1);
	engagement_clear(&e);

	assert_int_equal(engagement_get(f->db, 3, SPAN, NOW, &e, &err), 0);
	assert_int_equal(e.last_open_at, 0);
	assert_int_equal(e.last_click_at, NOW - 30 * DAY);
	assert_int_equal(e.last_click_issue, 2);
	assert_int_equal(e.unengaged, 0);
	engagement_clear(&e);

	/* sunset off: nobody is unengaged */
	assert_int_equal(engagement_get(f->db, 2, 0, NOW, &e, &err), 0);
	assert_int_equal(e.unengaged, 0);
	engagement_clear(&e);
}

struct ids {
	long long id[16];
	size_t    n;
};

static int
collect(void *ctx, const struct engagement_row *r)
{
	struct ids *ids = ctx;

	if (ids->n < 16)
		ids->id[ids->n++] = r->id;
	return 0;
}

static void
test_engagement_each_unengaged_exactly(void **state)
{
	struct fixture *f = *state;
	struct ids ids = { { 0 }, 0 };
	struct herr err;

	herr_clear(&err);
	assert_int_equal(engagement_each_unengaged(f->db, SPAN, NOW, collect, &ids, &err), 0);
	assert_int_equal(ids.n, 3);
	assert_int_equal(ids.id[0], 2);
	assert_int_equal(ids.id[1], 6);
	assert_int_equal(ids.id[2], 7); /* every active subscriber, whatever list */
	/* nothing was sent in the last 20 days: nobody is unengaged over them */
	ids.n = 0;
	assert_int_equal(engagement_each_unengaged(f->db, 20 * DAY, NOW, collect, &ids, &err), 0);
	assert_int_equal(ids.n, 0);
	/* over exactly 100 days Di has been mailed the whole span (both ends
	 * inclusive, as segment.h (5)); Ada (open 50 days ago) and Cy (click
	 * 30 days ago) engaged within it */
	ids.n = 0;
	assert_int_equal(engagement_each_unengaged(f->db, 100 * DAY, NOW, collect, &ids, &err), 0);
	assert_int_equal(ids.n, 4);
	assert_int_equal(ids.id[0], 2);
	assert_int_equal(ids.id[1], 4);
	assert_int_equal(ids.id[2], 6);
	assert_int_equal(ids.id[3], 7);
}

/* The `engaged` term of segments: the same rule (machine opens ignored). */
static void
test_segment_engaged_ignores_machine_opens(void **state)
{
	struct fixture *f = *state;
	struct segment *seg;
	struct herr err;
	long long n;

	herr_clear(&err);
	assert_int_equal(segment_compile(f->db, "engaged 365d", NULL, NOW, &seg, &err), 0);
	assert_true(segment_targets_engagement(seg));
	assert_int_equal(segment_count(f->db, seg, 1, &n, &err), 0);
	assert_int_equal(n, 2); /* Ada, Cy */
	segment_free(seg);
	assert_int_equal(segment_compile(f->db, "received 365d", NULL, NOW, &seg, &err), 0);
	assert_false(segment_targets_engagement(seg));
	segment_free(seg);
}

static void
make(struct fixture *f, struct audience *a, const char *expr)
{
	struct herr err;

	memset(a, 0, sizeof *a);
	herr_clear(&err);
	assert_int_equal(audience_add_list(a, 1, &err), 0);
	if (expr && segment_compile(f->db, expr, "test", NOW, &a->seg, &err) < 0)
		fail_msg("%s: %s: %s", expr, err.where, err.msg);
}

static void
test_audience_sunset_leaves_out_exactly_the_unengaged(void **state)
{
	struct fixture *f = *state;
	struct audience a;
	struct herr err;
	long long n, out;

	herr_clear(&err);
	make(f, &a, NULL);
	assert_int_equal(audience_count(f->db, &a, &n, &err), 0);
	assert_int_equal(n, 6); /* off by default: everyone on the list */
	assert_int_equal(audience_count_unengaged(f->db, &a, &out, &err), 0);
	assert_int_equal(out, 0);

	audience_set_sunset(SPAN);
	assert_true(audience_sunset_applies(&a));
	assert_int_equal(audience_count(f->db, &a, &n, &err), 0);
	assert_int_equal(n, 4); /* Ada, Cy, Di, Ed */
	assert_int_equal(audience_count_unengaged(f->db, &a, &out, &err), 0);
	assert_int_equal(out, 2); /* Bo, Fi (Gu is not on the list) */
	audience_clear(&a);

	/* a segment that does not mention engagement: the rule still applies */
	make(f, &a, "name != \"Ada\"");
	assert_true(audience_sunset_applies(&a));
	assert_int_equal(audience_count(f->db, &a, &n, &err), 0);
	assert_int_equal(n, 3);
	audience_clear(&a);
	audience_set_sunset(0);
}

/* A re-engagement issue (`where: not engaged 365d`) reaches the unengaged. */
static void
test_audience_sunset_reengagement_reaches_them(void **state)
{
	struct fixture *f = *state;
	struct audience a;
	struct herr err;
	long long n, out;

	herr_clear(&err);
	audience_set_sunset(SPAN);
	make(f, &a, "not engaged 365d and received 365d");
	assert_false(audience_sunset_applies(&a));
	assert_int_equal(audience_count(f->db, &a, &n, &err), 0);
	assert_int_equal(n, 3); /* Bo, Di, Fi: not engaged, sent something */
	assert_int_equal(audience_count_unengaged(f->db, &a, &out, &err), 0);
	assert_int_equal(out, 0);
	audience_clear(&a);
	audience_set_sunset(0);
}

/* The snapshot and the record agree: who was left out, and why. */
static void
test_audience_record_keeps_definition_and_count(void **state)
{
	struct fixture *f = *state;
	struct audience a;
	struct audience_sent s;
	struct herr err;
	long long n;

	herr_clear(&err);
	audience_set_sunset(SPAN);
	exec_ok(f->db, "INSERT INTO segments (name, expr, created_at, updated_at) VALUES "
	        "('named', 'name != \"\"', 0, 0)");
	make(f, &a, "name != \"\"");
	assert_int_equal(ledger_snapshot(f->db, 3, &a, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(audience_record(f->db, 3, &a, "named", NULL, &err), 0);
	/* the segment changes later; the record keeps what was sent */
	exec_ok(f->db, "UPDATE segments SET expr = 'name = \"Ada\"' WHERE name = 'named'");
	assert_int_equal(audience_sent_get(f->db, 3, &s, &err), 0);
	assert_int_equal(s.found, 1);
	assert_string_equal(s.lists, "[\"news\"]");
	assert_string_equal(s.segment, "named");
	assert_string_equal(s.expr, "name != \"\"");
	assert_int_equal(s.sunset_after, SPAN);
	assert_int_equal(s.sunset_skipped, 0);
	assert_int_equal(s.unengaged, 2);
	audience_clear(&a);
	assert_int_equal(audience_sent_get(f->db, 2, &s, &err), 0);
	assert_int_equal(s.found, 0);
	audience_set_sunset(0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engagement_get_ignores_machine_opens),
		cmocka_unit_test(test_engagement_each_unengaged_exactly),
		cmocka_unit_test(test_segment_engaged_ignores_machine_opens),
		cmocka_unit_test(test_audience_sunset_leaves_out_exactly_the_unengaged),
		cmocka_unit_test(test_audience_sunset_reengagement_reaches_them),
		cmocka_unit_test(test_audience_record_keeps_definition_and_count),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
