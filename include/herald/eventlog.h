/*
 * eventlog.h - recording what subscribers do (opens, clicks, ...) without
 * a disk write per hit.
 *
 * The web server sees thousands of pixel fetches a second; one SQLite
 * transaction each would mean one WAL append (and with synchronous=FULL one
 * fsync) per hit.  Instead, request threads append events to a bounded
 * in-memory queue, and one writer thread with its own connection inserts
 * whatever is queued in one transaction, every EVENTLOG_FLUSH_MS or when
 * EVENTLOG_BATCH events are waiting.  eventlog_close() flushes everything
 * before returning, so a graceful stop loses nothing; a crash loses at most
 * the last fraction of a second of opens and clicks, never a state change
 * (unsubscribes are written directly, not through this queue).
 *
 * Those direct writes come here too: eventlog_record() writes one event at
 * once, inside the caller's transaction (an unsubscribe, a confirmation, a
 * bounce), with the same INSERT as the writer thread, so the events table
 * has one writer module.
 */
#ifndef HERALD_EVENTLOG_H
#define HERALD_EVENTLOG_H

#include <sqlite3.h>

#include "herald/herr.h"

#define EVENTLOG_FLUSH_MS  100
#define EVENTLOG_BATCH     2000
#define EVENTLOG_QUEUE_MAX 200000  /* events waiting before adders block */

struct event {
	const char *kind;           /* "open", "click", ... (the events.kind CHECK) */
	long long   issue_id;       /* 0: NULL */
	long long   subscriber_id;  /* 0: NULL */
	long long   list_id;        /* 0: NULL */
	double      at;             /* Unix time; 0: now */
	const char *detail;         /* JSON object text, or NULL for "{}" */
};

/* Write `e` now on `db`, inside whatever transaction is open. */
int eventlog_record(sqlite3 *db, const struct event *e, struct herr *err);
/* The same for an event whose detail is {"source": SOURCE}. */
int eventlog_record_source(sqlite3 *db, const char *kind, long long issue_id,
                           long long subscriber_id, long long list_id, const char *source,
                           struct herr *err);

struct eventlog;

/* Open a writer on the database at `path` and start its thread. */
int eventlog_open(const char *path, long busy_timeout_ms, struct eventlog **out,
                  struct herr *err);
/* Queue one event (copied).  Blocks only when EVENTLOG_QUEUE_MAX events are
 * already waiting, i.e. when the database cannot keep up: never drops. */
void eventlog_add(struct eventlog *l, const struct event *e);
/* Wait until everything added so far is committed. */
void eventlog_flush(struct eventlog *l);
/* Flush, stop the thread, close.  Returns 0, or -1 if a write failed (the
 * error is the first one met; the events of the failed batch are retried
 * until close, then reported as lost in the error). */
int eventlog_close(struct eventlog *l, struct herr *err);
/* Events committed so far. */
long long eventlog_written(const struct eventlog *l);

#endif
