/*
 * reportpage.c - the HTML report page of an issue's send (see reportpage.h).
 *
 * Called by src/cmd/stats.c (`herald stats ID --html FILE`).  Reads nothing
 * but the issue and the figures it is given: report.c computes them.  The
 * page is appended to the caller's buffer through struct html, which
 * remembers whether any append failed, so the builders below need not
 * check every call and reportpage_html() reports the failure once.  Only
 * text written here is emitted raw; every value from the database goes
 * through h_esc().
 */
#include "herald/reportpage.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "herald/subjecttest.h"
#include "herald/tmpl.h"

/* Colours: text #1f2937 on white (14.7:1); opens #1d4ed8 (6.7:1) and clicks
 * #b45309 (5.0:1) against white, above the 3:1 WCAG asks of graphics, and
 * told apart by the legend and titles, not by colour alone. */
static const char html_head_css[] =
	"body{font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
	"color:#1f2937;background:#fff;margin:0}\n"
	"main{max-width:960px;margin:0 auto;padding:24px}\n"
	"h1{font-size:1.5rem;margin:0 0 4px}\n"
	"h2{font-size:1.15rem;margin:32px 0 8px}\n"
	".meta{color:#4b5563;margin:0 0 16px}\n"
	".cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}\n"
	".card{border:1px solid #d1d5db;border-radius:6px;padding:12px 16px;min-width:130px}\n"
	".card b{display:block;font-size:1.6rem}\n"
	".card span{color:#4b5563;font-size:.9rem}\n"
	"table{border-collapse:collapse;margin:8px 0;min-width:50%}\n"
	"th,td{border-bottom:1px solid #e5e7eb;padding:4px 12px 4px 0;text-align:left;"
	"vertical-align:top}\n"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
	"td.url{word-break:break-all}\n"
	"tbody th{font-weight:normal}\n"
	".note{color:#4b5563;font-size:.9rem}\n"
	"svg{max-width:100%;height:auto}\n"
	"svg text{font:12px system-ui,sans-serif;fill:#374151}\n"
	".opens{fill:#1d4ed8}.clicks{fill:#b45309}\n"
	".grid{stroke:#e5e7eb}.axis{stroke:#4b5563}\n";

struct html {
	struct buf *b;
	int         failed; /* an append failed: the page is incomplete */
};

static void
h_add(struct html *h, const char *s)
{
	if (buf_adds(h->b, s) < 0)
		h->failed = 1;
}

static void h_addf(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
h_addf(struct html *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vaddf(h->b, fmt, ap) < 0)
		h->failed = 1;
	va_end(ap);
}

static void
h_esc(struct html *h, const char *s)
{
	if (tmpl_escape_html(h->b, s, strlen(s)) < 0)
		h->failed = 1;
}

/* One row of the figures table; `key` is the JSON path of the figure, in
 * data-key, so a reader of the page (or a test) can match the two. */
static void
h_count(struct html *h, const char *key, const char *label, long long v)
{
	h_addf(h, "<tr><th scope=\"row\">%s</th><td class=\"n\" data-key=\"%s\">%lld</td></tr>\n",
	       label, key, v);
}

static void
h_rate(struct html *h, const char *key, const char *label, double v, const char *how)
{
	h_addf(h, "<tr><th scope=\"row\">%s</th><td class=\"n\" data-key=\"%s\" "
	       "data-value=\"%.4f\">%.1f%%</td><td class=\"note\">%s</td></tr>\n",
	       label, key, report_round_rate(v), v * 100.0, how);
}

static void
h_card(struct html *h, const char *value, const char *label)
{
	h_addf(h, "<div class=\"card\"><b>%s</b><span>%s</span></div>\n", value, label);
}

/* A subject test: one row per variant (data-variant, and data-key as in
 * subjecttest_json()'s variants), the winner marked in words, and why. */
static void
h_subject_test(struct html *h, const struct subjecttest *t)
{
	size_t i;

	h_addf(h, "<h2>Subject test</h2>\n<p class=\"test\" data-state=\"%s\">%d%% of the "
	       "audience got the variants; %lld were held back for the winner. ",
	       t->state, t->share, t->holdout);
	if (t->winner) {
		h_addf(h, "<strong>Variant %d won</strong>: ", t->winner);
		h_esc(h, t->why);
	} else
		h_add(h, "The winner is not picked yet.");
	h_add(h, "</p>\n<table class=\"variants\">\n<thead><tr><th scope=\"col\">#</th>"
	      "<th scope=\"col\">Subject</th><th scope=\"col\">Recipients</th>"
	      "<th scope=\"col\">Sent</th><th scope=\"col\">Human opens</th>"
	      "<th scope=\"col\">Clicks</th><th scope=\"col\">Open rate</th>"
	      "<th scope=\"col\">Click rate</th></tr></thead>\n<tbody>\n");
	for (i = 0; i < t->n; i++) {
		const struct subjecttest_variant *v = &t->v[i];
		double o = v->sent ? (double)v->opens_human / (double)v->sent : 0,
		       c = v->sent ? (double)v->clicks / (double)v->sent : 0;

		h_addf(h, "<tr data-variant=\"%zu\"><td class=\"n\">%zu%s</td><td>", i + 1, i + 1,
		       t->winner == (int)i + 1 ? " (won)" : "");
		h_esc(h, v->subject);
		h_addf(h, "</td><td class=\"n\" data-key=\"recipients\">%lld</td>"
		       "<td class=\"n\" data-key=\"sent\">%lld</td>"
		       "<td class=\"n\" data-key=\"opens_human\">%lld</td>"
		       "<td class=\"n\" data-key=\"clicks\">%lld</td>"
		       "<td class=\"n\" data-key=\"open_rate\" data-value=\"%.4f\">%.1f%%</td>"
		       "<td class=\"n\" data-key=\"click_rate\" data-value=\"%.4f\">%.1f%%</td>"
		       "</tr>\n", v->recipients, v->sent, v->opens_human, v->clicks,
		       report_round_rate(o), o * 100.0, report_round_rate(c), c * 100.0);
	}
	h_add(h, "</tbody>\n</table>\n<p class=\"note\">The winner has the most unique clicks "
	      "per delivered copy; human opens only break a tie, as machine opens (Apple Mail "
	      "Privacy Protection) make opens unreliable.</p>\n");
}

/* The local-time formats of the page; an enum rather than a format
 * argument so that every strftime() format is a literal the compiler
 * checks. */
enum when_fmt {
	WHEN_HOUR,      /* 14:00: the chart's ticks */
	WHEN_DAY,       /* Tue 03 Dec: under the first tick of a day */
	WHEN_DAY_HOUR,  /* Tue 03 Dec 14:00: a bar's title */
	WHEN_FULL,      /* Tue 03 Dec 2026 14:00: the caption */
	WHEN_STAMP,     /* 2026-12-03 14:00 CET: the page head */
	WHEN_ZONE,      /* CET */
};

static const char *
local_time(long long t, enum when_fmt f, char *out, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;
	size_t n = 0;

	if (localtime_r(&tt, &tm)) {
		switch (f) {
		case WHEN_HOUR:     n = strftime(out, size, "%H:%M", &tm); break;
		case WHEN_DAY:      n = strftime(out, size, "%a %d %b", &tm); break;
		case WHEN_DAY_HOUR: n = strftime(out, size, "%a %d %b %H:%M", &tm); break;
		case WHEN_FULL:     n = strftime(out, size, "%a %d %b %Y %H:%M", &tm); break;
		case WHEN_STAMP:    n = strftime(out, size, "%Y-%m-%d %H:%M %Z", &tm); break;
		case WHEN_ZONE:     n = strftime(out, size, "%Z", &tm); break;
		}
	}
	if (!n)
		snprintf(out, size, "?");
	return out;
}

/* The smallest 1, 2 or 5 times a power of ten that cuts `max` into at most
 * 5 steps. */
static long long
nice_step(long long max)
{
	long long p = 1;

	for (;;) {
		if (max <= 5 * p)
			return p;
		if (max <= 10 * p)
			return 2 * p;
		if (max <= 25 * p)
			return 5 * p;
		p *= 10;
	}
}

/* Chart geometry, in SVG user units. */
#define CH_W      760.0
#define CH_H      330.0
#define CH_LEFT   56.0
#define CH_RIGHT  16.0
#define CH_TOP    40.0
#define CH_BOTTOM 64.0

static void
h_bar(struct html *h, const char *cls, double x, double w, long long v, long long ymax,
      long long t0, const char *what)
{
	double plot_h = CH_H - CH_TOP - CH_BOTTOM;
	double bh = (double)v / (double)ymax * plot_h;
	char a[32], b[32];

	if (bh < 1.0)
		bh = 1.0; /* a single event still shows */
	h_addf(h, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
	       "<title>%s–%s: %lld %s</title></rect>\n",
	       cls, x, CH_TOP + plot_h - bh, w, bh, local_time(t0, WHEN_DAY_HOUR, a, sizeof a),
	       local_time(t0 + 3600, WHEN_HOUR, b, sizeof b), v, what);
}

static void
h_chart(struct html *h, const struct report *r)
{
	double plot_w = CH_W - CH_LEFT - CH_RIGHT, plot_h = CH_H - CH_TOP - CH_BOTTOM;
	double slot, x, y, last_day_x = -1000.0;
	long long max = 0, step, ymax, v;
	int i, every;
	char t[32], d[32], last_day[32] = "", zone[16];

	if (!r->start) {
		h_add(h, "<p>The issue has not been sent yet.</p>\n");
		return;
	}
	if (!r->hours) {
		h_addf(h, "<p>No opens or clicks recorded in the first %d hours.</p>\n",
		       REPORT_HOURS);
		return;
	}
	for (i = 0; i < r->hours; i++) {
		if (r->hour_opens[i] > max)
			max = r->hour_opens[i];
		if (r->hour_clicks[i] > max)
			max = r->hour_clicks[i];
	}
	step = nice_step(max);
	ymax = (max + step - 1) / step * step;
	if (!ymax)
		ymax = step; /* hours without a count (not from report_compute()) */
	slot = plot_w / r->hours;
	every = r->hours <= 12 ? 1 : r->hours <= 24 ? 2 : r->hours <= 36 ? 3 : 6;

	h_addf(h, "<figure>\n<svg viewBox=\"0 0 %.0f %.0f\" "
	       "width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-labelledby=\"chart-title "
	       "chart-desc\">\n", CH_W, CH_H, CH_W, CH_H);
	h_addf(h, "<title id=\"chart-title\">Opens and clicks per hour</title>\n"
	       "<desc id=\"chart-desc\">Open events and click events in each hour of the first "
	       "%d hours after the send started; %lld opens and %lld clicks in all.</desc>\n",
	       r->hours, r->opens.total, r->clicks.total);
	/* legend */
	h_add(h, "<rect class=\"legend opens\" x=\"56\" y=\"10\" width=\"14\" height=\"14\"/>"
	      "<text x=\"76\" y=\"22\">Opens</text>\n"
	      "<rect class=\"legend clicks\" x=\"136\" y=\"10\" width=\"14\" height=\"14\"/>"
	      "<text x=\"156\" y=\"22\">Clicks</text>\n");
	/* y grid and labels */
	for (v = 0; v <= ymax; v += step) {
		y = CH_TOP + plot_h - (double)v / (double)ymax * plot_h;
		h_addf(h, "<line class=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
		       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%lld</text>\n",
		       v ? "grid" : "axis", CH_LEFT, y, CH_LEFT + plot_w, y, CH_LEFT - 6, y + 4, v);
	}
	/* x labels: local time of the hour's start, the day when it changes */
	for (i = 0; i < r->hours; i += every) {
		long long t0 = r->start + (long long)i * 3600;

		x = CH_LEFT + i * slot;
		local_time(t0, WHEN_HOUR, t, sizeof t);
		local_time(t0, WHEN_DAY, d, sizeof d);
		h_addf(h, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
		       "<text class=\"hour\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		       x, CH_TOP + plot_h, x, CH_TOP + plot_h + 4, x, CH_TOP + plot_h + 18, t);
		/* a new day under its first tick, if it leaves room after the
		 * previous day's label; else under the next tick */
		if (strcmp(d, last_day) && x - last_day_x >= 80.0) {
			h_addf(h, "<text class=\"day\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
			       "%s</text>\n", x, CH_TOP + plot_h + 34, d);
			snprintf(last_day, sizeof last_day, "%s", d);
			last_day_x = x;
		}
	}
	local_time(r->start, WHEN_ZONE, zone, sizeof zone);
	h_addf(h, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">hour starting at "
	       "(local time, ", CH_LEFT + plot_w / 2, CH_H - 6);
	h_esc(h, zone);
	h_add(h, ")</text>\n");
	/* the bars: opens on the left half of each hour, clicks on the right */
	for (i = 0; i < r->hours; i++) {
		long long t0 = r->start + (long long)i * 3600;

		x = CH_LEFT + i * slot;
		if (r->hour_opens[i])
			h_bar(h, "opens", x + slot * 0.1, slot * 0.4, r->hour_opens[i], ymax, t0,
			      r->hour_opens[i] == 1 ? "open" : "opens");
		if (r->hour_clicks[i])
			h_bar(h, "clicks", x + slot * 0.5, slot * 0.4, r->hour_clicks[i], ymax, t0,
			      r->hour_clicks[i] == 1 ? "click" : "clicks");
	}
	h_add(h, "</svg>\n");
	h_addf(h, "<figcaption class=\"note\">Open and click events per hour from the start of "
	       "the send (%s), over the first %d hours", local_time(r->start, WHEN_FULL,
	                                                          t, sizeof t), REPORT_HOURS);
	if (r->hours < REPORT_HOURS)
		h_addf(h, " (shown up to the last hour with an event: %d hours)", r->hours);
	h_add(h, ". Hover over a bar for its figure.</figcaption>\n</figure>\n");
}

static void
h_page(struct html *h, const struct issue *is, const struct report *r, long long now)
{
	const struct ledger_counts *c = &r->deliveries;
	char num[64], when[64];
	size_t i;

	h_add(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
	h_addf(h, "<title>Issue %lld: ", is->id);
	h_esc(h, is->subject);
	h_add(h, " - herald report</title>\n<style>\n");
	h_add(h, html_head_css);
	h_add(h, "</style>\n</head>\n<body>\n<main>\n");
	h_addf(h, "<h1>Issue %lld: ", is->id);
	h_esc(h, is->subject);
	h_add(h, "</h1>\n<p class=\"meta\">List ");
	h_esc(h, is->list_name);
	h_add(h, " · status ");
	h_esc(h, is->status);
	if (is->started_at)
		h_addf(h, " · send started %s",
		       local_time(is->started_at, WHEN_STAMP, when, sizeof when));
	/* the [tracking] mode the send went under (report.h `tracking`) */
	if (r->tracking_mode[0]) {
		h_add(h, " · tracking ");
		h_esc(h, r->tracking_mode);
		if (!strcmp(r->tracking_mode, "anonymous"))
			h_add(h, " (events name no one: no unique counts)");
	}
	h_addf(h, " · report made %s</p>\n",
	       local_time(now, WHEN_STAMP, when, sizeof when));
	{
		/* as the send took it: a segment may have changed since */
		struct buf aud = BUF_INIT(1u << 16);

		if (report_audience_text(r, &aud) < 0)
			h->failed = 1;
		h_add(h, "<p class=\"meta audience\">Audience: ");
		h_esc(h, buf_str(&aud));
		h_add(h, "</p>\n");
		buf_free(&aud);
	}

	h_add(h, "<section class=\"cards\">\n");
	snprintf(num, sizeof num, "%lld", r->delivered);
	h_card(h, num, "delivered");
	snprintf(num, sizeof num, "%.1f%%", r->rates.open * 100.0);
	h_card(h, num, "open rate (human)");
	snprintf(num, sizeof num, "%.1f%%", r->rates.click * 100.0);
	h_card(h, num, "click rate");
	snprintf(num, sizeof num, "%lld", r->unsubscribes);
	h_card(h, num, "unsubscribes");
	snprintf(num, sizeof num, "%.1f%%", r->rates.bounce * 100.0);
	h_card(h, num, "bounce rate");
	h_add(h, "</section>\n");

	h_add(h, "<h2>Opens and clicks per hour</h2>\n");
	h_chart(h, r);

	h_add(h, "<h2>Figures</h2>\n<table class=\"figures\">\n<tbody>\n");
	h_count(h, "recipients", "Recipients", c->total);
	h_count(h, "deliveries.sent", "Delivered (sent)", c->sent);
	h_count(h, "deliveries.deferred", "Deferred", c->deferred);
	h_count(h, "deliveries.bounced", "Bounced at sending", c->bounced);
	h_count(h, "deliveries.failed", "Failed", c->failed);
	h_count(h, "deliveries.skipped", "Skipped (left during the send)", c->skipped);
	h_count(h, "skipped.unengaged", "Skipped: unengaged (left out by the sunset rule)",
	        r->audience.unengaged);
	h_count(h, "deliveries.pending", "Pending", c->pending);
	h_count(h, "deliveries.sending", "Sending", c->sending);
	h_count(h, "opens.total", "Opens (events)", r->opens.total);
	h_count(h, "opens.unique", "Unique opens (subscribers)", r->opens.unique);
	h_count(h, "opens.human", "… human (at least one human open)", r->opens.human);
	h_count(h, "opens.machine", "… machine only (proxy or prefetch)", r->opens.machine);
	h_count(h, "clicks.total", "Clicks (events)", r->clicks.total);
	h_count(h, "clicks.unique", "Unique clicks (subscribers)", r->clicks.unique);
	h_count(h, "unsubscribes", "Unsubscribes", r->unsubscribes);
	for (i = 0; i < PREFS_N_REASONS; i++) {
		char key[48], label[80];

		/* the survey's answers (prefs.h): fixed words, nothing to escape */
		snprintf(key, sizeof key, "leave_reasons.%s",
		         prefs_reason_name((enum prefs_reason)i));
		snprintf(label, sizeof label, "… leaving: %s",
		         prefs_reason_label((enum prefs_reason)i));
		h_count(h, key, label, r->leave_reasons[i]);
	}
	h_count(h, "bounces.hard", "Hard bounces", r->bounces.hard);
	h_count(h, "bounces.soft", "Soft bounces", r->bounces.soft);
	h_count(h, "bounces.complaints", "Complaints", r->bounces.complaints);
	h_add(h, "</tbody>\n</table>\n");

	h_add(h, "<h2>Rates</h2>\n<table class=\"rates\">\n<tbody>\n");
	h_rate(h, "rates.open_rate", "Open rate", r->rates.open,
	       "unique human opens / delivered");
	h_rate(h, "rates.click_rate", "Click rate", r->rates.click, "unique clicks / delivered");
	h_rate(h, "rates.click_to_open_rate", "Click-to-open rate", r->rates.click_to_open,
	       "unique clicks / unique opens");
	h_rate(h, "rates.unsubscribe_rate", "Unsubscribe rate", r->rates.unsubscribe,
	       "unsubscribes / delivered");
	h_rate(h, "rates.complaint_rate", "Complaint rate", r->rates.complaint,
	       "complaints / delivered");
	h_rate(h, "rates.bounce_rate", "Bounce rate", r->rates.bounce,
	       "(hard + soft) / (delivered + bounced)");
	h_add(h, "</tbody>\n</table>\n");

	if (r->subject_test)
		h_subject_test(h, r->subject_test);

	h_add(h, "<h2>Clicks per link</h2>\n");
	if (!r->clicks.n_links) {
		h_add(h, "<p>The issue has no links.</p>\n");
	} else {
		h_add(h, "<table class=\"links\">\n<thead><tr><th scope=\"col\">#</th>"
		      "<th scope=\"col\">Link</th><th scope=\"col\">Clicks</th>"
		      "<th scope=\"col\">Unique</th></tr></thead>\n<tbody>\n");
		for (i = 0; i < r->clicks.n_links; i++) {
			const struct report_link *l = &r->clicks.links[i];

			/* the URL as text, not a link: the page stays free of
			 * anything a viewer would fetch or follow by accident */
			h_addf(h, "<tr data-n=\"%d\"><td class=\"n\">%d</td><td class=\"url\"><code>",
			       l->n, l->n);
			h_esc(h, l->url);
			h_addf(h, "</code></td><td class=\"n\" data-key=\"total\">%lld</td>"
			       "<td class=\"n\" data-key=\"unique\">%lld</td></tr>\n", l->total,
			       l->unique);
		}
		h_add(h, "</tbody>\n</table>\n");
	}
	if (r->bounces.n_reasons) {
		h_add(h, "<h2>Bounces and complaints by reason</h2>\n<table class=\"reasons\">\n"
		      "<thead><tr><th scope=\"col\">Class</th><th scope=\"col\">Reason</th>"
		      "<th scope=\"col\">Recipients</th><th scope=\"col\">Status</th>"
		      "<th scope=\"col\">What the receiving server said (latest)</th></tr></thead>\n"
		      "<tbody>\n");
		for (i = 0; i < r->bounces.n_reasons; i++) {
			const struct report_reason *x = &r->bounces.reasons[i];

			h_add(h, "<tr><td>");
			h_esc(h, x->cls);
			h_add(h, "</td><td>");
			h_esc(h, x->reason);
			h_addf(h, "</td><td class=\"n\">%lld</td><td><code>", x->count);
			h_esc(h, x->status[0] ? x->status : "-");
			h_add(h, "</code></td><td>");
			h_esc(h, x->diagnostic);
			h_add(h, "</td></tr>\n");
		}
		h_add(h, "</tbody>\n</table>\n");
	}
	h_addf(h, "<p class=\"note\">Total counts events, unique counts subscribers. An open is "
	       "a machine open when the web server saw a proxy or prefetching client (such as "
	       "Apple Mail Privacy Protection) or when it came within %d seconds of the "
	       "delivery (a scanner fetching images as the mail arrives). Rates are against "
	       "delivered mail; the bounce rate is against delivered plus bounced.</p>\n",
	       REPORT_PREFETCH_SECS);
	h_add(h, "</main>\n</body>\n</html>\n");
}

int
reportpage_html(const struct issue *is, const struct report *r, long long now,
                struct buf *out, struct herr *err)
{
	struct html h = { out, 0 };

	h_page(&h, is, r, now);
	if (h.failed)
		return herr_set(err, EX_SOFTWARE, NULL, "report page too large or out of memory");
	return 0;
}
