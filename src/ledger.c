/*
 * ledger.c - per-recipient delivery state of one send (states and
 * invariants (1)-(6) are in ledger.h).  Every change is its own committed
 * transaction, so a process killed at any instant leaves each row in a
 * state the next run knows how to continue from.
 */
#include "herald/ledger.h"
#include "herald/audience.h"
#include "herald/bouncelog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"
#include "herald/db.h"

struct ledger {
	sqlite3      *db;
	long long     issue_id;
	long long     cursor;   /* pending rows are claimed in subscriber order past this */
	int           in_batch; /* inside ledger_batch_begin(): no own transactions */
	const long   *retry;    /* backoff schedule, seconds */
	size_t        n_retry;
	long          window;   /* retry window, seconds */
	sqlite3_stmt *next;     /* the next pending row with the person's current standing */
	sqlite3_stmt *next_deferred; /* the next due deferred row, likewise */
	sqlite3_stmt *claim;
	sqlite3_stmt *skip;
	sqlite3_stmt *mark;
	sqlite3_stmt *release;
	struct bouncelog_policy policy; /* for rejections met at SMTP time */
};

static const long default_backoff[] = { 5 * 60, 15 * 60, 3600, 4 * 3600, 12 * 3600 };

static long
backoff_from(const long *sched, size_t n, int attempt)
{
	if (attempt < 1)
		attempt = 1;
	return sched[(size_t)attempt > n ? n - 1 : (size_t)attempt - 1];
}

long
ledger_backoff(int attempt)
{
	return backoff_from(default_backoff, sizeof default_backoff / sizeof default_backoff[0],
	                    attempt);
}

void
ledger_set_retry(struct ledger *l, const long *schedule, size_t n, long window)
{
	if (n) {
		l->retry = schedule;
		l->n_retry = n;
	}
	if (window > 0)
		l->window = window;
}

void
ledger_set_bounce_policy(struct ledger *l, long soft_limit, long soft_window)
{
	if (soft_limit > 0)
		l->policy.soft_limit = soft_limit;
	if (soft_window > 0)
		l->policy.soft_window = soft_window;
}

void
ledger_row_clear(struct ledger_row *r)
{
	free(r->name);
	free(r->attributes);
	free(r->lists);
	memset(r, 0, sizeof *r);
}

int
ledger_snapshot(sqlite3 *db, long long issue_id, const struct audience *a, long long *n,
                struct herr *err)
{
	struct buf sql = BUF_INIT((1u << 20) + (64u << 10));
	sqlite3_stmt *st;
	int rc;

	/* The audience (audience.h: audience_sql(), its ?1 and ?101...; ours
	 * are ?2 and ?3); ORDER BY keeps the send order stable. */
	if (buf_adds(&sql, "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
	             "updated_at) SELECT ?2, s.id, 'pending', ?3, ?3 FROM subscribers s WHERE ") < 0 ||
	    audience_sql(a, &sql) < 0 || buf_adds(&sql, " ORDER BY s.id ON CONFLICT DO NOTHING") < 0) {
		buf_free(&sql);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	rc = db_prepare(db, &st, buf_str(&sql), err);
	buf_free(&sql);
	if (rc < 0)
		return -1;
	if (audience_bind(a, st, err) < 0) {
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_bind_int64(st, 2, issue_id);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "snapshot recipients");
	*n = sqlite3_changes(db);
	return 0;
}

int
ledger_add(sqlite3 *db, long long issue_id, long long subscriber_id, int *added,
           struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	/* (8): the primary key makes a second add a no-op, never a second row */
	if (db_prepare(db, &st, "INSERT INTO deliveries (issue_id, subscriber_id, status, "
	               "created_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?3) "
	               "ON CONFLICT DO NOTHING", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "queue welcome delivery");
	if (added)
		*added = sqlite3_changes(db) == 1;
	return 0;
}

int
ledger_retry_failed(sqlite3 *db, long long issue_id, long long *n, struct herr *err)
{
	return db_run2(db,
	                      "UPDATE deliveries SET status = 'pending', next_attempt_at = NULL, "
	                      "first_attempt_at = NULL, updated_at = ?2 WHERE issue_id = ?1 AND "
	                      "status = 'failed'",
	                      issue_id, db_now(), n, "retry failed deliveries", err);
}

int
ledger_set_variants(sqlite3 *db, long long issue_id, const long long *ids, const int *variant,
                    size_t n, struct herr *err)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	if (db_run2(db, "UPDATE deliveries SET variant = 0 WHERE issue_id = ?1", issue_id, 0,
	            NULL, "split the recipients", err) < 0 ||
	    db_prepare(db, &st, "UPDATE deliveries SET variant = ?3 WHERE issue_id = ?1 "
	               "AND subscriber_id = ?2", err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (!variant[i])
			continue;
		sqlite3_bind_int64(st, 1, issue_id);
		sqlite3_bind_int64(st, 2, ids[i]);
		sqlite3_bind_int(st, 3, variant[i]);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return db_error(db, err, "split the recipients");
		}
	}
	sqlite3_finalize(st);
	return 0;
}

int
ledger_move_subscriber(sqlite3 *db, long long from, long long to, long long *n,
                       struct herr *err)
{
	return db_run2(db, "UPDATE deliveries SET subscriber_id = ?2 WHERE subscriber_id = ?1",
	               from, to, n, "move deliveries", err);
}

int
ledger_prune(sqlite3 *db, long long issue_id, long long before, long long limit, long long *n,
             struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st,
	               "DELETE FROM deliveries WHERE issue_id = ?1 AND subscriber_id IN "
	               "(SELECT subscriber_id FROM deliveries WHERE issue_id = ?1 "
	               " AND status IN ('sent', 'bounced', 'failed', 'skipped') "
	               " AND coalesce(sent_at, updated_at) < ?2 LIMIT ?3)", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_int64(st, 2, before);
	sqlite3_bind_int64(st, 3, limit);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "remove old deliveries");
	*n = sqlite3_changes(db);
	return 0;
}

int
ledger_recover(sqlite3 *db, long long issue_id, long long *n, struct herr *err)
{
	return db_run2(db,
	                      "UPDATE deliveries SET status = 'pending', updated_at = ?2 "
	                      "WHERE issue_id = ?1 AND status = 'sending'",
	                      issue_id, db_now(), n, "recover in-flight deliveries", err);
}

int
ledger_open(sqlite3 *db, long long issue_id, struct ledger **out, struct herr *err)
{
	struct ledger *l = calloc(1, sizeof *l);

	*out = NULL;
	if (!l)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	l->db = db;
	l->issue_id = issue_id;
	l->retry = default_backoff;
	l->n_retry = sizeof default_backoff / sizeof default_backoff[0];
	l->window = LEDGER_RETRY_WINDOW;
	l->policy = (struct bouncelog_policy)BOUNCELOG_POLICY_DEFAULT;
	/* Pending rows in subscriber order from a cursor, so each claim is an
	 * index seek rather than a scan past everything already sent. */
	/* (6): still confirmed on one of the issue's lists, still mailable */
	/* (7): the subject a row goes out with (its variant, the winner's for
	 * the holdout, 0: the issue's own), and no holdout row before the
	 * winner is recorded; the subquery is not correlated, so it is read
	 * once per statement */
#define WINNER "(SELECT test_winner FROM issues WHERE id = ?1)"
	/* the footer's "why you get this" (message.h): the titles of the
	 * issue's lists the reader is confirmed on, in the issue's order */
#define READER_LISTS \
	"ifnull((SELECT group_concat(t, char(31)) FROM (SELECT CASE WHEN l.title <> '' " \
	"THEN l.title ELSE l.name END AS t FROM issue_lists il JOIN lists l ON l.id = il.list_id " \
	"JOIN subscriptions sx ON sx.list_id = il.list_id AND sx.subscriber_id = d.subscriber_id " \
	"WHERE il.issue_id = d.issue_id AND sx.status = 'confirmed' ORDER BY il.position)), '') "
#define NEXT_COLUMNS \
	"SELECT d.subscriber_id, d.attempts, s.email, s.name, s.attributes, " \
	AUDIENCE_SQL_ISSUE_MEMBER("d.issue_id") ", " \
	"CASE WHEN d.variant = 0 THEN " WINNER " ELSE ifnull(d.variant, 0) END, " \
	READER_LISTS \
	"FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
#define NOT_HELD "AND (d.variant IS NOT 0 OR " WINNER " IS NOT NULL) "
	if (db_prepare(db, &l->next, NEXT_COLUMNS
	               "WHERE d.issue_id = ?1 AND d.status = 'pending' AND d.subscriber_id > ?2 "
	               NOT_HELD "ORDER BY d.subscriber_id LIMIT 1", err) < 0 ||
	    db_prepare(db, &l->next_deferred, NEXT_COLUMNS
	               "WHERE d.issue_id = ?1 AND d.status = 'deferred' AND d.next_attempt_at <= ?2 "
	               NOT_HELD "ORDER BY d.next_attempt_at LIMIT 1", err) < 0 ||
	    db_prepare(db, &l->claim,
	               "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, "
	               "message_id = ?3, first_attempt_at = ifnull(first_attempt_at, ?4), "
	               "updated_at = ?4 WHERE issue_id = ?1 AND subscriber_id = ?2", err) < 0 ||
	    db_prepare(db, &l->skip,
	               "UPDATE deliveries SET status = 'skipped', updated_at = ?3, "
	               "smtp_reply = 'unsubscribed or blocked after the send started' "
	               "WHERE issue_id = ?1 AND subscriber_id = ?2", err) < 0 ||
	    db_prepare(db, &l->mark,
	               "UPDATE deliveries SET status = ?3, smtp_code = ?4, smtp_reply = ?5, "
	               "next_attempt_at = ?6, updated_at = ?7, relay = ifnull(?8, relay), "
	               "sent_at = CASE WHEN ?3 = 'sent' THEN ?7 ELSE sent_at END "
	               "WHERE issue_id = ?1 AND subscriber_id = ?2 AND status = 'sending'", err) < 0 ||
	    db_prepare(db, &l->release,
	               "UPDATE deliveries SET status = 'pending', attempts = max(attempts - 1, 0) "
	               "WHERE issue_id = ?1 AND subscriber_id = ?2 AND status = 'sending'", err) < 0) {
		ledger_close(l);
		return -1;
	}
	*out = l;
	return 0;
}

void
ledger_close(struct ledger *l)
{
	if (!l)
		return;
	sqlite3_finalize(l->next);
	sqlite3_finalize(l->next_deferred);
	sqlite3_finalize(l->claim);
	sqlite3_finalize(l->skip);
	sqlite3_finalize(l->mark);
	sqlite3_finalize(l->release);
	free(l);
}

static int
step(struct ledger *l, sqlite3_stmt *st, const char *what, struct herr *err)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_error(l->db, err, what);
	return 0;
}

/* Claim one row inside an open transaction: 1, 0 (none due) or -1. */
static int
claim_one(struct ledger *l, long long now,
          int (*message_id_fn)(void *ctx, long long subscriber_id, char *out, size_t n),
          void *ctx, struct ledger_row *row, struct herr *err)
{
	sqlite3_stmt *q;
	char mid[300];
	int rc, eligible;

	memset(row, 0, sizeof *row);
	for (;;) {
		/* pending first, in order; then deferred rows whose time has come */
		q = l->next;
		sqlite3_bind_int64(q, 1, l->issue_id);
		sqlite3_bind_int64(q, 2, l->cursor);
		rc = sqlite3_step(q);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(q);
			q = l->next_deferred;
			sqlite3_bind_int64(q, 1, l->issue_id);
			sqlite3_bind_int64(q, 2, now);
			rc = sqlite3_step(q);
		}
		if (rc == SQLITE_DONE) {
			sqlite3_reset(q);
			return 0;
		}
		if (rc != SQLITE_ROW) {
			sqlite3_reset(q);
			return db_error(l->db, err, "find next recipient");
		}
		row->subscriber_id = sqlite3_column_int64(q, 0);
		row->attempts = sqlite3_column_int(q, 1) + 1;
		snprintf(row->email, sizeof row->email, "%s",
		         (const char *)sqlite3_column_text(q, 2));
		eligible = sqlite3_column_int(q, 5);
		row->variant = sqlite3_column_int(q, 6);
		if (eligible) {
			row->name = strdup((const char *)sqlite3_column_text(q, 3));
			row->attributes = strdup((const char *)sqlite3_column_text(q, 4));
			row->lists = strdup((const char *)sqlite3_column_text(q, 7));
		}
		sqlite3_reset(q);
		if (q == l->next)
			l->cursor = row->subscriber_id;
		if (!eligible) {
			/* (6) */
			sqlite3_bind_int64(l->skip, 1, l->issue_id);
			sqlite3_bind_int64(l->skip, 2, row->subscriber_id);
			sqlite3_bind_int64(l->skip, 3, now);
			if (step(l, l->skip, "skip recipient", err) < 0)
				return -1;
			continue;
		}
		break;
	}
	if (!row->name || !row->attributes || !row->lists) {
		ledger_row_clear(row);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	if (message_id_fn(ctx, row->subscriber_id, mid, sizeof mid) < 0) {
		ledger_row_clear(row);
		return herr_set(err, EX_SOFTWARE, NULL, "cannot make a Message-ID");
	}
	sqlite3_bind_int64(l->claim, 1, l->issue_id);
	sqlite3_bind_int64(l->claim, 2, row->subscriber_id);
	sqlite3_bind_text(l->claim, 3, mid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(l->claim, 4, now);
	if (step(l, l->claim, "claim recipient", err) < 0) {
		ledger_row_clear(row);
		return -1;
	}
	return 1;
}

int
ledger_claim_batch(struct ledger *l, long long now, size_t max,
                   int (*message_id_fn)(void *ctx, long long subscriber_id, char *out, size_t n),
                   void *ctx, struct ledger_row *rows, size_t *n, struct herr *err)
{
	size_t i;
	int rc = 0;

	*n = 0;
	if (db_begin(l->db, err) < 0)
		return -1;
	while (*n < max && (rc = claim_one(l, now, message_id_fn, ctx, &rows[*n], err)) == 1)
		(*n)++;
	if (rc < 0 || db_commit(l->db, err) < 0) {
		db_rollback(l->db);
		for (i = 0; i < *n; i++)
			ledger_row_clear(&rows[i]);
		*n = 0;
		return -1;
	}
	return 0;
}

int
ledger_claim(struct ledger *l, long long now,
             int (*message_id_fn)(void *ctx, long long subscriber_id, char *out, size_t n),
             void *ctx, struct ledger_row *row, struct herr *err)
{
	size_t n;

	if (ledger_claim_batch(l, now, 1, message_id_fn, ctx, row, &n, err) < 0)
		return -1;
	return n == 1;
}

int
ledger_batch_begin(struct ledger *l, struct herr *err)
{
	if (db_begin(l->db, err) < 0)
		return -1;
	l->in_batch = 1;
	return 0;
}

int
ledger_batch_commit(struct ledger *l, struct herr *err)
{
	l->in_batch = 0;
	return db_commit(l->db, err);
}

int
ledger_mark(struct ledger *l, long long subscriber_id, int attempts,
            const struct smtp_result *r, const char *relay, long long now, struct herr *err)
{
	const char *status;
	char reply[600];
	long long next = 0, first = now;
	sqlite3_stmt *st;

	switch (r->outcome) {
	case SMTP_SENT:
		status = "sent";
		break;
	case SMTP_REJECTED:
		status = "bounced";
		break;
	default:
		status = "deferred";
		next = now + backoff_from(l->retry, l->n_retry, attempts);
		/* The window counts from the first attempt of this row. */
		if (db_prepare(l->db, &st, "SELECT ifnull(first_attempt_at, ?3) FROM deliveries "
		               "WHERE issue_id = ?1 AND subscriber_id = ?2", err) < 0)
			return -1;
		sqlite3_bind_int64(st, 1, l->issue_id);
		sqlite3_bind_int64(st, 2, subscriber_id);
		sqlite3_bind_int64(st, 3, now);
		if (sqlite3_step(st) == SQLITE_ROW)
			first = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (next - first > l->window) {
			status = "failed";
			next = 0;
		}
	}
	if (r->code)
		snprintf(reply, sizeof reply, "%s", r->reply);
	else
		snprintf(reply, sizeof reply, "%s: %s", smtp_stage_name(r->stage),
		         r->detail[0] ? r->detail : "no reply");
	if (!l->in_batch && db_begin(l->db, err) < 0)
		return -1;
	sqlite3_bind_int64(l->mark, 1, l->issue_id);
	sqlite3_bind_int64(l->mark, 2, subscriber_id);
	sqlite3_bind_text(l->mark, 3, status, -1, SQLITE_STATIC);
	if (r->code)
		sqlite3_bind_int(l->mark, 4, r->code);
	sqlite3_bind_text(l->mark, 5, reply, -1, SQLITE_STATIC);
	if (next)
		sqlite3_bind_int64(l->mark, 6, next);
	sqlite3_bind_int64(l->mark, 7, now);
	if (relay)
		sqlite3_bind_text(l->mark, 8, relay, -1, SQLITE_STATIC);
	if (step(l, l->mark, "record delivery", err) < 0)
		goto fail;
	if (r->outcome == SMTP_REJECTED) {
		/* The same table, reasons and policy as a DSN that comes back
		 * later: a 550 5.1.1 marks the address bounced, a 554 5.7.1
		 * "blocked" counts as soft (it is about us, not the address). */
		struct bouncelog_failure f;
		struct bounce_evidence ev;
		char dsn[16], why[BOUNCE_WHY_SIZE];

		bouncelog_status_from_reply(r->reply, r->code, dsn);
		memset(&f, 0, sizeof f);
		f.subscriber_id = subscriber_id;
		f.issue_id = l->issue_id;
		f.recipient = ""; /* bouncelog takes the subscriber's address */
		f.source = "smtp";
		/* Met live: no Action, not returned (bounce.h) */
		memset(&ev, 0, sizeof ev);
		ev.status = dsn;
		ev.reply_code = r->code;
		ev.diagnostic = reply;
		ev.phase = smtp_stage_name(r->stage);
		f.cls = bounce_decide(&ev, &f.reason, why, sizeof why);
		f.why = why;
		f.status = dsn;
		f.reply_code = r->code;
		f.diagnostic = reply;
		f.remote_mta = relay ? relay : "";
		f.stage = smtp_stage_name(r->stage);
		if (bouncelog_record(l->db, &l->policy, &f, NULL, err) < 0)
			goto fail;
	}
	return l->in_batch ? 0 : db_commit(l->db, err);
fail:
	if (!l->in_batch)
		db_rollback(l->db);
	return -1;
}

int
ledger_release(struct ledger *l, long long subscriber_id, struct herr *err)
{
	sqlite3_bind_int64(l->release, 1, l->issue_id);
	sqlite3_bind_int64(l->release, 2, subscriber_id);
	return step(l, l->release, "release recipient", err);
}

int
ledger_fail(struct ledger *l, long long subscriber_id, const char *why, long long now,
            struct herr *err)
{
	struct smtp_result r;

	memset(&r, 0, sizeof r);
	sqlite3_bind_int64(l->mark, 1, l->issue_id);
	sqlite3_bind_int64(l->mark, 2, subscriber_id);
	sqlite3_bind_text(l->mark, 3, "failed", -1, SQLITE_STATIC);
	sqlite3_bind_text(l->mark, 5, why, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(l->mark, 7, now);
	return step(l, l->mark, "record failure", err);
}

int
ledger_counts(sqlite3 *db, long long issue_id, struct ledger_counts *c, struct herr *err)
{
	sqlite3_stmt *st;
	const char *s;
	long long n;
	int rc;

	memset(c, 0, sizeof *c);
	/* the counts triggers keep (sql/026): a few rows, not a scan of the
	 * issue's deliveries (0.64 s at ten million) */
	if (db_prepare(db, &st, "SELECT status, n FROM delivery_tallies WHERE issue_id = ?1",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		s = (const char *)sqlite3_column_text(st, 0);
		n = sqlite3_column_int64(st, 1);
		c->total += n;
		if (!strcmp(s, "pending")) c->pending = n;
		else if (!strcmp(s, "sending")) c->sending = n;
		else if (!strcmp(s, "sent")) c->sent = n;
		else if (!strcmp(s, "deferred")) c->deferred = n;
		else if (!strcmp(s, "bounced")) c->bounced = n;
		else if (!strcmp(s, "failed")) c->failed = n;
		else if (!strcmp(s, "skipped")) c->skipped = n;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "count deliveries");
	return 0;
}

#define DELIVERY_COLUMNS \
	"SELECT d.issue_id, i.subject, s.email, d.status, d.attempts, ifnull(d.smtp_code, 0), " \
	"ifnull(d.smtp_reply, ''), d.updated_at FROM deliveries d " \
	"JOIN issues i ON i.id = d.issue_id JOIN subscribers s ON s.id = d.subscriber_id "

/* Step `st` (DELIVERY_COLUMNS), calling fn per row; finalizes it. */
static int
each_delivery(sqlite3 *db, sqlite3_stmt *st, ledger_delivery_fn fn, void *ctx, struct herr *err)
{
	struct ledger_delivery d;
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		d.issue_id = sqlite3_column_int64(st, 0);
		d.subject = (const char *)sqlite3_column_text(st, 1);
		d.email = (const char *)sqlite3_column_text(st, 2);
		d.status = (const char *)sqlite3_column_text(st, 3);
		d.attempts = sqlite3_column_int(st, 4);
		d.smtp_code = sqlite3_column_int(st, 5);
		d.smtp_reply = (const char *)sqlite3_column_text(st, 6);
		d.updated_at = sqlite3_column_int64(st, 7);
		if (fn(ctx, &d) < 0) {
			ret = -1;
			break;
		}
	}
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		return db_error(db, err, "list deliveries");
	return ret;
}

int
ledger_each_failure(sqlite3 *db, long long issue_id, ledger_delivery_fn fn, void *ctx,
                    struct herr *err)
{
	sqlite3_stmt *st;

	if (db_prepare(db, &st, DELIVERY_COLUMNS "WHERE d.issue_id = ?1 AND d.status IN "
	               "('failed', 'bounced') ORDER BY s.email_key", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	return each_delivery(db, st, fn, ctx, err);
}

int
ledger_each_of_subscriber(sqlite3 *db, long long subscriber_id, int limit,
                          ledger_delivery_fn fn, void *ctx, struct herr *err)
{
	sqlite3_stmt *st;

	if (db_prepare(db, &st, DELIVERY_COLUMNS "WHERE d.subscriber_id = ?1 "
	               "ORDER BY d.issue_id DESC LIMIT ?2", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_int(st, 2, limit);
	return each_delivery(db, st, fn, ctx, err);
}
