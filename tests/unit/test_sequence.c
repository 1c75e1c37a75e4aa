/*
 * test_sequence.c - sequences (src/sequence.c), on a fresh migrated
 * database per test, with the clock set by db_set_now().
 *
 * Covers the pure helpers (delays, HH:MM, zone names, due times across a
 * DST change, against UTC offsets worked out by hand) and the rules of
 * sequence.h, each through sequence_enqueue_due():
 *   (1) one deliveries row per subscriber per step: a second pass at the
 *       same time, or a later one, adds nothing; `passed` moves with it;
 *   (2) several steps due at once: only the latest is queued;
 *   (3) an unsubscribed subscriber leaves when the next step falls due;
 *   (4) a step added after someone's point has passed is not theirs;
 *   (5) a paused sequence queues nothing; resumed, it goes on;
 * a step whose issue was cancelled goes to nobody (passed over); and the
 * refusals: a step's front matter naming a list, a second step at the
 * same delay, --backfill without --include-existing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixturefile.h"
#include "tempdb.h"

#include "herald/address.h"
#include "herald/config.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/sequence.h"
#include "herald/subscriber.h"

#define CONF \
	"[database]\npath = herald.db\n" \
	"[smtp]\nurl = smtp://127.0.0.1:2525\nstarttls = never\n" \
	"[sender]\nfrom = The News Team <news@example.org>\n" \
	"postal_address = 1 Example Street\n" \
	"[web]\nbase_url = https://news.example.org\n" \
	"[sequences]\ntimezone = Europe/London\n"

#define DAY 86400LL
#define T0  1798761600LL /* 2027-01-01T00:00:00Z */

struct fixture {
	char      dir[64];
	char      conf[128], md[128], bad[128];
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	struct config cfg;
	struct list news;
};

static long long
count(struct fixture *f, const char *sql, long long a)
{
	return query_number(f->db, sql, a);
}

static long long
rows(struct fixture *f, long long issue)
{
	return count(f, "SELECT count(*) FROM deliveries WHERE issue_id = ?1", issue);
}

static long long
join(struct fixture *f, const char *addr, long long at)
{
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;

	db_set_now(at);
	assert_int_equal(address_parse(addr, &a, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.source = SIGNUP_ADMIN;
	if (subscriber_signup(f->db, &f->news, &r, &res, &err) < 0)
		fail_msg("%s: %s", addr, err.msg);
	return res.subscriber_id;
}

static long long
step(struct fixture *f, const char *seq, const char *after, long long at)
{
	struct herr err;
	long long delay, id;

	db_set_now(at);
	assert_int_equal(sequence_parse_delay(after, &delay, &err), 0);
	if (sequence_add_step(f->db, &f->cfg, seq, f->md, delay, -1, NULL, NULL, &id, &err) < 0)
		fail_msg("add %s: %s", after, err.msg);
	return id;
}

static struct sequence_run
pass(struct fixture *f, long long at)
{
	struct sequence_run rep;
	struct herr err;

	db_set_now(at);
	if (sequence_enqueue_due(f->db, &f->cfg, at, &rep, &err) < 0)
		fail_msg("enqueue: %s", err.msg);
	return rep;
}

static void
create(struct fixture *f, const char *name, long long at)
{
	struct sequence_new n;
	struct herr err;

	db_set_now(at);
	memset(&n, 0, sizeof n);
	n.name = name;
	n.list_name = "news";
	if (sequence_create(f->db, &n, NULL, NULL, &err) < 0)
		fail_msg("create: %s", err.msg);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;
	long long id;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/herald-sequence-XXXXXX");
	if (!mkdtemp(f->dir) || tempdb_open(f->path, "sequence", &f->db) < 0)
		return -1;
	*state = f;
	write_text(f->conf, sizeof f->conf, f->dir, "herald.conf", CONF);
	write_text(f->md, sizeof f->md, f->dir, "step.md",
	           "---\nsubject: A step for {{name|you}}\n---\n\nHello.\n");
	if (config_load(f->conf, &f->cfg, &err) < 0)
		fail_msg("config: %s", err.msg);
	db_set_now(T0 - DAY);
	if (list_create(f->db, "news", "The News", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0)
		fail_msg("list: %s", err.msg);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	db_set_now(0);
	config_free(&f->cfg);
	unlink(f->conf);
	unlink(f->md);
	if (f->bad[0])
		unlink(f->bad);
	rmdir(f->dir);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static void
test_sequence_parse_delay_and_time(void **state)
{
	struct herr err;
	long long d;
	int m;
	char out[16];

	(void)state;
	assert_int_equal(sequence_parse_delay("0d", &d, &err), 0);
	assert_int_equal(d, 0);
	assert_int_equal(sequence_parse_delay("3d", &d, &err), 0);
	assert_int_equal(d, 3 * DAY);
	assert_int_equal(sequence_parse_delay("2w", &d, &err), 0);
	assert_int_equal(d, 14 * DAY);
	assert_int_equal(sequence_parse_delay("-14d", &d, &err), 0);
	assert_int_equal(d, -14 * DAY);
	assert_int_equal(sequence_parse_delay("90m", &d, &err), 0);
	assert_int_equal(d, 5400);
	assert_int_equal(sequence_parse_delay("3", &d, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(sequence_parse_delay("3dd", &d, &err), -1);
	assert_int_equal(sequence_parse_delay("d", &d, &err), -1);
	assert_int_equal(sequence_parse_delay("9999999d", &d, &err), -1);
	assert_int_equal(sequence_parse_at_local("09:00", &m, &err), 0);
	assert_int_equal(m, 540);
	assert_int_equal(sequence_parse_at_local("23:59", &m, &err), 0);
	assert_int_equal(m, 1439);
	assert_int_equal(sequence_parse_at_local("24:00", &m, &err), -1);
	assert_int_equal(sequence_parse_at_local("9:00", &m, &err), -1);
	sequence_format_delay(-14 * DAY, out, sizeof out);
	assert_string_equal(out, "-14d");
	sequence_format_delay(12 * 3600, out, sizeof out);
	assert_string_equal(out, "12h");
}

static void
test_sequence_zone_valid(void **state)
{
	(void)state;
	assert_true(sequence_zone_valid("UTC"));
	assert_true(sequence_zone_valid("Europe/London"));
	assert_true(sequence_zone_valid("America/New_York"));
	assert_false(sequence_zone_valid("Mars/Olympus"));
	assert_false(sequence_zone_valid("../../etc/passwd"));
	assert_false(sequence_zone_valid("/etc/localtime"));
	assert_false(sequence_zone_valid("EST5EDT,M3.2.0,M11.1.0"));
	assert_false(sequence_zone_valid(""));
}

static void
test_sequence_due_at_local_times(void **state)
{
	/* 2027-03-28 is the day Europe/London moves to BST at 01:00 UTC */
	const long long mar27 = 1806105600LL, mar28 = mar27 + DAY;
	char before[256], after[256];

	(void)state;
	snprintf(before, sizeof before, "%s", getenv("TZ") ? getenv("TZ") : "(unset)");
	assert_int_equal(sequence_due_at(T0, 3 * DAY, -1, "UTC"), T0 + 3 * DAY);
	/* 09:00 GMT the same day, before it */
	assert_int_equal(sequence_due_at(mar27 + 3600, 0, 540, "Europe/London"), mar27 + 9 * 3600);
	/* after 09:00: the next day, now BST, so 08:00 UTC */
	assert_int_equal(sequence_due_at(mar27 + 10 * 3600, 0, 540, "Europe/London"),
	                 mar28 + 8 * 3600);
	/* New York (EST, -5) and Tokyo (+9) on 2027-01-01 */
	assert_int_equal(sequence_due_at(T0, 0, 540, "America/New_York"), T0 + 14 * 3600);
	assert_int_equal(sequence_due_at(T0, 0, 540, "Asia/Tokyo"), T0); /* 09:00 JST */
	assert_int_equal(sequence_due_at(T0 + 1, 0, 540, "Asia/Tokyo"), T0 + DAY);
	/* exactly at 09:00 is at it, not the next day */
	assert_int_equal(sequence_due_at(T0 + 9 * 3600, 0, 540, "UTC"), T0 + 9 * 3600);
	/* a negative delay: two weeks before */
	assert_int_equal(sequence_due_at(T0 + 14 * DAY, -14 * DAY, 540, "UTC"), T0 + 9 * 3600);
	/* back and forth between zones, then the process's own again */
	assert_int_equal(sequence_due_at(T0, 0, 540, "America/New_York"), T0 + 14 * 3600);
	sequence_local_reset();
	snprintf(after, sizeof after, "%s", getenv("TZ") ? getenv("TZ") : "(unset)");
	assert_string_equal(after, before);
}

static void
test_sequence_once_per_step_and_passed(void **state)
{
	struct fixture *f = *state;
	struct sequence_run r;
	long long s0, s3, a;

	create(f, "on", T0);
	s0 = step(f, "on", "0d", T0);
	s3 = step(f, "on", "3d", T0);
	a = join(f, "a@example.net", T0 + 100);
	r = pass(f, T0 + 99);
	assert_int_equal(r.enrolled, 1);
	assert_int_equal(r.queued, 0); /* their start is a second away */
	r = pass(f, T0 + 100);
	assert_int_equal(r.enrolled, 0);
	assert_int_equal(r.queued, 1);
	assert_int_equal(rows(f, s0), 1);
	/* (1): again at the same time, and later before the next step */
	assert_int_equal(pass(f, T0 + 100).queued, 0);
	assert_int_equal(pass(f, T0 + 3 * DAY + 99).queued, 0);
	assert_int_equal(rows(f, s0), 1);
	assert_int_equal(count(f, "SELECT passed FROM sequence_enrolments WHERE subscriber_id = ?1",
	                       a), 0);
	assert_int_equal(pass(f, T0 + 3 * DAY + 100).queued, 1);
	assert_int_equal(rows(f, s3), 1);
	assert_int_equal(count(f, "SELECT passed FROM sequence_enrolments WHERE subscriber_id = ?1",
	                       a), 3 * DAY);
	assert_int_equal(pass(f, T0 + 30 * DAY).queued, 0);
	assert_int_equal(rows(f, s0) + rows(f, s3), 2);
	/* the step issues went back to sending for their rows (issue.h (6)) */
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE id = ?1 AND kind = 'welcome' "
	                       "AND status = 'sending'", s3), 1);
}

static void
test_sequence_latest_due_only(void **state)
{
	struct fixture *f = *state;
	struct sequence_run r;
	long long s0, s1, s2;

	create(f, "on", T0);
	s0 = step(f, "on", "0d", T0);
	s1 = step(f, "on", "1d", T0);
	s2 = step(f, "on", "2d", T0);
	join(f, "a@example.net", T0 + 100);
	/* (2): no pass until day 1.5: 0d and 1d both due, only 1d goes */
	r = pass(f, T0 + DAY + DAY / 2);
	assert_int_equal(r.queued, 1);
	assert_int_equal(rows(f, s0), 0);
	assert_int_equal(rows(f, s1), 1);
	assert_int_equal(pass(f, T0 + 2 * DAY + 100).queued, 1);
	assert_int_equal(rows(f, s2), 1);
}

static void
test_sequence_unsubscribed_leaves(void **state)
{
	struct fixture *f = *state;
	struct sequence_run r;
	struct herr err;
	long long s3, a;

	create(f, "on", T0);
	step(f, "on", "0d", T0);
	s3 = step(f, "on", "3d", T0);
	a = join(f, "a@example.net", T0 + 100);
	join(f, "b@example.net", T0 + 100);
	assert_int_equal(pass(f, T0 + 100).queued, 2);
	db_set_now(T0 + DAY);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, a, "cli", &err), 0);
	r = pass(f, T0 + 3 * DAY + 100);
	assert_int_equal(r.queued, 1);
	assert_int_equal(r.left, 1);
	assert_int_equal(rows(f, s3), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM sequence_enrolments WHERE subscriber_id = ?1 "
	                       "AND state = 'left' AND left_reason = 'unsubscribed'", a), 1);
}

static void
test_sequence_step_added_later(void **state)
{
	struct fixture *f = *state;
	struct sequence_stats st;
	struct herr err;
	long long s2;

	create(f, "on", T0);
	step(f, "on", "0d", T0);
	step(f, "on", "5d", T0);
	join(f, "early@example.net", T0 + 100);
	join(f, "late@example.net", T0 + 2 * DAY);
	pass(f, T0 + 100);
	pass(f, T0 + 2 * DAY);
	/* day 3: early is past day 2, late is not */
	s2 = step(f, "on", "2d", T0 + 3 * DAY);
	assert_int_equal(pass(f, T0 + 3 * DAY + 10).queued, 0);
	assert_int_equal(pass(f, T0 + 4 * DAY).queued, 1);
	assert_int_equal(rows(f, s2), 1);
	assert_int_equal(count(f, "SELECT d.subscriber_id FROM deliveries d JOIN subscribers s ON "
	                       "s.id = d.subscriber_id WHERE d.issue_id = ?1 AND s.email = "
	                       "'late@example.net'", s2) > 0, 1);
	assert_int_equal(sequence_stats(f->db, "on", &st, &err), 0);
	assert_int_equal(st.enrolled, 2);
	assert_int_equal(st.n_steps, 3);
	/* both are at 2d: late got it, early passed it over (its position) */
	assert_int_equal(st.steps[0].at_step, 0);
	assert_int_equal(st.steps[1].at_step, 2);
	assert_int_equal(st.steps[1].sent + st.steps[1].queued, 1);
	sequence_stats_clear(&st);
}

static void
test_sequence_pause_and_resume(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long s1;

	create(f, "on", T0);
	step(f, "on", "0d", T0);
	s1 = step(f, "on", "1d", T0);
	join(f, "a@example.net", T0 + 100);
	pass(f, T0 + 100);
	assert_int_equal(sequence_pause(f->db, "on", &err), 0);
	assert_int_equal(pass(f, T0 + DAY + 200).queued, 0);
	/* (5): the step issues are held too */
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE id = ?1 AND status = 'paused'",
	                       s1), 1);
	assert_int_equal(sequence_resume(f->db, "on", &err), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE id = ?1 AND status = 'sending'",
	                       s1), 1);
	assert_int_equal(pass(f, T0 + DAY + 300).queued, 1);
	assert_int_equal(rows(f, s1), 1);
}

static void
test_sequence_cancelled_step_goes_to_nobody(void **state)
{
	struct fixture *f = *state;
	struct sequence_run r;
	struct herr err;
	long long s0, s1, a;

	create(f, "on", T0);
	s0 = step(f, "on", "0d", T0);
	s1 = step(f, "on", "1d", T0);
	a = join(f, "a@example.net", T0 + 100);
	assert_int_equal(issue_cancel(f->db, s0, &err), 0);
	r = pass(f, T0 + 100);
	assert_int_equal(r.queued, 0);
	assert_int_equal(r.passed, 1);
	assert_int_equal(rows(f, s0), 0);
	assert_int_equal(pass(f, T0 + DAY + 100).queued, 1);
	assert_int_equal(rows(f, s1), 1);
	assert_int_equal(count(f, "SELECT passed FROM sequence_enrolments WHERE subscriber_id = ?1",
	                       a), DAY);
}

static void
test_sequence_refusals(void **state)
{
	struct fixture *f = *state;
	struct sequence_new n;
	struct herr err;
	long long id;

	create(f, "on", T0);
	step(f, "on", "0d", T0);
	/* the same delay twice */
	assert_int_equal(sequence_add_step(f->db, &f->cfg, "on", f->md, 0, -1, NULL, NULL, &id,
	                                   &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE ?1 = ?1", 0), 1);
	/* a step that names its own list */
	write_text(f->bad, sizeof f->bad, f->dir, "bad.md",
	           "---\nsubject: Hi\nlist: news\n---\n\nHello.\n");
	assert_int_equal(sequence_add_step(f->db, &f->cfg, "on", f->bad, DAY, -1, NULL, NULL, &id,
	                                   &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.where, "bad.md:3"));
	/* --backfill alone, a name taken, a list unknown */
	memset(&n, 0, sizeof n);
	n.name = "x";
	n.list_name = "news";
	n.backfill = 1;
	assert_int_equal(sequence_create(f->db, &n, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	n.backfill = 0;
	n.name = "on";
	assert_int_equal(sequence_create(f->db, &n, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	n.name = "y";
	n.list_name = "nope";
	assert_int_equal(sequence_create(f->db, &n, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	n.list_name = "news";
	n.start_from = "attr.a\"b";
	assert_int_equal(sequence_create(f->db, &n, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequence_parse_delay_and_time),
		cmocka_unit_test(test_sequence_zone_valid),
		cmocka_unit_test(test_sequence_due_at_local_times),
		cmocka_unit_test_setup_teardown(test_sequence_once_per_step_and_passed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_latest_due_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_unsubscribed_leaves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_step_added_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_pause_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_cancelled_step_goes_to_nobody, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_sequence_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
