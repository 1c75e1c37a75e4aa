/*
 * relayuse.h - the relay_usage table: when each relay was handed a message.
 *
 * One row per message handed to a relay (a campaign's send loop, a
 * confirmation, a test copy), so that each relay's sliding windows
 * (max_per_hour, max_per_day, ratelimit.h) hold across processes and
 * runs: a cron run at 10:05 knows what the 09:30 run and `herald serve`
 * sent.  Rows older than the longest window (a day) are pruned.  This
 * module is the only one that reads or writes the table.
 */
#ifndef HERALD_RELAYUSE_H
#define HERALD_RELAYUSE_H

#include <sqlite3.h>

#include "herald/herr.h"
#include "herald/ratelimit.h"

/* A prepared INSERT for a connection that records many (the send loop). */
struct relayuse;

int relayuse_open(sqlite3 *db, struct relayuse **out, struct herr *err);
void relayuse_close(struct relayuse *u);

/* `relay` (its config name) was handed a message at `at` (db_now_f()
 * seconds).  Inside whatever transaction the connection has open. */
int relayuse_record(struct relayuse *u, const char *relay, double at, struct herr *err);

/* The same on `db` without a prepared statement, for single messages. */
int relayuse_record_once(sqlite3 *db, const char *relay, double at, struct herr *err);

/* Forget what is older than a day before `now`. */
int relayuse_prune(sqlite3 *db, double now, struct herr *err);

/* Feed the relay's hand-overs after `since`, oldest first, to `rl`
 * (ratelimit_history()), so a new run starts with its windows filled. */
int relayuse_history(sqlite3 *db, const char *relay, double since, struct ratelimit *rl,
                     struct herr *err);

/* How many hand-overs the relay had after `since`. */
int relayuse_count(sqlite3 *db, const char *relay, double since, long *n, struct herr *err);

#endif
