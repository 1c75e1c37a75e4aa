/*
 * subscriber.c - subscribers and subscriptions (see subscriber.h for the
 * rules (1)-(4) this file enforces).
 */
#include "herald/subscriber.h"
#include "herald/suppress.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"
#include "herald/db.h"
#include "herald/eventlog.h"
#include "herald/privacy.h"
#include "herald/tracking.h"
#include "herald/welcome.h"
#include "herald/utf8.h"

/* new_attrs() sorts at most this many attributes on the stack (an import
 * has at most CSVIMPORT_COLUMNS_MAX columns) */
#define SUBSCRIBER_ATTRS_FAST 64

struct subscriber_writer {
	sqlite3      *db;
	sqlite3_stmt *find;       /* subscriber by email_key */
	sqlite3_stmt *suppressed; /* a row when the email_key is suppressed */
	sqlite3_stmt *insert;
	sqlite3_stmt *update;     /* name, attributes */
	sqlite3_stmt *sub_find;   /* subscription status */
	sqlite3_stmt *sub_insert;
	sqlite3_stmt *sub_update;
	/* prepared by their home modules the first time a row needs them
	 * (db_prepare_cached): a bulk import prepares nothing per row */
	sqlite3_stmt *consent;    /* consent_record_cached */
	sqlite3_stmt *erased;     /* privacy_erased_check_cached */
	int           erased_any; /* -1: check every address (a writer may outlive
	                           * transactions: the API keeps one per thread);
	                           * else privacy_erased_any(), asked once by
	                           * subscriber_writer_bulk() for one transaction */
	int           suppress_any; /* the same for rule (5): -1, or whether the
	                             * suppressions table had a row when asked */
};

/* What one row write is asked, once the source's policy is applied. */
struct subscribe_req {
	const struct address   *addr;
	const char             *name;     /* NULL or "": keep the existing name */
	const struct tmpl_attr *attrs;    /* merged into existing attributes */
	size_t                  n_attrs;  /* empty values are not stored */
	int                     confirmed;   /* status of a new subscription */
	int                     resubscribe; /* rule (2) */
	int                     keep_existing; /* an existing subscription stays as it is */
	int                     known;       /* 0: no subscriber has the address (just
	                                      * looked up in this transaction); -1: look */
	long long               id;          /* OUT: the subscriber, 0 when skipped */
	char                    status[16];  /* OUT: the subscription's status after */
	int                     moved;       /* OUT: the subscription was made or changed */
	char                    was[16];     /* OUT: its status before, "" when new */
};

void
subscriber_clear(struct subscriber *s)
{
	free(s->attributes);
	memset(s, 0, sizeof *s);
}

/* Where `s` breaks rule (3) or is longer than `max`: the offending byte
 * (the terminating NUL when too long), or NULL when it is fine.  Apart
 * from subscriber_check_text() so a row's many fields are checked without
 * first writing the name of each into a message. */
static const unsigned char *
text_problem(const char *s, size_t max)
{
	const unsigned char *p;
	size_t len;

	for (p = (const unsigned char *)s; *p; p++)
		/* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8 */
		if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			break;
	/* the length is the first problem, as the message has always said */
	len = (size_t)(p - (const unsigned char *)s) + strlen((const char *)p);
	if (len > max)
		return (const unsigned char *)s + len;
	return *p ? p : NULL;
}

int
subscriber_check_text(const char *what, const char *s, size_t max, struct herr *err)
{
	const unsigned char *p = text_problem(s, max);

	if (!p)
		return 0;
	if (!*p)
		return herr_set(err, EX_DATAERR, NULL, "%s is longer than %zu bytes", what, max);
	if (*p == '\r' || *p == '\n')
		return herr_set(err, EX_DATAERR, NULL, "%s contains a line break", what);
	if (*p < 0x20 || *p == 0x7f)
		return herr_set(err, EX_DATAERR, NULL,
		                "%s contains a control character (0x%02x)", what, *p);
	return herr_set(err, EX_DATAERR, NULL, "%s contains a control character (U+%04X)",
	                what, p[1]);
}

int
subscriber_writer_open(sqlite3 *db, struct subscriber_writer **out, struct herr *err)
{
	struct subscriber_writer *w = calloc(1, sizeof *w);

	*out = NULL;
	if (!w)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	w->db = db;
	w->erased_any = -1;
	w->suppress_any = -1;
	if (db_prepare(db, &w->suppressed,
	               "SELECT 1 WHERE NOT " SUPPRESS_SQL_NOT("?1"), err) < 0 ||
	    db_prepare(db, &w->find,
	               "SELECT id, name, attributes, status FROM subscribers WHERE email_key = ?1",
	               err) < 0 ||
	    db_prepare(db, &w->insert,
	               "INSERT INTO subscribers (email, email_key, name, attributes, status, "
	               "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)", err) < 0 ||
	    db_prepare(db, &w->update,
	               "UPDATE subscribers SET name = ?2, attributes = ?3, updated_at = ?4 "
	               "WHERE id = ?1", err) < 0 ||
	    db_prepare(db, &w->sub_find,
	               "SELECT status FROM subscriptions WHERE list_id = ?1 AND subscriber_id = ?2",
	               err) < 0 ||
	    db_prepare(db, &w->sub_insert,
	               "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at, "
	               "confirmed_at) VALUES (?1, ?2, ?3, ?4, CASE WHEN ?3 = 'confirmed' "
	               "THEN ?4 END)", err) < 0 ||
	    db_prepare(db, &w->sub_update,
	               "UPDATE subscriptions SET status = ?3, unsubscribed_at = NULL, "
	               "confirmed_at = CASE WHEN ?3 = 'confirmed' THEN ?4 ELSE confirmed_at END "
	               "WHERE list_id = ?1 AND subscriber_id = ?2", err) < 0) {
		subscriber_writer_close(w);
		return -1;
	}
	*out = w;
	return 0;
}

int
subscriber_writer_bulk(struct subscriber_writer *w, struct herr *err)
{
	long long suppressions;
	int any = privacy_erased_any(w->db, err);

	if (any < 0 || db_query_int(w->db, "SELECT EXISTS (SELECT 1 FROM suppressions)",
	                            &suppressions, err) < 0)
		return -1;
	w->erased_any = any;
	w->suppress_any = suppressions != 0;
	return 0;
}

void
subscriber_writer_close(struct subscriber_writer *w)
{
	if (!w)
		return;
	sqlite3_finalize(w->find);
	sqlite3_finalize(w->suppressed);
	sqlite3_finalize(w->insert);
	sqlite3_finalize(w->update);
	sqlite3_finalize(w->sub_find);
	sqlite3_finalize(w->sub_insert);
	sqlite3_finalize(w->sub_update);
	sqlite3_finalize(w->consent);
	sqlite3_finalize(w->erased);
	free(w);
}

/* 1 when the address is a subscriber already, 0 when not, -1 on error. */
static int
subscriber_known(struct subscriber_writer *w, const struct address *a, struct herr *err)
{
	int rc;

	sqlite3_bind_text(w->find, 1, a->key, -1, SQLITE_STATIC);
	rc = sqlite3_step(w->find);
	sqlite3_reset(w->find);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_error(w->db, err, "find subscriber");
}

/* A JSON string as jansson writes it, when that is only '"' and '\\'
 * escaped: 0, or -1 for text jansson would treat otherwise (a control
 * character, invalid UTF-8: the DOM decides) or when out of memory. */
static int
plain_json_string(struct buf *b, const char *s)
{
	size_t n = strlen(s), i, from = 0;

	if (utf8_invalid_at((const unsigned char *)s, n) != n || buf_addc(b, '"') < 0)
		return -1;
	/* runs of plain bytes at once: a million rows' worth */
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20)
			return -1;
		if (s[i] != '"' && s[i] != '\\')
			continue;
		if (buf_add(b, s + from, i - from) < 0 || buf_addc(b, '\\') < 0)
			return -1;
		from = i;
	}
	if (buf_add(b, s + from, n - from) < 0)
		return -1;
	return buf_addc(b, '"');
}

/* The attributes of a new subscriber without a DOM: the bytes merge_attrs
 * writes for `old` NULL (keys sorted by strcmp, a key given twice keeps
 * its last non-empty value, empty values left out), built directly, as an
 * import does it a million times.  NULL when the text needs jansson's own
 * escaping or memory ran out; merge_attrs then does it the slow way. */
static char *
new_attrs(const struct tmpl_attr *attrs, size_t n)
{
	size_t order[SUBSCRIBER_ATTRS_FAST], i, j, k, out = 0;
	struct buf b = BUF_INIT((size_t)-1);

	if (n > SUBSCRIBER_ATTRS_FAST)
		return NULL;
	/* insertion sort of the non-empty ones by key, stable */
	for (i = 0, k = 0; i < n; i++) {
		if (!attrs[i].value || !*attrs[i].value)
			continue;
		for (j = k; j > 0 && strcmp(attrs[order[j - 1]].key, attrs[i].key) > 0; j--)
			order[j] = order[j - 1];
		order[j] = i;
		k++;
	}
	if (buf_addc(&b, '{') < 0)
		goto fail;
	for (i = 0; i < k; i++) {
		/* equal keys sit together in file order: the last one wins */
		if (i + 1 < k && !strcmp(attrs[order[i]].key, attrs[order[i + 1]].key))
			continue;
		if ((out++ && buf_addc(&b, ',') < 0) ||
		    plain_json_string(&b, attrs[order[i]].key) < 0 || buf_addc(&b, ':') < 0 ||
		    plain_json_string(&b, attrs[order[i]].value) < 0)
			goto fail;
	}
	if (buf_addc(&b, '}') < 0)
		goto fail;
	return buf_detach(&b);
fail:
	buf_free(&b);
	return NULL;
}

/* Merge attrs into the JSON object text `old` (NULL: empty).  Returns a new
 * compact JSON string with sorted keys, or NULL when out of memory. */
static char *
merge_attrs(const char *old, const struct tmpl_attr *attrs, size_t n)
{
	json_t *obj = NULL;
	char *s;
	size_t i;

	if (!old && (s = new_attrs(attrs, n)))
		return s;
	if (old)
		obj = json_loads(old, 0, NULL);
	if (!obj || !json_is_object(obj)) {
		json_decref(obj);
		obj = json_object();
	}
	if (!obj)
		return NULL;
	for (i = 0; i < n; i++) {
		if (!attrs[i].value || !*attrs[i].value)
			continue;
		if (json_object_set_new(obj, attrs[i].key, json_string(attrs[i].value)) < 0) {
			json_decref(obj);
			return NULL;
		}
	}
	s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	return s;
}

static int
step_done(struct subscriber_writer *w, sqlite3_stmt *st, const char *what, struct herr *err)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_error(w->db, err, what);
	return 0;
}

/* Add or update one subscriber and their subscription to `list_id`, rules
 * (1)-(5), in the caller's transaction; r->id and r->status say where the
 * row ended up. */
static int
subscribe_row(struct subscriber_writer *w, long long list_id, struct subscribe_req *r,
              enum subscribe_result *res, struct herr *err)
{
	long long now = db_now(), id = 0;
	const char *want = r->confirmed ? "confirmed" : "unconfirmed";
	char *attrs = NULL, *old_name = NULL, *old_attrs = NULL, sub_status[16] = "";
	int rc, exists = 0, changed = 0, ret = -1;
	size_t i;

	if (r->name && subscriber_check_text("name", r->name, SUBSCRIBER_NAME_MAX, err) < 0)
		return -1;
	for (i = 0; i < r->n_attrs; i++) {
		char what[96], key[64];

		/* the message only for the one that is wrong */
		if (*r->attrs[i].key && !text_problem(r->attrs[i].key, SUBSCRIBER_ATTR_KEY_MAX) &&
		    !text_problem(r->attrs[i].value ? r->attrs[i].value : "",
		                  SUBSCRIBER_ATTR_VAL_MAX))
			continue;
		herr_show(key, sizeof key, r->attrs[i].key);
		snprintf(what, sizeof what, "attribute name '%s'", key);
		if (!*r->attrs[i].key)
			return herr_set(err, EX_DATAERR, NULL, "empty attribute name");
		if (subscriber_check_text(what, r->attrs[i].key, SUBSCRIBER_ATTR_KEY_MAX, err) < 0)
			return -1;
		snprintf(what, sizeof what, "attribute '%s'", key);
		if (subscriber_check_text(what, r->attrs[i].value ? r->attrs[i].value : "",
		                          SUBSCRIBER_ATTR_VAL_MAX, err) < 0)
			return -1;
	}

	/* Rule (5) first: a suppressed address is not even created.  None to
	 * check against when a bulk writer found the table empty. */
	sqlite3_bind_text(w->suppressed, 1, r->addr->key, -1, SQLITE_STATIC);
	rc = w->suppress_any == 0 ? SQLITE_DONE : sqlite3_step(w->suppressed);
	sqlite3_reset(w->suppressed);
	if (rc == SQLITE_ROW) {
		*res = SUBSCRIBE_SKIPPED_SUPPRESSED;
		return 0;
	}
	if (rc != SQLITE_DONE)
		return db_error(w->db, err, "check suppressions");

	sqlite3_bind_text(w->find, 1, r->addr->key, -1, SQLITE_STATIC);
	rc = r->known == 0 ? SQLITE_DONE : sqlite3_step(w->find);
	if (rc == SQLITE_ROW) {
		exists = 1;
		id = sqlite3_column_int64(w->find, 0);
		old_name = strdup((const char *)sqlite3_column_text(w->find, 1));
		old_attrs = strdup((const char *)sqlite3_column_text(w->find, 2));
		if (strcmp((const char *)sqlite3_column_text(w->find, 3), "active") != 0) {
			sqlite3_reset(w->find);
			*res = SUBSCRIBE_SKIPPED_BLOCKED;
			ret = 0;
			goto out;
		}
		if (!old_name || !old_attrs) {
			sqlite3_reset(w->find);
			herr_set(err, EX_OSERR, NULL, "out of memory");
			goto out;
		}
	}
	sqlite3_reset(w->find);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_error(w->db, err, "find subscriber");
		goto out;
	}

	if (exists) {
		sqlite3_bind_int64(w->sub_find, 1, list_id);
		sqlite3_bind_int64(w->sub_find, 2, id);
		if (sqlite3_step(w->sub_find) == SQLITE_ROW)
			snprintf(sub_status, sizeof sub_status, "%s",
			         (const char *)sqlite3_column_text(w->sub_find, 0));
		sqlite3_reset(w->sub_find);
		snprintf(r->was, sizeof r->was, "%s", sub_status);
		if (!strcmp(sub_status, "unsubscribed") && !r->resubscribe) {
			*res = SUBSCRIBE_SKIPPED_UNSUBSCRIBED;
			r->id = id;
			snprintf(r->status, sizeof r->status, "%s", sub_status);
			ret = 0;
			goto out;
		}
	}

	if (!(attrs = merge_attrs(old_attrs, r->attrs, r->n_attrs))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	if (!exists) {
		sqlite3_bind_text(w->insert, 1, r->addr->addr, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->insert, 2, r->addr->key, -1, SQLITE_STATIC);
		sqlite3_bind_text(w->insert, 3, r->name ? r->name : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(w->insert, 4, attrs, -1, SQLITE_STATIC);
		sqlite3_bind_int64(w->insert, 5, now);
		if (step_done(w, w->insert, "insert subscriber", err) < 0)
			goto out;
		id = sqlite3_last_insert_rowid(w->db);
	} else {
		const char *name = (r->name && *r->name) ? r->name : old_name;
		/* the same attributes written another way (key order: SQLite's
		 * json_set appends) are no change */
		char *old_norm = strcmp(attrs, old_attrs) ? merge_attrs(old_attrs, NULL, 0) : NULL;
		int attrs_differ = old_norm ? strcmp(attrs, old_norm) != 0 : strcmp(attrs, old_attrs) != 0;

		free(old_norm);
		if (strcmp(name, old_name) || attrs_differ) {
			sqlite3_bind_int64(w->update, 1, id);
			sqlite3_bind_text(w->update, 2, name, -1, SQLITE_STATIC);
			sqlite3_bind_text(w->update, 3, attrs, -1, SQLITE_STATIC);
			sqlite3_bind_int64(w->update, 4, now);
			if (step_done(w, w->update, "update subscriber", err) < 0)
				goto out;
			changed = 1;
		}
	}

	if (!sub_status[0]) {
		sqlite3_bind_int64(w->sub_insert, 1, list_id);
		sqlite3_bind_int64(w->sub_insert, 2, id);
		sqlite3_bind_text(w->sub_insert, 3, want, -1, SQLITE_STATIC);
		sqlite3_bind_int64(w->sub_insert, 4, now);
		if (step_done(w, w->sub_insert, "insert subscription", err) < 0)
			goto out;
		*res = SUBSCRIBE_ADDED;
		r->moved = 1;
		r->id = id;
		snprintf(r->status, sizeof r->status, "%s", want);
		ret = 0;
		goto out;
	}
	/* Never downgrade confirmed to unconfirmed; upgrade the other way,
	 * unless the asker may only create (rule 8). */
	if (!r->keep_existing && (!strcmp(sub_status, "unsubscribed") ||
	                          (!strcmp(sub_status, "unconfirmed") && r->confirmed))) {
		sqlite3_bind_int64(w->sub_update, 1, list_id);
		sqlite3_bind_int64(w->sub_update, 2, id);
		sqlite3_bind_text(w->sub_update, 3, want, -1, SQLITE_STATIC);
		sqlite3_bind_int64(w->sub_update, 4, now);
		if (step_done(w, w->sub_update, "update subscription", err) < 0)
			goto out;
		changed = 1;
		r->moved = 1;
		snprintf(sub_status, sizeof sub_status, "%s", want);
	}
	*res = changed ? SUBSCRIBE_UPDATED : SUBSCRIBE_UNCHANGED;
	r->id = id;
	snprintf(r->status, sizeof r->status, "%s", sub_status);
	ret = 0;
out:
	free(attrs);
	free(old_name);
	free(old_attrs);
	return ret;
}

/* The consent record (consent.h) of a sign-up that made or changed a
 * subscription: 'confirm' when an admin or an import confirmed an
 * unconfirmed one, else 'subscribe' (new, or renewed after leaving). */
static int
signup_consent(struct subscriber_writer *w, const struct list *l, const struct signup_req *r,
               const struct subscribe_req *req, struct herr *err)
{
	struct consent_ctx c;

	memset(&c, 0, sizeof c);
	if (r->consent)
		c = *r->consent;
	if (!c.source)
		c.source = r->source == SIGNUP_ADMIN ? "cli" :
		           r->source == SIGNUP_IMPORT ? "import" :
		           r->source == SIGNUP_API ? "api" : "web form";
	return consent_record_cached(w->db, &w->consent,
	                             !strcmp(req->was, "unconfirmed") ? "confirm" : "subscribe",
	                             req->id, l->id, &c, NULL, err);
}

int
subscriber_signup_in(struct subscriber_writer *w, const struct list *l,
                     const struct signup_req *r, struct signup_result *out,
                     struct herr *err)
{
	struct subscribe_req req;
	int known = -1, erased = 0;

	memset(out, 0, sizeof *out);
	if (r->absent)
		known = 0;
	else if (r->erased_key && (known = subscriber_known(w, r->addr, err)) < 0)
		return -1;
	/* rule (10), for addresses herald does not know (again) */
	if (r->erased_key && !known && w->erased_any &&
	    (erased = privacy_erased_check_cached(w->db, &w->erased, r->erased_key, r->addr->key,
	                                          err)) < 0)
		return -1;
	if (erased == 2 || (erased && r->source == SIGNUP_IMPORT)) {
		out->res = erased == 2 ? SUBSCRIBE_SKIPPED_SUPPRESSED : SUBSCRIBE_SKIPPED_ERASED;
		return 0;
	}
	memset(&req, 0, sizeof req);
	req.addr = r->addr;
	req.name = r->name;
	req.attrs = r->attrs;
	req.n_attrs = r->n_attrs;
	req.known = known == 0 ? 0 : -1;
	switch (r->source) {
	case SIGNUP_ADMIN:
		/* an admin adding one address means it (rule 2) */
		req.confirmed = !r->unconfirmed;
		req.resubscribe = 1;
		break;
	case SIGNUP_IMPORT:
		req.confirmed = !r->unconfirmed;
		req.resubscribe = 0;
		break;
	case SIGNUP_API:
		/* an authenticated system of record: name and attributes as it
		 * says, the subscription as the form would make it */
		req.confirmed = !l->double_opt_in && !r->unconfirmed;
		req.resubscribe = 0;
		req.keep_existing = 1;
		break;
	case SIGNUP_WEB:
		/* rule (6): a known subscriber keeps their name and their
		 * attributes (tracking_consent among them: a form anyone can
		 * post must not give consent on someone's behalf) */
		if ((known = subscriber_known(w, r->addr, err)) < 0)
			return -1;
		if (known) {
			req.name = NULL;
			req.attrs = NULL;
			req.n_attrs = 0;
		}
		/* `unconfirmed`: a new address given in the preference centre
		 * (prefs.h) waits for its own confirmation even on a single
		 * opt-in list */
		req.confirmed = !l->double_opt_in && !r->unconfirmed;
		/* rule (8): anyone can post an address, so the form only ever
		 * creates a subscription; one that exists (unconfirmed, or
		 * unsubscribed: a withdrawn consent) changes only when the
		 * reader follows the confirmation mail */
		req.resubscribe = 0;
		req.keep_existing = 1;
		break;
	}
	if (subscribe_row(w, l->id, &req, &out->res, err) < 0)
		return -1;
	out->subscriber_id = req.id;
	out->confirm_mail = (r->source == SIGNUP_WEB || r->source == SIGNUP_API) && req.id &&
	                    (!strcmp(req.status, "unconfirmed") ||
	                     !strcmp(req.status, "unsubscribed"));
	if (out->confirm_mail &&
	    confirmation_new(w->db, req.id, l->id, &out->confirm_id, err) < 0)
		return -1;
	if (out->res == SUBSCRIBE_SKIPPED_BLOCKED || out->res == SUBSCRIBE_SKIPPED_UNSUBSCRIBED ||
	    out->res == SUBSCRIBE_SKIPPED_SUPPRESSED)
		return 0;
	/* the reader's own sign-up that made a confirmed subscription is an
	 * event (stats, the subscriber's history); an admin's is not */
	if ((r->source == SIGNUP_WEB || r->source == SIGNUP_API) && req.moved &&
	    !strcmp(req.status, "confirmed") &&
	    eventlog_record_source(w->db, "subscribe", 0, req.id, l->id,
	                           r->source == SIGNUP_API ? "api" : "web", err) < 0)
		return -1;
	if (req.moved && signup_consent(w, l, r, &req, err) < 0)
		return -1;
	/* welcome.h (1), (2): confirmed by this sign-up, in its transaction;
	 * an import only when asked */
	if (req.moved && !strcmp(req.status, "confirmed") &&
	    (r->source != SIGNUP_IMPORT || r->welcome) &&
	    welcome_enqueue(w->db, l->id, req.id, NULL, err) < 0)
		return -1;
	return 0;
}

int
subscriber_signup(sqlite3 *db, const struct list *l, const struct signup_req *r,
                  struct signup_result *out, struct herr *err)
{
	struct subscriber_writer *w = NULL;

	if (subscriber_writer_open(db, &w, err) < 0)
		return -1;
	if (db_begin(db, err) < 0)
		goto fail;
	if (subscriber_signup_in(w, l, r, out, err) < 0)
		goto fail;
	/* nothing to keep when the rules refused it (but a confirmation mail
	 * to someone who had left, rule 8) */
	if ((out->res == SUBSCRIBE_SKIPPED_BLOCKED || out->res == SUBSCRIBE_SKIPPED_UNSUBSCRIBED ||
	     out->res == SUBSCRIBE_SKIPPED_SUPPRESSED) && !out->confirm_mail) {
		db_rollback(db);
		subscriber_writer_close(w);
		return 0;
	}
	subscriber_writer_close(w);
	w = NULL;
	return db_commit(db, err);
fail:
	db_rollback(db);
	subscriber_writer_close(w);
	return -1;
}

int
subscriber_set_name_in(sqlite3 *db, long long id, const char *name, int *changed,
                       struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*changed = 0;
	/* rule (3), and text a page or a header can carry */
	if (utf8_invalid_at((const unsigned char *)name, strlen(name)) != strlen(name))
		return herr_set(err, EX_DATAERR, NULL, "the name is not valid UTF-8");
	if (subscriber_check_text("the name", name, SUBSCRIBER_NAME_MAX, err) < 0)
		return -1;
	if (db_prepare(db, &st, "UPDATE subscribers SET name = ?2, updated_at = ?3 "
	               "WHERE id = ?1 AND name IS NOT ?2", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "rename subscriber");
	*changed = sqlite3_changes(db) > 0;
	return 0;
}

int
subscriber_set_tracking_consent(sqlite3 *db, long long id, int yes, int *changed,
                                struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*changed = 0;
	/* the attribute tracking.h reads, as a CSV column would write it */
	if (db_prepare(db, &st, "UPDATE subscribers SET attributes = json_set(attributes, "
	               "'$.tracking_consent', ?2), updated_at = ?3 WHERE id = ?1 AND "
	               "json_extract(attributes, '$.tracking_consent') IS NOT ?2", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, yes ? "yes" : "no", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "set tracking consent");
	*changed = sqlite3_changes(db) > 0;
	return 0;
}

int
subscriber_tracking_consent(sqlite3 *db, long long id, int *yes, struct herr *err)
{
	struct subscriber s;

	if (subscriber_get_by_id(db, id, &s, err) < 0)
		return -1;
	*yes = tracking_consented(s.attributes);
	subscriber_clear(&s);
	return 0;
}

int
subscriber_reactivate(sqlite3 *db, long long id, char *was, struct herr *err)
{
	static const struct consent_ctx admin = { .source = "admin" };
	struct subscriber s;
	struct address a;
	struct herr ignored;
	char hit[SUPPRESS_PATTERN_MAX];
	int rc;

	if (subscriber_get_by_id(db, id, &s, err) < 0)
		return -1;
	snprintf(was, 16, "%s", s.status);
	/* the identity key (address.h) of an address that parsed when stored */
	if (address_parse(s.email, &a, &ignored) < 0) {
		strncpy(a.key, s.email, sizeof a.key - 1);
		a.key[sizeof a.key - 1] = '\0';
	}
	if ((rc = suppress_check(db, a.key, hit, err)) != 0) {
		if (rc > 0)
			herr_set(err, EX_DATAERR, s.email,
			         "suppressed by '%s'; lift that first with 'herald suppress rm %s'",
			         hit, hit);
		subscriber_clear(&s);
		return -1;
	}
	rc = !strcmp(s.status, "active");
	subscriber_clear(&s);
	if (rc)
		return 0; /* nothing to take back */
	if (db_begin(db, err) < 0)
		return -1;
	if (db_run2(db, "UPDATE subscribers SET status = 'active', updated_at = ?2 WHERE id = ?1",
	            id, db_now(), NULL, "reactivate subscriber", err) < 0 ||
	    consent_record(db, "reactivate", id, 0, &admin, NULL, err) < 0) {
		db_rollback(db);
		return -1;
	}
	return db_commit(db, err);
}

static void
row_to_subscriber(sqlite3_stmt *st, int col, struct subscriber *s)
{
	const char *attrs = (const char *)sqlite3_column_text(st, col + 3);

	s->id = sqlite3_column_int64(st, col);
	snprintf(s->email, sizeof s->email, "%s", (const char *)sqlite3_column_text(st, col + 1));
	snprintf(s->name, sizeof s->name, "%s", (const char *)sqlite3_column_text(st, col + 2));
	free(s->attributes);
	s->attributes = strdup(attrs ? attrs : "{}");
	snprintf(s->status, sizeof s->status, "%s", (const char *)sqlite3_column_text(st, col + 4));
	s->created_at = sqlite3_column_int64(st, col + 5);
	s->updated_at = sqlite3_column_int64(st, col + 6);
}

#define SUBSCRIBER_COLUMNS "s.id, s.email, s.name, s.attributes, s.status, s.created_at, s.updated_at"

int
subscriber_get_by_id(sqlite3 *db, long long id, struct subscriber *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st, "SELECT " SUBSCRIBER_COLUMNS " FROM subscribers s WHERE s.id = ?1",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_to_subscriber(st, 0, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no subscriber with id %lld", id);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "find subscriber");
	if (!out->attributes)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	return 0;
}

int
subscriber_get(sqlite3 *db, const char *addr, struct subscriber *out, struct herr *err)
{
	struct address a;
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if (address_parse(addr, &a, err) < 0)
		return -1;
	if (db_prepare(db, &st, "SELECT " SUBSCRIBER_COLUMNS
	               " FROM subscribers s WHERE s.email_key = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, a.key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_to_subscriber(st, 0, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no subscriber '%s'", a.addr);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "find subscriber");
	if (!out->attributes)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	return 0;
}

int
subscriber_remove(sqlite3 *db, long long id, struct herr *err)
{
	return db_run2(db, "DELETE FROM subscribers WHERE id = ?1", id, 0, NULL,
	               "remove subscriber", err);
}

int
subscriber_mark(sqlite3 *db, long long id, const char *status, int *changed, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*changed = 0;
	/* a complaint outranks a bounce; an admin's block outranks both */
	if (db_prepare(db, &st,
	               "UPDATE subscribers SET status = ?2, updated_at = ?3 WHERE id = ?1 "
	               "AND status NOT IN (?2, 'blocklisted') "
	               "AND (?2 = 'complained' OR status = 'active')", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "mark subscriber");
	*changed = sqlite3_changes(db) > 0;
	return 0;
}

int
subscription_unsubscribe_all(sqlite3 *db, long long subscriber_id, const char *how,
                             long long *n, struct herr *err)
{
	struct consent_ctx c;
	sqlite3_stmt *st;
	long long *ended = NULL, *grown;
	size_t n_ended = 0, i;
	int rc;

	*n = 0;
	if (db_prepare(db, &st, "UPDATE subscriptions SET status = 'unsubscribed', "
	               "unsubscribed_at = ?2 WHERE subscriber_id = ?1 AND "
	               "status != 'unsubscribed' RETURNING list_id", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_int64(st, 2, db_now());
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(grown = realloc(ended, (n_ended + 1) * sizeof *ended))) {
			sqlite3_finalize(st);
			free(ended);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		ended = grown;
		ended[n_ended++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(ended);
		return db_error(db, err, "unsubscribe from every list");
	}
	/* consent.h: each list's consent ended, and how */
	memset(&c, 0, sizeof c);
	c.source = how;
	for (i = 0; i < n_ended; i++)
		if (consent_record(db, "unsubscribe", subscriber_id, ended[i], &c, NULL, err) < 0) {
			free(ended);
			return -1;
		}
	free(ended);
	*n = (long long)n_ended;
	return 0;
}

int
subscriber_block(sqlite3 *db, long long id, struct herr *err)
{
	return db_run2(db, "UPDATE subscribers SET status = 'blocklisted', updated_at = ?2 "
	               "WHERE id = ?1", id, db_now(), NULL, "block subscriber", err);
}

int
subscription_unsubscribe(sqlite3 *db, long long list_id, long long subscriber_id,
                         const char *source, struct herr *err)
{
	return subscription_unsubscribe_issue(db, list_id, subscriber_id, 0, source, err);
}

/* Rule (9)'s reach, on a subscriptions row's list_id COL: the token's list LIST and
 * every list of issue ISSUE (SQL operands).  One text for the change and
 * for the page that says what it will change. */
#define UNSUBSCRIBE_SCOPE(COL, LIST, ISSUE) \
	"(" COL " = " LIST " OR " COL " IN (SELECT sc.list_id FROM issue_lists sc " \
	"WHERE sc.issue_id = " ISSUE "))"

int
subscription_unsubscribe_scope(sqlite3 *db, long long list_id, long long subscriber_id,
                               long long issue_id, struct buf *titles, size_t *n,
                               struct herr *err)
{
	sqlite3_stmt *st;
	const char *t;
	int rc;

	*n = 0;
	/* the token's list first, then the issue's in its order */
	if (db_prepare(db, &st,
	               "SELECT CASE WHEN l.title <> '' THEN l.title ELSE l.name END FROM "
	               "subscriptions sub JOIN lists l ON l.id = sub.list_id "
	               "LEFT JOIN issue_lists il ON il.list_id = l.id AND il.issue_id = ?3 "
	               "WHERE sub.subscriber_id = ?2 AND sub.status != 'unsubscribed' AND "
	               UNSUBSCRIBE_SCOPE("sub.list_id", "?1", "?3")
	               " ORDER BY l.id <> ?1, il.position", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, issue_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(t = (const char *)sqlite3_column_text(st, 0)) ||
		    (*n && buf_addc(titles, '\x1f') < 0) || buf_adds(titles, t) < 0) {
			sqlite3_finalize(st);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "read the lists of an unsubscribe");
	return 0;
}

int
subscription_unsubscribe_in(sqlite3 *db, long long list_id, long long subscriber_id,
                            long long issue_id, const char *source, int *changed,
                            struct herr *err)
{
	struct consent_ctx how;
	sqlite3_stmt *st;
	long long now = db_now(), ended[64];
	size_t n = 0, i;
	int rc;

	/* Rule (9): unsubscribing from an issue's mail ends the subscriptions
	 * of every list that issue was sent through (its issue_lists), not
	 * only the list the token names: a reader reached through a second
	 * list asked to stop getting this mail. */
	*changed = 0;
	if (db_prepare(db, &st,
	               "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = ?3 "
	               "WHERE subscriber_id = ?2 AND status != 'unsubscribed' AND "
	               UNSUBSCRIBE_SCOPE("list_id", "?1", "?4") " RETURNING list_id", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, issue_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (n < sizeof ended / sizeof ended[0])
			ended[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "unsubscribe");
	if (n == 0) {
		/* Either not on the lists (an error) or already unsubscribed
		 * (fine: unsubscribing must be idempotent, RFC 8058 §3.2). */
		if (db_prepare(db, &st, "SELECT 1 FROM subscriptions WHERE subscriber_id = ?2 AND "
		               UNSUBSCRIBE_SCOPE("list_id", "?1", "?3"), err) < 0)
			return -1;
		sqlite3_bind_int64(st, 1, list_id);
		sqlite3_bind_int64(st, 2, subscriber_id);
		sqlite3_bind_int64(st, 3, issue_id);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW)
			return herr_set(err, EX_NOINPUT, NULL, "not subscribed to that list");
		return 0;
	}
	*changed = 1;
	memset(&how, 0, sizeof how);
	how.source = consent_unsubscribe_how(source);
	for (i = 0; i < n; i++)
		if (eventlog_record_source(db, "unsubscribe", issue_id, subscriber_id, ended[i],
		                           source, err) < 0 ||
		    consent_record(db, "unsubscribe", subscriber_id, ended[i], &how, NULL, err) < 0)
			return -1;
	return 0;
}

int
subscription_unsubscribe_issue(sqlite3 *db, long long list_id, long long subscriber_id,
                               long long issue_id, const char *source, struct herr *err)
{
	int changed;

	if (db_begin(db, err) < 0)
		return -1;
	if (subscription_unsubscribe_in(db, list_id, subscriber_id, issue_id, source, &changed,
	                                err) < 0) {
		db_rollback(db);
		return -1;
	}
	if (!changed) {
		db_rollback(db);
		return 0;
	}
	return db_commit(db, err);
}

int
subscription_status(sqlite3 *db, long long list_id, long long subscriber_id, char *status,
                    struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT status FROM subscriptions WHERE list_id = ?1 AND "
	               "subscriber_id = ?2", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(status, 16, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "not subscribed to that list");
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read subscription");
	return 0;
}

/* subscription_confirm() inside the caller's transaction. */
static int
confirm_in(sqlite3 *db, long long list_id, long long subscriber_id, const char *source,
           const struct consent_ctx *c, struct herr *err)
{
	struct consent_ctx cc;
	struct subscriber s;
	sqlite3_stmt *st;
	char status[16];
	int rc;

	if (subscriber_get_by_id(db, subscriber_id, &s, err) < 0)
		return -1;
	rc = strcmp(s.status, "active");
	subscriber_clear(&s);
	if (rc)
		return herr_set(err, EX_DATAERR, NULL, "the address is blocked, bounced or complained");
	if (subscription_status(db, list_id, subscriber_id, status, err) < 0)
		return -1;
	if (!strcmp(status, "confirmed"))
		return 0;
	if (db_prepare(db, &st, "UPDATE subscriptions SET status = 'confirmed', confirmed_at = ?3, "
	               "unsubscribed_at = NULL WHERE list_id = ?1 AND subscriber_id = ?2",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "confirm subscription");
	/* welcome.h (1): confirmed now, in the confirming transaction */
	if (welcome_enqueue(db, list_id, subscriber_id, NULL, err) < 0)
		return -1;
	/* consent.h: the reader's consent, renewed or confirmed */
	memset(&cc, 0, sizeof cc);
	if (c)
		cc = *c;
	if (!cc.source)
		cc.source = source;
	if (consent_record(db, !strcmp(status, "unsubscribed") ? "subscribe" : "confirm",
	                   subscriber_id, list_id, &cc, NULL, err) < 0)
		return -1;
	return eventlog_record_source(db, !strcmp(status, "unsubscribed") ? "subscribe" : "confirm",
	                              0, subscriber_id, list_id, source, err);
}

int
subscription_confirm(sqlite3 *db, long long list_id, long long subscriber_id,
                     const char *source, struct herr *err)
{
	return subscription_confirm_consent(db, list_id, subscriber_id, source, NULL, err);
}

int
subscription_confirm_consent(sqlite3 *db, long long list_id, long long subscriber_id,
                             const char *source, const struct consent_ctx *c,
                             struct herr *err)
{
	if (db_begin(db, err) < 0)
		return -1;
	if (confirm_in(db, list_id, subscriber_id, source, c, err) < 0) {
		db_rollback(db);
		return -1;
	}
	return db_commit(db, err);
}

int
confirmation_new(sqlite3 *db, long long subscriber_id, long long list_id, long long *id,
                 struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "INSERT INTO confirmations (subscriber_id, list_id, created_at) "
	               "VALUES (?1, ?2, ?3)", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_int64(st, 2, list_id);
	sqlite3_bind_int64(st, 3, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record confirmation mail");
	*id = sqlite3_last_insert_rowid(db);
	return 0;
}

int
confirmation_state(sqlite3 *db, long long confirm_id, long long subscriber_id,
                   long long list_id, long ttl, enum confirm_state *st_out, struct herr *err)
{
	sqlite3_stmt *st;
	long long created;
	int rc, used;

	/* a link made before confirmations had rows carries 0: known to be
	 * ours (its MAC held), but of unknown age */
	if (!confirm_id) {
		*st_out = CONFIRM_EXPIRED;
		return 0;
	}
	if (db_prepare(db, &st, "SELECT created_at, used_at IS NOT NULL FROM confirmations "
	               "WHERE id = ?1 AND subscriber_id = ?2 AND list_id = ?3", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, confirm_id);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, list_id);
	rc = sqlite3_step(st);
	created = sqlite3_column_int64(st, 0);
	used = sqlite3_column_int(st, 1);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no such confirmation");
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read confirmation");
	*st_out = used ? CONFIRM_USED : db_now() - created > ttl ? CONFIRM_EXPIRED : CONFIRM_OPEN;
	return 0;
}

int
confirmation_use(sqlite3 *db, long long confirm_id, long long subscriber_id, long long list_id,
                 long ttl, enum confirm_state *st, struct herr *err)
{
	return confirmation_use_consent(db, confirm_id, subscriber_id, list_id, ttl, NULL, st,
	                                err);
}

int
confirmation_use_consent(sqlite3 *db, long long confirm_id, long long subscriber_id,
                         long long list_id, long ttl, const struct consent_ctx *c,
                         enum confirm_state *st, struct herr *err)
{
	struct consent_ctx cc;

	memset(&cc, 0, sizeof cc);
	if (c)
		cc = *c;
	if (!cc.source)
		cc.source = "confirmation link";
	if (db_begin(db, err) < 0)
		return -1;
	/* read and marked under the write lock: a link followed twice at once
	 * is used once */
	if (confirmation_state(db, confirm_id, subscriber_id, list_id, ttl, st, err) < 0)
		goto fail;
	if (*st != CONFIRM_OPEN) {
		db_rollback(db);
		return 0;
	}
	if (db_run2(db, "UPDATE confirmations SET used_at = ?2 WHERE id = ?1", confirm_id,
	            db_now(), NULL, "use confirmation", err) < 0 ||
	    confirm_in(db, list_id, subscriber_id, "web", &cc, err) < 0)
		goto fail;
	return db_commit(db, err);
fail:
	db_rollback(db);
	return -1;
}

int
subscriber_each_subscription(sqlite3 *db, long long subscriber_id,
                             int (*fn)(void *ctx, const struct subscription_info *s),
                             void *ctx, struct herr *err)
{
	sqlite3_stmt *st;
	struct subscription_info si;
	int rc;

	if (db_prepare(db, &st,
	               "SELECT l.name, s.status, s.created_at, ifnull(s.confirmed_at, 0), "
	               "ifnull(s.unsubscribed_at, 0) FROM subscriptions s "
	               "JOIN lists l ON l.id = s.list_id WHERE s.subscriber_id = ?1 "
	               "ORDER BY l.name", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, subscriber_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		si.list_name = (const char *)sqlite3_column_text(st, 0);
		si.status = (const char *)sqlite3_column_text(st, 1);
		si.created_at = sqlite3_column_int64(st, 2);
		si.confirmed_at = sqlite3_column_int64(st, 3);
		si.unsubscribed_at = sqlite3_column_int64(st, 4);
		if (fn(ctx, &si) < 0)
			break;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(db, err, "list subscriptions");
	return 0;
}

int
subscriber_each_member(sqlite3 *db, long long list_id, const char *status,
                       int (*fn)(void *ctx, const struct member *m), void *ctx,
                       struct herr *err)
{
	sqlite3_stmt *st;
	struct subscriber s;
	struct member m;
	int rc, ret = 0;

	if (db_prepare(db, &st, "SELECT " SUBSCRIBER_COLUMNS ", sub.status "
	               "FROM subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id "
	               "WHERE sub.list_id = ?1 AND (?2 IS NULL OR sub.status = ?2) "
	               "ORDER BY sub.subscriber_id", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	if (status)
		sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	memset(&s, 0, sizeof s);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_subscriber(st, 0, &s);
		if (!s.attributes) {
			ret = herr_set(err, EX_OSERR, NULL, "out of memory");
			break;
		}
		m.sub = &s;
		m.sub_status = (const char *)sqlite3_column_text(st, 7);
		if (fn(ctx, &m) < 0) {
			ret = -1;
			break;
		}
	}
	subscriber_clear(&s);
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		return db_error(db, err, "list subscribers");
	return ret;
}

int
subscriber_attr_keys(sqlite3 *db, long long list_id, const char *status,
                     int (*fn)(void *ctx, const char *key), void *ctx, struct herr *err)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (db_prepare(db, &st,
	               "SELECT DISTINCT j.key FROM subscriptions sub "
	               "JOIN subscribers s ON s.id = sub.subscriber_id, json_each(s.attributes) j "
	               "WHERE sub.list_id = ?1 AND (?2 IS NULL OR sub.status = ?2) ORDER BY j.key",
	               err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	if (status)
		sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(ctx, (const char *)sqlite3_column_text(st, 0)) < 0) {
			ret = -1;
			break;
		}
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		return db_error(db, err, "list attribute names");
	return ret;
}
