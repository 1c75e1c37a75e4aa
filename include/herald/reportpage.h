/*
 * reportpage.h - the HTML report page of one issue's send: what
 * `herald stats ID --html FILE` writes (src/cmd/stats.c), and what a web
 * view of the report can serve.
 *
 * The figures and their definitions are report.h's; this only shows them.
 * The page has no external assets and no script (it is opened from a file,
 * mailed around, archived): inline CSS, and the chart of opens and clicks
 * per hour is inline SVG made of rect, line and text elements, with a
 * <title> on each bar for hovering and the same numbers in tables for
 * reading.  Every value from the database (subject, list name, link URLs,
 * bounce diagnostics) is HTML-escaped; link URLs are shown as text, never
 * as links.  Each figure's cell carries data-key="PATH", the figure's path
 * in report_json(), and each rate data-value with the JSON's rounded value,
 * so a reader of the page (or a test) can match the two.
 *
 * Times on the page (hour labels, bar titles, the send's start) are in the
 * process's local time zone (TZ), named on the page.
 */
#ifndef HERALD_REPORTPAGE_H
#define HERALD_REPORTPAGE_H

#include "herald/buf.h"
#include "herald/herr.h"
#include "herald/issue.h"
#include "herald/report.h"

/* A cap fit for the page's buffer: an issue with thousands of links fits. */
#define REPORTPAGE_MAX (16u << 20)

/*
 * Append the whole page for issue `is` (its id, subject, list name, status
 * and started_at) and its figures `r` (from report_compute()) to `out`;
 * `now` is the Unix time the page says it was made.  Returns 0, or -1 with
 * EX_SOFTWARE when `out`'s cap is reached or memory runs out; `out` then
 * holds part of a page, for the caller to free or reset.
 */
int reportpage_html(const struct issue *is, const struct report *r, long long now,
                    struct buf *out, struct herr *err);

#endif
