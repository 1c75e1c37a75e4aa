/*
 * test_segment.c - segment.c: the segment language and saved segments, on
 * a real migrated database.
 *
 * The fixture is generated from a model held in C (struct msub: the
 * attributes, names, addresses, statuses and subscriptions of N
 * subscribers), and each expression's matches (segment_each, with and
 * without a list) are compared with a predicate computed in C over the
 * same model - an independent implementation of segment.h's rules
 * (1)-(4), not a second reading of the SQL.  Events, deliveries and
 * bounces for engaged, received and bounced_soft_within are hand-written
 * rows with the expected sets spelt out.  Also: every error with its
 * column, injection attempts matched literally, the parameter numbering
 * (invariant 1 of segment.c) composing with a statement's own ?N, the
 * limits, the saved segments, and the query plans behind segment.h's COST.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/issue.h"
#include "herald/report.h"
#include "herald/segment.h"
#include "tempdb.h"

#define N    80
#define NOW  1750000000LL /* 2025-06-15 */
#define DAY  86400LL

/* --- the model ------------------------------------------------------------ */

struct msub {
	long long   id;
	char        email[64];
	const char *name;
	const char *role, *age, *joined, *dot, *org; /* NULL: no such attribute */
	int         active;                          /* status active, not suppressed */
	/* subscriptions: news (list 1) and other (list 2); status 0 none,
	 * 'c' confirmed, 'u' unconfirmed, 'x' unsubscribed */
	char        news, other;
	long long   news_at, other_at;               /* coalesce(confirmed_at, created_at) */
	long long   news_created;
	int         news_confirmed_null;
};

static const char *const NAMES[] = { "Ada Lovelace", "", "Bo", "ADA LOVELACE", "Zoë Brown" };
static const char *const ROLES[] = { "Social worker", "social WORKER", "Senior social worker",
                                     "Team manager", NULL, "", "Z" };
static const char *const AGES[] = { "42", "7", "-3.5", "007", NULL, "unknown", "1e3", "18",
                                    "+5", "3.", ".5", "1.2.3", "4-2" };
static const char *const JOINED[] = { "2024-03-01", "2023-12-31", "2024-03-01T10:00",
                                      "2025-1-1", NULL, "2024-02-29", "2024-03-01 09:00",
                                      "2024-03-01X" };
static const char *const DOMS[] = { "example.org", "council.example.gov.uk", "uni.example.ac.uk" };

static struct msub M[N + 1];

static void
build_model(void)
{
	int i;

	memset(M, 0, sizeof M);
	for (i = 1; i <= N; i++) {
		struct msub *m = &M[i];

		m->id = i;
		snprintf(m->email, sizeof m->email, "%s%d@%s", i % 4 == 0 ? "Ada" : "bo", i,
		         DOMS[i % 3]);
		m->name = NAMES[i % 5];
		m->role = ROLES[i % 7];
		m->age = AGES[i % 13];
		m->joined = JOINED[i % 8];
		m->dot = i % 3 == 0 ? "x" : NULL;
		m->org = i % 11 == 0 ? "Lambeth" : NULL;
		m->active = !(i % 13 == 5) && i != 7; /* blocklisted; 7 is suppressed */
		if (i % 2 == 0) {
			m->news = 'c';
			m->news_created = NOW - i * 10 * DAY;
			m->news_confirmed_null = i % 6 == 0;
			m->news_at = m->news_created + (m->news_confirmed_null ? 0 : 3600);
		} else if (i % 4 == 1) {
			m->news = 'u';
			m->news_created = NOW - DAY;
		} else if (i % 8 == 3) {
			m->news = 'x';
			m->news_created = NOW - DAY;
		}
		if (i % 5 == 0) {
			m->other = 'c';
			m->other_at = NOW - DAY;
		}
	}
}

/* The value of an attribute as segment.h rule (1) has it: NULL when missing
 * or empty. */
static const char *
val(const char *v)
{
	return v && *v ? v : NULL;
}

static int
teq(const char *v, const char *t)
{
	return val(v) && !strcasecmp(v, t);
}

/* Text ordering without regard to ASCII case; *ok 0 when there is no value. */
static int
tcmp(const char *v, const char *t, int *ok)
{
	*ok = val(v) != NULL;
	return *ok ? strcasecmp(v, t) : 0;
}

/* A number: optional sign, then digits and at most one dot, a digit somewhere. */
static int
num(const char *v, double *d)
{
	const char *p = val(v);
	int digits = 0, dots = 0;

	if (!p)
		return 0;
	if (*p == '+' || *p == '-')
		p++;
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits++;
		else if (*p == '.')
			dots++;
		else
			return 0;
	}
	if (!digits || dots > 1)
		return 0;
	*d = strtod(v, NULL);
	return 1;
}

/* A date: YYYY-MM-DD, alone or before 'T' or ' '. */
static int
date(const char *v, char out[11])
{
	const char *p = val(v);
	int i;

	if (!p || strlen(p) < 10)
		return 0;
	for (i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? p[i] != '-' : (p[i] < '0' || p[i] > '9'))
			return 0;
	if (p[10] && p[10] != 'T' && p[10] != ' ')
		return 0;
	memcpy(out, p, 10);
	out[10] = '\0';
	return 1;
}

static int
starts(const char *v, const char *pre)
{
	return val(v) && !strncasecmp(v, pre, strlen(pre));
}

static int
ends(const char *v, const char *suf)
{
	size_t n = v ? strlen(v) : 0, k = strlen(suf);

	return val(v) && n >= k && !strcasecmp(v + n - k, suf);
}

static int
num_cmp(const char *v, double x, int want) /* want: -2 <, -1 <=, 0 =, 1 >=, 2 > */
{
	double d;

	if (!num(v, &d))
		return 0;
	switch (want) {
	case -2: return d < x;
	case -1: return d <= x;
	case 0: return d == x;
	case 1: return d >= x;
	default: return d > x;
	}
}

static int
date_cmp(const char *v, const char *x, int want)
{
	char d[11];
	int c;

	if (!date(v, d))
		return 0;
	c = strcmp(d, x);
	switch (want) {
	case -2: return c < 0;
	case -1: return c <= 0;
	case 0: return c == 0;
	case 1: return c >= 0;
	default: return c > 0;
	}
}

/* --- the fixture ---------------------------------------------------------- */

struct fixture {
	char     path[TEMPDB_PATH_MAX];
	sqlite3 *db;
};

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* Insert with bound parameters: the model's text goes in as data. */
static void
insert_model(sqlite3 *db)
{
	sqlite3_stmt *ins, *sub;
	int i;

	assert_int_equal(sqlite3_prepare_v2(db,
	        "INSERT INTO subscribers (id, email, email_key, name, attributes, status, "
	        "created_at, updated_at) VALUES (?1, ?2, lower(?2), ?3, "
	        "json_object('role', ?4, 'age', ?5, 'joined', ?6, 'a.b', ?7, 'org', ?8), ?9, 0, 0)",
	        -1, &ins, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	        "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at, "
	        "confirmed_at) VALUES (?1, ?2, ?3, ?4, ?5)", -1, &sub, NULL), SQLITE_OK);
	for (i = 1; i <= N; i++) {
		const struct msub *m = &M[i];
		const char *v[5] = { m->role, m->age, m->joined, m->dot, m->org };
		int k;

		sqlite3_bind_int64(ins, 1, m->id);
		sqlite3_bind_text(ins, 2, m->email, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, m->name, -1, SQLITE_STATIC);
		for (k = 0; k < 5; k++)
			sqlite3_bind_text(ins, 4 + k, v[k], -1, SQLITE_STATIC); /* NULL: json null */
		sqlite3_bind_text(ins, 9, i % 13 == 5 ? "blocklisted" : "active", -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
		sqlite3_reset(ins);
		if (m->news) {
			sqlite3_bind_int(sub, 1, 1);
			sqlite3_bind_int64(sub, 2, m->id);
			sqlite3_bind_text(sub, 3, m->news == 'c' ? "confirmed" : m->news == 'u' ?
			                  "unconfirmed" : "unsubscribed", -1, SQLITE_STATIC);
			sqlite3_bind_int64(sub, 4, m->news_created);
			if (m->news == 'c' && !m->news_confirmed_null)
				sqlite3_bind_int64(sub, 5, m->news_at);
			else
				sqlite3_bind_null(sub, 5);
			assert_int_equal(sqlite3_step(sub), SQLITE_DONE);
			sqlite3_reset(sub);
			sqlite3_clear_bindings(sub);
		}
		if (m->other) {
			sqlite3_bind_int(sub, 1, 2);
			sqlite3_bind_int64(sub, 2, m->id);
			sqlite3_bind_text(sub, 3, "confirmed", -1, SQLITE_STATIC);
			sqlite3_bind_int64(sub, 4, m->other_at - 60);
			sqlite3_bind_int64(sub, 5, m->other_at);
			assert_int_equal(sqlite3_step(sub), SQLITE_DONE);
			sqlite3_reset(sub);
			sqlite3_clear_bindings(sub);
		}
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(sub);
	/* json_object() kept the NULLs as JSON nulls: a null is no value
	 * either, but drop them so that "missing" is tested as missing */
	exec_ok(db, "UPDATE subscribers SET attributes = json_remove(attributes, '$.role') "
	            "WHERE json_type(attributes, '$.role') = 'null';"
	            "UPDATE subscribers SET attributes = json_remove(attributes, '$.age') "
	            "WHERE json_type(attributes, '$.age') = 'null';"
	            "UPDATE subscribers SET attributes = json_remove(attributes, '$.joined') "
	            "WHERE json_type(attributes, '$.joined') = 'null';"
	            "UPDATE subscribers SET attributes = json_remove(attributes, '$.\"a.b\"') "
	            "WHERE json_type(attributes, '$.\"a.b\"') = 'null';"
	            "UPDATE subscribers SET attributes = json_remove(attributes, '$.org') "
	            "WHERE json_type(attributes, '$.org') = 'null';"
	            "INSERT INTO suppressions (pattern, created_at) "
	            "SELECT email_key, 0 FROM subscribers WHERE id = 7;");
}

/*
 * Engagement rows (ids chosen among the active subscribers):
 *   deliveries of issue 1: 1, 2, 3, 12, 13, 14 sent 10 days ago; 4 sent 200
 *   days ago; 8 sent 400 days ago; 6 bounced (no sent_at).
 *   events: 1 human open; 2 an open flagged machine; 3 an open 1 s after
 *   its delivery (prefetch); 9 an open of an issue with no delivery of
 *   theirs (no timing rule: human); 10 a click (its ua says machine:
 *   clicks count anyway); 11 a human open 100 days ago; 12 an open exactly
 *   REPORT_PREFETCH_SECS after sent_at (machine); 13 one a second later
 *   (human); 14 an open before sent_at (machine); 15 a human open in the
 *   future; 16 a subscribe event; and an open of a removed subscriber.
 *   bounces: 20 soft 5 days ago; 21 hard 5 days ago; 22 soft 60 days ago;
 *   23 a complaint.
 */
static void
insert_engagement(sqlite3 *db)
{
	char sql[4096];
	long long sent = NOW - 10 * DAY;

	snprintf(sql, sizeof sql,
	         "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, "
	         "status, created_at) VALUES (1, 1, 's', 'a@x.org', '', '', '', 'sent', 0), "
	         "(2, 1, 's', 'a@x.org', '', '', '', 'sent', 0);"
	         "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
	         "sent_at) VALUES (1, 1, 'sent', 0, 0, %lld), (1, 2, 'sent', 0, 0, %lld), "
	         "(1, 3, 'sent', 0, 0, %lld), (1, 12, 'sent', 0, 0, %lld), "
	         "(1, 13, 'sent', 0, 0, %lld), (1, 14, 'sent', 0, 0, %lld), "
	         "(1, 4, 'sent', 0, 0, %lld), (1, 8, 'sent', 0, 0, %lld), "
	         "(1, 6, 'bounced', 0, 0, NULL);"
	         "INSERT INTO events (kind, issue_id, subscriber_id, at, detail) VALUES "
	         "('open', 1, 1, %lld, '{\"ua\":\"human\"}'),"
	         "('open', 1, 2, %lld, '{\"ua\":\"machine\"}'),"
	         "('open', 1, 3, %lld, '{}'),"
	         "('open', 2, 9, %lld, '{}'),"
	         "('click', 1, 10, %lld, '{\"ua\":\"machine\",\"n\":1}'),"
	         "('open', 1, 11, %lld, '{\"ua\":\"human\"}'),"
	         "('open', 1, 12, %lld, '{\"ua\":\"human\"}'),"
	         "('open', 1, 13, %lld, '{\"ua\":\"human\"}'),"
	         "('open', 1, 14, %lld, '{\"ua\":\"human\"}'),"
	         "('open', 1, 15, %lld, '{\"ua\":\"human\"}'),"
	         "('subscribe', NULL, 16, %lld, '{}'),"
	         "('open', 1, NULL, %lld, '{\"ua\":\"human\"}');"
	         "INSERT INTO bounces (subscriber_id, recipient, source, class, reason, at) VALUES "
	         "(20, 'r', 'dsn', 'soft', 'mailboxfull', %lld),"
	         "(21, 'r', 'dsn', 'hard', 'userunknown', %lld),"
	         "(22, 'r', 'dsn', 'soft', 'mailboxfull', %lld),"
	         "(23, 'r', 'arf', 'complaint', 'feedback', %lld);",
	         sent, sent, sent, sent, sent, sent, NOW - 200 * DAY, NOW - 400 * DAY,
	         sent + 3600, sent + 3600, sent + 1, NOW - 5 * DAY, NOW - DAY, NOW - 100 * DAY,
	         sent + REPORT_PREFETCH_SECS, sent + REPORT_PREFETCH_SECS + 1,
	         sent - 60, NOW + 3600, NOW - DAY, NOW - DAY,
	         NOW - 5 * DAY, NOW - 5 * DAY, NOW - 60 * DAY, NOW - 5 * DAY);
	exec_ok(db, sql);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f || tempdb_open(f->path, "segment", &f->db) < 0)
		return -1;
	build_model();
	exec_ok(f->db, "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0), "
	               "(2, 'other', 0)");
	insert_model(f->db);
	insert_engagement(f->db);
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

/* --- helpers -------------------------------------------------------------- */

struct hits {
	char      in[N + 1];
	long long last;
	int       n, ordered;
};

static int
collect(void *ctx, const struct segment_row *r)
{
	struct hits *h = ctx;

	if (r->id < 1 || r->id > N)
		fail_msg("id %lld out of the fixture", r->id);
	if (r->id <= h->last)
		h->ordered = 0;
	h->last = r->id;
	h->in[r->id] = 1;
	h->n++;
	assert_non_null(r->email);
	assert_string_equal(r->email, M[r->id].email);
	assert_string_equal(r->name, M[r->id].name);
	return 0;
}

static struct segment *
compile_ok(sqlite3 *db, const char *expr)
{
	struct segment *seg = NULL;
	struct herr err;

	herr_clear(&err);
	if (segment_compile(db, expr, "--where", NOW, &seg, &err) < 0)
		fail_msg("'%s': %s: %s", expr, err.where, err.msg);
	return seg;
}

static void
matches(sqlite3 *db, const char *expr, long long list_id, struct hits *h)
{
	struct segment *seg = compile_ok(db, expr);
	struct herr err;
	long long n;

	memset(h, 0, sizeof *h);
	h->ordered = 1;
	herr_clear(&err);
	assert_int_equal(segment_each(db, seg, list_id, collect, h, &err), 0);
	assert_true(h->ordered);
	assert_int_equal(segment_count(db, seg, list_id, &n, &err), 0);
	assert_int_equal(n, h->n);
	segment_free(seg);
}

static long long n_active(void);

typedef int (*pred_fn)(const struct msub *m);

/* The segment's matches equal the model's, among every active subscriber
 * and among list 1's audience. */
static void
expect_model(sqlite3 *db, const char *expr, pred_fn pred)
{
	struct hits all, news;
	int i, n_model = 0;

	matches(db, expr, 0, &all);
	matches(db, expr, 1, &news);
	for (i = 1; i <= N; i++) {
		int want = M[i].active && pred(&M[i]);

		n_model += want;
		if (all.in[i] != want)
			fail_msg("'%s': subscriber %d (role %s, age %s, joined %s, name '%s', %s): "
			         "segment says %d, the model %d", expr, i, M[i].role ? M[i].role : "-",
			         M[i].age ? M[i].age : "-", M[i].joined ? M[i].joined : "-", M[i].name,
			         M[i].email, all.in[i], want);
		if (news.in[i] != (want && M[i].news == 'c'))
			fail_msg("'%s' --list news: subscriber %d: segment says %d", expr, i,
			         news.in[i]);
	}
	/* an expression that matches nobody or everybody tests little */
	if (n_model == 0 || n_model == n_active())
		fail_msg("'%s' matches %s in the model", expr, n_model ? "everybody" : "nobody");
}

static void
expect_ids(sqlite3 *db, const char *expr, const int *ids, size_t n_ids)
{
	struct hits h;
	size_t i;

	matches(db, expr, 0, &h);
	for (i = 0; i < n_ids; i++)
		if (!h.in[ids[i]])
			fail_msg("'%s' should match subscriber %d", expr, ids[i]);
	if ((size_t)h.n != n_ids)
		fail_msg("'%s' matches %d subscribers, not %zu", expr, h.n, n_ids);
}

static long long
count_of(sqlite3 *db, const char *expr)
{
	struct segment *seg = compile_ok(db, expr);
	struct herr err;
	long long n = -1;

	assert_int_equal(segment_count(db, seg, 0, &n, &err), 0);
	segment_free(seg);
	return n;
}

static long long
n_active(void)
{
	int i;
	long long n = 0;

	for (i = 1; i <= N; i++)
		n += M[i].active;
	return n;
}

/* --- operators against the model ----------------------------------------- */

static int p_eq(const struct msub *m) { return teq(m->role, "social worker"); }
static int p_ne(const struct msub *m) { return !teq(m->role, "Social Worker"); }
static int p_lt(const struct msub *m) { int ok, c = tcmp(m->role, "T", &ok); return ok && c < 0; }
static int p_ge(const struct msub *m) { int ok, c = tcmp(m->role, "team manager", &ok); return ok && c >= 0; }
static int p_le(const struct msub *m) { int ok, c = tcmp(m->role, "senior SOCIAL worker", &ok); return ok && c <= 0; }
static int p_gt(const struct msub *m) { int ok, c = tcmp(m->role, "social worker", &ok); return ok && c > 0; }
static int p_num_gt(const struct msub *m) { return num_cmp(m->age, 10, 2); }
static int p_num_le(const struct msub *m) { return num_cmp(m->age, 7, -1); }
static int p_num_eq(const struct msub *m) { return num_cmp(m->age, 7, 0); }
static int p_num_ne(const struct msub *m) { return !num_cmp(m->age, 42, 0); }
static int p_num_lt(const struct msub *m) { return num_cmp(m->age, 0.5, -2); }
static int p_num_ge(const struct msub *m) { return num_cmp(m->age, -3.5, 1); }
static int p_date_ge(const struct msub *m) { return date_cmp(m->joined, "2024-03-01", 1); }
static int p_date_lt(const struct msub *m) { return date_cmp(m->joined, "2024-01-01", -2); }
static int p_date_eq(const struct msub *m) { return date_cmp(m->joined, "2024-03-01", 0); }
static int p_date_ne(const struct msub *m) { return !date_cmp(m->joined, "2024-03-01", 0); }
static int p_date_gt(const struct msub *m) { return date_cmp(m->joined, "2024-02-29", 2); }
static int p_date_le(const struct msub *m) { return date_cmp(m->joined, "2024-02-29", -1); }
static int p_text_date(const struct msub *m) { return teq(m->joined, "2024-03-01"); }
static int p_text_num(const struct msub *m) { return teq(m->age, "7"); }
static int p_in(const struct msub *m) { return teq(m->role, "team manager") || teq(m->role, "z"); }
static int p_not_in(const struct msub *m) { return !p_in(m); }
static int p_in_mixed(const struct msub *m)
{
	return num_cmp(m->age, 7, 0) || num_cmp(m->age, 42, 0) || teq(m->age, "unknown") ||
	       date_cmp(m->age, "2024-01-01", 0);
}
static int p_starts(const struct msub *m) { return starts(m->role, "soc"); }
static int p_ends(const struct msub *m) { return ends(m->role, "WORKER"); }
static int p_not_ends(const struct msub *m) { return !ends(m->role, "worker"); }
static int p_exists(const struct msub *m) { return val(m->age) != NULL; }
static int p_not_exists(const struct msub *m) { return !val(m->role); }
static int p_dot_key(const struct msub *m) { return teq(m->dot, "X"); }
static int p_name_ne(const struct msub *m) { return m->name[0] != '\0'; }
static int p_name_eq(const struct msub *m) { return !strcasecmp(m->name, "ada lovelace"); }
static int p_name_utf8(const struct msub *m) { return !strcmp(m->name, "Zoë Brown"); }
static int p_name_lt(const struct msub *m) { return strcasecmp(m->name, "b") < 0; }
static int p_email_ends(const struct msub *m) { return ends(m->email, "@COUNCIL.example.gov.uk"); }
static int p_email_starts(const struct msub *m) { return starts(m->email, "ADA"); }
static int p_email_in(const struct msub *m) { return !strcasecmp(m->email, "BO1@COUNCIL.example.gov.uk") || !strcasecmp(m->email, "ada4@council.example.gov.uk"); }
static int p_prec_or_and(const struct msub *m)
{
	return teq(m->role, "z") || (num_cmp(m->age, 7, 0) && val(m->joined));
}
static int p_prec_paren(const struct msub *m)
{
	return (teq(m->role, "z") || num_cmp(m->age, 7, 0)) && val(m->joined);
}
static int p_not_binds(const struct msub *m)
{
	return !teq(m->role, "z") && !num_cmp(m->age, 7, 0);
}
static int p_not_group(const struct msub *m) { return !(teq(m->role, "z") || num_cmp(m->age, 7, 0)); }
static int p_not_not(const struct msub *m) { return val(m->role) != NULL; }
static int p_list(const struct msub *m) { return m->news == 'c'; }
static int p_list_other_and(const struct msub *m) { return m->other == 'c' && num_cmp(m->age, 10, 2); }
static int p_not_list(const struct msub *m) { return m->news != 'c'; }
static int p_sub_within(const struct msub *m)
{
	return (m->news == 'c' && m->news_at >= NOW - 100 * DAY && m->news_at <= NOW) ||
	       (m->other == 'c' && m->other_at >= NOW - 100 * DAY);
}
static int p_sub_before_span(const struct msub *m)
{
	return (m->news == 'c' && m->news_at < NOW - 300 * DAY) ||
	       (m->other == 'c' && m->other_at < NOW - 300 * DAY);
}
static int p_long_or(const struct msub *m)
{
	return teq(m->role, "z") || teq(m->role, "team manager") || num_cmp(m->age, 18, 0) ||
	       starts(m->email, "ada") || date_cmp(m->joined, "2023-12-31", 0);
}

static const struct {
	const char *expr;
	pred_fn     pred;
} CASES[] = {
	{ "attr.role = \"social worker\"", p_eq },
	{ "attr.role != \"Social Worker\"", p_ne },
	{ "not (attr.role = \"Social Worker\")", p_ne },   /* rule (2) */
	{ "attr.role < \"T\"", p_lt },
	{ "attr.role >= \"team manager\"", p_ge },
	{ "attr.role <= \"senior SOCIAL worker\"", p_le },
	{ "attr.role > \"social worker\"", p_gt },
	{ "attr.age > 10", p_num_gt },
	{ "attr.age <= 7", p_num_le },                       /* "007", "-3.5", ".5", "3." */
	{ "attr.age = 7", p_num_eq },
	{ "attr.age != 42", p_num_ne },                      /* "unknown" and missing too */
	{ "attr.age < 0.5", p_num_lt },
	{ "attr.age >= -3.5", p_num_ge },
	{ "attr.joined >= 2024-03-01", p_date_ge },
	{ "attr.joined < 2024-01-01", p_date_lt },
	{ "attr.joined = 2024-03-01", p_date_eq },           /* also with a time */
	{ "attr.joined != 2024-03-01", p_date_ne },
	{ "attr.joined > 2024-02-29", p_date_gt },
	{ "attr.joined <= 2024-02-29", p_date_le },
	{ "attr.joined = \"2024-03-01\"", p_text_date },     /* quoted: text, exactly */
	{ "attr.age = \"7\"", p_text_num },                  /* quoted: "007" is not "7" */
	{ "attr.role in (\"team manager\", \"z\")", p_in },
	{ "attr.role not in (\"TEAM MANAGER\", \"Z\")", p_not_in },
	{ "not (attr.role in (\"team manager\", \"z\"))", p_not_in },
	{ "attr.age in (7, 42, \"unknown\", 2024-01-01)", p_in_mixed },
	{ "attr.role starts_with \"soc\"", p_starts },
	{ "attr.role ends_with \"WORKER\"", p_ends },
	{ "not attr.role ends_with \"worker\"", p_not_ends },
	{ "exists attr.age", p_exists },
	{ "not exists attr.role", p_not_exists },            /* "" is no value */
	{ "attr.a.b = \"X\"", p_dot_key },                   /* a dot is part of the key */
	{ "name != \"\"", p_name_ne },
	{ "name = \"ada lovelace\"", p_name_eq },
	{ "name = \"Zoë Brown\"", p_name_utf8 },
	{ "name < \"b\"", p_name_lt },
	{ "email ends_with \"@COUNCIL.example.gov.uk\"", p_email_ends },
	{ "email starts_with \"ADA\"", p_email_starts },
	{ "email in (\"BO1@COUNCIL.example.gov.uk\", \"ada4@council.example.gov.uk\")", p_email_in },
	{ "attr.role = \"z\" or attr.age = 7 and exists attr.joined", p_prec_or_and },
	{ "(attr.role = \"z\" or attr.age = 7) and exists attr.joined", p_prec_paren },
	{ "not attr.role = \"z\" and not attr.age = 7", p_not_binds },
	{ "NOT (ATTR.role = \"z\" Or Attr.age = 7)", p_not_group },
	{ "not not exists attr.role", p_not_not },
	{ "list news", p_list },
	{ "LIST \"other\" AND attr.age > 10", p_list_other_and },
	{ "not list news", p_not_list },
	{ "subscribed_within 100d", p_sub_within },
	{ "subscribed_before 300d", p_sub_before_span },
	{ "attr.role = \"z\"\n or attr.role = \"team manager\"\tor attr.age = 18 or email "
	  "starts_with \"ada\" or attr.joined = 2023-12-31", p_long_or },
};

static void
test_segment_operators_match_model(void **state)
{
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
		expect_model(f->db, CASES[i].expr, CASES[i].pred);
}

/* Rule (2): a term and its negation split the population, whatever the
 * term does with missing values; and precedence changes results. */
static void
test_segment_negation_is_complement(void **state)
{
	struct fixture *f = *state;
	size_t i;
	char neg[512];

	for (i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
		snprintf(neg, sizeof neg, "not (%s)", CASES[i].expr);
		assert_int_equal(count_of(f->db, CASES[i].expr) + count_of(f->db, neg), n_active());
	}
	/* the two readings of a or b and c differ on this fixture */
	assert_int_not_equal(count_of(f->db, "attr.role = \"z\" or attr.age = 7 and exists attr.joined"),
	                     count_of(f->db, "(attr.role = \"z\" or attr.age = 7) and exists attr.joined"));
	/* the orderings are not each other's negation (rule 2) */
	assert_true(count_of(f->db, "attr.age < 18") + count_of(f->db, "attr.age >= 18") <
	            n_active());
}

static void
test_segment_compare_with_subscribed_before_date(void **state)
{
	struct fixture *f = *state;
	struct hits h;
	struct herr err;
	long long midnight;
	int i;

	/* DATE is local midnight (issue_parse_time without an offset) */
	assert_int_equal(issue_parse_time("2025-03-01", &midnight, &err), 0);
	matches(f->db, "subscribed_before 2025-03-01", 0, &h);
	for (i = 1; i <= N; i++) {
		int want = M[i].active && ((M[i].news == 'c' && M[i].news_at < midnight) ||
		                           (M[i].other == 'c' && M[i].other_at < midnight));

		if (h.in[i] != want)
			fail_msg("subscribed_before: subscriber %d: %d", i, h.in[i]);
	}
	assert_true(h.n > 0);
}

/* --- behaviour ------------------------------------------------------------ */

static void
test_segment_engaged_excludes_machine_opens(void **state)
{
	struct fixture *f = *state;
	static const int e30[] = { 1, 9, 10, 13 };
	static const int e180[] = { 1, 9, 10, 11, 13 };

	expect_ids(f->db, "engaged 30d", e30, 4);
	expect_ids(f->db, "engaged 180d", e180, 5);
	expect_ids(f->db, "engaged 4w", e30, 4);
	/* an event of a removed subscriber (NULL) keeps `not` exact */
	assert_int_equal(count_of(f->db, "not engaged 30d"), n_active() - 4);
	expect_ids(f->db, "engaged 2d", (const int[]){ 10 }, 1);
	expect_ids(f->db, "engaged 30h", (const int[]){ 10 }, 1);
}

static void
test_segment_received(void **state)
{
	struct fixture *f = *state;
	static const int r30[] = { 1, 2, 3, 12, 13, 14 };
	static const int r365[] = { 1, 2, 3, 4, 12, 13, 14 };

	expect_ids(f->db, "received 30d", r30, 6);
	expect_ids(f->db, "received 52w", r365, 7);
	expect_ids(f->db, "received 30d and not engaged 30d", (const int[]){ 2, 3, 12, 14 }, 4);
}

static void
test_segment_bounced_soft_within(void **state)
{
	struct fixture *f = *state;

	expect_ids(f->db, "bounced_soft_within 30d", (const int[]){ 20 }, 1);
	expect_ids(f->db, "bounced_soft_within 90d", (const int[]){ 20, 22 }, 2);
	assert_int_equal(count_of(f->db, "not bounced_soft_within 30d"), n_active() - 1);
}

/* Without a list: the active, unsuppressed subscribers; with one: its
 * audience (confirmed, active, not suppressed).  An expression true for
 * everyone shows who is left out. */
static void
test_segment_count_leaves_out_blocked_and_suppressed(void **state)
{
	struct fixture *f = *state;
	struct hits h;

	matches(f->db, "email ends_with \".org\" or not (email ends_with \".org\")", 0, &h);
	assert_int_equal(h.n, n_active());
	assert_false(h.in[7]);   /* suppressed */
	assert_false(h.in[5]);   /* blocklisted */
	assert_false(h.in[18]);  /* blocklisted, confirmed on news */
	matches(f->db, "exists attr.joined or not exists attr.joined", 1, &h);
	assert_false(h.in[18]);
	assert_true(h.in[2]);
	assert_false(h.in[1]);   /* unconfirmed on news */
	assert_false(h.in[3]);   /* unsubscribed from news */
}

/* Injection attempts are values; the table survives them. */
static void
test_segment_values_never_become_sql(void **state)
{
	struct fixture *f = *state;
	static const char *const evil[] = {
		"'; DROP TABLE subscribers; --",
		"\") OR 1=1 --",
		"x' OR '1'='1",
		"say \"hi\" \\ bye",
		"50%_off",
		"?101",
	};
	/* active subscribers without an org of their own */
	static const int ids[] = { 40, 42, 46, 48, 50, 52 };
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < sizeof evil / sizeof evil[0]; i++) {
		assert_int_equal(sqlite3_prepare_v2(f->db, "UPDATE subscribers SET attributes = "
		                                    "json_set(attributes, '$.org', ?1) WHERE id = ?2",
		                                    -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_text(st, 1, evil[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, ids[i]);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	expect_ids(f->db, "attr.org = \"'; DROP TABLE subscribers; --\"", (const int[]){ 40 }, 1);
	expect_ids(f->db, "attr.org = \"\\\") OR 1=1 --\"", (const int[]){ 42 }, 1);
	expect_ids(f->db, "attr.org = \"x' OR '1'='1\"", (const int[]){ 46 }, 1);
	expect_ids(f->db, "attr.org = \"say \\\"hi\\\" \\\\ bye\"", (const int[]){ 48 }, 1);
	/* LIKE's wildcards are literal in starts_with and ends_with */
	expect_ids(f->db, "attr.org starts_with \"50%_\"", (const int[]){ 50 }, 1);
	assert_int_equal(count_of(f->db, "attr.org starts_with \"5_\""), 0);
	assert_int_equal(count_of(f->db, "attr.org ends_with \"%\""), 0);
	expect_ids(f->db, "attr.org = \"?101\"", (const int[]){ 52 }, 1);
	expect_ids(f->db, "attr.org ends_with \"-\" and attr.org starts_with \"'\"",
	           (const int[]){ 40 }, 1);
	/* the six, and the model's Lambeths 11, 22, 33, 55, 66 and 77 */
	assert_int_equal(count_of(f->db, "exists attr.org"), 12);
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT count(*) FROM subscribers", -1, &st,
	                                    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), N);
	sqlite3_finalize(st);
	exec_ok(f->db, "UPDATE subscribers SET attributes = json_remove(attributes, '$.org') "
	               "WHERE id IN (40, 42, 46, 48, 50, 52)");
}

/* Only JSON strings are values (audience.h's "present"); a number stored
 * by hand is not one, and neither is an empty string. */
static void
test_segment_only_strings_are_values(void **state)
{
	struct fixture *f = *state;

	exec_ok(f->db, "UPDATE subscribers SET attributes = json_set(attributes, '$.n', 42) "
	               "WHERE id = 2; UPDATE subscribers SET attributes = json_set(attributes, "
	               "'$.n', '42') WHERE id = 4; UPDATE subscribers SET attributes = "
	               "json_set(attributes, '$.n', '') WHERE id = 6");
	expect_ids(f->db, "exists attr.n", (const int[]){ 4 }, 1);
	expect_ids(f->db, "attr.n = 42", (const int[]){ 4 }, 1);
	expect_ids(f->db, "attr.n = \"42\"", (const int[]){ 4 }, 1);
	assert_int_equal(count_of(f->db, "attr.n != 42"), n_active() - 1);
	exec_ok(f->db, "UPDATE subscribers SET attributes = json_remove(attributes, '$.n')");
}

/* --- errors --------------------------------------------------------------- */

static void
expect_error(sqlite3 *db, const char *expr, const char *where, const char *msg)
{
	struct segment *seg = (struct segment *)1;
	struct herr err;

	herr_clear(&err);
	if (segment_compile(db, expr, "--where", NOW, &seg, &err) == 0)
		fail_msg("'%s' compiled", expr);
	assert_null(seg);
	assert_int_equal(err.code, EX_DATAERR);
	if (strcmp(err.where, where) || !strstr(err.msg, msg))
		fail_msg("'%s': got '%s: %s', wanted '%s: ...%s...'", expr, err.where, err.msg, where,
		         msg);
}

static void
test_segment_errors_name_the_column(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *expr, *where, *msg;
	} E[] = {
		{ "", "--where:1:1", "empty expression" },
		{ "  \n ", "--where:2:2", "empty expression" },
		{ "attr.role contains \"x\"", "--where:1:11", "unknown attribute function 'contains'; "
		  "use =, !=, <, <=, >, >=, in, not in, starts_with or ends_with" },
		{ "attr.role startswith \"x\"", "--where:1:11",
		  "unknown attribute function 'startswith'; did you mean 'starts_with'?" },
		{ "attr.role = \"Social", "--where:1:13", "unterminated string" },
		{ "attr.role = \"a\" or\nattr.org = \"b", "--where:2:12", "unterminated string" },
		{ "attr.role = ", "--where:1:13", "expected a value after '='" },
		{ "attr.role =", "--where:1:12", "expected a value after '='" },
		{ "attr.role >= Lambeth", "--where:1:14", "expected a value after '>=', not 'Lambeth'" },
		{ "attr.role in (\"a\",)", "--where:1:19", "expected a value after ','" },
		{ "attr.role in ()", "--where:1:15", "expected a value after '('" },
		{ "attr.role in \"a\"", "--where:1:14", "expected '(' after 'in'" },
		{ "attr.role in (\"a\" \"b\")", "--where:1:19", "expected ',' or ')'" },
		{ "list nws", "--where:1:6", "no list named 'nws'; did you mean 'news'?" },
		{ "list newsletter", "--where:1:6", "no list named 'newsletter'" },
		{ "attr.x = \"a\" and list \"zzzzzzzz\"", "--where:1:23", "no list named 'zzzzzzzz'" },
		{ "attr.x = \"a\" attr.y = \"b\"", "--where:1:14",
		  "expected 'and' or 'or' before 'attr.y'" },
		{ "attr.x = \"a\")", "--where:1:13", "unmatched ')'" },
		{ "(attr.x = \"a\"", "--where:1:14", "expected ')' to close the '(' at 1:1" },
		{ "attr.x = \"a\" and", "--where:1:17", "the expression ends where a term was expected" },
		{ "attr.x = \"a\" or or", "--where:1:17", "expected a term before 'or'" },
		{ "\"a\" = attr.x", "--where:1:1", "expected a term, not a string" },
		{ "engagd 30d", "--where:1:1", "unknown term 'engagd'; did you mean 'engaged'?" },
		{ "role = \"x\"", "--where:1:1", "unknown term 'role'; an attribute is written attr.role" },
		{ "atr.role = \"x\"", "--where:1:1", "did you mean 'attr.role'?" },
		{ "attr = \"x\"", "--where:1:5", "expected '.' and an attribute name after 'attr'" },
		{ "attr. = \"x\"", "--where:1:6", "expected an attribute name after 'attr.'" },
		{ "attr.\"Job Title\" = \"x\"", "--where:1:6", "an attribute name in a segment is made "
		  "of letters, digits, '_', '.' and '-'" },
		{ "attr.role == \"x\"", "--where:1:11", "unknown operator '=='; did you mean '='?" },
		{ "attr.role <> \"x\"", "--where:1:11", "unknown operator '<>'; did you mean '!='?" },
		{ "attr.role ! \"x\"", "--where:1:11", "unexpected '!'" },
		{ "attr.role = 'x'", "--where:1:13", "strings are written in double quotes" },
		{ "attr.role = \"a\\nb\"", "--where:1:15", "unknown escape '\\n'" },
		{ "attr.role = \"x\"; DROP TABLE subscribers", "--where:1:16", "unexpected character ';'" },
		{ "attr.role = \"x\" and é", "--where:1:21", "unexpected character 'é'" },
		{ "attr.role = \"\"", "--where:1:13", "an attribute is never empty; write 'not exists "
		  "attr.role'" },
		{ "attr.role != \"\"", "--where:1:14", "write 'exists attr.role'" },
		{ "attr.role in (\"a\", \"\")", "--where:1:20", "an attribute is never empty" },
		{ "attr.role starts_with \"\"", "--where:1:23", "an attribute is never empty" },
		{ "attr.role starts_with 5", "--where:1:23", "expected a quoted string after 'starts_with'" },
		{ "name = 42", "--where:1:8", "name compares only with a quoted string" },
		{ "email in (\"a\", 2024-01-01)", "--where:1:16", "email compares only with a quoted string" },
		{ "exists name", "--where:1:8", "expected attr.KEY after 'exists'" },
		{ "attr.x not = \"a\"", "--where:1:12", "expected 'in' after 'attr.x not'" },
		{ "attr.x", "--where:1:7", "expected an operator after attr.x, not the end" },
		{ "attr.x = 2024-02-30", "--where:1:10", "invalid date '2024-02-30'" },
		{ "attr.x = 1e5", "--where:1:10", "expected a value after '=', not '1e5'" },
		{ "attr.x = 1.2.3", "--where:1:10", "expected a value after '='" },
		{ "engaged 30", "--where:1:9", "expected a span such as 30d, 12h or 2w after 'engaged'" },
		{ "received 30m", "--where:1:10", "expected a span" },
		{ "bounced_soft_within 0d", "--where:1:21", "a span must be from 1 hour to 100 years" },
		{ "subscribed_within 5300w", "--where:1:19", "a span must be from 1 hour to 100 years" },
		{ "subscribed_before 2025-13-01", "--where:1:19", "invalid date '2025-13-01'" },
		{ "subscribed_before soon", "--where:1:19", "expected a date YYYY-MM-DD or a span" },
		{ "list", "--where:1:5", "expected a list name after 'list'" },
		{ "not in (\"a\")", "--where:1:5", "expected a term before 'in'" },
		{ "(\n  attr.x = \"a\"\n  and bogus)", "--where:3:7", "unknown term 'bogus'" },
		{ "name = \"Zoë\" and x", "--where:1:18", "unknown term 'x'" },
	};
	size_t i;

	for (i = 0; i < sizeof E / sizeof E[0]; i++)
		expect_error(f->db, E[i].expr, E[i].where, E[i].msg);
}

static void
test_segment_rejects_invalid_utf8(void **state)
{
	struct fixture *f = *state;

	expect_error(f->db, "name = \"a\xff\"", "--where:1:10", "not valid UTF-8");
	expect_error(f->db, "name = \"é\xc3\"", "--where:1:10", "not valid UTF-8");
}

static void
test_segment_limits(void **state)
{
	struct fixture *f = *state;
	char *e = malloc(SEGMENT_EXPR_MAX + 64);
	struct segment *seg;
	struct herr err;
	size_t n;
	int i;

	assert_non_null(e);
	/* length: 4096 bytes compile, 4097 do not */
	memset(e, ' ', SEGMENT_EXPR_MAX);
	memcpy(e, "name = \"x\"", 10);
	e[SEGMENT_EXPR_MAX] = '\0';
	seg = compile_ok(f->db, e);
	segment_free(seg);
	e[SEGMENT_EXPR_MAX] = ' ';
	e[SEGMENT_EXPR_MAX + 1] = '\0';
	herr_clear(&err);
	assert_int_equal(segment_compile(f->db, e, "--where", NOW, &seg, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "--where");
	assert_non_null(strstr(err.msg, "the limit is 4096"));

	/* depth: 32 levels of ( and not compile, 33 do not */
	for (n = 0, i = 0; i < SEGMENT_DEPTH_MAX; i++)
		n += (size_t)sprintf(e + n, i % 2 ? "not " : "(");
	n += (size_t)sprintf(e + n, "name = \"x\"");
	for (i = 0; i < SEGMENT_DEPTH_MAX; i++)
		if (!(i % 2))
			n += (size_t)sprintf(e + n, ")");
	seg = compile_ok(f->db, e);
	segment_free(seg);
	snprintf(e, SEGMENT_EXPR_MAX, "%s", "");
	for (n = 0, i = 0; i <= SEGMENT_DEPTH_MAX; i++)
		n += (size_t)sprintf(e + n, "not ");
	sprintf(e + n, "name = \"x\"");
	expect_error(f->db, e, "--where:1:129", "nested deeper than 32 levels");

	/* terms: 256 compile, 257 do not; in-list values count */
	for (n = 0, i = 0; i < SEGMENT_TERMS_MAX; i++)
		n += (size_t)sprintf(e + n, "%sname=\"%d\"", i ? " or " : "", i);
	seg = compile_ok(f->db, e);
	segment_free(seg);
	sprintf(e + n, " or name=\"x\"");
	{
		char where[32];

		/* the 257th term, after the 256 and " or " */
		snprintf(where, sizeof where, "--where:1:%zu", n + 5);
		expect_error(f->db, e, where, "more than 256 terms");
	}
	free(e);
}

/* Each value of an in-list is a term. */
static void
test_segment_limit_in_list(void **state)
{
	struct fixture *f = *state;
	char e[4096];
	size_t n;
	int i;

	n = (size_t)sprintf(e, "attr.x in (");
	for (i = 0; i < SEGMENT_TERMS_MAX + 1; i++)
		n += (size_t)sprintf(e + n, "%s%d", i ? "," : "", i % 10);
	sprintf(e + n, ")");
	/* the 257th value: after "attr.x in (" (11 chars) and 256 "d," pairs */
	expect_error(f->db, e, "--where:1:524", "more than 256 terms");
}

/* --- parameters and SQL --------------------------------------------------- */

/* segment.c invariant (1) and segment.h PARAMETERS: ?101... compose with a
 * statement's own ?1 and ?2 whichever comes first in the text. */
static void
test_segment_bind_composes(void **state)
{
	struct fixture *f = *state;
	struct segment *seg = compile_ok(f->db, "attr.age = 7 and list news");
	char sql[4096];
	sqlite3_stmt *st;
	struct herr err;
	int i, want = 0;

	assert_int_equal(segment_n_params(seg), 3);
	assert_null(strstr(segment_sql(seg), "news"));  /* the list is a parameter */
	assert_non_null(strstr(segment_sql(seg), "?101"));
	snprintf(sql, sizeof sql, "SELECT count(*) FROM subscribers s WHERE s.id > ?2 AND %s "
	         "AND s.id < ?1 AND s.status = 'active'", segment_sql(seg));
	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
	herr_clear(&err);
	assert_int_equal(segment_bind(seg, st, &err), 0);
	sqlite3_bind_int(st, 1, 60);
	sqlite3_bind_int(st, 2, 10);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	for (i = 11; i < 60; i++)
		want += num_cmp(M[i].age, 7, 0) && M[i].news == 'c' && i % 13 != 5;
	assert_int_equal(sqlite3_column_int(st, 0), want);
	assert_true(want > 0);
	sqlite3_finalize(st);

	/* a statement without the segment's SQL */
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT ?1", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(segment_bind(seg, st, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	sqlite3_finalize(st);
	segment_free(seg);
}

/* Cheap terms first (segment.c's enum cost): the column test before the
 * JSON, whatever order they were written in. */
static void
test_segment_cheap_terms_first(void **state)
{
	struct fixture *f = *state;
	struct segment *seg = compile_ok(f->db, "attr.age > 5 and attr.role = \"x\" and "
	                                        "email ends_with \".uk\"");
	const char *sql = segment_sql(seg), *email = strstr(sql, "s.email LIKE"),
	           *json = strstr(sql, "json_"), *cast = strstr(sql, "CAST(");

	assert_non_null(email);
	assert_non_null(json);
	assert_non_null(cast);
	assert_true(email < json);
	assert_non_null(strstr(sql, "?104 COLLATE NOCASE"));
	assert_true(strstr(sql, "?104 COLLATE NOCASE") < cast); /* text before number */
	segment_free(seg);
}

/* The plans behind segment.h's COST: engaged and received build their set
 * once (a list subquery, not correlated); list, bounced and subscribed are
 * index lookups; nothing scans subscriptions, bounces or deliveries per row. */
static void
test_segment_query_plan(void **state)
{
	struct fixture *f = *state;
	struct segment *seg = compile_ok(f->db, "engaged 30d or received 30d or list news or "
	                                        "bounced_soft_within 30d or subscribed_within 30d");
	char sql[8192], plan[4096] = "";
	sqlite3_stmt *st;
	struct herr err;
	size_t n = 0;

	snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN SELECT count(*) FROM subscribers s "
	         "WHERE %s", segment_sql(seg));
	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(segment_bind(seg, st, &err), 0);
	while (sqlite3_step(st) == SQLITE_ROW && n < sizeof plan - 200)
		n += (size_t)snprintf(plan + n, sizeof plan - n, "%s\n",
		                      (const char *)sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
	segment_free(seg);
	print_message("%s", plan);
	assert_non_null(strstr(plan, "LIST SUBQUERY"));
	assert_non_null(strstr(plan, "SEARCH b USING COVERING INDEX bounces_by_subscriber"));
	assert_non_null(strstr(plan, "SEARCH x USING PRIMARY KEY (list_id=? AND subscriber_id=?)"));
	assert_non_null(strstr(plan, "SEARCH x USING INDEX subscriptions_by_subscriber"));
	assert_null(strstr(plan, "SCAN x"));
	assert_null(strstr(plan, "SCAN b"));
	assert_null(strstr(plan, "CORRELATED LIST SUBQUERY"));
}

/* --- saved segments ------------------------------------------------------- */

static int
collect_names(void *ctx, const struct segment_def *d)
{
	char *out = ctx;

	strcat(out, d->name);
	strcat(out, ";");
	return 0;
}

static void
test_segment_saved(void **state)
{
	struct fixture *f = *state;
	struct segment_def d;
	struct segment *seg;
	struct herr err;
	char names[256] = "";
	long long n, created;
	int replaced = -1;

	herr_clear(&err);
	assert_int_equal(segment_save(f->db, "sw", "attr.role = \"social worker\"", "the SWs", 0,
	                              &replaced, &err), 0);
	assert_int_equal(replaced, 0);
	assert_int_equal(segment_save(f->db, "a-list.2", "list news", NULL, 0, NULL, &err), 0);
	assert_int_equal(segment_get(f->db, "sw", &d, &err), 0);
	assert_string_equal(d.expr, "attr.role = \"social worker\"");
	assert_string_equal(d.description, "the SWs");
	created = d.created_at;

	/* a second save of the name: refused, or a replacement */
	assert_int_equal(segment_save(f->db, "sw", "list news", "", 0, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_int_equal(segment_get(f->db, "sw", &d, &err), 0);
	assert_string_equal(d.expr, "attr.role = \"social worker\"");
	assert_int_equal(segment_save(f->db, "sw", "attr.role = \"z\"", "zs", 1, &replaced, &err), 0);
	assert_int_equal(replaced, 1);
	assert_int_equal(segment_get(f->db, "sw", &d, &err), 0);
	assert_string_equal(d.expr, "attr.role = \"z\"");
	assert_int_equal(d.created_at, created);

	/* what does not compile is not saved; the error names the segment */
	assert_int_equal(segment_save(f->db, "bad", "list nope", NULL, 0, NULL, &err), -1);
	assert_string_equal(err.where, "segment bad:1:6");
	assert_int_equal(segment_get(f->db, "bad", &d, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(segment_save(f->db, "Bad Name", "list news", NULL, 0, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "invalid segment name"));

	assert_int_equal(segment_each_saved(f->db, collect_names, names, &err), 0);
	assert_string_equal(names, "a-list.2;sw;");

	/* evaluated again at each use, never frozen */
	assert_int_equal(segment_compile_saved(f->db, "sw", NOW, &seg, &err), 0);
	assert_int_equal(segment_count(f->db, seg, 0, &n, &err), 0);
	segment_free(seg);
	exec_ok(f->db, "UPDATE subscribers SET attributes = json_set(attributes, '$.role', 'Z') "
	               "WHERE id = 1");
	assert_int_equal(segment_compile_saved(f->db, "sw", NOW, &seg, &err), 0);
	{
		long long n2;

		assert_int_equal(segment_count(f->db, seg, 0, &n2, &err), 0);
		assert_int_equal(n2, n + 1);
	}
	segment_free(seg);
	exec_ok(f->db, "UPDATE subscribers SET attributes = json_set(attributes, '$.role', "
	               "'Social worker') WHERE id = 1");

	/* a list removed after saving: the saved segment no longer compiles */
	exec_ok(f->db, "INSERT INTO lists (id, name, created_at) VALUES (3, 'gone', 0)");
	assert_int_equal(segment_save(f->db, "g", "list gone", NULL, 0, NULL, &err), 0);
	exec_ok(f->db, "DELETE FROM lists WHERE id = 3");
	assert_int_equal(segment_compile_saved(f->db, "g", NOW, &seg, &err), -1);
	assert_null(seg);
	assert_string_equal(err.where, "segment g:1:6");

	assert_int_equal(segment_remove(f->db, "g", &err), 0);
	assert_int_equal(segment_remove(f->db, "g", &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(segment_get(f->db, "sv", &d, &err), -1);
	assert_string_equal(err.msg, "no segment named 'sv'; did you mean 'sw'?");
	assert_int_equal(segment_remove(f->db, "sw", &err), 0);
	assert_int_equal(segment_remove(f->db, "a-list.2", &err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segment_operators_match_model),
		cmocka_unit_test(test_segment_negation_is_complement),
		cmocka_unit_test(test_segment_compare_with_subscribed_before_date),
		cmocka_unit_test(test_segment_engaged_excludes_machine_opens),
		cmocka_unit_test(test_segment_received),
		cmocka_unit_test(test_segment_bounced_soft_within),
		cmocka_unit_test(test_segment_count_leaves_out_blocked_and_suppressed),
		cmocka_unit_test(test_segment_values_never_become_sql),
		cmocka_unit_test(test_segment_only_strings_are_values),
		cmocka_unit_test(test_segment_errors_name_the_column),
		cmocka_unit_test(test_segment_rejects_invalid_utf8),
		cmocka_unit_test(test_segment_limits),
		cmocka_unit_test(test_segment_limit_in_list),
		cmocka_unit_test(test_segment_bind_composes),
		cmocka_unit_test(test_segment_cheap_terms_first),
		cmocka_unit_test(test_segment_query_plan),
		cmocka_unit_test(test_segment_saved),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
