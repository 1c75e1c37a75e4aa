/*
 * dbmaint.h - looking after the database file: an online backup that is
 * checked before it is trusted, the integrity check, and VACUUM.  What
 * `herald db backup|check|vacuum` and `herald db migrate` (which backs up
 * first) call.
 *
 * The backup uses SQLite's backup API in one step: it reads the source in
 * one read transaction, which in WAL mode neither waits for nor blocks
 * `serve` and `run` writing meanwhile, so the copy is the database as it
 * was at one instant.  It is written beside the destination as
 * DEST.partial and only given its name once PRAGMA integrity_check on the
 * copy said "ok"; a half-written or unverified backup never carries the
 * name a restore would look for.
 */
#ifndef HERALD_DBMAINT_H
#define HERALD_DBMAINT_H

#include <sqlite3.h>

#include "herald/herr.h"

struct db_backup_info {
	long long bytes;  /* size of the copy */
	long long pages;
	int       schema; /* its PRAGMA user_version */
	double    seconds;
};

/*
 * Copy the open database `db` to `dest`, a new file (mode 0600: it holds
 * every subscriber's address).  The copy is a single file (rollback
 * journal, not WAL) that `sqlite3 dest` or herald opens as it is.
 * Returns 0, or -1: EX_CANTCREAT when dest exists or cannot be written,
 * EX_IOERR on a write error, EX_SOFTWARE when the copy fails its integrity
 * check (it is removed).
 */
int db_backup(sqlite3 *db, const char *dest, struct db_backup_info *info, struct herr *err);

/*
 * The name `herald db migrate` backs up to when given none:
 * "DBPATH.schemaN-YYYYMMDD-HHMMSS.bak" beside the database.  Returns 0, or
 * -1 (EX_SOFTWARE) when it does not fit in `size`.
 */
int db_backup_default_name(const char *db_path, int schema, char *out, size_t size,
                           struct herr *err);

/* What PRAGMA integrity_check (or quick_check) and foreign_key_check
 * found: problems[] are SQLite's own lines, at most DB_CHECK_MAX. */
#define DB_CHECK_MAX 100
struct db_check_result {
	char  *problems[DB_CHECK_MAX];
	size_t n_problems;
	int    more;         /* there were more than DB_CHECK_MAX */
	long long fk_rows;   /* rows whose foreign key points at nothing */
};

/* Run the checks; `quick` uses quick_check (no index against table
 * comparison: seconds instead of minutes on a large file).  Returns 0 with
 * the findings in *out (empty when all is well; free with
 * db_check_clear()), -1 when the checks could not run. */
int db_check(sqlite3 *db, int quick, struct db_check_result *out, struct herr *err);
void db_check_clear(struct db_check_result *r);

/* The file's bytes: the database pages (page_count × page_size) and the
 * WAL beside it (0 when there is none). */
int db_file_size(sqlite3 *db, const char *path, long long *db_bytes, long long *wal_bytes,
                 struct herr *err);

/* VACUUM, then a truncating checkpoint so that the WAL gives its space
 * back too.  Needs no other writer for its duration (it waits up to the
 * busy timeout for one to finish). */
int db_vacuum(sqlite3 *db, struct herr *err);

#endif
