/*
 * ledger.c - per-recipient delivery state of one send (states and
 * invariants (1)-(6) are in ledger.h).  Every change is its own committed
 * transaction, so a process killed at any instant leaves each row in a
 * state the next run knows how to continue from.
 */
#include "herald/ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"

struct ledger {
	sqlite3      *db;
	long long     issue_id;
	sqlite3_stmt *next;     /* the next due row with the person's current standing */
	sqlite3_stmt *claim;
	sqlite3_stmt *skip;
	sqlite3_stmt *mark;
	sqlite3_stmt *release;
	sqlite3_stmt *event;
};

static const long backoff[] = { 5 * 60, 15 * 60, 3600, 4 * 3600, 12 * 3600 };

long
ledger_backoff(int attempt)
{
	int n = (int)(sizeof backoff / sizeof backoff[0]);

	if (attempt < 1)
		attempt = 1;
	return backoff[attempt > n ? n - 1 : attempt - 1];
}

void
ledger_row_clear(struct ledger_row *r)
{
	free(r->name);
	free(r->attributes);
	memset(r, 0, sizeof *r);
}

static int
run_issue_stmt(sqlite3 *db, const char *sql, long long issue_id, long long arg2,
               long long *changes, const char *what, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, arg2);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	if (changes)
		*changes = sqlite3_changes(db);
	return 0;
}

int
ledger_snapshot(sqlite3 *db, long long issue_id, long long list_id, long long *n,
                struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	/* Eligible: confirmed on the list and globally active (not blocked,
	 * bounced or complained).  ORDER BY keeps the send order stable. */
	if (db_prepare(db, &st,
	               "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, "
	               "updated_at) SELECT ?1, s.id, 'pending', ?3, ?3 FROM subscriptions sub "
	               "JOIN subscribers s ON s.id = sub.subscriber_id "
	               "WHERE sub.list_id = ?2 AND sub.status = 'confirmed' AND s.status = 'active' "
	               "ORDER BY s.id ON CONFLICT DO NOTHING", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_int64(st, 2, list_id);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "snapshot recipients");
	*n = sqlite3_changes(db);
	return 0;
}

int
ledger_recover(sqlite3 *db, long long issue_id, long long *n, struct herr *err)
{
	return run_issue_stmt(db,
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
	if (db_prepare(db, &l->next,
	               "SELECT d.subscriber_id, d.attempts, s.email, s.name, s.attributes, "
	               "s.status = 'active' AND ifnull(sub.status, '') = 'confirmed' "
	               "FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
	               "JOIN issues i ON i.id = d.issue_id "
	               "LEFT JOIN subscriptions sub ON sub.list_id = i.list_id "
	               "AND sub.subscriber_id = d.subscriber_id "
	               "WHERE d.issue_id = ?1 AND (d.status = 'pending' OR "
	               "(d.status = 'deferred' AND d.next_attempt_at <= ?2)) "
	               "ORDER BY d.status = 'deferred', d.subscriber_id LIMIT 1", err) < 0 ||
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
	               "next_attempt_at = ?6, updated_at = ?7, "
	               "sent_at = CASE WHEN ?3 = 'sent' THEN ?7 ELSE sent_at END "
	               "WHERE issue_id = ?1 AND subscriber_id = ?2 AND status = 'sending'", err) < 0 ||
	    db_prepare(db, &l->release,
	               "UPDATE deliveries SET status = 'pending', attempts = max(attempts - 1, 0) "
	               "WHERE issue_id = ?1 AND subscriber_id = ?2 AND status = 'sending'", err) < 0 ||
	    db_prepare(db, &l->event,
	               "INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) "
	               "SELECT 'bounce', ?1, ?2, i.list_id, ?3, json_object('source', 'smtp', "
	               "'class', 'hard', 'stage', ?4, 'code', ?5, 'reply', ?6) "
	               "FROM issues i WHERE i.id = ?1", err) < 0) {
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
	sqlite3_finalize(l->claim);
	sqlite3_finalize(l->skip);
	sqlite3_finalize(l->mark);
	sqlite3_finalize(l->release);
	sqlite3_finalize(l->event);
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

int
ledger_claim(struct ledger *l, long long now,
             int (*message_id_fn)(void *ctx, long long subscriber_id, char *out, size_t n),
             void *ctx, struct ledger_row *row, struct herr *err)
{
	char mid[300];
	int rc, eligible;

	memset(row, 0, sizeof *row);
	if (db_begin(l->db, err) < 0)
		return -1;
	for (;;) {
		sqlite3_bind_int64(l->next, 1, l->issue_id);
		sqlite3_bind_int64(l->next, 2, now);
		rc = sqlite3_step(l->next);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(l->next);
			return db_commit(l->db, err) < 0 ? -1 : 0;
		}
		if (rc != SQLITE_ROW) {
			sqlite3_reset(l->next);
			db_error(l->db, err, "find next recipient");
			goto fail;
		}
		row->subscriber_id = sqlite3_column_int64(l->next, 0);
		row->attempts = sqlite3_column_int(l->next, 1) + 1;
		snprintf(row->email, sizeof row->email, "%s",
		         (const char *)sqlite3_column_text(l->next, 2));
		eligible = sqlite3_column_int(l->next, 5);
		if (eligible) {
			row->name = strdup((const char *)sqlite3_column_text(l->next, 3));
			row->attributes = strdup((const char *)sqlite3_column_text(l->next, 4));
		}
		sqlite3_reset(l->next);
		if (!eligible) {
			/* (6) */
			sqlite3_bind_int64(l->skip, 1, l->issue_id);
			sqlite3_bind_int64(l->skip, 2, row->subscriber_id);
			sqlite3_bind_int64(l->skip, 3, now);
			if (step(l, l->skip, "skip recipient", err) < 0)
				goto fail;
			continue;
		}
		break;
	}
	if (!row->name || !row->attributes) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto fail;
	}
	if (message_id_fn(ctx, row->subscriber_id, mid, sizeof mid) < 0) {
		herr_set(err, EX_SOFTWARE, NULL, "cannot make a Message-ID");
		goto fail;
	}
	sqlite3_bind_int64(l->claim, 1, l->issue_id);
	sqlite3_bind_int64(l->claim, 2, row->subscriber_id);
	sqlite3_bind_text(l->claim, 3, mid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(l->claim, 4, now);
	if (step(l, l->claim, "claim recipient", err) < 0)
		goto fail;
	if (db_commit(l->db, err) < 0)
		goto fail_nocommit;
	return 1;
fail:
	db_rollback(l->db);
fail_nocommit:
	ledger_row_clear(row);
	return -1;
}

int
ledger_mark(struct ledger *l, long long subscriber_id, int attempts,
            const struct smtp_result *r, long long now, struct herr *err)
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
		next = now + ledger_backoff(attempts);
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
		if (next - first > LEDGER_RETRY_WINDOW) {
			status = "failed";
			next = 0;
		}
	}
	if (r->code)
		snprintf(reply, sizeof reply, "%s", r->reply);
	else
		snprintf(reply, sizeof reply, "%s: %s", smtp_stage_name(r->stage),
		         r->detail[0] ? r->detail : "no reply");
	if (db_begin(l->db, err) < 0)
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
	if (step(l, l->mark, "record delivery", err) < 0)
		goto fail;
	if (r->outcome == SMTP_REJECTED) {
		sqlite3_bind_int64(l->event, 1, l->issue_id);
		sqlite3_bind_int64(l->event, 2, subscriber_id);
		sqlite3_bind_int64(l->event, 3, now);
		sqlite3_bind_text(l->event, 4, smtp_stage_name(r->stage), -1, SQLITE_STATIC);
		sqlite3_bind_int(l->event, 5, r->code);
		sqlite3_bind_text(l->event, 6, reply, -1, SQLITE_STATIC);
		if (step(l, l->event, "record bounce", err) < 0)
			goto fail;
	}
	return db_commit(l->db, err);
fail:
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
	if (db_prepare(db, &st, "SELECT status, count(*) FROM deliveries WHERE issue_id = ?1 "
	               "GROUP BY status", err) < 0)
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
