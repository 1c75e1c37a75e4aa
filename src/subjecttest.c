/*
 * subjecttest.c - subject-line tests (states, invariants and who calls
 * what are in subjecttest.h).
 *
 * Owns issue_variants, the issues.test_* columns and deliveries.variant
 * (sql/010_subject_tests.sql).  The split is computed here in C, not in
 * SQL: SQLite has no hash function, and ordering by a keyed hash of the
 * subscriber id is what makes the groups random yet reproducible (2).
 * The figures use report.h's definitions of a click and of a human open,
 * restricted to each test group.
 */
#include "herald/subjecttest.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/config.h"
#include "herald/db.h"
#include "herald/ledger.h"
#include "herald/report.h"
#include "herald/tmpl.h"

void
subjecttest_clear(struct subjecttest *t)
{
	size_t i;

	for (i = 0; i < SUBJECTTEST_VARIANTS_MAX; i++)
		free(t->v[i].subject);
	memset(t, 0, sizeof *t);
}

int
subjecttest_parse_share(const char *s)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || end == s || *s == '-' || *s == '+')
		return -1;
	while (*end == ' ')
		end++;
	if (*end == '%')
		end++;
	if (*end || n < 1 || n > SUBJECTTEST_SHARE_MAX)
		return -1;
	return (int)n;
}

long
subjecttest_parse_wait(const char *s)
{
	long n = config_parse_duration(s);

	if (n < SUBJECTTEST_WAIT_MIN || n > SUBJECTTEST_WAIT_MAX)
		return -1;
	return n;
}

int
subjecttest_create(sqlite3 *db, long long issue_id, const char *const *subjects, size_t n,
                   int share, long wait, struct herr *err)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	if (n < 2 || n > SUBJECTTEST_VARIANTS_MAX)
		return herr_set(err, EX_SOFTWARE, NULL, "a subject test has 2 to %d variants",
		                SUBJECTTEST_VARIANTS_MAX);
	if (db_prepare(db, &st, "INSERT INTO issue_variants (issue_id, idx, subject) "
	               "VALUES (?1, ?2, ?3)", err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, issue_id);
		sqlite3_bind_int(st, 2, (int)i + 1);
		sqlite3_bind_text(st, 3, subjects[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return db_error(db, err, "store subject variants");
		}
	}
	sqlite3_finalize(st);
	if (db_prepare(db, &st, "UPDATE issues SET test_share = ?2, test_wait = ?3, "
	               "test_state = 'testing' WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_int(st, 2, share);
	sqlite3_bind_int64(st, 3, wait);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "store the subject test");
	return 0;
}

int
subjecttest_load(sqlite3 *db, long long issue_id, struct subjecttest *t, struct herr *err)
{
	sqlite3_stmt *st;
	const char *s;
	int rc, idx;

	memset(t, 0, sizeof *t);
	t->issue_id = issue_id;
	if (db_prepare(db, &st, "SELECT ifnull(test_share, 0), ifnull(test_wait, 0), "
	               "ifnull(test_state, ''), ifnull(test_done_at, 0), "
	               "ifnull(test_decided_at, 0), ifnull(test_winner, 0), ifnull(test_why, '') "
	               "FROM issues WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t->share = sqlite3_column_int(st, 0);
		t->wait = (long)sqlite3_column_int64(st, 1);
		snprintf(t->state, sizeof t->state, "%s", (const char *)sqlite3_column_text(st, 2));
		t->done_at = sqlite3_column_int64(st, 3);
		t->decided_at = sqlite3_column_int64(st, 4);
		t->winner = sqlite3_column_int(st, 5);
		snprintf(t->why, sizeof t->why, "%s", (const char *)sqlite3_column_text(st, 6));
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0; /* no such issue (one made up in memory): no test */
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read the subject test");
	if (!t->state[0])
		return 0;
	if (db_prepare(db, &st, "SELECT idx, subject FROM issue_variants WHERE issue_id = ?1 "
	               "ORDER BY idx", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		idx = sqlite3_column_int(st, 0);
		s = (const char *)sqlite3_column_text(st, 1);
		/* the schema keeps idx in 1..MAX; rows are dense from 1 */
		if (idx < 1 || idx > SUBJECTTEST_VARIANTS_MAX || (size_t)idx != t->n + 1) {
			sqlite3_finalize(st);
			return herr_set(err, EX_SOFTWARE, NULL, "issue %lld: subject variants are "
			                "not numbered 1, 2, ...", issue_id);
		}
		if (!(t->v[t->n].subject = strdup(s ? s : ""))) {
			sqlite3_finalize(st);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		t->n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "read subject variants");
	return 0;
}

/* SplitMix64's finaliser: every input bit affects every output bit. */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

struct ranked {
	uint64_t  h;
	long long id;
	size_t    at; /* index into the caller's arrays */
};

static int
by_hash(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

size_t
subjecttest_split(long long issue_id, const long long *ids, size_t n, int share,
                  size_t n_variants, int *variant)
{
	struct ranked *r;
	uint64_t seed = mix64((uint64_t)issue_id ^ 0x5375626a65637421ULL); /* "Subject!" */
	size_t i, tested;

	/* (1): round(share % of n), at least one per variant when there are
	 * that many recipients */
	tested = (size_t)(((unsigned long long)n * (unsigned)share + 50) / 100);
	if (tested < n_variants)
		tested = n_variants;
	if (tested > n)
		tested = n;
	if (!n_variants)
		tested = 0;
	for (i = 0; i < n; i++)
		variant[i] = 0;
	if (!tested)
		return 0;
	if (!(r = malloc(n * sizeof *r))) {
		/* no memory for the order: fall back to every k-th id, still a
		 * function of the ids alone (2) */
		for (i = 0; i < tested; i++)
			variant[(i * n) / tested] = (int)(i % n_variants) + 1;
		return tested;
	}
	for (i = 0; i < n; i++) {
		r[i].h = mix64(seed ^ mix64((uint64_t)ids[i]));
		r[i].id = ids[i];
		r[i].at = i;
	}
	qsort(r, n, sizeof *r, by_hash);
	/* (1): round-robin over the hash order: sizes differ by at most one */
	for (i = 0; i < tested; i++)
		variant[r[i].at] = (int)(i % n_variants) + 1;
	free(r);
	return tested;
}

int
subjecttest_assign(sqlite3 *db, long long issue_id, long long *tested, struct herr *err)
{
	struct subjecttest t;
	sqlite3_stmt *st = NULL;
	long long *ids = NULL, *nids;
	int *variant = NULL, rc, ret = -1;
	size_t n = 0, cap = 0;

	*tested = 0;
	if (subjecttest_load(db, issue_id, &t, err) < 0)
		goto out;
	if (!t.n || strcmp(t.state, "testing")) {
		ret = 0;
		goto out;
	}
	if (db_prepare(db, &st, "SELECT subscriber_id FROM deliveries WHERE issue_id = ?1 "
	               "ORDER BY subscriber_id", err) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, issue_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if (!(nids = realloc(ids, cap * sizeof *ids))) {
				herr_set(err, EX_OSERR, NULL, "out of memory");
				goto out;
			}
			ids = nids;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		db_error(db, err, "read the recipients to split");
		goto out;
	}
	if (n && !(variant = malloc(n * sizeof *variant))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	*tested = (long long)subjecttest_split(issue_id, ids, n, t.share, t.n, variant);
	/* everyone is the holdout (0) first, then the test groups are marked */
	if (ledger_set_variants(db, issue_id, ids, variant, n, err) < 0)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(st);
	free(ids);
	free(variant);
	subjecttest_clear(&t);
	return ret;
}

/*
 * Per group (variant 0 is the holdout): recipients, delivered, unique
 * clickers, unique human openers.  A human open is report.h's: not flagged
 * machine by the server, and later than REPORT_PREFETCH_SECS (?2) after
 * that subscriber's sent_at (no sent_at: no timing rule).  The opens are
 * grouped by subscriber first, so each delivery is joined once.
 */
static const char figures_sql[] =
	"WITH c AS (SELECT DISTINCT subscriber_id AS sid FROM events "
	"           WHERE issue_id = ?1 AND kind = 'click' AND subscriber_id IS NOT NULL), "
	"o AS (SELECT DISTINCT e.subscriber_id AS sid FROM events e "
	"      JOIN deliveries dd ON dd.issue_id = ?1 AND dd.subscriber_id = e.subscriber_id "
	"      WHERE e.issue_id = ?1 AND e.kind = 'open' "
	"      AND json_extract(e.detail, '$.ua') IS NOT 'machine' "
	"      AND (dd.sent_at IS NULL OR e.at > dd.sent_at + ?2)) "
	"SELECT d.variant, count(*), sum(d.status = 'sent'), count(c.sid), count(o.sid) "
	"FROM deliveries d LEFT JOIN c ON c.sid = d.subscriber_id "
	"LEFT JOIN o ON o.sid = d.subscriber_id "
	"WHERE d.issue_id = ?1 AND d.variant IS NOT NULL GROUP BY d.variant";

int
subjecttest_figures(sqlite3 *db, struct subjecttest *t, struct herr *err)
{
	sqlite3_stmt *st;
	size_t i;
	int rc, k;

	for (i = 0; i < t->n; i++)
		t->v[i].recipients = t->v[i].sent = t->v[i].opens_human = t->v[i].clicks = 0;
	t->holdout = t->holdout_sent = 0;
	if (db_prepare(db, &st, figures_sql, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, t->issue_id);
	sqlite3_bind_int(st, 2, REPORT_PREFETCH_SECS);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		k = sqlite3_column_int(st, 0);
		if (k == 0) {
			t->holdout = sqlite3_column_int64(st, 1);
			t->holdout_sent = sqlite3_column_int64(st, 2);
		} else if (k >= 1 && (size_t)k <= t->n) {
			struct subjecttest_variant *v = &t->v[k - 1];

			v->recipients = sqlite3_column_int64(st, 1);
			v->sent = sqlite3_column_int64(st, 2);
			v->clicks = sqlite3_column_int64(st, 3);
			v->opens_human = sqlite3_column_int64(st, 4);
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "count the subject test's figures");
	t->have_figures = 1;
	return 0;
}

/* a/b against c/d: <0, 0, >0, exactly (a rate with nothing sent is 0). */
static int
rate_cmp(long long a, long long b, long long c, long long d)
{
	long double l, r;

	if (b <= 0)
		a = 0, b = 1;
	if (d <= 0)
		c = 0, d = 1;
	l = (long double)a * (long double)d;
	r = (long double)c * (long double)b;
	return l < r ? -1 : l > r;
}

/* "14 of 400 clicked (3.5 %)", or without a verb "9 of 400 (2.3 %)": the
 * rate rounded half up to a tenth of a percent. */
static void
fraction(char *out, size_t size, long long x, long long of, const char *verb)
{
	long long tenths = of > 0 ? (x * 1000 + of / 2) / of : 0;

	snprintf(out, size, "%lld of %lld%s%s (%lld.%lld %%)", x, of, *verb ? " " : "", verb,
	         tenths / 10, tenths % 10);
}

/* Append ", " or " against " and the others' figures (in[k] set: among
 * them) to why. */
static void
against(char *why, size_t size, const struct subjecttest_variant *v, size_t n, const int *in,
        size_t winner, int opens)
{
	char f[96];
	size_t i, len;
	int first = 1;

	for (i = 0; i < n; i++) {
		if (i == winner || !in[i])
			continue;
		fraction(f, sizeof f, opens ? v[i].opens_human : v[i].clicks, v[i].sent, "");
		len = strlen(why);
		snprintf(why + len, size - len, "%s%s", first ? " against " : ", ", f);
		first = 0;
	}
}

int
subjecttest_pick(const struct subjecttest_variant *v, size_t n, char *why, size_t size)
{
	int tied[SUBJECTTEST_VARIANTS_MAX] = { 0 }, all[SUBJECTTEST_VARIANTS_MAX];
	long long clicks = 0, opens = 0;
	size_t i, best = 0, n_tied = 0, best2;
	char f[96];

	why[0] = '\0';
	if (n == 0)
		return 0;
	if (n > SUBJECTTEST_VARIANTS_MAX)
		n = SUBJECTTEST_VARIANTS_MAX;
	for (i = 0; i < n; i++) {
		all[i] = 1;
		clicks += v[i].clicks;
		opens += v[i].opens_human;
		if (rate_cmp(v[i].clicks, v[i].sent, v[best].clicks, v[best].sent) > 0)
			best = i;
	}
	if (!clicks && !opens) {
		snprintf(why, size, "no clicks and no opens: the first variant");
		return 1;
	}
	for (i = 0; i < n; i++)
		if (rate_cmp(v[i].clicks, v[i].sent, v[best].clicks, v[best].sent) == 0) {
			tied[i] = 1;
			n_tied++;
		}
	if (n_tied == 1) {
		fraction(f, sizeof f, v[best].clicks, v[best].sent, "clicked");
		snprintf(why, size, "variant %zu won: %s", best + 1, f);
		against(why, size, v, n, all, best, 0);
		return (int)best + 1;
	}
	/* tied on clicks (maybe at none): human opens among the tied */
	for (best2 = 0; !tied[best2]; best2++)
		;
	for (i = best2 + 1; i < n; i++)
		if (tied[i] && rate_cmp(v[i].opens_human, v[i].sent, v[best2].opens_human,
		                        v[best2].sent) > 0)
			best2 = i;
	n_tied = 0;
	for (i = 0; i < n; i++)
		if (tied[i] && rate_cmp(v[i].opens_human, v[i].sent, v[best2].opens_human,
		                        v[best2].sent) == 0)
			n_tied++;
	if (clicks)
		fraction(f, sizeof f, v[best].clicks, v[best].sent, "");
	if (n_tied == 1) {
		size_t len;

		if (clicks)
			snprintf(why, size, "clicks tied at %s: tie broken by human opens: ", f);
		else
			snprintf(why, size, "no clicks: tie broken by human opens: ");
		len = strlen(why);
		fraction(f, sizeof f, v[best2].opens_human, v[best2].sent, "opened");
		snprintf(why + len, size - len, "variant %zu won: %s", best2 + 1, f);
		against(why, size, v, n, tied, best2, 1);
		return (int)best2 + 1;
	}
	/* still tied: the first of the tied (which best2 is: ties keep the
	 * earlier one) */
	if (clicks)
		snprintf(why, size, "clicks tied at %s and human opens tied too: the first of "
		         "them, variant %zu", f, best2 + 1);
	else
		snprintf(why, size, "no clicks, and human opens tied: the first of them, "
		         "variant %zu", best2 + 1);
	return (int)best2 + 1;
}

int
subjecttest_next_open(sqlite3 *db, long long after_id, long long *id, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	if (db_prepare(db, &st, "SELECT id FROM issues WHERE id > ?1 AND test_state = 'testing' "
	               "AND status = 'sending' AND started_at IS NOT NULL ORDER BY id LIMIT 1",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, after_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find subject tests");
	return 0;
}

/* Has the issue's snapshot been taken (its send started)? */
static int
started(sqlite3 *db, long long issue_id, int *yes, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*yes = 0;
	if (db_prepare(db, &st, "SELECT started_at IS NOT NULL FROM issues WHERE id = ?1",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*yes = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read the issue");
	return 0;
}

int
subjecttest_advance(sqlite3 *db, long long issue_id, long long now, struct subjecttest *t,
                    enum subjecttest_phase *phase, int *decided_now, struct herr *err)
{
	long long changes;
	int winner, yes;

	*phase = SUBJECTTEST_NONE;
	*decided_now = 0;
	if (subjecttest_load(db, issue_id, t, err) < 0)
		return -1;
	if (!t->n)
		return 0;
	if (!strcmp(t->state, "decided")) {
		*phase = SUBJECTTEST_DECIDED;
		return subjecttest_figures(db, t, err);
	}
	if (started(db, issue_id, &yes, err) < 0)
		return -1;
	if (!yes)
		return 0;
	if (!t->done_at) {
		/* the test groups are sent when none of them is pending or in
		 * flight; the wait counts from the last of them, however late
		 * this run notices */
		if (db_run2(db, "UPDATE issues SET test_done_at = (SELECT ifnull(max(ifnull(sent_at, "
		            "updated_at)), ?2) FROM deliveries WHERE issue_id = ?1 AND variant > 0) "
		            "WHERE id = ?1 AND test_state = 'testing' AND test_done_at IS NULL AND "
		            "NOT EXISTS (SELECT 1 FROM deliveries WHERE issue_id = ?1 AND variant > 0 "
		            "AND status IN ('pending', 'sending'))", issue_id, now, &changes,
		            "record the end of the test sends", err) < 0)
			return -1;
		subjecttest_clear(t);
		if (subjecttest_load(db, issue_id, t, err) < 0)
			return -1;
		if (!t->done_at) {
			*phase = SUBJECTTEST_SENDING;
			return 0;
		}
	}
	if (now < t->done_at + t->wait) {
		*phase = SUBJECTTEST_WAITING;
		return 0;
	}
	/* (3): picked and recorded in one write transaction, guarded so that
	 * it happens once however many processes get here */
	if (db_begin(db, err) < 0)
		return -1;
	if (subjecttest_figures(db, t, err) < 0)
		goto fail;
	winner = subjecttest_pick(t->v, t->n, t->why, sizeof t->why);
	{
		sqlite3_stmt *st;
		int rc;

		if (db_prepare(db, &st, "UPDATE issues SET test_state = 'decided', test_winner = ?2, "
		               "test_decided_at = ?3, test_why = ?4 WHERE id = ?1 AND "
		               "test_state = 'testing'", err) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, issue_id);
		sqlite3_bind_int(st, 2, winner);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_text(st, 4, t->why, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			db_error(db, err, "record the subject test's winner");
			goto fail;
		}
		*decided_now = sqlite3_changes(db) == 1;
	}
	if (db_commit(db, err) < 0)
		return -1;
	subjecttest_clear(t);
	if (subjecttest_load(db, issue_id, t, err) < 0 || subjecttest_figures(db, t, err) < 0)
		return -1;
	*phase = SUBJECTTEST_DECIDED;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

int
subjecttest_compile(const struct subjecttest *t, struct tmpl **out, struct herr *err)
{
	char where[48]; /* "subject variant " and any size_t */
	size_t i;

	for (i = 0; i < SUBJECTTEST_VARIANTS_MAX; i++)
		out[i] = NULL;
	for (i = 0; i < t->n; i++) {
		snprintf(where, sizeof where, "subject variant %zu", i + 1);
		if (tmpl_compile(t->v[i].subject, strlen(t->v[i].subject), where, 1, &out[i],
		                 err) < 0)
			return -1;
	}
	return 0;
}

static double
rate(long long x, long long of)
{
	return of > 0 ? report_round_rate((double)x / (double)of) : 0.0;
}

json_t *
subjecttest_json(const struct subjecttest *t)
{
	json_t *o, *a, *v;
	size_t i;

	if (!(a = json_array()))
		return NULL;
	for (i = 0; i < t->n; i++) {
		const struct subjecttest_variant *x = &t->v[i];

		v = json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:b}", "variant", (int)i + 1,
		              "subject", x->subject, "recipients", (json_int_t)x->recipients,
		              "sent", (json_int_t)x->sent, "opens_human", (json_int_t)x->opens_human,
		              "clicks", (json_int_t)x->clicks,
		              "open_rate", rate(x->opens_human, x->sent),
		              "click_rate", rate(x->clicks, x->sent),
		              "winner", t->winner == (int)i + 1);
		if (json_array_append_new(a, v) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	o = json_pack("{s:s, s:i, s:I, s:o, s:o, s:o, s:o, s:{s:I, s:I}, s:o}",
	              "state", t->state, "share", t->share, "wait", (json_int_t)t->wait,
	              "done_at", t->done_at ? json_integer(t->done_at) : json_null(),
	              "decided_at", t->decided_at ? json_integer(t->decided_at) : json_null(),
	              "winner", t->winner ? json_integer(t->winner) : json_null(),
	              "why", t->why[0] ? json_string(t->why) : json_null(),
	              "holdout", "recipients", (json_int_t)t->holdout,
	              "sent", (json_int_t)t->holdout_sent, "variants", a);
	return o;
}
