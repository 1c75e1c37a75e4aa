/*
 * webapi.c - the HTTP API under /api/v1/ (api.h; the contract is
 * docs/openapi.yaml): keys, scopes and per-key rate, routing, and JSON in
 * and out.  What each call does is the core's (api.c, subscriber.c,
 * privacy.c, report.c); this file only speaks HTTP.
 *
 * Order of checks, so that a caller without a valid key learns nothing
 * (apikey.h (1)): the key (401, the same for a missing, unknown, revoked
 * or expired key, with WWW-Authenticate), the key's rate (429 with
 * Retry-After), the route (404, 405 with Allow), the scope (403), the
 * content type (415), the body (400, 413, 422).  Every answer is JSON,
 * errors in the one shape of api.h.
 *
 *   GET    /api/v1/lists                                lists:read
 *   GET    /api/v1/subscribers?list=&after=&limit=      subscribers:read
 *   POST   /api/v1/subscribers                          subscribers:write
 *   POST   /api/v1/subscribers/bulk                     subscribers:write
 *   GET    /api/v1/subscribers/{email}                  subscribers:read
 *   DELETE /api/v1/subscribers/{email}                  subscribers:write (erasure)
 *   POST   /api/v1/subscribers/{email}/unsubscribe      subscribers:write
 *   GET    /api/v1/issues/{id}                          issues:read
 *   GET    /api/v1/issues/{id}/stats                    issues:read
 *   POST   /api/v1/mail                                 mail:send (apimail.h)
 *   GET    /api/v1/mail/{id}                            mail:send
 */
#include "webint.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/log.h"
#include "herald/api.h"
#include "herald/apikey.h"
#include "herald/apimail.h"
#include "herald/consent.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/privacy.h"
#include "herald/report.h"
#include "herald/segment.h"
#include "herald/subscriber.h"

#define CSP_API "default-src 'none'; frame-ancestors 'none'"

/* A JSON text (taken over) as the answer. */
static enum MHD_Result
answer_text(struct web_server *s, struct MHD_Connection *c, unsigned status, char *text,
            const char *extra_name, const char *extra_value)
{
	if (!text)
		return MHD_NO;
	return web_queue_body(s, c, status, text, strlen(text), "application/json", CSP_API,
	                      extra_name, extra_value);
}

/* A JSON value (released here) as the answer. */
static enum MHD_Result
answer(struct web_server *s, struct MHD_Connection *c, unsigned status, json_t *v)
{
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;

	json_decref(v);
	return answer_text(s, c, status, text, NULL, NULL);
}

static enum MHD_Result
fail_h(struct web_server *s, struct MHD_Connection *c, const struct api_error *e,
       const char *extra_name, const char *extra_value)
{
	return answer_text(s, c, (unsigned)e->status, api_error_text(e), extra_name, extra_value);
}

static enum MHD_Result
fail(struct web_server *s, struct MHD_Connection *c, const struct api_error *e)
{
	return fail_h(s, c, e, NULL, NULL);
}

static enum MHD_Result
fail_with(struct web_server *s, struct MHD_Connection *c, int status, const char *code,
          const char *message)
{
	struct api_error e;

	api_error_set(&e, status, code, NULL, "%s", message);
	return fail(s, c, &e);
}

static enum MHD_Result
db_failed(struct web_server *s, struct MHD_Connection *c, const struct herr *err)
{
	web_log(s, "api: database: %s", err->msg);
	return fail_with(s, c, 503, "unavailable", "the database is busy or failed; try again");
}

enum MHD_Result
web_api_too_large(struct web_server *s, struct MHD_Connection *c)
{
	struct api_error e;

	api_error_set(&e, 413, "too_large", NULL, "the body is larger than %ld bytes",
	              s->cfg->api_max_body);
	return fail_h(s, c, &e, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* The key's last use, written by one request a minute per key: not a
 * write (and a wait for the write lock) per request. */
static void
mark_used(struct web_server *s, struct web_thread *t, const struct apikey *k)
{
	long long now = db_now();
	struct herr err;
	size_t i, slot = 0;
	int due = 0;

	pthread_mutex_lock(&s->api_write_mu);
	for (i = 0; i < sizeof s->api_marks / sizeof s->api_marks[0]; i++) {
		if (s->api_marks[i].id == k->id) {
			slot = i;
			break;
		}
		if (s->api_marks[i].next < s->api_marks[slot].next)
			slot = i;   /* else the entry longest due: reused */
	}
	if (s->api_marks[slot].id != k->id || now >= s->api_marks[slot].next) {
		s->api_marks[slot].id = k->id;
		s->api_marks[slot].next = now + 60;
		due = now - k->last_used_at >= 60;
	}
	pthread_mutex_unlock(&s->api_write_mu);
	herr_clear(&err);
	if (due && apikey_mark_used(t->db, k->id, now, &err) < 0)
		web_log(s, "api: %s", err.msg);
}

/* The key of the request (Authorization: Bearer KEY), checked; 0 when
 * valid, else the 401 is queued into *ret. */
static int
authenticate(struct web_server *s, struct MHD_Connection *c, struct web_thread *t,
             struct apikey *k, enum MHD_Result *ret)
{
	static const char *const why[] = { "valid", "unknown", "revoked", "expired" };
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_AUTHORIZATION);
	enum apikey_state st = APIKEY_UNKNOWN;
	struct api_error e;
	struct herr err;

	herr_clear(&err);
	if (h && !strncasecmp(h, "Bearer ", 7)) {
		h += 7;
		while (*h == ' ')
			h++;
		if (apikey_verify(t->db, h, db_now(), k, &st, &err) < 0) {
			*ret = db_failed(s, c, &err);
			return -1;
		}
	}
	if (st == APIKEY_VALID) {
		mark_used(s, t, k);
		return 0;
	}
	if (h)
		web_log(s, "api: refused a key (%s)", why[st]);
	api_error_set(&e, 401, "unauthorized", NULL,
	              "send a valid key as 'Authorization: Bearer KEY'");
	*ret = fail_h(s, c, &e, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"herald\"");
	return -1;
}

/* ---- the calls ---- */

struct call {
	struct web_server     *s;
	struct MHD_Connection *c;
	struct web_thread     *t;
	const struct apikey   *key;
	const struct request  *rq;
};

static int
add_list(void *ctx, const struct list *l)
{
	json_t *o = api_list_json(l);

	return o && json_array_append_new(ctx, o) == 0 ? 0 : -1;
}

static enum MHD_Result
get_lists(struct call *k)
{
	json_t *arr = json_array();
	struct herr err;

	herr_clear(&err);
	if (!arr)
		return MHD_NO;
	if (list_each(k->t->db, add_list, arr, &err) < 0) {
		json_decref(arr);
		return db_failed(k->s, k->c, &err);
	}
	return answer(k->s, k->c, 200, json_pack("{s:o}", "lists", arr));
}

/* The subscriber named by the path's {email}; 0, else the answer is queued. */
static int
find_subscriber(struct call *k, const char *email, struct subscriber *out, enum MHD_Result *ret)
{
	struct address a;
	struct herr err;

	herr_clear(&err);
	if (address_parse(email, &a, &err) < 0) {
		struct api_error e;

		api_error_set(&e, 404, "not_found", NULL, "no subscriber has that address");
		*ret = fail(k->s, k->c, &e);
		return -1;
	}
	if (subscriber_get(k->t->db, a.addr, out, &err) < 0) {
		*ret = err.code == EX_NOINPUT
		       ? fail_with(k->s, k->c, 404, "not_found", "no subscriber has that address")
		       : db_failed(k->s, k->c, &err);
		return -1;
	}
	return 0;
}

static enum MHD_Result
get_subscriber(struct call *k, const char *email)
{
	struct subscriber sub;
	enum MHD_Result ret;
	struct herr err;
	json_t *o;

	herr_clear(&err);
	if (find_subscriber(k, email, &sub, &ret) < 0)
		return ret;
	if (api_subscriber_json(k->t->db, sub.id, &o, &err) < 0) {
		subscriber_clear(&sub);
		return db_failed(k->s, k->c, &err);
	}
	subscriber_clear(&sub);
	return answer(k->s, k->c, 200, o);
}

/* GET /subscribers: a page of subscribers by id, of one list or all,
 * matching `where` (the segment language, segment.h) when given. */
static enum MHD_Result
list_subscribers(struct call *k)
{
	const char *list = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "list");
	const char *where = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "where");
	const char *after_s = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "after");
	const char *limit_s = MHD_lookup_connection_value(k->c, MHD_GET_ARGUMENT_KIND, "limit");
	long long after = 0, limit = 100, last = 0, id;
	struct buf sql = BUF_INIT(1u << 16);
	struct segment *seg = NULL;
	struct api_error e;
	struct herr err;
	sqlite3_stmt *st = NULL;
	json_t *arr = NULL, *o;
	char *end;
	int rc, n = 0;
	enum MHD_Result ret;
	struct list l;

	herr_clear(&err);
	if (after_s && (after = strtoll(after_s, &end, 10), *end || after < 0))
		return fail_with(k->s, k->c, 422, "invalid_field", "after is a subscriber id");
	if (limit_s && (limit = strtoll(limit_s, &end, 10), *end || limit < 1 ||
	                limit > API_PAGE_MAX))
		return fail_with(k->s, k->c, 422, "invalid_field", "limit is 1 to 1000");
	if (list && list_get(k->t->db, list, &l, &err) < 0) {
		if (err.code == EX_NOINPUT || err.code == EX_DATAERR)
			return fail_with(k->s, k->c, 404, "not_found", "there is no list of that name");
		return db_failed(k->s, k->c, &err);
	}
	if (where && segment_compile(k->t->db, where, "where", db_now(), &seg, &err) < 0) {
		if (err.code != EX_DATAERR)
			return db_failed(k->s, k->c, &err);
		api_error_set(&e, 422, "invalid_field", "where", "%s", err.msg);
		return fail(k->s, k->c, &e);
	}
	if (buf_adds(&sql, "SELECT s.id FROM subscribers s ") < 0 ||
	    (list && buf_adds(&sql, "JOIN subscriptions u ON u.subscriber_id = s.id AND "
	                      "u.list_id = ?3 ") < 0) ||
	    buf_adds(&sql, "WHERE s.id > ?1 AND s.email <> '' ") < 0 ||
	    (seg && (buf_adds(&sql, "AND ") < 0 || buf_adds(&sql, segment_sql(seg)) < 0)) ||
	    buf_adds(&sql, " ORDER BY s.id LIMIT ?2") < 0 || !(arr = json_array())) {
		ret = MHD_NO;
		goto out;
	}
	if (db_prepare(k->t->db, &st, buf_str(&sql), &err) < 0 ||
	    (seg && segment_bind(seg, st, &err) < 0)) {
		ret = db_failed(k->s, k->c, &err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int64(st, 2, limit);
	if (list)
		sqlite3_bind_int64(st, 3, l.id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (api_subscriber_json(k->t->db, id, &o, &err) < 0 ||
		    json_array_append_new(arr, o) < 0) {
			ret = err.code ? db_failed(k->s, k->c, &err) : MHD_NO;
			goto out;
		}
		last = id;
		n++;
	}
	if (rc != SQLITE_DONE) {
		db_error(k->t->db, &err, "list subscribers");
		ret = db_failed(k->s, k->c, &err);
		goto out;
	}
	ret = answer(k->s, k->c, 200, json_pack("{s:o, s:o}", "subscribers", arr, "next_after",
	                                        n == limit ? json_integer(last) : json_null()));
	arr = NULL;
out:
	sqlite3_finalize(st);
	json_decref(arr);
	segment_free(seg);
	buf_free(&sql);
	return ret;
}

/* This thread's subscriber writer, prepared on first use; NULL (the
 * upsert opens its own) when that failed. */
static struct subscriber_writer *
writer_of(struct call *k)
{
	struct herr err;

	if (!k->t->api_w && subscriber_writer_open(k->t->db, &k->t->api_w, &err) < 0)
		k->t->api_w = NULL;
	return k->t->api_w;
}

/*
 * Group commit of upserts.  A request's upserts become a job; the first
 * thread to find no batch being written leads: it takes every job waiting
 * and writes them in one transaction, each in its own savepoint (a job
 * that fails is rolled back alone and answered with its error), then wakes
 * the others.  One commit for many requests is what makes thousands of
 * single upserts a second possible on SQLite, and a request still waits
 * for its own commit before it is answered (nothing answered is lost).
 */
struct api_job {
	struct api_job            *next;
	struct api_upsert         *u;
	size_t                     n;
	const struct consent_ctx  *how;
	const char                *key_text;
	struct api_upsert_result  *res;
	struct api_error           e;
	int                        rc, done;
};

static void
write_batch(struct call *k, struct api_job *jobs, struct subscriber_writer *w)
{
	struct api_job *j;
	struct herr err;
	int began;

	herr_clear(&err);
	began = db_begin(k->t->db, &err) == 0;
	for (j = jobs; j; j = j->next) {
		if (!began) {
			j->rc = api_error_set(&j->e, 503, "unavailable", NULL, "the database failed: %s",
			                      err.msg);
			continue;
		}
		if (db_exec(k->t->db, "SAVEPOINT api_job", &err) < 0) {
			j->rc = api_error_set(&j->e, 503, "unavailable", NULL, "the database failed: %s",
			                      err.msg);
			continue;
		}
		j->rc = api_upsert_apply_in(k->t->db, w, j->u, j->n, j->how, j->key_text,
		                            &k->s->key, j->res, &j->e);
		if (j->rc < 0)
			db_exec(k->t->db, "ROLLBACK TO api_job", &err);
		db_exec(k->t->db, "RELEASE api_job", &err);
	}
	if (began && db_commit(k->t->db, &err) < 0) {
		db_rollback(k->t->db);
		for (j = jobs; j; j = j->next)
			if (j->rc == 0)
				j->rc = api_error_set(&j->e, 503, "unavailable", NULL,
				                      "the database failed: %s", err.msg);
	}
}

static int
upsert_grouped(struct call *k, struct api_upsert *u, size_t n, const struct consent_ctx *how,
               const char *key_text, struct api_upsert_result *res, struct api_error *e)
{
	struct web_server *s = k->s;
	struct api_job job, *batch, *j, **tail;
	struct subscriber_writer *w;

	memset(&job, 0, sizeof job);
	job.u = u;
	job.n = n;
	job.how = how;
	job.key_text = key_text;
	job.res = res;
	pthread_mutex_lock(&s->api_write_mu);
	for (tail = &s->api_pending; *tail; tail = &(*tail)->next)
		;
	*tail = &job;
	while (!job.done) {
		if (s->api_leading) {
			pthread_cond_wait(&s->api_done, &s->api_write_mu);
			continue;
		}
		s->api_leading = 1;
		batch = s->api_pending;
		s->api_pending = NULL;
		pthread_mutex_unlock(&s->api_write_mu);
		w = writer_of(k);
		if (w)
			write_batch(k, batch, w);
		else
			for (j = batch; j; j = j->next)
				j->rc = api_error_set(&j->e, 503, "unavailable", NULL,
				                      "the database cannot be written");
		pthread_mutex_lock(&s->api_write_mu);
		for (j = batch; j; j = j->next)
			j->done = 1;
		s->api_leading = 0;
		pthread_cond_broadcast(&s->api_done);
	}
	pthread_mutex_unlock(&s->api_write_mu);
	if (job.rc < 0)
		*e = job.e;
	return job.rc;
}

/* The consent record's client: this request. */
static void
client_of(struct call *k, char *ip, struct consent_ctx *how)
{
	web_consent_of(k->s, k->c, "api", NULL, ip, how);
}

/* Confirmation mails the upserts asked for, to the mail thread. */
static void
queue_confirms(struct call *k, const struct api_upsert *u, const struct api_upsert_result *r)
{
	struct herr err;
	size_t i;

	for (i = 0; i < r->n_confirms; i++) {
		struct list l;

		herr_clear(&err);
		if (list_get_by_id(k->t->db, r->confirms[i].list_id, &l, &err) < 0 ||
		    webmail_enqueue(k->s->mail, r->confirms[i].subscriber_id,
		                    r->confirms[i].confirm_id, &l, u->addr.addr,
		                    u->name ? u->name : "") < 0)
			web_log(k->s, "api: could not queue a confirmation mail");
	}
}

static enum MHD_Result
post_subscriber(struct call *k)
{
	char ip[CONSENT_IP_MAX], by[160];
	struct api_upsert_result res;
	struct consent_ctx how;
	struct api_upsert u;
	struct api_error e;
	enum MHD_Result ret;
	json_t *body, *o;
	int rc;

	if (api_json_parse(buf_str((struct buf *)&k->rq->body), k->rq->body.len, &body, &e) < 0)
		return fail(k->s, k->c, &e);
	memset(&u, 0, sizeof u);
	if (api_upsert_parse(k->t->db, body, "", &u, &e) < 0) {
		api_upsert_clear(&u);
		json_decref(body);
		return fail(k->s, k->c, &e);
	}
	client_of(k, ip, &how);
	snprintf(by, sizeof by, "api key %s", k->key->name);
	rc = upsert_grouped(k, &u, 1, &how, by, &res, &e);
	if (rc < 0) {
		api_upsert_clear(&u);
		json_decref(body);
		return fail(k->s, k->c, &e);
	}
	queue_confirms(k, &u, &res);
	api_upsert_clear(&u);
	json_decref(body);
	if (!res.subscriber_id)
		/* refused by the core's rules: suppressed or erased-and-suppressed */
		return fail_with(k->s, k->c, 409, "suppressed",
		                 "this address is suppressed and cannot be subscribed");
	{
		struct herr err;

		herr_clear(&err);
		if (api_subscriber_json(k->t->db, res.subscriber_id, &o, &err) < 0)
			return db_failed(k->s, k->c, &err);
	}
	ret = answer(k->s, k->c, res.created ? 201 : 200,
	             json_pack("{s:s, s:o}", "result", api_upsert_word(&res), "subscriber", o));
	return ret;
}

/* POST /subscribers/bulk: {"subscribers": [...]}, all or nothing (api.h (5)). */
static enum MHD_Result
post_bulk(struct call *k)
{
	char ip[CONSENT_IP_MAX], by[160], prefix[48];
	struct api_upsert_result *res = NULL;
	struct api_upsert *u = NULL;
	struct consent_ctx how;
	struct api_error e;
	json_t *body, *items, *out = NULL, *item;
	const char *key;
	size_t i, n;
	enum MHD_Result ret;

	if (api_json_parse(buf_str((struct buf *)&k->rq->body), k->rq->body.len, &body, &e) < 0)
		return fail(k->s, k->c, &e);
	if (!json_is_object(body)) {
		json_decref(body);
		return fail_with(k->s, k->c, 422, "invalid_field", "the body is an object with "
		                 "'subscribers'");
	}
	json_object_foreach(body, key, item)
		if (strcmp(key, "subscribers")) {
			api_error_set(&e, 422, "unknown_field", key, "'%.60s' is not a field here", key);
			json_decref(body);
			return fail(k->s, k->c, &e);
		}
	items = json_object_get(body, "subscribers");
	if (!json_is_array(items) || !(n = json_array_size(items)) || n > API_BULK_MAX) {
		json_decref(body);
		api_error_set(&e, 422, "invalid_field", "subscribers",
		              "subscribers is an array of 1 to %d subscribers", API_BULK_MAX);
		return fail(k->s, k->c, &e);
	}
	if (!(u = calloc(n, sizeof *u)) || !(res = calloc(n, sizeof *res))) {
		free(u);
		json_decref(body);
		return MHD_NO;
	}
	for (i = 0; i < n; i++) {
		snprintf(prefix, sizeof prefix, "subscribers[%zu].", i);
		if (api_upsert_parse(k->t->db, json_array_get(items, i), prefix, &u[i], &e) < 0) {
			ret = fail(k->s, k->c, &e);
			goto out;
		}
	}
	client_of(k, ip, &how);
	snprintf(by, sizeof by, "api key %s", k->key->name);
	if (upsert_grouped(k, u, n, &how, by, res, &e) < 0) {
		ret = fail(k->s, k->c, &e);
		goto out;
	}
	if (!(out = json_array())) {
		ret = MHD_NO;
		goto out;
	}
	for (i = 0; i < n; i++) {
		queue_confirms(k, &u[i], &res[i]);
		if (json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "email", u[i].addr.addr,
		        "result", res[i].subscriber_id ? api_upsert_word(&res[i]) : "suppressed",
		        "id", res[i].subscriber_id ? json_integer(res[i].subscriber_id)
		                                   : json_null())) < 0) {
			json_decref(out);
			ret = MHD_NO;
			goto out;
		}
	}
	ret = answer(k->s, k->c, 200, json_pack("{s:o}", "results", out));
out:
	for (i = 0; i < n; i++)
		api_upsert_clear(&u[i]);
	free(u);
	free(res);
	json_decref(body);
	return ret;
}

static int
add_list_name(void *ctx, const struct subscription_info *si)
{
	return strcmp(si->status, "unsubscribed") == 0 ? 0
	       : json_array_append_new(ctx, json_string(si->list_name));
}

/* POST /subscribers/{email}/unsubscribe {"lists": [...]}: ends those
 * subscriptions (source "api"), all of them without "lists". */
static enum MHD_Result
post_unsubscribe(struct call *k, const char *email)
{
	struct subscriber sub;
	struct api_error e;
	enum MHD_Result ret;
	struct herr err;
	json_t *body = NULL, *lists = NULL, *v, *o;
	const char *key;
	size_t i;
	int changed;

	herr_clear(&err);
	if (k->rq->body.len) {
		if (api_json_parse(buf_str((struct buf *)&k->rq->body), k->rq->body.len, &body,
		                   &e) < 0)
			return fail(k->s, k->c, &e);
		if (!json_is_object(body)) {
			json_decref(body);
			return fail_with(k->s, k->c, 422, "invalid_field", "the body is an object");
		}
		json_object_foreach(body, key, v)
			if (strcmp(key, "lists")) {
				api_error_set(&e, 422, "unknown_field", key,
				              "'%.60s' is not a field here", key);
				json_decref(body);
				return fail(k->s, k->c, &e);
			}
		lists = json_object_get(body, "lists");
		if (lists && (!json_is_array(lists) || !json_array_size(lists))) {
			json_decref(body);
			api_error_set(&e, 422, "invalid_field", "lists", "lists is a non-empty array");
			return fail(k->s, k->c, &e);
		}
	}
	if (find_subscriber(k, email, &sub, &ret) < 0) {
		json_decref(body);
		return ret;
	}
	/* no "lists": every list the subscriber is on, one unsubscribe each
	 * (events and consent records as for any other way of leaving) */
	if (!lists) {
		if (!(lists = json_array()) || json_object_set_new(body ? body : (body = json_object()),
		                                                   "lists", lists) < 0 ||
		    subscriber_each_subscription(k->t->db, sub.id, add_list_name, lists, &err) < 0) {
			subscriber_clear(&sub);
			json_decref(body);
			return err.code ? db_failed(k->s, k->c, &err) : MHD_NO;
		}
	}
	if (db_begin(k->t->db, &err) < 0)
		goto db;
	{
		json_array_foreach(lists, i, v) {
			struct list l;

			if (!json_is_string(v) || list_get(k->t->db, json_string_value(v), &l, &err) < 0) {
				char field[48];

				db_rollback(k->t->db);
				subscriber_clear(&sub);
				json_decref(body);
				if (err.code && err.code != EX_NOINPUT && err.code != EX_DATAERR)
					return db_failed(k->s, k->c, &err);
				snprintf(field, sizeof field, "lists[%zu]", i);
				api_error_set(&e, 422, "unknown_list", field, "there is no list of that name");
				return fail(k->s, k->c, &e);
			}
			/* not on that list: nothing to end (a retried call is fine) */
			if (subscription_unsubscribe_in(k->t->db, l.id, sub.id, 0, "api", &changed,
			                                &err) < 0) {
				if (err.code != EX_NOINPUT)
					goto rollback;
				herr_clear(&err);
			}
		}
	}
	if (db_commit(k->t->db, &err) < 0)
		goto db;
	json_decref(body);
	if (api_subscriber_json(k->t->db, sub.id, &o, &err) < 0) {
		subscriber_clear(&sub);
		return db_failed(k->s, k->c, &err);
	}
	subscriber_clear(&sub);
	return answer(k->s, k->c, 200, o);
rollback:
	db_rollback(k->t->db);
db:
	subscriber_clear(&sub);
	json_decref(body);
	return db_failed(k->s, k->c, &err);
}

/* DELETE /subscribers/{email}: the erasure of privacy.h, by "api key NAME". */
static enum MHD_Result
delete_subscriber(struct call *k, const char *email)
{
	struct privacy_forget_result res;
	char by[160];
	struct address a;
	struct herr err;

	herr_clear(&err);
	if (address_parse(email, &a, &err) < 0)
		return fail_with(k->s, k->c, 404, "not_found", "herald holds nothing about that "
		                 "address");
	snprintf(by, sizeof by, "api key %s", k->key->name);
	if (privacy_forget(k->t->db, &k->s->key, &a, by, db_now(), &res, &err) < 0) {
		if (err.code == EX_NOINPUT)
			return fail_with(k->s, k->c, 404, "not_found", "herald holds nothing about "
			                 "that address");
		return db_failed(k->s, k->c, &err);
	}
	return answer(k->s, k->c, 200, json_pack("{s:s, s:I, s:I}", "result", "erased",
	                                         "kept", (json_int_t)res.kept,
	                                         "redacted", (json_int_t)res.redacted));
}

static enum MHD_Result
get_issue(struct call *k, long long id, int stats)
{
	struct issue is;
	struct report r;
	struct herr err;
	json_t *o;

	herr_clear(&err);
	if (issue_get(k->t->db, id, &is, &err) < 0)
		return err.code == EX_NOINPUT
		       ? fail_with(k->s, k->c, 404, "not_found", "there is no issue with that id")
		       : db_failed(k->s, k->c, &err);
	if (!stats) {
		o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "id", (json_int_t)is.id,
		              "subject", is.subject ? is.subject : "", "status", is.status,
		              "lists", is.list_names ? is.list_names : is.list_name,
		              "created_at", (json_int_t)is.created_at,
		              "send_at", is.send_at ? json_integer(is.send_at) : json_null(),
		              "started_at", is.started_at ? json_integer(is.started_at) : json_null(),
		              "finished_at", is.finished_at ? json_integer(is.finished_at)
		                                            : json_null());
		issue_clear(&is);
		return answer(k->s, k->c, 200, o);
	}
	if (report_compute(k->t->db, id, &r, &err) < 0) {
		issue_clear(&is);
		return db_failed(k->s, k->c, &err);
	}
	/* exactly what `herald stats --json` prints (report.h) */
	o = report_json(&is, &r);
	report_clear(&r);
	issue_clear(&is);
	return answer(k->s, k->c, 200, o);
}

/* ---- one-off mail (apimail.h) ---- */

static int
mail_build(void *ctx, const struct config *cfg, sqlite3 *db, const struct dkim_signer *dkim,
           struct buf *out, struct message_out *mo, struct herr *err)
{
	(void)db;
	return apimail_build(ctx, cfg, dkim, out, mo, err);
}

static void
mail_done(void *ctx, sqlite3 *db, int rc, const struct mailsend_result *res,
          const char *message_id, const struct herr *send_err)
{
	struct apimail *m = ctx;
	struct herr err;

	herr_clear(&err);
	if (apimail_result(db, m->id, rc, res, message_id, send_err, &err) < 0)
		log_event(LOG_WARNING, "api.mail_problem", LOG_FIELDS(LOG_I("mail", m->id)),
		          "herald serve: api mail %lld: %s", m->id, err.msg);
}

static void
mail_free(void *ctx)
{
	apimail_free(ctx);
}

static enum MHD_Result
answer_mail(struct call *k, long long id, unsigned status)
{
	struct herr err;
	json_t *o;

	herr_clear(&err);
	if (apimail_json(k->t->db, id, k->key->id, &o, &err) < 0)
		return err.code == EX_NOINPUT
		       ? fail_with(k->s, k->c, 404, "not_found", "no mail of that id for this key")
		       : db_failed(k->s, k->c, &err);
	return answer(k->s, k->c, status, o);
}

/* POST /mail: checked, recorded (Idempotency-Key), queued; 202. */
static enum MHD_Result
post_mail(struct call *k)
{
	const char *idem = MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, "Idempotency-Key");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char hash[2 * EVP_MAX_MD_SIZE + 1];
	struct apimail *m = NULL;
	struct api_error e;
	json_t *body;
	long long id;
	int existing, rc;

	if (idem && (!*idem || strlen(idem) > 255 || strspn(idem, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	             "abcdefghijklmnopqrstuvwxyz0123456789-_.:/+=") != strlen(idem)))
		return fail_with(k->s, k->c, 422, "invalid_field", "Idempotency-Key is 1 to 255 "
		                 "letters, digits and -_.:/+=");
	if (api_json_parse(buf_str((struct buf *)&k->rq->body), k->rq->body.len, &body, &e) < 0)
		return fail(k->s, k->c, &e);
	rc = apimail_prepare(k->t->db, k->s->cfg, &k->s->key, body, &m, &e);
	json_decref(body);
	if (rc < 0)
		return fail(k->s, k->c, &e);
	if (EVP_Digest(k->rq->body.data, k->rq->body.len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		apimail_free(m);
		return fail_with(k->s, k->c, 500, "internal", "cannot hash the body");
	}
	for (i = 0; i < mdlen; i++)
		snprintf(hash + 2 * i, 3, "%02x", md[i]);
	pthread_mutex_lock(&k->s->api_write_mu);
	rc = apimail_record(k->t->db, m, k->key->id, idem, hash, &existing, &e);
	pthread_mutex_unlock(&k->s->api_write_mu);
	if (rc < 0) {
		apimail_free(m);
		return fail(k->s, k->c, &e);
	}
	id = m->id;
	if (existing) {
		apimail_free(m);
		return answer_mail(k, id, 200);
	}
	if (webmail_enqueue_build_done(k->s->mail, mail_build, mail_done, mail_free, m,
	                               "api mail") < 0) {
		struct herr err;
		struct herr why = { EX_TEMPFAIL, "", "the mail queue is full" };

		herr_clear(&err);
		apimail_result(k->t->db, id, -1, NULL, NULL, &why, &err);
		return fail_with(k->s, k->c, 503, "unavailable", "the mail queue is full; try "
		                 "again");
	}
	return answer_mail(k, id, 202);
}

/* ---- routing ---- */

static int
parse_id(const char *s, size_t n, long long *out)
{
	long long v = 0;
	size_t i;

	if (!n || n > 18 || s[0] == '0')
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static enum MHD_Result
not_allowed(struct call *k, const char *allow)
{
	struct api_error e;

	api_error_set(&e, 405, "method_not_allowed", NULL, "this path takes %s", allow);
	return fail_h(k->s, k->c, &e, MHD_HTTP_HEADER_ALLOW, allow);
}

static enum MHD_Result
forbidden(struct call *k, enum apikey_scope need)
{
	struct api_error e;

	api_error_set(&e, 403, "forbidden", NULL, "this key lacks the scope %s",
	              apikey_scope_name(need));
	return fail(k->s, k->c, &e);
}

/* 0 when the POST's content type is JSON (RFC 8259: application/json,
 * parameters allowed); else the 415 is queued. */
static int
json_body(struct call *k, enum MHD_Result *ret)
{
	const char *ct = MHD_lookup_connection_value(k->c, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = strlen("application/json");

	if (ct && !strncasecmp(ct, "application/json", n) && (!ct[n] || ct[n] == ';' ||
	                                                      ct[n] == ' '))
		return 0;
	*ret = fail_with(k->s, k->c, 415, "unsupported_media_type",
	                 "send the body as Content-Type: application/json");
	return -1;
}

enum MHD_Result
web_handle_api(struct web_server *s, struct MHD_Connection *c, enum web_method m,
               const struct web_route *r, const struct request *rq)
{
	static const struct request no_body;
	const char *p = r->api_path, *rest, *slash;
	struct web_thread *t;
	struct apikey key;
	struct call k;
	enum MHD_Result ret;
	char email[WEB_API_PATH_MAX], limit_key[32];
	long long id;
	int get = m == WEB_GET || m == WEB_HEAD;

	if (!(t = web_thread_db(s)))
		return fail_with(s, c, 503, "unavailable", "the database cannot be opened");
	if (authenticate(s, c, t, &key, &ret) < 0)
		return ret;
	snprintf(limit_key, sizeof limit_key, "k%lld", key.id);
	if (!web_limiter_hit(s->api_limit, limit_key, web_mono_now()))
		return fail_h(s, c, &(struct api_error){ 429, "rate_limited",
		              "this key made too many requests; wait a second", "" },
		              MHD_HTTP_HEADER_RETRY_AFTER, "1");
	k.s = s;
	k.c = c;
	k.t = t;
	k.key = &key;
	k.rq = rq ? rq : &no_body;
	/* a body must say it is JSON; none at all is for the endpoint to judge */
	if (m == WEB_POST && k.rq->body.len && json_body(&k, &ret) < 0)
		return ret;
	if (strncmp(p, "v1/", 3))
		return fail_with(s, c, 404, "not_found", "no such endpoint (the API is /api/v1/)");
	p += 3;
	if (!strcmp(p, "lists")) {
		if (!get)
			return not_allowed(&k, "GET");
		return key.scopes & APIKEY_LISTS_READ ? get_lists(&k)
		                                      : forbidden(&k, APIKEY_LISTS_READ);
	}
	if (!strcmp(p, "subscribers") || !strcmp(p, "subscribers/bulk")) {
		int bulk = p[11] == '/';

		if (get && !bulk)
			return key.scopes & APIKEY_SUBSCRIBERS_READ ? list_subscribers(&k)
			                                            : forbidden(&k, APIKEY_SUBSCRIBERS_READ);
		if (m != WEB_POST)
			return not_allowed(&k, bulk ? "POST" : "GET, POST");
		if (!(key.scopes & APIKEY_SUBSCRIBERS_WRITE))
			return forbidden(&k, APIKEY_SUBSCRIBERS_WRITE);
		return bulk ? post_bulk(&k) : post_subscriber(&k);
	}
	if (!strncmp(p, "subscribers/", 12)) {
		rest = p + 12;
		slash = strchr(rest, '/');
		snprintf(email, sizeof email, "%.*s", (int)(slash ? (size_t)(slash - rest)
		                                                 : strlen(rest)), rest);
		if (slash && strcmp(slash, "/unsubscribe"))
			return fail_with(s, c, 404, "not_found", "no such endpoint");
		if (slash) {
			if (m != WEB_POST)
				return not_allowed(&k, "POST");
			return key.scopes & APIKEY_SUBSCRIBERS_WRITE
			       ? post_unsubscribe(&k, email) : forbidden(&k, APIKEY_SUBSCRIBERS_WRITE);
		}
		if (get)
			return key.scopes & APIKEY_SUBSCRIBERS_READ
			       ? get_subscriber(&k, email) : forbidden(&k, APIKEY_SUBSCRIBERS_READ);
		if (m == WEB_DELETE)
			return key.scopes & APIKEY_SUBSCRIBERS_WRITE
			       ? delete_subscriber(&k, email) : forbidden(&k, APIKEY_SUBSCRIBERS_WRITE);
		return not_allowed(&k, "GET, DELETE");
	}
	if (!strcmp(p, "mail") || !strncmp(p, "mail/", 5)) {
		if (!(key.scopes & APIKEY_MAIL_SEND))
			return forbidden(&k, APIKEY_MAIL_SEND);
		if (!p[4]) {
			if (m != WEB_POST)
				return not_allowed(&k, "POST");
			return post_mail(&k);
		}
		if (parse_id(p + 5, strlen(p + 5), &id) < 0)
			return fail_with(s, c, 404, "not_found", "no such endpoint");
		if (!get)
			return not_allowed(&k, "GET");
		return answer_mail(&k, id, 200);
	}
	if (!strncmp(p, "issues/", 7)) {
		rest = p + 7;
		slash = strchr(rest, '/');
		if (parse_id(rest, slash ? (size_t)(slash - rest) : strlen(rest), &id) < 0 ||
		    (slash && strcmp(slash, "/stats")))
			return fail_with(s, c, 404, "not_found", "no such endpoint");
		if (!get)
			return not_allowed(&k, "GET");
		return key.scopes & APIKEY_ISSUES_READ ? get_issue(&k, id, slash != NULL)
		                                       : forbidden(&k, APIKEY_ISSUES_READ);
	}
	return fail_with(s, c, 404, "not_found", "no such endpoint");
}
