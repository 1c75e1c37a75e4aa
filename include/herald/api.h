/*
 * api.h - what the HTTP API (/api/v1/ of `herald serve`, src/webapi.c)
 * does, apart from HTTP: reading its JSON requests, doing them through the
 * core's one home for each rule, and writing its JSON answers.  The
 * contract is docs/openapi.yaml; tests/integration/test_api.py checks
 * every answer against it.
 *
 * Requests (api_json_parse()):
 *   (1) a body is one JSON value of at most [api] max_body bytes, valid
 *       UTF-8, nested at most API_DEPTH_MAX deep (counted before jansson
 *       sees it, so a deep body costs nothing), no NUL; anything else is
 *       400 invalid_json;
 *   (2) objects name only the fields the spec names: another field is 422
 *       unknown_field with the field's name, so that a typo ("e-mail")
 *       never passes silently; a field of the wrong type is 422
 *       invalid_field;
 * Upserts (api_upsert_*()):
 *   (3) by address: a new address is a new subscriber, a known one gets
 *       the name and attributes given (attributes are merged; a null value
 *       is not stored), and each named list a subscription as the web form
 *       makes one (SIGNUP_API of subscriber.h: a double opt-in list sends
 *       a confirmation mail, an unsubscribed or unconfirmed subscription
 *       is never changed but by the reader, rule 8); the consent record
 *       says source "api" and the key's name;
 *   (4) the same upsert twice changes nothing the second time (result
 *       "unchanged");
 *   (5) a bulk upsert is one transaction: every item is checked first,
 *       and one bad item refuses the whole request (422, with its index)
 *       and stores nothing; at most API_BULK_MAX items.
 * Errors have one shape everywhere:
 *   {"error": {"code": "...", "message": "...", "field": "..."}}
 * (field only when one field is wrong).
 */
#ifndef HERALD_API_H
#define HERALD_API_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/address.h"
#include "herald/herr.h"
#include "herald/list.h"
#include "herald/token.h"

#define API_DEPTH_MAX   16
#define API_BULK_MAX    10000
#define API_LISTS_MAX   64     /* lists named by one upsert */
#define API_ATTRS_MAX   64     /* attributes set by one upsert */
#define API_PAGE_MAX    1000   /* subscribers per page of a listing */

struct json_t;

struct api_error {
	int  status;          /* HTTP status */
	char code[32];        /* "invalid_json", "unknown_field", ... */
	char message[256];
	char field[96];       /* "" when none */
};

/* Set `e` and return -1. */
int api_error_set(struct api_error *e, int status, const char *code, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The error document, as text (malloc()ed); NULL out of memory. */
char *api_error_text(const struct api_error *e);

/* Rule (1): `body` (`len` bytes) as a new JSON value into *out. */
int api_json_parse(const char *body, size_t len, struct json_t **out, struct api_error *e);

/* One upsert, checked (rules (2), (3)); points into the JSON it was read
 * from, which must outlive it. */
struct api_upsert {
	struct address addr;
	const char    *email;
	const char    *name;                 /* NULL: unchanged */
	const char    *attr_key[API_ATTRS_MAX];
	char          *attr_value[API_ATTRS_MAX]; /* malloc()ed text of each value */
	size_t         n_attrs;
	long long      list_id[API_LISTS_MAX];
	size_t         n_lists;              /* at least one */
	int            tracking_consent;     /* -1: not given; 0/1 */
	const char    *consent_text;         /* what the caller's form showed; NULL: none */
};
void api_upsert_clear(struct api_upsert *u);
/* Read one upsert object; lists are looked up (422 unknown_list) and must
 * take web sign-ups or be named by their name (any list: a key with
 * subscribers:write is trusted with every list). `prefix` names the item
 * in a bulk request ("items[3]."), "" otherwise. */
int api_upsert_parse(sqlite3 *db, struct json_t *obj, const char *prefix,
                     struct api_upsert *u, struct api_error *e);

/* A confirmation mail an upsert asks for (the caller queues it). */
struct api_confirm {
	long long subscriber_id, list_id, confirm_id;
};

struct api_upsert_result {
	long long subscriber_id;
	int       created;                   /* a new subscriber */
	int       changed;                   /* anything was written */
	struct api_confirm confirms[API_LISTS_MAX];
	size_t    n_confirms;
};

/*
 * Do `n` upserts in one transaction (rules (3)-(5)); res[i] for u[i].
 * `how`: the consent record's client (source "api", the caller's address
 * and User-Agent, [privacy] store_ip); its text is each upsert's
 * consent_text, else `key_text` ("api key NAME").  `erased_key`: rule
 * (10) of subscriber.h.  On a refusal by the core (an invalid name, say),
 * nothing is stored and `e` names the item.
 */
struct consent_ctx;
struct subscriber_writer;
/* `w`: a writer on `db` the caller keeps (its statements prepared once);
 * NULL: one of its own for this call. */
int api_upsert_apply(sqlite3 *db, struct subscriber_writer *w, struct api_upsert *u, size_t n,
                     const struct consent_ctx *how, const char *key_text,
                     const struct token_key *erased_key, struct api_upsert_result *res,
                     struct api_error *e);

/* The subscriber with id `id` as the API shows one (new object):
 * {id, email, name, status, attributes, created_at, updated_at,
 *  subscriptions: [{list, status, created_at, confirmed_at, unsubscribed_at}]}. */
int api_subscriber_json(sqlite3 *db, long long id, struct json_t **out, struct herr *err);
/* A list as the API shows one (new object; also `herald list ls --json`). */
struct json_t *api_list_json(const struct list *l);

/* The same inside the caller's transaction (or savepoint): on -1 the
 * caller rolls back what it began. */
int api_upsert_apply_in(sqlite3 *db, struct subscriber_writer *w, struct api_upsert *u,
                        size_t n, const struct consent_ctx *how, const char *key_text,
                        const struct token_key *erased_key, struct api_upsert_result *res,
                        struct api_error *e);

/* Upsert result words: "created", "updated", "unchanged". */
const char *api_upsert_word(const struct api_upsert_result *r);

#endif
