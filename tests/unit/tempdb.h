/*
 * tempdb.h - a fresh herald database in /tmp for one unit test, and its
 * removal (with SQLite's -wal and -shm files).  Header-only: the unit tests
 * are separate programs, each including it once.
 */
#ifndef HERALD_TEST_TEMPDB_H
#define HERALD_TEST_TEMPDB_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "herald/db.h"

#define TEMPDB_PATH_MAX 64

/* Create and migrate /tmp/herald-TAG-XXXXXX; its name goes to `path`. */
static int
tempdb_open(char path[TEMPDB_PATH_MAX], const char *tag, sqlite3 **db)
{
	struct herr err;
	int fd;

	snprintf(path, TEMPDB_PATH_MAX, "/tmp/herald-%s-XXXXXX", tag);
	if ((fd = mkstemp(path)) < 0)
		return -1;
	close(fd);
	unlink(path); /* db_open creates it, as `herald init` would */
	return db_open(path, DB_OPEN_CREATE, 1000, db, &err);
}

static void
tempdb_remove(const char *path, sqlite3 *db)
{
	char p[TEMPDB_PATH_MAX + 8];

	db_close(db);
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

#endif
