/*
 * subimport.c - a CSV file of subscribers into a list, in one transaction
 * (see subimport.h).
 */
#include "herald/subimport.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "herald/db.h"
#include "herald/issue.h"

/* The columns of a dated consent from another system (subimport.h): the
 * consent itself, never attributes.  Matched as the header is, regardless
 * of case (csvimport.h has trimmed the names). */
#define COLUMN_CONSENT_AT     "consent_at"
#define COLUMN_CONSENT_SOURCE "consent_source"

struct import_ctx {
	struct subscriber_writer       *w;
	sqlite3_stmt                   *seen_add;  /* seen_row(): new key, or ignored */
	sqlite3_stmt                   *seen_line; /* seen_row(): where it was first */
	const struct subimport_opts    *o;
	const struct subimport_handler *h;
	struct subimport_report        *rep;
	char source[CONSENT_SOURCE_MAX];  /* "import FILE": the import as the source */
	char brought[CONSENT_SOURCE_MAX]; /* "imported from FILE": a dated consent's detail */
};

/*
 * The row's consent (consent.h) and its attributes without the consent
 * columns.  With consent_at or consent_source (a consent another system
 * recorded), that time and those words, and the file that brought them as
 * the detail; without, the import itself, now.  -1 with the reason in
 * `bad` when consent_at is not an ISO 8601 time or lies in the future.
 */
static int
row_consent(const struct import_ctx *c, const struct csvimport_row *row,
            struct consent_ctx *cc, struct tmpl_attr *attrs, size_t *n_attrs, char *bad,
            size_t size)
{
	const char *at = "", *source = "";
	struct herr terr;
	size_t i, n = 0;

	for (i = 0; i < row->n_attrs && i < CSVIMPORT_COLUMNS_MAX; i++) {
		if (!strcasecmp(row->attr_keys[i], COLUMN_CONSENT_AT))
			at = row->attr_values[i];
		else if (!strcasecmp(row->attr_keys[i], COLUMN_CONSENT_SOURCE))
			source = row->attr_values[i];
		else {
			attrs[n].key = row->attr_keys[i];
			attrs[n++].value = row->attr_values[i];
		}
	}
	*n_attrs = n;
	memset(cc, 0, sizeof *cc);
	cc->source = *source ? source : c->source;
	if (*at || *source)
		cc->text = c->brought;
	if (!*at)
		return 0;
	herr_clear(&terr);
	if (issue_parse_time(at, &cc->at, &terr) < 0) {
		snprintf(bad, size, "consent_at: %s", terr.msg);
		return -1;
	}
	if (cc->at > db_now()) {
		snprintf(bad, size, "consent_at '%s' is in the future", at);
		return -1;
	}
	return 0;
}

static int
import_row(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct import_ctx *c = ctx;
	struct tmpl_attr attrs[CSVIMPORT_COLUMNS_MAX];
	struct consent_ctx consent;
	struct signup_req req;
	struct signup_result res;
	struct herr rerr;
	char bad[HERR_MSG_MAX + 32];
	size_t i;

	if (row_consent(c, row, &consent, attrs, &i, bad, sizeof bad) < 0) {
		if (c->h->bad)
			c->h->bad(c->h->ctx, row->line, bad);
		c->rep->bad++;
		return 0;
	}
	memset(&req, 0, sizeof req);
	req.addr = &row->address;
	req.name = row->name;
	req.attrs = attrs;
	req.n_attrs = i;
	req.unconfirmed = c->o->unconfirmed;
	req.source = SIGNUP_IMPORT;
	req.consent = &consent;
	req.welcome = c->o->welcome;
	req.erased_key = c->o->erased_key;
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
	     res.res == SUBSCRIBE_SKIPPED_SUPPRESSED || res.res == SUBSCRIBE_SKIPPED_ERASED) &&
	    c->h->skipped)
		c->h->skipped(c->h->ctx, row->line, row->address.addr, res.res);
	return 0;
}

/*
 * The addresses this file has brought so far (csvimport.h: `seen`), for
 * "duplicate of line N".  They live in a table of the temp store, not in
 * the process: SQLite keeps it in its own page cache (2 MB) and spills the
 * rest to a temporary file, so a file of ten million rows takes the memory
 * of a small one (the set in memory took 80 bytes a row: 800 MB).  One
 * B-tree insert per row; the line is looked up only for a duplicate.
 */
#define SEEN_CREATE "CREATE TEMP TABLE IF NOT EXISTS herald_import_seen (" \
	"key TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID"

static int
seen_open(sqlite3 *db, struct import_ctx *c, struct herr *err)
{
	if (db_exec(db, SEEN_CREATE, err) < 0 ||
	    db_exec(db, "DELETE FROM temp.herald_import_seen", err) < 0 ||
	    db_prepare(db, &c->seen_add, "INSERT OR IGNORE INTO temp.herald_import_seen "
	               "(key, line) VALUES (?1, ?2)", err) < 0 ||
	    db_prepare(db, &c->seen_line, "SELECT line FROM temp.herald_import_seen "
	               "WHERE key = ?1", err) < 0)
		return -1;
	return 0;
}

static void
seen_close(sqlite3 *db, struct import_ctx *c)
{
	sqlite3_finalize(c->seen_add);
	sqlite3_finalize(c->seen_line);
	c->seen_add = c->seen_line = NULL;
	sqlite3_exec(db, "DROP TABLE IF EXISTS temp.herald_import_seen", NULL, NULL, NULL);
}

static int
seen_row(void *ctx, const char *key, unsigned long line, unsigned long *first,
         struct herr *err)
{
	struct import_ctx *c = ctx;
	sqlite3 *db = sqlite3_db_handle(c->seen_add);
	int rc;

	sqlite3_bind_text(c->seen_add, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->seen_add, 2, (sqlite3_int64)line);
	rc = sqlite3_step(c->seen_add);
	sqlite3_reset(c->seen_add);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "remember the address");
	if (sqlite3_changes(db) == 1)
		return 0;
	sqlite3_bind_text(c->seen_line, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(c->seen_line);
	if (rc == SQLITE_ROW)
		*first = (unsigned long)sqlite3_column_int64(c->seen_line, 0);
	sqlite3_reset(c->seen_line);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "find the first line of a duplicate");
	return 1;
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

/*
 * The page caches an import works in, in KiB.  Each row inserts at a random
 * place in two B-trees as large as the list (subscribers.email_key and the
 * addresses seen); with SQLite's default 2 MB a million-row import spent
 * more time in the kernel, re-reading and re-writing evicted pages, than
 * SQLite spent inserting.  24 + 8 MB halves that at a million rows and keeps
 * the process under 64 MB; beyond what fits, the kernel's page cache serves
 * the misses.  Restored afterwards.
 */
#define IMPORT_CACHE_MAIN_KIB 24576
#define IMPORT_CACHE_TEMP_KIB 8192

static int
import_in(sqlite3 *db, const struct subimport_opts *o, struct csvimport_handler *ch,
          struct import_ctx *c, struct herr *err)
{
	static const struct csvimport_columns defaults = { NULL, NULL };
	int rc = -1;

	if (db_begin(db, err) < 0)
		return -1;
	if (subscriber_writer_open(db, &c->w, err) < 0 || subscriber_writer_bulk(c->w, err) < 0 ||
	    seen_open(db, c, err) < 0 ||
	    csvimport_read_columns(o->fp, o->path, o->columns ? o->columns : &defaults, ch,
	                           err) < 0)
		goto out;
	rc = 0;
out:
	subscriber_writer_close(c->w);
	c->w = NULL;
	seen_close(db, c);
	if (rc < 0 || o->dry_run) {
		db_rollback(db);
		return rc;
	}
	return db_commit(db, err);
}

int
subimport_run(sqlite3 *db, const struct subimport_opts *o, const struct subimport_handler *h,
              struct subimport_report *rep, struct herr *err)
{
	struct csvimport_handler ch;
	struct import_ctx c;
	struct herr ignored;
	int rc, main_was, temp_was;

	memset(rep, 0, sizeof *rep);
	/* rule (10) fails closed: without the secret no erased address
	 * could be recognised, and a stale file would bring them back */
	if (!o->erased_key)
		return herr_set(err, EX_SOFTWARE, NULL, "an import needs the token secret to "
		                "skip erased addresses");
	memset(&c, 0, sizeof c);
	c.o = o;
	c.h = h;
	c.rep = rep;
	/* consent.h (2): the file as the admin named it */
	snprintf(c.source, sizeof c.source, "import %s",
	         o->path && strcmp(o->path, "-") ? o->path : "(standard input)");
	snprintf(c.brought, sizeof c.brought, "imported from %s",
	         o->path && strcmp(o->path, "-") ? o->path : "standard input");
	ch.row = import_row;
	ch.bad = import_bad;
	ch.note = import_note;
	ch.seen = seen_row;
	ch.ctx = &c;
	if (db_cache_size(db, "main", -IMPORT_CACHE_MAIN_KIB, &main_was, err) < 0)
		return -1;
	if (db_cache_size(db, "temp", -IMPORT_CACHE_TEMP_KIB, &temp_was, err) < 0) {
		db_cache_size(db, "main", main_was, &main_was, &ignored);
		return -1;
	}
	rc = import_in(db, o, &ch, &c, err);
	db_cache_size(db, "main", main_was, &main_was, &ignored);
	db_cache_size(db, "temp", temp_was, &temp_was, &ignored);
	return rc;
}
