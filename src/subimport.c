/*
 * subimport.c - a CSV file of subscribers into a list, in one transaction
 * (see subimport.h).
 */
#include "herald/subimport.h"

#include <string.h>

#include "herald/db.h"

struct import_ctx {
	struct subscriber_writer       *w;
	const struct subimport_opts    *o;
	const struct subimport_handler *h;
	struct subimport_report        *rep;
};

static int
import_row(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct import_ctx *c = ctx;
	struct tmpl_attr attrs[CSVIMPORT_COLUMNS_MAX];
	struct signup_req req;
	struct signup_result res;
	struct herr rerr;
	size_t i;

	for (i = 0; i < row->n_attrs && i < CSVIMPORT_COLUMNS_MAX; i++) {
		attrs[i].key = row->attr_keys[i];
		attrs[i].value = row->attr_values[i];
	}
	memset(&req, 0, sizeof req);
	req.addr = &row->address;
	req.name = row->name;
	req.attrs = attrs;
	req.n_attrs = i;
	req.unconfirmed = c->o->unconfirmed;
	req.source = SIGNUP_IMPORT;
	herr_clear(&rerr);
	if (subscriber_signup_in(c->w, c->o->list, &req, &res, &rerr) < 0) {
		if (rerr.code != EX_DATAERR) {
			*err = rerr;
			return -1; /* the database failed: stop, nothing is committed */
		}
		if (c->h->bad)
			c->h->bad(c->h->ctx, row->line, rerr.msg);
		c->rep->bad++;
		return 0;
	}
	c->rep->counts[res.res]++;
	if ((res.res == SUBSCRIBE_SKIPPED_UNSUBSCRIBED || res.res == SUBSCRIBE_SKIPPED_BLOCKED ||
	     res.res == SUBSCRIBE_SKIPPED_SUPPRESSED) && c->h->skipped)
		c->h->skipped(c->h->ctx, row->line, row->address.addr, res.res);
	return 0;
}

static void
import_bad(void *ctx, unsigned long line, const char *reason)
{
	struct import_ctx *c = ctx;

	if (c->h->bad)
		c->h->bad(c->h->ctx, line, reason);
	c->rep->bad++;
}

static void
import_note(void *ctx, unsigned long line, const char *msg)
{
	struct import_ctx *c = ctx;

	if (c->h->note)
		c->h->note(c->h->ctx, line, msg);
}

int
subimport_run(sqlite3 *db, const struct subimport_opts *o, const struct subimport_handler *h,
              struct subimport_report *rep, struct herr *err)
{
	static const struct csvimport_columns defaults = { NULL, NULL };
	struct csvimport_handler ch;
	struct import_ctx c;

	memset(rep, 0, sizeof *rep);
	memset(&c, 0, sizeof c);
	c.o = o;
	c.h = h;
	c.rep = rep;
	ch.row = import_row;
	ch.bad = import_bad;
	ch.note = import_note;
	ch.ctx = &c;
	if (db_begin(db, err) < 0)
		return -1;
	if (subscriber_writer_open(db, &c.w, err) < 0 ||
	    csvimport_read_columns(o->fp, o->path, o->columns ? o->columns : &defaults, &ch,
	                           err) < 0) {
		subscriber_writer_close(c.w);
		db_rollback(db);
		return -1;
	}
	subscriber_writer_close(c.w);
	if (o->dry_run) {
		db_rollback(db);
		return 0;
	}
	return db_commit(db, err);
}
