/*
 * api.c - the HTTP API's requests and answers apart from HTTP (see api.h
 * for rules (1)-(5)).
 *
 * Owns no table.  Upserts go through subscriber_signup_in() (the one home
 * of subscribing, SIGNUP_API) and subscriber_set_tracking_consent(); the
 * answers are read through subscriber.c and list.c.  src/webapi.c calls
 * this file; tests/fuzz/fuzz_api.c feeds api_json_parse() and
 * api_upsert_parse() hostile bodies.
 */
#include "herald/api.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/consent.h"
#include "herald/db.h"
#include "herald/subscriber.h"
#include "herald/utf8.h"

int
api_error_set(struct api_error *e, int status, const char *code, const char *field,
              const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	snprintf(e->code, sizeof e->code, "%s", code);
	snprintf(e->field, sizeof e->field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return -1;
}

char *
api_error_text(const struct api_error *e)
{
	json_t *o, *inner;
	char *text;

	inner = json_pack("{s:s, s:s}", "code", e->code, "message", e->message);
	if (inner && e->field[0] && json_object_set_new(inner, "field", json_string(e->field)) < 0) {
		json_decref(inner);
		inner = NULL;
	}
	if (!inner || !(o = json_pack("{s:o}", "error", inner)))
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* Rule (1): the depth of brackets outside strings, before any parsing;
 * -1 when it passes `max`. */
static int
depth_ok(const char *s, size_t len, int max)
{
	int depth = 0, in_string = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char ch = s[i];

		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = 0;
		} else if (ch == '"')
			in_string = 1;
		else if (ch == '{' || ch == '[') {
			if (++depth > max)
				return -1;
		} else if (ch == '}' || ch == ']')
			depth--;
	}
	return 0;
}

int
api_json_parse(const char *body, size_t len, json_t **out, struct api_error *e)
{
	json_error_t je;

	*out = NULL;
	if (!len)
		return api_error_set(e, 400, "invalid_json", NULL, "the request has no body");
	if (memchr(body, '\0', len))
		return api_error_set(e, 400, "invalid_json", NULL, "the body holds a NUL byte");
	if (utf8_invalid_at((const unsigned char *)body, len) != len)
		return api_error_set(e, 400, "invalid_json", NULL,
		                     "the body is not valid UTF-8 (at byte %zu)",
		                     utf8_invalid_at((const unsigned char *)body, len));
	if (depth_ok(body, len, API_DEPTH_MAX) < 0)
		return api_error_set(e, 400, "invalid_json", NULL,
		                     "the body is nested deeper than %d levels", API_DEPTH_MAX);
	/* JSON_REJECT_DUPLICATES: {"email": a, "email": b} is not one upsert */
	if (!(*out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)))
		return api_error_set(e, 400, "invalid_json", NULL, "line %d, column %d: %s",
		                     je.line, je.column, je.text);
	return 0;
}

void
api_upsert_clear(struct api_upsert *u)
{
	size_t i;

	for (i = 0; i < u->n_attrs; i++)
		free(u->attr_value[i]);
	memset(u, 0, sizeof *u);
	u->tracking_consent = -1;
}

/* The text an attribute's JSON value is stored as: strings as they are,
 * numbers and booleans as written; NULL for null; -1 for the rest. */
static int
attr_text(json_t *v, char **out)
{
	*out = NULL;
	if (json_is_null(v))
		return 0;
	if (json_is_string(v))
		*out = strdup(json_string_value(v));
	else if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v))
		*out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	else
		return -1;
	return *out ? 0 : -2;
}

int
api_upsert_parse(sqlite3 *db, json_t *obj, const char *prefix, struct api_upsert *u,
                 struct api_error *e)
{
	const char *k;
	char field[96];
	struct herr err;
	json_t *v;
	size_t i;

	api_upsert_clear(u);
	if (!json_is_object(obj))
		return api_error_set(e, 422, "invalid_field", prefix[0] ? prefix : NULL,
		                     "a subscriber is a JSON object");
	json_object_foreach(obj, k, v) {
		snprintf(field, sizeof field, "%s%s", prefix, k);
		if (!strcmp(k, "email")) {
			if (!json_is_string(v))
				return api_error_set(e, 422, "invalid_field", field, "email is a string");
			u->email = json_string_value(v);
		} else if (!strcmp(k, "name")) {
			if (!json_is_string(v) && !json_is_null(v))
				return api_error_set(e, 422, "invalid_field", field, "name is a string");
			u->name = json_is_string(v) ? json_string_value(v) : NULL;
		} else if (!strcmp(k, "consent_text")) {
			if (!json_is_string(v))
				return api_error_set(e, 422, "invalid_field", field,
				                     "consent_text is a string");
			u->consent_text = json_string_value(v);
		} else if (!strcmp(k, "tracking_consent")) {
			if (!json_is_boolean(v))
				return api_error_set(e, 422, "invalid_field", field,
				                     "tracking_consent is true or false");
			u->tracking_consent = json_is_true(v);
		} else if (!strcmp(k, "attributes")) {
			const char *ak;
			json_t *av;

			if (!json_is_object(v))
				return api_error_set(e, 422, "invalid_field", field,
				                     "attributes is an object of names and values");
			json_object_foreach(v, ak, av) {
				char *text;
				int rc;

				snprintf(field, sizeof field, "%sattributes.%.40s", prefix, ak);
				if (u->n_attrs == API_ATTRS_MAX)
					return api_error_set(e, 422, "invalid_field", field,
					                     "at most %d attributes", API_ATTRS_MAX);
				if (!strcmp(ak, "tracking_consent"))
					return api_error_set(e, 422, "invalid_field", field, "set "
					                     "tracking_consent as its own field (true or "
					                     "false)");
				if ((rc = attr_text(av, &text)) == -1)
					return api_error_set(e, 422, "invalid_field", field, "an attribute "
					                     "is a string, number, boolean or null");
				if (rc < 0)
					return api_error_set(e, 500, "internal", NULL, "out of memory");
				if (!text)
					continue;   /* null: nothing stored (subscriber.h) */
				u->attr_key[u->n_attrs] = ak;
				u->attr_value[u->n_attrs++] = text;
			}
		} else if (!strcmp(k, "lists")) {
			json_t *lv;

			if (!json_is_array(v) || !json_array_size(v))
				return api_error_set(e, 422, "invalid_field", field,
				                     "lists is a non-empty array of list names");
			if (json_array_size(v) > API_LISTS_MAX)
				return api_error_set(e, 422, "invalid_field", field, "at most %d lists",
				                     API_LISTS_MAX);
			json_array_foreach(v, i, lv) {
				struct list l;

				snprintf(field, sizeof field, "%slists[%zu]", prefix, i);
				herr_clear(&err);
				if (!json_is_string(lv))
					return api_error_set(e, 422, "invalid_field", field,
					                     "a list is named by a string");
				if (list_name_check(json_string_value(lv), &err) < 0 ||
				    list_get(db, json_string_value(lv), &l, &err) < 0) {
					if (err.code && err.code != EX_NOINPUT && err.code != EX_DATAERR)
						return api_error_set(e, 503, "unavailable", NULL,
						                     "the database failed: %s", err.msg);
					return api_error_set(e, 422, "unknown_list", field,
					                     "there is no list of that name");
				}
				u->list_id[u->n_lists++] = l.id;
			}
		} else
			return api_error_set(e, 422, "unknown_field", field,
			                     "'%.60s' is not a field of a subscriber", k);
	}
	snprintf(field, sizeof field, "%semail", prefix);
	if (!u->email)
		return api_error_set(e, 422, "invalid_field", field, "email is required");
	herr_clear(&err);
	if (address_parse(u->email, &u->addr, &err) < 0)
		return api_error_set(e, 422, "invalid_email", field, "%s", err.msg);
	if (!u->n_lists) {
		snprintf(field, sizeof field, "%slists", prefix);
		return api_error_set(e, 422, "invalid_field", field,
		                     "lists is required: the lists to subscribe to");
	}
	return 0;
}

const char *
api_upsert_word(const struct api_upsert_result *r)
{
	return r->created ? "created" : r->changed ? "updated" : "unchanged";
}

/* One upsert inside the transaction of `w`. */
static int
upsert_one(struct subscriber_writer *w, sqlite3 *db, const struct api_upsert *u,
           const struct consent_ctx *how, const char *key_text,
           const struct token_key *erased_key, struct api_upsert_result *res,
           struct herr *err)
{
	struct tmpl_attr attrs[API_ATTRS_MAX];
	struct signup_result sr;
	struct signup_req req;
	struct consent_ctx cc;
	struct subscriber before;
	size_t i;
	int known, changed;

	memset(res, 0, sizeof *res);
	herr_clear(err);
	known = subscriber_get(db, u->addr.addr, &before, err) == 0;
	if (!known && err->code != EX_NOINPUT)
		return -1;
	if (known)
		subscriber_clear(&before);
	for (i = 0; i < u->n_attrs; i++) {
		attrs[i].key = u->attr_key[i];
		attrs[i].value = u->attr_value[i];
	}
	cc = *how;
	cc.text = u->consent_text ? u->consent_text : key_text;
	for (i = 0; i < u->n_lists; i++) {
		struct list l;

		if (list_get_by_id(db, u->list_id[i], &l, err) < 0)
			return -1;
		memset(&req, 0, sizeof req);
		req.addr = &u->addr;
		req.name = u->name;
		req.attrs = attrs;
		req.n_attrs = u->n_attrs;
		req.source = SIGNUP_API;
		req.consent = &cc;
		req.erased_key = erased_key;
		if (subscriber_signup_in(w, &l, &req, &sr, err) < 0)
			return -1;
		if (sr.subscriber_id)
			res->subscriber_id = sr.subscriber_id;
		if (sr.res == SUBSCRIBE_ADDED || sr.res == SUBSCRIBE_UPDATED)
			res->changed = 1;
		if (sr.confirm_mail && res->n_confirms < API_LISTS_MAX) {
			struct api_confirm *c = &res->confirms[res->n_confirms++];

			c->subscriber_id = sr.subscriber_id;
			c->list_id = l.id;
			c->confirm_id = sr.confirm_id;
			res->changed = 1;
		}
	}
	if (res->subscriber_id && u->tracking_consent >= 0) {
		if (subscriber_set_tracking_consent(db, res->subscriber_id, u->tracking_consent,
		                                    &changed, err) < 0)
			return -1;
		res->changed |= changed;
	}
	res->created = !known && res->subscriber_id;
	return 0;
}

int
api_upsert_apply_in(sqlite3 *db, struct subscriber_writer *w, struct api_upsert *u, size_t n,
                    const struct consent_ctx *how, const char *key_text,
                    const struct token_key *erased_key, struct api_upsert_result *res,
                    struct api_error *e)
{
	struct herr err;
	size_t i;

	herr_clear(&err);
	for (i = 0; i < n; i++)
		if (upsert_one(w, db, &u[i], how, key_text, erased_key, &res[i], &err) < 0) {
			char field[48];

			if (n > 1)
				snprintf(field, sizeof field, "subscribers[%zu]", i);
			if (err.code == EX_DATAERR)
				return api_error_set(e, 422, "invalid_field", n > 1 ? field : NULL,
				                     "%s", err.msg);
			return api_error_set(e, 503, "unavailable", NULL, "the database failed: %s",
			                     err.msg);
		}
	return 0;
}

int
api_upsert_apply(sqlite3 *db, struct subscriber_writer *kept, struct api_upsert *u, size_t n,
                 const struct consent_ctx *how, const char *key_text,
                 const struct token_key *erased_key, struct api_upsert_result *res,
                 struct api_error *e)
{
	struct subscriber_writer *w = kept;
	struct herr err;
	int rc;

	herr_clear(&err);
	if ((!w && subscriber_writer_open(db, &w, &err) < 0) || db_begin(db, &err) < 0) {
		if (!kept)
			subscriber_writer_close(w);
		return api_error_set(e, 503, "unavailable", NULL, "the database failed: %s",
		                     err.msg);
	}
	rc = api_upsert_apply_in(db, w, u, n, how, key_text, erased_key, res, e);
	if (!kept)
		subscriber_writer_close(w);
	if (rc < 0) {
		db_rollback(db);
		return -1;
	}
	if (db_commit(db, &err) < 0)
		return api_error_set(e, 503, "unavailable", NULL, "the database failed: %s",
		                     err.msg);
	return 0;
}

static int
add_subscription(void *ctx, const struct subscription_info *s)
{
	json_t *arr = ctx, *o;

	o = json_pack("{s:s, s:s, s:I, s:o, s:o}", "list", s->list_name, "status", s->status,
	              "created_at", (json_int_t)s->created_at,
	              "confirmed_at", s->confirmed_at ? json_integer(s->confirmed_at) : json_null(),
	              "unsubscribed_at", s->unsubscribed_at ? json_integer(s->unsubscribed_at)
	                                                    : json_null());
	return o && json_array_append_new(arr, o) == 0 ? 0 : -1;
}

int
api_subscriber_json(sqlite3 *db, long long id, json_t **out, struct herr *err)
{
	struct subscriber s;
	json_t *subs, *attrs;
	json_error_t je;

	*out = NULL;
	if (subscriber_get_by_id(db, id, &s, err) < 0)
		return -1;
	attrs = json_loads(s.attributes ? s.attributes : "{}", 0, &je);
	subs = json_array();
	if (!attrs || !subs) {
		json_decref(attrs);
		json_decref(subs);
		subscriber_clear(&s);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	if (subscriber_each_subscription(db, id, add_subscription, subs, err) < 0) {
		json_decref(attrs);
		json_decref(subs);
		subscriber_clear(&s);
		return err->code ? -1 : herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	*out = json_pack("{s:I, s:s, s:s, s:s, s:o, s:I, s:I, s:o}", "id", (json_int_t)s.id,
	                 "email", s.email, "name", s.name, "status", s.status,
	                 "attributes", attrs, "created_at", (json_int_t)s.created_at,
	                 "updated_at", (json_int_t)s.updated_at, "subscriptions", subs);
	subscriber_clear(&s);
	return *out ? 0 : herr_set(err, EX_OSERR, NULL, "out of memory");
}

json_t *
api_list_json(const struct list *l)
{
	return json_pack("{s:I, s:s, s:s, s:b, s:b, s:b, s:s, s:I, s:{s:I, s:I, s:I}, s:I}",
	                 "id", (json_int_t)l->id, "name", l->name, "title", l->title,
	                 "double_opt_in", l->double_opt_in, "public", l->public,
	                 "signup", l->signup, "consent_text", l->consent_text,
	                 "created_at", (json_int_t)l->created_at, "subscribers",
	                 "confirmed", (json_int_t)l->n_confirmed,
	                 "unconfirmed", (json_int_t)l->n_unconfirmed,
	                 "unsubscribed", (json_int_t)l->n_unsubscribed,
	                 "issues", (json_int_t)l->n_issues);
}
