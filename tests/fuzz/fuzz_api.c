/*
 * fuzz_api.c - libFuzzer target for the HTTP API's request reading
 * (include/herald/api.h): api_json_parse() of any bytes, then
 * api_upsert_parse() of what parses (the value itself, and each element
 * when it is an array, as a bulk request's items), over an in-memory
 * database holding two lists, and api_error_text() of every refusal.
 *
 * Input: the request body, any bytes.
 *
 * Broken promises abort():
 *   - parsing: 0 gives a value, -1 none and a 400 invalid_json; a body with
 *     a NUL byte or invalid UTF-8 never parses, and a parsed value is
 *     nested at most API_DEPTH_MAX deep (measured on the value);
 *   - upserts: 0 means a valid address, at least one list and every list
 *     id one of the database's (1 or 2), at most API_ATTRS_MAX attributes
 *     each with a value, tracking_consent -1, 0 or 1; -1 sets a 4xx (or
 *     503/500) status and a code;
 *   - errors: api_error_text() is a JSON object with error.code and
 *     error.message (and error.field when one was named).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/api.h"
#include "herald/db.h"
#include "herald/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sqlite3 *db;

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_api: broken promise: %s (%.300s)\n", what, detail ? detail : "");
	abort();
}

static void
setup(void)
{
	struct herr err;

	if (db_open(":memory:", DB_OPEN_CREATE, 1000, &db, &err) < 0)
		broken("cannot open the database", err.msg);
	if (db_exec(db, "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0), "
	            "(2, 'digest', 0);", &err) < 0)
		broken("cannot fill the database", err.msg);
}

static void
check_error(const struct api_error *e)
{
	json_t *doc, *inner;
	char *text;

	if (e->status < 400 || e->status > 599 || !e->code[0])
		broken("a refusal without a 4xx/5xx status or a code", e->message);
	if (!(text = api_error_text(e)))
		return;   /* out of memory */
	doc = json_loads(text, 0, NULL);
	inner = json_object_get(doc, "error");
	if (!json_is_string(json_object_get(inner, "code")) ||
	    !json_is_string(json_object_get(inner, "message")) ||
	    (e->field[0] != '\0') != (json_object_get(inner, "field") != NULL))
		broken("an error document of the wrong shape", text);
	json_decref(doc);
	free(text);
}

/* How deep the value nests: a scalar 0, [] or {} 1, [[1]] 2. */
static int
depth(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;
	int d, max = 0;

	if (json_is_array(v))
		json_array_foreach(v, i, x)
			if ((d = depth(x)) > max)
				max = d;
	if (json_is_object(v))
		json_object_foreach(v, k, x)
			if ((d = depth(x)) > max)
				max = d;
	return json_is_array(v) || json_is_object(v) ? max + 1 : 0;
}

static void
upsert(json_t *v, const char *prefix)
{
	struct api_upsert u;
	struct api_error e;
	size_t i;

	memset(&u, 0, sizeof u);
	memset(&e, 0, sizeof e);
	if (api_upsert_parse(db, v, prefix, &u, &e) < 0) {
		check_error(&e);
	} else {
		if (!u.email || !u.addr.addr[0] || !u.n_lists || u.n_lists > API_LISTS_MAX ||
		    u.n_attrs > API_ATTRS_MAX || u.tracking_consent < -1 || u.tracking_consent > 1)
			broken("an accepted upsert that breaks the rules", u.email);
		for (i = 0; i < u.n_lists; i++)
			if (u.list_id[i] != 1 && u.list_id[i] != 2)
				broken("a list id the database does not have", u.email);
		for (i = 0; i < u.n_attrs; i++)
			if (!u.attr_key[i] || !u.attr_value[i])
				broken("an attribute without a value", u.email);
	}
	api_upsert_clear(&u);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_error e;
	json_t *v = NULL, *item;
	size_t i;
	int rc;

	if (!db)
		setup();
	memset(&e, 0, sizeof e);
	rc = api_json_parse((const char *)data, size, &v, &e);
	if (rc == 0 && !v)
		broken("parsed to nothing", NULL);
	if (rc < 0) {
		if (v || e.status != 400 || strcmp(e.code, "invalid_json"))
			broken("a parse failure that is not a 400 invalid_json", e.message);
		check_error(&e);
		return 0;
	}
	if (memchr(data, 0, size) ||
	    utf8_invalid_at((const unsigned char *)data, size) != size)
		broken("parsed a body with a NUL or invalid UTF-8", NULL);
	if (depth(v) > API_DEPTH_MAX)
		broken("parsed a value nested deeper than API_DEPTH_MAX", NULL);
	upsert(v, "");
	if (json_is_array(v))
		json_array_foreach(v, i, item)
			upsert(item, "subscribers[0].");
	json_decref(v);
	return 0;
}
