/*
 * buildpool.c - message-building threads (see buildpool.h).
 *
 * Two queues under one mutex: `todo` (main -> workers) and `done`
 * (workers -> main).  A job is touched by exactly one thread at a time: the
 * main thread until submit, one worker until it is on `done`, the main
 * thread again after collect.
 */
#include "herald/buildpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct buildpool {
	const struct message_ctx *ctx;
	int               n_threads;
	pthread_t        *threads;
	pthread_mutex_t   mu;
	pthread_cond_t    work;      /* todo became non-empty, or stopping */
	pthread_cond_t    finished;  /* done became non-empty */
	struct build_job *todo_head, *todo_tail;
	struct build_job *done_head, *done_tail;
	int               pending;   /* submitted, not collected */
	int               stopping;
	void            (*notify)(void *ctx);
	void             *notify_ctx;
};

static void
build(const struct message_ctx *ctx, struct build_job *job)
{
	struct message_recipient r = { job->row.subscriber_id, job->row.email, job->row.name,
	                               job->row.attributes, 0, job->row.variant,
	                               job->row.lists };

	herr_clear(&job->err);
	job->failed = message_build(ctx, &r, MESSAGE_ISSUE, job->now, &job->msg, &job->mo,
	                            &job->err) < 0;
}

static void
push(struct build_job **head, struct build_job **tail, struct build_job *job)
{
	job->next = NULL;
	if (*tail)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
}

static void *
worker(void *arg)
{
	struct buildpool *p = arg;
	struct build_job *job;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->todo_head && !p->stopping)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->todo_head)
			break; /* stopping and nothing left */
		job = p->todo_head;
		p->todo_head = job->next;
		if (!p->todo_head)
			p->todo_tail = NULL;
		pthread_mutex_unlock(&p->mu);
		build(p->ctx, job);
		pthread_mutex_lock(&p->mu);
		/* one wake-up for the main thread per batch it collects: it
		 * takes the whole list (buildpool_collect()), so a job added to
		 * a list it has not taken yet needs no new notification */
		if (!p->done_head) {
			pthread_cond_signal(&p->finished);
			if (p->notify)
				p->notify(p->notify_ctx);
		}
		push(&p->done_head, &p->done_tail, job);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
buildpool_new(int threads, const struct message_ctx *ctx, void (*notify)(void *ctx),
              void *notify_ctx, struct buildpool **out, struct herr *err)
{
	struct buildpool *p = calloc(1, sizeof *p);
	int i;

	*out = NULL;
	if (!p)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	p->ctx = ctx;
	p->notify = notify;
	p->notify_ctx = notify_ctx;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->finished, NULL);
	if (threads > 0 && !(p->threads = calloc((size_t)threads, sizeof *p->threads))) {
		buildpool_free(p);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	for (i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
			buildpool_free(p);
			return herr_set(err, EX_OSERR, NULL, "cannot start worker threads");
		}
		p->n_threads++;
	}
	*out = p;
	return 0;
}

void
buildpool_free(struct buildpool *p)
{
	int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->finished);
	free(p);
}

void
buildpool_submit(struct buildpool *p, struct build_job *job)
{
	if (!p->n_threads) {
		build(p->ctx, job);
		push(&p->done_head, &p->done_tail, job);
		p->pending++;
		return;
	}
	pthread_mutex_lock(&p->mu);
	push(&p->todo_head, &p->todo_tail, job);
	p->pending++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
}

struct build_job *
buildpool_collect(struct buildpool *p, int wait)
{
	struct build_job *list, *j;

	pthread_mutex_lock(&p->mu);
	while (wait && !p->done_head && p->pending > 0 && p->n_threads)
		pthread_cond_wait(&p->finished, &p->mu);
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	for (j = list; j; j = j->next)
		p->pending--;
	pthread_mutex_unlock(&p->mu);
	return list;
}

int
buildpool_pending(const struct buildpool *p)
{
	return p->pending;
}
