/*
 * ratelimit.c - pacing, sliding windows and throttling for one relay
 * (see ratelimit.h).
 */
#include "herald/ratelimit.h"

#include <stdlib.h>

#define THROTTLE_RECOVER_EVERY 5.0   /* seconds without a complaint */
#define THROTTLE_RECOVER_BY    1.25
#define THROTTLE_FLOOR         0.2   /* messages/s: never stop completely */
#define UNLIMITED_CEILING      100000.0

static int
window_init(struct ratelimit_window *w, long max, double span)
{
	w->max = max;
	w->span = span;
	w->head = w->count = 0;
	w->t = NULL;
	if (max > 0 && !(w->t = calloc((size_t)max, sizeof *w->t)))
		return -1;
	return 0;
}

static void
window_add(struct ratelimit_window *w, double t)
{
	if (w->max <= 0)
		return;
	if (w->count < (size_t)w->max) {
		w->t[(w->head + w->count) % (size_t)w->max] = t;
		w->count++;
	} else {
		w->t[w->head] = t;          /* overwrite the oldest */
		w->head = (w->head + 1) % (size_t)w->max;
	}
}

/* Until when the window is full: a start at `now` is allowed when fewer
 * than max starts lie in (now - span, now]. */
static double
window_delay(const struct ratelimit_window *w, double now)
{
	double oldest;

	if (w->max <= 0 || w->count < (size_t)w->max)
		return 0;
	oldest = w->t[w->head];
	return oldest + w->span > now ? oldest + w->span - now : 0;
}

int
ratelimit_init(struct ratelimit *rl, double rate, long per_hour, long per_day)
{
	rl->rate = rate > 0 ? rate : 0;
	rl->throttled = 0;
	rl->next_at = 0;
	rl->last_change = 0;
	rl->recent_head = rl->recent_count = 0;
	if (window_init(&rl->hour, per_hour, RATELIMIT_HOUR) < 0 ||
	    window_init(&rl->day, per_day, RATELIMIT_DAY) < 0) {
		ratelimit_free(rl);
		return -1;
	}
	return 0;
}

void
ratelimit_free(struct ratelimit *rl)
{
	free(rl->hour.t);
	free(rl->day.t);
	rl->hour.t = rl->day.t = NULL;
}

void
ratelimit_history(struct ratelimit *rl, double t)
{
	window_add(&rl->hour, t);
	window_add(&rl->day, t);
}

double
ratelimit_current(const struct ratelimit *rl)
{
	return rl->throttled > 0 ? rl->throttled : rl->rate;
}

double
ratelimit_delay(const struct ratelimit *rl, double now)
{
	double d = 0, w;

	if (ratelimit_current(rl) > 0 && rl->next_at > now)
		d = rl->next_at - now;
	if ((w = window_delay(&rl->hour, now)) > d)
		d = w;
	if ((w = window_delay(&rl->day, now)) > d)
		d = w;
	return d;
}

static void
recover(struct ratelimit *rl, double now)
{
	double ceiling = rl->rate > 0 ? rl->rate : UNLIMITED_CEILING;

	while (rl->throttled > 0 && now - rl->last_change >= THROTTLE_RECOVER_EVERY) {
		rl->throttled *= THROTTLE_RECOVER_BY;
		rl->last_change += THROTTLE_RECOVER_EVERY;
		if (rl->throttled >= ceiling)
			rl->throttled = 0;
	}
}

void
ratelimit_take(struct ratelimit *rl, double now)
{
	double r;

	recover(rl, now);
	r = ratelimit_current(rl);
	if (r > 0) {
		/* Pace from the later of the schedule and now: idle time is not
		 * saved up as a burst. */
		rl->next_at = (rl->next_at > now ? rl->next_at : now) + 1.0 / r;
	}
	window_add(&rl->hour, now);
	window_add(&rl->day, now);
	rl->recent[(rl->recent_head + rl->recent_count) % 32] = now;
	if (rl->recent_count < 32)
		rl->recent_count++;
	else
		rl->recent_head = (rl->recent_head + 1) % 32;
}

void
ratelimit_throttle(struct ratelimit *rl, double now)
{
	double reached = ratelimit_current(rl), first, span;

	/* Without a configured rate, the rate to halve is the one reached:
	 * measured over the recent starts. */
	if (reached <= 0) {
		reached = UNLIMITED_CEILING;
		if (rl->recent_count >= 2) {
			first = rl->recent[rl->recent_head];
			span = now - first;
			if (span > 0)
				reached = (double)(rl->recent_count - 1) / span;
		}
	}
	/* Several complaints from the same burst count once per second. */
	if (rl->throttled > 0 && now - rl->last_change < 1.0)
		return;
	rl->throttled = reached / 2 > THROTTLE_FLOOR ? reached / 2 : THROTTLE_FLOOR;
	rl->last_change = now;
	if (rl->next_at < now + 1.0 / rl->throttled)
		rl->next_at = now + 1.0 / rl->throttled;
}
