/*
 * dbstats.h - how big the database is, table by table, and how old the
 * oldest row of each time-stamped table: what `herald db stats` prints,
 * so an admin can see what [retention] (retention.h) removes and what it
 * leaves.
 */
#ifndef HERALD_DBSTATS_H
#define HERALD_DBSTATS_H

#include <sqlite3.h>

#include "herald/herr.h"

struct dbstats_table {
	char      name[64];
	long long rows;
	long long bytes;      /* the table's pages and its indexes' (dbstat);
	                         -1 when SQLite has no dbstat table */
	char      oldest_col[32]; /* the time column read; "" for a table without one */
	long long oldest;     /* its smallest value; 0 when the table is empty */
};

struct dbstats {
	struct dbstats_table *t;  /* owned; n of them, by name */
	size_t    n;
	int       have_dbstat;    /* bytes per table are known */
	long long page_size, page_count, freelist; /* the whole file */
};

/* Fill *out (release with dbstats_clear(), also after a failure).  Reads
 * only, in one read transaction.  Counting rows reads every table once:
 * seconds on a large database, and the web server goes on meanwhile. */
int dbstats_compute(sqlite3 *db, struct dbstats *out, struct herr *err);
void dbstats_clear(struct dbstats *s);

#endif
