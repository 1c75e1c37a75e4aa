/*
 * test_bouncelog.c - recording returned mail (src/bouncelog.c): the RFC 3463
 * code in an SMTP reply, the digest that makes a second reading a no-op,
 * finding the subscriber by VERP token (and not by a forged one), and the
 * policy: hard marks, soft counts within the window, a complaint
 * unsubscribes everywhere and suppresses, a blocklisted person stays so.
 * The end-to-end paths (real Postfix DSNs, pipes, IMAP) are in
 * tests/integration/test_bounce.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/address.h"
#include "herald/bouncelog.h"
#include "herald/db.h"
#include "herald/list.h"
#include "herald/subscriber.h"
#include "herald/suppress.h"

struct fixture {
	char             path[TEMPDB_PATH_MAX];
	sqlite3         *db;
	struct token_key key;
	long long        list_id, list2_id;
	long long        alice, bob;
};

static long long
add_sub(struct fixture *f, long long list_id, const char *addr)
{
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;
	struct list l;

	assert_int_equal(address_parse(addr, &a, &err), 0);
	assert_int_equal(list_get_by_id(f->db, list_id, &l, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.source = SIGNUP_ADMIN;
	assert_int_equal(subscriber_signup(f->db, &l, &r, &res, &err), 0);
	assert_true(res.subscriber_id > 0);
	return res.subscriber_id;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;

	if (!f)
		return -1;
	memset(f->key.secret, 7, sizeof f->key.secret);
	if (tempdb_open(f->path, "bouncelog", &f->db) < 0 ||
	    list_create(f->db, "news", "News", 0, 0, &f->list_id, &err) < 0 ||
	    list_create(f->db, "events", "Events", 0, 0, &f->list2_id, &err) < 0)
		return -1;
	f->alice = add_sub(f, f->list_id, "alice@example.org");
	add_sub(f, f->list2_id, "alice@example.org");
	f->bob = add_sub(f, f->list_id, "bob@example.org");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static void
status_of(struct fixture *f, long long id, char out[16])
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT status FROM subscribers WHERE id = ?1",
	                                    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, 16, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static long long
count(struct fixture *f, const char *sql)
{
	sqlite3_stmt *st;
	long long n;

	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A one-recipient report, as bounce_parse() would make it. */
struct one {
	struct bounce_report    r;
	struct bounce_recipient b;
};

static void
one_report(struct one *o, const char *digest_seed, const char *rcpt, enum bounce_class cls,
           const char *reason, const char *envelope_to)
{
	size_t i;

	memset(o, 0, sizeof *o);
	for (i = 0; i < 64; i++)
		o->r.sha256[i] = "0123456789abcdef"[(unsigned char)digest_seed[i % strlen(digest_seed)] % 16];
	o->r.sha256[64] = '\0';
	o->r.message_id = o->r.from = o->r.subject = "";
	o->r.orig_message_id = o->r.orig_to = o->r.orig_from = "";
	o->r.envelope_to = (char *)envelope_to;
	o->r.shape = "rfc3464";
	o->b.recipient = (char *)rcpt;
	o->b.diagnostic = o->b.remote_mta = o->b.action = o->b.feedback_type = "";
	o->b.reason = reason;
	o->b.cls = cls;
	o->r.recipients = &o->b;
	o->r.n_recipients = 1;
}

static void
test_bouncelog_status_from_reply(void **state)
{
	char s[16];

	(void)state;
	bouncelog_status_from_reply("550 5.1.1 <a@b.example>: Recipient address rejected", 550, s);
	assert_string_equal(s, "5.1.1");
	bouncelog_status_from_reply("552-5.2.2 The email account is over quota", 552, s);
	assert_string_equal(s, "5.2.2");
	bouncelog_status_from_reply("421 4.7.0 Try again later, closing connection.", 421, s);
	assert_string_equal(s, "4.7.0");
	bouncelog_status_from_reply("550 Requested action not taken: mailbox unavailable", 550, s);
	assert_string_equal(s, "");
	bouncelog_status_from_reply("550 5.1.10 RESOLVER.ADR.RecipientNotFound", 550, s);
	assert_string_equal(s, "5.1.10");
	bouncelog_status_from_reply("550 5.7.1234 x", 550, s);   /* detail is 1-3 digits */
	assert_string_equal(s, "");
	bouncelog_status_from_reply("550 6.1.1 nope", 550, s);    /* class is 2, 4 or 5 */
	assert_string_equal(s, "");
	bouncelog_status_from_reply(NULL, 0, s);
	assert_string_equal(s, "");
}

static void
test_bouncelog_hard_once_and_duplicate(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = BOUNCELOG_POLICY_DEFAULT;
	struct bouncelog_outcome out;
	struct herr err;
	struct one o;
	char st[16];

	one_report(&o, "hard", "Alice@Example.org", BOUNCE_HARD, "userunknown", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.duplicate, 0);
	assert_int_equal(out.hard, 1);
	assert_int_equal(out.marked, 1);
	status_of(f, f->alice, st);
	assert_string_equal(st, "bounced");
	/* the same digest again: nothing at all changes */
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.duplicate, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM bounces"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM inbound"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM events WHERE kind = 'bounce'"), 1);
}

static void
test_bouncelog_verp_token_and_forgery(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = BOUNCELOG_POLICY_DEFAULT;
	struct bouncelog_outcome out;
	struct token t = { TOKEN_BOUNCE, 0, 0, 0 };
	char tok[TOKEN_MAX], env[160], forged[160], st[16];
	struct herr err;
	struct one o;

	t.subscriber_id = (unsigned long long)f->bob;
	t.list_id = (unsigned long long)f->list_id;
	assert_int_equal(token_make(&f->key, &t, tok), 0);
	snprintf(env, sizeof env, "bounces+%s@bounce.example", tok);
	snprintf(forged, sizeof forged, "bounces+%s@bounce.example", tok);
	forged[strlen("bounces+") + 3] ^= 1; /* one character of the token changed */

	/* the DSN names a forwarding address nobody knows: the token says bob */
	one_report(&o, "verp-forged", "forwarded@elsewhere.example", BOUNCE_HARD, "userunknown",
	           forged);
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.unmatched, 1);
	status_of(f, f->bob, st);
	assert_string_equal(st, "active");

	one_report(&o, "verp-good", "forwarded@elsewhere.example", BOUNCE_HARD, "userunknown", env);
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.unmatched, 0);
	status_of(f, f->bob, st);
	assert_string_equal(st, "bounced");
}

static void
test_bouncelog_soft_window(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = { 2, 86400 };
	struct bouncelog_outcome out;
	struct herr err;
	struct one o;
	char st[16];

	db_set_now(1000000);
	one_report(&o, "soft-1", "bob@example.org", BOUNCE_SOFT, "mailboxfull", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	db_set_now(1000000 + 2 * 86400); /* the first is out of the window now */
	one_report(&o, "soft-2", "bob@example.org", BOUNCE_SOFT, "mailboxfull", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	status_of(f, f->bob, st);
	assert_string_equal(st, "active");
	db_set_now(1000000 + 2 * 86400 + 60);
	one_report(&o, "soft-3", "bob@example.org", BOUNCE_SOFT, "mailboxfull", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.marked, 1);
	status_of(f, f->bob, st);
	assert_string_equal(st, "bounced");
	db_set_now(0);
}

static void
test_bouncelog_complaint_everywhere(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = BOUNCELOG_POLICY_DEFAULT;
	struct bouncelog_outcome out;
	struct herr err;
	struct one o;
	char st[16];

	one_report(&o, "arf", "alice@example.org", BOUNCE_COMPLAINT, "feedback", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_string_equal(out.kind, "complaint");
	assert_int_equal(out.unsubscribed, 2);
	status_of(f, f->alice, st);
	assert_string_equal(st, "complained");
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE status = "
	                          "'unsubscribed'"), 2);
	assert_int_equal(suppress_check(f->db, "alice@example.org", NULL, &err), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM bounces WHERE source = 'arf' AND "
	                          "class = 'complaint'"), 1);
}

static void
test_bouncelog_blocklisted_stays(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = BOUNCELOG_POLICY_DEFAULT;
	struct bouncelog_outcome out;
	struct herr err;
	struct one o;
	char st[16];

	assert_int_equal(subscriber_block(f->db, f->bob, &err), 0);
	one_report(&o, "blocked-hard", "bob@example.org", BOUNCE_HARD, "userunknown", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.marked, 0);
	status_of(f, f->bob, st);
	assert_string_equal(st, "blocklisted");
}

static void
test_bouncelog_ignored_kinds(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = BOUNCELOG_POLICY_DEFAULT;
	struct bouncelog_outcome out;
	struct herr err;
	struct one o;

	one_report(&o, "delayed", "alice@example.org", BOUNCE_DELAYED, "expired", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_string_equal(out.kind, "delayed");
	one_report(&o, "vacation", "alice@example.org", BOUNCE_AUTOREPLY, "vacation", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_string_equal(out.kind, "autoreply");
	assert_int_equal(out.ignored, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM bounces"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM inbound"), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bouncelog_status_from_reply),
		cmocka_unit_test_setup_teardown(test_bouncelog_hard_once_and_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bouncelog_verp_token_and_forgery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bouncelog_soft_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bouncelog_complaint_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bouncelog_blocklisted_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bouncelog_ignored_kinds, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
