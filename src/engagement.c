/*
 * engagement.c - a subscriber's last human open, last click and last issue
 * sent, and who the sunset rule calls unengaged (see engagement.h).
 *
 * Reads events, deliveries, issues and subscribers; writes nothing.
 * Called by src/cmd/sub.c (`sub show`, `sub ls --unengaged`).  The rules
 * themselves are SQL text in engagement.h (ENGAGEMENT_SQL_ACT,
 * ENGAGEMENT_SQL_SUNSET) and report.h (REPORT_SQL_MACHINE_OPEN), shared with
 * segment.c and audience.c; this file only asks them.
 */
#include "herald/engagement.h"

#include <stdlib.h>
#include <string.h>

#include "herald/db.h"

/* The latest open that is not a machine open, and the latest click: by
 * events_by_subscriber, newest first. */
static const char last_open_sql[] =
	"SELECT e.at, ifnull(e.issue_id, 0) FROM events e WHERE e.subscriber_id = ?1 "
	"AND e.kind = 'open' AND NOT " REPORT_SQL_MACHINE_OPEN("e") " "
	"ORDER BY e.at DESC, e.id DESC LIMIT 1";

static const char last_click_sql[] =
	"SELECT e.at, ifnull(e.issue_id, 0) FROM events e WHERE e.subscriber_id = ?1 "
	"AND e.kind = 'click' ORDER BY e.at DESC, e.id DESC LIMIT 1";

/* The latest delivery the relay accepted (status sent, as `received SPAN`
 * counts them). */
static const char last_sent_sql[] =
	"SELECT d.sent_at, d.issue_id, i.subject FROM deliveries d JOIN issues i "
	"ON i.id = d.issue_id WHERE d.subscriber_id = ?1 AND d.status = 'sent' "
	"AND d.sent_at IS NOT NULL ORDER BY d.sent_at DESC, d.issue_id DESC LIMIT 1";

/* ?99 and ?100 as audience.c binds them, so the macro's text is the same */
static const char unengaged_one_sql[] =
	"SELECT count(*) FROM subscribers s WHERE s.id = ?1 AND "
	ENGAGEMENT_SQL_SUNSET("?99", "?100");

static const char unengaged_each_sql[] =
	"SELECT s.id, s.email, s.name, (SELECT min(sent_at) FROM deliveries x "
	"WHERE x.subscriber_id = s.id AND x.status = 'sent'), (SELECT max(sent_at) "
	"FROM deliveries x WHERE x.subscriber_id = s.id AND x.status = 'sent') "
	"FROM subscribers s WHERE s.status = 'active' AND "
	ENGAGEMENT_SQL_SUNSET("?99", "?100") " ORDER BY s.id";

/* Prepare `sql` with the subscriber as ?1 and the sunset's span as ?99,
 * ?100 when the statement has them. */
static int
prepare(sqlite3 *db, const char *sql, long long id, long long sunset_after, long long now,
        sqlite3_stmt **st, struct herr *err)
{
	if (db_prepare(db, st, sql, err) < 0)
		return -1;
	if (sqlite3_bind_parameter_index(*st, "?1"))
		sqlite3_bind_int64(*st, 1, id);
	if (sqlite3_bind_parameter_index(*st, "?99")) {
		sqlite3_bind_int64(*st, 99, now - sunset_after);
		sqlite3_bind_int64(*st, 100, now);
	}
	return 0;
}

/* The first row's two integers into *at and *issue (0 when no row). */
static int
last_of(sqlite3 *db, const char *sql, long long id, long long *at, long long *issue,
        struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*at = *issue = 0;
	if (prepare(db, sql, id, 0, 0, &st, err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*at = sqlite3_column_int64(st, 0);
		*issue = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read engagement");
	return 0;
}

int
engagement_get(sqlite3 *db, long long subscriber_id, long long sunset_after, long long now,
               struct engagement *out, struct herr *err)
{
	sqlite3_stmt *st;
	const char *subject;
	int rc;

	memset(out, 0, sizeof *out);
	if (last_of(db, last_open_sql, subscriber_id, &out->last_open_at, &out->last_open_issue,
	            err) < 0 ||
	    last_of(db, last_click_sql, subscriber_id, &out->last_click_at,
	            &out->last_click_issue, err) < 0)
		return -1;
	if (prepare(db, last_sent_sql, subscriber_id, 0, 0, &st, err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->last_sent_at = sqlite3_column_int64(st, 0);
		out->last_sent_issue = sqlite3_column_int64(st, 1);
		subject = (const char *)sqlite3_column_text(st, 2);
		if (!subject || !(out->last_sent_subject = strdup(subject))) {
			sqlite3_finalize(st);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read the last delivery");
	if (sunset_after <= 0)
		return 0;
	if (prepare(db, unengaged_one_sql, subscriber_id, sunset_after, now, &st, err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		out->unengaged = sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "apply the sunset rule");
	return 0;
}

void
engagement_clear(struct engagement *e)
{
	free(e->last_sent_subject);
	memset(e, 0, sizeof *e);
}

int
engagement_each_unengaged(sqlite3 *db, long long sunset_after, long long now,
                          int (*fn)(void *ctx, const struct engagement_row *r), void *ctx,
                          struct herr *err)
{
	struct engagement_row r;
	sqlite3_stmt *st;
	int rc;

	if (sunset_after <= 0)
		return herr_set(err, EX_SOFTWARE, NULL, "no sunset span");
	if (prepare(db, unengaged_each_sql, 0, sunset_after, now, &st, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.id = sqlite3_column_int64(st, 0);
		r.email = (const char *)sqlite3_column_text(st, 1);
		r.name = (const char *)sqlite3_column_text(st, 2);
		r.first_sent_at = sqlite3_column_int64(st, 3);
		r.last_sent_at = sqlite3_column_int64(st, 4);
		if (!r.email || !r.name) {
			sqlite3_finalize(st);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		if (fn(ctx, &r) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list the unengaged");
	return 0;
}
