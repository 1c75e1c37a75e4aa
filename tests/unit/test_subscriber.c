/*
 * test_subscriber.c - subscribers and subscriptions (src/subscriber.c), on a
 * fresh migrated database per test.
 *
 * Covers the numbered rules of subscriber.h, each through the public API:
 *   (1) a blocklisted, bounced or complained address is never subscribed
 *       (every signup_source; subscription_confirm() refuses it too);
 *   (2) an import never resubscribes someone who unsubscribed; an admin
 *       does;
 *   (3) names, attribute keys and values with CR, LF, C0, DEL or C1
 *       controls are refused with EX_DATAERR and nothing is written
 *       (subscriber_signup() and, in the caller's transaction,
 *       subscriber_signup_in());
 *   (4) the spelling first given is kept (Grace@Example.net, then
 *       grace@example.net);
 *   (5) a suppressed address or domain is never subscribed, not even by an
 *       admin, and not even created;
 *   (6) a sign-up on the form never renames a known subscriber;
 *   (7) subscriber_reactivate() brings back a blocked, bounced or
 *       complained address, never while it is suppressed (the message
 *       names the pattern);
 *   (8) the form only creates subscriptions: an unsubscribed or unconfirmed
 *       one stays so (confirm_mail asks the reader) until
 *       subscription_confirm();
 * and the edges of the subscription state diagram: (none) -> unconfirmed
 * (form on a double opt-in list: confirm_mail, no event), (none) ->
 * confirmed (form on a single opt-in list, with a 'subscribe' event whose
 * source is web; admin and import, without events), unconfirmed ->
 * confirmed (subscription_confirm(): a 'confirm' event; an admin's or an
 * import's sign-up), confirmed never downgraded to unconfirmed, confirmed
 * -> unsubscribed (subscription_unsubscribe*(): idempotent, one event,
 * EX_NOINPUT when not on the list; subscription_unsubscribe_all(): no
 * events), unsubscribed -> confirmed (subscription_confirm(): a
 * 'subscribe' event; an admin's sign-up); plus attribute merging (empty
 * values not stored), subscriber_mark() (a complaint outranks a bounce, an
 * admin's block outranks both) and subscriber_each_member().
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
#include "herald/db.h"
#include "herald/list.h"
#include "herald/subscriber.h"
#include "herald/suppress.h"

struct fixture {
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	struct list news;   /* single opt-in */
	struct list digest; /* double opt-in */
	struct list extra;  /* single opt-in, a third list */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;
	long long id;

	if (!f || tempdb_open(f->path, "subscriber", &f->db) < 0)
		return -1;
	if (list_create(f->db, "news", "The News", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0 ||
	    list_create(f->db, "digest", "The Digest", 1, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->digest, &err) < 0 ||
	    list_create(f->db, "extra", "", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->extra, &err) < 0)
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

/* One sign-up; returns subscriber_signup()'s result, fills *res and *err. */
static int
signup_full(struct fixture *f, const struct list *l, const char *addr, const char *name,
            const struct tmpl_attr *attrs, size_t n_attrs, enum signup_source source,
            int unconfirmed, struct signup_result *res, struct herr *err)
{
	struct signup_req r;
	struct address a;

	herr_clear(err);
	if (address_parse(addr, &a, err) < 0)
		fail_msg("address %s: %s", addr, err->msg);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = name;
	r.attrs = attrs;
	r.n_attrs = n_attrs;
	r.unconfirmed = unconfirmed;
	r.source = source;
	memset(res, 0xa5, sizeof *res); /* the call must fill every field */
	return subscriber_signup(f->db, l, &r, res, err);
}

/* A sign-up that must succeed; returns the subscriber id (0 when skipped). */
static long long
signup(struct fixture *f, const struct list *l, const char *addr, const char *name,
       enum signup_source source, int unconfirmed, enum subscribe_result want)
{
	struct signup_result res;
	struct herr err;

	if (signup_full(f, l, addr, name, NULL, 0, source, unconfirmed, &res, &err) != 0)
		fail_msg("sign-up of %s: %s", addr, err.msg);
	assert_int_equal(res.res, want);
	return res.subscriber_id;
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

/* How many events of `kind` there are for the subscriber on the list. */
static long long
events(struct fixture *f, const char *kind, long long sub, long long list)
{
	char sql[256];

	snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE kind = '%s' AND "
	         "subscriber_id = %lld AND list_id = %lld", kind, sub, list);
	return count(f, sql);
}

/* The source recorded with the only event of `kind` for the subscriber. */
static void
assert_event_source(struct fixture *f, const char *kind, long long sub, const char *source)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT json_extract(detail, '$.source') "
	                                    "FROM events WHERE kind = ?1 AND subscriber_id = ?2",
	                                    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, sub);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), source);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static const char *
sub_status(struct fixture *f, const struct list *l, long long sub, char buf[16])
{
	struct herr err;

	if (subscription_status(f->db, l->id, sub, buf, &err) < 0) {
		assert_int_equal(err.code, EX_NOINPUT);
		strcpy(buf, "none");
	}
	return buf;
}

static const char *
global_status(struct fixture *f, long long sub, char buf[16])
{
	struct subscriber s;
	struct herr err;

	assert_int_equal(subscriber_get_by_id(f->db, sub, &s, &err), 0);
	snprintf(buf, 16, "%s", s.status);
	subscriber_clear(&s);
	return buf;
}

/* ---- rule (9) ----------------------------------------------------------- */

/* An issue sent through news and extra: a reader reached only through
 * extra unsubscribes with a token naming news (the issue's first list) and
 * ends their extra subscription; one on both ends both, one event each;
 * a second time changes nothing and is no error. */
static void
test_subscription_unsubscribe_issue_ends_every_list_of_the_issue(void **state)
{
	struct fixture *f = *state;
	long long only_extra, both, other;
	struct herr err;
	char buf[16], sql[256];

	only_extra = signup(f, &f->extra, "x@example.org", "", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	both = signup(f, &f->news, "b@example.org", "", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(signup(f, &f->extra, "b@example.org", "", SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_ADDED), both);
	other = signup(f, &f->digest, "d@example.org", "", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	snprintf(sql, sizeof sql, "INSERT INTO issues (id, list_id, subject, from_addr, markdown, "
	         "html, text, created_at) VALUES (7, %lld, 's', 'n@x.org', '', '', '', 0)",
	         f->news.id);
	assert_int_equal(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof sql, "INSERT INTO issue_lists (issue_id, list_id, position) "
	         "VALUES (7, %lld, 1)", f->extra.id);
	assert_int_equal(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);

	assert_int_equal(subscription_unsubscribe_issue(f->db, f->news.id, only_extra, 7,
	                                                "one-click", &err), 0);
	assert_string_equal(sub_status(f, &f->extra, only_extra, buf), "unsubscribed");
	assert_int_equal(events(f, "unsubscribe", only_extra, f->extra.id), 1);
	assert_int_equal(subscription_unsubscribe_issue(f->db, f->news.id, both, 7, "web",
	                                                &err), 0);
	assert_string_equal(sub_status(f, &f->news, both, buf), "unsubscribed");
	assert_string_equal(sub_status(f, &f->extra, both, buf), "unsubscribed");
	assert_int_equal(events(f, "unsubscribe", both, f->news.id), 1);
	assert_int_equal(events(f, "unsubscribe", both, f->extra.id), 1);
	/* idempotent (RFC 8058 §3.2) */
	assert_int_equal(subscription_unsubscribe_issue(f->db, f->news.id, both, 7, "web",
	                                                &err), 0);
	assert_int_equal(events(f, "unsubscribe", both, f->extra.id), 1);
	/* someone on neither list of the issue: EX_NOINPUT, nothing changes */
	assert_int_equal(subscription_unsubscribe_issue(f->db, f->news.id, other, 7, "web",
	                                                &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_string_equal(sub_status(f, &f->digest, other, buf), "confirmed");
	/* without an issue, only the named list */
	other = signup(f, &f->news, "y@example.org", "", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(signup(f, &f->extra, "y@example.org", "", SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_ADDED), other);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, other, "cli", &err), 0);
	assert_string_equal(sub_status(f, &f->news, other, buf), "unsubscribed");
	assert_string_equal(sub_status(f, &f->extra, other, buf), "confirmed");
}

/* ---- rule (1) ----------------------------------------------------------- */

static void
test_subscriber_signup_never_subscribes_blocked_bounced_complained(void **state)
{
	struct fixture *f = *state;
	static const char *const addrs[3] = { "blocked@example.org", "bounced@example.org",
	                                      "complained@example.org" };
	static const enum signup_source sources[3] = { SIGNUP_ADMIN, SIGNUP_IMPORT, SIGNUP_WEB };
	struct signup_result res;
	struct herr err;
	long long id[3];
	int changed, i, s;
	char buf[16];

	for (i = 0; i < 3; i++)
		id[i] = signup(f, &f->news, addrs[i], "X", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_block(f->db, id[0], &err), 0);
	assert_int_equal(subscriber_mark(f->db, id[1], "bounced", &changed, &err), 0);
	assert_int_equal(changed, 1);
	assert_int_equal(subscriber_mark(f->db, id[2], "complained", &changed, &err), 0);
	assert_int_equal(changed, 1);

	for (i = 0; i < 3; i++)
		for (s = 0; s < 3; s++) {
			/* a new list: no subscription is created */
			assert_int_equal(signup_full(f, &f->extra, addrs[i], "New Name", NULL, 0,
			                             sources[s], 0, &res, &err), 0);
			assert_int_equal(res.res, SUBSCRIBE_SKIPPED_BLOCKED);
			assert_int_equal(res.subscriber_id, 0);
			assert_int_equal(res.confirm_mail, 0);
			assert_string_equal(sub_status(f, &f->extra, id[i], buf), "none");
			/* the list they are on (confirmed) is not touched either */
			assert_int_equal(signup_full(f, &f->news, addrs[i], "New Name", NULL, 0,
			                             sources[s], 0, &res, &err), 0);
			assert_int_equal(res.res, SUBSCRIBE_SKIPPED_BLOCKED);
		}
	/* not renamed, no events, the global status kept */
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE name != 'X'"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 0);
	assert_string_equal(global_status(f, id[0], buf), "blocklisted");
	assert_string_equal(global_status(f, id[1], buf), "bounced");
	assert_string_equal(global_status(f, id[2], buf), "complained");
}

static void
test_subscription_confirm_refuses_blocked(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;
	int changed;
	char buf[16];

	id = signup(f, &f->digest, "ada@example.org", "Ada", SIGNUP_WEB, 0, SUBSCRIBE_ADDED);
	assert_string_equal(sub_status(f, &f->digest, id, buf), "unconfirmed");
	assert_int_equal(subscriber_mark(f->db, id, "bounced", &changed, &err), 0);
	herr_clear(&err);
	assert_int_equal(subscription_confirm(f->db, f->digest.id, id, "web", &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(sub_status(f, &f->digest, id, buf), "unconfirmed");
	assert_int_equal(events(f, "confirm", id, f->digest.id), 0);
}

/* ---- rule (2) ----------------------------------------------------------- */

static void
test_subscriber_signup_import_never_resubscribes(void **state)
{
	struct fixture *f = *state;
	struct tmpl_attr attrs[1] = { { "organisation", "Leeds" } };
	struct signup_result res;
	struct subscriber s;
	struct herr err;
	long long id;
	char buf[16];

	id = signup(f, &f->news, "ada@example.org", "Ada", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id, "web", &err), 0);
	/* confirmed or not, with a new name and attributes: skipped whole */
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", "Ada Imported", attrs, 1,
	                             SIGNUP_IMPORT, 0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_SKIPPED_UNSUBSCRIBED);
	assert_int_equal(res.subscriber_id, id);   /* 0 only when refused outright */
	assert_int_equal(res.confirm_mail, 0);
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", NULL, NULL, 0,
	                             SIGNUP_IMPORT, 1, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_SKIPPED_UNSUBSCRIBED);
	assert_string_equal(sub_status(f, &f->news, id, buf), "unsubscribed");
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_string_equal(s.name, "Ada");
	assert_string_equal(s.attributes, "{}");
	subscriber_clear(&s);
	/* an import to another list still adds them there */
	assert_int_equal(signup(f, &f->extra, "ada@example.org", NULL, SIGNUP_IMPORT, 0,
	                        SUBSCRIBE_ADDED), id);
}

static void
test_subscriber_signup_admin_resubscribes(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;
	char buf[16];

	db_set_now(1000);
	id = signup(f, &f->news, "ada@example.org", "Ada", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	db_set_now(2000);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id, "cli", &err), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE "
	                          "unsubscribed_at IS NOT NULL"), 1);
	/* unsubscribed -> confirmed, by an explicit admin sign-up */
	db_set_now(3000);
	assert_int_equal(signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_UPDATED), id);
	assert_string_equal(sub_status(f, &f->news, id, buf), "confirmed");
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE "
	                          "unsubscribed_at IS NULL AND confirmed_at >= 3000"), 1);
	/* an admin's sign-up is no event of the reader's */
	assert_int_equal(events(f, "subscribe", id, f->news.id), 0);
	/* an admin may bring them back unconfirmed too */
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id, "cli", &err), 0);
	assert_int_equal(signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 1,
	                        SUBSCRIBE_UPDATED), id);
	assert_string_equal(sub_status(f, &f->news, id, buf), "unconfirmed");
}

/* Rule (8): the form never resubscribes; it asks the reader to confirm,
 * and only the reader's confirmation (unsubscribed -> confirmed) does. */
static void
test_subscriber_signup_web_never_resubscribes(void **state)
{
	struct fixture *f = *state;
	const struct list *lists[2] = { &f->news, &f->digest };
	struct signup_result res;
	struct herr err;
	long long id;
	char buf[16];
	int i;

	for (i = 0; i < 2; i++) {
		const struct list *l = lists[i];

		id = signup(f, l, i ? "bob@example.org" : "ada@example.org", "Reader",
		            SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
		assert_int_equal(subscription_unsubscribe(f->db, l->id, id, "web", &err), 0);
		assert_int_equal(signup_full(f, l, i ? "bob@example.org" : "ada@example.org",
		                             NULL, NULL, 0, SIGNUP_WEB, 0, &res, &err), 0);
		assert_int_equal(res.res, SUBSCRIBE_SKIPPED_UNSUBSCRIBED);
		assert_int_equal(res.subscriber_id, id);
		assert_int_equal(res.confirm_mail, 1);   /* the form sends that mail */
		assert_string_equal(sub_status(f, l, id, buf), "unsubscribed");
		assert_int_equal(events(f, "subscribe", id, l->id), 0);
		/* the reader follows it: unsubscribed -> confirmed, a 'subscribe' */
		assert_int_equal(subscription_confirm(f->db, l->id, id, "web", &err), 0);
		assert_string_equal(sub_status(f, l, id, buf), "confirmed");
		assert_int_equal(events(f, "subscribe", id, l->id), 1);
		assert_int_equal(events(f, "confirm", id, l->id), 0);
		assert_event_source(f, "subscribe", id, "web");
	}
}

/* ---- rule (3) ----------------------------------------------------------- */

static const char *const bad_text[] = {
	"Eve\r\nBcc: victim@example.org", /* header injection */
	"Eve\nBcc: victim@example.org",
	"Eve\rX",
	"Eve\x01",          /* C0 */
	"Eve\tMallory",     /* TAB is C0 too */
	"Eve\x1b[31m",      /* ESC */
	"Eve\x7f",          /* DEL */
	"Eve\xc2\x85X",     /* U+0085 NEL, a C1 line break */
	"Eve\xc2\x80",      /* U+0080, first C1 */
	"Eve\xc2\x9f",      /* U+009F, last C1 */
};
#define N_BAD (sizeof bad_text / sizeof bad_text[0])

static void
test_subscriber_check_text_refuses_controls(void **state)
{
	struct herr err;
	char longer[SUBSCRIBER_NAME_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < N_BAD; i++) {
		herr_clear(&err);
		assert_int_equal(subscriber_check_text("name", bad_text[i], SUBSCRIBER_NAME_MAX,
		                                       &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_non_null(strstr(err.msg, "name"));
	}
	/* text around the C1 block is fine: U+00A0, U+00E9, U+0100, emoji */
	assert_int_equal(subscriber_check_text("name", "Zo\xc3\xab \xc2\xa0 \xc4\x80 "
	                                       "\xf0\x9f\x98\x80 O'Brien-Smith, Jr.",
	                                       SUBSCRIBER_NAME_MAX, &err), 0);
	/* the length cap, exactly at and one past it */
	memset(longer, 'a', sizeof longer - 1);
	longer[SUBSCRIBER_NAME_MAX] = '\0';
	assert_int_equal(subscriber_check_text("name", longer, SUBSCRIBER_NAME_MAX, &err), 0);
	longer[SUBSCRIBER_NAME_MAX] = 'a';
	longer[SUBSCRIBER_NAME_MAX + 1] = '\0';
	herr_clear(&err);
	assert_int_equal(subscriber_check_text("name", longer, SUBSCRIBER_NAME_MAX, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
}

/* Nothing at all in the three tables a sign-up writes. */
static void
assert_nothing_written(struct fixture *f, long long subscribers, long long subscriptions)
{
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers"), subscribers);
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions"), subscriptions);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 0);
}

static void
test_subscriber_signup_refuses_controls_writing_nothing(void **state)
{
	struct fixture *f = *state;
	static const enum signup_source sources[3] = { SIGNUP_ADMIN, SIGNUP_IMPORT, SIGNUP_WEB };
	struct signup_result res;
	struct tmpl_attr attr[2];
	struct herr err;
	size_t i, s;

	for (i = 0; i < N_BAD; i++)
		for (s = 0; s < 3; s++) {
			/* in the name */
			assert_int_equal(signup_full(f, &f->news, "new@example.org", bad_text[i], NULL,
			                             0, sources[s], 0, &res, &err), -1);
			assert_int_equal(err.code, EX_DATAERR);
			assert_null(strchr(err.msg, '\n'));
			assert_null(strchr(err.msg, '\r'));
			/* in an attribute value, after a good attribute */
			attr[0].key = "role";
			attr[0].value = "editor";
			attr[1].key = "organisation";
			attr[1].value = bad_text[i];
			assert_int_equal(signup_full(f, &f->news, "new@example.org", "Nina", attr, 2,
			                             sources[s], 0, &res, &err), -1);
			assert_int_equal(err.code, EX_DATAERR);
			assert_non_null(strstr(err.msg, "organisation"));
			/* in an attribute key: the message shows it, escaped */
			attr[1].key = bad_text[i];
			attr[1].value = "x";
			assert_int_equal(signup_full(f, &f->news, "new@example.org", "Nina", attr, 2,
			                             sources[s], 0, &res, &err), -1);
			assert_int_equal(err.code, EX_DATAERR);
			assert_null(strchr(err.msg, '\n'));
			assert_null(strchr(err.msg, '\r'));
			assert_nothing_written(f, 0, 0);
		}
	/* an empty key and an over-long value */
	attr[0].key = "";
	attr[0].value = "x";
	assert_int_equal(signup_full(f, &f->news, "new@example.org", "Nina", attr, 1,
	                             SIGNUP_ADMIN, 0, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	{
		char *v = malloc(SUBSCRIBER_ATTR_VAL_MAX + 2);

		memset(v, 'v', SUBSCRIBER_ATTR_VAL_MAX + 1);
		v[SUBSCRIBER_ATTR_VAL_MAX + 1] = '\0';
		attr[0].key = "bio";
		attr[0].value = v;
		assert_int_equal(signup_full(f, &f->news, "new@example.org", "Nina", attr, 1,
		                             SIGNUP_IMPORT, 0, &res, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		free(v);
	}
	assert_nothing_written(f, 0, 0);
}

static void
test_subscriber_signup_refuses_controls_for_known_subscriber(void **state)
{
	struct fixture *f = *state;
	struct tmpl_attr attr[1] = { { "organisation", "Leeds" } };
	struct signup_result res;
	struct subscriber s;
	struct herr err;
	long long id;

	db_set_now(1000);
	id = signup_full(f, &f->news, "ada@example.org", "Ada", attr, 1, SIGNUP_ADMIN, 0, &res,
	                 &err) == 0 ? res.subscriber_id : 0;
	assert_true(id > 0);
	db_set_now(2000);
	/* an admin's rename with a line break, on a new list: nothing changes,
	 * not even the subscription */
	assert_int_equal(signup_full(f, &f->extra, "ada@example.org", "Ada\r\nBcc: x@example.org",
	                             NULL, 0, SIGNUP_ADMIN, 0, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	attr[0].value = "Leeds\nBcc: x@example.org";
	assert_int_equal(signup_full(f, &f->extra, "ada@example.org", NULL, attr, 1,
	                             SIGNUP_IMPORT, 0, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_string_equal(s.name, "Ada");
	assert_string_equal(s.attributes, "{\"organisation\":\"Leeds\"}");
	assert_int_equal(s.updated_at, 1000);
	subscriber_clear(&s);
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions"), 1);
}

/* The same rule inside the caller's transaction (CSV import). */
static void
test_subscriber_signup_in_refuses_controls_writing_nothing(void **state)
{
	struct fixture *f = *state;
	struct subscriber_writer *w;
	struct signup_result res;
	struct signup_req r;
	struct address a;
	struct herr err;

	assert_int_equal(subscriber_writer_open(f->db, &w, &err), 0);
	assert_int_equal(db_begin(f->db, &err), 0);
	assert_int_equal(address_parse("ok@example.org", &a, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = "Okay";
	r.source = SIGNUP_IMPORT;
	assert_int_equal(subscriber_signup_in(w, &f->news, &r, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_int_equal(address_parse("bad@example.org", &a, &err), 0);
	r.name = "Bad\xc2\x85Name";
	herr_clear(&err);
	assert_int_equal(subscriber_signup_in(w, &f->news, &r, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	/* the failed row wrote nothing; the good one is there */
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers WHERE email_key = "
	                          "'bad@example.org'"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers"), 1);
	assert_int_equal(db_commit(f->db, &err), 0);
	subscriber_writer_close(w);
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions"), 1);
}

/* ---- rule (4) ----------------------------------------------------------- */

static void
test_subscriber_signup_keeps_first_spelling(void **state)
{
	struct fixture *f = *state;
	struct subscriber s;
	struct herr err;
	long long id;

	id = signup(f, &f->news, "Grace@Example.net", "Grace", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(signup(f, &f->news, "grace@example.net", "Grace Hopper", SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_UPDATED), id);
	assert_int_equal(signup(f, &f->extra, "GRACE@EXAMPLE.NET", NULL, SIGNUP_IMPORT, 0,
	                        SUBSCRIBE_ADDED), id);
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers"), 1);
	/* found by any spelling; sent to the first one (domain lower-cased) */
	assert_int_equal(subscriber_get(f->db, "gRACE@example.NET", &s, &err), 0);
	assert_int_equal(s.id, id);
	assert_string_equal(s.email, "Grace@example.net");
	assert_string_equal(s.name, "Grace Hopper");
	subscriber_clear(&s);
	herr_clear(&err);
	assert_int_equal(subscriber_get(f->db, "grace@example.org", &s, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	subscriber_clear(&s);
}

/* ---- rule (5) ----------------------------------------------------------- */

static void
test_subscriber_signup_refuses_suppressed_even_for_admin(void **state)
{
	struct fixture *f = *state;
	static const enum signup_source sources[3] = { SIGNUP_ADMIN, SIGNUP_IMPORT, SIGNUP_WEB };
	static const char *const refused[] = { "role@example.org", "Role@Example.ORG",
	                                       "anyone@spam.example", "ANYONE@Spam.Example" };
	struct signup_result res;
	struct subscriber s;
	struct herr err;
	long long known;
	int added;
	size_t i, k;

	known = signup(f, &f->news, "known@spam.example", "Known", SIGNUP_ADMIN, 0,
	               SUBSCRIBE_ADDED);
	assert_int_equal(suppress_add(f->db, "role@example.org", "manual", NULL, &added, &err), 0);
	assert_int_equal(suppress_add(f->db, "@spam.example", "manual", NULL, &added, &err), 0);
	for (k = 0; k < 3; k++) {
		for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
			assert_int_equal(signup_full(f, &f->news, refused[i], "Someone", NULL, 0,
			                             sources[k], 0, &res, &err), 0);
			assert_int_equal(res.res, SUBSCRIBE_SKIPPED_SUPPRESSED);
			assert_int_equal(res.subscriber_id, 0);
			assert_int_equal(res.confirm_mail, 0);
			/* not even created */
			herr_clear(&err);
			assert_int_equal(subscriber_get(f->db, refused[i], &s, &err), -1);
			assert_int_equal(err.code, EX_NOINPUT);
			subscriber_clear(&s);
		}
		/* someone known before the domain was suppressed: no new list */
		assert_int_equal(signup_full(f, &f->extra, "known@spam.example", NULL, NULL, 0,
		                             sources[k], 0, &res, &err), 0);
		assert_int_equal(res.res, SUBSCRIBE_SKIPPED_SUPPRESSED);
	}
	{
		char sql[128], buf[16];

		snprintf(sql, sizeof sql, "SELECT count(*) FROM subscriptions WHERE "
		         "subscriber_id = %lld", known);
		assert_int_equal(count(f, sql), 1);
		assert_string_equal(sub_status(f, &f->extra, known, buf), "none");
	}
	assert_int_equal(count(f, "SELECT count(*) FROM subscribers"), 1);
	/* a domain pattern is that domain only, not its subdomains */
	assert_true(signup(f, &f->news, "a@sub.spam.example", NULL, SIGNUP_ADMIN, 0,
	                   SUBSCRIBE_ADDED) > 0);
}

/* ---- rule (6) ----------------------------------------------------------- */

static void
test_subscriber_signup_web_never_renames_known(void **state)
{
	struct fixture *f = *state;
	struct subscriber s;
	struct herr err;
	long long ada, nameless;

	ada = signup(f, &f->news, "ada@example.org", "Ada Lovelace", SIGNUP_ADMIN, 0,
	             SUBSCRIBE_ADDED);
	/* anyone can post her address, with any name: it is kept */
	assert_int_equal(signup(f, &f->extra, "ada@example.org", "Mallory", SIGNUP_WEB, 0,
	                        SUBSCRIBE_ADDED), ada);
	assert_int_equal(signup(f, &f->news, "ADA@example.org", "Mallory", SIGNUP_WEB, 0,
	                        SUBSCRIBE_UNCHANGED), ada);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_string_equal(s.name, "Ada Lovelace");
	subscriber_clear(&s);
	/* not even a subscriber known without a name gets one from the form */
	nameless = signup(f, &f->news, "nn@example.org", NULL, SIGNUP_IMPORT, 0, SUBSCRIBE_ADDED);
	assert_int_equal(signup(f, &f->extra, "nn@example.org", "Mallory", SIGNUP_WEB, 0,
	                        SUBSCRIBE_ADDED), nameless);
	assert_int_equal(subscriber_get(f->db, "nn@example.org", &s, &err), 0);
	assert_string_equal(s.name, "");
	subscriber_clear(&s);
	/* a new address takes the name given on the form */
	signup(f, &f->news, "new@example.org", "Newcomer", SIGNUP_WEB, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_get(f->db, "new@example.org", &s, &err), 0);
	assert_string_equal(s.name, "Newcomer");
	subscriber_clear(&s);
	/* an admin does rename; an import too; no name given keeps it */
	assert_int_equal(signup(f, &f->news, "ada@example.org", "Ada King", SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_UPDATED), ada);
	assert_int_equal(signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_UNCHANGED), ada);
	assert_int_equal(signup(f, &f->news, "ada@example.org", "", SIGNUP_IMPORT, 0,
	                        SUBSCRIBE_UNCHANGED), ada);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_string_equal(s.name, "Ada King");
	subscriber_clear(&s);
}

/* ---- rule (7) ----------------------------------------------------------- */

static void
test_subscriber_reactivate_refused_while_suppressed(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;
	int changed, added, removed;
	char was[16], buf[16];

	id = signup(f, &f->news, "Ada@Example.com", "Ada", SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_mark(f->db, id, "bounced", &changed, &err), 0);
	assert_int_equal(suppress_add(f->db, "@example.com", "manual", NULL, &added, &err), 0);
	memset(was, 0, sizeof was);
	herr_clear(&err);
	assert_int_equal(subscriber_reactivate(f->db, id, was, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "'@example.com'"));   /* names the pattern */
	assert_string_equal(was, "bounced");
	assert_string_equal(global_status(f, id, buf), "bounced");
	/* the address itself suppressed (by its key, any case) */
	assert_int_equal(suppress_remove(f->db, "@example.com", &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(suppress_add(f->db, "ada@example.com", "complaint", NULL, &added, &err),
	                 0);
	herr_clear(&err);
	assert_int_equal(subscriber_reactivate(f->db, id, was, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "'ada@example.com'"));
	assert_string_equal(global_status(f, id, buf), "bounced");
	/* lifted: active again, the subscription as it was */
	assert_int_equal(suppress_remove(f->db, "ada@example.com", &removed, &err), 0);
	assert_int_equal(subscriber_reactivate(f->db, id, was, &err), 0);
	assert_string_equal(was, "bounced");
	assert_string_equal(global_status(f, id, buf), "active");
	assert_string_equal(sub_status(f, &f->news, id, buf), "confirmed");
}

static void
test_subscriber_reactivate_brings_back_blocked_and_complained(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	long long a, b;
	int changed;
	char was[16], buf[16];

	a = signup(f, &f->news, "a@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	b = signup(f, &f->digest, "b@example.org", NULL, SIGNUP_WEB, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_block(f->db, a, &err), 0);
	assert_int_equal(subscriber_mark(f->db, b, "complained", &changed, &err), 0);
	assert_int_equal(subscriber_reactivate(f->db, a, was, &err), 0);
	assert_string_equal(was, "blocklisted");
	assert_string_equal(global_status(f, a, buf), "active");
	assert_int_equal(subscriber_reactivate(f->db, b, was, &err), 0);
	assert_string_equal(was, "complained");
	assert_string_equal(sub_status(f, &f->digest, b, buf), "unconfirmed");
	/* and can be subscribed again */
	assert_int_equal(signup_full(f, &f->extra, "a@example.org", NULL, NULL, 0, SIGNUP_ADMIN,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_int_equal(subscription_confirm(f->db, f->digest.id, b, "web", &err), 0);
	/* unknown id */
	herr_clear(&err);
	assert_int_equal(subscriber_reactivate(f->db, 9999, was, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

/* ---- opt-in and the state diagram --------------------------------------- */

/* (none) -> unconfirmed -> confirmed: the form on a double opt-in list. */
static void
test_subscriber_signup_web_double_opt_in_waits_unconfirmed(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	long long id;
	char buf[16];

	assert_int_equal(signup_full(f, &f->digest, "ada@example.org", "Ada", NULL, 0, SIGNUP_WEB,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_true(res.subscriber_id > 0);
	assert_int_equal(res.confirm_mail, 1);
	id = res.subscriber_id;
	assert_string_equal(sub_status(f, &f->digest, id, buf), "unconfirmed");
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE confirmed_at IS NULL"),
	                 1);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 0);
	/* asking again sends the confirmation again, changes nothing */
	assert_int_equal(signup_full(f, &f->digest, "ada@example.org", "Ada", NULL, 0, SIGNUP_WEB,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(res.confirm_mail, 1);
	assert_string_equal(sub_status(f, &f->digest, id, buf), "unconfirmed");
	/* the reader confirms: one 'confirm' event with its source */
	assert_int_equal(subscription_confirm(f->db, f->digest.id, id, "web", &err), 0);
	assert_string_equal(sub_status(f, &f->digest, id, buf), "confirmed");
	assert_int_equal(events(f, "confirm", id, f->digest.id), 1);
	assert_event_source(f, "confirm", id, "web");
	/* confirming again changes nothing and records nothing */
	assert_int_equal(subscription_confirm(f->db, f->digest.id, id, "web", &err), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 1);
	/* once confirmed, the form asks for no confirmation mail */
	assert_int_equal(signup_full(f, &f->digest, "ada@example.org", NULL, NULL, 0, SIGNUP_WEB,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(res.confirm_mail, 0);
	/* not on the list: nothing to confirm */
	herr_clear(&err);
	assert_int_equal(subscription_confirm(f->db, f->news.id, id, "web", &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

/* (none) -> confirmed: the form on a single opt-in list, with its event. */
static void
test_subscriber_signup_web_single_opt_in_confirms_with_event(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	long long id;
	char buf[16];

	assert_int_equal(signup_full(f, &f->news, "ada@example.org", "Ada", NULL, 0, SIGNUP_WEB,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_int_equal(res.confirm_mail, 0);
	id = res.subscriber_id;
	assert_string_equal(sub_status(f, &f->news, id, buf), "confirmed");
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE confirmed_at IS NOT "
	                          "NULL"), 1);
	assert_int_equal(events(f, "subscribe", id, f->news.id), 1);
	assert_event_source(f, "subscribe", id, "web");
	/* the same sign-up again: unchanged, no second event */
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", "Ada", NULL, 0, SIGNUP_WEB,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 1);
}

/*
 * The 'subscribe' event is recorded "when it became confirmed"
 * (subscriber_signup_in()): a form sign-up that only adds an attribute to
 * someone confirmed long ago is no new subscription, and must not count
 * as one in the stats.
 * (Once a bug: any SUBSCRIBE_UPDATED ending confirmed recorded one.)
 */
static void
test_subscriber_signup_web_never_changes_known_attributes(void **state)
{
	struct fixture *f = *state;
	struct tmpl_attr attr[2] = { { "organisation", "Leeds" }, { "tracking_consent", "yes" } };
	struct signup_result res;
	struct subscriber s;
	struct herr err;
	long long id;
	char buf[16];

	id = signup(f, &f->news, "ada@example.org", "Ada", SIGNUP_WEB, 0, SUBSCRIBE_ADDED);
	assert_int_equal(events(f, "subscribe", id, f->news.id), 1);
	/* rule (6): anyone can post her address with attributes - consent to
	 * tracking among them - and nothing of hers changes */
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", NULL, attr, 2, SIGNUP_WEB, 0,
	                             &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_null(strstr(s.attributes ? s.attributes : "", "Leeds"));
	assert_null(strstr(s.attributes ? s.attributes : "", "tracking_consent"));
	subscriber_clear(&s);
	assert_string_equal(sub_status(f, &f->news, id, buf), "confirmed");
	assert_int_equal(events(f, "subscribe", id, f->news.id), 1);
	/* a new address takes the form's attributes */
	assert_int_equal(signup_full(f, &f->news, "new@example.org", NULL, attr, 2, SIGNUP_WEB, 0,
	                             &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_get(f->db, "new@example.org", &s, &err), 0);
	assert_non_null(strstr(s.attributes, "tracking_consent"));
	subscriber_clear(&s);
	/* an admin may change them */
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", NULL, attr, 1, SIGNUP_ADMIN, 0,
	                             &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UPDATED);
}

/* (none) -> confirmed by an admin, even on a double opt-in list; imports and
 * admins record no events. */
static void
test_subscriber_signup_admin_and_import_confirm_without_event(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	char buf[16];

	assert_int_equal(signup_full(f, &f->digest, "a@example.org", NULL, NULL, 0, SIGNUP_ADMIN,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_int_equal(res.confirm_mail, 0);
	assert_string_equal(sub_status(f, &f->digest, res.subscriber_id, buf), "confirmed");
	assert_int_equal(signup_full(f, &f->digest, "b@example.org", NULL, NULL, 0, SIGNUP_IMPORT,
	                             0, &res, &err), 0);
	assert_int_equal(res.confirm_mail, 0);
	assert_string_equal(sub_status(f, &f->digest, res.subscriber_id, buf), "confirmed");
	assert_int_equal(signup_full(f, &f->news, "c@example.org", NULL, NULL, 0, SIGNUP_IMPORT,
	                             1, &res, &err), 0);
	assert_int_equal(res.confirm_mail, 0);
	assert_string_equal(sub_status(f, &f->news, res.subscriber_id, buf), "unconfirmed");
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 0);
}

static void
test_subscriber_signup_never_downgrades_confirmed(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	long long id;
	char buf[16];

	db_set_now(1000);
	id = signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	db_set_now(2000);
	assert_int_equal(signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_ADMIN, 1,
	                        SUBSCRIBE_UNCHANGED), id);
	assert_int_equal(signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_IMPORT, 1,
	                        SUBSCRIBE_UNCHANGED), id);
	assert_int_equal(signup_full(f, &f->digest, "ada@example.org", NULL, NULL, 0, SIGNUP_WEB,
	                             0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(res.confirm_mail, 0);
	assert_string_equal(sub_status(f, &f->digest, id, buf), "confirmed");
	/* and the confirmation time is the first one */
	assert_int_equal(count(f, "SELECT confirmed_at FROM subscriptions"), 1000);
}

/* unconfirmed -> confirmed by an admin's sign-up; the form leaves a
 * pending subscription pending (rule 8) and asks again. */
static void
test_subscriber_signup_upgrades_unconfirmed_only_for_admin(void **state)
{
	struct fixture *f = *state;
	struct signup_result res;
	struct herr err;
	long long a, b, c;
	char buf[16];

	a = signup(f, &f->news, "a@example.org", NULL, SIGNUP_IMPORT, 1, SUBSCRIBE_ADDED);
	b = signup(f, &f->news, "b@example.org", NULL, SIGNUP_ADMIN, 1, SUBSCRIBE_ADDED);
	assert_string_equal(sub_status(f, &f->news, a, buf), "unconfirmed");
	assert_int_equal(signup(f, &f->news, "a@example.org", NULL, SIGNUP_ADMIN, 0,
	                        SUBSCRIBE_UPDATED), a);
	assert_string_equal(sub_status(f, &f->news, a, buf), "confirmed");
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE confirmed_at IS NOT "
	                          "NULL"), 1);
	assert_int_equal(events(f, "subscribe", a, f->news.id), 0);
	/* an import does too */
	c = signup(f, &f->extra, "c@example.org", NULL, SIGNUP_ADMIN, 1, SUBSCRIBE_ADDED);
	assert_string_equal(sub_status(f, &f->extra, c, buf), "unconfirmed");
	assert_int_equal(signup(f, &f->extra, "c@example.org", NULL, SIGNUP_IMPORT, 0,
	                        SUBSCRIBE_UPDATED), c);
	assert_string_equal(sub_status(f, &f->extra, c, buf), "confirmed");
	/* the reader on the single opt-in form: still pending, mail again */
	assert_int_equal(signup_full(f, &f->news, "b@example.org", NULL, NULL, 0, SIGNUP_WEB, 0,
	                             &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(res.subscriber_id, b);
	assert_int_equal(res.confirm_mail, 1);
	assert_string_equal(sub_status(f, &f->news, b, buf), "unconfirmed");
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 0);
	/* and confirms: a 'confirm' event */
	assert_int_equal(subscription_confirm(f->db, f->news.id, b, "web", &err), 0);
	assert_string_equal(sub_status(f, &f->news, b, buf), "confirmed");
	assert_int_equal(events(f, "confirm", b, f->news.id), 1);
}

/* ---- attributes ---------------------------------------------------------- */

static void
test_subscriber_signup_merges_attributes(void **state)
{
	struct fixture *f = *state;
	struct tmpl_attr first[3] = { { "organisation", "Leeds" }, { "role", "sw" },
	                              { "empty", "" } };
	struct tmpl_attr second[3] = { { "role", "tm" }, { "region", "North \"East\"" },
	                               { "organisation", "" } };
	struct tmpl_attr none[1] = { { "nothing", NULL } };
	struct signup_result res;
	struct subscriber s;
	struct herr err;

	db_set_now(1000);
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", "Ada", first, 3,
	                             SIGNUP_IMPORT, 0, &res, &err), 0);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	/* empty values are not stored */
	assert_string_equal(s.attributes, "{\"organisation\":\"Leeds\",\"role\":\"sw\"}");
	subscriber_clear(&s);
	/* merged: new keys added, changed ones replaced, empty ones keep theirs */
	db_set_now(2000);
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", NULL, second, 3,
	                             SIGNUP_IMPORT, 0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UPDATED);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_string_equal(s.attributes, "{\"organisation\":\"Leeds\",\"region\":"
	                                  "\"North \\\"East\\\"\",\"role\":\"tm\"}");
	assert_int_equal(s.updated_at, 2000);
	subscriber_clear(&s);
	/* the same again (and a NULL value): unchanged, not even touched */
	db_set_now(3000);
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", NULL, second, 3,
	                             SIGNUP_ADMIN, 0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(signup_full(f, &f->news, "ada@example.org", NULL, none, 1,
	                             SIGNUP_WEB, 0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_UNCHANGED);
	assert_int_equal(subscriber_get(f->db, "ada@example.org", &s, &err), 0);
	assert_int_equal(s.updated_at, 2000);
	assert_null(strstr(s.attributes, "nothing"));
	subscriber_clear(&s);
}

/* sql/021: the tables written per subscriber or per message keep their
 * CHECK constraints without IN lists (SQLite builds a temporary B-tree for
 * each IN list every time it checks a row), and the constraints still bite. */
static void
test_schema_checks_without_in_lists(void **state)
{
	static const char *const tables[] = { "subscribers", "subscriptions", "consent_log",
	                                      "deliveries", "events" };
	struct fixture *f = *state;
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT sql FROM sqlite_master "
		                                    "WHERE type = 'table' AND name = ?1", -1, &st,
		                                    NULL), SQLITE_OK);
		sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_null(strstr((const char *)sqlite3_column_text(st, 0), " IN ('"));
		assert_non_null(strstr((const char *)sqlite3_column_text(st, 0), " OR "));
		sqlite3_finalize(st);
	}
	assert_int_equal(sqlite3_exec(f->db, "INSERT INTO subscribers (email, email_key, status, "
	                              "created_at, updated_at) VALUES ('x@example.org', "
	                              "'x@example.org', 'nope', 1, 1)", NULL, NULL, NULL),
	                 SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(f->db, "INSERT INTO subscribers (email, email_key, status, "
	                              "created_at, updated_at) VALUES ('x@example.org', "
	                              "'x@example.org', 'bounced', 1, 1)", NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_exec(f->db, "INSERT INTO subscriptions (list_id, subscriber_id, "
	                              "status, created_at) SELECT 1, id, 'maybe', 1 "
	                              "FROM subscribers", NULL, NULL, NULL), SQLITE_CONSTRAINT);
}

/* A new subscriber's attributes are written without a DOM (new_attrs in
 * subscriber.c): the bytes must be jansson's JSON_COMPACT | JSON_SORT_KEYS,
 * what merge_attrs wrote for everyone before and still writes on a merge. */
static void
test_subscriber_signup_new_attributes_as_jansson_writes_them(void **state)
{
	struct fixture *f = *state;
	struct tmpl_attr attrs[7] = {
		{ "role", "Social worker" }, { "Région", "Île-de-France" },
		{ "a\\b", "back\\slash \"quoted\"" }, { "role", "" },
		{ "Z", "upper before lower" }, { "dup", "first" }, { "dup", "second" },
	};
	struct signup_result res;
	struct subscriber s;
	struct herr err;
	json_t *obj = json_object();
	char *want;
	size_t i;

	assert_non_null(obj);
	for (i = 0; i < 7; i++)
		if (*attrs[i].value)
			assert_int_equal(json_object_set_new(obj, attrs[i].key,
			                                     json_string(attrs[i].value)), 0);
	want = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	assert_non_null(want);
	assert_int_equal(signup_full(f, &f->news, "new@example.org", "New", attrs, 7,
	                             SIGNUP_IMPORT, 0, &res, &err), 0);
	assert_int_equal(res.res, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_get(f->db, "new@example.org", &s, &err), 0);
	assert_string_equal(s.attributes, want);
	subscriber_clear(&s);
	free(want);
}

/* ---- unsubscribing --------------------------------------------------------- */

static void
test_subscription_unsubscribe_is_idempotent(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;
	char buf[16];

	db_set_now(1000);
	id = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	db_set_now(2000);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id, "one-click", &err), 0);
	assert_string_equal(sub_status(f, &f->news, id, buf), "unsubscribed");
	assert_int_equal(events(f, "unsubscribe", id, f->news.id), 1);
	assert_event_source(f, "unsubscribe", id, "one-click");
	/* again, later: nothing changes, no second event */
	db_set_now(3000);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id, "mailto", &err), 0);
	assert_string_equal(sub_status(f, &f->news, id, buf), "unsubscribed");
	assert_int_equal(events(f, "unsubscribe", id, f->news.id), 1);
	assert_int_equal(count(f, "SELECT unsubscribed_at FROM subscriptions"), 2000);
	/* an unconfirmed subscription can be ended too */
	id = signup(f, &f->digest, "bob@example.org", NULL, SIGNUP_WEB, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscription_unsubscribe(f->db, f->digest.id, id, "web", &err), 0);
	assert_string_equal(sub_status(f, &f->digest, id, buf), "unsubscribed");
}

static void
test_subscription_unsubscribe_not_on_list(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;

	id = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	herr_clear(&err);
	assert_int_equal(subscription_unsubscribe(f->db, f->extra.id, id, "cli", &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	herr_clear(&err);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id + 100, "cli", &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE status = "
	                          "'confirmed'"), 1);
}

static void
test_subscription_unsubscribe_issue_names_the_issue(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id, issue;
	int changed;

	id = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(sqlite3_exec(f->db, "INSERT INTO issues (list_id, subject, from_addr, "
	                              "markdown, html, text, created_at) VALUES (1, 's', "
	                              "'n@example.org', '', '', '', 0)", NULL, NULL, NULL),
	                 SQLITE_OK);
	issue = sqlite3_last_insert_rowid(f->db);
	assert_int_equal(subscription_unsubscribe_issue(f->db, f->news.id, id, issue, "web", &err),
	                 0);
	{
		char sql[160];

		snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE kind = 'unsubscribe' "
		         "AND issue_id = %lld AND subscriber_id = %lld", issue, id);
		assert_int_equal(count(f, sql), 1);
	}
	/* the in-transaction form says whether it changed anything */
	assert_int_equal(db_begin(f->db, &err), 0);
	assert_int_equal(subscription_unsubscribe_in(f->db, f->news.id, id, issue, "web", &changed,
	                                             &err), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(db_commit(f->db, &err), 0);
	id = signup(f, &f->news, "bob@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(db_begin(f->db, &err), 0);
	assert_int_equal(subscription_unsubscribe_in(f->db, f->news.id, id, issue, "web", &changed,
	                                             &err), 0);
	assert_int_equal(changed, 1);
	/* rolled back with the caller's transaction */
	db_rollback(f->db);
	assert_int_equal(count(f, "SELECT count(*) FROM subscriptions WHERE status = "
	                          "'confirmed'"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM events"), 1);
}

static void
test_subscription_unsubscribe_all_ends_every_list(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id, other, n = -1;
	char buf[16];

	id = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	signup(f, &f->digest, "ada@example.org", NULL, SIGNUP_WEB, 0, SUBSCRIBE_ADDED);
	signup(f, &f->extra, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	other = signup(f, &f->news, "bob@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscription_unsubscribe(f->db, f->extra.id, id, "cli", &err), 0);
	assert_int_equal(subscription_unsubscribe_all(f->db, id, "complaint", &n, &err), 0);
	assert_int_equal(n, 2);   /* the third had ended already */
	assert_string_equal(sub_status(f, &f->news, id, buf), "unsubscribed");
	assert_string_equal(sub_status(f, &f->digest, id, buf), "unsubscribed");
	assert_string_equal(sub_status(f, &f->news, other, buf), "confirmed");
	/* without an event each (the one from 'cli' only) */
	assert_int_equal(count(f, "SELECT count(*) FROM events WHERE kind = 'unsubscribe'"), 1);
	assert_int_equal(subscription_unsubscribe_all(f->db, id, "complaint", &n, &err), 0);
	assert_int_equal(n, 0);
}

/* ---- subscriber_mark ------------------------------------------------------ */

static void
test_subscriber_mark_complaint_outranks_bounce(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;
	int changed;
	char buf[16];

	id = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_mark(f->db, id, "bounced", &changed, &err), 0);
	assert_int_equal(changed, 1);
	assert_string_equal(global_status(f, id, buf), "bounced");
	assert_int_equal(subscriber_mark(f->db, id, "bounced", &changed, &err), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(subscriber_mark(f->db, id, "complained", &changed, &err), 0);
	assert_int_equal(changed, 1);
	assert_string_equal(global_status(f, id, buf), "complained");
	/* a later bounce does not hide the complaint */
	assert_int_equal(subscriber_mark(f->db, id, "bounced", &changed, &err), 0);
	assert_int_equal(changed, 0);
	assert_string_equal(global_status(f, id, buf), "complained");
	assert_int_equal(subscriber_mark(f->db, id, "complained", &changed, &err), 0);
	assert_int_equal(changed, 0);
	/* the subscription itself is not touched by the global status */
	assert_string_equal(sub_status(f, &f->news, id, buf), "confirmed");
}

static void
test_subscriber_mark_blocklisted_stays(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id;
	int changed;
	char buf[16];

	id = signup(f, &f->news, "ada@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscriber_block(f->db, id, &err), 0);
	assert_int_equal(subscriber_mark(f->db, id, "bounced", &changed, &err), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(subscriber_mark(f->db, id, "complained", &changed, &err), 0);
	assert_int_equal(changed, 0);
	assert_string_equal(global_status(f, id, buf), "blocklisted");
}

/* ---- subscriber_each_member ------------------------------------------------ */

struct members {
	char seen[8][512];
	char status[8][16];
	int  n, stop_after;
};

static int
collect_member(void *ctx, const struct member *m)
{
	struct members *c = ctx;

	if (c->n >= 8)
		return -1;
	snprintf(c->seen[c->n], sizeof c->seen[0], "%s", m->sub->email);
	snprintf(c->status[c->n], sizeof c->status[0], "%s", m->sub_status);
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? -1 : 0;
}

static void
test_subscriber_each_member_filters_and_orders(void **state)
{
	struct fixture *f = *state;
	struct members c;
	struct herr err;
	long long id;

	signup(f, &f->news, "carol@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	signup(f, &f->news, "Bob@example.org", NULL, SIGNUP_ADMIN, 1, SUBSCRIBE_ADDED);
	id = signup(f, &f->news, "alice@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	signup(f, &f->news, "dave@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	signup(f, &f->extra, "erin@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, id, "cli", &err), 0);

	memset(&c, 0, sizeof c);
	assert_int_equal(subscriber_each_member(f->db, f->news.id, NULL, collect_member, &c, &err),
	                 0);
	/* erin is on another list; the order is the subscribers' (ids: the
	 * order they were added), so the rows stream without a sort */
	assert_int_equal(c.n, 4);
	assert_string_equal(c.seen[0], "carol@example.org");
	assert_string_equal(c.seen[1], "Bob@example.org");
	assert_string_equal(c.status[1], "unconfirmed");
	assert_string_equal(c.seen[2], "alice@example.org");
	assert_string_equal(c.status[2], "unsubscribed");
	assert_string_equal(c.seen[3], "dave@example.org");

	memset(&c, 0, sizeof c);
	assert_int_equal(subscriber_each_member(f->db, f->news.id, "confirmed", collect_member, &c,
	                                        &err), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.seen[0], "carol@example.org");
	assert_string_equal(c.seen[1], "dave@example.org");

	/* the callback stops the walk */
	memset(&c, 0, sizeof c);
	c.stop_after = 1;
	assert_int_equal(subscriber_each_member(f->db, f->news.id, NULL, collect_member, &c, &err),
	                 -1);
	assert_int_equal(c.n, 1);
}

/* The statement the listing ran, caught by the trace. */
static int
keep_sql(unsigned type, void *ctx, void *p, void *x)
{
	char **sql = ctx;

	(void)type;
	(void)x;
	if (!*sql)
		*sql = sqlite3_expanded_sql(p);
	return 0;
}

/* Issue 19: `sub ls` and `sub export` print their first row before the
 * list is read to its end, because the listing walks the subscriptions'
 * primary key and looks each subscriber up: no temporary B-tree, which is
 * what a sort (and so a wait for the last row) would show in the plan. */
static void
test_subscriber_each_member_streams_without_a_sort(void **state)
{
	struct fixture *f = *state;
	struct members c;
	struct herr err;
	sqlite3_stmt *st;
	char *sql = NULL, *eqp;
	int rows = 0;

	signup(f, &f->news, "zed@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	signup(f, &f->news, "amy@example.org", NULL, SIGNUP_ADMIN, 0, SUBSCRIBE_ADDED);
	memset(&c, 0, sizeof c);
	sqlite3_trace_v2(f->db, SQLITE_TRACE_STMT, keep_sql, &sql);
	assert_int_equal(subscriber_each_member(f->db, f->news.id, "confirmed", collect_member, &c,
	                                        &err), 0);
	sqlite3_trace_v2(f->db, 0, NULL, NULL);
	assert_non_null(sql);
	eqp = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(f->db, eqp, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);

		rows++;
		if (strstr(d, "TEMP B-TREE") || !strncmp(d, "SCAN ", 5))
			fail_msg("'%s' in the plan of: %s", d, sql);
	}
	sqlite3_finalize(st);
	sqlite3_free(eqp);
	sqlite3_free(sql);
	assert_true(rows >= 2);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.seen[0], "zed@example.org");
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_subscriber_signup_never_subscribes_blocked_bounced_complained),
		T(test_subscriber_each_member_streams_without_a_sort),
		T(test_subscription_confirm_refuses_blocked),
		T(test_subscriber_signup_import_never_resubscribes),
		T(test_subscriber_signup_admin_resubscribes),
		T(test_subscriber_signup_web_never_resubscribes),
		T(test_subscription_unsubscribe_issue_ends_every_list_of_the_issue),
		cmocka_unit_test(test_subscriber_check_text_refuses_controls),
		T(test_subscriber_signup_refuses_controls_writing_nothing),
		T(test_subscriber_signup_refuses_controls_for_known_subscriber),
		T(test_subscriber_signup_in_refuses_controls_writing_nothing),
		T(test_subscriber_signup_keeps_first_spelling),
		T(test_subscriber_signup_refuses_suppressed_even_for_admin),
		T(test_subscriber_signup_web_never_renames_known),
		T(test_subscriber_reactivate_refused_while_suppressed),
		T(test_subscriber_reactivate_brings_back_blocked_and_complained),
		T(test_subscriber_signup_web_double_opt_in_waits_unconfirmed),
		T(test_subscriber_signup_web_single_opt_in_confirms_with_event),
		T(test_subscriber_signup_web_never_changes_known_attributes),
		T(test_subscriber_signup_admin_and_import_confirm_without_event),
		T(test_subscriber_signup_never_downgrades_confirmed),
		T(test_subscriber_signup_upgrades_unconfirmed_only_for_admin),
		T(test_subscriber_signup_merges_attributes),
		T(test_subscriber_signup_new_attributes_as_jansson_writes_them),
		T(test_schema_checks_without_in_lists),
		T(test_subscription_unsubscribe_is_idempotent),
		T(test_subscription_unsubscribe_not_on_list),
		T(test_subscription_unsubscribe_issue_names_the_issue),
		T(test_subscription_unsubscribe_all_ends_every_list),
		T(test_subscriber_mark_complaint_outranks_bounce),
		T(test_subscriber_mark_blocklisted_stays),
		T(test_subscriber_each_member_filters_and_orders),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
