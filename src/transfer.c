/*
 * transfer.c - a thread per SMTP connection (see transfer.h for why).
 *
 * Each slot has a state guarded by the pool mutex:
 *
 *     IDLE --transfer_start()--> BUSY --thread done--> DONE --collect--> IDLE
 *
 * The thread waits on the slot's condition variable for BUSY, runs
 * smtp_send() without holding any lock, then links the slot into the pool's
 * done list and calls notify.
 */
#include "herald/transfer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum slot_state { SLOT_IDLE, SLOT_BUSY, SLOT_DONE };

struct transfer_slot {
	struct transfer_pool      *pool;
	const struct config_relay *relay;
	struct smtp_conn          *conn;
	pthread_t                  thread;
	int                        started;   /* the thread exists */
	pthread_cond_t             go;
	enum slot_state            state;
	/* the transfer */
	const char                *from, *rcpt, *msg;
	size_t                     len;
	void                      *user;
	struct smtp_result         result;
	struct transfer_slot      *next_done;
	struct transfer_slot      *next_all;
};

struct transfer_pool {
	pthread_mutex_t       mu;
	struct transfer_slot *all;
	struct transfer_slot *done_head, *done_tail;
	int                   stopping;
	void                (*notify)(void *ctx);
	void                 *ctx;
};

static void *
slot_thread(void *arg)
{
	struct transfer_slot *s = arg;
	struct transfer_pool *p = s->pool;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (s->state != SLOT_BUSY && !p->stopping)
			pthread_cond_wait(&s->go, &p->mu);
		if (s->state != SLOT_BUSY)
			break;
		pthread_mutex_unlock(&p->mu);
		smtp_send(s->conn, s->from, s->rcpt, s->msg, s->len, &s->result);
		pthread_mutex_lock(&p->mu);
		s->state = SLOT_DONE;
		s->next_done = NULL;
		if (p->done_tail)
			p->done_tail->next_done = s;
		else
			p->done_head = s;
		p->done_tail = s;
		if (p->notify)
			p->notify(p->ctx);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
transfer_pool_new(void (*notify)(void *ctx), void *ctx, struct transfer_pool **out,
                  struct herr *err)
{
	struct transfer_pool *p = calloc(1, sizeof *p);

	*out = NULL;
	if (!p)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	p->notify = notify;
	p->ctx = ctx;
	*out = p;
	return 0;
}

int
transfer_slot_new(struct transfer_pool *p, const struct config_relay *relay,
                  struct transfer_slot **out, struct herr *err)
{
	struct transfer_slot *s = calloc(1, sizeof *s);

	*out = NULL;
	if (!s)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	s->pool = p;
	s->relay = relay;
	pthread_cond_init(&s->go, NULL);
	if (smtp_conn_new(relay, &s->conn, err) < 0) {
		pthread_cond_destroy(&s->go);
		free(s);
		return -1;
	}
	s->next_all = p->all;
	p->all = s;
	if (pthread_create(&s->thread, NULL, slot_thread, s) != 0)
		return herr_set(err, EX_OSERR, NULL, "cannot start a connection thread");
	s->started = 1;
	*out = s;
	return 0;
}

void
transfer_pool_free(struct transfer_pool *p)
{
	struct transfer_slot *s, *next;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	for (s = p->all; s; s = s->next_all)
		pthread_cond_signal(&s->go);
	pthread_mutex_unlock(&p->mu);
	for (s = p->all; s; s = next) {
		next = s->next_all;
		if (s->started)
			pthread_join(s->thread, NULL);
		smtp_conn_free(s->conn);
		pthread_cond_destroy(&s->go);
		free(s);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void
transfer_start(struct transfer_slot *s, const char *mail_from, const char *rcpt,
               const char *msg, size_t len, void *user)
{
	struct transfer_pool *p = s->pool;

	pthread_mutex_lock(&p->mu);
	s->from = mail_from;
	s->rcpt = rcpt;
	s->msg = msg;
	s->len = len;
	s->user = user;
	s->state = SLOT_BUSY;
	pthread_cond_signal(&s->go);
	pthread_mutex_unlock(&p->mu);
}

struct transfer_slot *
transfer_collect(struct transfer_pool *p)
{
	struct transfer_slot *list, *s;

	pthread_mutex_lock(&p->mu);
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	for (s = list; s; s = s->next_done)
		s->state = SLOT_IDLE;
	pthread_mutex_unlock(&p->mu);
	return list;
}

struct transfer_slot *
transfer_next(const struct transfer_slot *s)
{
	return s->next_done;
}

const struct smtp_result *
transfer_result(const struct transfer_slot *s)
{
	return &s->result;
}

void *
transfer_user(const struct transfer_slot *s)
{
	return s->user;
}

const struct config_relay *
transfer_relay(const struct transfer_slot *s)
{
	return s->relay;
}

long
transfer_connects(const struct transfer_slot *s)
{
	return smtp_conn_connects(s->conn);
}
