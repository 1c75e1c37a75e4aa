/*
 * test_consent.c - consent records (src/consent.c) and every core path
 * that writes them (src/subscriber.c), on a fresh migrated database per
 * test.
 *
 * Covers consent.h:
 *   (1)/(2) each edge writes one record of the right kind and source:
 *       subscriber_signup() by an admin ("cli"), an import (its own
 *       source), the web form ("web form", with client and text); an
 *       admin's or an import's confirmation of an unconfirmed one
 *       ('confirm'); confirmation_use_consent() ("confirmation link");
 *       subscription_confirm*() of someone who had left ('subscribe');
 *       subscription_unsubscribe*() with the event words mapped
 *       (one-click -> "one-click header", web -> "page", mailto, cli ->
 *       "admin"), idempotent; subscription_unsubscribe_all() ("complaint",
 *       one per list); subscriber_reactivate() ('reactivate', no list,
 *       "admin", nothing when already active); nothing when nothing
 *       changed (a form sign-up of an existing subscription, rule 8) or a
 *       rule refused it (nothing written, the record neither);
 *   (3) a dated consent keeps its time, recorded_at is now;
 *   (5) consent_ip_store(): yes / truncated (/24, /48, IPv4-mapped IPv6
 *       as IPv4) / no; consent_record() applies [privacy] store_ip itself
 *       and keeps the User-Agent, cut to CONSENT_UA_MAX at a character,
 *       bytes that are not UTF-8 and controls made '?';
 *   (6) consent_set_reason(): the latest unsubscribe's, once; EX_NOINPUT
 *       without an unsubscribe, EX_DATAERR for control characters;
 * and consent_reader_latest() (export) and consent_each() order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/address.h"
#include "herald/consent.h"
#include "herald/db.h"
#include "herald/list.h"
#include "herald/subscriber.h"

struct fixture {
	char        path[TEMPDB_PATH_MAX];
	sqlite3    *db;
	struct list news;    /* single opt-in */
	struct list digest;  /* double opt-in */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;
	long long id;

	if (!f || tempdb_open(f->path, "consent", &f->db) < 0)
		return -1;
	if (list_create(f->db, "news", "The News", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0 ||
	    list_create(f->db, "digest", "The Digest", 1, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->digest, &err) < 0)
		return -1;
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

/* A sign-up that must not fail; returns its result. */
static struct signup_result
signup(struct fixture *f, const struct list *l, const char *addr, const char *name,
       enum signup_source source, int unconfirmed, const struct consent_ctx *c)
{
	struct signup_result res;
	struct signup_req r;
	struct address a;
	struct herr err;

	herr_clear(&err);
	if (address_parse(addr, &a, &err) < 0)
		fail_msg("address %s: %s", addr, err.msg);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = name;
	r.unconfirmed = unconfirmed;
	r.source = source;
	r.consent = c;
	if (subscriber_signup(f->db, l, &r, &res, &err) < 0)
		fail_msg("sign-up of %s: %s", addr, err.msg);
	return res;
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

/* The newest record of a subscriber (by id), read back through SQL so the
 * test does not trust consent_each(). */
struct row {
	char      kind[16], source[256], detail[256], ip[64], ua[1024], reason[256];
	long long list_id, at, recorded_at;
	int       ip_null, ua_null, reason_null;
};

static int
last_row(struct fixture *f, long long sub, struct row *r)
{
	sqlite3_stmt *st;
	int rc;

	memset(r, 0, sizeof *r);
	if (sqlite3_prepare_v2(f->db, "SELECT kind, source, detail, ip, user_agent, reason, "
	                       "ifnull(list_id, 0), at, recorded_at FROM consent_log "
	                       "WHERE subscriber_id = ?1 ORDER BY id DESC LIMIT 1", -1, &st,
	                       NULL) != SQLITE_OK)
		fail_msg("%s", sqlite3_errmsg(f->db));
	sqlite3_bind_int64(st, 1, sub);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(r->kind, sizeof r->kind, "%s", sqlite3_column_text(st, 0));
		snprintf(r->source, sizeof r->source, "%s", sqlite3_column_text(st, 1));
		snprintf(r->detail, sizeof r->detail, "%s", sqlite3_column_text(st, 2));
		r->ip_null = sqlite3_column_type(st, 3) == SQLITE_NULL;
		r->ua_null = sqlite3_column_type(st, 4) == SQLITE_NULL;
		r->reason_null = sqlite3_column_type(st, 5) == SQLITE_NULL;
		if (!r->ip_null)
			snprintf(r->ip, sizeof r->ip, "%s", sqlite3_column_text(st, 3));
		if (!r->ua_null)
			snprintf(r->ua, sizeof r->ua, "%s", sqlite3_column_text(st, 4));
		if (!r->reason_null)
			snprintf(r->reason, sizeof r->reason, "%s", sqlite3_column_text(st, 5));
		r->list_id = sqlite3_column_int64(st, 6);
		r->at = sqlite3_column_int64(st, 7);
		r->recorded_at = sqlite3_column_int64(st, 8);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW;
}

static long long
n_records(struct fixture *f)
{
	return count(f, "SELECT count(*) FROM consent_log");
}

/* ---- consent_ip_store ----------------------------------------------------- */

static void
test_consent_ip_store_modes(void **state)
{
	char out[CONSENT_IP_MAX];

	(void)state;
	assert_int_equal(consent_ip_store("192.0.2.77", CONFIG_STORE_IP_YES, out, sizeof out), 1);
	assert_string_equal(out, "192.0.2.77");
	assert_int_equal(consent_ip_store("192.0.2.77", CONFIG_STORE_IP_TRUNCATED, out,
	                                  sizeof out), 1);
	assert_string_equal(out, "192.0.2.0/24");
	assert_int_equal(consent_ip_store("2001:db8:1:2:3:4:5:6", CONFIG_STORE_IP_YES, out,
	                                  sizeof out), 1);
	assert_string_equal(out, "2001:db8:1:2:3:4:5:6");
	assert_int_equal(consent_ip_store("2001:db8:1:2:3:4:5:6", CONFIG_STORE_IP_TRUNCATED, out,
	                                  sizeof out), 1);
	assert_string_equal(out, "2001:db8:1::/48");
	/* an IPv4 client through a dual-stack socket is an IPv4 client */
	assert_int_equal(consent_ip_store("::ffff:198.51.100.9", CONFIG_STORE_IP_YES, out,
	                                  sizeof out), 1);
	assert_string_equal(out, "198.51.100.9");
	assert_int_equal(consent_ip_store("::ffff:198.51.100.9", CONFIG_STORE_IP_TRUNCATED, out,
	                                  sizeof out), 1);
	assert_string_equal(out, "198.51.100.0/24");
	assert_int_equal(consent_ip_store("192.0.2.77", CONFIG_STORE_IP_NO, out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(consent_ip_store(NULL, CONFIG_STORE_IP_YES, out, sizeof out), 0);
	assert_int_equal(consent_ip_store("", CONFIG_STORE_IP_YES, out, sizeof out), 0);
	/* what cannot be cut is not kept when it must be cut */
	assert_int_equal(consent_ip_store("not-an-ip", CONFIG_STORE_IP_TRUNCATED, out,
	                                  sizeof out), 0);
	assert_string_equal(out, "");
}

static void
test_consent_unsubscribe_how_words(void **state)
{
	(void)state;
	assert_string_equal(consent_unsubscribe_how("one-click"), "one-click header");
	assert_string_equal(consent_unsubscribe_how("web"), "page");
	assert_string_equal(consent_unsubscribe_how("cli"), "admin");
	assert_string_equal(consent_unsubscribe_how("mailto"), "mailto");
	assert_string_equal(consent_unsubscribe_how("complaint"), "complaint");
}

/* ---- sign-ups ------------------------------------------------------------- */

static void
test_signup_admin_records_cli(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct row r;

	db_set_now(1700000000);
	res = signup(f, &f->news, "ada@example.org", "Ada", SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "subscribe");
	assert_string_equal(r.source, "cli");
	assert_int_equal(r.list_id, f->news.id);
	assert_int_equal(r.at, 1700000000);
	assert_int_equal(r.recorded_at, 1700000000);
	assert_true(r.ip_null && r.ua_null && r.reason_null);
	/* the same again changes nothing, records nothing */
	res = signup(f, &f->news, "ada@example.org", "Ada", SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(n_records(f), 1);
}

static void
test_signup_admin_confirms_unconfirmed(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct row r;

	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 1, NULL);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "subscribe");
	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(res.res, SUBSCRIBE_UPDATED);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "confirm");
	assert_string_equal(r.source, "cli");
	assert_int_equal(n_records(f), 2);
}

static void
test_signup_import_dated_consent(void **state)
{
	struct fixture *f = *state;
	struct consent_ctx c = { 0 };
	struct signup_result res;
	struct row r;

	db_set_now(1700000000);
	c.source = "mailchimp form";
	c.text = "imported from old.csv";
	c.at = 1600000000;
	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_IMPORT, 0, &c);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "subscribe");
	assert_string_equal(r.source, "mailchimp form");
	assert_string_equal(r.detail, "imported from old.csv");
	assert_int_equal(r.at, 1600000000);
	assert_int_equal(r.recorded_at, 1700000000);
	/* without a consent of its own: "import" now */
	res = signup(f, &f->news, "bob@example.org", NULL, SIGNUP_IMPORT, 0, NULL);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.source, "import");
	assert_int_equal(r.at, 1700000000);
}

static void
test_signup_web_records_client_then_confirmation(void **state)
{
	struct fixture *f = *state;
	struct consent_ctx c = { 0 };
	struct signup_result res;
	enum confirm_state cs;
	struct herr err;
	struct row r;

	c.source = "web form";
	c.text = "The Digest";
	c.ip = "192.0.2.77";
	c.user_agent = "Mozilla/5.0 (X11) Firefox/130.0";
	c.store_ip = CONFIG_STORE_IP_YES;
	res = signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_WEB, 0, &c);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_true(res.confirm_mail);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "subscribe");
	assert_string_equal(r.source, "web form");
	assert_string_equal(r.detail, "The Digest");
	assert_string_equal(r.ip, "192.0.2.77");
	assert_string_equal(r.ua, "Mozilla/5.0 (X11) Firefox/130.0");

	/* the link, followed from elsewhere, with the address cut */
	c.source = NULL;
	c.ip = "2001:db8:aa:bb::1";
	c.user_agent = "Phone Browser";
	c.store_ip = CONFIG_STORE_IP_TRUNCATED;
	herr_clear(&err);
	assert_int_equal(confirmation_use_consent(f->db, res.confirm_id, res.subscriber_id,
	                                          f->digest.id, 3600, &c, &cs, &err), 0);
	assert_int_equal(cs, CONFIRM_OPEN);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "confirm");
	assert_string_equal(r.source, "confirmation link");
	assert_string_equal(r.ip, "2001:db8:aa::/48");
	assert_string_equal(r.ua, "Phone Browser");
	assert_int_equal(n_records(f), 2);

	/* rule (8): the form again changes nothing and records nothing */
	c.source = "web form";
	res = signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_WEB, 0, &c);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(n_records(f), 2);
}

static void
test_signup_web_store_ip_no_keeps_agent_only(void **state)
{
	struct fixture *f = *state;
	struct consent_ctx c = { 0 };
	struct signup_result res;
	struct row r;

	c.ip = "192.0.2.77";
	c.user_agent = "Mozilla/5.0";
	c.store_ip = CONFIG_STORE_IP_NO;
	/* no source given: the web's default word */
	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_WEB, 0, &c);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.source, "web form");
	assert_true(r.ip_null);
	assert_string_equal(r.ua, "Mozilla/5.0");
	assert_int_equal(count(f, "SELECT count(*) FROM consent_log WHERE ip IS NOT NULL"), 0);
}

static void
test_refused_signup_records_nothing(void **state)
{
	struct fixture *f = *state;
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;

	/* rule (3): a name with a line break; nothing written */
	assert_int_equal(address_parse("ada@example.org", &a, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = "Ada\r\nBcc: x@example.net";
	r.source = SIGNUP_ADMIN;
	assert_int_equal(subscriber_signup(f->db, &f->news, &r, &res, &err), -1);
	assert_int_equal(n_records(f), 0);
	/* rule (2): an import does not bring back who left */
	res = signup(f, &f->news, "bob@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, res.subscriber_id, "web",
	                                          &err), 0);
	assert_int_equal(n_records(f), 2);
	res = signup(f, &f->news, "bob@example.org", NULL, SIGNUP_IMPORT, 0, NULL);
	assert_int_equal(res.res, SUBSCRIBE_SKIPPED_UNSUBSCRIBED);
	assert_int_equal(n_records(f), 2);
}

static void
test_text_is_cut_and_cleaned(void **state)
{
	struct fixture *f = *state;
	struct consent_ctx c = { 0 };
	struct signup_result res;
	char ua[CONSENT_UA_MAX + 100];
	struct row r;
	size_t i;

	/* "é" (2 bytes) repeated: the cut must fall between characters */
	for (i = 0; i + 2 < sizeof ua; i += 2)
		memcpy(ua + i, "\xc3\xa9", 2);
	ua[i] = '\0';
	c.user_agent = ua;
	c.text = "bad \xff byte and \x01 control";
	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_WEB, 0, &c);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_int_equal(strlen(r.ua), CONSENT_UA_MAX);    /* an even cap: whole characters */
	assert_memory_equal(r.ua + CONSENT_UA_MAX - 2, "\xc3\xa9", 2);
	assert_string_equal(r.detail, "bad ? byte and ? control");
}

/* ---- confirm, unsubscribe, complaint, reactivate ------------------------------ */

static void
test_unsubscribe_records_how_once(void **state)
{
	static const struct {
		const char *event, *how;
	} ways[] = {
		{ "one-click", "one-click header" },
		{ "web", "page" },
		{ "mailto", "mailto" },
		{ "cli", "admin" },
	};
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	struct row r;
	char addr[64];
	size_t i;

	for (i = 0; i < sizeof ways / sizeof ways[0]; i++) {
		snprintf(addr, sizeof addr, "reader%zu@example.org", i);
		res = signup(f, &f->news, addr, NULL, SIGNUP_ADMIN, 0, NULL);
		assert_int_equal(subscription_unsubscribe(f->db, f->news.id, res.subscriber_id,
		                                          ways[i].event, &err), 0);
		assert_true(last_row(f, res.subscriber_id, &r));
		assert_string_equal(r.kind, "unsubscribe");
		assert_string_equal(r.source, ways[i].how);
		assert_int_equal(r.list_id, f->news.id);
		/* RFC 8058 §3.2: idempotent, and recorded once */
		assert_int_equal(subscription_unsubscribe(f->db, f->news.id, res.subscriber_id,
		                                          ways[i].event, &err), 0);
		assert_int_equal(count(f, "SELECT count(*) FROM consent_log "
		                          "WHERE kind = 'unsubscribe'"), (long long)i + 1);
	}
}

static void
test_confirm_after_leaving_is_a_new_consent(void **state)
{
	struct fixture *f = *state;
	struct consent_ctx c = { 0 };
	struct signup_result res;
	struct herr err;
	struct row r;

	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, res.subscriber_id, "web",
	                                          &err), 0);
	c.source = "unsubscribe page";
	c.ip = "192.0.2.5";
	assert_int_equal(subscription_confirm_consent(f->db, f->news.id, res.subscriber_id, "web",
	                                              &c, &err), 0);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "subscribe");
	assert_string_equal(r.source, "unsubscribe page");
	assert_string_equal(r.ip, "192.0.2.5");
	/* confirming what is confirmed records nothing */
	assert_int_equal(subscription_confirm(f->db, f->news.id, res.subscriber_id, "web", &err), 0);
	assert_int_equal(n_records(f), 3);
}

static void
test_unsubscribe_all_records_complaint_per_list(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	long long n;

	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(db_begin(f->db, &err), 0);
	assert_int_equal(subscription_unsubscribe_all(f->db, res.subscriber_id, "complaint", &n,
	                                              &err), 0);
	assert_int_equal(db_commit(f->db, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(count(f, "SELECT count(*) FROM consent_log WHERE kind = 'unsubscribe' "
	                          "AND source = 'complaint'"), 2);
	assert_int_equal(count(f, "SELECT count(DISTINCT list_id) FROM consent_log "
	                          "WHERE kind = 'unsubscribe'"), 2);
}

static void
test_reactivate_records_admin(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	struct row r;
	char was[16];

	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	/* already active: nothing to take back, nothing recorded */
	assert_int_equal(subscriber_reactivate(f->db, res.subscriber_id, was, &err), 0);
	assert_int_equal(n_records(f), 1);
	assert_int_equal(subscriber_block(f->db, res.subscriber_id, &err), 0);
	assert_int_equal(subscriber_reactivate(f->db, res.subscriber_id, was, &err), 0);
	assert_string_equal(was, "blocklisted");
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "reactivate");
	assert_string_equal(r.source, "admin");
	assert_int_equal(r.list_id, 0);
	assert_int_equal(n_records(f), 2);
}

/* ---- reasons, reading back -------------------------------------------------- */

static void
test_consent_set_reason_once(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	struct row r;

	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	herr_clear(&err);
	assert_int_equal(consent_set_reason(f->db, res.subscriber_id, f->news.id, "too many",
	                                    &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, res.subscriber_id, "web",
	                                          &err), 0);
	herr_clear(&err);
	assert_int_equal(consent_set_reason(f->db, res.subscriber_id, f->news.id, "bad\nline",
	                                    &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(consent_set_reason(f->db, res.subscriber_id, f->news.id,
	                                    "too many mails", &err), 0);
	assert_int_equal(consent_set_reason(f->db, res.subscriber_id, f->news.id, "other",
	                                    &err), 0);
	assert_true(last_row(f, res.subscriber_id, &r));
	assert_string_equal(r.kind, "unsubscribe");
	assert_string_equal(r.reason, "too many mails");   /* the first answer stands */
}

struct seen {
	char kinds[256];
	int  n;
};

static int
collect(void *ctx, const struct consent_entry *e)
{
	struct seen *s = ctx;
	size_t len = strlen(s->kinds);

	snprintf(s->kinds + len, sizeof s->kinds - len, "%s%s:%s:%s", s->n++ ? " " : "", e->kind,
	         e->list_id ? e->list_name : "-", e->source);
	return 0;
}

static void
test_consent_each_and_latest(void **state)
{
	struct fixture *f = *state;
	struct consent_ctx old = { 0 };
	struct consent_reader *rd;
	struct signup_result res;
	struct seen seen;
	struct herr err;
	char source[CONSENT_SOURCE_MAX];
	long long at;
	char was[16];

	db_set_now(1700000000);
	old.source = "paper form";
	old.at = 1500000000;
	res = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_IMPORT, 0, &old);
	db_set_now(1700000100);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, res.subscriber_id, "mailto",
	                                          &err), 0);
	db_set_now(1700000200);
	signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, NULL);
	assert_int_equal(subscriber_block(f->db, res.subscriber_id, &err), 0);
	db_set_now(1700000300);
	assert_int_equal(subscriber_reactivate(f->db, res.subscriber_id, was, &err), 0);
	memset(&seen, 0, sizeof seen);
	assert_int_equal(consent_each(f->db, res.subscriber_id, collect, &seen, &err), 0);
	assert_string_equal(seen.kinds, "subscribe:news:paper form unsubscribe:news:mailto "
	                    "subscribe:news:cli reactivate:-:admin");
	/* export's view: the latest sign-up */
	assert_int_equal(consent_reader_open(f->db, &rd, &err), 0);
	assert_int_equal(consent_reader_latest(rd, f->news.id, res.subscriber_id, &at, source,
	                                       sizeof source, &err), 0);
	assert_int_equal(at, 1700000200);
	assert_string_equal(source, "cli");
	assert_int_equal(consent_reader_latest(rd, f->digest.id, res.subscriber_id, &at, source,
	                                       sizeof source, &err), 0);
	assert_int_equal(at, 0);
	assert_string_equal(source, "");
	consent_reader_close(rd);
	/* removing the subscriber removes their records (and so their IPs) */
	assert_int_equal(subscriber_remove(f->db, res.subscriber_id, &err), 0);
	assert_int_equal(n_records(f), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consent_ip_store_modes),
		cmocka_unit_test(test_consent_unsubscribe_how_words),
		T(test_signup_admin_records_cli),
		T(test_signup_admin_confirms_unconfirmed),
		T(test_signup_import_dated_consent),
		T(test_signup_web_records_client_then_confirmation),
		T(test_signup_web_store_ip_no_keeps_agent_only),
		T(test_refused_signup_records_nothing),
		T(test_text_is_cut_and_cleaned),
		T(test_unsubscribe_records_how_once),
		T(test_confirm_after_leaving_is_a_new_consent),
		T(test_unsubscribe_all_records_complaint_per_list),
		T(test_reactivate_records_admin),
		T(test_consent_set_reason_once),
		T(test_consent_each_and_latest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
