/*
 * test_report.c - the figures of `herald stats` (src/report.c, definitions
 * in include/herald/report.h), computed from deliveries and events rows
 * written here the way the sender (ledger.c: bounce events with class
 * "hard"), the web server (open {"ua", "agent"}, click {"n", "ua"},
 * unsubscribe with the issue id) and `herald bounce` write them.
 *
 * Each test opens a fresh database file (migrations run for real) holding
 * issue 1, the one reported, and issue 2, whose events must never count.
 * Covered: unique vs total, the machine-open rule by user-agent class and
 * by timing (at most REPORT_PREFETCH_SECS after sent_at, and before it),
 * human + machine = unique, clicks per link with the URLs of issues.links
 * (links without clicks included), per-subscriber bounces and complaints,
 * unsubscribes by issue, every rate, the per-hour series and its bounds,
 * and that every query uses an index of the issue (EXPLAIN QUERY PLAN).
 * Then the JSON contract of `herald stats --json` (report_json(),
 * report_json_text()): every key in its order and with its type, the
 * figures computed here in it, rates rounded to 4 decimals and printed
 * without binary noise, all keys also for an issue with nothing yet, and
 * the exact text of a small report.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "tempdb.h"

#include "herald/db.h"
#include "herald/issue.h"
#include "herald/report.h"

#define T 1700000000LL /* the send started here (issues.started_at) */

/* Rates are exact quotients of small counts: compare as doubles (cmocka's
 * assert_float_equal converts to float). */
#define assert_rate(a, b) assert_true(fabs((a) - (b)) < 1e-12)

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

static void
add_delivery(struct fixture *f, long long sub, const char *status, long long sent_at)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(f->db,
	                 "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
	                 "updated_at, sent_at) VALUES (1, ?1, ?2, ?3, ?3, ?4)", -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int64(st, 1, sub);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, T);
	if (sent_at)
		sqlite3_bind_int64(st, 4, sent_at);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

/* sub 0: NULL (the subscriber was removed); issue 0: NULL. */
static void
add_event(struct fixture *f, const char *kind, long long issue, long long sub, long long at,
          const char *detail)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(f->db,
	                 "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) "
	                 "VALUES (?1, ?2, ?3, 1, ?4, ?5)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	if (issue)
		sqlite3_bind_int64(st, 2, issue);
	if (sub)
		sqlite3_bind_int64(st, 3, sub);
	sqlite3_bind_int64(st, 4, at);
	sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char sql[256];
	int i;

	if (!f)
		return -1;
	if (tempdb_open(f->path, "report", &f->db) < 0)
		return -1;
	exec(f, "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0)");
	for (i = 1; i <= 12; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO subscribers (id, email, email_key, created_at, "
		         "updated_at) VALUES (%d, 's%d@example.org', 's%d@example.org', 0, 0)",
		         i, i, i);
		exec(f, sql);
	}
	/* issue 1 has three links: two web links and a mailto (never
	 * tracked, still listed); issue 2 is another issue's noise */
	exec(f, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, links, "
	     "status, created_at, started_at) VALUES (1, 1, 'One', 'n@example.org', '', '', '', "
	     "'[\"https://example.org/a\", \"https://example.org/b?x=1&who={{email}}\", "
	     "\"mailto:editor@example.org\"]', 'sending', 0, 1700000000)");
	exec(f, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, links, "
	     "status, created_at) VALUES (2, 1, 'Two', 'n@example.org', '', '', '', "
	     "'[\"https://example.org/z\"]', 'draft', 0)");
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

/*
 * The send of issue 1: s1..s8, s11, s12 sent at T+10, s9 bounced at RCPT
 * (hard bounce event as ledger.c writes it), s10 deferred.  So recipients
 * 12, delivered 10.
 */
static void
fill_send(struct fixture *f)
{
	long long s;

	for (s = 1; s <= 12; s++)
		add_delivery(f, s, s == 9 ? "bounced" : s == 10 ? "deferred" : "sent",
		             s == 9 || s == 10 ? 0 : T + 10);
	add_event(f, "bounce", 1, 9, T + 10, "{\"source\":\"smtp\",\"class\":\"hard\","
	          "\"stage\":\"rcpt\",\"code\":550,\"reply\":\"5.1.1 user unknown\"}");
}

#define HUMAN   "{\"ua\":\"human\",\"agent\":\"Mozilla/5.0 (Windows NT 10.0)\"}"
#define MACHINE "{\"ua\":\"machine\",\"agent\":\"Mozilla/5.0\"}"

/*
 * Opens, with each subscriber's class (sent_at = T+10):
 *   s1  human at T+3605 and T+7300                        -> human, 2 events
 *   s2  ua machine at T+12, human at T+5000               -> human, 2
 *   s3  ua human but 1 s after delivery                   -> machine (timing)
 *   s4  ua machine twice, an hour later                   -> machine (ua)
 *   s5  ua human 3 s after delivery                       -> human (just past)
 *   s6  ua human 2 s after delivery                       -> machine (boundary)
 *   s7  ua human 5 s before sent_at                       -> machine
 *   s10 no ua field, delivery deferred (no sent_at)       -> human
 *   removed subscriber (NULL)                             -> total only
 *   issue 2's open by s1                                  -> not counted
 * total 12, unique 8, human 4 (s1 s2 s5 s10), machine 4 (s3 s4 s6 s7).
 */
static void
fill_opens(struct fixture *f)
{
	add_event(f, "open", 1, 1, T + 3605, HUMAN);
	add_event(f, "open", 1, 1, T + 7300, HUMAN);
	add_event(f, "open", 1, 2, T + 12, MACHINE);
	add_event(f, "open", 1, 2, T + 5000, HUMAN);
	add_event(f, "open", 1, 3, T + 11, HUMAN);
	add_event(f, "open", 1, 4, T + 4000, MACHINE);
	add_event(f, "open", 1, 4, T + 4001, MACHINE);
	add_event(f, "open", 1, 5, T + 13, HUMAN);
	add_event(f, "open", 1, 6, T + 12, HUMAN);
	add_event(f, "open", 1, 7, T + 5, HUMAN);
	add_event(f, "open", 1, 10, T + 9000, "{}");
	add_event(f, "open", 1, 0, T + 100, HUMAN);
	add_event(f, "open", 2, 1, T + 200, HUMAN);
}

/*
 * Clicks (n = the link's 1-based place):
 *   s1 n=1 twice (h1), n=2 (h2); s2 n=1 (h1); s5 n=2 (h0); s7 n=1 (h0);
 *   s8 n=1 (h5, clicked with images off: no open); removed subscriber n=2;
 *   issue 2: s3 n=1.
 * link 1: total 5, unique 4 (s1 s2 s7 s8); link 2: total 3, unique 2
 * (s1 s5); link 3 (mailto): 0, 0.  clicks total 8, unique 5.
 */
static void
fill_clicks(struct fixture *f)
{
	add_event(f, "click", 1, 1, T + 3700, "{\"n\":1,\"ua\":\"human\"}");
	add_event(f, "click", 1, 1, T + 3800, "{\"n\":1,\"ua\":\"human\"}");
	add_event(f, "click", 1, 1, T + 7300, "{\"n\":2,\"ua\":\"human\"}");
	add_event(f, "click", 1, 2, T + 5000, "{\"n\":1,\"ua\":\"human\"}");
	add_event(f, "click", 1, 5, T + 600, "{\"n\":2,\"ua\":\"human\"}");
	add_event(f, "click", 1, 7, T + 20, "{\"n\":1,\"ua\":\"machine\"}");
	add_event(f, "click", 1, 8, T + 20000, "{\"n\":1,\"ua\":\"human\"}");
	add_event(f, "click", 1, 0, T + 100, "{\"n\":2,\"ua\":\"human\"}");
	add_event(f, "click", 2, 3, T + 100, "{\"n\":1,\"ua\":\"human\"}");
}

/*
 * Unsubscribes: s4 twice through issue 1 (left, came back, left), s6;
 * s7 without an issue (the CLI), s3 through issue 2 -> 2.
 * Bounces: s9 hard (fill_send); s3 soft; s5 soft then hard -> hard; s6
 * soft twice; s7 with no class; s2 on issue 2 -> hard 2, soft 2.
 * Complaints: s8 twice; s1 on issue 2 -> 1.
 */
static void
fill_rest(struct fixture *f)
{
	add_event(f, "unsubscribe", 1, 4, T + 4100, "{\"source\":\"web\"}");
	add_event(f, "unsubscribe", 1, 4, T + 9100, "{\"source\":\"one-click\"}");
	add_event(f, "unsubscribe", 1, 6, T + 4100, "{\"source\":\"one-click\"}");
	add_event(f, "unsubscribe", 0, 7, T + 4100, "{\"source\":\"cli\"}");
	add_event(f, "unsubscribe", 2, 3, T + 4100, "{\"source\":\"web\"}");
	add_event(f, "bounce", 1, 3, T + 600, "{\"class\":\"soft\",\"source\":\"dsn\"}");
	add_event(f, "bounce", 1, 5, T + 600, "{\"class\":\"soft\",\"source\":\"dsn\"}");
	add_event(f, "bounce", 1, 5, T + 9600, "{\"class\":\"hard\",\"source\":\"dsn\"}");
	add_event(f, "bounce", 1, 6, T + 600, "{\"class\":\"soft\",\"source\":\"dsn\"}");
	add_event(f, "bounce", 1, 6, T + 700, "{\"class\":\"soft\",\"source\":\"dsn\"}");
	add_event(f, "bounce", 1, 7, T + 700, "{\"source\":\"dsn\"}");
	add_event(f, "bounce", 2, 2, T + 700, "{\"class\":\"hard\",\"source\":\"dsn\"}");
	add_event(f, "complaint", 1, 8, T + 800, "{\"source\":\"arf\"}");
	add_event(f, "complaint", 1, 8, T + 900, "{\"source\":\"arf\"}");
	add_event(f, "complaint", 2, 1, T + 900, "{\"source\":\"arf\"}");
}

static void
fill_all(struct fixture *f)
{
	fill_send(f);
	fill_opens(f);
	fill_clicks(f);
	fill_rest(f);
}

static void
test_report_compute_unknown_issue(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(report_compute(f->db, 99, &r, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_non_null(strstr(err.msg, "99"));
	report_clear(&r);
	/* the read transaction was ended: the connection can write again */
	assert_int_equal(sqlite3_get_autocommit(f->db), 1);
}

static void
test_report_compute_nothing_yet(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;
	size_t i;

	assert_int_equal(report_compute(f->db, 2, &r, &err), 0);
	assert_int_equal(r.issue_id, 2);
	assert_int_equal(r.deliveries.total, 0);
	assert_int_equal(r.delivered, 0);
	assert_int_equal(r.opens.total + r.opens.unique + r.opens.human + r.opens.machine, 0);
	assert_int_equal(r.clicks.total + r.clicks.unique, 0);
	/* a draft's links are listed all the same, with zeros */
	assert_int_equal(r.clicks.n_links, 1);
	assert_int_equal(r.clicks.links[0].n, 1);
	assert_string_equal(r.clicks.links[0].url, "https://example.org/z");
	assert_int_equal(r.clicks.links[0].total + r.clicks.links[0].unique, 0);
	assert_int_equal(r.unsubscribes + r.bounces.hard + r.bounces.soft + r.bounces.complaints, 0);
	/* no division by zero: every rate is 0 */
	assert_true(r.rates.open == 0.0 && r.rates.click == 0.0 && r.rates.click_to_open == 0.0 &&
	            r.rates.unsubscribe == 0.0 && r.rates.complaint == 0.0 && r.rates.bounce == 0.0);
	/* never sent: no series */
	assert_int_equal(r.start, 0);
	assert_int_equal(r.hours, 0);
	for (i = 0; i < REPORT_HOURS; i++)
		assert_true(r.hour_opens[i] == 0 && r.hour_clicks[i] == 0);
	report_clear(&r);
	assert_null(r.clicks.links);
}

static void
test_report_compute_deliveries(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	fill_send(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.deliveries.total, 12);
	assert_int_equal(r.deliveries.sent, 10);
	assert_int_equal(r.deliveries.bounced, 1);
	assert_int_equal(r.deliveries.deferred, 1);
	assert_int_equal(r.deliveries.pending + r.deliveries.sending + r.deliveries.failed +
	                 r.deliveries.skipped, 0);
	assert_int_equal(r.delivered, 10);
	/* the SMTP-time rejection is a hard bounce */
	assert_int_equal(r.bounces.hard, 1);
	assert_int_equal(r.bounces.soft, 0);
	report_clear(&r);
}

static void
test_report_compute_opens(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	fill_send(f);
	fill_opens(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.opens.total, 12);
	assert_int_equal(r.opens.unique, 8);
	assert_int_equal(r.opens.human, 4);
	assert_int_equal(r.opens.machine, 4);
	report_clear(&r);
}

static void
test_report_compute_opens_timing_boundary(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	/* one subscriber, one human-agent open at sent_at + PREFETCH: machine;
	 * a second one a second later makes them human */
	add_delivery(f, 1, "sent", T + 10);
	add_event(f, "open", 1, 1, T + 10 + REPORT_PREFETCH_SECS, HUMAN);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.opens.unique, 1);
	assert_int_equal(r.opens.human, 0);
	assert_int_equal(r.opens.machine, 1);
	report_clear(&r);
	add_event(f, "open", 1, 1, T + 10 + REPORT_PREFETCH_SECS + 1, HUMAN);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.opens.total, 2);
	assert_int_equal(r.opens.unique, 1);
	assert_int_equal(r.opens.human, 1);
	assert_int_equal(r.opens.machine, 0);
	report_clear(&r);
}

/* The delivery is looked up only for opens before the last sent_at plus the
 * window: an open in that stretch is judged by its own delivery, not by the
 * last one; and with nothing sent at all, no open is a timing machine. */
static void
test_report_compute_opens_lookup_bounds(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	add_delivery(f, 1, "deferred", 0);
	add_event(f, "open", 1, 1, T + 1, HUMAN);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.opens.human, 1);
	assert_int_equal(r.opens.machine, 0);
	report_clear(&r);

	add_delivery(f, 2, "sent", T + 10);
	add_delivery(f, 3, "sent", T + 1000);   /* the last delivery */
	add_event(f, "open", 1, 2, T + 500, HUMAN);  /* before T+1002, long after s2's */
	add_event(f, "open", 1, 3, T + 1001, HUMAN); /* within s3's window */
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.opens.unique, 3);
	assert_int_equal(r.opens.human, 2);   /* s1, s2 */
	assert_int_equal(r.opens.machine, 1); /* s3 */
	report_clear(&r);
}

static void
test_report_compute_clicks_per_link(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	fill_send(f);
	fill_clicks(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.clicks.total, 8);
	assert_int_equal(r.clicks.unique, 5);
	assert_int_equal(r.clicks.n_links, 3);
	assert_int_equal(r.clicks.links[0].n, 1);
	assert_string_equal(r.clicks.links[0].url, "https://example.org/a");
	assert_int_equal(r.clicks.links[0].total, 5);
	assert_int_equal(r.clicks.links[0].unique, 4);
	assert_int_equal(r.clicks.links[1].n, 2);
	/* the URL as stored: merge fields are not merged in the report */
	assert_string_equal(r.clicks.links[1].url, "https://example.org/b?x=1&who={{email}}");
	assert_int_equal(r.clicks.links[1].total, 3);
	assert_int_equal(r.clicks.links[1].unique, 2);
	assert_int_equal(r.clicks.links[2].n, 3);
	assert_string_equal(r.clicks.links[2].url, "mailto:editor@example.org");
	assert_int_equal(r.clicks.links[2].total, 0);
	assert_int_equal(r.clicks.links[2].unique, 0);
	report_clear(&r);
}

static void
test_report_compute_unsubscribes_bounces(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	fill_send(f);
	fill_rest(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.unsubscribes, 2);
	assert_int_equal(r.bounces.hard, 2);
	assert_int_equal(r.bounces.soft, 2);
	assert_int_equal(r.bounces.complaints, 1);
	report_clear(&r);
}

static void
test_report_compute_rates(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	fill_all(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	/* human 4, clickers 5, unique opens 8, unsubscribes 2, complaints 1,
	 * bounced people 4, delivered 10, bounced deliveries 1 */
	assert_rate(r.rates.open, 0.4);
	assert_rate(r.rates.click, 0.5);
	assert_rate(r.rates.click_to_open, 0.625);
	assert_rate(r.rates.unsubscribe, 0.2);
	assert_rate(r.rates.complaint, 0.1);
	assert_rate(r.rates.bounce, 4.0 / 11.0);
	/* the figures do not disturb each other when all are present */
	assert_int_equal(r.opens.total, 12);
	assert_int_equal(r.opens.human, 4);
	assert_int_equal(r.clicks.unique, 5);
	assert_int_equal(r.bounces.hard, 2);
	report_clear(&r);
}

static void
test_report_compute_series(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;
	long long sum_o = 0, sum_c = 0;
	int i;

	fill_all(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.start, T);
	/* the last event in the window is s8's click at T+20000: hour 5 */
	assert_int_equal(r.hours, 6);
	assert_int_equal(r.hour_opens[0], 6); /* s2 s3 s5 s6 s7 and the removed one */
	assert_int_equal(r.hour_opens[1], 4); /* s1, s2, s4 twice */
	assert_int_equal(r.hour_opens[2], 2); /* s1, s10 */
	assert_int_equal(r.hour_clicks[0], 3);
	assert_int_equal(r.hour_clicks[1], 3);
	assert_int_equal(r.hour_clicks[2], 1);
	assert_int_equal(r.hour_clicks[5], 1);
	for (i = 0; i < REPORT_HOURS; i++) {
		sum_o += r.hour_opens[i];
		sum_c += r.hour_clicks[i];
	}
	assert_int_equal(sum_o, r.opens.total);
	assert_int_equal(sum_c, r.clicks.total);
	report_clear(&r);
}

static void
test_report_compute_series_bounds(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	add_delivery(f, 1, "sent", T + 10);
	add_event(f, "open", 1, 1, T - 1, HUMAN);                    /* before the start */
	add_event(f, "open", 1, 1, T + 71 * 3600 + 3599, HUMAN);     /* last second of h71 */
	add_event(f, "click", 1, 1, T + 72 * 3600, "{\"n\":1}");     /* past the window */
	add_event(f, "unsubscribe", 1, 1, T + 3600, "{}");            /* not charted */
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.hours, REPORT_HOURS);
	assert_int_equal(r.hour_opens[71], 1);
	assert_int_equal(r.hour_opens[0], 0);
	assert_int_equal(r.hour_clicks[71], 0);
	assert_int_equal(r.hour_opens[1] + r.hour_clicks[1], 0);
	/* the totals still count everything */
	assert_int_equal(r.opens.total, 2);
	assert_int_equal(r.clicks.total, 1);
	report_clear(&r);
}

static void
test_report_compute_series_start_fallback(void **state)
{
	struct fixture *f = *state;
	struct report r;
	struct herr err;

	/* no started_at: the series starts at the first delivery */
	exec(f, "UPDATE issues SET started_at = NULL WHERE id = 1");
	add_delivery(f, 1, "sent", T + 500);
	add_delivery(f, 2, "sent", T + 300);
	add_event(f, "open", 1, 2, T + 300 + 3600, HUMAN);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	assert_int_equal(r.start, T + 300);
	assert_int_equal(r.hours, 2);
	assert_int_equal(r.hour_opens[1], 1);
	report_clear(&r);
}

/* Collect the SQL of every statement report_compute() runs. */
struct trace {
	char  *sql[32];
	size_t n;
};

static int
trace_cb(unsigned type, void *ctx, void *p, void *x)
{
	struct trace *t = ctx;
	const char *sql = sqlite3_sql(p);
	size_t i;

	(void)type;
	(void)x;
	if (!sql || !strncmp(sql, "BEGIN", 5) || !strncmp(sql, "ROLLBACK", 8))
		return 0;
	for (i = 0; i < t->n; i++)
		if (!strcmp(t->sql[i], sql))
			return 0;
	if (t->n < 32)
		t->sql[t->n++] = strdup(sql);
	return 0;
}

/* The kept counts against the scan (report_opens_scan(), ledger statuses
 * counted from the rows), for issues 1 and 2. */
static void
assert_tallies_agree(struct fixture *f, const char *when)
{
	struct ledger_counts c;
	struct herr err;
	long long scan[3], kept[3], issue, n[8];
	sqlite3_stmt *st;
	int i;

	for (issue = 1; issue <= 2; issue++) {
		assert_int_equal(report_opens_scan(f->db, issue, scan, &err), 0);
		memset(kept, 0, sizeof kept);
		assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT total, uniq, human FROM "
		                 "open_tallies WHERE issue_id = ?1", -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_int64(st, 1, issue);
		if (sqlite3_step(st) == SQLITE_ROW)
			for (i = 0; i < 3; i++)
				kept[i] = sqlite3_column_int64(st, i);
		sqlite3_finalize(st);
		for (i = 0; i < 3; i++)
			if (kept[i] != scan[i])
				fail_msg("%s: issue %lld opens[%d] kept %lld, counted %lld", when, issue,
				         i, kept[i], scan[i]);

		assert_int_equal(ledger_counts(f->db, issue, &c, &err), 0);
		assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT count(*), "
		                 "sum(status = 'pending'), sum(status = 'sending'), "
		                 "sum(status = 'sent'), sum(status = 'deferred'), "
		                 "sum(status = 'bounced'), sum(status = 'failed'), "
		                 "sum(status = 'skipped') FROM deliveries WHERE issue_id = ?1",
		                 -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_int64(st, 1, issue);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		for (i = 0; i < 8; i++)
			n[i] = sqlite3_column_int64(st, i);
		sqlite3_finalize(st);
		if (c.total != n[0] || c.pending != n[1] || c.sending != n[2] || c.sent != n[3] ||
		    c.deferred != n[4] || c.bounced != n[5] || c.failed != n[6] ||
		    c.skipped != n[7])
			fail_msg("%s: issue %lld deliveries kept %lld/%lld/%lld, counted "
			         "%lld/%lld/%lld (total/sent/deferred)", when, issue, c.total, c.sent,
			         c.deferred, n[0], n[3], n[4]);
	}
}

/*
 * sql/026's triggers keep deliveries by status and the opens exactly as the
 * scan counts them, through every way the rows change: a send's claims and
 * results, an open before its delivery's sent_at (a machine once sent_at
 * is set, or when the delivery is written later with it), a delivery or an event removed, an erasure moving rows to a
 * tombstone (deliveries first, then events with their detail rewritten),
 * a removed subscriber (deliveries cascade, events set to NULL), an event
 * moved to another issue, and a removed issue.
 */
static void
test_report_tallies_follow_every_change(void **state)
{
	struct fixture *f = *state;
	sqlite3_stmt *st;

	fill_all(f);
	assert_tallies_agree(f, "filled");

	/* a send of issue 2: claimed, then an open arrives before the result
	 * (human until sent_at lands 1 s after it), then the result */
	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at) "
	     "SELECT 2, id, 'pending', 0, 0 FROM subscribers WHERE id <= 6");
	assert_tallies_agree(f, "queued");
	/* a delivery written with its sent_at after the open it explains */
	add_event(f, "open", 2, 7, T + 300, HUMAN);
	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
	     "sent_at) VALUES (2, 7, 'sent', 0, 0, 1700000299)");
	assert_tallies_agree(f, "written sent");
	exec(f, "UPDATE deliveries SET status = 'sending' WHERE issue_id = 2");
	add_event(f, "open", 2, 2, T + 300, HUMAN);
	add_event(f, "open", 2, 3, T + 300, MACHINE);
	assert_tallies_agree(f, "opened before the result");
	exec(f, "UPDATE deliveries SET status = 'sent', sent_at = 1700000301 "
	     "WHERE issue_id = 2 AND subscriber_id <= 4");
	exec(f, "UPDATE deliveries SET status = 'deferred' WHERE issue_id = 2 AND subscriber_id > 4");
	assert_tallies_agree(f, "results");
	/* a retry much later moves sent_at past the open: human again */
	exec(f, "UPDATE deliveries SET sent_at = 1700000000 WHERE issue_id = 2 AND subscriber_id = 2");
	assert_tallies_agree(f, "sent_at moved");

	/* one of two opens removed, then the other (retention) */
	exec(f, "DELETE FROM events WHERE id = (SELECT min(id) FROM events WHERE kind = 'open' "
	     "AND issue_id = 1 AND subscriber_id = 1)");
	assert_tallies_agree(f, "one open removed");
	exec(f, "DELETE FROM events WHERE kind = 'open' AND issue_id = 1 AND subscriber_id = 4");
	assert_tallies_agree(f, "both opens removed");
	exec(f, "DELETE FROM deliveries WHERE issue_id = 1 AND subscriber_id = 6");
	assert_tallies_agree(f, "a delivery removed");

	/* an erasure as privacy.c does it: a tombstone takes s2's rows */
	exec(f, "INSERT INTO subscribers (id, email, email_key, created_at, updated_at) "
	     "VALUES (99, '', 'erased:x', 0, 0)");
	exec(f, "UPDATE deliveries SET subscriber_id = 99 WHERE subscriber_id = 2");
	assert_tallies_agree(f, "deliveries moved");
	exec(f, "UPDATE events SET subscriber_id = 99, detail = CASE WHEN kind IN ('open', 'click') "
	     "THEN json_remove(detail, '$.agent') ELSE detail END WHERE subscriber_id = 2");
	assert_tallies_agree(f, "events moved");

	/* a removed subscriber: deliveries go, events stay with NULL */
	exec(f, "DELETE FROM subscribers WHERE id = 5");
	assert_tallies_agree(f, "subscriber removed");

	/* an open moved to the other issue, and one turned into a click */
	exec(f, "UPDATE events SET issue_id = 2 WHERE kind = 'open' AND issue_id = 1 "
	     "AND subscriber_id = 3");
	exec(f, "UPDATE events SET kind = 'click' WHERE kind = 'open' AND issue_id = 1 "
	     "AND subscriber_id = 7");
	assert_tallies_agree(f, "events changed");

	/* issue 2 removed: its counts go with it */
	exec(f, "DELETE FROM issues WHERE id = 2");
	assert_tallies_agree(f, "issue removed");
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT (SELECT count(*) FROM open_tallies "
	                 "WHERE issue_id = 2) + (SELECT count(*) FROM delivery_tallies "
	                 "WHERE issue_id = 2)", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), 0);
	sqlite3_finalize(st);
}

/*
 * Every query reaches the issue's rows through an index: no plan line is a
 * SCAN of events or deliveries (the JSON table of the links and the
 * grouped subquery results are the only scans), and the series uses the
 * covering index on (issue_id, kind, at).  With a million rows a full scan
 * would be the difference between milliseconds and seconds.  Deliveries
 * and opens are not read at all (an issue with started_at): their counts
 * are sql/026's tallies.
 */
static void
test_report_compute_query_plans(void **state)
{
	struct fixture *f = *state;
	struct trace t = { { NULL }, 0 };
	struct report r;
	struct herr err;
	sqlite3_stmt *st;
	char *eqp;
	size_t i;
	int saw_time_index = 0, saw_issue_index = 0, saw_clicks_index = 0;

	fill_all(f);
	sqlite3_trace_v2(f->db, SQLITE_TRACE_STMT, trace_cb, &t);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	sqlite3_trace_v2(f->db, 0, NULL, NULL);
	report_clear(&r);
	assert_true(t.n >= 8);
	for (i = 0; i < t.n; i++) {
		eqp = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", t.sql[i]);
		assert_int_equal(sqlite3_prepare_v2(f->db, eqp, -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_int64(st, 1, 1);
		if (sqlite3_bind_parameter_count(st) >= 2)
			sqlite3_bind_int64(st, 2, T);
		if (sqlite3_bind_parameter_count(st) >= 3)
			sqlite3_bind_int64(st, 3, T + 72 * 3600);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 3);

			if (!strncmp(d, "SCAN ", 5) && !strstr(d, "VIRTUAL TABLE") &&
			    strncmp(d, "SCAN (subquery", 14) && strncmp(d, "SCAN c", 6))
				fail_msg("full scan '%s' in: %s", d, t.sql[i]);
			/* the planner may pick either index for an (issue_id,
			 * kind) range: events_by_issue_time has that prefix */
			if (strstr(d, "COVERING INDEX events_by_issue_time (issue_id=? AND kind=? "
			           "AND at>? AND at<?)"))
				saw_time_index = 1;
			if (strstr(d, "INDEX events_by_issue") && strstr(d, "(issue_id=? AND kind=?"))
				saw_issue_index++;
			/* clicks and links read their partial index alone */
			if (strstr(d, "COVERING INDEX events_clicks (issue_id=? AND kind=?)"))
				saw_clicks_index++;
			/* deliveries and opens are never read: their counts are kept */
			if (strstr(d, " deliveries ") || strstr(d, "events_opens"))
				fail_msg("the issue's rows counted in: %s", t.sql[i]);
		}
		sqlite3_finalize(st);
		sqlite3_free(eqp);
		free(t.sql[i]);
	}
	assert_true(saw_time_index);
	/* unsubscribes, bounces, complaints, hours */
	assert_true(saw_issue_index >= 4);
	assert_int_equal(saw_clicks_index, 2);
}

/* ---- the JSON contract ---- */

/* The member `key` of object `o`, which must exist with type `type`. */
static json_t *
member(json_t *o, const char *key, json_type type)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		fail_msg("JSON lacks \"%s\"", key);
	if (json_typeof(v) != type)
		fail_msg("JSON \"%s\" has type %d, wanted %d", key, (int)json_typeof(v), (int)type);
	return v;
}

static long long
int_member(json_t *o, const char *key)
{
	return json_integer_value(member(o, key, JSON_INTEGER));
}

/* The keys of object `o`, in order, as "a,b,c". */
static void
keys_of(json_t *o, char *out, size_t size)
{
	void *it;
	size_t n = 0;

	out[0] = '\0';
	for (it = json_object_iter(o); it; it = json_object_iter_next(o, it))
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? "," : "",
		                      json_object_iter_key(it));
}

/* Parse report_json_text() and check the shape every script relies on:
 * each key of the contract, in order, with its type.  The caller
 * json_decref()s the result; *text_out (if not NULL) gets the text. */
static json_t *
contract_json(const struct issue *is, const struct report *r, char **text_out)
{
	json_error_t jerr;
	char keys[256], *text;
	json_t *j, *o, *a, *v;
	const char *k;
	size_t i;

	assert_non_null(text = report_json_text(is, r));
	if (!(j = json_loads(text, 0, &jerr)))
		fail_msg("report_json_text: not JSON: %s\n%s", jerr.text, text);
	assert_true(json_is_object(j));
	keys_of(j, keys, sizeof keys);
	assert_string_equal(keys, "issue,recipients,deliveries,opens,clicks,unsubscribes,bounces,"
	                          "rates,skipped,audience,leave_reasons,tracking");
	/* the answers to "Why are you leaving?" (prefs.h), every reason */
	o = member(j, "leave_reasons", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "too_many,not_relevant,never_signed_up,other");
	/* the sunset's count and the audience at send time (null: no send) */
	o = member(j, "skipped", JSON_OBJECT);
	member(o, "unengaged", JSON_INTEGER);
	if (!json_is_null(json_object_get(j, "audience"))) {
		o = member(j, "audience", JSON_OBJECT);
		keys_of(o, keys, sizeof keys);
		assert_string_equal(keys, "lists,segment,where,sunset_after,sunset_skipped");
		member(o, "lists", JSON_ARRAY);
	}
	o = member(j, "issue", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "id,subject,status");
	member(o, "id", JSON_INTEGER);
	member(o, "subject", JSON_STRING);
	member(o, "status", JSON_STRING);
	member(j, "recipients", JSON_INTEGER);
	o = member(j, "deliveries", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "pending,sending,sent,deferred,bounced,failed,skipped");
	json_object_foreach(o, k, v)
		if (!json_is_integer(v))
			fail_msg("deliveries.%s is not an integer", k);
	o = member(j, "opens", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "total,unique,human,machine");
	member(o, "total", JSON_INTEGER);
	member(o, "unique", JSON_INTEGER);
	member(o, "human", JSON_INTEGER);
	member(o, "machine", JSON_INTEGER);
	o = member(j, "clicks", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "total,unique,links");
	member(o, "total", JSON_INTEGER);
	member(o, "unique", JSON_INTEGER);
	a = member(o, "links", JSON_ARRAY);
	for (i = 0; i < json_array_size(a); i++) {
		keys_of(json_array_get(a, i), keys, sizeof keys);
		assert_string_equal(keys, "n,url,total,unique");
		member(json_array_get(a, i), "n", JSON_INTEGER);
		member(json_array_get(a, i), "url", JSON_STRING);
		member(json_array_get(a, i), "total", JSON_INTEGER);
		member(json_array_get(a, i), "unique", JSON_INTEGER);
	}
	member(j, "unsubscribes", JSON_INTEGER);
	o = member(j, "bounces", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "hard,soft,complaints,reasons");
	member(o, "hard", JSON_INTEGER);
	member(o, "soft", JSON_INTEGER);
	member(o, "complaints", JSON_INTEGER);
	a = member(o, "reasons", JSON_ARRAY);
	for (i = 0; i < json_array_size(a); i++) {
		keys_of(json_array_get(a, i), keys, sizeof keys);
		assert_string_equal(keys, "class,reason,count,status,diagnostic");
		member(json_array_get(a, i), "count", JSON_INTEGER);
	}
	/* rates are reals, also when 0 */
	o = member(j, "rates", JSON_OBJECT);
	keys_of(o, keys, sizeof keys);
	assert_string_equal(keys, "open_rate,click_rate,click_to_open_rate,unsubscribe_rate,"
	                          "complaint_rate,bounce_rate");
	json_object_foreach(o, k, v)
		if (!json_is_real(v))
			fail_msg("rates.%s is not a real", k);
	if (text_out)
		*text_out = text;
	else
		free(text);
	return j;
}

static double
rate_of(json_t *j, const char *key)
{
	return json_real_value(member(json_object_get(j, "rates"), key, JSON_REAL));
}

static void
issue_one(struct issue *is)
{
	memset(is, 0, sizeof *is);
	is->id = 1;
	is->subject = (char *)"One";
	snprintf(is->status, sizeof is->status, "sending");
}

static void
test_report_json_contract(void **state)
{
	struct fixture *f = *state;
	struct issue is;
	struct report r;
	struct herr err;
	json_t *j, *o, *l;
	char *text;

	fill_all(f);
	assert_int_equal(report_compute(f->db, 1, &r, &err), 0);
	issue_one(&is);
	j = contract_json(&is, &r, &text);
	o = json_object_get(j, "issue");
	assert_int_equal(int_member(o, "id"), 1);
	assert_string_equal(json_string_value(json_object_get(o, "subject")), "One");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "sending");
	assert_int_equal(int_member(j, "recipients"), 12);
	o = json_object_get(j, "deliveries");
	assert_int_equal(int_member(o, "sent"), 10);
	assert_int_equal(int_member(o, "bounced"), 1);
	assert_int_equal(int_member(o, "deferred"), 1);
	assert_int_equal(int_member(o, "pending") + int_member(o, "sending") +
	                 int_member(o, "failed") + int_member(o, "skipped"), 0);
	o = json_object_get(j, "opens");
	assert_int_equal(int_member(o, "total"), 12);
	assert_int_equal(int_member(o, "unique"), 8);
	assert_int_equal(int_member(o, "human"), 4);
	assert_int_equal(int_member(o, "machine"), 4);
	o = json_object_get(j, "clicks");
	assert_int_equal(int_member(o, "total"), 8);
	assert_int_equal(int_member(o, "unique"), 5);
	assert_int_equal(json_array_size(json_object_get(o, "links")), 3);
	l = json_array_get(json_object_get(o, "links"), 1);
	assert_int_equal(int_member(l, "n"), 2);
	assert_string_equal(json_string_value(json_object_get(l, "url")),
	                    "https://example.org/b?x=1&who={{email}}");
	assert_int_equal(int_member(l, "total"), 3);
	assert_int_equal(int_member(l, "unique"), 2);
	l = json_array_get(json_object_get(o, "links"), 2);
	assert_int_equal(int_member(l, "n"), 3);
	assert_int_equal(int_member(l, "total") + int_member(l, "unique"), 0);
	assert_int_equal(int_member(j, "unsubscribes"), 2);
	o = json_object_get(j, "bounces");
	assert_int_equal(int_member(o, "hard"), 2);
	assert_int_equal(int_member(o, "soft"), 2);
	assert_int_equal(int_member(o, "complaints"), 1);
	/* rates rounded to 4 decimals: 4/11 = 0.363636... */
	assert_true(rate_of(j, "open_rate") == 0.4);
	assert_true(rate_of(j, "click_rate") == 0.5);
	assert_true(rate_of(j, "click_to_open_rate") == 0.625);
	assert_true(rate_of(j, "unsubscribe_rate") == 0.2);
	assert_true(rate_of(j, "complaint_rate") == 0.1);
	assert_true(rate_of(j, "bounce_rate") == 0.3636);
	/* and printed as such, not as 0.10000000000000001 */
	assert_non_null(strstr(text, "\"complaint_rate\": 0.1,\n"));
	assert_non_null(strstr(text, "\"bounce_rate\": 0.3636\n"));
	assert_null(strstr(text, "0000000"));
	json_decref(j);
	free(text);
	report_clear(&r);
}

/* Nothing yet: every key is there all the same, counts 0, rates 0.0. */
static void
test_report_json_nothing_yet(void **state)
{
	struct fixture *f = *state;
	struct issue is;
	struct report r;
	struct herr err;
	json_t *j, *o;
	const char *k;
	json_t *v;

	assert_int_equal(report_compute(f->db, 2, &r, &err), 0);
	memset(&is, 0, sizeof is);
	is.id = 2;
	is.subject = (char *)"Two";
	snprintf(is.status, sizeof is.status, "draft");
	j = contract_json(&is, &r, NULL);
	assert_int_equal(int_member(json_object_get(j, "issue"), "id"), 2);
	json_object_foreach(json_object_get(j, "rates"), k, v)
		if (json_real_value(v) != 0.0)
			fail_msg("rates.%s is %g, not 0", k, json_real_value(v));
	o = json_object_get(j, "clicks");
	assert_int_equal(json_array_size(json_object_get(o, "links")), 1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "bounces"),
	                                                 "reasons")), 0);
	assert_int_equal(int_member(j, "recipients") + int_member(j, "unsubscribes"), 0);
	json_decref(j);
	report_clear(&r);
}

static void
test_report_round_rate(void **state)
{
	(void)state;
	assert_true(report_round_rate(2.0 / 3.0) == 0.6667);
	assert_true(report_round_rate(1.0 / 3.0) == 0.3333);
	assert_true(report_round_rate(0.00004) == 0.0);
	assert_true(report_round_rate(0.99996) == 1.0);
	assert_true(report_round_rate(0.0) == 0.0);
	assert_true(report_round_rate(1.0) == 1.0);
}

/* The text scripts read, whole: a regression here changes what they parse. */
static void
test_report_json_text_exact(void **state)
{
	static const char want[] =
		"{\n"
		"  \"issue\": {\n"
		"    \"id\": 5,\n"
		"    \"subject\": \"Q1 <results> & \\\"more\\\" \xc3\xa9\",\n"
		"    \"status\": \"sent\"\n"
		"  },\n"
		"  \"recipients\": 4,\n"
		"  \"deliveries\": {\n"
		"    \"pending\": 0,\n"
		"    \"sending\": 0,\n"
		"    \"sent\": 3,\n"
		"    \"deferred\": 0,\n"
		"    \"bounced\": 1,\n"
		"    \"failed\": 0,\n"
		"    \"skipped\": 0\n"
		"  },\n"
		"  \"opens\": {\n"
		"    \"total\": 5,\n"
		"    \"unique\": 3,\n"
		"    \"human\": 2,\n"
		"    \"machine\": 1\n"
		"  },\n"
		"  \"clicks\": {\n"
		"    \"total\": 1,\n"
		"    \"unique\": 1,\n"
		"    \"links\": [\n"
		"      {\n"
		"        \"n\": 1,\n"
		"        \"url\": \"https://example.org/?a=1&b={{email}}\",\n"
		"        \"total\": 1,\n"
		"        \"unique\": 1\n"
		"      }\n"
		"    ]\n"
		"  },\n"
		"  \"unsubscribes\": 0,\n"
		"  \"bounces\": {\n"
		"    \"hard\": 1,\n"
		"    \"soft\": 0,\n"
		"    \"complaints\": 0,\n"
		"    \"reasons\": [\n"
		"      {\n"
		"        \"class\": \"hard\",\n"
		"        \"reason\": \"userunknown\",\n"
		"        \"count\": 1,\n"
		"        \"status\": \"5.1.1\",\n"
		"        \"diagnostic\": \"550 5.1.1 user unknown\"\n"
		"      }\n"
		"    ]\n"
		"  },\n"
		"  \"rates\": {\n"
		"    \"open_rate\": 0.6667,\n"
		"    \"click_rate\": 0.3333,\n"
		"    \"click_to_open_rate\": 0.3333,\n"
		"    \"unsubscribe_rate\": 0.0,\n"
		"    \"complaint_rate\": 0.0,\n"
		"    \"bounce_rate\": 0.25\n"
		"  },\n"
		"  \"skipped\": {\n"
		"    \"unengaged\": 0\n"
		"  },\n"
		"  \"audience\": null,\n"
		"  \"leave_reasons\": {\n"
		"    \"too_many\": 2,\n"
		"    \"not_relevant\": 0,\n"
		"    \"never_signed_up\": 0,\n"
		"    \"other\": 1\n"
		"  },\n"
		"  \"tracking\": {\n"
		"    \"mode\": null,\n"
		"    \"unique\": true\n"
		"  }\n"
		"}";
	struct report_link link = { 1, (char *)"https://example.org/?a=1&b={{email}}", 1, 1 };
	struct issue is;
	struct report r;
	char *text;

	(void)state;
	memset(&is, 0, sizeof is);
	is.id = 5;
	is.subject = (char *)"Q1 <results> & \"more\" \xc3\xa9";
	snprintf(is.status, sizeof is.status, "sent");
	memset(&r, 0, sizeof r);
	r.deliveries.total = 4;
	r.deliveries.sent = 3;
	r.deliveries.bounced = 1;
	r.delivered = 3;
	r.opens.total = 5;
	r.opens.unique = 3;
	r.opens.human = 2;
	r.opens.machine = 1;
	r.clicks.total = 1;
	r.clicks.unique = 1;
	r.clicks.links = &link;
	r.clicks.n_links = 1;
	r.bounces.hard = 1;
	snprintf(r.bounces.reasons[0].cls, sizeof r.bounces.reasons[0].cls, "hard");
	snprintf(r.bounces.reasons[0].reason, sizeof r.bounces.reasons[0].reason, "userunknown");
	r.bounces.reasons[0].count = 1;
	snprintf(r.bounces.reasons[0].status, sizeof r.bounces.reasons[0].status, "5.1.1");
	snprintf(r.bounces.reasons[0].diagnostic, sizeof r.bounces.reasons[0].diagnostic,
	         "550 5.1.1 user unknown");
	r.bounces.n_reasons = 1;
	r.leave_reasons[PREFS_TOO_MANY] = 2;
	r.leave_reasons[PREFS_OTHER] = 1;
	r.rates.open = 2.0 / 3.0;
	r.rates.click = 1.0 / 3.0;
	r.rates.click_to_open = 1.0 / 3.0;
	r.rates.bounce = 1.0 / 4.0;
	assert_non_null(text = report_json_text(&is, &r));
	assert_string_equal(text, want);
	free(text);
	/* a subject that is not UTF-8 cannot be JSON: NULL, not a broken text */
	is.subject = (char *)"bad \xff byte";
	assert_null(report_json_text(&is, &r));
	assert_null(report_json(&is, &r));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report_compute_unknown_issue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_nothing_yet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_deliveries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_opens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_opens_timing_boundary, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_opens_lookup_bounds, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_clicks_per_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_unsubscribes_bounces, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_rates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_series, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_series_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_series_start_fallback, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_report_compute_query_plans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_tallies_follow_every_change, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_report_json_contract, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_json_nothing_yet, setup, teardown),
		cmocka_unit_test(test_report_round_rate),
		cmocka_unit_test(test_report_json_text_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
