/*
 * metrics.h - what `herald serve` shows a Prometheus scraper on GET
 * /metrics: the text exposition format (version 0.0.4) of the web
 * server's own counters, passed in by the caller, and of figures read
 * from the database at each scrape - the issues by state, the progress of
 * every issue being sent (its deliveries by status, and the rate since
 * the previous scrape), the webhook outbox and the API's mail queue.
 *
 * It reads only, one small query each, so that a scrape every few seconds
 * costs the database nothing it would notice: the delivery counts use the
 * deliveries_by_status index (ledger_counts()), the outbox its due index.
 * The listener, its allow-list and its thread are web's (webmetrics.c).
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <sqlite3.h>

#include "herald/buf.h"
#include "herald/herr.h"

/* Requests answered for one endpoint with one status. */
struct metrics_http_count {
	const char        *endpoint;  /* "open", "click", "api", ... ("other": no route) */
	unsigned           code;      /* HTTP status; 0: one not in the table */
	unsigned long long n;
};

/* The serving process's figures, which only it knows. */
struct metrics_live {
	double     started_at;        /* Unix time serve started */
	long long  in_flight;         /* requests being answered */
	long long  events_written;    /* opens and clicks committed by the event writer */
	const struct metrics_http_count *http;
	size_t     n_http;
};

/* The previous scrape's sent count of each issue being sent, for the
 * rate; zeroed before the first scrape, kept by the caller between. */
#define METRICS_ISSUES_MAX 16
struct metrics_state {
	struct { long long issue_id, sent; double at; } prev[METRICS_ISSUES_MAX];
	size_t n;
};

/*
 * Append the exposition to `out`.  `now` is Unix time (db_now_f()).  At
 * most METRICS_ISSUES_MAX issues being sent are shown (the most recent).
 * Returns 0, or -1 with *err when the database could not be read or the
 * buffer not grown.
 */
int metrics_render(sqlite3 *db, const struct metrics_live *live, struct metrics_state *st,
                   double now, struct buf *out, struct herr *err);

#endif
