/*
 * dbstats.c - table sizes and oldest rows (see dbstats.h).
 *
 * Owns nothing: it reads sqlite_schema, every table's count, the dbstat
 * virtual table when Debian's SQLite has it (SQLITE_ENABLE_DBSTAT_VTAB;
 * else only the file's page count is known), and the time column of the
 * tables listed in time_cols[] below.  Table names come from
 * sqlite_schema, never from the user, and are quoted as identifiers.
 */
#include "herald/dbstats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"

/* The time column of each time-stamped table; a table not here has none
 * (or none worth showing).  deliveries: when the row was made. */
static const struct {
	const char *table, *col;
} time_cols[] = {
	{ "bounces", "at" },
	{ "consent_log", "at" },
	{ "deliveries", "created_at" },
	{ "erasures", "at" },
	{ "events", "at" },
	{ "inbound", "received_at" },
	{ "issue_figures", "frozen_at" },
	{ "issues", "created_at" },
	{ "leave_answers", "answered_at" },
	{ "relay_usage", "at" },
	{ "subscribers", "created_at" },
	{ "suppressions", "created_at" },
};

static const char *
time_col(const char *table)
{
	size_t i;

	for (i = 0; i < sizeof time_cols / sizeof time_cols[0]; i++)
		if (!strcmp(time_cols[i].table, table))
			return time_cols[i].col;
	return NULL;
}

static int
one_int(sqlite3 *db, const char *sql, const char *text, long long *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read database statistics");
	return 0;
}

static int
tables(sqlite3 *db, struct dbstats *s, struct herr *err)
{
	sqlite3_stmt *st;
	struct dbstats_table *t;
	size_t cap = 0;
	int rc;

	if (db_prepare(db, &st, "SELECT name FROM sqlite_schema WHERE type = 'table' "
	               "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s->n == cap) {
			cap = cap ? cap * 2 : 32;
			if (!(t = realloc(s->t, cap * sizeof *t))) {
				sqlite3_finalize(st);
				return herr_set(err, EX_OSERR, NULL, "out of memory");
			}
			s->t = t;
		}
		t = &s->t[s->n++];
		memset(t, 0, sizeof *t);
		snprintf(t->name, sizeof t->name, "%s", (const char *)sqlite3_column_text(st, 0));
		t->bytes = -1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list tables");
	return 0;
}

static int
compute(sqlite3 *db, struct dbstats *s, struct herr *err)
{
	sqlite3_stmt *st;
	char sql[256];
	const char *col;
	size_t i;

	if (tables(db, s, err) < 0 ||
	    one_int(db, "PRAGMA page_size", NULL, &s->page_size, err) < 0 ||
	    one_int(db, "PRAGMA page_count", NULL, &s->page_count, err) < 0 ||
	    one_int(db, "PRAGMA freelist_count", NULL, &s->freelist, err) < 0)
		return -1;
	/* a table's bytes: its own b-tree and its indexes' */
	s->have_dbstat = sqlite3_prepare_v2(db, "SELECT sum(d.pgsize) FROM dbstat d "
	                                    "JOIN sqlite_schema m ON m.name = d.name "
	                                    "WHERE m.tbl_name = ?1", -1, &st, NULL) == SQLITE_OK;
	for (i = 0; i < s->n; i++) {
		struct dbstats_table *t = &s->t[i];

		/* the name is sqlite_schema's own: quoted, never the user's */
		snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
		if (strchr(t->name, '"') || one_int(db, sql, NULL, &t->rows, err) < 0)
			goto fail;
		if ((col = time_col(t->name))) {
			snprintf(t->oldest_col, sizeof t->oldest_col, "%s", col);
			snprintf(sql, sizeof sql, "SELECT min(\"%s\") FROM \"%s\"", col, t->name);
			if (one_int(db, sql, NULL, &t->oldest, err) < 0)
				goto fail;
		}
		if (s->have_dbstat) {
			sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				t->bytes = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
		}
	}
	if (s->have_dbstat)
		sqlite3_finalize(st);
	return 0;
fail:
	if (s->have_dbstat)
		sqlite3_finalize(st);
	if (!err->code)
		herr_set(err, EX_SOFTWARE, NULL, "table '%s' cannot be counted", s->t[i].name);
	return -1;
}

int
dbstats_compute(sqlite3 *db, struct dbstats *s, struct herr *err)
{
	int own_txn = sqlite3_get_autocommit(db), rc;

	memset(s, 0, sizeof *s);
	if (own_txn && db_exec(db, "BEGIN", err) < 0)
		return -1;
	rc = compute(db, s, err);
	if (own_txn)
		db_rollback(db);
	return rc;
}

void
dbstats_clear(struct dbstats *s)
{
	free(s->t);
	memset(s, 0, sizeof *s);
}
