/*
 * db.h - opening herald's SQLite database and keeping its schema current.
 *
 * Every connection is set up the same way: WAL journal (readers never block
 * the sender, the web server can record events during a send), foreign keys
 * on, a busy timeout so concurrent processes wait instead of failing, and
 * synchronous=NORMAL (in WAL mode a commit survives a process crash; only a
 * power cut can lose the last transactions, never corrupt the file).
 *
 * Migrations are the numbered files in sql/, compiled into the binary;
 * PRAGMA user_version records the last one applied.  They never run as a
 * side effect of opening: a new database gets the whole schema from
 * `herald init`, an existing one is upgraded only by `herald db migrate`,
 * which backs it up first (dbmaint.h) and applies every pending migration
 * in one transaction together with the user_version update, so a crash or
 * a failing step leaves the schema, and the data, as they were.  A binary
 * older than its database refuses it: it would not know the new columns'
 * rules.
 */
#ifndef HERALD_DB_H
#define HERALD_DB_H

#include <sqlite3.h>

#include "herald/herr.h"

enum db_open_mode {
	DB_OPEN_EXISTING, /* EX_NOINPUT when the file does not exist; the schema
	                     must be this binary's (older or newer: EX_CONFIG) */
	DB_OPEN_CREATE,   /* herald init: create a missing file and give a new,
	                     empty database the whole schema; an existing one is
	                     treated as with DB_OPEN_EXISTING */
	DB_OPEN_MAINTAIN, /* herald db backup|check|migrate: must exist, any
	                     schema version is opened as it is */
};

/*
 * Open `path` and configure the connection; see enum db_open_mode for the
 * schema.  Returns 0 with *out set, or -1 (*out NULL): EX_NOINPUT when
 * missing, EX_CONFIG when the schema is older ("run `herald db migrate`")
 * or newer than this binary, EX_TEMPFAIL when locked, EX_CANTCREAT /
 * EX_IOERR otherwise.
 */
int db_open(const char *path, enum db_open_mode mode, long busy_timeout_ms,
            sqlite3 **out, struct herr *err);
/* synchronous=FULL instead of NORMAL: every commit is also fsynced, which
 * survives a power cut at a cost in speed (measured in bench/send.sh). */
int db_set_synchronous_full(sqlite3 *db, struct herr *err);
void db_close(sqlite3 *db);

/* The schema version this binary migrates to (the highest sql/ number). */
int db_schema_latest(void);
/* The version of the open database, or -1. */
int db_schema_version(sqlite3 *db);
/*
 * Apply every migration newer than the database's version, all in one
 * transaction with the user_version update (BEGIN IMMEDIATE: it waits for
 * a running writer, up to the busy timeout).  *from gets the version found.
 * A database already current is left untouched.  EX_CONFIG when its schema
 * is newer than this binary's.  Callers back up first (dbmaint.h).
 */
int db_migrate(sqlite3 *db, const char *path, int *from, struct herr *err);

/* Map the connection's last error to an herr: SQLITE_BUSY/LOCKED become
 * EX_TEMPFAIL, CONSTRAINT EX_DATAERR, FULL/IOERR EX_IOERR, others
 * EX_SOFTWARE.  `what` says what was being done ("insert subscriber"). */
int db_error(sqlite3 *db, struct herr *err, const char *what);

int db_prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql, struct herr *err);

/*
 * A statement for a function that a loop calls once per row (an import's
 * consent record): with `cache` NULL it is prepared for this call; else it
 * is prepared into *cache the first time and taken from there after (the
 * loop's owner finalizes *cache).  db_stmt_done() finalizes the first kind
 * and resets and unbinds the second, so each call starts from no bindings.
 * Preparing costs more than a small INSERT: in a loop of a million rows it
 * was most of the work.
 */
int db_prepare_cached(sqlite3 *db, sqlite3_stmt **cache, sqlite3_stmt **st, const char *sql,
                      struct herr *err);
void db_stmt_done(sqlite3_stmt **cache, sqlite3_stmt *st);

/* PRAGMA `pragma` (our own constant taking an integer: "foreign_keys",
 * "threads", "main.cache_size"): set it to `value` and put the old one in
 * *was, for a caller that restores it afterwards. */
int db_pragma_swap(sqlite3 *db, const char *pragma, int value, int *was, struct herr *err);
/* PRAGMA `schema`.cache_size (schema "main" or "temp", our own constant):
 * set it to `value` (negative: KiB, as SQLite counts) and put the old one in
 * *was, for a caller that restores it after a bulk write. */
int db_cache_size(sqlite3 *db, const char *schema, int value, int *was, struct herr *err);
/* Run SQL without parameters that answers one row and read its first
 * column as an integer (PRAGMA page_count).  No row is an error. */
int db_query_int(sqlite3 *db, const char *sql, long long *out, struct herr *err);
/* Run SQL without results or parameters (BEGIN, COMMIT, pragmas). */
int db_exec(sqlite3 *db, const char *sql, struct herr *err);

/* Run one statement that returns no rows, binding ?1 = a1 and, when the
 * statement has it, ?2 = a2 (ids and times); *changes (may be NULL) gets
 * sqlite3_changes().  `what` names the work in an error. */
int db_run2(sqlite3 *db, const char *sql, long long a1, long long a2, long long *changes,
            const char *what, struct herr *err);

/* BEGIN IMMEDIATE: take the write lock up front so a transaction never
 * fails half-way with SQLITE_BUSY on its first write. */
int db_begin(sqlite3 *db, struct herr *err);
int db_commit(sqlite3 *db, struct herr *err);
/* Roll back if a transaction is open; never fails. */
void db_rollback(sqlite3 *db);

/* Unix time now, or as if it had been `t` when db_set_now(t) was called
 * (the global --now option, for tests and for replaying a schedule; the
 * clock keeps running from there); db_set_now(0) restores the real clock.
 * db_now_f() has fractions of a second. */
long long db_now(void);
double db_now_f(void);
void db_set_now(long long t);

#endif
