/*
 * eventlog.c - batched event writer (see eventlog.h).
 *
 * The queue is a singly linked list of copied events under one mutex; the
 * writer thread swaps the whole list out, writes it in one transaction, and
 * signals `drained` for eventlog_flush().  A batch that fails (the database
 * busy past its timeout) is put back at the head and retried after a pause.
 */
#include "herald/eventlog.h"

#include <jansson.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/db.h"

struct queued {
	struct queued *next;
	char           kind[16];
	long long      issue_id, subscriber_id, list_id;
	double         at;
	char           detail[];    /* NUL-terminated JSON */
};

struct eventlog {
	sqlite3         *db;
	sqlite3_stmt    *insert;
	pthread_t        thread;
	pthread_mutex_t  mu;
	pthread_cond_t   wake;      /* events added, or stopping */
	pthread_cond_t   drained;   /* a batch was committed (or the queue emptied) */
	pthread_cond_t   room;      /* the queue has room again */
	struct queued   *head, *tail;
	long             queued;
	long long        added, written, lost;
	int              busy;      /* the writer holds a batch */
	int              stopping;
	struct herr      error;
};

/*
 * The one INSERT of the events table: every event herald records goes
 * through insert_event(), from the batched writer below or from
 * eventlog_record().  Ids that no longer exist (a subscriber removed since
 * the mail went out) become NULL instead of failing the write; an event
 * without a list takes its issue's.
 */
#define EVENT_INSERT \
	"INSERT INTO events (kind, issue_id, subscriber_id, list_id, at, detail) " \
	"VALUES (?1, (SELECT id FROM issues WHERE id = ?2), " \
	"(SELECT id FROM subscribers WHERE id = ?3), " \
	"coalesce((SELECT id FROM lists WHERE id = ?4), " \
	"         (SELECT list_id FROM issues WHERE id = ?2)), ?5, ifnull(?6, '{}'))"

/* Bind, step and reset `st` (prepared from EVENT_INSERT); sqlite3_step()'s code. */
static int
insert_event(sqlite3_stmt *st, const struct event *e)
{
	int rc;

	sqlite3_bind_text(st, 1, e->kind, -1, SQLITE_STATIC);
	if (e->issue_id)
		sqlite3_bind_int64(st, 2, e->issue_id);
	if (e->subscriber_id)
		sqlite3_bind_int64(st, 3, e->subscriber_id);
	if (e->list_id)
		sqlite3_bind_int64(st, 4, e->list_id);
	sqlite3_bind_int64(st, 5, e->at > 0 ? (long long)e->at : db_now());
	sqlite3_bind_text(st, 6, e->detail ? e->detail : "{}", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int
eventlog_record(sqlite3 *db, const struct event *e, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, EVENT_INSERT, err) < 0)
		return -1;
	rc = insert_event(st, e);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record event");
	return 0;
}

int
eventlog_record_source(sqlite3 *db, const char *kind, long long issue_id,
                       long long subscriber_id, long long list_id, const char *source,
                       struct herr *err)
{
	json_t *o = json_pack("{s:s}", "source", source);
	char *detail = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct event e = { kind, issue_id, subscriber_id, list_id, 0, detail };
	int rc;

	json_decref(o);
	if (!detail)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	rc = eventlog_record(db, &e, err);
	free(detail);
	return rc;
}

static int
write_batch(struct eventlog *l, struct queued *batch)
{
	struct queued *q;
	struct herr err;
	int rc;

	herr_clear(&err);
	if (db_begin(l->db, &err) < 0)
		goto fail;
	for (q = batch; q; q = q->next) {
		struct event e = { q->kind, q->issue_id, q->subscriber_id, q->list_id, q->at,
		                   q->detail };

		rc = insert_event(l->insert, &e);
		if (rc != SQLITE_DONE) {
			db_error(l->db, &err, "record event");
			db_rollback(l->db);
			goto fail;
		}
	}
	if (db_commit(l->db, &err) < 0)
		goto fail;
	return 0;
fail:
	pthread_mutex_lock(&l->mu);
	if (!l->error.code)
		l->error = err;
	pthread_mutex_unlock(&l->mu);
	return -1;
}

static void
free_list(struct queued *q)
{
	struct queued *next;

	for (; q; q = next) {
		next = q->next;
		free(q);
	}
}

static void *
writer(void *arg)
{
	struct eventlog *l = arg;
	struct queued *batch, *q, *last;
	struct timespec until;
	long n;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		if (!l->head && l->stopping)
			break;
		if (l->queued < EVENTLOG_BATCH && !l->stopping) {
			/* gather for a moment: one commit for many hits */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += EVENTLOG_FLUSH_MS * 1000000L;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&l->wake, &l->mu, &until);
		}
		if (!l->head)
			continue;
		batch = l->head;
		n = l->queued;
		l->head = l->tail = NULL;
		l->queued = 0;
		l->busy = 1;
		pthread_cond_broadcast(&l->room);
		pthread_mutex_unlock(&l->mu);
		if (write_batch(l, batch) == 0) {
			free_list(batch);
			pthread_mutex_lock(&l->mu);
			l->written += n;
		} else {
			/* put it back in front and try again shortly; at stop,
			 * give up after one more try */
			struct timespec pause = { 0, 200 * 1000000L };

			nanosleep(&pause, NULL);
			pthread_mutex_lock(&l->mu);
			if (l->stopping && write_batch(l, batch) < 0) {
				l->lost += n;
				free_list(batch);
			} else if (l->stopping) {
				l->written += n;
				free_list(batch);
			} else {
				for (last = batch, q = batch; q; q = q->next)
					last = q;
				last->next = l->head;
				l->head = batch;
				if (!l->tail)
					l->tail = last;
				l->queued += n;
			}
		}
		l->busy = 0;
		pthread_cond_broadcast(&l->drained);
	}
	pthread_cond_broadcast(&l->drained);
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int
eventlog_open(const char *path, long busy_timeout_ms, struct eventlog **out, struct herr *err)
{
	struct eventlog *l = calloc(1, sizeof *l);

	*out = NULL;
	if (!l)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (db_open(path, DB_OPEN_EXISTING, busy_timeout_ms, &l->db, err) < 0) {
		free(l);
		return -1;
	}
	if (db_prepare(l->db, &l->insert, EVENT_INSERT, err) < 0) {
		db_close(l->db);
		free(l);
		return -1;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->wake, NULL);
	pthread_cond_init(&l->drained, NULL);
	pthread_cond_init(&l->room, NULL);
	if (pthread_create(&l->thread, NULL, writer, l) != 0) {
		db_close(l->db);
		free(l);
		return herr_set(err, EX_OSERR, NULL, "cannot start the event writer");
	}
	*out = l;
	return 0;
}

void
eventlog_add(struct eventlog *l, const struct event *e)
{
	const char *detail = e->detail ? e->detail : "{}";
	size_t n = strlen(detail);
	struct queued *q = malloc(sizeof *q + n + 1);

	if (!q)
		return; /* out of memory: the one place an event can be lost */
	q->next = NULL;
	snprintf(q->kind, sizeof q->kind, "%s", e->kind);
	q->issue_id = e->issue_id;
	q->subscriber_id = e->subscriber_id;
	q->list_id = e->list_id;
	q->at = e->at > 0 ? e->at : db_now_f();
	memcpy(q->detail, detail, n + 1);
	pthread_mutex_lock(&l->mu);
	while (l->queued >= EVENTLOG_QUEUE_MAX && !l->stopping)
		pthread_cond_wait(&l->room, &l->mu);
	if (l->tail)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
	l->queued++;
	l->added++;
	if (l->queued >= EVENTLOG_BATCH)
		pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->mu);
}

void
eventlog_flush(struct eventlog *l)
{
	long long target;

	pthread_mutex_lock(&l->mu);
	target = l->added;
	pthread_cond_signal(&l->wake);
	while (l->written + l->lost < target)
		pthread_cond_wait(&l->drained, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

long long
eventlog_written(const struct eventlog *l)
{
	return l->written;
}

int
eventlog_close(struct eventlog *l, struct herr *err)
{
	int ret = 0;

	if (!l)
		return 0;
	pthread_mutex_lock(&l->mu);
	l->stopping = 1;
	pthread_cond_broadcast(&l->wake);
	pthread_cond_broadcast(&l->room);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	if (l->lost) {
		*err = l->error;
		herr_wrap(err, "%lld events could not be written", l->lost);
		ret = -1;
	}
	sqlite3_finalize(l->insert);
	db_close(l->db);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->wake);
	pthread_cond_destroy(&l->drained);
	pthread_cond_destroy(&l->room);
	free(l);
	return ret;
}
