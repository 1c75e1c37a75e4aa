/*
 * retention.c - removing old events, deliveries and inbound rows in short
 * batches (see retention.h for what goes and invariants (1)-(3)).
 *
 * Owns no table: the rows belong to eventlog.c, ledger.c and bouncelog.c,
 * and this file only ever deletes them, through the statements below,
 * each a range of an index:
 *   - events: per kind, a range of events_by_kind_time (kind, at, ...);
 *   - deliveries: per issue, a range of the primary key (issue_id, ...);
 *   - inbound: a range of inbound_by_time (received_at), with
 *     bounces_by_inbound serving the ON DELETE SET NULL of bounces.
 * An issue's figures are kept (report_freeze()) first, each in a write
 * transaction of its own, which is the longest kind of transaction here
 * for a large issue: it is measured with the batches.
 */
#include "herald/retention.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/db.h"
#include "herald/ledger.h"
#include "herald/report.h"

/* The issues with rows retention may remove whose figures are not kept
 * yet.  A list's current welcome mail, or a step of a sequence, is never
 * one (retention.h (4)).  ?1, ?2: the events and deliveries cut-offs, 0 when that kind is
 * kept for ever. */
static const char to_freeze_sql[] =
	"SELECT i.id FROM issues i WHERE i.status IN ('sent', 'cancelled') "
	"AND NOT EXISTS (SELECT 1 FROM issue_figures f WHERE f.issue_id = i.id) "
	"AND NOT EXISTS (SELECT 1 FROM lists l WHERE l.welcome_issue_id = i.id) "
	"AND NOT EXISTS (SELECT 1 FROM sequence_steps t WHERE t.issue_id = i.id) "
	"AND ((?1 > 0 AND EXISTS (SELECT 1 FROM events e WHERE e.issue_id = i.id AND e.at < ?1)) "
	"  OR (?2 > 0 AND EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = i.id "
	"                         AND coalesce(d.sent_at, d.updated_at) < ?2))) "
	"ORDER BY i.id";

/* Invariant (1): an event of an issue goes only once the issue's figures
 * are kept; one without an issue (a sign-up, a confirmation) at any time. */
static const char events_sql[] =
	"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE kind = ?1 AND at < ?2 "
	"AND (issue_id IS NULL OR issue_id IN (SELECT issue_id FROM issue_figures)) LIMIT ?3)";

static const char *const event_kinds[] = {
	"open", "click", "bounce", "complaint", "unsubscribe", "subscribe", "confirm",
};

static const char frozen_sql[] =
	"SELECT f.issue_id FROM issue_figures f JOIN issues i ON i.id = f.issue_id "
	"WHERE i.status IN ('sent', 'cancelled') ORDER BY f.issue_id";

static const char inbound_sql[] =
	"DELETE FROM inbound WHERE id IN (SELECT id FROM inbound WHERE received_at < ?1 "
	"ORDER BY received_at LIMIT ?2)";

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void
retention_policy_from(const struct config *cfg, struct retention_policy *p)
{
	p->events = cfg->retention_events;
	p->deliveries = cfg->retention_deliveries;
	p->inbound = cfg->retention_inbound;
	p->batch = RETENTION_BATCH;
	p->stop = NULL;
	p->deadline = 0;
}

int
retention_enabled(const struct retention_policy *p)
{
	return p->events > 0 || p->deliveries > 0 || p->inbound > 0;
}

/* Invariant (3). */
static int
should_stop(const struct retention_policy *p, struct retention_report *rep)
{
	if ((p->stop && *p->stop) || (p->deadline > 0 && db_now_f() >= p->deadline)) {
		rep->stopped = 1;
		return 1;
	}
	return 0;
}

static void
timed(struct retention_report *rep, double t0)
{
	double ms = mono_ms() - t0;

	rep->batches++;
	if (ms > rep->longest_ms)
		rep->longest_ms = ms;
}

/*
 * One batch: `st` (bound by the caller except its LIMIT, parameter
 * `limit_at`) in a transaction of its own.  *n gets the rows removed.
 */
static int
batch(sqlite3 *db, sqlite3_stmt *st, int limit_at, long limit, struct retention_report *rep,
      long long *n, const char *what, struct herr *err)
{
	double t0 = mono_ms();
	int rc;

	if (db_begin(db, err) < 0)
		return -1;
	sqlite3_bind_int64(st, limit_at, limit);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, what);
		db_rollback(db);
		return -1;
	}
	*n = sqlite3_changes(db);
	if (db_commit(db, err) < 0)
		return -1;
	timed(rep, t0);
	return 0;
}

/* Ids of the rows of `sql` (one integer column, ?1 and ?2 bound to a1,
 * a2 when present), into a new array the caller frees. */
static int
ids_of(sqlite3 *db, const char *sql, long long a1, long long a2, long long **out, size_t *n,
       struct herr *err)
{
	sqlite3_stmt *st;
	long long *p;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, a1);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, a2);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			if (!(p = realloc(*out, cap * sizeof *p))) {
				sqlite3_finalize(st);
				free(*out);
				*out = NULL;
				return herr_set(err, EX_OSERR, NULL, "out of memory");
			}
			*out = p;
		}
		(*out)[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(*out);
		*out = NULL;
		return db_error(db, err, "list issues for retention");
	}
	return 0;
}

/* Invariant (1): keep the figures of every issue that is about to lose rows. */
static int
freeze_issues(sqlite3 *db, const struct retention_policy *p, long long now,
              struct retention_report *rep, struct herr *err)
{
	long long *ids, ev = p->events > 0 ? now - p->events : 0,
	          dv = p->deliveries > 0 ? now - p->deliveries : 0;
	size_t n, i;
	int kept;
	double t0;

	if (!ev && !dv)
		return 0;
	if (ids_of(db, to_freeze_sql, ev, dv, &ids, &n, err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (should_stop(p, rep))
			break;
		t0 = mono_ms();
		if (db_begin(db, err) < 0)
			goto fail;
		if (report_freeze(db, ids[i], &kept, err) < 0) {
			db_rollback(db);
			goto fail;
		}
		if (db_commit(db, err) < 0)
			goto fail;
		timed(rep, t0);
		rep->kept += kept;
	}
	free(ids);
	return 0;
fail:
	free(ids);
	return -1;
}

static int
remove_events(sqlite3 *db, const struct retention_policy *p, long long now,
              struct retention_report *rep, struct herr *err)
{
	sqlite3_stmt *st;
	long long n;
	size_t k;

	if (p->events <= 0)
		return 0;
	if (db_prepare(db, &st, events_sql, err) < 0)
		return -1;
	for (k = 0; k < sizeof event_kinds / sizeof event_kinds[0]; k++) {
		sqlite3_bind_text(st, 1, event_kinds[k], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now - p->events);
		do {
			if (should_stop(p, rep))
				goto done;
			if (batch(db, st, 3, p->batch, rep, &n, "remove old events", err) < 0) {
				sqlite3_finalize(st);
				return -1;
			}
			rep->events += n;
		} while (n >= p->batch);
	}
done:
	sqlite3_finalize(st);
	return 0;
}

static int
remove_deliveries(sqlite3 *db, const struct retention_policy *p, long long now,
                  struct retention_report *rep, struct herr *err)
{
	long long *ids, n;
	size_t n_ids, i;
	double t0;

	if (p->deliveries <= 0)
		return 0;
	if (ids_of(db, frozen_sql, 0, 0, &ids, &n_ids, err) < 0)
		return -1;
	for (i = 0; i < n_ids; i++) {
		do {
			if (should_stop(p, rep))
				goto done;
			/* ledger.c owns the rows: one batch, one transaction */
			t0 = mono_ms();
			if (db_begin(db, err) < 0)
				goto fail;
			if (ledger_prune(db, ids[i], now - p->deliveries, p->batch, &n, err) < 0) {
				db_rollback(db);
				goto fail;
			}
			if (db_commit(db, err) < 0)
				goto fail;
			timed(rep, t0);
			rep->deliveries += n;
		} while (n >= p->batch);
	}
done:
	free(ids);
	return 0;
fail:
	free(ids);
	return -1;
}

static int
remove_inbound(sqlite3 *db, const struct retention_policy *p, long long now,
               struct retention_report *rep, struct herr *err)
{
	sqlite3_stmt *st;
	long long n;

	if (p->inbound <= 0)
		return 0;
	if (db_prepare(db, &st, inbound_sql, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, now - p->inbound);
	do {
		if (should_stop(p, rep))
			break;
		if (batch(db, st, 2, p->batch, rep, &n, "remove old inbound mail", err) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
		rep->inbound += n;
	} while (n >= p->batch);
	sqlite3_finalize(st);
	return 0;
}

int
retention_run(sqlite3 *db, const struct retention_policy *p, long long now,
              struct retention_report *rep, struct herr *err)
{
	struct retention_policy q = *p;

	memset(rep, 0, sizeof *rep);
	if (q.batch <= 0)
		q.batch = RETENTION_BATCH;
	if (freeze_issues(db, &q, now, rep, err) < 0 ||
	    remove_events(db, &q, now, rep, err) < 0 ||
	    remove_deliveries(db, &q, now, rep, err) < 0 ||
	    remove_inbound(db, &q, now, rep, err) < 0)
		return -1;
	return 0;
}
