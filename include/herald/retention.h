/*
 * retention.h - removing rows older than [retention] allows, without
 * losing the figures stats needs and without holding the write lock long.
 *
 * What goes (each only when its key is set; all off by default):
 *   events      open, click and other events whose `at` is older than
 *               [retention] events, except those of an issue still being
 *               sent (a campaign sending or paused, a welcome mail while
 *               it has rows to send);
 *   deliveries  ledger rows in a final state (sent, bounced, failed,
 *               skipped) of a sent or cancelled issue, older than
 *               [retention] deliveries by sent_at (else updated_at);
 *   inbound     read returned mail (`herald bounce`) older than [retention]
 *               inbound by received_at; its bounces rows stay, their
 *               inbound_id becoming NULL.
 *
 * Invariants:
 *   (1) an issue's stats never change because of retention: before the
 *       first of its events or deliveries goes, its figures are kept
 *       (report_freeze(), report.h) in the same kind of short write
 *       transaction as a batch, and rows of an issue are removed only once
 *       its figures are kept;
 *   (2) no transaction removes more than `batch` rows (RETENTION_BATCH by
 *       default), each is its own BEGIN IMMEDIATE ... COMMIT, and the
 *       longest is measured and reported, so a send or the web server's
 *       event writer waits at most one batch (their busy timeout is
 *       seconds; a batch of 5,000 events takes milliseconds);
 *   (3) a stop request or the deadline is honoured between batches: what
 *       is left goes at the next run;
 *   (4) a list's current welcome mail (welcome.h) keeps all its rows:
 *       it is `sent` between two new subscribers but goes on sending, so
 *       kept figures would stop counting the people it greets later, and
 *       its counts are not additive per removed row (unique opens).  Once
 *       the list has another welcome or none, it is an issue like the
 *       others and its old rows go.  docs/privacy.md says so.  A sequence's
 *       step (sequence.h) is kept the same way while its sequence exists.
 * Called by `herald run` after its sends (src/cmd/run.c).
 */
#ifndef HERALD_RETENTION_H
#define HERALD_RETENTION_H

#include <signal.h>
#include <sqlite3.h>

#include "herald/config.h"
#include "herald/herr.h"

#define RETENTION_BATCH 5000

struct retention_policy {
	long long events, deliveries, inbound; /* seconds kept; 0: for ever */
	long      batch;                       /* rows per transaction; 0: RETENTION_BATCH */
	volatile sig_atomic_t *stop;           /* may be NULL; (3) */
	double    deadline;                    /* db_now_f() to stop at; 0: none */
};

struct retention_report {
	long long events, deliveries, inbound; /* rows removed */
	long long kept;          /* issues whose figures were kept this time */
	long long batches;       /* write transactions */
	double    longest_ms;    /* the longest of them, figures kept included */
	int       stopped;       /* (3): stopped before everything was done */
};

/* The policy of the config's [retention] section. */
void retention_policy_from(const struct config *cfg, struct retention_policy *p);

/* 1 when `p` removes anything at all. */
int retention_enabled(const struct retention_policy *p);

/*
 * Remove what `p` says is too old as of `now`, in batches (invariants
 * above); *rep says what was done, also after a failure (what was
 * committed stays).  Returns 0, or -1 with err set (EX_TEMPFAIL when the
 * database stayed busy past its timeout).
 */
int retention_run(sqlite3 *db, const struct retention_policy *p, long long now,
                  struct retention_report *rep, struct herr *err);

#endif
