/*
 * relayuse.c - the relay_usage table (see relayuse.h).  Every query is a
 * range of the relay_usage_by_time index (relay, at).
 */
#include "herald/relayuse.h"

#include <stdlib.h>

#include "herald/db.h"

struct relayuse {
	sqlite3      *db;
	sqlite3_stmt *insert;
};

#define RELAYUSE_INSERT "INSERT INTO relay_usage (relay, at) VALUES (?1, ?2)"

int
relayuse_open(sqlite3 *db, struct relayuse **out, struct herr *err)
{
	struct relayuse *u = calloc(1, sizeof *u);

	*out = NULL;
	if (!u)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	u->db = db;
	if (db_prepare(db, &u->insert, RELAYUSE_INSERT, err) < 0) {
		free(u);
		return -1;
	}
	*out = u;
	return 0;
}

void
relayuse_close(struct relayuse *u)
{
	if (!u)
		return;
	sqlite3_finalize(u->insert);
	free(u);
}

static int
insert(sqlite3 *db, sqlite3_stmt *st, const char *relay, double at, struct herr *err)
{
	int rc;

	sqlite3_bind_text(st, 1, relay, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, at);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record relay usage");
	return 0;
}

int
relayuse_record(struct relayuse *u, const char *relay, double at, struct herr *err)
{
	return insert(u->db, u->insert, relay, at, err);
}

int
relayuse_record_once(sqlite3 *db, const char *relay, double at, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, RELAYUSE_INSERT, err) < 0)
		return -1;
	rc = insert(db, st, relay, at, err);
	sqlite3_finalize(st);
	return rc;
}

int
relayuse_prune(sqlite3 *db, double now, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "DELETE FROM relay_usage WHERE at < ?1", err) < 0)
		return -1;
	sqlite3_bind_double(st, 1, now - RATELIMIT_DAY);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "prune relay usage");
	return 0;
}

int
relayuse_history(sqlite3 *db, const char *relay, double since, struct ratelimit *rl,
                 struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT at FROM relay_usage WHERE relay = ?1 AND at > ?2 "
	               "ORDER BY at", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, relay, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ratelimit_history(rl, sqlite3_column_double(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "read relay usage");
	return 0;
}

int
relayuse_count(sqlite3 *db, const char *relay, double since, long *n, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	if (db_prepare(db, &st, "SELECT count(*) FROM relay_usage WHERE relay = ?1 AND at > ?2",
	               err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, relay, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, since);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "count relay usage");
	return 0;
}
