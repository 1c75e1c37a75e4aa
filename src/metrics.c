/*
 * metrics.c - the Prometheus text exposition of serve's figures and the
 * database's (see metrics.h).  Owns no table.
 *
 * Format: https://prometheus.io/docs/instrumenting/exposition_formats/ -
 * a "# HELP" and a "# TYPE" line before each family's samples, label
 * values in double quotes with \, " and newline escaped.  Every label
 * value written here is ours (endpoint names, status words, ids), so
 * none needs escaping; a status read from the database is still checked
 * to be one of the words the schema allows.
 */
#include "herald/metrics.h"

#include <stdio.h>
#include <string.h>

#include "herald/db.h"
#include "herald/ledger.h"

static int
family(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A gauge family `name` from one "SELECT word, count(*) ... GROUP BY
 * word": a sample with label `label` for every word of `words` (0 when
 * absent). */
static int
counts_by(sqlite3 *db, struct buf *out, const char *name, const char *help,
          const char *label, const char *const *words, const char *sql, struct herr *err)
{
	sqlite3_stmt *st;
	long long n[8] = { 0 };
	size_t i;
	int rc;

	if (family(out, name, "gauge", help) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "out of memory");
	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *w = (const char *)sqlite3_column_text(st, 0);

		for (i = 0; i < 8 && words[i]; i++)
			if (w && !strcmp(w, words[i]))
				n[i] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, name);
	for (i = 0; i < 8 && words[i]; i++)
		if (buf_addf(out, "%s{%s=\"%s\"} %lld\n", name, label, words[i], n[i]) < 0)
			return herr_set(err, EX_SOFTWARE, NULL, "out of memory");
	return 0;
}

static const char *const issue_states[] = {
	"draft", "scheduled", "sending", "paused", "sent", "cancelled", NULL
};
static const char *const outbox_states[] = { "pending", "failed", NULL };
static const char *const api_mail_states[] = { "queued", "deferred", NULL };

/* The sent count this issue had at the previous scrape, and remember
 * this one's. */
static double
rate_of(struct metrics_state *st, long long issue, long long sent, double now)
{
	size_t i;
	double rate = 0;

	for (i = 0; i < st->n; i++)
		if (st->prev[i].issue_id == issue)
			break;
	if (i < st->n) {
		if (now > st->prev[i].at && sent >= st->prev[i].sent)
			rate = (double)(sent - st->prev[i].sent) / (now - st->prev[i].at);
	} else if (st->n < METRICS_ISSUES_MAX)
		st->n++;
	else
		i = 0; /* more issues at once than kept: forget the oldest slot */
	st->prev[i].issue_id = issue;
	st->prev[i].sent = sent;
	st->prev[i].at = now;
	return rate;
}

/* Every issue being sent: its deliveries by status and its rate. */
static int
sending(sqlite3 *db, struct metrics_state *st, double now, struct buf *out, struct herr *err)
{
	sqlite3_stmt *q;
	long long ids[METRICS_ISSUES_MAX];
	struct ledger_counts c[METRICS_ISSUES_MAX];
	size_t n = 0, i;
	int rc;

	if (db_prepare(db, &q, "SELECT id FROM issues WHERE status = 'sending' "
	               "ORDER BY id DESC LIMIT 16", err) < 0)
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < METRICS_ISSUES_MAX)
		ids[n++] = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(db, err, "read the issues being sent");
	for (i = 0; i < n; i++)
		if (ledger_counts(db, ids[i], &c[i], err) < 0)
			return -1;
	if (family(out, "herald_issue_deliveries", "gauge",
	           "Deliveries of each issue being sent, by status.") < 0)
		goto oom;
	for (i = 0; i < n; i++) {
		const struct { const char *s; long long v; } by[] = {
			{ "pending", c[i].pending }, { "sending", c[i].sending },
			{ "sent", c[i].sent }, { "deferred", c[i].deferred },
			{ "bounced", c[i].bounced }, { "failed", c[i].failed },
			{ "skipped", c[i].skipped }, { "total", c[i].total },
		};
		size_t k;

		for (k = 0; k < sizeof by / sizeof by[0]; k++)
			if (buf_addf(out, "herald_issue_deliveries{issue=\"%lld\",status=\"%s\"} %lld\n",
			             ids[i], by[k].s, by[k].v) < 0)
				goto oom;
	}
	if (family(out, "herald_issue_send_rate", "gauge",
	           "Messages a second of each issue being sent, since the previous scrape "
	           "(0 at the first).") < 0)
		goto oom;
	for (i = 0; i < n; i++)
		if (buf_addf(out, "herald_issue_send_rate{issue=\"%lld\"} %.3f\n", ids[i],
		             rate_of(st, ids[i], c[i].sent, now)) < 0)
			goto oom;
	return 0;
oom:
	return herr_set(err, EX_SOFTWARE, NULL, "out of memory");
}

int
metrics_render(sqlite3 *db, const struct metrics_live *live, struct metrics_state *st,
               double now, struct buf *out, struct herr *err)
{
	size_t i;

	if (family(out, "herald_build_info", "gauge", "The running herald's version.") < 0 ||
	    buf_addf(out, "herald_build_info{version=\"%s\"} 1\n", HERALD_VERSION) < 0 ||
	    family(out, "herald_serve_start_time_seconds", "gauge",
	           "When herald serve started, Unix time.") < 0 ||
	    buf_addf(out, "herald_serve_start_time_seconds %.3f\n", live->started_at) < 0 ||
	    family(out, "herald_http_requests_total", "counter",
	           "Requests answered, by endpoint and HTTP status.") < 0)
		goto oom;
	for (i = 0; i < live->n_http; i++) {
		char code[16];

		if (!live->http[i].n)
			continue;
		if (live->http[i].code)
			snprintf(code, sizeof code, "%u", live->http[i].code);
		else
			snprintf(code, sizeof code, "other");
		if (buf_addf(out, "herald_http_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
		             live->http[i].endpoint, code, live->http[i].n) < 0)
			goto oom;
	}
	if (family(out, "herald_http_requests_in_flight", "gauge",
	           "Requests being answered now.") < 0 ||
	    buf_addf(out, "herald_http_requests_in_flight %lld\n", live->in_flight) < 0 ||
	    family(out, "herald_events_written_total", "counter",
	           "Opens and clicks written to the database by this serve.") < 0 ||
	    buf_addf(out, "herald_events_written_total %lld\n", live->events_written) < 0)
		goto oom;
	if (counts_by(db, out, "herald_issues", "Issues by state.", "status", issue_states,
	              "SELECT status, count(*) FROM issues GROUP BY status", err) < 0 ||
	    sending(db, st, now, out, err) < 0 ||
	    counts_by(db, out, "herald_webhook_outbox",
	              "Webhook deliveries waiting (pending) or given up (failed).", "status",
	              outbox_states, "SELECT status, count(*) FROM webhook_outbox WHERE "
	              "status = 'pending' OR status = 'failed' GROUP BY status", err) < 0 ||
	    counts_by(db, out, "herald_api_mail_queue",
	              "One-off mails of the API not sent yet, by status.", "status",
	              api_mail_states, "SELECT status, count(*) FROM api_mails WHERE "
	              "status = 'queued' OR status = 'deferred' GROUP BY status", err) < 0)
		return -1;
	return 0;
oom:
	return herr_set(err, EX_SOFTWARE, NULL, "out of memory");
}
