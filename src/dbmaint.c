/*
 * dbmaint.c - backup, integrity check and VACUUM of the database (see
 * dbmaint.h).  Owns no table: it reads and copies pages.
 */
#include "herald/dbmaint.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "herald/db.h"

static double
monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fsync the directory holding `path`, so that a rename or link into it
 * survives a power cut as well as the file's own data does. */
static void
sync_dir_of(const char *path)
{
	char copy[4096];
	int fd;

	if (strlen(path) >= sizeof copy)
		return;
	strcpy(copy, path);
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY)) < 0)
		return;
	(void)fsync(fd);
	close(fd);
}

/* Copy every page of `src` into the (empty) database file `tmp`; verify. */
static int
copy_and_verify(sqlite3 *src, const char *tmp, struct db_backup_info *info, struct herr *err)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	sqlite3_stmt *st;
	const char *answer;
	int rc, tries = 0, ok;
	long long size;

	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		herr_set(err, EX_CANTCREAT, tmp, "cannot open the backup: %s",
		         dst ? sqlite3_errmsg(dst) : "out of memory");
		sqlite3_close(dst);
		return -1;
	}
	if (!(b = sqlite3_backup_init(dst, "main", src, "main"))) {
		db_error(dst, err, "start the backup");
		sqlite3_close(dst);
		return -1;
	}
	/* One step of all pages: one read transaction on the source, so the
	 * copy is one instant of it.  BUSY only while another connection
	 * holds an exclusive lock (a checkpoint truncating the WAL): wait. */
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		if (++tries > 300)
			break;
		sqlite3_sleep(100);
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		herr_set(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? EX_TEMPFAIL : EX_IOERR,
		         tmp, "backup failed: %s", sqlite3_errstr(rc));
		sqlite3_close(dst);
		return -1;
	}
	/* The pages carry the source's WAL flag; a backup is one file that
	 * opens anywhere, so turn it into a rollback-journal database. */
	if (db_exec(dst, "PRAGMA journal_mode = DELETE", err) < 0 ||
	    db_prepare(dst, &st, "PRAGMA integrity_check", err) < 0) {
		sqlite3_close(dst);
		return -1;
	}
	rc = sqlite3_step(st);
	answer = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	ok = answer && !strcmp(answer, "ok");
	if (!ok)
		herr_set(err, EX_SOFTWARE, tmp, "the copy failed its integrity check: %s",
		         answer ? answer : sqlite3_errmsg(dst));
	sqlite3_finalize(st);
	if (ok && (db_query_int(dst, "PRAGMA page_count", &info->pages, err) < 0 ||
	           db_query_int(dst, "PRAGMA page_size", &size, err) < 0))
		ok = 0;
	if (ok) {
		info->bytes = info->pages * size;
		info->schema = db_schema_version(dst);
	}
	if (sqlite3_close(dst) != SQLITE_OK && ok) {
		herr_set(err, EX_IOERR, tmp, "cannot close the backup");
		ok = 0;
	}
	return ok ? 0 : -1;
}

int
db_backup(sqlite3 *db, const char *dest, struct db_backup_info *info, struct herr *err)
{
	char tmp[4096];
	double t0 = monotonic();
	int fd;

	memset(info, 0, sizeof info[0]);
	if (snprintf(tmp, sizeof tmp, "%s.partial", dest) >= (int)sizeof tmp)
		return herr_set(err, EX_CANTCREAT, dest, "path too long");
	if (access(dest, F_OK) == 0)
		return herr_set(err, EX_CANTCREAT, dest,
		                "exists already; a backup never replaces a file, give a new name");
	/* O_EXCL: two backups to the same name do not write into one file;
	 * 0600 before SQLite opens it, which would make it 0644. */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return herr_set(err, EX_CANTCREAT, tmp, "cannot create: %s%s", strerror(errno),
		                errno == EEXIST ? " (another backup running, or a failed one's "
		                "leftover: remove it)" : "");
	close(fd);
	if (copy_and_verify(db, tmp, info, err) < 0) {
		unlink(tmp);
		return -1;
	}
	/* link() instead of rename(): it fails rather than replace a DEST
	 * that appeared meanwhile. */
	if (link(tmp, dest) < 0) {
		herr_set(err, EX_CANTCREAT, dest, "cannot name the backup: %s", strerror(errno));
		unlink(tmp);
		return -1;
	}
	unlink(tmp);
	sync_dir_of(dest);
	info->seconds = monotonic() - t0;
	return 0;
}

int
db_backup_default_name(const char *db_path, int schema, char *out, size_t size,
                       struct herr *err)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
	if ((size_t)snprintf(out, size, "%s.schema%d-%s.bak", db_path, schema, stamp) >= size)
		return herr_set(err, EX_SOFTWARE, db_path, "backup name too long");
	return 0;
}

static int
check_add(struct db_check_result *r, const char *line, struct herr *err)
{
	if (r->n_problems == DB_CHECK_MAX) {
		r->more = 1;
		return 0;
	}
	if (!(r->problems[r->n_problems] = strdup(line)))
		return herr_set(err, EX_SOFTWARE, NULL, "out of memory");
	r->n_problems++;
	return 0;
}

/* How one PRAGMA's loop of rows ended (`rc` its last sqlite3_step()):
 * 0 when it read them all; 1 when it stopped at a page too broken to walk,
 * which is a finding, not a failure to check (SQLite's words are added);
 * -1 with *err (and *out cleared) when it could not run. */
static int
pass_end(sqlite3 *db, struct db_check_result *out, int rc, const char *what,
         struct herr *err)
{
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) &&
	    check_add(out, sqlite3_errstr(rc), err) == 0)
		return 1;
	if (rc != SQLITE_ROW && rc != SQLITE_CORRUPT && rc != SQLITE_NOTADB)
		db_error(db, err, what);
	db_check_clear(out);
	return -1;
}

int
db_check(sqlite3 *db, int quick, struct db_check_result *out, struct herr *err)
{
	sqlite3_stmt *st;
	char line[512];
	const char *s;
	int rc;

	memset(out, 0, sizeof out[0]);
	if (db_prepare(db, &st, quick ? "PRAGMA quick_check(100)" : "PRAGMA integrity_check(100)",
	               err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		s = (const char *)sqlite3_column_text(st, 0);
		if (s && strcmp(s, "ok") && check_add(out, s, err) < 0)
			break;
	}
	sqlite3_finalize(st);
	if ((rc = pass_end(db, out, rc, "integrity check", err)) != 0)
		return rc < 0 ? -1 : 0;
	/* foreign_key_check: one row per child row pointing at nothing
	 * (table, rowid, parent table, which constraint). */
	if (db_prepare(db, &st, "PRAGMA foreign_key_check", err) < 0) {
		db_check_clear(out);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->fk_rows++;
		snprintf(line, sizeof line, "%s row %lld: foreign key to %s points at nothing",
		         (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
		         (const char *)sqlite3_column_text(st, 2));
		if (check_add(out, line, err) < 0)
			break;
	}
	sqlite3_finalize(st);
	return pass_end(db, out, rc, "foreign key check", err) < 0 ? -1 : 0;
}

void
db_check_clear(struct db_check_result *r)
{
	size_t i;

	for (i = 0; i < r->n_problems; i++)
		free(r->problems[i]);
	memset(r, 0, sizeof r[0]);
}

int
db_file_size(sqlite3 *db, const char *path, long long *db_bytes, long long *wal_bytes,
             struct herr *err)
{
	char wal[4096];
	struct stat sb;
	long long pages, size;

	if (db_query_int(db, "PRAGMA page_count", &pages, err) < 0 ||
	    db_query_int(db, "PRAGMA page_size", &size, err) < 0)
		return -1;
	*db_bytes = pages * size;
	*wal_bytes = 0;
	if (snprintf(wal, sizeof wal, "%s-wal", path) < (int)sizeof wal && stat(wal, &sb) == 0)
		*wal_bytes = (long long)sb.st_size;
	return 0;
}

int
db_vacuum(sqlite3 *db, struct herr *err)
{
	if (db_exec(db, "VACUUM", err) < 0)
		return -1;
	/* TRUNCATE: VACUUM wrote the whole file through the WAL; without it
	 * the WAL keeps that size on disk until the next checkpoint empties
	 * it, and even then keeps its length. */
	return db_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", err);
}
