/*
 * webmail.c - herald serve's mail thread: the double opt-in confirmations
 * that sign-ups ask for, sent one by one through mailsend.h (relay choice,
 * failover, relay usage, DKIM), so that a request thread never waits on
 * SMTP.  The queue is bounded (a full queue is a 503 for the sign-up);
 * at stop, what is queued gets MAIL_STOP_WAIT seconds.  A mail that cannot
 * go is logged with the relay's words (web_opts.log) and counted.
 * Other single mails of the server (privacy.h's export and erase links)
 * come as a builder (webmail_build_fn) run here, with this thread's
 * database connection and DKIM signer.
 */
#include "webint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/mailsend.h"
#include "herald/message.h"
#include "herald/subscriber.h"

#define MAIL_QUEUE_MAX  1000
#define MAIL_STOP_WAIT  30.0   /* seconds to send what is queued at stop */

struct mail_job {
	struct mail_job *next;
	long long        subscriber_id;
	long long        confirm_id;
	struct list      list;
	char             email[512];
	char             name[SUBSCRIBER_NAME_MAX + 1];
	webmail_build_fn build;        /* set: a builder's mail, not a confirmation */
	webmail_done_fn  done;         /* NULL, or told the outcome (webint.h) */
	void           (*ctx_free)(void *ctx); /* NULL: free() */
	void            *ctx;          /* its argument, released after */
};

struct webmail {
	struct web_server  *s;
	pthread_t           thread;
	int                 running;
	pthread_mutex_t     mu;        /* guards the queue and stopping */
	pthread_cond_t      wake;
	struct mail_job    *head, *tail;
	size_t              queued;
	int                 stopping;
	double              deadline;  /* set at stop: give up on the rest after it */
	sqlite3            *db;        /* this thread's: relay usage */
	struct mailsend    *send;
	atomic_llong        sent, failed;
};

/* Build and send one confirmation. */
static void
mail_send(struct webmail *m, const struct mail_job *j)
{
	const struct config *cfg = m->s->cfg;
	struct buf msg = BUF_INIT(1u << 20);
	struct mailsend_result res;
	struct message_out mo;
	struct herr err;
	int built, rc;

	herr_clear(&err);
	memset(&mo, 0, sizeof mo);
	memset(&res, 0, sizeof res);
	built = (j->build ? j->build(j->ctx, cfg, m->db, mailsend_dkim(m->send), &msg, &mo, &err)
	                  : message_build_confirm(cfg, &m->s->key, mailsend_dkim(m->send), &j->list,
	                                          j->subscriber_id, j->confirm_id, j->email, j->name,
	                                          db_now(), &msg, &mo, &err)) == 0;
	rc = built ? mailsend_one(m->send, mo.mail_from, mo.rcpt.ascii, msg.data, msg.len, &res,
	                          &err) : -1;
	if (rc < 0) {
		web_log(m->s, "%s mail to %s: %s", j->build ? j->email : "confirmation",
		        j->build ? mo.rcpt.addr : j->email, err.msg);
		atomic_fetch_add(&m->failed, 1);
	} else
		atomic_fetch_add(&m->sent, 1);
	if (j->done)
		j->done(j->ctx, m->db, rc, built ? &res : NULL, mo.message_id, &err);
	buf_free(&msg);
}

static void
job_free(struct mail_job *j)
{
	if (j->ctx_free)
		j->ctx_free(j->ctx);
	else
		free(j->ctx);
	free(j);
}

static void *
mail_main(void *arg)
{
	struct webmail *m = arg;
	struct mail_job *j;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (!m->head && !m->stopping) {
			/* idle: let the relay connections go */
			pthread_mutex_unlock(&m->mu);
			mailsend_idle(m->send);
			pthread_mutex_lock(&m->mu);
			if (!m->head && !m->stopping)
				pthread_cond_wait(&m->wake, &m->mu);
		}
		if (!m->head)
			break; /* stopping, nothing left */
		j = m->head;
		if (!(m->head = j->next))
			m->tail = NULL;
		m->queued--;
		pthread_mutex_unlock(&m->mu);
		if (m->stopping && web_mono_now() > m->deadline) {
			web_log(m->s, "confirmation mail to %s not sent: stopping", j->email);
			atomic_fetch_add(&m->failed, 1);
		} else
			mail_send(m, j);
		job_free(j);
		pthread_mutex_lock(&m->mu);
	}
	pthread_mutex_unlock(&m->mu);
	mailsend_idle(m->send);
	return NULL;
}

static void
webmail_free(struct webmail *m)
{
	struct mail_job *j;

	while ((j = m->head)) {
		m->head = j->next;
		job_free(j);
	}
	mailsend_close(m->send);
	db_close(m->db);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

int
webmail_start(struct web_server *s, struct webmail **out, struct herr *err)
{
	struct webmail *m = calloc(1, sizeof *m);

	*out = NULL;
	if (!m)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	m->s = s;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->wake, NULL);
	if (db_open(s->cfg->db_path, DB_OPEN_EXISTING, s->cfg->db_busy_timeout_ms, &m->db,
	            err) < 0 ||
	    mailsend_open(s->cfg, m->db, &m->send, err) < 0) {
		webmail_free(m);
		return -1;
	}
	if (pthread_create(&m->thread, NULL, mail_main, m) != 0) {
		webmail_free(m);
		return herr_set(err, EX_OSERR, NULL, "cannot start the mail thread");
	}
	m->running = 1;
	*out = m;
	return 0;
}

/* Append `j` to the queue and wake the thread; -1 (j released) when the
 * queue is full or stopping. */
static int
queue_job(struct webmail *m, struct mail_job *j)
{
	pthread_mutex_lock(&m->mu);
	if (m->queued >= MAIL_QUEUE_MAX || m->stopping) {
		pthread_mutex_unlock(&m->mu);
		job_free(j);
		return -1;
	}
	if (m->tail)
		m->tail->next = j;
	else
		m->head = j;
	m->tail = j;
	m->queued++;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int
webmail_enqueue(struct webmail *m, long long subscriber_id, long long confirm_id,
                const struct list *l, const char *email, const char *name)
{
	struct mail_job *j;

	if (!(j = calloc(1, sizeof *j)))
		return -1;
	j->subscriber_id = subscriber_id;
	j->confirm_id = confirm_id;
	j->list = *l;
	snprintf(j->email, sizeof j->email, "%s", email);
	snprintf(j->name, sizeof j->name, "%s", name);
	return queue_job(m, j);
}

int
webmail_enqueue_build_done(struct webmail *m, webmail_build_fn build, webmail_done_fn done,
                           void (*ctx_free)(void *ctx), void *ctx, const char *what)
{
	struct mail_job *j;

	if (!(j = calloc(1, sizeof *j))) {
		if (ctx_free)
			ctx_free(ctx);
		else
			free(ctx);
		return -1;
	}
	j->build = build;
	j->done = done;
	j->ctx_free = ctx_free;
	j->ctx = ctx;
	/* a builder's mail is logged by what it is; the address is its own */
	snprintf(j->email, sizeof j->email, "%s", what);
	return queue_job(m, j);
}

int
webmail_enqueue_build(struct webmail *m, webmail_build_fn build, void *ctx, const char *what)
{
	return webmail_enqueue_build_done(m, build, NULL, NULL, ctx, what);
}

void
webmail_stop(struct webmail *m, long long *sent, long long *failed)
{
	if (!m)
		return;
	if (m->running) {
		pthread_mutex_lock(&m->mu);
		m->stopping = 1;
		m->deadline = web_mono_now() + MAIL_STOP_WAIT;
		pthread_cond_signal(&m->wake);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thread, NULL);
		m->running = 0;
	}
	if (sent)
		*sent = atomic_load(&m->sent);
	if (failed)
		*failed = atomic_load(&m->failed);
	webmail_free(m);
}
