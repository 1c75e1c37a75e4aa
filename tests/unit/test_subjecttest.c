/*
 * test_subjecttest.c - subject-line tests (src/subjecttest.c) and the
 * ledger's holdout rule (ledger.h (7)).
 *
 * Invariants from subjecttest.h are cited by number: (1) the split's
 * groups are disjoint, within one of each other in size, and together the
 * share; (2) it is reproducible; (3) the winner is recorded once and only
 * then is the holdout claimable; (4) the winner rule: click rate first,
 * human opens only to break a tie (machine opens as report.h defines them
 * ignored), the first variant when there is nothing to go by.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/db.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/subjecttest.h"
#include "herald/subscriber.h"
#include "herald/tmpl.h"

/* --- the split (pure) -------------------------------------------------- */

static void
count_groups(const int *variant, size_t n, size_t k, size_t *size)
{
	size_t i;

	for (i = 0; i <= k; i++)
		size[i] = 0;
	for (i = 0; i < n; i++) {
		assert_true(variant[i] >= 0 && (size_t)variant[i] <= k);
		size[variant[i]]++;
	}
}

static void
test_split_sizes_and_share(void **state)
{
	static const size_t ns[] = { 0, 1, 2, 3, 7, 10, 50, 101, 1000, 4999 };
	static const int shares[] = { 1, 10, 20, 33, 40, 50 };
	long long *ids = malloc(5000 * sizeof *ids);
	int *variant = malloc(5000 * sizeof *variant);
	size_t a, b, k, i, size[SUBJECTTEST_VARIANTS_MAX + 1], tested, want, min, max;

	(void)state;
	assert_non_null(ids);
	assert_non_null(variant);
	for (i = 0; i < 5000; i++)
		ids[i] = 1000 + (long long)i * 7;
	for (a = 0; a < sizeof ns / sizeof ns[0]; a++)
		for (b = 0; b < sizeof shares / sizeof shares[0]; b++)
			for (k = 2; k <= SUBJECTTEST_VARIANTS_MAX; k++) {
				tested = subjecttest_split(42, ids, ns[a], shares[b], k, variant);
				/* (1): round(share %), at least one per variant
				 * while there are recipients enough */
				want = (ns[a] * (size_t)shares[b] + 50) / 100;
				if (want < k)
					want = k;
				if (want > ns[a])
					want = ns[a];
				assert_int_equal(tested, want);
				count_groups(variant, ns[a], k, size);
				assert_int_equal(size[0], ns[a] - tested);
				min = max = size[1];
				for (i = 1; i <= k; i++) {
					min = size[i] < min ? size[i] : min;
					max = size[i] > max ? size[i] : max;
				}
				assert_true(max - min <= 1);
			}
	/* 40 % of 50 in two groups: 10 and 10 (the integration test's case) */
	assert_int_equal(subjecttest_split(1, ids, 50, 40, 2, variant), 20);
	count_groups(variant, 50, 2, size);
	assert_int_equal(size[1], 10);
	assert_int_equal(size[2], 10);
	free(ids);
	free(variant);
}

static void
test_split_reproducible_and_random(void **state)
{
	long long ids[400], shuffled[400], t;
	int v1[400], v2[400], v3[400];
	size_t i, j, same = 0, first_half = 0;

	(void)state;
	for (i = 0; i < 400; i++)
		ids[i] = shuffled[i] = (long long)i + 1;
	/* (2): the same issue and people give the same groups, in any order */
	subjecttest_split(7, ids, 400, 20, 3, v1);
	subjecttest_split(7, ids, 400, 20, 3, v2);
	assert_memory_equal(v1, v2, sizeof v1);
	for (i = 399; i > 0; i--) {
		j = (i * 7919) % (i + 1);
		t = shuffled[i];
		shuffled[i] = shuffled[j];
		shuffled[j] = t;
	}
	subjecttest_split(7, shuffled, 400, 20, 3, v3);
	for (i = 0; i < 400; i++)
		assert_int_equal(v3[i], v1[shuffled[i] - 1]);
	/* another issue, other groups; and not simply the first ids */
	subjecttest_split(8, ids, 400, 20, 3, v2);
	for (i = 0; i < 400; i++) {
		same += v1[i] == v2[i] && v1[i] != 0;
		first_half += v1[i] != 0 && i < 200;
	}
	assert_true(same < 40);       /* 80 tested: chance agreement is ~9 */
	assert_true(first_half > 20 && first_half < 60);
}

/* --- the winner rule (pure) ------------------------------------------- */

static int
pick(struct subjecttest_variant *v, size_t n, char *why)
{
	return subjecttest_pick(v, n, why, SUBJECTTEST_WHY_MAX);
}

static void
test_pick_clicks_win(void **state)
{
	struct subjecttest_variant v[2] = { { NULL, 400, 400, 90, 9 }, { NULL, 400, 400, 10, 14 } };
	char why[SUBJECTTEST_WHY_MAX];

	(void)state;
	/* (4): more human opens do not beat more clicks */
	assert_int_equal(pick(v, 2, why), 2);
	assert_string_equal(why, "variant 2 won: 14 of 400 clicked (3.5 %) against "
	                    "9 of 400 (2.3 %)");
	/* the rate counts, not the number: 10 of 200 beats 14 of 400 */
	v[0].sent = 200;
	v[0].clicks = 10;
	assert_int_equal(pick(v, 2, why), 1);
	assert_string_equal(why, "variant 1 won: 10 of 200 clicked (5.0 %) against "
	                    "14 of 400 (3.5 %)");
}

static void
test_pick_opens_only_break_ties(void **state)
{
	struct subjecttest_variant v[3] = { { NULL, 100, 100, 20, 0 }, { NULL, 100, 100, 31, 0 },
	                                    { NULL, 100, 100, 25, 0 } };
	char why[SUBJECTTEST_WHY_MAX];

	(void)state;
	assert_int_equal(pick(v, 3, why), 2);
	assert_string_equal(why, "no clicks: tie broken by human opens: variant 2 won: 31 of 100 "
	                    "opened (31.0 %) against 20 of 100 (20.0 %), 25 of 100 (25.0 %)");
	/* clicks tied between 1 and 3; 2 has fewer clicks and the most opens */
	v[0].clicks = v[2].clicks = 5;
	v[1].clicks = 4;
	assert_int_equal(pick(v, 3, why), 3);
	assert_string_equal(why, "clicks tied at 5 of 100 (5.0 %): tie broken by human opens: "
	                    "variant 3 won: 25 of 100 opened (25.0 %) against 20 of 100 (20.0 %)");
	/* tied on both: the first of the tied */
	v[0].opens_human = 25;
	assert_int_equal(pick(v, 3, why), 1);
	assert_non_null(strstr(why, "the first of them, variant 1"));
}

static void
test_pick_no_data_first(void **state)
{
	struct subjecttest_variant v[2] = { { NULL, 50, 50, 0, 0 }, { NULL, 50, 0, 0, 0 } };
	char why[SUBJECTTEST_WHY_MAX];

	(void)state;
	assert_int_equal(pick(v, 2, why), 1);
	assert_string_equal(why, "no clicks and no opens: the first variant");
}

static void
test_parse_share_and_wait(void **state)
{
	(void)state;
	assert_int_equal(subjecttest_parse_share("20%"), 20);
	assert_int_equal(subjecttest_parse_share("20 %"), 20);
	assert_int_equal(subjecttest_parse_share("50"), 50);
	assert_int_equal(subjecttest_parse_share("51%"), -1);
	assert_int_equal(subjecttest_parse_share("0%"), -1);
	assert_int_equal(subjecttest_parse_share("-5%"), -1);
	assert_int_equal(subjecttest_parse_share("20%%"), -1);
	assert_int_equal(subjecttest_parse_share("twenty"), -1);
	assert_int_equal(subjecttest_parse_wait("4h"), 4 * 3600);
	assert_int_equal(subjecttest_parse_wait("30m"), 1800);
	assert_int_equal(subjecttest_parse_wait("1d"), 86400);
	assert_int_equal(subjecttest_parse_wait("30s"), -1);
	assert_int_equal(subjecttest_parse_wait("8d"), -1);
	assert_int_equal(subjecttest_parse_wait("4 hours"), -1);
}

/* --- with a database: figures, advance, the ledger's holdout --------- */

#define N_SUBS 20

struct fixture {
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	long long list_id, issue_id;
	long long sub[N_SUBS];
};

static int
setup(void **state)
{
	static const char *const subjects[] = { "Subject A", "Subject B {{name|you}}" };
	struct fixture *f = calloc(1, sizeof *f);
	struct audience a = AUDIENCE_INIT;
	struct herr err;
	struct list l;
	long long n, tested;
	char addr[64];
	int i;

	if (!f || tempdb_open(f->path, "subjecttest", &f->db) < 0)
		return -1;
	if (list_create(f->db, "news", "News", 0, 0, &f->list_id, &err) < 0 ||
	    list_get_by_id(f->db, f->list_id, &l, &err) < 0)
		return -1;
	for (i = 0; i < N_SUBS; i++) {
		struct signup_req r;
		struct signup_result res;
		struct address ad;

		snprintf(addr, sizeof addr, "r%02d@example.org", i);
		if (address_parse(addr, &ad, &err) < 0)
			return -1;
		memset(&r, 0, sizeof r);
		r.addr = &ad;
		r.source = SIGNUP_ADMIN;
		if (subscriber_signup(f->db, &l, &r, &res, &err) < 0)
			return -1;
		f->sub[i] = res.subscriber_id;
	}
	if (sqlite3_exec(f->db, "INSERT INTO issues (list_id, subject, from_addr, markdown, html, "
	                 "text, created_at, status, started_at) VALUES (1, 'Subject A', "
	                 "'n@example.org', '', '', '', 0, 'sending', 1000)", NULL, NULL,
	                 NULL) != SQLITE_OK)
		return -1;
	f->issue_id = sqlite3_last_insert_rowid(f->db);
	/* 50 %: 10 in the test groups (5 each), 10 held back */
	if (subjecttest_create(f->db, f->issue_id, subjects, 2, 50, 3600, &err) < 0 ||
	    audience_add_list(&a, f->list_id, &err) < 0 ||
	    db_begin(f->db, &err) < 0 ||
	    ledger_snapshot(f->db, f->issue_id, &a, &n, &err) < 0 ||
	    subjecttest_assign(f->db, f->issue_id, &tested, &err) < 0 ||
	    db_commit(f->db, &err) < 0 || n != N_SUBS || tested != 10)
		return -1;
	audience_clear(&a);
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

static void
exec(struct fixture *f, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(f->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* The subscriber ids of group `variant`, in id order, into out[]. */
static size_t
group(struct fixture *f, int variant, long long *out)
{
	sqlite3_stmt *st;
	size_t n = 0;

	sqlite3_prepare_v2(f->db, "SELECT subscriber_id FROM deliveries WHERE issue_id = ?1 AND "
	                   "variant = ?2 ORDER BY subscriber_id", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, f->issue_id);
	sqlite3_bind_int(st, 2, variant);
	while (sqlite3_step(st) == SQLITE_ROW)
		out[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void
event(struct fixture *f, const char *kind, long long sub, long long at, const char *detail)
{
	char sql[300];

	snprintf(sql, sizeof sql, "INSERT INTO events (kind, issue_id, subscriber_id, at, detail) "
	         "VALUES ('%s', %lld, %lld, %lld, '%s')", kind, f->issue_id, sub, at, detail);
	exec(f, sql);
}

static int
fake_mid(void *ctx, long long sub, char *out, size_t n)
{
	(void)ctx;
	snprintf(out, n, "mid.%lld@example.org", sub);
	return 0;
}

/* Claim every due row; how many, and the variants they carry into v[]. */
static size_t
claim_all(struct fixture *f, int *v)
{
	struct ledger *l;
	struct ledger_row row;
	struct herr err;
	size_t n = 0;
	int rc;

	assert_int_equal(ledger_open(f->db, f->issue_id, &l, &err), 0);
	while ((rc = ledger_claim(l, 5000, fake_mid, NULL, &row, &err)) == 1) {
		v[n++] = row.variant;
		ledger_row_clear(&row);
	}
	assert_int_equal(rc, 0);
	ledger_close(l);
	return n;
}

static void
test_holdout_waits_for_the_winner(void **state)
{
	struct fixture *f = *state;
	enum subjecttest_phase phase;
	struct subjecttest t;
	struct herr err;
	long long g1[N_SUBS], g2[N_SUBS], g0[N_SUBS], done;
	int v[N_SUBS], decided;
	size_t n, i, seen[3] = { 0 };

	assert_int_equal(group(f, 1, g1), 5);
	assert_int_equal(group(f, 2, g2), 5);
	assert_int_equal(group(f, 0, g0), 10);
	/* ledger.h (7): only the test groups are claimed, with their variant */
	n = claim_all(f, v);
	assert_int_equal(n, 10);
	for (i = 0; i < n; i++)
		seen[v[i]]++;
	assert_int_equal(seen[1], 5);
	assert_int_equal(seen[2], 5);
	/* still in flight: the test groups are being sent */
	assert_int_equal(subjecttest_advance(f->db, f->issue_id, 2000, &t, &phase, &decided,
	                                     &err), 0);
	assert_int_equal(phase, SUBJECTTEST_SENDING);
	subjecttest_clear(&t);
	exec(f, "UPDATE deliveries SET status = 'sent', sent_at = 1500 + subscriber_id "
	        "WHERE status = 'sending'");
	/* sent: the wait (1 h) counts from the last of them */
	assert_int_equal(subjecttest_advance(f->db, f->issue_id, 2000, &t, &phase, &decided,
	                                     &err), 0);
	assert_int_equal(phase, SUBJECTTEST_WAITING);
	done = 1500 + (g1[4] > g2[4] ? g1[4] : g2[4]);
	assert_int_equal(t.done_at, done);
	subjecttest_clear(&t);
	assert_int_equal(claim_all(f, v), 0);
	/* (4): variant 1 has more opens, but its two are machine opens (the
	 * server's flag; within REPORT_PREFETCH_SECS of delivery); variant 2
	 * has one human open; nobody clicked */
	event(f, "open", g1[0], 1500 + g1[0] + 1, "{\"ua\":\"human\"}");
	event(f, "open", g1[1], 1500 + g1[1] + 600, "{\"ua\":\"machine\"}");
	event(f, "open", g2[0], 1500 + g2[0] + 600, "{\"ua\":\"human\"}");
	assert_int_equal(subjecttest_advance(f->db, f->issue_id, done + 3599, &t, &phase,
	                                     &decided, &err), 0);
	assert_int_equal(phase, SUBJECTTEST_WAITING);
	subjecttest_clear(&t);
	assert_int_equal(subjecttest_advance(f->db, f->issue_id, done + 3600, &t, &phase,
	                                     &decided, &err), 0);
	assert_int_equal(phase, SUBJECTTEST_DECIDED);
	assert_int_equal(decided, 1);
	assert_int_equal(t.winner, 2);
	assert_string_equal(t.why, "no clicks: tie broken by human opens: variant 2 won: "
	                    "1 of 5 opened (20.0 %) against 0 of 5 (0.0 %)");
	assert_int_equal(t.v[0].opens_human, 0);
	assert_int_equal(t.v[1].opens_human, 1);
	assert_int_equal(t.holdout, 10);
	subjecttest_clear(&t);
	/* (3): once; a click now changes nothing recorded */
	event(f, "click", g1[2], 9000, "{\"n\":1}");
	assert_int_equal(subjecttest_advance(f->db, f->issue_id, 99999, &t, &phase, &decided,
	                                     &err), 0);
	assert_int_equal(decided, 0);
	assert_int_equal(t.winner, 2);
	assert_int_equal(t.v[0].clicks, 1);
	subjecttest_clear(&t);
	/* the holdout now goes, with the winner's subject, each once */
	n = claim_all(f, v);
	assert_int_equal(n, 10);
	for (i = 0; i < n; i++)
		assert_int_equal(v[i], 2);
	assert_int_equal(claim_all(f, v), 0);
}

static void
test_clicks_decide(void **state)
{
	struct fixture *f = *state;
	enum subjecttest_phase phase;
	struct subjecttest t;
	struct herr err;
	long long g1[N_SUBS], g2[N_SUBS];
	int decided;

	group(f, 1, g1);
	group(f, 2, g2);
	exec(f, "UPDATE deliveries SET status = 'sent', sent_at = 1500 WHERE variant > 0");
	/* variant 1: two clickers (one twice); variant 2: one clicker and
	 * three human opens */
	event(f, "click", g1[0], 2000, "{\"n\":1}");
	event(f, "click", g1[0], 2100, "{\"n\":2}");
	event(f, "click", g1[3], 2200, "{\"n\":1}");
	event(f, "click", g2[1], 2000, "{\"n\":1}");
	event(f, "open", g2[1], 1990, "{\"ua\":\"human\"}");
	event(f, "open", g2[2], 1990, "{}");
	event(f, "open", g2[3], 1990, "{\"ua\":\"human\"}");
	assert_int_equal(subjecttest_advance(f->db, f->issue_id, 5200, &t, &phase, &decided,
	                                     &err), 0);
	assert_int_equal(phase, SUBJECTTEST_DECIDED);
	assert_int_equal(t.winner, 1);
	assert_string_equal(t.why, "variant 1 won: 2 of 5 clicked (40.0 %) against 1 of 5 (20.0 %)");
	assert_int_equal(t.v[1].opens_human, 3);
	subjecttest_clear(&t);
	/* what sendjob compiles: each variant's subject */
	{
		struct tmpl *tm[SUBJECTTEST_VARIANTS_MAX];
		size_t i;

		assert_int_equal(subjecttest_load(f->db, f->issue_id, &t, &err), 0);
		assert_int_equal(t.n, 2);
		assert_string_equal(t.v[1].subject, "Subject B {{name|you}}");
		assert_int_equal(subjecttest_compile(&t, tm, &err), 0);
		assert_non_null(tm[0]);
		assert_non_null(tm[1]);
		assert_null(tm[2]);
		for (i = 0; i < SUBJECTTEST_VARIANTS_MAX; i++)
			tmpl_free(tm[i]);
		subjecttest_clear(&t);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_sizes_and_share),
		cmocka_unit_test(test_split_reproducible_and_random),
		cmocka_unit_test(test_pick_clicks_win),
		cmocka_unit_test(test_pick_opens_only_break_ties),
		cmocka_unit_test(test_pick_no_data_first),
		cmocka_unit_test(test_parse_share_and_wait),
		cmocka_unit_test_setup_teardown(test_holdout_waits_for_the_winner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clicks_decide, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
