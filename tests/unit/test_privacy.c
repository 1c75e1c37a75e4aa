/*
 * test_privacy.c - a person's data on request (src/privacy.c), on a fresh
 * migrated database per test.
 *
 * Covers privacy.h:
 *   the export: EX_NOINPUT for an address herald knows nothing of; every
 *   key of the schema present; the subscriber, their subscriptions and
 *   consent records in it; an address known only by a suppression
 *   exported with subscriber null;
 *   the erasure (1)-(5): the subscriber row, subscriptions and consent
 *   records go; events move to a tombstone with no address and keep
 *   their count; a suppression note naming the address becomes
 *   "[erased]"; the address's own suppression is kept only as its hash
 *   (privacy_erased_check() 2), an unsuppressed one 1, another address
 *   0, another key 0; one erasures row with `by` and nothing else; a `by`
 *   naming the address or holding a control character is EX_DATAERR and
 *   changes nothing; a second erasure is EX_NOINPUT;
 *   the reader's "delete me": a new request is open, expires after its
 *   ttl, is unknown for a wrong code, erases once when used and is then
 *   USED (a second use changes nothing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "tempdb.h"

#include "herald/address.h"
#include "herald/consent.h"
#include "herald/db.h"
#include "herald/eventlog.h"
#include "herald/list.h"
#include "herald/privacy.h"
#include "herald/subscriber.h"
#include "herald/suppress.h"

#define ADA "Ada.Lovelace@Example.org"
#define T0  1760000000LL

struct fixture {
	char             path[TEMPDB_PATH_MAX];
	sqlite3         *db;
	struct list      news;
	struct token_key key;
	long long        ada;   /* her subscriber id */
};

static int
setup(void **state)
{
	static const struct consent_ctx web = { .source = "web form", .text = "I agree",
	                                        .ip = "192.0.2.7", .user_agent = "Ada's Browser/1" };
	struct fixture *f = calloc(1, sizeof *f);
	struct signup_result res;
	struct signup_req r;
	struct address a;
	struct herr err;
	long long id;

	if (!f || tempdb_open(f->path, "privacy", &f->db) < 0)
		return -1;
	memset(f->key.secret, 0x5a, sizeof f->key.secret);
	db_set_now(T0);
	if (list_create(f->db, "news", "The News", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0 || address_parse(ADA, &a, &err) < 0)
		return -1;
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = "Ada Lovelace";
	r.source = SIGNUP_WEB;
	r.consent = &web;
	if (subscriber_signup(f->db, &f->news, &r, &res, &err) < 0)
		return -1;
	f->ada = res.subscriber_id;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	db_set_now(0);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static long long
count(struct fixture *f, const char *sql)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(f->db));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static struct address
addr(const char *s)
{
	struct address a;
	struct herr err;

	if (address_parse(s, &a, &err) < 0)
		fail_msg("%s: %s", s, err.msg);
	return a;
}

static void
test_export_unknown_and_known(void **state)
{
	int added;
	static const char *const keys[] = {
		"schema", "schema_version", "exported_at", "address", "subscriber",
		"subscriptions", "consent", "confirmations", "deliveries", "opens", "clicks",
		"events", "bounces", "suppressions", "leave_answers", "mails",
	};
	struct fixture *f = *state;
	struct address a = addr("nobody@example.org");
	struct herr err;
	json_t *doc = NULL, *c;
	size_t i;

	assert_int_equal(privacy_export(f->db, &a, T0, &doc, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_null(doc);

	a = addr("ADA.LOVELACE@example.org");
	assert_int_equal(privacy_export(f->db, &a, T0 + 5, &doc, &err), 0);
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!json_object_get(doc, keys[i]))
			fail_msg("the export has no '%s'", keys[i]);
	assert_string_equal(json_string_value(json_object_get(doc, "schema")), PRIVACY_SCHEMA);
	assert_int_equal(json_integer_value(json_object_get(doc, "exported_at")), T0 + 5);
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "subscriber"),
	                                                      "name")), "Ada Lovelace");
	assert_int_equal(json_array_size(json_object_get(doc, "subscriptions")), 1);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(doc, "subscriptions"), 0), "list")), "news");
	c = json_array_get(json_object_get(doc, "consent"), 0);
	assert_string_equal(json_string_value(json_object_get(c, "source")), "web form");
	assert_string_equal(json_string_value(json_object_get(c, "ip")), "192.0.2.7");
	assert_string_equal(json_string_value(json_object_get(c, "detail")), "I agree");
	json_decref(doc);

	/* known only by a suppression: exported, with no subscriber */
	assert_int_equal(suppress_add(f->db, "grace@example.net", "manual", "asked by phone",
	                              &added, &err), 0);
	a = addr("grace@example.net");
	assert_int_equal(privacy_export(f->db, &a, T0, &doc, &err), 0);
	assert_true(json_is_null(json_object_get(doc, "subscriber")));
	assert_int_equal(json_array_size(json_object_get(doc, "suppressions")), 1);
	json_decref(doc);
}

static void
test_forget_erases_and_keeps_counts(void **state)
{
	int added;
	struct fixture *f = *state;
	struct address a = addr(ADA);
	struct privacy_forget_result res;
	struct herr err;
	long long events, tomb;

	/* something to keep: an unsubscribe event of hers, and a domain
	 * suppression whose note names her */
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, f->ada, "web", &err), 0);
	assert_int_equal(suppress_add(f->db, "@example.org", "manual",
	                              "after " ADA " complained", &added, &err), 0);
	events = count(f, "SELECT count(*) FROM events");
	assert_true(events >= 1);

	/* refused: a `by` that names her, one with a control character */
	assert_int_equal(privacy_forget(f->db, &f->key, &a, "erased " ADA, T0, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(privacy_forget(f->db, &f->key, &a, "dpo\nteam", T0, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE email_key = "
	                          "'ada.lovelace@example.org'"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM erasures"), 0);

	assert_int_equal(privacy_forget(f->db, &f->key, &a, "DPO ticket 7", T0 + 60, &res, &err),
	                 0);
	assert_int_equal(res.subscriber, 1);
	assert_int_equal(res.suppressed, 0);
	assert_true(res.redacted >= 1);
	/* (1) no row names her */
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE email LIKE '%ada%' "
	                          "OR name LIKE '%Ada%'"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM consent_log WHERE ip IS NOT NULL OR "
	                          "user_agent IS NOT NULL"), 0);
	/* (2) the events stay, on a tombstone with no address */
	assert_int_equal(count(f, "SELECT count(*) FROM events"), events);
	tomb = count(f, "SELECT DISTINCT subscriber_id FROM events");
	assert_true(tomb > 0 && tomb != f->ada);
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE id = (SELECT "
	                          "DISTINCT subscriber_id FROM events) AND email = ''"), 1);
	/* (3) the note */
	assert_int_equal(count(f, "SELECT count(*) FROM suppressions WHERE note = "
	                          "'after [erased] complained'"), 1);
	/* (5) the hash and the log */
	assert_int_equal(privacy_erased_check(f->db, &f->key, "ada.lovelace@example.org", &err), 1);
	assert_int_equal(privacy_erased_check(f->db, &f->key, "grace@example.org", &err), 0);
	{
		struct token_key other;

		memset(other.secret, 0x33, sizeof other.secret);
		assert_int_equal(privacy_erased_check(f->db, &other, "ada.lovelace@example.org",
		                                      &err), 0);
	}
	assert_int_equal(count(f, "SELECT count(*) FROM erasures WHERE by_whom = 'DPO ticket 7' AND "
	                          "at = 1760000060"), 1);
	/* twice: nothing left to erase */
	assert_int_equal(privacy_forget(f->db, &f->key, &a, "DPO", T0 + 61, &res, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(count(f, "SELECT count(*) FROM erasures"), 1);
}

static void
test_forget_keeps_a_suppression_as_hash(void **state)
{
	int added;
	struct fixture *f = *state;
	struct address a = addr(ADA);
	struct privacy_forget_result res;
	struct herr err;

	assert_int_equal(suppress_add(f->db, ADA, "complaint", NULL, &added, &err), 0);
	assert_int_equal(privacy_forget(f->db, &f->key, &a, "admin", T0, &res, &err), 0);
	assert_int_equal(res.suppressed, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM suppressions WHERE pattern LIKE '%ada%'"),
	                 0);
	assert_int_equal(privacy_erased_check(f->db, &f->key, "ada.lovelace@example.org", &err), 2);
}

static void
test_delete_me_request(void **state)
{
	struct fixture *f = *state;
	enum privacy_request_state st;
	struct privacy_forget_result res;
	char code[PRIVACY_CODE_LEN + 1], other[PRIVACY_CODE_LEN + 1];
	struct herr err;
	long long sid = 0;
	const long ttl = 3600;

	assert_int_equal(privacy_request_new(f->db, f->ada, T0, code, &err), 0);
	assert_int_equal(strlen(code), PRIVACY_CODE_LEN);
	assert_int_equal(privacy_request_new(f->db, f->ada, T0, other, &err), 0);
	assert_string_not_equal(code, other);
	assert_int_equal(privacy_request_state(f->db, code, T0 + 10, ttl, &st, &sid, &err), 0);
	assert_int_equal(st, PRIVACY_REQUEST_OPEN);
	assert_int_equal(sid, f->ada);
	assert_int_equal(privacy_request_state(f->db, code, T0 + ttl + 1, ttl, &st, &sid, &err), 0);
	assert_int_equal(st, PRIVACY_REQUEST_EXPIRED);
	assert_int_equal(privacy_request_state(f->db, "0123456789abcdef0123456789abcdef", T0, ttl,
	                                       &st, &sid, &err), 0);
	assert_int_equal(st, PRIVACY_REQUEST_UNKNOWN);

	/* expired: using it erases nothing */
	assert_int_equal(privacy_request_use(f->db, &f->key, code, T0 + ttl + 1, ttl, &st, &res,
	                                     &err), 0);
	assert_int_equal(st, PRIVACY_REQUEST_EXPIRED);
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE email <> ''"), 1);
	/* open: erases, by the preference centre */
	assert_int_equal(privacy_request_use(f->db, &f->key, code, T0 + 20, ttl, &st, &res, &err),
	                 0);
	assert_int_equal(st, PRIVACY_REQUEST_OPEN);
	assert_int_equal(res.subscriber, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE email <> ''"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM erasures WHERE by_whom = '"
	                          PRIVACY_BY_WEB "'"), 1);
	/* the person is gone: the link names nobody now, and erases nothing more */
	assert_int_equal(privacy_request_use(f->db, &f->key, code, T0 + 30, ttl, &st, &res, &err),
	                 0);
	assert_true(st == PRIVACY_REQUEST_USED || st == PRIVACY_REQUEST_UNKNOWN);
	assert_int_equal(count(f, "SELECT count(*) FROM erasures"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_unknown_and_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_erases_and_keeps_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_keeps_a_suppression_as_hash, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_delete_me_request, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
