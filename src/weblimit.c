/*
 * weblimit.c - the sign-up rate limiter of herald serve (see web.h): per
 * key (a client address, a subscriber address), at most N hits in any
 * sliding span, exact (a ring of hit times per key), in memory, with a
 * bounded number of keys (full of active keys, it refuses rather than
 * forgets).  Thread-safe: one mutex.
 */
#include "herald/web.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Rate limiter                                                       */
/* ------------------------------------------------------------------ */

struct limit_entry {
	struct limit_entry *next;   /* hash chain */
	char   *key;
	double  last;               /* newest hit */
	size_t  head, count;        /* ring of the last max_hits hits */
	double  t[];
};

struct web_limiter {
	pthread_mutex_t      mu;
	size_t               max_hits, max_keys, n_keys, n_buckets;
	double               span;
	uint64_t             seed;  /* random, so keys cannot be chosen to collide */
	struct limit_entry **bucket;
};

static uint64_t
limit_hash(const struct web_limiter *l, const char *s)
{
	uint64_t h = 1469598103934665603ULL ^ l->seed;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

int
web_limiter_new(size_t max_hits, double span, size_t max_keys, struct web_limiter **out)
{
	struct web_limiter *l = calloc(1, sizeof *l);
	struct timespec ts;

	*out = NULL;
	if (!l || !max_hits)
		goto fail;
	l->max_hits = max_hits;
	l->span = span;
	l->max_keys = max_keys;
	for (l->n_buckets = 64; l->n_buckets < max_keys && l->n_buckets < (1u << 16);)
		l->n_buckets <<= 1;
	if (!(l->bucket = calloc(l->n_buckets, sizeof *l->bucket)))
		goto fail;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)l;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return 0;
fail:
	free(l);
	return -1;
}

void
web_limiter_free(struct web_limiter *l)
{
	struct limit_entry *e, *next;
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n_buckets; i++)
		for (e = l->bucket[i]; e; e = next) {
			next = e->next;
			free(e->key);
			free(e);
		}
	free(l->bucket);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* Forget every key with no hit inside the span. */
static void
limit_sweep(struct web_limiter *l, double now)
{
	struct limit_entry **pp, *e;
	size_t i;

	for (i = 0; i < l->n_buckets; i++)
		for (pp = &l->bucket[i]; (e = *pp);) {
			if (e->last <= now - l->span) {
				*pp = e->next;
				free(e->key);
				free(e);
				l->n_keys--;
			} else
				pp = &e->next;
		}
}

int
web_limiter_hit(struct web_limiter *l, const char *key, double now)
{
	struct limit_entry *e;
	size_t b;
	int ok = 0;

	pthread_mutex_lock(&l->mu);
	b = (size_t)(limit_hash(l, key) & (l->n_buckets - 1));
	for (e = l->bucket[b]; e && strcmp(e->key, key); e = e->next)
		;
	if (!e) {
		if (l->n_keys >= l->max_keys)
			limit_sweep(l, now);
		if (l->n_keys >= l->max_keys)
			goto out; /* full of active keys: refuse rather than forget */
		if (!(e = calloc(1, sizeof *e + l->max_hits * sizeof e->t[0])) ||
		    !(e->key = strdup(key))) {
			free(e);
			goto out;
		}
		e->next = l->bucket[b];
		l->bucket[b] = e;
		l->n_keys++;
	}
	while (e->count && e->t[e->head] <= now - l->span) {
		e->head = (e->head + 1) % l->max_hits;
		e->count--;
	}
	if (e->count < l->max_hits) {
		e->t[(e->head + e->count) % l->max_hits] = now;
		e->count++;
		e->last = now;
		ok = 1;
	}
out:
	pthread_mutex_unlock(&l->mu);
	return ok;
}

