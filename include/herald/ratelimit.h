/*
 * ratelimit.h - the limits a relay imposes, as one object per relay.
 *
 *   pacing   `rate` messages per second, spread evenly: one start every
 *            1/rate seconds, never a burst (relays count per second);
 *   windows  at most `per_hour` starts in any 3600 s and `per_day` in any
 *            86400 s: a ring of the last N start times makes "never N+1 in a
 *            window" exact rather than approximate (a fixed hourly bucket
 *            would allow 2N across a boundary);
 *   throttle a relay that answers "454 Throttling" or "421 too many" is
 *            sent to at half the rate it was getting, and the rate recovers
 *            by a quarter every 5 s without complaint (AIMD, as TCP does).
 * Concurrency (connections) is the caller's: it owns the slots.
 *
 * Times are seconds as doubles on one clock chosen by the caller (herald
 * uses db_now_f(), so the windows also hold across runs and under --now).
 * No I/O, no allocation after init: tested with a fake clock.
 */
#ifndef HERALD_RATELIMIT_H
#define HERALD_RATELIMIT_H

#include <stddef.h>

#define RATELIMIT_HOUR 3600.0
#define RATELIMIT_DAY  86400.0

struct ratelimit_window {
	long    max;     /* 0: no window */
	double  span;    /* seconds */
	double *t;       /* ring of the last `max` start times */
	size_t  head;    /* index of the oldest */
	size_t  count;
};

struct ratelimit {
	double rate;            /* configured messages/s, 0 = none */
	double throttled;       /* current rate while throttled, 0 = not throttled */
	double next_at;         /* earliest time for the next start (pacing) */
	double last_change;     /* when `throttled` last changed */
	double recent[32];      /* recent start times, to measure the rate reached */
	size_t recent_head, recent_count;
	struct ratelimit_window hour, day;
};

/* Returns 0, or -1 when out of memory (a window of `per_day` doubles). */
int ratelimit_init(struct ratelimit *rl, double rate, long per_hour, long per_day);
void ratelimit_free(struct ratelimit *rl);

/* Feed a start that happened before (from the database), oldest first. */
void ratelimit_history(struct ratelimit *rl, double t);

/* Seconds until a start is allowed at `now`: 0 when allowed now. */
double ratelimit_delay(const struct ratelimit *rl, double now);

/* Record a start at `now` (call only when ratelimit_delay() said 0). */
void ratelimit_take(struct ratelimit *rl, double now);

/* The relay complained about our pace at `now`: halve the rate. */
void ratelimit_throttle(struct ratelimit *rl, double now);

/* The rate pacing currently allows (messages/s), 0 = unlimited. */
double ratelimit_current(const struct ratelimit *rl);

#endif
