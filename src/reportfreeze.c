/*
 * reportfreeze.c - an issue's figures kept before retention removes the
 * rows they are counted from (report.h, "Kept figures").
 *
 * Owns the table issue_figures (sql/017_tracking_retention.sql): one row
 * per issue, written once by report_freeze() (called by retention.c in a
 * write transaction, before the first event or delivery of that issue
 * goes) and read by report_thaw() (called by report_compute()).  The
 * `figures` JSON is this file's own format, not the --json contract, so
 * that the contract can grow without old rows needing a migration:
 *
 *   {"deliveries": [pending, sending, sent, deferred, bounced, failed,
 *                   skipped, total],
 *    "opens": [total, unique, human, machine], "clicks": [total, unique],
 *    "links": [[n, total, unique], ...], "unsubscribes": N,
 *    "bounces": [hard, soft, complaints], "start": T,
 *    "hour_opens": [...], "hour_clicks": [...] (r->hours entries),
 *    "subject_test": [holdout, holdout_sent,
 *                     [recipients, sent, opens_human, clicks] per variant]
 *                    or null}
 *
 * What is not here is read live as before: the issue, its links' URLs,
 * bounce reasons (the bounces table, which retention keeps), the leaving
 * answers, the audience, and the subject test's subjects and decision.
 */
#include "herald/report.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/subjecttest.h"

static json_t *
ints(const long long *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer((json_int_t)v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* The figures of `r` as the JSON above; NULL out of memory. */
static char *
figures_text(const struct report *r)
{
	const struct ledger_counts *c = &r->deliveries;
	long long d[8] = { c->pending, c->sending, c->sent, c->deferred, c->bounced, c->failed,
	                   c->skipped, c->total };
	long long o[4] = { r->opens.total, r->opens.unique, r->opens.human, r->opens.machine };
	long long k[2] = { r->clicks.total, r->clicks.unique };
	long long b[3] = { r->bounces.hard, r->bounces.soft, r->bounces.complaints };
	json_t *j, *links, *st = json_null();
	char *text;
	size_t i;

	if (!(links = json_array()))
		return NULL;
	for (i = 0; i < r->clicks.n_links; i++) {
		long long l[3] = { r->clicks.links[i].n, r->clicks.links[i].total,
		                   r->clicks.links[i].unique };

		if (json_array_append_new(links, ints(l, 3)) < 0) {
			json_decref(links);
			return NULL;
		}
	}
	if (r->subject_test) {
		const struct subjecttest *t = r->subject_test;

		st = json_pack("[I, I]", (json_int_t)t->holdout, (json_int_t)t->holdout_sent);
		for (i = 0; st && i < t->n; i++) {
			long long v[4] = { t->v[i].recipients, t->v[i].sent, t->v[i].opens_human,
			                   t->v[i].clicks };

			if (json_array_append_new(st, ints(v, 4)) < 0) {
				json_decref(st);
				st = NULL;
			}
		}
		if (!st) {
			json_decref(links);
			return NULL;
		}
	}
	/* "o" steals every array, also when json_pack fails */
	j = json_pack("{s:o, s:o, s:o, s:o, s:I, s:o, s:I, s:o, s:o, s:o}",
	              "deliveries", ints(d, 8), "opens", ints(o, 4), "clicks", ints(k, 2),
	              "links", links, "unsubscribes", (json_int_t)r->unsubscribes,
	              "bounces", ints(b, 3), "start", (json_int_t)r->start,
	              "hour_opens", ints(r->hour_opens, (size_t)r->hours),
	              "hour_clicks", ints(r->hour_clicks, (size_t)r->hours),
	              "subject_test", st);
	if (!j)
		return NULL;
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

int
report_freeze(sqlite3 *db, long long issue_id, int *kept, struct herr *err)
{
	struct report r;
	sqlite3_stmt *st;
	char *text;
	int rc;

	*kept = 0;
	if (db_prepare(db, &st, "SELECT 1 FROM issue_figures WHERE issue_id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return db_error(db, err, "read kept figures");
	if (report_compute(db, issue_id, &r, err) < 0) {
		report_clear(&r);
		return -1;
	}
	text = figures_text(&r);
	report_clear(&r);
	if (!text)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (db_prepare(db, &st, "INSERT INTO issue_figures (issue_id, frozen_at, figures) "
	               "VALUES (?1, ?2, ?3)", err) < 0) {
		free(text);
		return -1;
	}
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_int64(st, 2, db_now());
	sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(text);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "keep the figures");
	*kept = 1;
	return 0;
}

static long long
at(json_t *a, size_t i)
{
	return (long long)json_integer_value(json_array_get(a, i));
}

/* Apply the kept JSON to `r`; -1 when it is not of the shape above. */
static int
apply(struct report *r, json_t *j)
{
	json_t *d = json_object_get(j, "deliveries"), *o = json_object_get(j, "opens"),
	       *k = json_object_get(j, "clicks"), *links = json_object_get(j, "links"),
	       *b = json_object_get(j, "bounces"), *ho = json_object_get(j, "hour_opens"),
	       *hc = json_object_get(j, "hour_clicks"), *st = json_object_get(j, "subject_test"),
	       *v;
	struct ledger_counts *c = &r->deliveries;
	size_t i, n;

	if (json_array_size(d) != 8 || json_array_size(o) != 4 || json_array_size(k) != 2 ||
	    !json_is_array(links) || json_array_size(b) != 3 || !json_is_array(ho) ||
	    json_array_size(ho) != json_array_size(hc) || json_array_size(ho) > REPORT_HOURS)
		return -1;
	c->pending = at(d, 0);
	c->sending = at(d, 1);
	c->sent = at(d, 2);
	c->deferred = at(d, 3);
	c->bounced = at(d, 4);
	c->failed = at(d, 5);
	c->skipped = at(d, 6);
	c->total = at(d, 7);
	r->opens.total = at(o, 0);
	r->opens.unique = at(o, 1);
	r->opens.human = at(o, 2);
	r->opens.machine = at(o, 3);
	r->clicks.total = at(k, 0);
	r->clicks.unique = at(k, 1);
	/* the links are the issue's, read live; their counts are kept */
	for (i = 0; i < r->clicks.n_links; i++) {
		r->clicks.links[i].total = r->clicks.links[i].unique = 0;
		json_array_foreach(links, n, v)
			if (at(v, 0) == r->clicks.links[i].n) {
				r->clicks.links[i].total = at(v, 1);
				r->clicks.links[i].unique = at(v, 2);
			}
	}
	r->unsubscribes = (long long)json_integer_value(json_object_get(j, "unsubscribes"));
	r->bounces.hard = at(b, 0);
	r->bounces.soft = at(b, 1);
	r->bounces.complaints = at(b, 2);
	r->start = (long long)json_integer_value(json_object_get(j, "start"));
	memset(r->hour_opens, 0, sizeof r->hour_opens);
	memset(r->hour_clicks, 0, sizeof r->hour_clicks);
	r->hours = (int)json_array_size(ho);
	for (i = 0; i < (size_t)r->hours; i++) {
		r->hour_opens[i] = at(ho, i);
		r->hour_clicks[i] = at(hc, i);
	}
	if (r->subject_test && json_is_array(st)) {
		struct subjecttest *t = r->subject_test;

		t->holdout = at(st, 0);
		t->holdout_sent = at(st, 1);
		for (i = 0; i < t->n && i + 2 < json_array_size(st); i++) {
			v = json_array_get(st, i + 2);
			t->v[i].recipients = at(v, 0);
			t->v[i].sent = at(v, 1);
			t->v[i].opens_human = at(v, 2);
			t->v[i].clicks = at(v, 3);
		}
	}
	return 0;
}

int
report_thaw(sqlite3 *db, struct report *r, struct herr *err)
{
	sqlite3_stmt *st;
	json_t *j = NULL;
	int rc, bad = 0;

	if (db_prepare(db, &st, "SELECT figures FROM issue_figures WHERE issue_id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, r->issue_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
		bad = !j || apply(r, j) < 0;
		json_decref(j);
		r->frozen = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read kept figures");
	if (bad)
		return herr_set(err, EX_DATAERR, NULL, "issue %lld: its kept figures cannot be read",
		                r->issue_id);
	return 0;
}
