/*
 * subimport.c - a CSV file of subscribers into a list, in one transaction
 * (see subimport.h).
 *
 * The rows are written in the order of their addresses, so that the
 * list-sized B-trees are appended to:
 *   (1) read: csvimport.c reads and checks every row (a bad one is told by
 *       its line) on a reader thread of its own, which hands the good rows
 *       over in batches;
 *   (2) sort: the import's thread feeds them, through a virtual table, to
 *       SQLite's external sorter (runs in temporary files, merged), ORDER
 *       BY address key, then line; reading and sorting overlap on two
 *       cores, and no staging table is written, read back and dropped;
 *   (3) write: each row in that order goes through the subscriber writer,
 *       the one home of the subscribe rules.  A duplicate address is the
 *       row after its first line in that order.
 * Why: written in file order, every index keyed by the address
 * (subscribers.email_key, and the set of addresses seen that found the
 * duplicates) took its rows at random places; at a million rows most of the
 * import was the kernel and SQLite moving pages of those B-trees in and out
 * of the cache (17.5 s; the same file sorted took 9.5 s, a fifth of the
 * system time).  In key order each is appended to, and new subscribers get
 * their ids in address order (as listed by `sub ls` within one import).
 *
 * What the import says about its rows (bad, notes, skipped) is kept in a
 * temp table as it is found, in any pass, and given to the caller at the
 * end in line order, as a one-pass import gave it; also when the read
 * fails, for the rows before the failure.  The sorter and that table spill
 * to temporary files, so a file of ten million rows takes the memory of a
 * small one.
 */
#include "herald/subimport.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/buf.h"
#include "herald/db.h"
#include "herald/issue.h"

/* The columns of a dated consent from another system (subimport.h): the
 * consent itself, never attributes.  Matched as the header is, regardless
 * of case (csvimport.h has trimmed the names). */
#define COLUMN_CONSENT_AT     "consent_at"
#define COLUMN_CONSENT_SOURCE "consent_source"

/* What the messages table holds: one of the handler's callbacks. */
enum import_msg { MSG_BAD, MSG_NOTE, MSG_SKIPPED };

struct import_ctx {
	struct subscriber_writer       *w;
	sqlite3                        *db;
	sqlite3_stmt                   *msg;     /* a message for the end */
	const struct subimport_opts    *o;
	const struct subimport_handler *h;
	struct subimport_report        *rep;
	/* The attribute columns without the consent ones, from the header (the
	 * same for every row): their names, owned, and how many; -1 until the
	 * first row.  A row's record keeps only the values. */
	char          *keys[CSVIMPORT_COLUMNS_MAX];
	long           n_keys;
	struct buf     vals;  /* (1): the row's values, each ending in NUL */
	struct address addr;  /* (3): the row's address, rebuilt */
	sqlite3_stmt  *walk;  /* (3): the subscribers' keys, in order (key_absent()) */
	enum { WALK_START, WALK_AT, WALK_END, WALK_OFF } walk_state;
	char           walk_key[ADDRESS_MAX + 1]; /* WALK_AT: where the walk is */
	char source[CONSENT_SOURCE_MAX];  /* "import FILE": the import as the source */
	char brought[CONSENT_SOURCE_MAX]; /* "imported from FILE": a dated consent's detail */
};

/*
 * The messages table, made and emptied in the import's transaction (a
 * leftover of a failed import in the same connection is emptied first):
 * rowid order is the order found, which is the order within a line.
 */
#define MSGS_CREATE "CREATE TEMP TABLE IF NOT EXISTS herald_import_msgs (" \
	"line INTEGER NOT NULL, kind INTEGER NOT NULL, res INTEGER NOT NULL, text TEXT NOT NULL)"

static int
msgs_open(struct import_ctx *c, struct herr *err)
{
	if (db_exec(c->db, MSGS_CREATE, err) < 0 ||
	    db_exec(c->db, "DELETE FROM temp.herald_import_msgs", err) < 0 ||
	    db_prepare(c->db, &c->msg, "INSERT INTO temp.herald_import_msgs (line, kind, res, "
	               "text) VALUES (?1, ?2, ?3, ?4)", err) < 0)
		return -1;
	return 0;
}

static void
msgs_close(struct import_ctx *c)
{
	long i;

	sqlite3_finalize(c->msg);
	c->msg = NULL;
	sqlite3_exec(c->db, "DROP TABLE IF EXISTS temp.herald_import_msgs", NULL, NULL, NULL);
	for (i = 0; i < c->n_keys; i++)
		free(c->keys[i]);
	c->n_keys = 0;
	buf_free(&c->vals);
}

/* Keep a message for the end (see the top); `res` for MSG_SKIPPED. */
static int
msg_keep(struct import_ctx *c, unsigned long line, enum import_msg kind, int res,
         const char *text, struct herr *err)
{
	int rc;

	sqlite3_bind_int64(c->msg, 1, (sqlite3_int64)line);
	sqlite3_bind_int(c->msg, 2, kind);
	sqlite3_bind_int(c->msg, 3, res);
	sqlite3_bind_text(c->msg, 4, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(c->msg);
	sqlite3_reset(c->msg);
	if (rc != SQLITE_DONE)
		return db_error(c->db, err, "keep a message of the import");
	return 0;
}

/* Give the kept messages to the handler, by line.  Errors are not the
 * import's: what could be said is said. */
static void
msg_give(struct import_ctx *c)
{
	sqlite3_stmt *st;
	struct herr ignored;

	if (db_prepare(c->db, &st, "SELECT line, kind, res, text FROM temp.herald_import_msgs "
	               "ORDER BY line, rowid", &ignored) < 0)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		unsigned long line = (unsigned long)sqlite3_column_int64(st, 0);
		const char *text = (const char *)sqlite3_column_text(st, 3);

		if (!text)
			continue;
		switch (sqlite3_column_int(st, 1)) {
		case MSG_BAD:
			if (c->h->bad)
				c->h->bad(c->h->ctx, line, text);
			break;
		case MSG_NOTE:
			if (c->h->note)
				c->h->note(c->h->ctx, line, text);
			break;
		case MSG_SKIPPED:
			if (c->h->skipped)
				c->h->skipped(c->h->ctx, line, text,
				              (enum subscribe_result)sqlite3_column_int(st, 2));
			break;
		}
	}
	sqlite3_finalize(st);
}

/*
 * (1) The row's attributes without the consent columns (their names kept
 * from the first row) into c->vals, and its consent: *at and *source NULL
 * when the row gives none.  -1 with the reason in `bad` when consent_at is
 * not an ISO 8601 time or lies in the future; -2 when out of memory.
 */
static int
row_split(struct import_ctx *c, const struct csvimport_row *row, long long *at,
          const char **source, char *bad, size_t size)
{
	const char *at_text = "";
	struct herr terr;
	size_t i;
	int first = c->n_keys < 0;

	*source = NULL;
	if (first)
		c->n_keys = 0;
	buf_reset(&c->vals);
	for (i = 0; i < row->n_attrs && i < CSVIMPORT_COLUMNS_MAX; i++) {
		if (!strcasecmp(row->attr_keys[i], COLUMN_CONSENT_AT)) {
			at_text = row->attr_values[i];
			continue;
		}
		if (!strcasecmp(row->attr_keys[i], COLUMN_CONSENT_SOURCE)) {
			if (*row->attr_values[i])
				*source = row->attr_values[i];
			continue;
		}
		if (first) {
			if (!(c->keys[c->n_keys] = strdup(row->attr_keys[i])))
				return -2;
			c->n_keys++;
		}
		if (buf_add(&c->vals, row->attr_values[i], strlen(row->attr_values[i]) + 1) < 0)
			return -2;
	}
	*at = 0;
	if (!*at_text)
		return 1;
	herr_clear(&terr);
	if (issue_parse_time(at_text, at, &terr) < 0) {
		snprintf(bad, size, "consent_at: %s", terr.msg);
		return -1;
	}
	if (*at > db_now()) {
		snprintf(bad, size, "consent_at '%s' is in the future", at_text);
		return -1;
	}
	return 0;
}

/*
 * (1) and (2) run on two threads: a reader thread runs csvimport.c over
 * the file and writes what it finds (good rows, bad rows, notes) as
 * records into a batch; the import's thread feeds each batch to the sorter
 * (pipe_next()).  Parsing and checking a row costs about as much CPU as
 * sorting it, so on two cores the two take the time of one.  Only the
 * import's thread touches the database.  Two batches take turns (one
 * filled while the other is read), so memory stays at three batches.
 * A record: its kind (one byte), its line (unsigned long), then for
 * PIPE_BAD and PIPE_NOTE the text, for PIPE_ROW: key, email ("" when the
 * same as key), name, the length of the values (size_t) and the values
 * (c->vals), a byte saying whether consent_at was given and its time
 * (long long), consent_source, note, bad ("" for none); strings end in
 * NUL, numbers are copied unaligned.
 */
#define PIPE_BATCH (256 * 1024)  /* a batch is handed over once this full */
#define PIPE_MAX   (4 * 1024 * 1024) /* a batch's cap: PIPE_BATCH and one row */

enum pipe_kind { PIPE_ROW, PIPE_BAD, PIPE_NOTE };

struct pipe {
	struct import_ctx *c;
	pthread_mutex_t    mu;
	pthread_cond_t     cv;
	struct buf         fill;     /* the reader's batch being filled */
	struct buf         full;     /* guarded by mu: a batch for the import's
	                                thread when `ready`, else an empty one */
	int                ready;    /* guarded by mu */
	int                done;     /* guarded by mu: the reader has finished */
	int                stop;     /* guarded by mu: the import's thread failed */
	int                rc;       /* the reader's csvimport_read_columns() */
	struct herr        err;      /* ... and its error */
	int                oom;      /* a record did not fit: out of memory */
	int                stopped;  /* the reader stopped because `stop` was set */
	pthread_t          thread;
	int                started;  /* the thread runs (pipe_begin() .. pipe_end()) */
};

/* The reader's batch to the import's thread: 0, or -1 when the import's
 * thread has stopped (the reader then drops what it has and stops too). */
static int
pipe_hand(struct pipe *p)
{
	struct buf t;

	pthread_mutex_lock(&p->mu);
	while (p->ready && !p->stop)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->stop) {
		pthread_mutex_unlock(&p->mu);
		buf_reset(&p->fill);
		return -1;
	}
	t = p->full;
	p->full = p->fill;
	p->fill = t;
	buf_reset(&p->fill);
	p->ready = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* Append one string of a record, with its NUL. */
static int
pipe_str(struct pipe *p, const char *s)
{
	return buf_add(&p->fill, s ? s : "", strlen(s ? s : "") + 1);
}

/* Start a record; hands the batch over first when it is full. */
static int
pipe_start(struct pipe *p, enum pipe_kind kind, unsigned long line)
{
	unsigned char k = (unsigned char)kind;

	if (p->fill.len >= PIPE_BATCH && pipe_hand(p) < 0)
		return -1;
	if (buf_addc(&p->fill, (char)k) < 0 || buf_add(&p->fill, &line, sizeof line) < 0) {
		p->oom = 1;
		return -1;
	}
	return 0;
}

/* (1) A good row, as csvimport.c gave it, into a record (reader thread). */
static int
pipe_row(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct pipe *p = ctx;
	struct import_ctx *c = p->c;
	const char *source;
	char bad[HERR_MSG_MAX + 32];
	long long at;
	unsigned char given;
	int rc = row_split(c, row, &at, &source, bad, sizeof bad);

	if (rc == -2)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (pipe_start(p, PIPE_ROW, row->line) < 0)
		goto stop;
	given = rc == 0;
	if (pipe_str(p, row->address.key) < 0 ||
	    pipe_str(p, strcmp(row->address.addr, row->address.key) ? row->address.addr : "") <
	    0 || pipe_str(p, row->name) < 0 ||
	    buf_add(&p->fill, &c->vals.len, sizeof c->vals.len) < 0 ||
	    buf_add(&p->fill, c->vals.data ? c->vals.data : "", c->vals.len) < 0 ||
	    buf_addc(&p->fill, (char)given) < 0 || buf_add(&p->fill, &at, sizeof at) < 0 ||
	    pipe_str(p, source) < 0 || pipe_str(p, row->note) < 0 ||
	    pipe_str(p, rc == -1 ? bad : NULL) < 0) {
		p->oom = 1;
		goto stop;
	}
	return 0;
stop:
	/* the record did not fit, or the import's thread has the error (then
	 * this one is only to stop csvimport.c: pipe_end() does not give it) */
	if (!p->oom)
		p->stopped = 1;
	return herr_set(err, p->oom ? EX_OSERR : EX_SOFTWARE, NULL,
	                p->oom ? "out of memory" : "the import stopped");
}

/* A bad row or a note from csvimport.c into a record (reader thread).
 * csvimport.c cannot be told that it did not fit: pipe_row() says so at
 * the next row, and the import fails at the end. */
static void
pipe_bad(void *ctx, unsigned long line, const char *reason)
{
	struct pipe *p = ctx;

	if (pipe_start(p, PIPE_BAD, line) == 0 && pipe_str(p, reason) < 0)
		p->oom = 1;
}

static void
pipe_note(void *ctx, unsigned long line, const char *msg)
{
	struct pipe *p = ctx;

	if (pipe_start(p, PIPE_NOTE, line) == 0 && pipe_str(p, msg) < 0)
		p->oom = 1;
}

/* The reader thread: the whole file through csvimport.c, then the last
 * batch, then `done`. */
static void *
pipe_read(void *arg)
{
	static const struct csvimport_columns defaults = { NULL, NULL };
	struct pipe *p = arg;
	const struct subimport_opts *o = p->c->o;
	struct csvimport_handler ch;

	memset(&ch, 0, sizeof ch);
	ch.row = pipe_row;
	ch.bad = pipe_bad;
	ch.note = pipe_note;
	ch.defer_dups = 1;
	ch.ctx = p;
	herr_clear(&p->err);
	p->rc = csvimport_read_columns(o->fp, o->path, o->columns ? o->columns : &defaults, &ch,
	                               &p->err);
	if (p->rc == 0 && p->oom)
		p->rc = herr_set(&p->err, EX_OSERR, o->path, "out of memory");
	/* the last batch, also after a failure: its bad rows are still told
	 * (when it cannot go, the import's thread has failed) */
	if (p->fill.len && pipe_hand(p) < 0 && p->rc == 0)
		p->rc = -1;
	pthread_mutex_lock(&p->mu);
	p->done = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Start the reader thread on the file.  EX_OSERR when it cannot start. */
static int
pipe_begin(struct pipe *p, struct import_ctx *c, struct herr *err)
{
	int rc;

	memset(p, 0, sizeof *p);
	p->c = c;
	buf_init(&p->fill, PIPE_MAX);
	buf_init(&p->full, PIPE_MAX);
	if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0)
		goto fail;
	if ((rc = pthread_cond_init(&p->cv, NULL)) != 0) {
		pthread_mutex_destroy(&p->mu);
		goto fail;
	}
	if ((rc = pthread_create(&p->thread, NULL, pipe_read, p)) != 0) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		goto fail;
	}
	p->started = 1;
	return 0;
fail:
	return herr_set(err, EX_OSERR, NULL, "cannot start the import's reader: %s", strerror(rc));
}

/* Stop the reader (at its next batch, if it is not done) and wait for it.
 * -1 with `err` when the reader failed (the file: csvimport.h's errors);
 * 0 when it read the whole file or was stopped. */
static int
pipe_end(struct pipe *p, struct herr *err)
{
	if (!p->started)
		return 0;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	buf_free(&p->fill);
	buf_free(&p->full);
	p->started = 0;
	if (p->rc < 0 && p->err.code && !p->stopped) {
		*err = p->err;
		return -1;
	}
	return 0;
}

/* The next batch for the import's thread, into *mine (the one it had goes
 * back to the reader): 1, or 0 when the reader is done. */
static int
pipe_take(struct pipe *p, struct buf *mine)
{
	struct buf t;

	pthread_mutex_lock(&p->mu);
	while (!p->ready && !p->done)
		pthread_cond_wait(&p->cv, &p->mu);
	if (!p->ready) {
		pthread_mutex_unlock(&p->mu);
		return 0;
	}
	buf_reset(mine);
	t = *mine;
	*mine = p->full;
	p->full = t;
	p->ready = 0;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 1;
}

/* Take the next string of a record at *at; NULL past the end. */
static const char *
take_str(const struct buf *b, size_t *at)
{
	const char *s, *end;

	if (*at >= b->len)
		return NULL;
	s = b->data + *at;
	if (!(end = memchr(s, '\0', b->len - *at)))
		return NULL;
	*at += (size_t)(end - s) + 1;
	return s;
}

static int
take(const struct buf *b, size_t *at, void *out, size_t n)
{
	if (b->len - *at < n)
		return -1;
	memcpy(out, b->data + *at, n);
	*at += n;
	return 0;
}

/*
 * The reader's rows as a table SQLite can sort: the eponymous virtual
 * table herald_import_pipe(PIPE), PIPE the struct pipe passed with
 * sqlite3_bind_pointer().  (3) reads it ORDER BY key, line, so the rows go
 * from the reader's batches straight into SQLite's sorter: no staging
 * table written, read back and dropped.  Bad rows and notes are not rows
 * of it: the cursor keeps them as it meets them (msg_keep(), in line
 * order), so they are kept even when the read fails later.  Its columns
 * are the record's (see above); a text the record has as "" is NULL here.
 */
#define PIPE_VTAB  "herald_import_pipe"
#define PIPE_TYPE  "herald_import_pipe" /* sqlite3_bind_pointer()'s type */
#define PIPE_TABLE "CREATE TABLE x(line INTEGER, key TEXT, email TEXT, name TEXT, vals BLOB, " \
	"consent_at INTEGER, consent_source TEXT, note TEXT, bad TEXT, pipe HIDDEN)"
enum { COL_LINE, COL_KEY, COL_EMAIL, COL_NAME, COL_VALS, COL_AT, COL_SOURCE, COL_NOTE,
       COL_BAD, COL_PIPE };

struct pipe_cursor {
	sqlite3_vtab_cursor base;
	struct pipe        *p;
	struct buf          mine;   /* the batch being read */
	size_t              at;     /* the next record in it */
	int                 eof;
	sqlite3_int64       line;   /* the current row, pointing into `mine` */
	const char         *text[COL_BAD + 1]; /* key .. bad, NULL for none */
	const char         *vals;
	size_t              n_vals;
	long long           when;
	int                 given;  /* consent_at given */
};

static int
pipe_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
             char **errmsg)
{
	sqlite3_vtab *v;
	int rc;

	(void)aux;
	(void)argc;
	(void)argv;
	(void)errmsg;
	if ((rc = sqlite3_declare_vtab(db, PIPE_TABLE)) != SQLITE_OK)
		return rc;
	if (!(v = sqlite3_malloc(sizeof *v)))
		return SQLITE_NOMEM;
	memset(v, 0, sizeof *v);
	*out = v;
	return SQLITE_OK;
}

static int
pipe_disconnect(sqlite3_vtab *v)
{
	sqlite3_free(v);
	return SQLITE_OK;
}

/* Only with the pipe given (an equality on the hidden column). */
static int
pipe_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
	int i;

	(void)v;
	for (i = 0; i < info->nConstraint; i++)
		if (info->aConstraint[i].iColumn == COL_PIPE &&
		    info->aConstraint[i].op == SQLITE_INDEX_CONSTRAINT_EQ &&
		    info->aConstraint[i].usable) {
			info->aConstraintUsage[i].argvIndex = 1;
			info->aConstraintUsage[i].omit = 1;
			info->estimatedCost = 1e6;
			return SQLITE_OK;
		}
	return SQLITE_CONSTRAINT;
}

static int
pipe_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
	struct pipe_cursor *k = sqlite3_malloc(sizeof *k);

	(void)v;
	if (!k)
		return SQLITE_NOMEM;
	memset(k, 0, sizeof *k);
	buf_init(&k->mine, PIPE_MAX);
	k->eof = 1;
	*out = &k->base;
	return SQLITE_OK;
}

static int
pipe_close(sqlite3_vtab_cursor *cur)
{
	struct pipe_cursor *k = (struct pipe_cursor *)cur;

	buf_free(&k->mine);
	sqlite3_free(k);
	return SQLITE_OK;
}

static int
pipe_fail(struct pipe_cursor *k, const char *msg)
{
	sqlite3_free(k->base.pVtab->zErrMsg);
	k->base.pVtab->zErrMsg = sqlite3_mprintf("%s", msg);
	return SQLITE_ERROR;
}

/* The next row: records are read from the batches as they come; bad rows
 * and notes are kept on the way. */
static int
pipe_next(sqlite3_vtab_cursor *cur)
{
	struct pipe_cursor *k = (struct pipe_cursor *)cur;
	const struct buf *b = &k->mine;
	unsigned long line;
	unsigned char kind, given;
	struct herr e;
	int i;

	for (;;) {
		if (k->at >= b->len) {
			k->at = 0;
			if (!pipe_take(k->p, &k->mine)) {
				k->eof = 1;
				/* the file's own error is pipe_end()'s to give */
				return k->p->rc < 0 ? pipe_fail(k, "the import's reader failed") :
				                      SQLITE_OK;
			}
			continue;
		}
		if (take(b, &k->at, &kind, 1) < 0 || take(b, &k->at, &line, sizeof line) < 0)
			return pipe_fail(k, "a batch of the import is cut short");
		if (kind != PIPE_ROW) {
			const char *text = take_str(b, &k->at);

			if (!text)
				return pipe_fail(k, "a batch of the import is cut short");
			if (kind == PIPE_BAD)
				k->p->c->rep->bad++;
			herr_clear(&e);
			if (msg_keep(k->p->c, line, kind == PIPE_BAD ? MSG_BAD : MSG_NOTE, 0, text,
			             &e) < 0)
				return pipe_fail(k, e.msg);
			continue;
		}
		k->line = (sqlite3_int64)line;
		for (i = COL_KEY; i <= COL_NAME; i++)
			if (!(k->text[i] = take_str(b, &k->at)))
				return pipe_fail(k, "a batch of the import is cut short");
		if (take(b, &k->at, &k->n_vals, sizeof k->n_vals) < 0 ||
		    b->len - k->at < k->n_vals)
			return pipe_fail(k, "a batch of the import is cut short");
		k->vals = b->data + k->at;
		k->at += k->n_vals;
		if (take(b, &k->at, &given, 1) < 0 || take(b, &k->at, &k->when, sizeof k->when) < 0)
			return pipe_fail(k, "a batch of the import is cut short");
		k->given = given;
		for (i = COL_SOURCE; i <= COL_BAD; i++)
			if (!(k->text[i] = take_str(b, &k->at)))
				return pipe_fail(k, "a batch of the import is cut short");
		return SQLITE_OK;
	}
}

static int
pipe_filter(sqlite3_vtab_cursor *cur, int idx, const char *idx_str, int argc,
            sqlite3_value **argv)
{
	struct pipe_cursor *k = (struct pipe_cursor *)cur;

	(void)idx;
	(void)idx_str;
	if (argc != 1 || !(k->p = sqlite3_value_pointer(argv[0], PIPE_TYPE)))
		return pipe_fail(k, "herald_import_pipe() needs the import's pipe");
	k->eof = 0;
	k->at = 0;
	buf_reset(&k->mine);
	return pipe_next(cur);
}

static int
pipe_eof(sqlite3_vtab_cursor *cur)
{
	return ((struct pipe_cursor *)cur)->eof;
}

static int
pipe_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct pipe_cursor *k = (struct pipe_cursor *)cur;

	/* SQLITE_STATIC: `mine` stays as it is until the next pipe_next() */
	switch (col) {
	case COL_LINE:
		sqlite3_result_int64(ctx, k->line);
		break;
	case COL_VALS:
		sqlite3_result_blob(ctx, k->vals, (int)k->n_vals, SQLITE_STATIC);
		break;
	case COL_AT:
		if (k->given)
			sqlite3_result_int64(ctx, k->when);
		break;
	case COL_PIPE:
		break;
	default:
		/* "" is none, but for the name (the key is never empty) */
		if (*k->text[col] || col == COL_NAME)
			sqlite3_result_text(ctx, k->text[col], -1, SQLITE_STATIC);
		break;
	}
	return SQLITE_OK;
}

static int
pipe_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = ((struct pipe_cursor *)cur)->line;
	return SQLITE_OK;
}

static const sqlite3_module pipe_module = {
	.iVersion = 0,
	.xCreate = NULL, /* eponymous only */
	.xConnect = pipe_connect,
	.xBestIndex = pipe_best_index,
	.xDisconnect = pipe_disconnect,
	.xDestroy = pipe_disconnect,
	.xOpen = pipe_open,
	.xClose = pipe_close,
	.xFilter = pipe_filter,
	.xNext = pipe_next,
	.xEof = pipe_eof,
	.xColumn = pipe_column,
	.xRowid = pipe_rowid,
};

/*
 * (3) Whether no subscriber has `key`, told the writer so that it does not
 * look (signup_req.absent): 1 when none has, 0 when one has or when the
 * walk cannot tell, -1 on a database error.  The keys come in ascending
 * order, so one statement walks the address index once alongside them (a
 * merge), a step now and then instead of a lookup a row.  The writer
 * inserts only keys the walk has passed (absent ones, below its position);
 * SQLite saves the walk's position by key and seeks back to it, so the
 * walk still sees every subscriber there was before, in order.
 */
#define WALK_SQL "SELECT email_key FROM main.subscribers WHERE email_key >= ?1 " \
	"ORDER BY email_key"

static int
key_absent(struct import_ctx *c, const char *key, struct herr *err)
{
	const char *at;
	int rc, cmp;

	for (;;) {
		switch (c->walk_state) {
		case WALK_OFF:
			return 0;
		case WALK_END:
			return 1;
		case WALK_AT:
			if ((cmp = strcmp(c->walk_key, key)) >= 0)
				return cmp > 0;
			break;
		case WALK_START:
			sqlite3_bind_text(c->walk, 1, key, -1, SQLITE_TRANSIENT);
			break;
		}
		rc = sqlite3_step(c->walk);
		if (rc == SQLITE_DONE) {
			c->walk_state = WALK_END;
			continue;
		}
		if (rc != SQLITE_ROW)
			return db_error(c->db, err, "read the subscribers' addresses");
		at = (const char *)sqlite3_column_text(c->walk, 0);
		/* a key no address_parse() made: let the writer look */
		if (!at || strlen(at) >= sizeof c->walk_key) {
			c->walk_state = WALK_OFF;
			continue;
		}
		memcpy(c->walk_key, at, strlen(at) + 1);
		c->walk_state = WALK_AT;
	}
}

/*
 * (3) One sorted row (the columns of ROWS_SORTED) through the subscriber
 * writer; what it came to is counted and kept.  -1 only when the database
 * failed.
 */
static int
write_row(struct import_ctx *c, sqlite3_stmt *st, struct herr *err)
{
	struct tmpl_attr attrs[CSVIMPORT_COLUMNS_MAX];
	struct consent_ctx consent;
	struct signup_req req;
	struct signup_result res;
	struct herr rerr;
	unsigned long line = (unsigned long)sqlite3_column_int64(st, 0);
	const char *key = (const char *)sqlite3_column_text(st, 1);
	const char *email = sqlite3_column_type(st, 2) == SQLITE_NULL ? key :
	                    (const char *)sqlite3_column_text(st, 2);
	const char *name = (const char *)sqlite3_column_text(st, 3);
	const char *vals = sqlite3_column_blob(st, 4);
	size_t n_vals = (size_t)sqlite3_column_bytes(st, 4), off = 0;
	const char *note = (const char *)sqlite3_column_text(st, 7);
	const char *bad = (const char *)sqlite3_column_text(st, 8);
	const char *local_end, *domain;
	long i;
	int absent;

	if (!key || !email || !name)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (note && msg_keep(c, line, MSG_NOTE, 0, note, err) < 0)
		return -1;
	if (bad) {
		c->rep->bad++;
		return msg_keep(c, line, MSG_BAD, 0, bad, err);
	}
	if ((absent = key_absent(c, key, err)) < 0)
		return -1;
	/* struct address from the record: ascii is the local part as
	 * given and the A-label domain, which is key's (address_parse()) */
	local_end = strrchr(email, '@');
	domain = strrchr(key, '@');
	if (!local_end || !domain || strlen(email) >= sizeof c->addr.addr ||
	    strlen(key) >= sizeof c->addr.key ||
	    (size_t)(local_end - email) + strlen(domain) >= sizeof c->addr.ascii)
		return herr_set(err, EX_SOFTWARE, NULL, "a sorted address is not one");
	memcpy(c->addr.addr, email, strlen(email) + 1);
	memcpy(c->addr.key, key, strlen(key) + 1);
	memcpy(c->addr.ascii, email, (size_t)(local_end - email));
	memcpy(c->addr.ascii + (local_end - email), domain, strlen(domain) + 1);
	memcpy(c->addr.domain, domain + 1, strlen(domain + 1) + 1);
	for (i = 0; i < c->n_keys; i++) {
		attrs[i].key = c->keys[i];
		attrs[i].value = off < n_vals ? vals + off : "";
		off += strlen(attrs[i].value) + 1;
	}
	memset(&consent, 0, sizeof consent);
	consent.source = sqlite3_column_type(st, 6) == SQLITE_NULL ? c->source :
	                 (const char *)sqlite3_column_text(st, 6);
	if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
		consent.at = sqlite3_column_int64(st, 5);
		consent.text = c->brought;
	} else if (sqlite3_column_type(st, 6) != SQLITE_NULL)
		consent.text = c->brought;
	if (!consent.source)
		return herr_set(err, EX_OSERR, NULL, "out of memory");

	memset(&req, 0, sizeof req);
	req.addr = &c->addr;
	req.name = name;
	req.attrs = attrs;
	req.n_attrs = (size_t)i;
	req.unconfirmed = c->o->unconfirmed;
	req.source = SIGNUP_IMPORT;
	req.consent = &consent;
	req.welcome = c->o->welcome;
	req.erased_key = c->o->erased_key;
	req.absent = absent;
	herr_clear(&rerr);
	if (subscriber_signup_in(c->w, c->o->list, &req, &res, &rerr) < 0) {
		if (rerr.code != EX_DATAERR) {
			*err = rerr;
			return -1; /* the database failed: stop, nothing is committed */
		}
		c->rep->bad++;
		return msg_keep(c, line, MSG_BAD, 0, rerr.msg, err);
	}
	c->rep->counts[res.res]++;
	if (res.res == SUBSCRIBE_SKIPPED_UNSUBSCRIBED || res.res == SUBSCRIBE_SKIPPED_BLOCKED ||
	    res.res == SUBSCRIBE_SKIPPED_SUPPRESSED || res.res == SUBSCRIBE_SKIPPED_ERASED)
		return msg_keep(c, line, MSG_SKIPPED, res.res, c->addr.addr, err);
	return 0;
}

/* (3): every row in key order; the rows after the first of a key
 * are its duplicates, told by the first's line as csvimport.c would. */
#define ROWS_SORTED "SELECT line, key, email, name, vals, consent_at, consent_source, " \
	"note, bad FROM " PIPE_VTAB "(?1) ORDER BY key, line"

static int
write_rows(struct import_ctx *c, struct pipe *p, struct herr *err)
{
	sqlite3_stmt *st;
	char last[ADDRESS_MAX + 1] = "", dup[64];
	unsigned long first = 0;
	int rc;

	c->walk_state = WALK_START;
	if (db_prepare(c->db, &c->walk, WALK_SQL, err) < 0)
		return -1;
	if (sqlite3_create_module_v2(c->db, PIPE_VTAB, &pipe_module, NULL, NULL) != SQLITE_OK ||
	    db_prepare(c->db, &st, ROWS_SORTED, err) < 0) {
		if (!err->code)
			db_error(c->db, err, "read the file");
		sqlite3_finalize(c->walk);
		c->walk = NULL;
		return -1;
	}
	sqlite3_bind_pointer(st, 1, p, PIPE_TYPE, NULL);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 1);
		unsigned long line = (unsigned long)sqlite3_column_int64(st, 0);

		if (key && first && !strcmp(key, last)) {
			snprintf(dup, sizeof dup, "duplicate of line %lu", first);
			c->rep->bad++;
			if ((rc = msg_keep(c, line, MSG_BAD, 0, dup, err)) < 0)
				goto out;
			continue;
		}
		if (key && strlen(key) < sizeof last)
			memcpy(last, key, strlen(key) + 1);
		first = line;
		if ((rc = write_row(c, st, err)) < 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		/* when the reader failed, pipe_end() gives its error (the file's)
		 * instead of this one */
		rc = db_error(c->db, err, "read the file");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(c->walk);
	c->walk = NULL;
	return rc;
}

/*
 * The page caches an import works in, in KiB.  Written in key order (see
 * the top), the list-sized B-trees take their rows at their ends, so a few
 * MB do.  The sorter takes its in-memory run from the main cache's size:
 * with PRAGMA threads = 1 a second thread sorts and writes out one run
 * while the next fills, and the last run is sorted on the import's thread
 * before the first row comes out, so shorter runs overlap better (at a
 * million rows and load 3-4: 2-4 MB 2.4-3.2 s to the first row, 8 MB
 * 4.0 s; 16 MB took the process to 70 MB).  The process stays near 31 MB
 * at any size.  Restored afterwards, as are the foreign keys.
 *
 * The foreign keys are off during the import: every reference it writes
 * is to the list (checked to exist inside the transaction, import_in())
 * or to the subscriber the same row found or inserted, so the four parent
 * lookups a row cost (subscription and consent record, each to list and
 * subscriber) checked nothing; they were a tenth of the import's CPU.
 * The import deletes nothing, so no cascade is missed.
 */
#define IMPORT_CACHE_MAIN_KIB 4096
#define IMPORT_CACHE_TEMP_KIB 2048
#define IMPORT_SORT_THREADS   1

static int
import_in(struct import_ctx *c, struct herr *err)
{
	const struct subimport_opts *o = c->o;
	struct list still;
	struct pipe p;
	int rc = -1;

	memset(&p, 0, sizeof p);
	if (db_begin(c->db, err) < 0)
		return -1;
	/* with the foreign keys off (subimport_run()), the one reference not
	 * made in this transaction: the list, looked up before it began */
	if (list_get_by_id(c->db, o->list->id, &still, err) < 0 ||
	    subscriber_writer_open(c->db, &c->w, err) < 0 || subscriber_writer_bulk(c->w, err) < 0 ||
	    msgs_open(c, err) < 0 || pipe_begin(&p, c, err) < 0)
		goto out;
	rc = write_rows(c, &p, err);
	/* the file's error first: a database error after it is its echo */
	if (pipe_end(&p, err) < 0)
		rc = -1;
out:
	msg_give(c);
	subscriber_writer_close(c->w);
	c->w = NULL;
	msgs_close(c);
	if (rc < 0 || o->dry_run) {
		db_rollback(c->db);
		return rc;
	}
	return db_commit(c->db, err);
}

int
subimport_run(sqlite3 *db, const struct subimport_opts *o, const struct subimport_handler *h,
              struct subimport_report *rep, struct herr *err)
{
	struct import_ctx c;
	struct herr ignored;
	int rc, main_was, temp_was, fk_was, threads_was;

	memset(rep, 0, sizeof *rep);
	/* rule (10) fails closed: without the secret no erased address
	 * could be recognised, and a stale file would bring them back */
	if (!o->erased_key)
		return herr_set(err, EX_SOFTWARE, NULL, "an import needs the token secret to "
		                "skip erased addresses");
	memset(&c, 0, sizeof c);
	c.db = db;
	c.o = o;
	c.h = h;
	c.rep = rep;
	c.n_keys = -1;
	buf_init(&c.vals, CSVIMPORT_COLUMNS_MAX * (CSVIMPORT_FIELD_MAX + 1));
	/* consent.h (2): the file as the admin named it */
	snprintf(c.source, sizeof c.source, "import %s",
	         o->path && strcmp(o->path, "-") ? o->path : "(standard input)");
	snprintf(c.brought, sizeof c.brought, "imported from %s",
	         o->path && strcmp(o->path, "-") ? o->path : "standard input");
	if (db_cache_size(db, "main", -IMPORT_CACHE_MAIN_KIB, &main_was, err) < 0)
		return -1;
	rc = -1;
	if (db_cache_size(db, "temp", -IMPORT_CACHE_TEMP_KIB, &temp_was, err) < 0)
		goto main_cache;
	if (db_pragma_swap(db, "foreign_keys", 0, &fk_was, err) < 0)
		goto temp_cache;
	if (db_pragma_swap(db, "threads", IMPORT_SORT_THREADS, &threads_was, err) == 0) {
		rc = import_in(&c, err);
		db_pragma_swap(db, "threads", threads_was, &threads_was, &ignored);
	}
	db_pragma_swap(db, "foreign_keys", fk_was, &fk_was, &ignored);
temp_cache:
	db_cache_size(db, "temp", temp_was, &temp_was, &ignored);
main_cache:
	db_cache_size(db, "main", main_was, &main_was, &ignored);
	return rc;
}
