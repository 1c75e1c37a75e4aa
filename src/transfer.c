/*
 * transfer.c - a thread per SMTP connection (see transfer.h for why).
 *
 * Everything shared is guarded by the pool mutex: each slot's queue, its
 * load, and the pool's done list.  A slot's thread takes the head of its
 * queue, sends it with the mutex released, then appends it to the done
 * list.  `load` counts queued plus running items and is what the send loop
 * reads to decide where the next message goes.
 *
 * Wake-ups (issue 19: a fifth of the send's CPU was threads being switched
 * in): the send loop is notified only when the done list goes from empty
 * to not empty, as it always collects the whole list (transfer_collect());
 * results that finish meanwhile ride on that one wake-up.
 */
#include "herald/transfer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct transfer_slot {
	struct transfer_pool      *pool;
	const struct config_relay *relay;
	struct smtp_conn          *conn;
	pthread_t                  thread;
	int                        started;   /* the thread exists */
	pthread_cond_t             go;
	struct transfer_item      *head, *tail; /* queued, not started */
	int                        load;      /* queued + running */
	int                        unacked;   /* finished, result not yet recorded */
	struct transfer_slot      *next_all;
};

struct transfer_pool {
	pthread_mutex_t       mu;
	struct transfer_slot *all;
	struct transfer_item *done_head, *done_tail;
	int                   stopping;
	void                (*notify)(void *ctx);
	void                 *ctx;
};

static void *
slot_thread(void *arg)
{
	struct transfer_slot *s = arg;
	struct transfer_pool *p = s->pool;
	struct transfer_item *it;
	/* the envelope of the message queued behind, copied: the send loop
	 * may take that item back while this one is on the wire */
	char next_from[SMTP_ADDRESS_MAX], next_rcpt[SMTP_ADDRESS_MAX];
	struct smtp_envelope next = { next_from, next_rcpt, 0 };
	int have_next;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while ((!s->head || s->unacked) && !p->stopping)
			pthread_cond_wait(&s->go, &p->mu);
		if (!s->head)
			break;
		it = s->head;
		s->head = it->next;
		if (!s->head)
			s->tail = NULL;
		have_next = s->head && strlen(s->head->from) < sizeof next_from &&
		            strlen(s->head->rcpt) < sizeof next_rcpt;
		if (have_next) {
			strcpy(next_from, s->head->from);
			strcpy(next_rcpt, s->head->rcpt);
			next.len = s->head->len;
		}
		pthread_mutex_unlock(&p->mu);
		it->slot = s;
		/* the next envelope rides behind this message's final dot
		 * (smtp.h); its content still waits for this one's ack */
		smtp_send_ahead(s->conn, it->from, it->rcpt, it->msg, it->len,
		                have_next ? &next : NULL, &it->result);
		pthread_mutex_lock(&p->mu);
		s->load--;
		s->unacked++;
		it->next = NULL;
		if (p->done_tail) {
			/* the send loop was told when the list stopped being
			 * empty and takes all of it at once: no second wake-up */
			p->done_tail->next = it;
		} else {
			p->done_head = it;
			if (p->notify)
				p->notify(p->ctx);
		}
		p->done_tail = it;
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
	for (s = p->all; s; s = s->next_all) {
		s->head = s->tail = NULL; /* the caller recalled what it wanted */
		pthread_cond_signal(&s->go);
	}
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
transfer_push(struct transfer_slot *s, struct transfer_item *it)
{
	struct transfer_pool *p = s->pool;

	it->next = NULL;
	it->slot = s;
	memset(&it->result, 0, sizeof it->result);
	pthread_mutex_lock(&p->mu);
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	s->load++;
	pthread_cond_signal(&s->go);
	pthread_mutex_unlock(&p->mu);
}

struct transfer_item *
transfer_recall(struct transfer_slot *s)
{
	struct transfer_pool *p = s->pool;
	struct transfer_item *list, *it;

	pthread_mutex_lock(&p->mu);
	list = s->head;
	for (it = list; it; it = it->next)
		s->load--;
	s->head = s->tail = NULL;
	pthread_mutex_unlock(&p->mu);
	return list;
}

int
transfer_load(const struct transfer_slot *s)
{
	struct transfer_pool *p = s->pool;
	int n;

	pthread_mutex_lock(&p->mu);
	n = s->load;
	pthread_mutex_unlock(&p->mu);
	return n;
}

struct transfer_item *
transfer_collect(struct transfer_pool *p)
{
	struct transfer_item *list;

	pthread_mutex_lock(&p->mu);
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->mu);
	return list;
}

void
transfer_ack(struct transfer_pool *p, struct transfer_slot *const *slots, size_t n)
{
	size_t i;

	pthread_mutex_lock(&p->mu);
	for (i = 0; i < n; i++)
		if (slots[i]->unacked > 0 && --slots[i]->unacked == 0 && slots[i]->head)
			pthread_cond_signal(&slots[i]->go);
	pthread_mutex_unlock(&p->mu);
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
