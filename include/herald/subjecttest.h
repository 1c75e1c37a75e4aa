/*
 * subjecttest.h - subject-line tests: a share of an issue's audience gets
 * the variants, the rest the winner.
 *
 * Owns the issue_variants table, the issues.test_* columns and the
 * meaning of deliveries.variant (sql/010_subject_tests.sql).  issue.c
 * stores a test at `issue new` (subjecttest_create()) and splits the
 * snapshot when the send starts (subjecttest_assign()); ledger.c holds the
 * holdout back (ledger.h (7)); sendjob.c gives each copy its variant's
 * subject; `herald run` and `herald send` move a test on
 * (subjecttest_advance()); report.c shows the figures.
 *
 * Front matter (issue.h):
 *   subject_variants: ["Subject A", "Subject B"]   2..SUBJECTTEST_VARIANTS_MAX
 *   test_share: 20%      of the audience, 1..50 (default 20)
 *   test_wait: 4h        30m, 4h, 1d ... (default 4h, at most 7d)
 *
 * The test's states (issues.test_state), and what moves each:
 *
 *            issue_start_send()        subjecttest_advance()
 *   testing ------------------> testing -------------------> decided
 *   (no split)                 (split:   after test_done_at
 *                               groups    + test_wait)
 *                               sending)
 *
 * Invariants (tests cite them by number):
 *   (1) the split is made once, in the transaction that takes the snapshot
 *       (issue.h (1)): each recipient is in at most one test group, the
 *       groups differ in size by at most one, and together they are
 *       round(share % of the recipients), at least one each while there
 *       are recipients enough; the rest is the holdout (variant 0);
 *   (2) the split depends only on the issue id and the recipients'
 *       subscriber ids (a hash of both orders them), so it is the same
 *       every time it is computed;
 *   (3) the winner is recorded once, with its reason, by one guarded
 *       UPDATE testing -> decided; only then is the holdout claimable;
 *   (4) the winner has the highest rate of unique clickers among its
 *       delivered copies; between variants tied on that, the highest rate
 *       of unique human openers (machine opens as report.h defines them do
 *       not count); still tied, the first of them.  With no click and no
 *       human open at all the first variant wins.
 *
 * The test groups are "sent" once none of their rows is pending or in
 * flight: a deferred copy is retried in its own time and does not hold the
 * holdout back for the retry window.
 */
#ifndef HERALD_SUBJECTTEST_H
#define HERALD_SUBJECTTEST_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/herr.h"

struct tmpl;   /* tmpl.h */
struct json_t; /* jansson's json_t */

#define SUBJECTTEST_VARIANTS_MAX  5
#define SUBJECTTEST_SHARE_DEFAULT 20
#define SUBJECTTEST_SHARE_MAX     50
#define SUBJECTTEST_WAIT_DEFAULT  (4 * 3600)
#define SUBJECTTEST_WAIT_MIN      60
#define SUBJECTTEST_WAIT_MAX      (7 * 86400)
#define SUBJECTTEST_WHY_MAX       512

/* One variant and its test group's figures (subjecttest_figures()). */
struct subjecttest_variant {
	char     *subject;      /* owned */
	long long recipients;   /* deliveries in its test group */
	long long sent;         /* of them delivered (status sent) */
	long long opens_human;  /* unique subscribers with a human open */
	long long clicks;       /* unique subscribers with a click */
};

/* An issue's test as stored; n == 0: the issue has none. */
struct subjecttest {
	long long issue_id;
	struct subjecttest_variant v[SUBJECTTEST_VARIANTS_MAX];
	size_t    n;
	int       share;        /* percent */
	long      wait;         /* seconds */
	char      state[12];    /* "testing" or "decided" */
	long long done_at;      /* test groups sent; 0: not yet */
	long long decided_at;   /* 0: undecided */
	int       winner;       /* 1-based; 0: undecided */
	char      why[SUBJECTTEST_WHY_MAX]; /* "" while undecided */
	long long holdout;      /* subjecttest_figures(): deliveries held back */
	long long holdout_sent;
	int       have_figures; /* subjecttest_figures() filled the counts */
};
void subjecttest_clear(struct subjecttest *t);

/* Parse test_share ("20%", "20 %", "20") and test_wait ("4h", see
 * config_parse_duration()); -1 when out of range or malformed. */
int subjecttest_parse_share(const char *s);
long subjecttest_parse_wait(const char *s);

/* Store the test of new issue `issue_id` (inside issue_create()'s
 * transaction): subjects[0..n), 2 <= n <= SUBJECTTEST_VARIANTS_MAX, checked
 * by the caller; share and wait as parsed. */
int subjecttest_create(sqlite3 *db, long long issue_id, const char *const *subjects, size_t n,
                       int share, long wait, struct herr *err);

/* Load issue `issue_id`'s test into *t (t->n == 0 when it has none, or
 * there is no such issue; no figures).  subjecttest_clear() it, also
 * after a failure. */
int subjecttest_load(sqlite3 *db, long long issue_id, struct subjecttest *t, struct herr *err);

/* (1), (2): the split, pure.  For recipients ids[0..n) (any order) of
 * issue `issue_id`, variant[i] gets 1..n_variants for the test groups and
 * 0 for the holdout.  Returns how many are in test groups. */
size_t subjecttest_split(long long issue_id, const long long *ids, size_t n, int share,
                         size_t n_variants, int *variant);

/* (1): split the snapshot of issue `issue_id` into deliveries.variant; a
 * no-op for an issue without a test.  Inside the transaction that took the
 * snapshot (issue_start_send()). *tested: recipients in test groups. */
int subjecttest_assign(sqlite3 *db, long long issue_id, long long *tested, struct herr *err);

/* Fill the counts of t's variants and holdout from the deliveries and
 * events of now. */
int subjecttest_figures(sqlite3 *db, struct subjecttest *t, struct herr *err);

/* (4), pure: the winner (1-based) of v[0..n) by their counts, and the one
 * line that says why into why[size]. */
int subjecttest_pick(const struct subjecttest_variant *v, size_t n, char *why, size_t size);

enum subjecttest_phase {
	SUBJECTTEST_NONE,     /* no test, or its send has not started */
	SUBJECTTEST_SENDING,  /* the test groups are still being sent */
	SUBJECTTEST_WAITING,  /* sent; the winner is picked at done_at + wait */
	SUBJECTTEST_DECIDED,  /* the winner is known; the holdout may go */
};

/*
 * Move issue `issue_id`'s test on as of `now`: record when the test groups
 * were sent (the time of the last of them, once), and when the wait is
 * over pick and record the winner (3).  Fills *t (with figures once
 * decided) and *phase; *decided_now is 1 when this call recorded it.
 * Resumable: every step is one committed transaction, and a crash between
 * two leaves a state the next call continues from.
 */
int subjecttest_advance(sqlite3 *db, long long issue_id, long long now, struct subjecttest *t,
                        enum subjecttest_phase *phase, int *decided_now, struct herr *err);

/* The next issue after `after_id` whose test is undecided while it is
 * sending (what `herald run` moves on); 0 when none. */
int subjecttest_next_open(sqlite3 *db, long long after_id, long long *id, struct herr *err);

/* Compile the variants' subjects (merge fields) into out[0..t->n); the
 * caller tmpl_free()s each, also after a failure (unset ones are NULL). */
int subjecttest_compile(const struct subjecttest *t, struct tmpl **out, struct herr *err);

/*
 * The test as JSON: {state, share, wait, done_at, decided_at, winner, why,
 * holdout: {recipients, sent}, variants: [{variant, subject, recipients,
 * sent, opens_human, clicks, open_rate, click_rate, winner}]}; times and
 * winner null while unset, rates (human opens or unique clicks / sent)
 * rounded as report.h's.  NULL when memory runs out.
 */
struct json_t *subjecttest_json(const struct subjecttest *t);

#endif
