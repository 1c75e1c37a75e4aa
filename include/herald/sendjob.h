/*
 * sendjob.h - sending one issue: who, in what order, how fast, and what to
 * do with each answer.  The ledger (ledger.h) keeps the state, smtp.h talks
 * to the relays, buildpool.h builds each copy on worker threads,
 * ratelimit.h paces each relay.
 */
#ifndef HERALD_SENDJOB_H
#define HERALD_SENDJOB_H

#include <signal.h>
#include <sqlite3.h>

#include "herald/config.h"
#include "herald/herr.h"
#include "herald/ledger.h"

struct sendjob_progress {
	long long issue_id;
	long long done, total;   /* rows finished in this run / due at its start */
	long long sent, deferred, bounced, failed;
	long      in_flight;
	double    elapsed;       /* seconds since this run started */
	double    rate;          /* messages finished per second, recent */
	int       final;         /* the last call of the run */
};

enum sendjob_end {
	SENDJOB_DRAINED,    /* nothing more was due */
	SENDJOB_STOPPED,    /* a signal asked us to stop */
	SENDJOB_DEADLINE,   /* --max-time reached */
	SENDJOB_PAUSED,     /* `issue pause` seen while sending */
	SENDJOB_CANCELLED,  /* `issue cancel` seen while sending */
	SENDJOB_FAILED,     /* the relays could not be used; see the error */
	SENDJOB_WINDOW,     /* the relays' max_per_hour/day windows are full */
	SENDJOB_SLICE,      /* opts->slice_end reached with rows left: the
	                       caller's turn to send something else (run.c) */
};

struct sendjob_opts {
	long long issue_id;
	/* Called a few times a second and once at the end; may be NULL. */
	void (*progress)(void *ctx, const struct sendjob_progress *p);
	void *ctx;
	/* Set (by a signal handler) to stop taking new recipients: the run
	 * finishes the messages in flight, records them and returns. */
	volatile sig_atomic_t *stop;
	double deadline;    /* db_now_f() time to stop by, 0 for none */
	/* db_now_f() time after which no new row is claimed, 0 for none: the
	 * run ends with SENDJOB_SLICE and the rest stays pending.  `herald
	 * run` gives campaigns and sequence steps turns this way (sequence.h
	 * (6)). */
	double slice_end;
	/* Notes that do not stop the send (issue_check_fields()); may be NULL. */
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
};

struct sendjob_report {
	long long recipients;   /* rows in the ledger */
	long long attempted;    /* messages the relays answered in this run */
	struct ledger_counts counts; /* after the run */
	long      connects;     /* SMTP connections opened in this run */
	double    elapsed;
	int       finished;     /* the issue is now `sent` (invariant (4)) */
	int       started;      /* this run made the snapshot */
	enum sendjob_end end;
	double    window_opens; /* SENDJOB_WINDOW: when a relay may send again */
};

/*
 * Send (or resume) issue `opts->issue_id` now.  A draft or scheduled issue
 * is snapshotted and moved to `sending`; an issue already `sending` resumes
 * (in-flight rows recovered first); deferred rows whose time has come are
 * retried.  Returns 0 when the run went through the ledger (see rep->end and
 * rep->counts), or -1: EX_DATAERR for an issue that cannot be sent (sent,
 * cancelled, paused, or a merge field no recipient has: issue_check_fields()
 * runs before the snapshot), EX_UNAVAILABLE when no relay could be used,
 * EX_CONFIG when a relay refused our login.  Rows not attempted stay
 * pending for the next run.  The caller holds the send lock (lock.h).
 */
int sendjob_run(sqlite3 *db, const struct config *cfg, const struct sendjob_opts *opts,
                struct sendjob_report *rep, struct herr *err);

/* Is this 4xx reply a relay asking us to slow down? (454 Throttling,
 * "421 too many messages", "451 rate limit exceeded", ...) */
int sendjob_is_throttle(int code, const char *reply);

#endif
