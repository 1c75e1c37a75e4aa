/*
 * report.h - the figures of one issue's send, computed from its deliveries
 * and events rows: what `herald stats` prints as text, JSON and HTML.
 *
 * Definitions (the comms team reads these, tests assert them):
 *
 *   delivered      deliveries in status `sent` (the relay accepted the mail);
 *                  every rate below except the bounce rate is against it.
 *   opens.total    open events of the issue (every pixel fetch).
 *   opens.unique   distinct subscribers with at least one open event.
 *   machine open   an open event whose detail.ua is "machine" (the server
 *                  recognised a proxy or prefetching user agent, e.g. Apple
 *                  Mail Privacy Protection), or that came at most
 *                  REPORT_PREFETCH_SECS seconds after that subscriber's
 *                  deliveries.sent_at (a security scanner at the receiving
 *                  side fetching images as the mail arrives; an open recorded
 *                  before sent_at can only be one of those too).
 *   opens.human    unique subscribers with at least one open that is not a
 *                  machine open;
 *   opens.machine  unique subscribers all of whose opens are machine opens;
 *                  so human + machine = unique.
 *   clicks.total   click events; clicks.unique: distinct subscribers with one.
 *   clicks.links   one entry per link of the issue (issues.links, 1-based n,
 *                  the URL as stored, merge fields unmerged), even with no
 *                  click: total click events with detail.n = n, and unique
 *                  subscribers among them.
 *   unsubscribes   distinct subscribers with an unsubscribe event carrying
 *                  this issue's id (from the links in this issue's mail).
 *   leave_reasons  answers to the optional "Why are you leaving?" given
 *                  from a link in this issue's mail, per reason (prefs.h:
 *                  too_many, not_relevant, never_signed_up, other).
 *   bounces.hard   distinct subscribers with a bounce event of this issue
 *                  whose detail.class is "hard" (SMTP-time rejections and
 *                  hard DSNs);
 *   bounces.soft   distinct subscribers with only soft bounce events; so
 *                  hard + soft = subscribers who bounced.
 *   bounces.complaints  distinct subscribers with a complaint event.
 *   Events whose subscriber was since removed (subscriber_id NULL) count in
 *   the totals but in no per-subscriber figure.
 *
 * Rates (0 when the denominator is 0):
 *   open_rate          opens.human / delivered (machine opens say nothing
 *                      about a reader, so they are left out)
 *   click_rate         clicks.unique / delivered
 *   click_to_open_rate clicks.unique / opens.unique
 *   unsubscribe_rate   unsubscribes / delivered
 *   complaint_rate     bounces.complaints / delivered
 *   bounce_rate        (hard + soft) / (delivered + deliveries bounced)
 *
 * Per-hour series (the chart): open events and click events in each hour
 * from the send's start (issues.started_at, else the first sent_at) over
 * the first REPORT_HOURS hours, cut after the last hour that has an event.
 *
 * Cost: every query is a range of an index of the issue (deliveries' key,
 * events_by_issue, events_by_issue_time); nothing scans the whole tables,
 * and the largest sort is one over the issue's open events by subscriber.
 *
 * The JSON object (report_json()) is a contract for scripts, printed by
 * `herald stats --json` and meant to be served as it is by an HTTP API:
 * `issue` {id, subject, status}, `recipients`, `deliveries` with every
 * status {pending, sending, sent, deferred, bounced, failed, skipped},
 * `opens` {total, unique, human, machine}, `clicks` {total, unique, links:
 * [{n, url, total, unique}]}, `unsubscribes`, `bounces` {hard, soft,
 * complaints, reasons: [{class, reason, count, status, diagnostic}]} and
 * `rates` {open_rate, click_rate, click_to_open_rate, unsubscribe_rate,
 * complaint_rate, bounce_rate}, in that order and always all present.
 * After them: `skipped` {unengaged: the people the sunset rule left out
 * when the send started} and `audience`, the definition as it was then:
 * {lists: [names], segment: name or null, where: the segment's expression
 * or the inline where: or null, sunset_after: seconds or 0 (off, or not
 * applied because the filter targets engagement), sunset_skipped: bool};
 * `audience` is null when the send has not started or started before
 * herald kept it (sql/011_engagement.sql).  An issue with a subject test
 * adds `subject_test` (subjecttest_json(): each variant's recipients,
 * sent, unique human opens and clicks, rates, the winner and why).
 * `leave_reasons` {too_many, not_relevant, never_signed_up, other}: the
 * answers above, always all present.
 * `tracking` {mode, unique}: the [tracking] mode the send went under
 * ("on", "consent", "anonymous", "off"; null before the send started or
 * when it started before herald kept it) and whether unique counts can
 * be made (false under anonymous: its events name no one, so every
 * unique figure, and the rates built on them, stay 0; under consent they
 * count only the people who agreed, against all delivered).
 * Counts are integers, rates reals: fractions rounded to 4 decimals.
 * Later features add keys beside these and never rename them.
 *
 * The HTML page of the same figures is reportpage.h's.
 *
 * Kept figures (sql/017_tracking_retention.sql, retention.h): before
 * retention first removes any event or delivery of an issue,
 * report_freeze() stores the figures that depend on those rows in
 * issue_figures; report_compute() then takes them from there (deliveries
 * by status, opens, clicks per link, unsubscribes, bounces, the series,
 * the subject test's counts), so the issue's stats stay what they were.
 * Later events of that issue are no longer counted.
 */
#ifndef HERALD_REPORT_H
#define HERALD_REPORT_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/audience.h"
#include "herald/herr.h"
#include "herald/ledger.h"
#include "herald/prefs.h"

struct issue;  /* issue.h */
struct subjecttest; /* subjecttest.h */
struct json_t; /* jansson's json_t */

#define REPORT_HOURS         72 /* the chart covers the first three days */
#define REPORT_PREFETCH_SECS 2  /* an open this soon after delivery is a machine */

#define REPORT_STR_(x) #x
#define REPORT_STR(x)  REPORT_STR_(x)
/*
 * SQL: true when open event E (a table alias of events, as a string) is a
 * machine open, the definition above; the one text of that rule, used here
 * (opens_sql), by segment.c (`engaged SPAN`) and by engagement.c (a
 * subscriber's last open, the sunset rule).  It looks up E's delivery by
 * the deliveries primary key; an event of no issue, or of no delivery or
 * no sent_at, is judged by its ua alone.  Never NULL.  _UA is its first
 * half, the server's flag, for a caller that knows the timing half is
 * false without the lookup (opens_sql: opens long after the last send).
 */
#define REPORT_SQL_MACHINE_UA(E) "json_extract(" E ".detail, '$.ua') IS 'machine'"
#define REPORT_SQL_MACHINE_OPEN(E) \
	"(" REPORT_SQL_MACHINE_UA(E) " OR ifnull(" E ".at <= " \
	"(SELECT mo_d.sent_at FROM deliveries mo_d WHERE mo_d.issue_id = " E ".issue_id " \
	"AND mo_d.subscriber_id = " E ".subscriber_id) + " REPORT_STR(REPORT_PREFETCH_SECS) ", 0))"

struct report_link {
	int        n;       /* 1-based place in issues.links (the N of /c/TOKEN/N) */
	char      *url;     /* owned; as stored in the issue */
	long long  total;   /* click events */
	long long  unique;  /* distinct subscribers among them */
};

/* Failures of one class and reason (bounces table: DSNs, ARF reports and
 * rejections at SMTP time alike). */
#define REPORT_REASONS_MAX 32
struct report_reason {
	char      cls[12];         /* hard, soft, complaint */
	char      reason[32];      /* sisimai vocabulary */
	long long count;           /* recipients */
	char      status[16];      /* an example enhanced status code, "" if none */
	char      diagnostic[256]; /* an example diagnostic text, "" if none */
};

struct report {
	long long            issue_id;
	struct ledger_counts deliveries; /* by status, and .total = recipients */
	long long            delivered;  /* = deliveries.sent */
	struct {
		long long total, unique, human, machine;
	} opens;
	struct {
		long long           total, unique;
		struct report_link *links;   /* owned, n_links entries in issue order */
		size_t              n_links;
	} clicks;
	long long unsubscribes;
	long long leave_reasons[PREFS_N_REASONS]; /* by enum prefs_reason */
	struct {
		long long hard, soft, complaints;
		struct report_reason reasons[REPORT_REASONS_MAX]; /* most frequent first */
		size_t n_reasons;
	} bounces;
	struct {
		double open, click, click_to_open, unsubscribe, complaint, bounce;
	} rates;                          /* fractions, not rounded */
	long long start;                  /* Unix time the series starts; 0: never sent */
	int       hours;                  /* hours in the series, 0..REPORT_HOURS */
	long long hour_opens[REPORT_HOURS];  /* open events in [start+h*3600, +3600) */
	long long hour_clicks[REPORT_HOURS]; /* click events, likewise */
	struct audience_sent audience;    /* the audience as the send took it:
	                                     its definition, and the unengaged
	                                     left out (audience.h) */
	struct subjecttest *subject_test; /* owned: the issue's subject test with
	                                     its figures (subjecttest.h); NULL: none */
	char      tracking_mode[12];      /* tracking.h: "on" ... "off"; "": not known */
	int       frozen;                 /* the figures are issue_figures' (above) */
};

/*
 * Compute every figure of issue `issue_id` into *r (which the caller owns;
 * release it with report_clear(), also after a failure).  Reads only, in
 * one read transaction so the figures agree with each other while the web
 * server keeps recording events.  Returns 0, or -1 with EX_NOINPUT when
 * there is no such issue, or a database error.
 */
int report_compute(sqlite3 *db, long long issue_id, struct report *r, struct herr *err);

/*
 * The opens of the issue counted from its events, the definition above:
 * out = {total, unique, human}.  report_compute() reads the counts that
 * sql/026's triggers keep instead (a scan grows with the opens: 8 s for
 * three million); the tests check that the two agree.
 */
int report_opens_scan(sqlite3 *db, long long issue_id, long long out[3], struct herr *err);

/* The audience as the send took it, one line for people: "lists news,
 * research; where: engaged 90d; sunset after 365d" (r->audience), appended
 * to `out`.  -1 when `out` is full or memory runs out. */
struct buf;
int report_audience_text(const struct report *r, struct buf *out);

/*
 * Keep issue `issue_id`'s figures in issue_figures (above), unless they
 * are kept already (*kept = 0 then, else 1).  Computes them in the
 * caller's transaction, which must be a write transaction (retention.c
 * takes BEGIN IMMEDIATE), so no event can slip in between the count and
 * the row.  Owned by reportfreeze.c.
 */
int report_freeze(sqlite3 *db, long long issue_id, int *kept, struct herr *err);
/* Overwrite the row-dependent figures of r->issue_id with its kept ones,
 * if any (r->frozen = 1 then).  Called by report_compute(). */
int report_thaw(sqlite3 *db, struct report *r, struct herr *err);

/* Free what report_compute() allocated; *r is zeroed. */
void report_clear(struct report *r);

/* A rate as the JSON and the HTML page give it: rounded to 4 decimals, so
 * scripts and people see the same figure. */
double report_round_rate(double rate);

/*
 * The JSON object of the contract above for issue `is` (whose id, subject
 * and status it carries) and its figures `r`.  The caller json_decref()s
 * it.  NULL when memory runs out or a string is not UTF-8.
 */
struct json_t *report_json(const struct issue *is, const struct report *r);

/*
 * The same object as text, exactly as `herald stats --json` prints it:
 * indented by 2, rates with up to 10 significant digits (so 0.1234 reads
 * 0.1234, not 0.12340000000000001), no final newline.  The caller free()s
 * it.  NULL as for report_json().
 */
char *report_json_text(const struct issue *is, const struct report *r);

#endif
