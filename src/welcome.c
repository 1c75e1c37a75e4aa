/*
 * welcome.c - a list's welcome mail (see welcome.h for the enqueue rule
 * (1)-(5)).
 *
 * Owns lists.welcome_issue_id and the welcomes table (sql/015_welcome.sql).
 * The issue itself is issue.c's (made by issue_create(), moved by
 * issue_welcome_start() and issue_welcome_reopen()), its rows the
 * ledger's (ledger_add()), and sending them sendjob.c's.  Called by
 * subscriber.c when a subscription becomes confirmed, by src/cmd/list.c
 * (list set, list show) and src/cmd/serve.c (the tick).
 */
#include "herald/welcome.h"

#include <stdio.h>
#include <string.h>

#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/lock.h"
#include "herald/sendjob.h"

/* A welcome goes to its own list, to everyone who joins it: the front
 * matter may not say otherwise. */
static int
check_source(const struct issue_source *src, const char *list_name, struct herr *err)
{
	char where[HERR_WHERE_MAX];
	size_t i;

	for (i = 0; i < src->n_lists; i++)
		if (strcmp(src->lists[i], list_name) != 0) {
			snprintf(where, sizeof where, "%s:%u", src->path, src->lists_line);
			return herr_set(err, EX_DATAERR, where,
			                "a welcome mail goes to its own list '%s' only; leave "
			                "'lists:' out", list_name);
		}
	if (src->segment || src->where) {
		snprintf(where, sizeof where, "%s:%u", src->path,
		         src->segment ? src->segment_line : src->where_line);
		return herr_set(err, EX_DATAERR, where,
		                "a welcome mail goes to every new subscriber; it takes no "
		                "'segment:' or 'where:'");
	}
	if (src->n_variants) {
		snprintf(where, sizeof where, "%s:%u", src->path, src->variants_line);
		return herr_set(err, EX_DATAERR, where,
		                "a welcome mail has one subject; it takes no 'subject_variants:'");
	}
	return 0;
}

int
welcome_set(sqlite3 *db, const struct config *cfg, const char *list_name, const char *path,
            void (*warn)(void *ctx, const char *msg), void *warn_ctx, long long *issue_id,
            struct herr *err)
{
	struct list l;
	long long id = 0;

	*issue_id = 0;
	if (list_get(db, list_name, &l, err) < 0 ||
	    issue_create_for_list(db, cfg, path, list_name, check_source, warn, warn_ctx, &id,
	                          err) < 0)
		return -1;
	/* issue_create() commits its draft; making it the welcome and
	 * attaching it is the second transaction.  Should that fail, the
	 * draft goes again: no half-made welcome is left behind. */
	if (db_begin(db, err) < 0)
		goto fail;
	if (issue_welcome_start(db, id, err) < 0 ||
	    db_run2(db, "UPDATE lists SET welcome_issue_id = ?2 WHERE id = ?1", l.id, id, NULL,
	            "attach welcome mail", err) < 0) {
		db_rollback(db);
		goto fail;
	}
	if (db_commit(db, err) < 0)
		goto fail;
	*issue_id = id;
	return 0;
fail:
	issue_remove(db, id, 1, NULL);
	return -1;
}

int
welcome_clear(sqlite3 *db, const char *list_name, struct herr *err)
{
	struct list l;

	if (list_get(db, list_name, &l, err) < 0)
		return -1;
	return db_run2(db, "UPDATE lists SET welcome_issue_id = NULL WHERE id = ?1", l.id, 0,
	               NULL, "detach welcome mail", err);
}

int
welcome_enqueue(sqlite3 *db, long long list_id, long long subscriber_id, int *queued,
                struct herr *err)
{
	sqlite3_stmt *st;
	long long issue_id = 0;
	int rc, added = 0, cancelled = 0;

	if (queued)
		*queued = 0;
	/* (4): the list's welcome issue, if it has one that may still go */
	if (db_prepare(db, &st, "SELECT i.id, i.status = 'cancelled' FROM lists l JOIN issues i "
	               "ON i.id = l.welcome_issue_id AND i.kind = 'welcome' WHERE l.id = ?1",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		issue_id = sqlite3_column_int64(st, 0);
		cancelled = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find welcome mail");
	if (!issue_id || cancelled)
		return 0;
	/* (3): the promise first; a row already there means it was kept */
	if (db_prepare(db, &st, "INSERT INTO welcomes (list_id, subscriber_id, issue_id, "
	               "created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, issue_id);
	sqlite3_bind_int64(st, 4, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record welcome");
	if (sqlite3_changes(db) == 0)
		return 0;
	if (ledger_add(db, issue_id, subscriber_id, &added, err) < 0 ||
	    issue_welcome_reopen(db, issue_id, err) < 0)
		return -1;
	if (queued)
		*queued = added;
	return 0;
}

int
welcome_get(sqlite3 *db, long long list_id, struct welcome_info *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st, "SELECT i.id, i.subject, i.status FROM lists l JOIN issues i "
	               "ON i.id = l.welcome_issue_id WHERE l.id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->issue_id = sqlite3_column_int64(st, 0);
		snprintf(out->subject, sizeof out->subject, "%s",
		         (const char *)sqlite3_column_text(st, 1));
		snprintf(out->status, sizeof out->status, "%s",
		         (const char *)sqlite3_column_text(st, 2));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read welcome mail");
	if (out->issue_id && ledger_counts(db, out->issue_id, &out->counts, err) < 0)
		return -1;
	return 0;
}

int
welcome_next_due(sqlite3 *db, long long after_id, long long now, long long *id,
                 struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	/* rows left `sending` by a process that died are due too: the send
	 * recovers them (ledger.h (5)).  Sequence steps share the kind but
	 * not this path: `herald run` sends them, taking turns with the
	 * campaigns (sequence.h (6)), and serve draining a backlog would hold
	 * the send lock against run. */
	if (db_prepare(db, &st,
	               "SELECT i.id FROM issues i WHERE i.id > ?1 AND i.kind = 'welcome' AND "
	               "i.status = 'sending' AND NOT EXISTS (SELECT 1 FROM sequence_steps t "
	               "WHERE t.issue_id = i.id) AND EXISTS (SELECT 1 FROM deliveries d WHERE "
	               "d.issue_id = i.id AND (d.status IN ('pending', 'sending') OR "
	               "(d.status = 'deferred' AND d.next_attempt_at <= ?2))) "
	               "ORDER BY i.id LIMIT 1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find due welcome mail");
	return 0;
}

int
welcome_send_due(sqlite3 *db, const struct config *cfg, volatile sig_atomic_t *stop,
                 struct welcome_run *rep, struct herr *err)
{
	struct herald_lock lock;
	struct sendjob_opts so;
	struct sendjob_report srep;
	struct ledger_counts before;
	struct herr lerr;
	long long id = 0;
	int ret = 0;

	memset(rep, 0, sizeof *rep);
	if (welcome_next_due(db, 0, db_now(), &id, err) < 0)
		return -1;
	if (!id)
		return 0;
	/* one sender at a time (lock.h): ledger_recover() in a second one
	 * would take the first one's in-flight rows for dead */
	herr_clear(&lerr);
	if (lock_acquire(cfg->db_path, &lock, &lerr) < 0) {
		if (lerr.code == EX_TEMPFAIL) {
			rep->busy = 1;
			return 0;
		}
		*err = lerr;
		return -1;
	}
	memset(&so, 0, sizeof so);
	so.stop = stop;
	for (id = 0; !(stop && *stop);) {
		if ((ret = welcome_next_due(db, id, db_now(), &id, err)) < 0 || !id)
			break;
		so.issue_id = id;
		if ((ret = ledger_counts(db, id, &before, err)) < 0)
			break;
		if ((ret = sendjob_run(db, cfg, &so, &srep, err)) < 0) {
			/* paused or cancelled since we looked: the next one */
			if (err->code == EX_DATAERR) {
				herr_clear(err);
				ret = 0;
				continue;
			}
			break;
		}
		rep->issues++;
		rep->attempted += srep.attempted;
		rep->sent += srep.counts.sent - before.sent;
		rep->end = srep.end;
		if (srep.end != SENDJOB_DRAINED)
			break; /* stopped, or the relays' windows are full */
	}
	lock_release(&lock);
	return ret;
}
