/*
 * sendjob.c - the send loop (ledger.h invariants (1)-(6) hold throughout).
 *
 * One thread drives the network and the database; worker threads build
 * the messages (buildpool.c).  Each turn of the loop:
 *
 *   1. control   a signal, --max-time, or `issue pause|cancel` (polled four
 *                times a second) switches the loop to draining: nothing new
 *                is claimed or started, what is in flight is finished;
 *   2. claim     due rows are claimed in batches (one committed transaction
 *                each, invariant (2)) and handed to the builders, keeping a
 *                small backlog: memory stays flat however long the list;
 *   3. start     built messages go to the first relay, in config order, that
 *                is up, has an idle connection and whose limits allow a start
 *                now (ratelimit.h); one relay's full window lets the next send;
 *   4. wait      for a connection thread to finish a transfer or a builder to
 *                finish a message (transfer.h: one thread per connection);
 *   5. record    each answer is marked in the ledger; the marks of one turn
 *                share one transaction, committed before the next turn.
 *
 * A relay-level failure (no connection, a 421 greeting, a timeout before
 * RCPT) takes that relay out for a cooldown and puts the message back for
 * another relay: it says nothing about the recipient, so the row is not
 * marked.  When no relay is left the run stops with the rows pending.  A
 * refused login or TLS failure disables the relay for the run.
 */
#define _GNU_SOURCE /* strcasestr */
#include "herald/sendjob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "herald/buildpool.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/message.h"
#include "herald/ratelimit.h"
#include "herald/relayuse.h"
#include "herald/smtp.h"
#include "herald/subjecttest.h"
#include "herald/tracking.h"
#include "herald/tmpl.h"
#include "herald/token.h"
#include "herald/transfer.h"

#include <pthread.h>

#define COOLDOWN_FIRST   5.0    /* seconds a refusing relay is left alone */
#define COOLDOWN_MAX     300.0
#define CONTROL_EVERY    0.25   /* seconds between looks at the issue's status */
#define PROGRESS_EVERY   0.2
#define WAIT_MAX_MS      50
#define WINDOW_WAIT_MAX  10.0   /* seconds: longer than this, leave it to a later run */

/* How many messages may wait in a connection's queue (transfer.h): a few,
 * so its thread never idles between messages; exactly one when the relay
 * is paced, so that each start happens when the limiter says. */
#define SLOT_DEPTH 4

struct relay {
	const struct config_relay *cfg;
	struct ratelimit  rl;
	struct transfer_slot **slots; /* all connections of this relay */
	int              *load;       /* messages queued or running on each */
	int              *retired;    /* connections given up (see finish_transfers) */
	int               n_slots;
	int               depth;      /* SLOT_DEPTH or 1 */
	long              load_total;
	double            down_until; /* refused connections: wait till then */
	double            cooldown;
	int               disabled;   /* refused us for good (login, TLS) */
	struct herr       error;      /* why it is down or disabled */
};

struct queue {
	struct build_job *head, *tail;
	long n;
};

struct loop {
	sqlite3             *db;
	const struct config *cfg;
	const struct sendjob_opts *opts;
	struct sendjob_report *rep;
	long long            issue_id;
	struct ledger       *led;
	struct relayuse     *usage;     /* hand-overs, for the relays' windows */
	struct buildpool    *pool;
	struct transfer_pool *transfers;
	long                 in_flight;
	struct transfer_slot **to_ack; /* slots whose results this turn records */
	size_t               n_to_ack, max_to_ack;
	pthread_mutex_t      wake_mu;  /* the other threads wake the loop */
	pthread_cond_t       wake_cv;
	int                  woken;
	struct relay        *relays;
	size_t               n_relays;
	struct queue         ready;    /* built, waiting for a relay */
	struct build_job    *free_jobs;
	struct ledger_row   *claimed;  /* claim batch scratch */
	size_t               backlog;  /* claimed-but-not-started target */
	int                  exhausted;
	int                  draining;
	int                  in_batch;
	struct token_key     key;
	struct dkim_signer  *dkim;
	struct sendjob_progress prog;
	double               t0, next_control, next_progress;
	double               rate_t[64];  /* finish times, for the recent rate */
	size_t               rate_n;
	struct herr          fatal;    /* why the run failed, if it did */
};

struct mid_ctx {
	const struct token_key *key;
	const char *domain;
	long long issue_id;
};

static int
make_mid(void *ctx, long long subscriber_id, char *out, size_t n)
{
	struct mid_ctx *m = ctx;

	return message_id_for(m->key, m->domain, m->issue_id, subscriber_id, out, n);
}

int
sendjob_is_throttle(int code, const char *reply)
{
	static const char *words[] = { "throttl", "rate limit", "ratelimit", "too many",
	                               "slow down", "sending rate", "exceeded", NULL };
	const char **w;

	if (code / 100 != 4)
		return 0;
	if (code == 454 && strcasestr(reply, "4.7.0"))
		return 1;
	for (w = words; *w; w++)
		if (strcasestr(reply, *w))
			return 1;
	return 0;
}

/* --- jobs and queues --- */

static struct build_job *
job_new(struct loop *L)
{
	struct build_job *j = L->free_jobs;

	if (j) {
		L->free_jobs = j->next;
		j->next = NULL;
		return j;
	}
	if ((j = calloc(1, sizeof *j)))
		buf_init(&j->msg, MESSAGE_MAX);
	return j;
}

static void
job_free(struct loop *L, struct build_job *j)
{
	ledger_row_clear(&j->row);
	buf_reset(&j->msg);
	j->next = L->free_jobs;
	L->free_jobs = j;
}

static void
queue_push(struct queue *q, struct build_job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->n++;
}

static void
queue_push_front(struct queue *q, struct build_job *j)
{
	j->next = q->head;
	q->head = j;
	if (!q->tail)
		q->tail = j;
	q->n++;
}

static struct build_job *
queue_pop(struct queue *q)
{
	struct build_job *j = q->head;

	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		j->next = NULL;
		q->n--;
	}
	return j;
}

/* --- database writes of one turn --- */

static int
batch(struct loop *L, struct herr *err)
{
	if (L->in_batch)
		return 0;
	if (ledger_batch_begin(L->led, err) < 0)
		return -1;
	L->in_batch = 1;
	return 0;
}

static int
batch_commit(struct loop *L, struct herr *err)
{
	if (!L->in_batch)
		return 0;
	L->in_batch = 0;
	return ledger_batch_commit(L->led, err);
}

static void wake(void *ctx);

/* --- relays --- */

static int
relays_open(struct loop *L, struct herr *err)
{
	size_t i;
	int k;

	if (!(L->relays = calloc(L->cfg->n_relays, sizeof *L->relays)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (transfer_pool_new(wake, L, &L->transfers, err) < 0)
		return -1;
	L->n_relays = L->cfg->n_relays;
	for (i = 0; i < L->n_relays; i++) {
		struct relay *r = &L->relays[i];

		r->cfg = &L->cfg->relays[i];
		r->cooldown = COOLDOWN_FIRST;
		if (ratelimit_init(&r->rl, r->cfg->rate, r->cfg->max_per_hour,
		                   r->cfg->max_per_day) < 0)
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		r->n_slots = (int)r->cfg->connections;
		r->depth = r->cfg->rate > 0 ? 1 : SLOT_DEPTH;
		r->slots = calloc((size_t)r->n_slots, sizeof *r->slots);
		r->load = calloc((size_t)r->n_slots, sizeof *r->load);
		r->retired = calloc((size_t)r->n_slots, sizeof *r->retired);
		if (!r->slots || !r->load || !r->retired)
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		for (k = 0; k < r->n_slots; k++)
			if (transfer_slot_new(L->transfers, r->cfg, &r->slots[k], err) < 0)
				return herr_wrap(err, "relay %s", r->cfg->url);
	}
	return 0;
}

/* The windows remember the last day of this relay's sends, across runs
 * and processes (relayuse.h). */
static int
relays_load_history(struct loop *L, struct herr *err)
{
	double now = db_now_f();
	size_t i;

	if (relayuse_prune(L->db, now, err) < 0)
		return -1;
	for (i = 0; i < L->n_relays; i++) {
		struct relay *r = &L->relays[i];

		if ((r->cfg->max_per_hour || r->cfg->max_per_day) &&
		    relayuse_history(L->db, r->cfg->name, now - RATELIMIT_DAY, &r->rl, err) < 0)
			return -1;
	}
	return 0;
}

static void
relays_close(struct loop *L)
{
	size_t i;
	int k;

	for (i = 0; i < L->n_relays; i++) {
		struct relay *r = &L->relays[i];

		for (k = 0; r->slots && k < r->n_slots; k++)
			if (r->slots[k])
				L->rep->connects += transfer_connects(r->slots[k]);
	}
	/* joins every connection thread (none is busy by now) */
	transfer_pool_free(L->transfers);
	for (i = 0; i < L->n_relays; i++) {
		free(L->relays[i].slots);
		free(L->relays[i].load);
		free(L->relays[i].retired);
		ratelimit_free(&L->relays[i].rl);
	}
	free(L->relays);
}

/* Called by builder and connection threads: something is ready. */
static void
wake(void *ctx)
{
	struct loop *L = ctx;

	pthread_mutex_lock(&L->wake_mu);
	if (!L->woken) { /* already told: no second signal */
		L->woken = 1;
		pthread_cond_signal(&L->wake_cv);
	}
	pthread_mutex_unlock(&L->wake_mu);
}

static void
wait_for_wake(struct loop *L, int timeout_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)timeout_ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&L->wake_mu);
	while (!L->woken)
		if (pthread_cond_timedwait(&L->wake_cv, &L->wake_mu, &until) != 0)
			break;
	L->woken = 0;
	pthread_mutex_unlock(&L->wake_mu);
}

/* Is any relay still worth waiting for? */
static int
relays_usable(const struct loop *L)
{
	size_t i;

	for (i = 0; i < L->n_relays; i++)
		if (!L->relays[i].disabled)
			return 1;
	return 0;
}

/* Every relay that is not disabled is cooling down, and nothing is in
 * flight that could succeed: the relays are unreachable for now. */
static int
relays_all_down(const struct loop *L, double now)
{
	size_t i;

	for (i = 0; i < L->n_relays; i++)
		if (!L->relays[i].disabled && L->relays[i].down_until <= now)
			return 0;
	return 1;
}

/* --- the loop's steps --- */

/* Step 1.  A database that cannot tell the issue's status is an error of
 * the run, like a failed commit: going on would miss a pause or cancel. */
static int
control(struct loop *L, double now, struct herr *err)
{
	sqlite3_stmt *st;
	const char *status;
	int rc;

	if (L->draining)
		return 0;
	if (L->opts->stop && *L->opts->stop) {
		L->draining = 1;
		L->rep->end = SENDJOB_STOPPED;
		return 0;
	}
	if (L->opts->deadline > 0 && now >= L->opts->deadline) {
		L->draining = 1;
		L->rep->end = SENDJOB_DEADLINE;
		return 0;
	}
	if (L->opts->slice_end > 0 && now >= L->opts->slice_end && !L->exhausted) {
		L->draining = 1;
		L->rep->end = SENDJOB_SLICE;
		return 0;
	}
	if (now < L->next_control)
		return 0;
	L->next_control = now + CONTROL_EVERY;
	if (db_prepare(L->db, &st, "SELECT status FROM issues WHERE id = ?1", err) < 0)
		return herr_wrap(err, "look for pause or cancel");
	sqlite3_bind_int64(st, 1, L->issue_id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		status = (const char *)sqlite3_column_text(st, 0);
		if (!strcmp(status, "paused")) {
			L->draining = 1;
			L->rep->end = SENDJOB_PAUSED;
		} else if (!strcmp(status, "cancelled")) {
			L->draining = 1;
			L->rep->end = SENDJOB_CANCELLED;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(L->db, err, "look for pause or cancel");
	return 0;
}

static int
claim(struct loop *L, struct mid_ctx *mid, struct herr *err)
{
	size_t have = (size_t)buildpool_pending(L->pool) + (size_t)L->ready.n, want, n, i;
	struct build_job *j;

	if (L->draining || L->exhausted || have * 2 > L->backlog)
		return 0;
	want = L->backlog - have;
	if (ledger_claim_batch(L->led, db_now(), want, make_mid, mid, L->claimed, &n, err) < 0)
		return -1;
	if (n == 0)
		L->exhausted = 1;
	for (i = 0; i < n; i++) {
		if (!(j = job_new(L))) {
			for (; i < n; i++) {
				ledger_release(L->led, L->claimed[i].subscriber_id, NULL);
				ledger_row_clear(&L->claimed[i]);
			}
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		j->row = L->claimed[i];
		memset(&L->claimed[i], 0, sizeof L->claimed[i]);
		j->now = db_now();
		buildpool_submit(L->pool, j);
	}
	return 0;
}

static int
collect(struct loop *L, int wait, struct herr *err)
{
	struct build_job *list = buildpool_collect(L->pool, wait), *j;
	char why[HERR_MSG_MAX + 40];

	while ((j = list)) {
		list = j->next;
		if (!j->failed) {
			queue_push(&L->ready, j);
			continue;
		}
		/* the recipient's data cannot make a message: nothing to retry */
		snprintf(why, sizeof why, "cannot build message: %s", j->err.msg);
		if (batch(L, err) < 0 ||
		    ledger_fail(L->led, j->row.subscriber_id, why, db_now(), err) < 0) {
			job_free(L, j);
			while ((j = list)) {
				list = j->next;
				queue_push(&L->ready, j);
			}
			return -1;
		}
		L->prog.failed++;
		L->prog.done++;
		job_free(L, j);
	}
	return 0;
}

/* A connection of `r` with room in its queue, the least loaded; -1 if none. */
static int
free_slot(const struct relay *r)
{
	int k, best = -1;

	for (k = 0; k < r->n_slots; k++)
		if (!r->retired[k] && r->load[k] < r->depth &&
		    (best < 0 || r->load[k] < r->load[best]))
			best = k;
	return best;
}

/* Hand ready messages to connections as relays and limits allow; *wait_s
 * is how long until a limit would allow the next one. */
static int
start(struct loop *L, double *wait_s, struct herr *err)
{
	double now = db_now_f(), d;
	struct build_job *j;
	struct relay *r;
	size_t i;
	int k = -1;

	while (!L->draining && L->ready.head) {
		r = NULL;
		for (i = 0; i < L->n_relays; i++) {
			struct relay *x = &L->relays[i];

			if (x->disabled || x->down_until > now || (k = free_slot(x)) < 0)
				continue;
			if ((d = ratelimit_delay(&x->rl, now)) > 0) {
				if (d < *wait_s)
					*wait_s = d;
				continue;
			}
			r = x;
			break;
		}
		if (!r)
			return 0;
		j = queue_pop(&L->ready);
		j->relay = (int)(r - L->relays);
		j->slot = k;
		j->xfer.from = j->mo.mail_from;
		j->xfer.rcpt = j->mo.rcpt.ascii;
		j->xfer.msg = j->msg.data;
		j->xfer.len = j->msg.len;
		r->load[k]++;
		r->load_total++;
		L->in_flight++;
		transfer_push(r->slots[k], &j->xfer);
		ratelimit_take(&r->rl, now);
		if (r->cfg->max_per_hour || r->cfg->max_per_day) {
			if (batch(L, err) < 0 ||
			    relayuse_record(L->usage, r->cfg->name, now, err) < 0)
				return -1;
		}
		L->prog.in_flight++;
	}
	return 0;
}

/* Take back what the connections of `r` (or of every relay, r NULL) have
 * queued and not started: onto the front of the ready queue. */
static void
recall(struct loop *L, struct relay *only)
{
	struct transfer_item *list, *it;
	struct build_job *j;
	size_t i;
	int k;

	for (i = 0; i < L->n_relays; i++) {
		struct relay *r = &L->relays[i];

		if (only && r != only)
			continue;
		for (k = 0; k < r->n_slots; k++) {
			list = transfer_recall(r->slots[k]);
			while ((it = list)) {
				list = it->next;
				j = (struct build_job *)((char *)it - offsetof(struct build_job, xfer));
				r->load[k]--;
				r->load_total--;
				L->in_flight--;
				L->prog.in_flight--;
				queue_push_front(&L->ready, j);
			}
		}
	}
}

static void
note_rate(struct loop *L, double now)
{
	size_t n = sizeof L->rate_t / sizeof L->rate_t[0];

	L->rate_t[L->rate_n % n] = now;
	L->rate_n++;
}

static double
recent_rate(const struct loop *L, double now)
{
	size_t n = sizeof L->rate_t / sizeof L->rate_t[0], k = L->rate_n < n ? L->rate_n : n;
	double oldest;

	if (k < 2)
		return 0;
	oldest = L->rate_t[(L->rate_n - k) % n];
	return now > oldest ? (double)(k - 1) / (now - oldest) : 0;
}

static int
finish_transfers(struct loop *L, struct herr *err)
{
	struct transfer_item *it, *next;
	const struct smtp_result *res;
	struct build_job *j;
	struct relay *r;
	double now;

	for (it = transfer_collect(L->transfers); it; it = next) {
		next = it->next;
		now = db_now_f();
		j = (struct build_job *)((char *)it - offsetof(struct build_job, xfer));
		res = &it->result;
		r = &L->relays[j->relay];
		/* acknowledged once this turn's transaction is committed */
		if (L->n_to_ack < L->max_to_ack)
			L->to_ack[L->n_to_ack++] = r->slots[j->slot];
		r->load[j->slot]--;
		r->load_total--;
		L->in_flight--;
		L->prog.in_flight--;
		if (res->outcome == SMTP_UNREACHABLE && r->load_total > 0 &&
		    r->n_slots > 1 && !r->retired[j->slot]) {
			/* Other connections to this relay are working: it is up
			 * but refused one more connection ("421 too many
			 * connections").  Use one connection fewer from now on. */
			r->retired[j->slot] = 1;
			ratelimit_throttle(&r->rl, now);
			queue_push_front(&L->ready, j);
			continue;
		}
		if (res->outcome == SMTP_UNREACHABLE || res->outcome == SMTP_FATAL) {
			/* The relay's problem, not the recipient's: try another. */
			if (!r->error.code || !r->disabled)
				herr_set(&r->error, res->outcome == SMTP_FATAL &&
				         res->stage == SMTP_STAGE_AUTH ? EX_CONFIG : EX_UNAVAILABLE,
				         r->cfg->url, "%s at %s: %s%s%s",
				         res->outcome == SMTP_UNREACHABLE ? "unreachable" : "refused us",
				         smtp_stage_name(res->stage), res->code ? res->reply : res->detail,
				         res->code && res->detail[0] ? " / " : "",
				         res->code ? res->detail : "");
			if (res->outcome == SMTP_FATAL)
				r->disabled = 1;
			else if (r->down_until <= now) {
				r->down_until = now + r->cooldown;
				r->cooldown = r->cooldown * 2 < COOLDOWN_MAX ? r->cooldown * 2 : COOLDOWN_MAX;
			}
			queue_push_front(&L->ready, j);
			recall(L, r); /* what waits on its connections goes elsewhere too */
			continue;
		}
		r->cooldown = COOLDOWN_FIRST;
		if (batch(L, err) < 0 ||
		    ledger_mark(L->led, j->row.subscriber_id, j->row.attempts, res, r->cfg->name,
		                (long long)now, err) < 0) {
			job_free(L, j);
			return -1;
		}
		L->rep->attempted++;
		switch (res->outcome) {
		case SMTP_SENT:
			L->prog.sent++;
			break;
		case SMTP_REJECTED:
			L->prog.bounced++;
			break;
		default:
			L->prog.deferred++;
			if (sendjob_is_throttle(res->code, res->reply))
				ratelimit_throttle(&r->rl, now);
			break;
		}
		L->prog.done++;
		note_rate(L, now);
		job_free(L, j);
	}
	return 0;
}

static void
report_progress(struct loop *L, int final)
{
	double now = db_now_f();

	if (!L->opts->progress || (!final && now < L->next_progress))
		return;
	L->next_progress = now + PROGRESS_EVERY;
	L->prog.elapsed = now - L->t0;
	L->prog.rate = final && L->prog.elapsed > 0 ? (double)L->prog.done / L->prog.elapsed :
	                                              recent_rate(L, now);
	L->prog.final = final;
	L->opts->progress(L->opts->ctx, &L->prog);
}

/* Give back every claimed row that was never attempted. */
static int
release_unstarted(struct loop *L, struct herr *err)
{
	struct build_job *j, *list;
	int ret = 0;

	while (buildpool_pending(L->pool) > 0) {
		list = buildpool_collect(L->pool, 1);
		while ((j = list)) {
			list = j->next;
			queue_push(&L->ready, j);
		}
	}
	while ((j = queue_pop(&L->ready))) {
		if (ret == 0 && ledger_release(L->led, j->row.subscriber_id, err) < 0)
			ret = -1;
		job_free(L, j);
	}
	return ret;
}

/*
 * The one way out of sendjob_run(), after success or any error: first every
 * thread finishes (transfers in flight end - their rows stay `sending`, for
 * ledger_recover() - and builders hand back what they built), every job
 * gathered on the ready queue; only then are the jobs, queues and relays
 * freed, so nothing comes back onto a queue already emptied.
 */
static void
loop_teardown(struct loop *L)
{
	struct build_job *j;

	if (L->transfers && L->in_flight > 0)
		recall(L, NULL);
	while (L->in_flight > 0 && L->transfers) {
		struct transfer_item *it, *next;

		wait_for_wake(L, WAIT_MAX_MS);
		for (it = transfer_collect(L->transfers); it; it = next) {
			next = it->next;
			j = (struct build_job *)((char *)it - offsetof(struct build_job, xfer));
			queue_push(&L->ready, j);
			L->in_flight--;
		}
	}
	if (L->pool) {
		while (buildpool_pending(L->pool) > 0) {
			struct build_job *list = buildpool_collect(L->pool, 1);

			while ((j = list)) {
				list = j->next;
				queue_push(&L->ready, j);
			}
		}
		buildpool_free(L->pool);
		L->pool = NULL;
	}
	while ((j = queue_pop(&L->ready)))
		job_free(L, j);
	while ((j = L->free_jobs)) {
		L->free_jobs = j->next;
		ledger_row_clear(&j->row);
		buf_free(&j->msg);
		free(j);
	}
	free(L->claimed);
	free(L->to_ack);
	L->claimed = NULL;
	L->to_ack = NULL;
	if (L->relays)
		relays_close(L);
	L->relays = NULL;
}

static int
workers_for(const struct config *cfg)
{
	long n = cfg->workers;

	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static int
loop_run(struct loop *L, struct mid_ctx *mid, struct herr *err)
{
	double now, wait_s;
	int timeout_ms;

	for (;;) {
		now = db_now_f();
		if (control(L, now, err) < 0)
			return -1;
		if (L->draining && L->in_flight)
			recall(L, NULL); /* finish only what has started */
		if (claim(L, mid, err) < 0 || collect(L, 0, err) < 0)
			return -1;
		wait_s = 1e9;
		if (start(L, &wait_s, err) < 0)
			return -1;
		if (L->ready.n && !L->in_flight && !L->draining && wait_s > WINDOW_WAIT_MAX &&
		    wait_s < 1e9) {
			/* Every usable relay's window is full for a while: stop
			 * here; the rows stay pending for a later run. */
			L->draining = 1;
			L->rep->end = SENDJOB_WINDOW;
			L->rep->window_opens = db_now_f() + wait_s;
			continue;
		}
		if (!L->in_flight) {
			if (L->draining || (L->exhausted && !L->ready.n &&
			                    !buildpool_pending(L->pool)))
				break;
			if (L->ready.n && relays_all_down(L, now)) {
				/* nothing in flight, nothing startable: the relays
				 * are gone for now (or for good) */
				size_t i;

				for (i = 0; i < L->n_relays; i++)
					if (L->relays[i].error.code) {
						L->fatal = L->relays[i].error;
						break;
					}
				if (!L->fatal.code)
					herr_set(&L->fatal, EX_UNAVAILABLE, NULL, "no relay is usable");
				L->draining = 1;
				L->rep->end = SENDJOB_FAILED;
				continue;
			}
		}
		timeout_ms = wait_s * 1000 >= WAIT_MAX_MS ? WAIT_MAX_MS : (int)(wait_s * 1000);
		if (timeout_ms < 1)
			timeout_ms = 1;
		wait_for_wake(L, timeout_ms);
		if (finish_transfers(L, err) < 0 || batch_commit(L, err) < 0)
			return -1;
		/* results are on disk: the connections may go on */
		transfer_ack(L->transfers, L->to_ack, L->n_to_ack);
		L->n_to_ack = 0;
		if (!relays_usable(L) && !L->in_flight && !L->draining) {
			size_t i;

			for (i = 0; i < L->n_relays; i++)
				if (L->relays[i].error.code) {
					L->fatal = L->relays[i].error;
					break;
				}
			L->draining = 1;
			L->rep->end = SENDJOB_FAILED;
		}
		report_progress(L, 0);
	}
	return 0;
}

int
sendjob_run(sqlite3 *db, const struct config *cfg, const struct sendjob_opts *opts,
            struct sendjob_report *rep, struct herr *err)
{
	struct issue is;
	struct list l;
	struct message_ctx mctx;
	struct mid_ctx mid;
	struct loop L;
	struct subjecttest test;
	struct tmpl *variants[SUBJECTTEST_VARIANTS_MAX] = { NULL };
	long long n = 0;
	int ret = -1, have_ctx = 0;
	size_t i;

	memset(rep, 0, sizeof *rep);
	memset(&L, 0, sizeof L);
	memset(&test, 0, sizeof test);
	L.db = db;
	L.cfg = cfg;
	L.opts = opts;
	L.rep = rep;
	L.issue_id = opts->issue_id;
	L.t0 = db_now_f();
	pthread_mutex_init(&L.wake_mu, NULL);
	pthread_cond_init(&L.wake_cv, NULL);
	rep->end = SENDJOB_DRAINED;
	if (issue_get(db, opts->issue_id, &is, err) < 0)
		return -1;
	if (!strcmp(is.status, "sent") || !strcmp(is.status, "cancelled") ||
	    !strcmp(is.status, "paused")) {
		herr_set(err, EX_DATAERR, NULL, "issue %lld is %s%s", is.id, is.status,
		         !strcmp(is.status, "paused") ? "; resume it first" : "");
		goto out;
	}
	if (token_key_load(cfg->secret_file, &L.key, err) < 0 ||
	    list_get_by_id(db, is.list_id, &l, err) < 0)
		goto out;
	if (message_ctx_init(&mctx, cfg, &L.key, &is, &l, err) < 0)
		goto out;
	have_ctx = 1;
	/* a subject test's variants, for the copies of its test groups and
	 * (the winner's) of its holdout: ledger.h (7) */
	if (subjecttest_load(db, is.id, &test, err) < 0 ||
	    subjecttest_compile(&test, variants, err) < 0)
		goto out;
	mctx.variants = variants;
	mctx.n_variants = test.n;
	if (message_dkim_open(cfg, &L.dkim, err) < 0)
		goto out;
	mctx.dkim = L.dkim;
	if (relays_open(&L, err) < 0 || relays_load_history(&L, err) < 0)
		goto out;
	if (!strcmp(is.status, "sending")) {
		if (ledger_recover(db, is.id, &n, err) < 0)
			goto out;
	} else {
		if (issue_start_send(db, &is, opts->warn, opts->warn_ctx, &n, err) < 0)
			goto out;
		/* a send that had started before (rescheduled after a pause or
		 * cancel) goes on with its snapshot: recover its rows as a
		 * resumed one would */
		if (is.started_at && ledger_recover(db, is.id, &n, err) < 0)
			goto out;
		rep->started = !is.started_at;
	}
	/* the mode the send goes under, fixed on the issue at its start
	 * (tracking.h): a resumed send keeps the one it began with */
	if (tracking_issue_mode(db, is.id, cfg->tracking_mode, &mctx.tracking_mode, err) < 0)
		goto out;
	if (ledger_open(db, is.id, &L.led, err) < 0 || relayuse_open(db, &L.usage, err) < 0)
		goto out;
	ledger_set_retry(L.led, cfg->retry, cfg->n_retry, cfg->retry_window);
	ledger_set_bounce_policy(L.led, cfg->bounce_soft_limit, cfg->bounce_soft_window);
	if (buildpool_new(workers_for(cfg), &mctx, wake, &L, &L.pool, err) < 0)
		goto out;
	for (i = 0; i < L.n_relays; i++)
		L.backlog += (size_t)L.relays[i].n_slots;
	/* each slot has at most one unacknowledged result */
	L.max_to_ack = L.backlog;
	if (!(L.to_ack = calloc(L.max_to_ack, sizeof *L.to_ack))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	L.backlog = L.backlog * 2 + (size_t)workers_for(cfg) * 4;
	if (L.backlog < 16)
		L.backlog = 16;
	{
		/* Rows are claimed a little ahead of sending.  When every relay
		 * is paced, keep that to about two seconds of sending, so that
		 * someone who unsubscribes during a slow send is skipped
		 * (ledger invariant (6)) instead of mailed from the backlog. */
		double paced = 0;

		for (i = 0; i < L.n_relays; i++) {
			if (L.relays[i].cfg->rate <= 0) {
				paced = -1;
				break;
			}
			paced += L.relays[i].cfg->rate;
		}
		if (paced > 0 && (size_t)(paced * 2) + 2 < L.backlog)
			L.backlog = (size_t)(paced * 2) + 2;
	}
	if (!(L.claimed = calloc(L.backlog, sizeof *L.claimed))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	if (ledger_counts(db, is.id, &rep->counts, err) < 0)
		goto out;
	L.prog.issue_id = is.id;
	L.prog.total = rep->counts.pending + rep->counts.deferred;
	mid.key = &L.key;
	mid.domain = cfg->message_id_domain;
	mid.issue_id = is.id;

	if (loop_run(&L, &mid, err) < 0) {
		/* the database failed under us: stop, and leave what was not
		 * attempted for the next run (recovered from `sending`) */
		db_rollback(db);
		L.in_batch = 0;
		goto out;
	}
	if (release_unstarted(&L, err) < 0 || issue_finish(db, is.id, &rep->finished, err) < 0)
		goto out;
	if (L.fatal.code) {
		*err = L.fatal;
		herr_wrap(err, "relay");
		goto out;
	}
	ret = 0;
out:
	loop_teardown(&L);
	report_progress(&L, 1);
	if (ledger_counts(db, is.id, &rep->counts, NULL) == 0)
		rep->recipients = rep->counts.total;
	rep->elapsed = db_now_f() - L.t0;
	ledger_close(L.led);
	relayuse_close(L.usage);
	if (have_ctx)
		message_ctx_free(&mctx);
	for (i = 0; i < SUBJECTTEST_VARIANTS_MAX; i++)
		tmpl_free(variants[i]);
	subjecttest_clear(&test);
	dkim_signer_free(L.dkim);
	issue_clear(&is);
	explicit_bzero(&L.key, sizeof L.key);
	pthread_mutex_destroy(&L.wake_mu);
	pthread_cond_destroy(&L.wake_cv);
	return ret;
}
