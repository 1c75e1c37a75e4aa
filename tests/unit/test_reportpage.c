/*
 * test_reportpage.c - the HTML report page of `herald stats --html`
 * (src/reportpage.c, include/herald/reportpage.h).
 *
 * Most tests render a struct report filled by hand, so that every figure,
 * link and hour of the chart is known: the page is self-contained (no
 * script, nothing fetched, no URL in any attribute), escapes the subject,
 * list name, link URLs and bounce diagnostics (XSS attempts come out as
 * text), draws one SVG bar per hour that has events, each with a <title>
 * giving its count and a height in proportion to it, labels the hours in
 * local time (TZ), and lists every figure, rate and link in its tables with
 * the data-key / data-value that match the JSON.  The last tests go through
 * report_compute() on a temporary database (tempdb.h): an issue whose
 * denominators are all zero shows every rate as 0, and an issue with no
 * events, sent or not, renders a whole page without a chart.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/buf.h"
#include "herald/issue.h"
#include "herald/report.h"
#include "herald/reportpage.h"

#define T   1700000000LL /* Tue 14 Nov 2023 22:13:20 UTC: the send started */
#define NOW (T + 86400)  /* when the page says it was made */

#define XSS_SUBJECT "<script>alert(\"x\")</script> & 'y'"
#define XSS_SUBJECT_ESC "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
#define XSS_URL     "https://evil.example/\"><script>alert(1)</script>"
#define XSS_URL_ESC "https://evil.example/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
#define EN_DASH     "\xe2\x80\x93"

static void
use_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* ---- a report filled by hand ---- */

struct sample {
	struct issue       is;
	struct report      r;
	struct report_link links[3];
	char               url[3][128];
};

/*
 * 12 recipients, 9 delivered; opens 11 events by 6 subscribers (4 human);
 * clicks 3 by 2; link 2's URL is an XSS attempt; five hours charted:
 * opens 3, 0, 1, 0, 7 and clicks 0, 2, 0, 0, 1.
 */
static void
sample_fill(struct sample *s)
{
	static const long long opens[5] = { 3, 0, 1, 0, 7 }, clicks[5] = { 0, 2, 0, 0, 1 };
	struct report *r = &s->r;
	struct report_reason *x;
	int i;

	memset(s, 0, sizeof *s);
	s->is.id = 7;
	s->is.subject = (char *)XSS_SUBJECT;
	snprintf(s->is.list_name, sizeof s->is.list_name, "news<i>");
	snprintf(s->is.status, sizeof s->is.status, "sending");
	s->is.started_at = T;

	r->issue_id = 7;
	r->deliveries = (struct ledger_counts){ .pending = 0, .sending = 0, .sent = 9,
	                                        .deferred = 1, .bounced = 1, .failed = 1,
	                                        .skipped = 0, .total = 12 };
	r->delivered = 9;
	r->opens.total = 11;
	r->opens.unique = 6;
	r->opens.human = 4;
	r->opens.machine = 2;
	snprintf(s->url[0], sizeof s->url[0], "https://example.org/a?x=1&y=2");
	snprintf(s->url[1], sizeof s->url[1], "%s", XSS_URL);
	snprintf(s->url[2], sizeof s->url[2], "javascript:alert(2)");
	for (i = 0; i < 3; i++) {
		s->links[i].n = i + 1;
		s->links[i].url = s->url[i];
	}
	s->links[0].total = 2;
	s->links[0].unique = 1;
	s->links[1].total = 1;
	s->links[1].unique = 1;
	r->clicks.total = 3;
	r->clicks.unique = 2;
	r->clicks.links = s->links;
	r->clicks.n_links = 3;
	r->unsubscribes = 1;
	r->bounces.hard = 1;
	r->bounces.soft = 1;
	r->bounces.complaints = 0;
	x = &r->bounces.reasons[r->bounces.n_reasons++];
	snprintf(x->cls, sizeof x->cls, "hard");
	snprintf(x->reason, sizeof x->reason, "userunknown");
	x->count = 1;
	snprintf(x->status, sizeof x->status, "5.1.1");
	snprintf(x->diagnostic, sizeof x->diagnostic, "550 <bad@example.org> user <b>unknown</b>");
	r->rates.open = 4.0 / 9.0;
	r->rates.click = 2.0 / 9.0;
	r->rates.click_to_open = 2.0 / 6.0;
	r->rates.unsubscribe = 1.0 / 9.0;
	r->rates.complaint = 0.0;
	r->rates.bounce = 2.0 / 10.0;
	r->start = T;
	r->hours = 5;
	for (i = 0; i < 5; i++) {
		r->hour_opens[i] = opens[i];
		r->hour_clicks[i] = clicks[i];
	}
}

/* The page, as a string the caller frees. */
static char *
render(const struct issue *is, const struct report *r)
{
	struct buf b = BUF_INIT(REPORTPAGE_MAX);
	struct herr err;
	char *page;

	herr_clear(&err);
	if (reportpage_html(is, r, NOW, &b, &err) < 0)
		fail_msg("reportpage_html: %s", err.msg);
	assert_non_null(page = buf_detach(&b));
	/* always one whole document */
	assert_int_equal(strncmp(page, "<!DOCTYPE html>\n<html lang=\"en\">\n", 33), 0);
	assert_non_null(strstr(page, "</html>\n"));
	assert_string_equal(strstr(page, "</html>\n"), "</html>\n");
	return page;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0, len = strlen(needle);

	while ((hay = strstr(hay, needle))) {
		n++;
		hay += len;
	}
	return n;
}

static int
contains_ci(const char *hay, const char *needle)
{
	size_t len = strlen(needle);

	for (; *hay; hay++)
		if (!strncasecmp(hay, needle, len))
			return 1;
	return 0;
}

/* Nothing a viewer would fetch, run or follow: no script or embedding
 * element, no src/href/url() at all, no event handler attribute (onload=),
 * and every http(s) URL only as text inside <code> (the links table). */
static void
assert_self_contained(const char *page)
{
	static const char *const banned[] = {
		"<script", "<link", "<img", "<image", "<iframe", "<object", "<embed", "<use",
		"<a ", "<form", "<base", "http-equiv", "src=", "href=", "url(", "@import",
	};
	const char *p, *q;
	size_t i;

	for (i = 0; i < sizeof banned / sizeof *banned; i++)
		if (contains_ci(page, banned[i]))
			fail_msg("the page holds '%s'", banned[i]);
	for (p = page; (p = strstr(p, " on")); p++) {
		for (q = p + 3; (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'); q++)
			;
		if (*q == '=')
			fail_msg("an event handler attribute: %.40s", p);
	}
	for (p = page; (p = strstr(p, "http")); p++) {
		const char *open = p, *tag;

		while (open > page && *open != '<' && *open != '>')
			open--;
		/* the nearest tag before the URL is <code>, and the URL is
		 * text after it, not inside an attribute */
		tag = open;
		while (tag > page && *tag != '<')
			tag--;
		if (*open != '>' || strncmp(tag, "<code>", 6))
			fail_msg("a URL outside <code>: %.60s", p);
	}
}

/* The <title> text and height of each <rect class="CLS" ...> bar. */
struct bar {
	char   title[128];
	double height;
};

static size_t
bars(const char *page, const char *cls, struct bar *out, size_t max)
{
	char pat[64];
	const char *p = page, *t, *end, *h;
	size_t n = 0;

	snprintf(pat, sizeof pat, "<rect class=\"%s\" ", cls);
	while ((p = strstr(p, pat))) {
		end = strstr(p, "</rect>");
		t = strstr(p, "<title>");
		if (!end || !t || t > end)
			fail_msg("a %s bar without <title>: %.120s", cls, p);
		t += 7;
		if (n == max)
			fail_msg("more than %zu %s bars", max, cls);
		snprintf(out[n].title, sizeof out[n].title, "%.*s",
		         (int)(strstr(t, "</title>") - t), t);
		assert_non_null(h = strstr(p, " height=\""));
		assert_true(h < end);
		out[n].height = strtod(h + 9, NULL);
		n++;
		p = end;
	}
	return n;
}

static void
test_reportpage_self_contained(void **state)
{
	struct sample s;
	char *page;

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	page = render(&s.is, &s.r);
	assert_self_contained(page);
	/* inline CSS and one inline SVG chart */
	assert_int_equal(count(page, "<style>"), 1);
	assert_int_equal(count(page, "<svg "), 1);
	assert_int_equal(count(page, "</svg>"), 1);
	free(page);
}

/* The checker above must catch what it looks for, or it proves nothing. */
static void
test_reportpage_checker_bites(void **state)
{
	(void)state;
	assert_false(contains_ci("<p>ok</p>", "<script"));
	assert_true(contains_ci("<SCRIPT>", "<script"));
	assert_true(contains_ci("<img SRC=x>", "src="));
	assert_int_equal(count("<rect class=\"opens\" height=\"2\"><title>a</title></rect>"
	                       "<rect class=\"opens\" height=\"4\"><title>b</title></rect>",
	                       "<rect class=\"opens\" "), 2);
}

static void
test_reportpage_escapes(void **state)
{
	struct sample s;
	char *page, want[512];

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	page = render(&s.is, &s.r);
	/* nothing of the attempts survives as markup */
	assert_null(strstr(page, "<script"));
	assert_null(strstr(page, "<i>"));
	assert_null(strstr(page, "<b>unknown"));
	assert_null(strstr(page, XSS_URL));
	assert_null(strstr(page, XSS_SUBJECT));
	/* the subject, escaped, in the <title> and the <h1> */
	assert_non_null(strstr(page, "<title>Issue 7: " XSS_SUBJECT_ESC " - herald report</title>"));
	assert_non_null(strstr(page, "<h1>Issue 7: " XSS_SUBJECT_ESC "</h1>"));
	assert_int_equal(count(page, XSS_SUBJECT_ESC), 2);
	assert_non_null(strstr(page, "<p class=\"meta\">List news&lt;i&gt; · status sending"));
	/* the link URLs as text in <code>, escaped; & too */
	snprintf(want, sizeof want, "<td class=\"url\"><code>%s</code>", XSS_URL_ESC);
	assert_non_null(strstr(page, want));
	assert_non_null(strstr(page, "<code>https://example.org/a?x=1&amp;y=2</code>"));
	assert_non_null(strstr(page, "<code>javascript:alert(2)</code>"));
	/* what a receiving server said */
	assert_non_null(strstr(page, "<td>550 &lt;bad@example.org&gt; user &lt;b&gt;unknown"
	                             "&lt;/b&gt;</td>"));
	free(page);
}

static void
test_reportpage_chart_bars(void **state)
{
	struct sample s;
	struct bar o[8], c[8];
	char *page;

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	page = render(&s.is, &s.r);
	/* one bar per hour with events (hours 0, 2, 4 opened; 1, 4 clicked),
	 * in hour order, each titled with its hour and count */
	assert_int_equal(bars(page, "opens", o, 8), 3);
	assert_string_equal(o[0].title, "Tue 14 Nov 22:13" EN_DASH "23:13: 3 opens");
	assert_string_equal(o[1].title, "Wed 15 Nov 00:13" EN_DASH "01:13: 1 open");
	assert_string_equal(o[2].title, "Wed 15 Nov 02:13" EN_DASH "03:13: 7 opens");
	assert_int_equal(bars(page, "clicks", c, 8), 2);
	assert_string_equal(c[0].title, "Tue 14 Nov 23:13" EN_DASH "00:13: 2 clicks");
	assert_string_equal(c[1].title, "Wed 15 Nov 02:13" EN_DASH "03:13: 1 click");
	/* heights in proportion to the counts (to the 0.1 the SVG is written in) */
	assert_true(fabs(o[2].height / o[1].height - 7.0) < 0.05);
	assert_true(fabs(o[0].height / c[0].height - 1.5) < 0.01);
	assert_true(fabs(c[1].height - o[1].height) < 1e-9);
	/* the legend and the axis: one tick label per hour (5 hours) */
	assert_int_equal(count(page, "class=\"legend opens\""), 1);
	assert_int_equal(count(page, "class=\"legend clicks\""), 1);
	assert_int_equal(count(page, "<text class=\"hour\""), 5);
	assert_non_null(strstr(page, "text-anchor=\"middle\">22:13</text>"));
	assert_non_null(strstr(page, "of the first 5 hours after the send started; 11 opens and 3 "
	                             "clicks in all.</desc>"));
	assert_non_null(strstr(page, "(shown up to the last hour with an event: 5 hours)"));
	free(page);
}

/* The hours are local time: TZ moves every label and names the zone. */
static void
test_reportpage_chart_local_time(void **state)
{
	struct sample s;
	struct bar o[8];
	char *page;

	(void)state;
	use_tz("JST-9");
	sample_fill(&s);
	page = render(&s.is, &s.r);
	assert_int_equal(bars(page, "opens", o, 8), 3);
	assert_string_equal(o[0].title, "Wed 15 Nov 07:13" EN_DASH "08:13: 3 opens");
	assert_non_null(strstr(page, "text-anchor=\"middle\">07:13</text>"));
	assert_non_null(strstr(page, "hour starting at (local time, JST)"));
	assert_non_null(strstr(page, "send started 2023-11-15 07:13 JST"));
	assert_non_null(strstr(page, "report made 2023-11-16 07:13 JST</p>"));
	free(page);
	use_tz("UTC");
}

/* 72 hours: ticks every 6 hours, still one bar per hour with events. */
static void
test_reportpage_chart_three_days(void **state)
{
	struct sample s;
	struct bar o[80], c[80];
	char *page;
	int i, with_opens = 0;

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	s.r.hours = REPORT_HOURS;
	for (i = 0; i < REPORT_HOURS; i++) {
		s.r.hour_opens[i] = i % 3 ? 0 : 100 + i;
		with_opens += i % 3 == 0;
		s.r.hour_clicks[i] = i == 71;
	}
	page = render(&s.is, &s.r);
	assert_int_equal(bars(page, "opens", o, 80), with_opens);
	assert_int_equal(bars(page, "clicks", c, 80), 1);
	assert_string_equal(o[0].title, "Tue 14 Nov 22:13" EN_DASH "23:13: 100 opens");
	assert_string_equal(o[with_opens - 1].title, "Fri 17 Nov 19:13" EN_DASH "20:13: 169 opens");
	assert_string_equal(c[0].title, "Fri 17 Nov 21:13" EN_DASH "22:13: 1 click");
	assert_int_equal(count(page, "<text class=\"hour\""), REPORT_HOURS / 6);
	assert_null(strstr(page, "shown up to the last hour"));
	assert_self_contained(page);
	free(page);
}

static void
test_reportpage_tables(void **state)
{
	struct sample s;
	char *page;

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	page = render(&s.is, &s.r);
	/* every figure, under its JSON path */
	assert_non_null(strstr(page, "data-key=\"recipients\">12</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.sent\">9</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.deferred\">1</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.bounced\">1</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.failed\">1</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.skipped\">0</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.pending\">0</td>"));
	assert_non_null(strstr(page, "data-key=\"deliveries.sending\">0</td>"));
	assert_non_null(strstr(page, "data-key=\"opens.total\">11</td>"));
	assert_non_null(strstr(page, "data-key=\"opens.unique\">6</td>"));
	assert_non_null(strstr(page, "data-key=\"opens.human\">4</td>"));
	assert_non_null(strstr(page, "data-key=\"opens.machine\">2</td>"));
	assert_non_null(strstr(page, "data-key=\"clicks.total\">3</td>"));
	assert_non_null(strstr(page, "data-key=\"clicks.unique\">2</td>"));
	assert_non_null(strstr(page, "data-key=\"unsubscribes\">1</td>"));
	assert_non_null(strstr(page, "data-key=\"bounces.hard\">1</td>"));
	assert_non_null(strstr(page, "data-key=\"bounces.soft\">1</td>"));
	assert_non_null(strstr(page, "data-key=\"bounces.complaints\">0</td>"));
	/* rates: the JSON's rounded value, and a percentage for reading */
	assert_non_null(strstr(page, "data-key=\"rates.open_rate\" data-value=\"0.4444\">44.4%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.click_rate\" data-value=\"0.2222\">22.2%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.click_to_open_rate\" data-value=\"0.3333\">"
	                             "33.3%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.unsubscribe_rate\" data-value=\"0.1111\">"
	                             "11.1%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.complaint_rate\" data-value=\"0.0000\">"
	                             "0.0%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.bounce_rate\" data-value=\"0.2000\">20.0%</td>"));
	/* the cards */
	assert_non_null(strstr(page, "<div class=\"card\"><b>9</b><span>delivered</span></div>"));
	assert_non_null(strstr(page, "<b>44.4%</b><span>open rate (human)</span>"));
	/* every link, with its counts, mailto-like or not */
	assert_int_equal(count(page, "<tr data-n=\""), 3);
	assert_non_null(strstr(page, "<tr data-n=\"1\"><td class=\"n\">1</td><td class=\"url\"><code>"
	                             "https://example.org/a?x=1&amp;y=2</code></td>"
	                             "<td class=\"n\" data-key=\"total\">2</td>"
	                             "<td class=\"n\" data-key=\"unique\">1</td></tr>"));
	assert_non_null(strstr(page, "<tr data-n=\"2\"><td class=\"n\">2</td><td class=\"url\"><code>"
	                             XSS_URL_ESC "</code></td>"
	                             "<td class=\"n\" data-key=\"total\">1</td>"
	                             "<td class=\"n\" data-key=\"unique\">1</td></tr>"));
	assert_non_null(strstr(page, "<tr data-n=\"3\"><td class=\"n\">3</td><td class=\"url\"><code>"
	                             "javascript:alert(2)</code></td>"
	                             "<td class=\"n\" data-key=\"total\">0</td>"
	                             "<td class=\"n\" data-key=\"unique\">0</td></tr>"));
	/* bounces by reason */
	assert_non_null(strstr(page, "<tr><td>hard</td><td>userunknown</td><td class=\"n\">1</td>"
	                             "<td><code>5.1.1</code></td>"));
	/* the head: when the send started, when the page was made */
	assert_non_null(strstr(page, " · send started 2023-11-14 22:13 UTC · report made "
	                             "2023-11-15 22:13 UTC</p>"));
	free(page);
}

/* No links, no bounce reasons: the page says so instead of empty tables. */
static void
test_reportpage_no_links(void **state)
{
	struct sample s;
	char *page;

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	s.r.clicks.n_links = 0;
	s.r.clicks.links = NULL;
	s.r.bounces.n_reasons = 0;
	page = render(&s.is, &s.r);
	assert_non_null(strstr(page, "<p>The issue has no links.</p>"));
	assert_null(strstr(page, "<table class=\"links\">"));
	assert_null(strstr(page, "<table class=\"reasons\">"));
	free(page);
}

/* Hours charted without a count (a caller's hand-made report, never
 * report_compute()'s): an axis from 0 to 1 and no bars, not NaN. */
static void
test_reportpage_chart_all_zero(void **state)
{
	struct sample s;
	struct bar o[8];
	char *page;

	(void)state;
	use_tz("UTC");
	sample_fill(&s);
	memset(s.r.hour_opens, 0, sizeof s.r.hour_opens);
	memset(s.r.hour_clicks, 0, sizeof s.r.hour_clicks);
	page = render(&s.is, &s.r);
	assert_int_equal(bars(page, "opens", o, 8), 0);
	assert_int_equal(bars(page, "clicks", o, 8), 0);
	assert_null(strstr(page, "nan"));
	assert_null(strstr(page, "inf"));
	assert_non_null(strstr(page, "text-anchor=\"end\">1</text>"));
	free(page);
}

/* A buffer too small for the page: an error, not a cut page passed off. */
static void
test_reportpage_too_large(void **state)
{
	struct buf b = BUF_INIT(4096);
	struct sample s;
	struct herr err;

	(void)state;
	sample_fill(&s);
	herr_clear(&err);
	assert_int_equal(reportpage_html(&s.is, &s.r, NOW, &b, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_non_null(strstr(err.msg, "too large"));
	buf_free(&b);
}

/* ---- through report_compute() on a database ---- */

struct fixture {
	char          path[TEMPDB_PATH_MAX];
	sqlite3      *db;
	struct issue  is;
	struct report r;
};

static void
exec(struct fixture *f, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(f->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f || tempdb_open(f->path, "reportpage", &f->db) < 0)
		return -1;
	exec(f, "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0)");
	exec(f, "INSERT INTO subscribers (id, email, email_key, created_at, updated_at) VALUES "
	     "(1, 's1@example.org', 's1@example.org', 0, 0), "
	     "(2, 's2@example.org', 's2@example.org', 0, 0)");
	exec(f, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, links, "
	     "status, created_at, started_at) VALUES (1, 1, 'One', 'n@example.org', '', '', '', "
	     "'[\"https://example.org/a\", \"https://example.org/b\"]', 'sending', 0, 1700000000)");
	f->is.id = 1;
	f->is.subject = (char *)"One";
	snprintf(f->is.list_name, sizeof f->is.list_name, "news");
	snprintf(f->is.status, sizeof f->is.status, "sending");
	f->is.started_at = T;
	*state = f;
	use_tz("UTC");
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	report_clear(&f->r);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static void
compute(struct fixture *f)
{
	struct herr err;

	report_clear(&f->r);
	herr_clear(&err);
	if (report_compute(f->db, 1, &f->r, &err) < 0)
		fail_msg("report_compute: %s", err.msg);
}

static void
assert_rates_zero(const char *page)
{
	static const char *const keys[] = { "open_rate", "click_rate", "click_to_open_rate",
	                                     "unsubscribe_rate", "complaint_rate", "bounce_rate" };
	char want[128];
	size_t i;

	for (i = 0; i < sizeof keys / sizeof *keys; i++) {
		snprintf(want, sizeof want, "data-key=\"rates.%s\" data-value=\"0.0000\">0.0%%</td>",
		         keys[i]);
		if (!strstr(page, want))
			fail_msg("the page lacks %s", want);
	}
	assert_null(strstr(page, "nan"));
	assert_null(strstr(page, "inf"));
}

/*
 * Nothing delivered (s1's delivery failed) while s1 still opened, clicked,
 * unsubscribed, complained and bounced (events of a retried or forged
 * mail): every numerator is positive, every denominator but unique opens
 * zero, and those rates show as 0.  Then a click without an open on an
 * issue with a delivery: click-to-open has no opens to divide by.
 */
static void
test_reportpage_zero_denominators(void **state)
{
	struct fixture *f = *state;
	char *page;

	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at) "
	     "VALUES (1, 1, 'failed', 0, 0)");
	exec(f, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) VALUES "
	     "('open', 1, 1, 1, 1700003600, '{\"ua\":\"human\"}'), "
	     "('click', 1, 1, 1, 1700003700, '{\"n\":1,\"ua\":\"human\"}'), "
	     "('unsubscribe', 1, 1, 1, 1700003800, '{}'), "
	     "('complaint', 1, 1, 1, 1700003900, '{}'), "
	     "('bounce', 1, 1, 1, 1700004000, '{\"class\":\"soft\"}')");
	compute(f);
	assert_int_equal(f->r.delivered + f->r.deliveries.bounced, 0);
	assert_true(f->r.opens.human > 0 && f->r.clicks.unique > 0 && f->r.unsubscribes > 0 &&
	            f->r.bounces.complaints > 0 && f->r.bounces.soft > 0);
	page = render(&f->is, &f->r);
	assert_non_null(strstr(page, "data-key=\"rates.open_rate\" data-value=\"0.0000\">0.0%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.click_rate\" data-value=\"0.0000\">0.0%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.unsubscribe_rate\" data-value=\"0.0000\">"
	                             "0.0%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.complaint_rate\" data-value=\"0.0000\">"
	                             "0.0%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.bounce_rate\" data-value=\"0.0000\">"
	                             "0.0%</td>"));
	/* unique opens is 1: that one is a real rate */
	assert_non_null(strstr(page, "data-key=\"rates.click_to_open_rate\" data-value=\"1.0000\">"
	                             "100.0%</td>"));
	assert_null(strstr(page, "nan"));
	assert_null(strstr(page, "inf"));
	free(page);

	/* only a click, by s2 who was delivered to: no opens at all */
	exec(f, "DELETE FROM events");
	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
	     "sent_at) VALUES (1, 2, 'sent', 0, 0, 1700000010)");
	exec(f, "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) VALUES "
	     "('click', 1, 2, 1, 1700003700, '{\"n\":2,\"ua\":\"human\"}')");
	compute(f);
	assert_int_equal(f->r.opens.unique, 0);
	assert_int_equal(f->r.clicks.unique, 1);
	page = render(&f->is, &f->r);
	assert_non_null(strstr(page, "data-key=\"rates.click_to_open_rate\" data-value=\"0.0000\">"
	                             "0.0%</td>"));
	assert_non_null(strstr(page, "data-key=\"rates.click_rate\" data-value=\"1.0000\">"
	                             "100.0%</td>"));
	free(page);
}

/* Sent, nobody did anything yet: a whole page, no chart, zeros, links. */
static void
test_reportpage_no_events(void **state)
{
	struct fixture *f = *state;
	char *page;

	exec(f, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
	     "sent_at) VALUES (1, 1, 'sent', 0, 0, 1700000010), (1, 2, 'sent', 0, 0, 1700000011)");
	compute(f);
	assert_int_equal(f->r.hours, 0);
	page = render(&f->is, &f->r);
	assert_self_contained(page);
	assert_non_null(strstr(page, "<p>No opens or clicks recorded in the first 72 hours.</p>"));
	assert_null(strstr(page, "<svg"));
	assert_non_null(strstr(page, "data-key=\"deliveries.sent\">2</td>"));
	assert_non_null(strstr(page, "data-key=\"opens.total\">0</td>"));
	assert_non_null(strstr(page, "data-key=\"clicks.total\">0</td>"));
	assert_rates_zero(page);
	assert_int_equal(count(page, "<tr data-n=\""), 2);
	assert_non_null(strstr(page, "<code>https://example.org/b</code></td>"
	                             "<td class=\"n\" data-key=\"total\">0</td>"));
	free(page);
}

/* A draft: never sent, so no series and no "send started". */
static void
test_reportpage_draft(void **state)
{
	struct fixture *f = *state;
	char *page;

	exec(f, "UPDATE issues SET started_at = NULL, status = 'draft' WHERE id = 1");
	f->is.started_at = 0;
	snprintf(f->is.status, sizeof f->is.status, "draft");
	compute(f);
	assert_int_equal(f->r.start, 0);
	page = render(&f->is, &f->r);
	assert_self_contained(page);
	assert_non_null(strstr(page, "<p>The issue has not been sent yet.</p>"));
	assert_null(strstr(page, "<svg"));
	assert_null(strstr(page, "send started"));
	assert_non_null(strstr(page, " · status draft · report made 2023-11-15 22:13 UTC</p>"));
	assert_rates_zero(page);
	free(page);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reportpage_self_contained),
		cmocka_unit_test(test_reportpage_checker_bites),
		cmocka_unit_test(test_reportpage_escapes),
		cmocka_unit_test(test_reportpage_chart_bars),
		cmocka_unit_test(test_reportpage_chart_local_time),
		cmocka_unit_test(test_reportpage_chart_three_days),
		cmocka_unit_test(test_reportpage_tables),
		cmocka_unit_test(test_reportpage_no_links),
		cmocka_unit_test(test_reportpage_chart_all_zero),
		cmocka_unit_test(test_reportpage_too_large),
		cmocka_unit_test_setup_teardown(test_reportpage_zero_denominators, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reportpage_no_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reportpage_draft, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
