/*
 * db.c - connection setup and schema migrations (see db.h).
 */
#include "herald/db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald/embedded.h"

int
db_schema_latest(void)
{
	const struct embedded_migration *m;
	int v = 0;

	for (m = embedded_migrations; m->name; m++)
		v = m->version;
	return v;
}

int
db_error(sqlite3 *db, struct herr *err, const char *what)
{
	int rc = sqlite3_errcode(db), code;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = EX_TEMPFAIL;
		break;
	case SQLITE_CONSTRAINT:
		code = EX_DATAERR;
		break;
	case SQLITE_FULL:
	case SQLITE_IOERR:
		code = EX_IOERR;
		break;
	case SQLITE_CANTOPEN:
		code = EX_CANTCREAT;
		break;
	case SQLITE_READONLY:
		code = EX_NOPERM;
		break;
	default:
		code = EX_SOFTWARE;
	}
	return herr_set(err, code, NULL, "%s: %s", what, sqlite3_errmsg(db));
}

int
db_prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql, struct herr *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_error(db, err, "prepare statement");
	}
	return 0;
}

int
db_prepare_cached(sqlite3 *db, sqlite3_stmt **cache, sqlite3_stmt **st, const char *sql,
                  struct herr *err)
{
	if (!cache)
		return db_prepare(db, st, sql, err);
	if (!*cache && db_prepare(db, cache, sql, err) < 0)
		return -1;
	*st = *cache;
	return 0;
}

void
db_stmt_done(sqlite3_stmt **cache, sqlite3_stmt *st)
{
	if (!cache) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int
db_pragma_swap(sqlite3 *db, const char *pragma, int value, int *was, struct herr *err)
{
	char sql[96];
	long long v;

	/* PRAGMA takes no bound parameters; pragma and value are ours */
	snprintf(sql, sizeof sql, "PRAGMA %s", pragma);
	if (db_query_int(db, sql, &v, err) < 0)
		return -1;
	*was = (int)v;
	snprintf(sql, sizeof sql, "PRAGMA %s = %d", pragma, value);
	return db_exec(db, sql, err);
}

int
db_cache_size(sqlite3 *db, const char *schema, int value, int *was, struct herr *err)
{
	char pragma[64];

	snprintf(pragma, sizeof pragma, "%s.cache_size", schema);
	return db_pragma_swap(db, pragma, value, was, err);
}

int
db_query_int(sqlite3 *db, const char *sql, long long *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, sql);
	return 0;
}

int
db_exec(sqlite3 *db, const char *sql, struct herr *err)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_error(db, err, sql);
	return 0;
}

int
db_begin(sqlite3 *db, struct herr *err)
{
	return db_exec(db, "BEGIN IMMEDIATE", err);
}

int
db_commit(sqlite3 *db, struct herr *err)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(db, err, "commit");
		db_rollback(db);
		return -1;
	}
	return 0;
}

void
db_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int
db_schema_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* A binary older than its database does not know the new columns' rules:
 * refused by every open and by db_migrate(). */
static int
schema_newer(const char *path, int have, int latest, struct herr *err)
{
	return herr_set(err, EX_CONFIG, path, "database schema %d is newer than this herald (%d); "
	                "upgrade herald", have, latest);
}

int
db_migrate(sqlite3 *db, const char *path, int *from, struct herr *err)
{
	const struct embedded_migration *m;
	char pragma[64];
	int have, latest = db_schema_latest();

	/* Read the version inside the write transaction: two `db migrate`
	 * started together must not both apply the same steps. */
	if (db_begin(db, err) < 0)
		return herr_wrap(err, "migrate %s", path);
	if ((have = db_schema_version(db)) < 0) {
		db_error(db, err, "read schema version");
		db_rollback(db);
		return -1;
	}
	*from = have;
	if (have > latest) {
		db_rollback(db);
		return schema_newer(path, have, latest, err);
	}
	for (m = embedded_migrations; m->name; m++) {
		if (m->version <= have)
			continue;
		if (sqlite3_exec(db, m->sql, NULL, NULL, NULL) != SQLITE_OK) {
			db_error(db, err, m->name);
			db_rollback(db);
			return -1;
		}
	}
	if (have < latest) {
		/* PRAGMA takes no bound parameters; the value is our own integer. */
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", latest);
		if (db_exec(db, pragma, err) < 0) {
			db_rollback(db);
			return -1;
		}
	}
	return db_commit(db, err);
}

/* The schema rule of db_open(): see enum db_open_mode. */
static int
check_schema(sqlite3 *db, const char *path, enum db_open_mode mode, struct herr *err)
{
	int have = db_schema_version(db), latest = db_schema_latest(), from;

	if (have < 0)
		return db_error(db, err, "read schema version");
	if (mode == DB_OPEN_MAINTAIN || have == latest)
		return 0;
	if (have > latest)
		return schema_newer(path, have, latest, err);
	/* A new, empty file (init): nothing to back up, nothing to lose. */
	if (mode == DB_OPEN_CREATE && have == 0)
		return db_migrate(db, path, &from, err);
	return herr_set(err, EX_CONFIG, path,
	                "database schema %d is older than this herald (%d): run "
	                "`herald db migrate` (a backup is made first)", have, latest);
}

int
db_open(const char *path, enum db_open_mode mode, long busy_timeout_ms,
        sqlite3 **out, struct herr *err)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	*out = NULL;
	if (mode != DB_OPEN_CREATE && access(path, F_OK) < 0)
		return herr_set(err, EX_NOINPUT, path,
		                "database does not exist; run 'herald init' first");
	if (mode == DB_OPEN_CREATE)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		herr_set(err, EX_CANTCREAT, path, "cannot open database: %s",
		         db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_extended_result_codes(db, 0);
	sqlite3_busy_timeout(db, (int)busy_timeout_ms);
	/* journal_mode=WAL answers with a row; sqlite3_exec discards it. */
	if (db_exec(db, "PRAGMA journal_mode = WAL", err) < 0 ||
	    db_exec(db, "PRAGMA foreign_keys = ON", err) < 0 ||
	    db_exec(db, "PRAGMA synchronous = NORMAL", err) < 0 ||
	    check_schema(db, path, mode, err) < 0) {
		sqlite3_close(db);
		return -1;
	}
	*out = db;
	return 0;
}

int
db_set_synchronous_full(sqlite3 *db, struct herr *err)
{
	return db_exec(db, "PRAGMA synchronous = FULL", err);
}

void
db_close(sqlite3 *db)
{
	sqlite3_stmt *st;

	if (!db)
		return;
	while ((st = sqlite3_next_stmt(db, NULL)))
		sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Set by the global --now option, which tests use to move the clock
 * (retry schedules, scheduled sends, rate windows).  It only shifts time:
 * the overridden clock still advances, so pacing keeps working. */
static double clock_offset;

void
db_set_now(long long t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	clock_offset = t ? (double)t - ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9) : 0;
}

double
db_now_f(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + clock_offset;
}

long long
db_now(void)
{
	return (long long)db_now_f();
}

int
db_run2(sqlite3 *db, const char *sql, long long a1, long long a2, long long *changes,
        const char *what, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, a1);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, a2);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	if (changes)
		*changes = sqlite3_changes(db);
	return 0;
}
