/*
 * test_retention.c - retention.c's batch deletion and reportfreeze.c's
 * kept figures (retention.h invariants (1)-(3), report.h "Kept figures"),
 * and tracking.c's rule (tracking.h: the strictest of issue, mode and
 * person).  A fresh migrated database per test (tempdb.h).
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
#include "herald/issue.h"
#include "herald/report.h"
#include "herald/retention.h"
#include "herald/tracking.h"

#define T     1700000000LL       /* the send */
#define NOW   (T + 800LL * 86400) /* 800 days later: older than 25 months */
#define MONTH 2629746LL

struct fixture {
	char     path[TEMPDB_PATH_MAX];
	sqlite3 *db;
};

static void
exec(struct fixture *f, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(f->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static long long
count(struct fixture *f, const char *sql)
{
	sqlite3_stmt *st;
	long long n;

	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/*
 * Issue 1, sent at T to 300 subscribers (one bounced), with 12,000 opens
 * (40 each) and 300 clicks on its first link in the first hours; issue 2
 * still sending with one old open; 7 old sign-up events without an issue;
 * one recent open of issue 1; 20 inbound rows, 12 of them old.
 */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f || tempdb_open(f->path, "retention", &f->db) < 0)
		return -1;
	exec(f, "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0)");
	exec(f, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
	     "INSERT INTO subscribers (id, email, email_key, created_at, updated_at) "
	     "SELECT i, 's' || i || '@example.org', 's' || i || '@example.org', 0, 0 FROM n");
	exec(f, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, links, "
	     "status, created_at, started_at, tracking_mode) VALUES (1, 1, 'One', 'n@example.org', "
	     "'', '', '', '[\"https://example.org/a\", \"https://example.org/b\"]', 'sent', 0, "
	     "1700000000, 'on')");
	exec(f, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, links, "
	     "status, created_at, started_at) VALUES (2, 1, 'Two', 'n@example.org', '', '', '', "
	     "'[]', 'sending', 0, 1700000000)");
	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
	     "sent_at) SELECT 1, id, CASE id WHEN 7 THEN 'bounced' ELSE 'sent' END, 1700000000, "
	     "1700000000, CASE id WHEN 7 THEN NULL ELSE 1700000010 END FROM subscribers");
	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at) "
	     "SELECT 2, id, 'pending', 1700000000, 1700000000 FROM subscribers WHERE id <= 10");
	exec(f, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 11999) "
	     "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) "
	     "SELECT 'open', 1, 1 + i % 300, 1, 1700000000 + 60 + i, "
	     "CASE WHEN i % 7 = 0 THEN '{\"ua\":\"machine\"}' ELSE '{}' END FROM n");
	exec(f, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) "
	     "SELECT 'click', 1, id, 1, 1700003600 + id, '{\"n\":1}' FROM subscribers");
	exec(f, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at) "
	     "VALUES ('open', 2, 1, 1, 1700000100)");
	exec(f, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 7) "
	     "INSERT INTO events (kind, subscriber_id, list_id, at) "
	     "SELECT 'subscribe', i, 1, 1690000000 + i FROM n");
	exec(f, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) "
	     "INSERT INTO inbound (sha256, kind, received_at) "
	     "SELECT printf('%064d', i), 'bounce', CASE WHEN i <= 12 THEN 1700000000 ELSE "
	     "1700000000 + 800 * 86400 - 86400 END FROM n");
	exec(f, "INSERT INTO bounces (subscriber_id, issue_id, list_id, inbound_id, recipient, "
	     "source, class, reason, at) VALUES (7, 1, 1, 3, 's7@example.org', 'dsn', 'hard', "
	     "'userunknown', 1700000020)");
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

static char *
stats_json(struct fixture *f, long long id)
{
	struct report r;
	struct issue is;
	struct herr err;
	char *text;

	herr_clear(&err);
	if (issue_get(f->db, id, &is, &err) < 0)
		fail_msg("issue_get: %s", err.msg);
	if (report_compute(f->db, id, &r, &err) < 0)
		fail_msg("report_compute: %s", err.msg);
	assert_non_null(text = report_json_text(&is, &r));
	report_clear(&r);
	issue_clear(&is);
	return text;
}

static void
policy(struct retention_policy *p, long long events, long long deliveries, long long inbound)
{
	memset(p, 0, sizeof *p);
	p->events = events;
	p->deliveries = deliveries;
	p->inbound = inbound;
	p->batch = RETENTION_BATCH;
}

/* (1): the figures are the same before and after; (2): no batch over the
 * limit, so 12,000 + 300 old events of issue 1 take several. */
static void
test_retention_run_keeps_figures(void **state)
{
	struct fixture *f = *state;
	struct retention_policy p;
	struct retention_report rep;
	struct herr err;
	char *before, *after;

	herr_clear(&err);
	before = stats_json(f, 1);
	policy(&p, 25 * MONTH, 25 * MONTH, 90 * 86400);
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.kept, 1);           /* issue 1 only: issue 2 is sending */
	assert_int_equal(rep.events, 12000 + 300 + 7);
	assert_int_equal(rep.deliveries, 300);
	assert_int_equal(rep.inbound, 12);
	assert_true(rep.batches >= 1 + 3 + 1 + 1 + 1);
	assert_true(rep.longest_ms > 0);
	assert_int_equal(count(f, "SELECT count(*) FROM events WHERE issue_id = 1"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM events WHERE issue_id = 2"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM deliveries WHERE issue_id = 2"), 10);
	assert_int_equal(count(f, "SELECT count(*) FROM inbound"), 8);
	/* the bounce stays, without its inbound row */
	assert_int_equal(count(f, "SELECT count(*) FROM bounces WHERE inbound_id IS NULL"), 1);
	after = stats_json(f, 1);
	assert_string_equal(before, after);
	/* kept figures hold: a later event no longer changes them */
	exec(f, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at) "
	     "VALUES ('open', 1, 2, 1, 1769000000)");
	free(after);
	after = stats_json(f, 1);
	assert_string_equal(before, after);
	/* a second run finds nothing more */
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.events + rep.deliveries + rep.inbound + rep.kept, 0);
	free(before);
	free(after);
}

/* (4): while issue 1 is its list's welcome mail, none of its rows go and
 * its figures are not kept (they would stop counting later welcomes); once
 * the list has no welcome, it is kept and removed as any issue. */
static void
test_retention_run_spares_the_welcome(void **state)
{
	struct fixture *f = *state;
	struct retention_policy p;
	struct retention_report rep;
	struct herr err;

	herr_clear(&err);
	exec(f, "UPDATE issues SET kind = 'welcome' WHERE id = 1");
	exec(f, "UPDATE lists SET welcome_issue_id = 1 WHERE id = 1");
	policy(&p, 25 * MONTH, 25 * MONTH, 0);
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.kept, 0);
	assert_int_equal(rep.deliveries, 0);
	assert_int_equal(rep.events, 7);   /* the sign-ups, which have no issue */
	assert_int_equal(count(f, "SELECT count(*) FROM events WHERE issue_id = 1"), 12300);
	assert_int_equal(count(f, "SELECT count(*) FROM deliveries WHERE issue_id = 1"), 300);
	assert_int_equal(count(f, "SELECT count(*) FROM issue_figures"), 0);
	exec(f, "UPDATE lists SET welcome_issue_id = NULL WHERE id = 1");
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.kept, 1);
	assert_int_equal(rep.events, 12300);
	assert_int_equal(rep.deliveries, 300);
}

/* (4): a sequence's step is spared the same way while its sequence is
 * there; `sequence rm` makes it an issue like the others. */
static void
test_retention_run_spares_sequence_steps(void **state)
{
	struct fixture *f = *state;
	struct retention_policy p;
	struct retention_report rep;
	struct herr err;

	herr_clear(&err);
	exec(f, "UPDATE issues SET kind = 'welcome' WHERE id = 1");
	exec(f, "INSERT INTO sequences (id, name, list_id, created_at) VALUES (1, 'on', 1, 0)");
	exec(f, "INSERT INTO sequence_steps (sequence_id, issue_id, delay, created_at) "
	        "VALUES (1, 1, 0, 0)");
	policy(&p, 25 * MONTH, 25 * MONTH, 0);
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.kept, 0);
	assert_int_equal(rep.deliveries, 0);
	assert_int_equal(count(f, "SELECT count(*) FROM deliveries WHERE issue_id = 1"), 300);
	exec(f, "DELETE FROM sequences WHERE id = 1");
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.kept, 1);
	assert_int_equal(rep.deliveries, 300);
}

/* (2) with a small batch: every transaction removes at most `batch` rows,
 * and the total is the same. */
static void
test_retention_run_small_batches(void **state)
{
	struct fixture *f = *state;
	struct retention_policy p;
	struct retention_report rep;
	struct herr err;

	herr_clear(&err);
	policy(&p, 25 * MONTH, 0, 0);
	p.batch = 1000;
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_int_equal(rep.events, 12000 + 300 + 7);
	/* 1 freeze; opens 12 full batches and an empty one; clicks 1; the
	 * other kinds one each (subscribe holds 7) */
	assert_int_equal(rep.batches, 1 + 13 + 1 + 5);
	assert_int_equal(rep.deliveries, 0); /* off */
	assert_int_equal(count(f, "SELECT count(*) FROM deliveries"), 310);
}

/* Nothing is old enough: nothing goes, no figures kept. */
static void
test_retention_run_nothing_old(void **state)
{
	struct fixture *f = *state;
	struct retention_policy p;
	struct retention_report rep;
	struct herr err;

	herr_clear(&err);
	policy(&p, 25 * MONTH, 25 * MONTH, 90 * 86400);
	assert_int_equal(retention_run(f->db, &p, T + 86400, &rep, &err), 0);
	assert_int_equal(rep.events + rep.deliveries + rep.inbound + rep.kept, 0);
	assert_int_equal(count(f, "SELECT count(*) FROM issue_figures"), 0);
	policy(&p, 0, 0, 0);
	assert_false(retention_enabled(&p));
}

/* (3): a stop request between batches leaves the rest for next time. */
static void
test_retention_run_stops(void **state)
{
	struct fixture *f = *state;
	struct retention_policy p;
	struct retention_report rep;
	struct herr err;
	volatile sig_atomic_t stop = 1;

	herr_clear(&err);
	policy(&p, 25 * MONTH, 25 * MONTH, 90 * 86400);
	p.stop = &stop;
	assert_int_equal(retention_run(f->db, &p, NOW, &rep, &err), 0);
	assert_true(rep.stopped);
	assert_int_equal(rep.events + rep.deliveries + rep.inbound, 0);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 12000 + 300 + 1 + 7);
}

/* report_freeze() once; report_thaw() restores every row-dependent figure
 * even when the rows are gone by other means. */
static void
test_report_freeze_thaw(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	char *before, *after;
	int kept;

	herr_clear(&err);
	before = stats_json(f, 1);
	assert_int_equal(db_begin(f->db, &err), 0);
	assert_int_equal(report_freeze(f->db, 1, &kept, &err), 0);
	assert_int_equal(kept, 1);
	assert_int_equal(report_freeze(f->db, 1, &kept, &err), 0);
	assert_int_equal(kept, 0);
	assert_int_equal(db_commit(f->db, &err), 0);
	exec(f, "DELETE FROM events WHERE issue_id = 1");
	exec(f, "DELETE FROM deliveries WHERE issue_id = 1");
	after = stats_json(f, 1);
	assert_string_equal(before, after);
	assert_non_null(strstr(after, "\"opens\": {\n    \"total\": 12000"));
	free(before);
	free(after);
}

static void
test_tracking_decide(void **state)
{
	(void)state;
	/* on: everyone but the person who said no */
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_ON, 5, 0, NULL), TRACKING_PERSON);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_ON, 5, 0, "{\"tracking\":\"no\"}"),
	                 TRACKING_NONE);
	/* consent: only a yes */
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_CONSENT, 5, 0, "{}"), TRACKING_NONE);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_CONSENT, 5, 0,
	                                 "{\"tracking_consent\":\"Yes\"}"), TRACKING_PERSON);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_CONSENT, 5, 0,
	                                 "{\"tracking_consent\":\"no\"}"), TRACKING_NONE);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_CONSENT, 5, 0,
	                 "{\"tracking_consent\":\"yes\",\"tracking\":\"no\"}"), TRACKING_NONE);
	/* anonymous: everyone, but the person's no still wins */
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_ANONYMOUS, 5, 0, NULL),
	                 TRACKING_ANONYMOUS);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_ANONYMOUS, 5, 0,
	                                 "{\"tracking\":\"off\"}"), TRACKING_NONE);
	/* off, an issue without tracking, a preview, a copy for nobody */
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_OFF, 5, 0, NULL), TRACKING_NONE);
	assert_int_equal(tracking_decide(0, CONFIG_TRACKING_ON, 5, 0, NULL), TRACKING_NONE);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_ON, 5, 1, NULL), TRACKING_NONE);
	assert_int_equal(tracking_decide(1, CONFIG_TRACKING_ON, 0, 0, NULL), TRACKING_NONE);
	assert_int_equal(tracking_mode_parse("Anonymous"), CONFIG_TRACKING_ANONYMOUS);
	assert_int_equal(tracking_mode_parse("sometimes"), -1);
	assert_string_equal(tracking_mode_name(CONFIG_TRACKING_CONSENT), "consent");
}

/* Fixed once: a resumed send keeps its mode; an issue with tracking off
 * is stored as off whatever the config says. */
static void
test_tracking_issue_mode(void **state)
{
	struct fixture *f = *state;
	enum config_tracking m;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(tracking_issue_mode_get(f->db, 2, &m, &err), 0);
	assert_int_equal(tracking_issue_mode(f->db, 2, CONFIG_TRACKING_CONSENT, &m, &err), 0);
	assert_int_equal(m, CONFIG_TRACKING_CONSENT);
	assert_int_equal(tracking_issue_mode(f->db, 2, CONFIG_TRACKING_ON, &m, &err), 0);
	assert_int_equal(m, CONFIG_TRACKING_CONSENT);
	exec(f, "UPDATE issues SET tracking = 0, tracking_mode = NULL WHERE id = 2");
	assert_int_equal(tracking_issue_mode(f->db, 2, CONFIG_TRACKING_ON, &m, &err), 0);
	assert_int_equal(m, CONFIG_TRACKING_OFF);
}

/* [retention] periods (config.h config_parse_period()). */
static void
test_config_parse_period(void **state)
{
	(void)state;
	assert_int_equal(config_parse_period("off"), 0);
	assert_int_equal(config_parse_period("25 months"), 25 * MONTH);
	assert_int_equal(config_parse_period("90 days"), 90 * 86400);
	assert_int_equal(config_parse_period("90d"), 90 * 86400);
	assert_int_equal(config_parse_period("2 years"), 2 * 31556952LL);
	assert_int_equal(config_parse_period("1 week"), 604800);
	assert_int_equal(config_parse_period("25"), -1);      /* no unit */
	assert_int_equal(config_parse_period("25m"), -1);     /* minutes? months? neither */
	assert_int_equal(config_parse_period("-3 days"), -1);
	assert_int_equal(config_parse_period("3 fortnights"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_retention_run_keeps_figures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_run_spares_the_welcome, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_retention_run_spares_sequence_steps, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_retention_run_small_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_run_nothing_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_run_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_freeze_thaw, setup, teardown),
		cmocka_unit_test(test_tracking_decide),
		cmocka_unit_test_setup_teardown(test_tracking_issue_mode, setup, teardown),
		cmocka_unit_test(test_config_parse_period),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
