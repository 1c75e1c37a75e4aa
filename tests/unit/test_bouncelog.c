/*
 * test_bouncelog.c - recording returned mail (src/bouncelog.c): the RFC 3463
 * code in an SMTP reply, the digest that makes a second reading a no-op,
 * finding the subscriber by VERP token (and not by a forged one), and the
 * policy: hard marks, soft counts within the window, a complaint
 * unsubscribes everywhere and suppresses, a blocklisted person stays so;
 * a delay notice is recorded (class 'delayed', with the classifier's why)
 * but never counts toward the soft limit, while an expiry does; the
 * unmatched failures are listed newest first with the best guess of whom.
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

	one_report(&o, "vacation", "alice@example.org", BOUNCE_AUTOREPLY, "vacation", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_string_equal(out.kind, "autoreply");
	assert_int_equal(out.ignored, 1);
	one_report(&o, "success", "alice@example.org", BOUNCE_DELIVERED, "delivered", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_string_equal(out.kind, "delivered");
	assert_int_equal(out.ignored, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM bounces"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM inbound"), 2);
}

/* Collects what bouncelog_each() gives, for the checks below. */
struct seen {
	int  n;
	char cls[4][16];
	char why[4][BOUNCE_WHY_SIZE];
};

static int
collect(void *ctx, const struct bouncelog_entry *e)
{
	struct seen *s = ctx;

	if (s->n < 4) {
		snprintf(s->cls[s->n], sizeof s->cls[0], "%s", e->cls);
		snprintf(s->why[s->n], sizeof s->why[0], "%s", e->why);
	}
	s->n++;
	return 0;
}

/* Delays are recorded with their why, never count as soft, never mark;
 * expiries (soft, reason expired) count as before. */
static void
test_bouncelog_delayed_never_counts(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = { 2, 86400 };
	struct bouncelog_outcome out;
	struct seen seen;
	struct herr err;
	struct one o;
	char st[16], seed[16];
	int i;

	for (i = 0; i < 3; i++) {
		snprintf(seed, sizeof seed, "delay-%d", i);
		one_report(&o, seed, "bob@example.org", BOUNCE_DELAYED, "expired", "");
		snprintf(o.b.why, sizeof o.b.why, "Action: delayed -> delayed (test %d)", i);
		assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
		assert_string_equal(out.kind, "delayed");
		assert_int_equal(out.delayed, 1);
		assert_int_equal(out.soft, 0);
		assert_int_equal(out.marked, 0);
		assert_int_equal(out.unmatched, 0);
	}
	status_of(f, f->bob, st);
	assert_string_equal(st, "active");
	assert_int_equal(count(f, "SELECT count(*) FROM bounces WHERE class = 'delayed' AND "
	                          "subscriber_id IS NOT NULL"), 3);
	/* no event: the stats count bounce events */
	assert_int_equal(count(f, "SELECT count(*) FROM events WHERE kind = 'bounce'"), 0);
	memset(&seen, 0, sizeof seen);
	assert_int_equal(bouncelog_each(f->db, f->bob, 0, 10, collect, &seen, &err), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.cls[0], "delayed");
	assert_string_equal(seen.why[0], "Action: delayed -> delayed (test 2)");

	/* the remote side gives up: an expiry is soft and counts */
	one_report(&o, "expired-1", "bob@example.org", BOUNCE_SOFT, "expired", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	status_of(f, f->bob, st);
	assert_string_equal(st, "active");
	one_report(&o, "expired-2", "bob@example.org", BOUNCE_SOFT, "expired", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	assert_int_equal(out.marked, 1);
	status_of(f, f->bob, st);
	assert_string_equal(st, "bounced");
}

/* What bouncelog_each_unmatched() gave, in order. */
struct unmatched_seen {
	int  n;
	char guess[8][64];
	char from[8][16];
	char why[8][64];
	char source[8][32];
};

static int
collect_unmatched(void *ctx, const struct bouncelog_unmatched *u)
{
	struct unmatched_seen *s = ctx;

	if (s->n < 8) {
		snprintf(s->guess[s->n], sizeof s->guess[0], "%s", u->guess);
		snprintf(s->from[s->n], sizeof s->from[0], "%s", u->guess_from);
		snprintf(s->why[s->n], sizeof s->why[0], "%s", u->why);
		snprintf(s->source[s->n], sizeof s->source[0], "%s", u->inbound_source);
	}
	s->n++;
	return 0;
}

static void
test_bouncelog_each_unmatched(void **state)
{
	struct fixture *f = *state;
	struct bouncelog_policy pol = BOUNCELOG_POLICY_DEFAULT;
	struct bouncelog_outcome out;
	struct unmatched_seen seen;
	struct herr err;
	struct one o;

	db_set_now(2000000);
	/* names an unknown address: that is the guess */
	one_report(&o, "um-1", "stranger@example.com", BOUNCE_HARD, "userunknown", "");
	snprintf(o.b.why, sizeof o.b.why, "status 5.1.1 -> userunknown");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "maildir:one", &out, &err), 0);
	assert_int_equal(out.unmatched, 1);
	db_set_now(2000010);
	/* names nobody; the returned original's To is nobody herald knows */
	one_report(&o, "um-2", "", BOUNCE_SOFT, "mailboxfull", "bounces+junk@bounce.example");
	o.r.orig_to = "gone@example.net";
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "maildir:two", &out, &err), 0);
	db_set_now(2000020);
	/* names nobody, no original: only the address it came back to */
	one_report(&o, "um-3", "", BOUNCE_HARD, "hostunknown", "bounces+junk2@bounce.example");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "maildir:three", &out,
	                                  &err), 0);
	db_set_now(2000030);
	/* not listed: a delay for a stranger, and a failure that was matched */
	one_report(&o, "um-4", "stranger@example.com", BOUNCE_DELAYED, "expired", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	one_report(&o, "um-5", "alice@example.org", BOUNCE_SOFT, "mailboxfull", "");
	assert_int_equal(bouncelog_ingest(f->db, &f->key, &pol, &o.r, "test", &out, &err), 0);
	db_set_now(0);

	memset(&seen, 0, sizeof seen);
	assert_int_equal(bouncelog_each_unmatched(f->db, 10, collect_unmatched, &seen, &err), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.guess[0], "bounces+junk2@bounce.example");
	assert_string_equal(seen.from[0], "envelope-to");
	assert_string_equal(seen.source[0], "maildir:three");
	assert_string_equal(seen.guess[1], "gone@example.net");
	assert_string_equal(seen.from[1], "original-to");
	assert_string_equal(seen.guess[2], "stranger@example.com");
	assert_string_equal(seen.from[2], "recipient");
	assert_string_equal(seen.why[2], "status 5.1.1 -> userunknown");
	/* the limit takes the newest */
	memset(&seen, 0, sizeof seen);
	assert_int_equal(bouncelog_each_unmatched(f->db, 1, collect_unmatched, &seen, &err), 0);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.source[0], "maildir:three");
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
		cmocka_unit_test_setup_teardown(test_bouncelog_delayed_never_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bouncelog_each_unmatched, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
