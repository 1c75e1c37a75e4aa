/*
 * sendjob.h - sending one issue to its list: who, in what order, and what
 * to do with each answer.  The ledger (ledger.h) keeps the state; smtp.h
 * talks to the relay; message.h builds each copy.
 */
#ifndef HERALD_SENDJOB_H
#define HERALD_SENDJOB_H

#include <sqlite3.h>

#include "herald/config.h"
#include "herald/herr.h"
#include "herald/ledger.h"

struct sendjob_progress {
	long long done, total;   /* rows finished (any final state) of the issue */
	long long sent, deferred, bounced, failed, skipped;
	double    elapsed;       /* seconds since this run started */
};

struct sendjob_opts {
	long long issue_id;
	/* Called after each recipient; may be NULL. */
	void (*progress)(void *ctx, const struct sendjob_progress *p);
	void *ctx;
};

struct sendjob_report {
	long long recipients;   /* rows in the ledger */
	long long attempted;    /* messages handed to the relay in this run */
	struct ledger_counts counts; /* after the run */
	long      connects;     /* SMTP connections opened in this run */
	double    elapsed;
	int       finished;     /* the issue is now `sent` (invariant (4)) */
	int       started;      /* this run made the snapshot */
};

/*
 * Send (or resume) issue `opts->issue_id` now.  A draft or scheduled issue
 * is snapshotted and moved to `sending`; an issue already `sending` resumes
 * (in-flight rows recovered first).  Deferred rows whose time has come are
 * retried.  Returns 0 when the run went through the ledger (some rows may be
 * deferred or bounced: see the report), or -1: EX_DATAERR for an issue that
 * cannot be sent (sent, cancelled, paused), EX_TEMPFAIL when the relay could
 * not be reached, EX_CONFIG / EX_UNAVAILABLE when it refused us as a whole.
 * Rows not attempted stay pending for the next run.
 */
int sendjob_run(sqlite3 *db, const struct config *cfg, const struct sendjob_opts *opts,
                struct sendjob_report *rep, struct herr *err);

#endif
