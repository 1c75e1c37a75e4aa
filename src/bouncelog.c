/*
 * bouncelog.c - record returned mail and apply the bounce policy (see
 * bouncelog.h for the rules and the order in which a subscriber is found).
 *
 * Everything for one message happens in one BEGIN IMMEDIATE transaction,
 * the inbound digest first: a crash before COMMIT leaves nothing, and the
 * message is read again; a crash after COMMIT but before the mailbox
 * forgets the message leaves the digest, and the second reading is a
 * duplicate that changes nothing.  So every source may deliver a message
 * twice and no bounce is counted twice.
 *
 * A delay notice is written like a failure (the same owner search, a row
 * of class 'delayed') and then left alone: record() stops before the event
 * and the policy, and apply_soft() counts class 'soft' only.
 * bouncelog_each_unmatched() reads the rows kept with no subscriber back
 * for people; its best-guess rule is here, beside the code that stores
 * what the guess needs (inbound.envelope_to, inbound.orig_to).
 */
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/address.h"
#include "herald/bouncelog.h"
#include "herald/db.h"
#include "herald/eventlog.h"
#include "herald/message.h"
#include "herald/subscriber.h"
#include "herald/suppress.h"

/* Who a message belongs to, from its token or Message-ID (0: unknown). */
struct owner {
	long long subscriber_id, list_id, issue_id;
	char      email_key[ADDRESS_MAX + 1];
};

struct counts {
	int marked;
	int unsubscribed;
};

static int
step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, struct herr *err)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	return 0;
}

static void
bind_nz(sqlite3_stmt *st, int i, long long v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

void
bouncelog_status_from_reply(const char *reply, int code, char out[16])
{
	const char *p = reply;
	size_t n;

	out[0] = '\0';
	if (!p)
		return;
	/* "550 5.1.1 text" or "550-5.1.1 text": skip the reply code */
	if (code && strlen(p) >= 4 && p[0] >= '2' && p[0] <= '5' && (p[3] == ' ' || p[3] == '-'))
		p += 4;
	while (*p == ' ')
		p++;
	/* RFC 3463 §2: class "." subject "." detail, class 2, 4 or 5,
	 * subject 1-3 digits, detail 1-3 digits */
	if ((p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
		return;
	n = 2;
	if (p[n] < '0' || p[n] > '9')
		return;
	while (n < 5 && p[n] >= '0' && p[n] <= '9')
		n++;
	if (p[n] != '.')
		return;
	n++;
	if (p[n] < '0' || p[n] > '9')
		return;
	{
		size_t d = n;

		while (n < d + 3 && p[n] >= '0' && p[n] <= '9')
			n++;
	}
	if (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != ',' && p[n] != ';')
		return;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* The subscriber's status becomes `status` (subscriber_mark(), rule order
 * there); counted when it changed. */
static int
mark_subscriber(sqlite3 *db, long long id, const char *status, struct counts *c,
                struct herr *err)
{
	int changed;

	if (subscriber_mark(db, id, status, &changed, err) < 0)
		return -1;
	c->marked += changed;
	return 0;
}

/* A complaint: off every list at once, and never mailed again. */
static int
apply_complaint(sqlite3 *db, long long id, struct counts *c, struct herr *err)
{
	sqlite3_stmt *st;
	char key[ADDRESS_MAX + 1] = "";
	long long n;
	int added, rc;

	if (mark_subscriber(db, id, "complained", c, err) < 0)
		return -1;
	if (subscription_unsubscribe_all(db, id, "complaint", &n, err) < 0)
		return -1;
	c->unsubscribed += n;
	if (db_prepare(db, &st, "SELECT email_key FROM subscribers WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(key, sizeof key, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : db_error(db, err, "find subscriber");
	return suppress_add(db, key, "complaint", "", &added, err);
}


/* The bounce or complaint as an event (eventlog.h), for the stats. */
static int
bounce_event(sqlite3 *db, const struct bouncelog_failure *f, const char *cls, long long sub,
             struct herr *err)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:o}", "source", f->source,
	                      "class", cls, "reason", f->reason ? f->reason : "undefined",
	                      "status", f->status ? f->status : "",
	                      "code", f->reply_code ? json_integer(f->reply_code) : json_null(),
	                      "reply", f->diagnostic ? f->diagnostic : "",
	                      "stage", f->stage ? json_string(f->stage) : json_null());
	char *detail = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct event e;
	int rc;

	json_decref(o);
	if (!detail)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	memset(&e, 0, sizeof e);
	e.kind = f->cls == BOUNCE_COMPLAINT ? "complaint" : "bounce";
	e.issue_id = f->issue_id;
	e.subscriber_id = sub;
	e.list_id = f->list_id;
	e.detail = detail;
	rc = eventlog_record(db, &e, err);
	free(detail);
	return rc;
}

/* Soft bounces: bounced once `limit` of them fall within `window`. */
static int
apply_soft(sqlite3 *db, const struct bouncelog_policy *pol, long long id, struct counts *c,
           struct herr *err)
{
	sqlite3_stmt *st;
	long long n = 0;
	int rc;

	if (db_prepare(db, &st,
	               "SELECT count(*) FROM bounces WHERE subscriber_id = ?1 AND class = 'soft' "
	               "AND at > ?2", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, db_now() - pol->soft_window);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "count soft bounces");
	if (n >= pol->soft_limit)
		return mark_subscriber(db, id, "bounced", c, err);
	return 0;
}

static int
record(sqlite3 *db, const struct bouncelog_policy *pol, const struct bouncelog_failure *f,
       struct counts *c, struct herr *err)
{
	sqlite3_stmt *st;
	const char *cls = bounce_class_name(f->cls);
	long long sub = 0;

	/* Ids from tokens may name rows deleted since: the subselects turn
	 * those into NULL rather than breaking a foreign key. */
	if (db_prepare(db, &st,
	               "INSERT INTO bounces (subscriber_id, issue_id, list_id, inbound_id, recipient, "
	               "source, class, reason, status, reply_code, diagnostic, remote_mta, at, why) "
	               "VALUES ((SELECT id FROM subscribers WHERE id = ?1), "
	               "(SELECT id FROM issues WHERE id = ?2), "
	               "coalesce((SELECT id FROM lists WHERE id = ?3), "
	               "         (SELECT list_id FROM issues WHERE id = ?2)), "
	               "?4, coalesce(nullif(?5, ''), (SELECT email FROM subscribers WHERE id = ?1), ''), "
	               "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
	               "RETURNING subscriber_id", err) < 0)
		return -1;
	bind_nz(st, 1, f->subscriber_id);
	bind_nz(st, 2, f->issue_id);
	bind_nz(st, 3, f->list_id);
	bind_nz(st, 4, f->inbound_id);
	sqlite3_bind_text(st, 5, f->recipient ? f->recipient : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, f->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, cls, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, f->reason ? f->reason : "undefined", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, f->status ? f->status : "", -1, SQLITE_STATIC);
	bind_nz(st, 10, f->reply_code);
	sqlite3_bind_text(st, 11, f->diagnostic ? f->diagnostic : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, f->remote_mta ? f->remote_mta : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 13, db_now());
	sqlite3_bind_text(st, 14, f->why ? f->why : "", -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		sub = sqlite3_column_int64(st, 0);
	if (sqlite3_reset(st) != SQLITE_OK) {
		db_error(db, err, "record bounce");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (!sub)
		return 0; /* nobody to act on */
	/* A delay is not a failure: kept for `sub show`, but no event (the
	 * stats count bounce events) and no policy (the remote side is still
	 * trying; if it gives up, the expiry that follows is soft). */
	if (f->cls == BOUNCE_DELAYED)
		return 0;

	/* The event feeds `herald stats` (report.c counts per subscriber). */
	if (bounce_event(db, f, cls, sub, err) < 0)
		return -1;

	switch (f->cls) {
	case BOUNCE_HARD:
		return mark_subscriber(db, sub, "bounced", c, err);
	case BOUNCE_SOFT:
		return apply_soft(db, pol, sub, c, err);
	case BOUNCE_COMPLAINT:
		return apply_complaint(db, sub, c, err);
	default:
		return 0;
	}
}

int
bouncelog_record(sqlite3 *db, const struct bouncelog_policy *pol,
                 const struct bouncelog_failure *f, int *marked, struct herr *err)
{
	struct counts c = { 0, 0 };
	int rc = record(db, pol, f, &c, err);

	if (marked)
		*marked = c.marked;
	return rc;
}

/* "bounces+TOKEN@domain" -> the token kind and ids, when the MAC holds. */
static int
owner_from_envelope(const struct token_key *key, const char *to, struct token *t)
{
	const char *at = strrchr(to, '@'), *plus;

	if (!at)
		return -1;
	plus = memchr(to, '+', (size_t)(at - to));
	if (!plus || at - plus - 1 <= 0 || at - plus - 1 >= TOKEN_MAX)
		return -1;
	return token_verify(key, plus + 1, (size_t)(at - plus - 1), t);
}

/* "ISSUE.SUBSCRIBER.MAC@domain" (message_id_for) -> ids, when the MAC holds. */
static int
owner_from_message_id(const struct token_key *key, const char *mid, struct owner *o)
{
	long long issue, sub;
	char mac[16], expect[512], *at;
	const char *domain;
	int n = 0;

	if (sscanf(mid, "%lld.%lld.%8[0-9a-f]%n", &issue, &sub, mac, &n) != 3 || mid[n] != '@')
		return -1;
	domain = mid + n + 1;
	if (issue <= 0 || sub <= 0 ||
	    message_id_for(key, domain, issue, sub, expect, sizeof expect) < 0)
		return -1;
	if (strcasecmp(expect, mid) != 0 || !(at = strchr(expect, '@')))
		return -1;
	o->issue_id = issue;
	o->subscriber_id = sub;
	return 0;
}

/* The subscriber with this address and the issue last sent to them. */
static int
owner_from_address(sqlite3 *db, const char *addr, struct owner *o, struct herr *err)
{
	struct address a;
	struct herr ignored;
	sqlite3_stmt *st;
	int rc;

	memset(o, 0, sizeof *o);
	if (!addr || !*addr || address_parse(addr, &a, &ignored) < 0)
		return 0;
	if (db_prepare(db, &st,
	               "SELECT s.id, (SELECT d.issue_id FROM deliveries d WHERE d.subscriber_id = s.id "
	               "AND d.status IN ('sent', 'bounced') ORDER BY d.updated_at DESC LIMIT 1) "
	               "FROM subscribers s WHERE s.email_key = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, a.key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		o->subscriber_id = sqlite3_column_int64(st, 0);
		o->issue_id = sqlite3_column_int64(st, 1);
		snprintf(o->email_key, sizeof o->email_key, "%s", a.key);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find subscriber");
	return 0;
}

/* Complete an owner found by id: its list and address; forget ids of rows
 * that no longer exist. */
static int
owner_fill(sqlite3 *db, struct owner *o, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st,
	               "SELECT s.email_key, (SELECT list_id FROM issues WHERE id = ?2) "
	               "FROM subscribers s WHERE s.id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, o->subscriber_id);
	sqlite3_bind_int64(st, 2, o->issue_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(o->email_key, sizeof o->email_key, "%s",
		         (const char *)sqlite3_column_text(st, 0));
		if (!o->list_id)
			o->list_id = sqlite3_column_int64(st, 1);
	} else
		memset(o, 0, sizeof *o);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find subscriber");
	return 0;
}

/* A mail to the List-Unsubscribe mailto (RFC 2369): unsubscribe+TOKEN@.
 * A list or subscription that is gone is not an error: nothing to do. */
static int
mailto_unsubscribe(sqlite3 *db, const struct token *t, struct bouncelog_outcome *out,
                   struct herr *err)
{
	struct herr why;
	int changed = 0;

	herr_clear(&why);
	if (subscription_unsubscribe_in(db, (long long)t->list_id, (long long)t->subscriber_id,
	                                (long long)t->issue_id, "mailto", &changed, &why) < 0) {
		if (why.code != EX_NOINPUT) {
			*err = why;
			return -1;
		}
	}
	out->unsubscribed += changed;
	return 0;
}

static int
is_failure(enum bounce_class c)
{
	return c == BOUNCE_HARD || c == BOUNCE_SOFT || c == BOUNCE_COMPLAINT;
}

/* What gets a bounces row: the failures, and delay notices. */
static int
is_recorded(enum bounce_class c)
{
	return is_failure(c) || c == BOUNCE_DELAYED;
}

static const char *
message_kind(const struct bounce_report *r)
{
	size_t i;
	int complaint = 0, failed = 0, autoreply = 0, delayed = 0, delivered = 0;

	for (i = 0; i < r->n_recipients; i++) {
		switch (r->recipients[i].cls) {
		case BOUNCE_COMPLAINT: complaint = 1; break;
		case BOUNCE_HARD:
		case BOUNCE_SOFT: failed = 1; break;
		case BOUNCE_AUTOREPLY: autoreply = 1; break;
		case BOUNCE_DELAYED: delayed = 1; break;
		case BOUNCE_DELIVERED: delivered = 1; break;
		}
	}
	return complaint ? "complaint" : failed ? "bounce" : autoreply ? "autoreply"
	       : delayed ? "delayed" : delivered ? "delivered" : "unknown";
}

static void append(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Add to the summary line; what does not fit is cut. */
static void
append(char *dst, size_t size, const char *fmt, ...)
{
	size_t n = strlen(dst);
	va_list ap;

	if (n + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(dst + n, size - n, fmt, ap);
	va_end(ap);
}

int
bouncelog_ingest(sqlite3 *db, const struct token_key *key, const struct bouncelog_policy *pol,
                 const struct bounce_report *r, const char *source,
                 struct bouncelog_outcome *out, struct herr *err)
{
	struct owner tok_owner, o;
	struct token t;
	struct counts c = { 0, 0 };
	sqlite3_stmt *st;
	long long inbound_id;
	size_t i, n_fail = 0, n_delayed = 0;
	int have_tok = 0;

	memset(out, 0, sizeof *out);
	memset(&tok_owner, 0, sizeof tok_owner);
	out->kind = message_kind(r);
	if (db_begin(db, err) < 0)
		return -1;
	/* envelope_to and orig_to: for bouncelog_each_unmatched()'s guess. */
	if (db_prepare(db, &st,
	               "INSERT INTO inbound (sha256, message_id, kind, shape, source, received_at, "
	               "envelope_to, orig_to) "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (sha256) DO NOTHING",
	               err) < 0)
		goto fail;
	sqlite3_bind_text(st, 1, r->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->message_id ? r->message_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, out->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->shape ? r->shape : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, source ? source : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, db_now());
	sqlite3_bind_text(st, 7, r->envelope_to ? r->envelope_to : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->orig_to ? r->orig_to : "", -1, SQLITE_STATIC);
	if (step_done(db, st, "record inbound message", err) < 0)
		goto fail;
	if (sqlite3_changes(db) == 0) {
		db_rollback(db);
		out->duplicate = 1;
		snprintf(out->summary, sizeof out->summary,
		         "duplicate: this message (sha256 %.16s...) was read before; nothing changed",
		         r->sha256);
		return 0;
	}
	inbound_id = sqlite3_last_insert_rowid(db);

	/* Whose is it?  The VERP token first, then the original's Message-ID. */
	if (r->envelope_to && *r->envelope_to && owner_from_envelope(key, r->envelope_to, &t) == 0) {
		if (t.kind == TOKEN_UNSUBSCRIBE) {
			out->kind = "unsubscribe";
			if (mailto_unsubscribe(db, &t, out, err) < 0)
				goto fail;
			snprintf(out->summary, sizeof out->summary,
			         "unsubscribe by mail: subscriber %llu, list %llu (%ld subscription%s ended)",
			         t.subscriber_id, t.list_id, out->unsubscribed,
			         out->unsubscribed == 1 ? "" : "s");
			goto done;
		}
		if (t.kind == TOKEN_BOUNCE) {
			tok_owner.subscriber_id = (long long)t.subscriber_id;
			tok_owner.list_id = (long long)t.list_id;
			tok_owner.issue_id = (long long)t.issue_id;
			have_tok = 1;
		}
	}
	if (!have_tok && r->orig_message_id && *r->orig_message_id &&
	    owner_from_message_id(key, r->orig_message_id, &tok_owner) == 0)
		have_tok = 1;
	if (have_tok && owner_fill(db, &tok_owner, err) < 0)
		goto fail;
	have_tok = tok_owner.subscriber_id != 0;

	for (i = 0; i < r->n_recipients; i++) {
		n_fail += is_failure(r->recipients[i].cls);
		n_delayed += r->recipients[i].cls == BOUNCE_DELAYED;
	}

	for (i = 0; i < r->n_recipients; i++) {
		const struct bounce_recipient *b = &r->recipients[i];
		struct bouncelog_failure f;
		struct address a;
		struct herr ignored;
		/* The only failure (or the only delay) the report names: then
		 * the report is about whoever the message was sent to.  Delays
		 * are counted apart so that a delay beside a failure does not
		 * change whose the failure is. */
		int only = b->cls == BOUNCE_DELAYED ? n_delayed == 1 : n_fail == 1;

		if (!is_recorded(b->cls)) {
			out->ignored++;
			continue;
		}
		/* The token's subscriber is the one this report is about when it
		 * names one failure only (a forwarded address fails under another
		 * name) or names that subscriber's address. */
		if (have_tok && (only ||
		                 (address_parse(b->recipient, &a, &ignored) == 0 &&
		                  !strcmp(a.key, tok_owner.email_key))))
			o = tok_owner;
		else if (owner_from_address(db, b->recipient, &o, err) < 0)
			goto fail;
		/* Last: the To of the returned original (a report that names
		 * nobody, or names an address herald does not know). */
		if (!o.subscriber_id && only && r->orig_to && *r->orig_to &&
		    owner_from_address(db, r->orig_to, &o, err) < 0)
			goto fail;
		if (o.subscriber_id && !o.list_id && owner_fill(db, &o, err) < 0)
			goto fail;

		memset(&f, 0, sizeof f);
		f.subscriber_id = o.subscriber_id;
		f.issue_id = o.issue_id;
		f.list_id = o.list_id;
		f.inbound_id = inbound_id;
		f.recipient = *b->recipient ? b->recipient : o.email_key;
		f.source = b->cls == BOUNCE_COMPLAINT ? "arf" : "dsn";
		f.cls = b->cls;
		f.reason = b->reason;
		f.status = b->status;
		f.reply_code = b->reply_code;
		f.diagnostic = b->diagnostic;
		f.remote_mta = b->remote_mta;
		f.why = b->why;
		if (record(db, pol, &f, &c, err) < 0)
			goto fail;
		if (b->cls == BOUNCE_HARD)
			out->hard++;
		else if (b->cls == BOUNCE_SOFT)
			out->soft++;
		else if (b->cls == BOUNCE_DELAYED)
			out->delayed++;
		else
			out->complaints++;
		if (!o.subscriber_id && b->cls != BOUNCE_DELAYED)
			out->unmatched++;
		append(out->summary, sizeof out->summary, "%s%s %s", out->summary[0] ? "; " : "",
		       bounce_class_name(b->cls), f.recipient);
		append(out->summary, sizeof out->summary, " (%s%s%s)", b->reason,
		       b->status[0] ? " " : "", b->status);
		if (!o.subscriber_id)
			append(out->summary, sizeof out->summary, ": not a subscriber");
	}
	out->marked = c.marked;
	out->unsubscribed += c.unsubscribed;
	if (!out->summary[0])
		snprintf(out->summary, sizeof out->summary, "%s: nothing to do (%zu recipient%s named)",
		         out->kind, r->n_recipients, r->n_recipients == 1 ? "" : "s");
done:
	if (db_prepare(db, &st, "UPDATE inbound SET kind = ?2, summary = ?3 WHERE id = ?1", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, inbound_id);
	sqlite3_bind_text(st, 2, out->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, out->summary, -1, SQLITE_STATIC);
	if (step_done(db, st, "record inbound message", err) < 0)
		goto fail;
	return db_commit(db, err);
fail:
	db_rollback(db);
	return -1;
}

int
bouncelog_each(sqlite3 *db, long long subscriber_id, long long issue_id, int limit,
               int (*fn)(void *ctx, const struct bouncelog_entry *e), void *ctx,
               struct herr *err)
{
	sqlite3_stmt *st;
	struct bouncelog_entry e;
	int rc, stop = 0;

	/* One statement per key, so each uses its index (an OR would scan). */
#define BOUNCE_COLUMNS "SELECT ifnull(issue_id, 0), recipient, source, class, reason, " \
	"status, ifnull(reply_code, 0), diagnostic, at, why FROM bounces "
	if (db_prepare(db, &st, subscriber_id > 0
	               ? BOUNCE_COLUMNS "WHERE subscriber_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2"
	               : BOUNCE_COLUMNS "WHERE issue_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
	               err) < 0)
		return -1;
#undef BOUNCE_COLUMNS
	sqlite3_bind_int64(st, 1, subscriber_id > 0 ? subscriber_id : issue_id);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e.issue_id = sqlite3_column_int64(st, 0);
		e.recipient = (const char *)sqlite3_column_text(st, 1);
		e.source = (const char *)sqlite3_column_text(st, 2);
		e.cls = (const char *)sqlite3_column_text(st, 3);
		e.reason = (const char *)sqlite3_column_text(st, 4);
		e.status = (const char *)sqlite3_column_text(st, 5);
		e.reply_code = sqlite3_column_int(st, 6);
		e.diagnostic = (const char *)sqlite3_column_text(st, 7);
		e.at = sqlite3_column_int64(st, 8);
		e.why = (const char *)sqlite3_column_text(st, 9);
		if ((stop = fn(ctx, &e)) != 0)
			break;
	}
	sqlite3_finalize(st);
	if (stop)
		return stop;
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list bounces");
	return 0;
}

/* The best guess in SQL, so --limit and the order apply to what is shown:
 * the recipient the report named, else the returned original's To, else
 * the address the bounce came back to (the VERP address: ours, with a
 * token that did not verify or names a subscriber since deleted). */
#define UNMATCHED_GUESS(what_recipient, what_orig, what_env, what_none) \
	"CASE WHEN b.recipient <> '' THEN " what_recipient " " \
	"WHEN ifnull(i.orig_to, '') <> '' THEN " what_orig " " \
	"WHEN ifnull(i.envelope_to, '') <> '' THEN " what_env " ELSE " what_none " END"

int
bouncelog_each_unmatched(sqlite3 *db, int limit,
                         int (*fn)(void *ctx, const struct bouncelog_unmatched *u), void *ctx,
                         struct herr *err)
{
	sqlite3_stmt *st;
	struct bouncelog_unmatched u;
	int rc, stop = 0;

	/* subscriber_id IS NULL is a prefix of bounces_by_subscriber.  A row
	 * for every failure a report names, also one naming no address (its
	 * recipient is ''), so an inbound 'bounce' with no row at all is one
	 * whose subscriber was deleted since (ON DELETE CASCADE): matched
	 * once, not unmatched, and not listed. */
	if (db_prepare(db, &st,
	               "SELECT b.id, b.at, ifnull(b.issue_id, 0), ifnull(b.inbound_id, 0), "
	               "ifnull(i.source, ''), ifnull(i.message_id, ''), b.source, b.class, b.reason, "
	               "b.status, ifnull(b.reply_code, 0), b.diagnostic, b.recipient, "
	               UNMATCHED_GUESS("b.recipient", "i.orig_to", "i.envelope_to", "''") ", "
	               UNMATCHED_GUESS("'recipient'", "'original-to'", "'envelope-to'", "''") ", "
	               "b.why "
	               "FROM bounces b LEFT JOIN inbound i ON i.id = b.inbound_id "
	               "WHERE b.subscriber_id IS NULL AND b.class <> 'delayed' "
	               "ORDER BY b.at DESC, b.id DESC LIMIT ?1", err) < 0)
		return -1;
	sqlite3_bind_int(st, 1, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		u.id = sqlite3_column_int64(st, 0);
		u.at = sqlite3_column_int64(st, 1);
		u.issue_id = sqlite3_column_int64(st, 2);
		u.inbound_id = sqlite3_column_int64(st, 3);
		u.inbound_source = (const char *)sqlite3_column_text(st, 4);
		u.message_id = (const char *)sqlite3_column_text(st, 5);
		u.source = (const char *)sqlite3_column_text(st, 6);
		u.cls = (const char *)sqlite3_column_text(st, 7);
		u.reason = (const char *)sqlite3_column_text(st, 8);
		u.status = (const char *)sqlite3_column_text(st, 9);
		u.reply_code = sqlite3_column_int(st, 10);
		u.diagnostic = (const char *)sqlite3_column_text(st, 11);
		u.recipient = (const char *)sqlite3_column_text(st, 12);
		u.guess = (const char *)sqlite3_column_text(st, 13);
		u.guess_from = (const char *)sqlite3_column_text(st, 14);
		u.why = (const char *)sqlite3_column_text(st, 15);
		if ((stop = fn(ctx, &u)) != 0)
			break;
	}
	sqlite3_finalize(st);
	if (stop)
		return stop;
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list unmatched bounces");
	return 0;
}
#undef UNMATCHED_GUESS
