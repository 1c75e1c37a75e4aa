/*
 * report.c - the figures of one issue's send (definitions in report.h).
 *
 * Owns nothing in the database: it only reads deliveries, events and the
 * issue's links, which the sender (ledger.c), the web server (eventlog.c,
 * subscriber.c) and `herald bounce` write.  Also owns the JSON object of
 * the figures, the contract `herald stats --json` prints (report_json()).
 * Called by src/cmd/stats.c; reportpage.c renders the same figures as HTML.
 * Once retention has removed an issue's rows, the figures counted from
 * them come from issue_figures instead (report_thaw(), reportfreeze.c).
 *
 * What grows with the list is not scanned (issue 19: 16 s at ten million
 * subscribers before):
 *   - deliveries by status and the opens (total, unique, human) are counts
 *     that sql/026's triggers keep with the rows (ledger_counts(),
 *     open_tallies); opens_sql below is the definition they agree with,
 *     kept for the tests (report_opens_scan());
 *   - the first sent_at, read only for an issue without started_at: the
 *     deliveries primary-key range.
 * The rest is a prepared statement with the issue id bound, restricted to
 * one issue through an index:
 *   - clicks, total, unique and per link: events_clicks (issue_id, kind,
 *     subscriber_id, detail) WHERE kind = 'click', read alone (covering);
 *   - unsubscribes, bounces, complaints: (issue_id, kind) ranges;
 *   - the per-hour series: events_by_issue_time (issue_id, kind, at),
 *     a covering range scan per kind (it grows with the opens of the
 *     first three days: 0.25 s for 600,000 here).
 * EXPLAIN QUERY PLAN of each is checked in tests/unit/test_report.c.
 *
 * The queries run in one read transaction so that the figures describe
 * one moment although the web server keeps adding events (WAL: the read
 * never blocks the writer).
 */
#include "herald/report.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/subjecttest.h"

/*
 * Opens, one row per subscriber (NULL: events of removed subscribers),
 * then summed.  "human" is 1 for a subscriber with at least one open that
 * is not a machine open (report.h: REPORT_SQL_MACHINE_OPEN, the one text
 * of that rule; an event without a ua field is human unless its timing
 * says otherwise).  ?2 is REPORT_PREFETCH_SECS.
 *
 * The delivery is looked up only for opens that could fall in that window:
 * an open later than the issue's last sent_at (?3) plus the window cannot,
 * and most opens come hours after the send.  CASE evaluates the correlated
 * subquery only when reached; on 100,000 deliveries and 140,000 opens this
 * takes the query from 0.45 s (a join for every open) to 0.27 s.  No
 * delivery or no sent_at (NULL) means no timing rule: human.
 */
static const char opens_sql[] =
	"SELECT ifnull(sum(n), 0), count(sid), ifnull(sum(sid IS NOT NULL AND human), 0) "
	"FROM (SELECT e.subscriber_id AS sid, count(*) AS n, "
	"             max(CASE WHEN e.at > ?3 + ?2 THEN NOT " REPORT_SQL_MACHINE_UA("e") " "
	"                      ELSE NOT " REPORT_SQL_MACHINE_OPEN("e") " END) AS human "
	"      FROM events e WHERE e.issue_id = ?1 AND e.kind = 'open' "
	"      GROUP BY e.subscriber_id)";

static const char clicks_sql[] =
	"SELECT count(*), count(DISTINCT subscriber_id) FROM events "
	"WHERE issue_id = ?1 AND kind = 'click'";

/* Every link of the issue, with the clicks on it (none: zeros). */
static const char links_sql[] =
	"WITH c AS (SELECT json_extract(detail, '$.n') AS n, count(*) AS total, "
	"                  count(DISTINCT subscriber_id) AS uniq "
	"           FROM events WHERE issue_id = ?1 AND kind = 'click' GROUP BY 1) "
	"SELECT j.key + 1, j.value, ifnull(c.total, 0), ifnull(c.uniq, 0) "
	"FROM issues i, json_each(i.links) j LEFT JOIN c ON c.n = j.key + 1 "
	"WHERE i.id = ?1 ORDER BY j.key";

static const char unsubscribes_sql[] =
	"SELECT count(DISTINCT subscriber_id) FROM events "
	"WHERE issue_id = ?1 AND kind = 'unsubscribe'";

/* Per subscriber: hard if any bounce was hard, else soft if any was. */
static const char bounces_sql[] =
	"SELECT ifnull(sum(hard), 0), ifnull(sum(NOT hard AND soft), 0) "
	"FROM (SELECT max(json_extract(detail, '$.class') IS 'hard') AS hard, "
	"             max(json_extract(detail, '$.class') IS 'soft') AS soft "
	"      FROM events WHERE issue_id = ?1 AND kind = 'bounce' "
	"      AND subscriber_id IS NOT NULL GROUP BY subscriber_id)";

static const char complaints_sql[] =
	"SELECT count(DISTINCT subscriber_id) FROM events "
	"WHERE issue_id = ?1 AND kind = 'complaint'";

static const char open_tallies_sql[] =
	"SELECT total, uniq, human FROM open_tallies WHERE issue_id = ?1";

/* When the issue started sending (NULL: never). */
static const char start_sql[] =
	"SELECT started_at, ifnull(tracking_mode, '') FROM issues WHERE id = ?1";

/* The first and last delivery: the series' start when started_at is not
 * set, and the bound of the prefetch lookups in opens_sql (the scan). */
static const char sent_sql[] =
	"SELECT ifnull(min(sent_at), 0), max(sent_at) FROM deliveries WHERE issue_id = ?1";

/* CAST: an `at` stored as a real (a script's insert) still falls in its
 * whole hour. */
static const char hours_sql[] =
	"SELECT kind, CAST((at - ?2) / 3600 AS INTEGER) AS h, count(*) FROM events "
	"WHERE issue_id = ?1 AND kind IN ('open', 'click') AND at >= ?2 AND at < ?3 "
	"GROUP BY kind, h";

/* Stands for "no sent_at" as opens_sql's ?3: every open is later. */
#define NO_SENT_AT (-(1LL << 62))

/* Prepare `sql` with the issue id as ?1 (and `p2`, `p3` when the statement
 * has them). */
static int
prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql, long long issue_id, long long p2,
        long long p3, struct herr *err)
{
	if (db_prepare(db, st, sql, err) < 0)
		return -1;
	sqlite3_bind_int64(*st, 1, issue_id);
	if (sqlite3_bind_parameter_count(*st) >= 2)
		sqlite3_bind_int64(*st, 2, p2);
	if (sqlite3_bind_parameter_count(*st) >= 3)
		sqlite3_bind_int64(*st, 3, p3);
	return 0;
}

/* Run a statement that yields exactly one row of `n` integers into out[]
 * (NULL reads as 0). */
static int
one_row(sqlite3 *db, const char *sql, long long issue_id, long long p2, long long p3,
        long long *out, int n, const char *what, struct herr *err)
{
	sqlite3_stmt *st;
	int i, rc;

	if (prepare(db, &st, sql, issue_id, p2, p3, err) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		for (i = 0; i < n; i++)
			out[i] = sqlite3_column_int64(st, i);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, what);
	return 0;
}

static int
load_links(sqlite3 *db, struct report *r, struct herr *err)
{
	struct report_link *l;
	sqlite3_stmt *st;
	const char *url;
	size_t cap = 0;
	int rc;

	if (prepare(db, &st, links_sql, r->issue_id, 0, 0, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (r->clicks.n_links == cap) {
			cap = cap ? cap * 2 : 16;
			l = realloc(r->clicks.links, cap * sizeof *l);
			if (!l)
				goto oom;
			r->clicks.links = l;
		}
		l = &r->clicks.links[r->clicks.n_links];
		url = (const char *)sqlite3_column_text(st, 1);
		if (!(l->url = strdup(url ? url : "")))
			goto oom;
		l->n = sqlite3_column_int(st, 0);
		l->total = sqlite3_column_int64(st, 2);
		l->unique = sqlite3_column_int64(st, 3);
		r->clicks.n_links++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "count clicks per link");
	return 0;
oom:
	sqlite3_finalize(st);
	return herr_set(err, EX_OSERR, NULL, "out of memory");
}

/* Failures by class and reason, with one example of what the remote
 * side said (the most recent). */
#define REPORT_REASONS_MAX_SQL "32" /* = REPORT_REASONS_MAX */
static const char reasons_sql[] =
	"SELECT class, reason, count(DISTINCT ifnull(subscriber_id, recipient)), "
	"       (SELECT b2.status FROM bounces b2 WHERE b2.issue_id = ?1 AND b2.class = b.class "
	"        AND b2.reason = b.reason ORDER BY b2.at DESC, b2.id DESC LIMIT 1), "
	"       (SELECT b2.diagnostic FROM bounces b2 WHERE b2.issue_id = ?1 AND b2.class = b.class "
	"        AND b2.reason = b.reason ORDER BY b2.at DESC, b2.id DESC LIMIT 1) "
	"FROM bounces b WHERE issue_id = ?1 AND class <> 'delayed' GROUP BY class, reason "
	"ORDER BY 3 DESC, class, reason LIMIT " REPORT_REASONS_MAX_SQL;

static int
load_reasons(sqlite3 *db, struct report *r, struct herr *err)
{
	struct report_reason *x;
	sqlite3_stmt *st;
	int rc;

	if (prepare(db, &st, reasons_sql, r->issue_id, 0, 0, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->bounces.n_reasons < REPORT_REASONS_MAX) {
		x = &r->bounces.reasons[r->bounces.n_reasons++];
		snprintf(x->cls, sizeof x->cls, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(x->reason, sizeof x->reason, "%s", (const char *)sqlite3_column_text(st, 1));
		x->count = sqlite3_column_int64(st, 2);
		snprintf(x->status, sizeof x->status, "%s",
		         sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
		snprintf(x->diagnostic, sizeof x->diagnostic, "%s",
		         sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(db, err, "count bounces by reason");
	return 0;
}

static int
load_series(sqlite3 *db, struct report *r, struct herr *err)
{
	sqlite3_stmt *st;
	const char *kind;
	long long h, n;
	int rc;

	if (!r->start)
		return 0;
	if (prepare(db, &st, hours_sql, r->issue_id, r->start,
	            r->start + (long long)REPORT_HOURS * 3600, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		kind = (const char *)sqlite3_column_text(st, 0);
		h = sqlite3_column_int64(st, 1);
		n = sqlite3_column_int64(st, 2);
		if (h < 0 || h >= REPORT_HOURS || !kind)
			continue; /* cannot happen: the range bounds it */
		if (!strcmp(kind, "open"))
			r->hour_opens[h] = n;
		else
			r->hour_clicks[h] = n;
		if (h + 1 > r->hours)
			r->hours = (int)h + 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "count events per hour");
	return 0;
}

static double
ratio(long long a, long long b)
{
	return b > 0 ? (double)a / (double)b : 0.0;
}

/* The first and last sent_at of the issue's deliveries (last: NO_SENT_AT
 * when none was sent).  A range of the deliveries primary key. */
static int
sent_range(sqlite3 *db, long long issue_id, long long *first, long long *last,
           struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(db, &st, sent_sql, issue_id, 0, 0, err) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*first = sqlite3_column_int64(st, 0);
		/* nothing sent: no open is within the window of a delivery */
		*last = sqlite3_column_type(st, 1) == SQLITE_NULL ? NO_SENT_AT
		        : sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read delivery times");
	return 0;
}

int
report_opens_scan(sqlite3 *db, long long issue_id, long long out[3], struct herr *err)
{
	long long first, last;

	if (sent_range(db, issue_id, &first, &last, err) < 0)
		return -1;
	return one_row(db, opens_sql, issue_id, REPORT_PREFETCH_SECS, last, out, 3,
	               "count opens", err);
}

static int
compute(sqlite3 *db, struct report *r, struct herr *err)
{
	long long v[3] = { 0, 0, 0 }, last;
	sqlite3_stmt *st;
	int i, rc;

	if (prepare(db, &st, start_sql, r->issue_id, 0, 0, err) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->start = sqlite3_column_int64(st, 0); /* NULL reads as 0: never sent */
		snprintf(r->tracking_mode, sizeof r->tracking_mode, "%s",
		         (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no issue %lld", r->issue_id);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read issue");
	/* no started_at (a per-subscriber issue): the series starts at the
	 * first delivery; the one scan left, and only for such an issue */
	if (!r->start && sent_range(db, r->issue_id, &r->start, &last, err) < 0)
		return -1;

	if (ledger_counts(db, r->issue_id, &r->deliveries, err) < 0 ||
	    audience_sent_get(db, r->issue_id, &r->audience, err) < 0)
		return -1;
	r->delivered = r->deliveries.sent;

	/* no row: no open yet */
	if (prepare(db, &st, open_tallies_sql, r->issue_id, 0, 0, err) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		for (i = 0; i < 3; i++)
			v[i] = sqlite3_column_int64(st, i);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "count opens");
	r->opens.total = v[0];
	r->opens.unique = v[1];
	r->opens.human = v[2];
	r->opens.machine = v[1] - v[2];

	if (one_row(db, clicks_sql, r->issue_id, 0, 0, v, 2, "count clicks", err) < 0 ||
	    load_links(db, r, err) < 0)
		return -1;
	r->clicks.total = v[0];
	r->clicks.unique = v[1];

	if (one_row(db, unsubscribes_sql, r->issue_id, 0, 0, &r->unsubscribes, 1,
	            "count unsubscribes", err) < 0 ||
	    prefs_survey_counts_issue(db, r->issue_id, r->leave_reasons, err) < 0 ||
	    one_row(db, bounces_sql, r->issue_id, 0, 0, v, 2, "count bounces", err) < 0 ||
	    one_row(db, complaints_sql, r->issue_id, 0, 0, &r->bounces.complaints, 1,
	            "count complaints", err) < 0)
		return -1;
	r->bounces.hard = v[0];
	r->bounces.soft = v[1];
	if (load_reasons(db, r, err) < 0)
		return -1;

	if (load_series(db, r, err) < 0)
		return -1;

	/* a subject test's per-variant figures are subjecttest.c's */
	if (!(r->subject_test = calloc(1, sizeof *r->subject_test)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (subjecttest_load(db, r->issue_id, r->subject_test, err) < 0 ||
	    (r->subject_test->n && subjecttest_figures(db, r->subject_test, err) < 0))
		return -1;
	if (!r->subject_test->n) {
		free(r->subject_test);
		r->subject_test = NULL;
	}

	/* retention kept the figures before removing rows (report.h) */
	if (report_thaw(db, r, err) < 0)
		return -1;
	r->delivered = r->deliveries.sent;

	r->rates.open = ratio(r->opens.human, r->delivered);
	r->rates.click = ratio(r->clicks.unique, r->delivered);
	r->rates.click_to_open = ratio(r->clicks.unique, r->opens.unique);
	r->rates.unsubscribe = ratio(r->unsubscribes, r->delivered);
	r->rates.complaint = ratio(r->bounces.complaints, r->delivered);
	r->rates.bounce = ratio(r->bounces.hard + r->bounces.soft,
	                        r->delivered + r->deliveries.bounced);
	return 0;
}

int
report_compute(sqlite3 *db, long long issue_id, struct report *r, struct herr *err)
{
	int own_txn = sqlite3_get_autocommit(db), rc;

	memset(r, 0, sizeof *r);
	r->issue_id = issue_id;
	/* A deferred BEGIN takes the read snapshot at the first SELECT and no
	 * write lock, so the web server goes on writing meanwhile. */
	if (own_txn && db_exec(db, "BEGIN", err) < 0)
		return -1;
	rc = compute(db, r, err);
	if (own_txn)
		db_rollback(db); /* nothing was written: ending the read is all */
	return rc;
}

void
report_clear(struct report *r)
{
	size_t i;

	for (i = 0; i < r->clicks.n_links; i++)
		free(r->clicks.links[i].url);
	free(r->clicks.links);
	if (r->subject_test)
		subjecttest_clear(r->subject_test);
	free(r->subject_test);
	memset(r, 0, sizeof *r);
}

double
report_round_rate(double rate)
{
	return round(rate * 10000.0) / 10000.0;
}

/* [{n, url, total, unique}] per link of the issue. */
static json_t *
links_json(const struct report *r)
{
	json_t *a = json_array();
	size_t i;

	if (!a)
		return NULL;
	for (i = 0; i < r->clicks.n_links; i++) {
		const struct report_link *l = &r->clicks.links[i];

		if (json_array_append_new(a, json_pack("{s:i, s:s, s:I, s:I}", "n", l->n,
		                                       "url", l->url, "total", (json_int_t)l->total,
		                                       "unique", (json_int_t)l->unique)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* [{class, reason, count, status, diagnostic}], most frequent first. */
static json_t *
reasons_json(const struct report *r)
{
	json_t *a = json_array();
	size_t i;

	if (!a)
		return NULL;
	for (i = 0; i < r->bounces.n_reasons; i++) {
		const struct report_reason *x = &r->bounces.reasons[i];

		if (json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:s, s:s}",
		                          "class", x->cls, "reason", x->reason,
		                          "count", (json_int_t)x->count, "status", x->status,
		                          "diagnostic", x->diagnostic)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int
report_audience_text(const struct report *r, struct buf *out)
{
	const struct audience_sent *a = &r->audience;
	json_t *lists, *v;
	size_t i;

	if (!a->found)
		return buf_adds(out, "not recorded (the send has not started, or started "
		                "before herald kept it)");
	if (!(lists = json_loads(a->lists, 0, NULL)))
		return -1;
	if (buf_adds(out, json_array_size(lists) == 1 ? "list " : "lists ") < 0)
		goto oom;
	json_array_foreach(lists, i, v)
		if (buf_addf(out, "%s%s", i ? ", " : "", json_string_value(v)) < 0)
			goto oom;
	json_decref(lists);
	if (a->segment[0] && buf_addf(out, "; segment %s: %s", a->segment, a->expr) < 0)
		return -1;
	if (!a->segment[0] && a->expr[0] && buf_addf(out, "; where: %s", a->expr) < 0)
		return -1;
	if (a->sunset_after)
		return buf_addf(out, "; sunset after %lld%s", a->sunset_after % 86400 ?
		                a->sunset_after / 3600 : a->sunset_after / 86400,
		                a->sunset_after % 86400 ? "h" : "d");
	if (a->sunset_skipped)
		return buf_adds(out, "; sunset not applied (the filter targets engagement)");
	return 0;
oom:
	json_decref(lists);
	return -1;
}

static int audience_json(json_t *j, const struct report *r);
static int leave_reasons_json(json_t *j, const struct report *r);

json_t *
report_json(const struct issue *is, const struct report *r)
{
	const struct ledger_counts *c = &r->deliveries;
	json_t *links, *reasons, *j;

	if (!(links = links_json(r)))
		return NULL;
	if (!(reasons = reasons_json(r))) {
		json_decref(links);
		return NULL;
	}
	/* "o" steals `links` and `reasons`, also when json_pack fails */
	j = json_pack("{s:{s:I, s:s, s:s}, s:I,"
	                 " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	                 " s:{s:I, s:I, s:I, s:I},"
	                 " s:{s:I, s:I, s:o},"
	                 " s:I,"
	                 " s:{s:I, s:I, s:I, s:o},"
	                 " s:{s:f, s:f, s:f, s:f, s:f, s:f}}",
	                 "issue", "id", (json_int_t)is->id, "subject", is->subject,
	                 "status", is->status,
	                 "recipients", (json_int_t)c->total,
	                 "deliveries", "pending", (json_int_t)c->pending,
	                 "sending", (json_int_t)c->sending, "sent", (json_int_t)c->sent,
	                 "deferred", (json_int_t)c->deferred, "bounced", (json_int_t)c->bounced,
	                 "failed", (json_int_t)c->failed, "skipped", (json_int_t)c->skipped,
	                 "opens", "total", (json_int_t)r->opens.total,
	                 "unique", (json_int_t)r->opens.unique,
	                 "human", (json_int_t)r->opens.human,
	                 "machine", (json_int_t)r->opens.machine,
	                 "clicks", "total", (json_int_t)r->clicks.total,
	                 "unique", (json_int_t)r->clicks.unique, "links", links,
	                 "unsubscribes", (json_int_t)r->unsubscribes,
	                 "bounces", "hard", (json_int_t)r->bounces.hard,
	                 "soft", (json_int_t)r->bounces.soft,
	                 "complaints", (json_int_t)r->bounces.complaints, "reasons", reasons,
	                 "rates", "open_rate", report_round_rate(r->rates.open),
	                 "click_rate", report_round_rate(r->rates.click),
	                 "click_to_open_rate", report_round_rate(r->rates.click_to_open),
	                 "unsubscribe_rate", report_round_rate(r->rates.unsubscribe),
	                 "complaint_rate", report_round_rate(r->rates.complaint),
	                 "bounce_rate", report_round_rate(r->rates.bounce));
	if (j && audience_json(j, r) < 0) {
		json_decref(j);
		return NULL;
	}
	if (j && leave_reasons_json(j, r) < 0) {
		json_decref(j);
		return NULL;
	}
	/* `tracking` (report.h): no unique count under anonymous tracking */
	if (j && json_object_set_new(j, "tracking", json_pack("{s:s?, s:b}", "mode",
	                             r->tracking_mode[0] ? r->tracking_mode : NULL, "unique",
	                             strcmp(r->tracking_mode, "anonymous") != 0)) < 0) {
		json_decref(j);
		return NULL;
	}
	if (j && r->subject_test &&
	    json_object_set_new(j, "subject_test", subjecttest_json(r->subject_test)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* `leave_reasons` (report.h), added to `j`; -1 out of memory. */
static int
leave_reasons_json(json_t *j, const struct report *r)
{
	json_t *o = json_object();
	int i;

	if (!o)
		return -1;
	for (i = 0; i < PREFS_N_REASONS; i++)
		if (json_object_set_new(o, prefs_reason_name((enum prefs_reason)i),
		                        json_integer((json_int_t)r->leave_reasons[i])) < 0) {
			json_decref(o);
			return -1;
		}
	return json_object_set_new(j, "leave_reasons", o);
}

/* `skipped` and `audience` (report.h), added to `j`; -1 out of memory. */
static int
audience_json(json_t *j, const struct report *r)
{
	const struct audience_sent *a = &r->audience;
	json_t *lists, *o;

	if (json_object_set_new(j, "skipped", json_pack("{s:I}", "unengaged",
	                        (json_int_t)a->unengaged)) < 0)
		return -1;
	if (!a->found)
		return json_object_set_new(j, "audience", json_null());
	if (!(lists = json_loads(a->lists, 0, NULL)))
		return -1;
	o = json_pack("{s:o, s:s?, s:s?, s:I, s:b}", "lists", lists,
	              "segment", a->segment[0] ? a->segment : NULL,
	              "where", a->expr[0] ? a->expr : NULL,
	              "sunset_after", (json_int_t)a->sunset_after,
	              "sunset_skipped", a->sunset_skipped);
	return json_object_set_new(j, "audience", o);
}

char *
report_json_text(const struct issue *is, const struct report *r)
{
	json_t *j = report_json(is, r);
	char *s;

	if (!j)
		return NULL;
	/* jansson's default precision (17 digits) prints 0.1234 as
	 * 0.12340000000000001; 10 digits show every rounded rate exactly. */
	s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	json_decref(j);
	return s;
}
