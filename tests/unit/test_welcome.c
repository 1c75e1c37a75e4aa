/*
 * test_welcome.c - a list's welcome mail (src/welcome.c), on a fresh
 * migrated database per test.
 *
 * Covers the enqueue rule of welcome.h, each case through the ways a
 * subscription becomes confirmed (subscriber.h):
 *   (1) a delivery is queued when a subscription becomes confirmed: a
 *       single opt-in sign-up on the form, an admin's add, an admin's
 *       unconfirmed add only once confirmed, a double opt-in sign-up only
 *       after confirmation_use();
 *   (2) an import queues none, unless signup_req.welcome;
 *   (3) once per subscriber and list, ever: a second confirmation, an
 *       unsubscribe and an admin's resubscribe, a new welcome file for the
 *       list add nothing for someone already welcomed;
 *   (4) no welcome issue (never set, or --no-welcome), or a cancelled one:
 *       nothing queued, nothing promised;
 *   (5) those confirmed before the list had a welcome never get it;
 * and issue.h (6): welcome_set() makes a `sending` issue of kind welcome
 * with no rows, refused for schedule and start; a `sent` welcome goes
 * back to `sending` when a row is queued; welcome_next_due() finds due
 * rows; front matter naming another list, a filter or variants is
 * refused with nothing made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixturefile.h"
#include "tempdb.h"

#include "herald/address.h"
#include "herald/config.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/subscriber.h"
#include "herald/welcome.h"

#define CONF \
	"[database]\npath = herald.db\n" \
	"[smtp]\nurl = smtp://127.0.0.1:2525\nstarttls = never\n" \
	"[sender]\nfrom = The News Team <news@example.org>\n" \
	"postal_address = 1 Example Street\n" \
	"[web]\nbase_url = https://news.example.org\n"

#define WELCOME_MD "---\nsubject: Welcome, {{name|reader}}\n---\n\nGlad you are here.\n"

struct fixture {
	char      dir[64];
	char      conf[128], md[128], md2[128], bad[128];
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	struct config cfg;
	struct list news;  /* single opt-in, with a welcome */
	struct list club;  /* double opt-in, with a welcome */
	struct list plain; /* no welcome */
	long long news_w, club_w;
};

static long long
count(struct fixture *f, const char *sql, long long a)
{
	return query_number(f->db, sql, a);
}

/* Rows queued on welcome issue `issue` (for anyone, or for `sub`). */
static long long
queued(struct fixture *f, long long issue)
{
	return count(f, "SELECT count(*) FROM deliveries WHERE issue_id = ?1", issue);
}

static long long
queued_for(struct fixture *f, long long sub)
{
	return count(f, "SELECT count(*) FROM deliveries d JOIN issues i ON i.id = d.issue_id "
	             "WHERE i.kind = 'welcome' AND d.subscriber_id = ?1", sub);
}

static long long
signup(struct fixture *f, const struct list *l, const char *addr, enum signup_source src,
       int unconfirmed, int welcome)
{
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;

	assert_int_equal(address_parse(addr, &a, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.unconfirmed = unconfirmed;
	r.source = src;
	r.welcome = welcome;
	if (subscriber_signup(f->db, l, &r, &res, &err) < 0)
		fail_msg("%s: %s", addr, err.msg);
	return res.subscriber_id;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;
	long long id;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/herald-welcome-XXXXXX");
	if (!mkdtemp(f->dir) || tempdb_open(f->path, "welcome", &f->db) < 0)
		return -1;
	*state = f;
	write_text(f->conf, sizeof f->conf, f->dir, "herald.conf", CONF);
	write_text(f->md, sizeof f->md, f->dir, "welcome.md", WELCOME_MD);
	write_text(f->md2, sizeof f->md2, f->dir, "welcome2.md",
	           "---\nsubject: Welcome again\n---\n\nA new welcome.\n");
	if (config_load(f->conf, &f->cfg, &err) < 0)
		fail_msg("config: %s", err.msg);
	if (list_create(f->db, "news", "The News", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0 ||
	    list_create(f->db, "club", "The Club", 1, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->club, &err) < 0 ||
	    list_create(f->db, "plain", "", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->plain, &err) < 0)
		fail_msg("lists: %s", err.msg);
	if (welcome_set(f->db, &f->cfg, "news", f->md, NULL, NULL, &f->news_w, &err) < 0 ||
	    welcome_set(f->db, &f->cfg, "club", f->md, NULL, NULL, &f->club_w, &err) < 0)
		fail_msg("welcome_set: %s", err.msg);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	config_free(&f->cfg);
	unlink(f->conf);
	unlink(f->md);
	unlink(f->md2);
	if (f->bad[0])
		unlink(f->bad);
	rmdir(f->dir);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static void
test_welcome_set_makes_a_sending_welcome_issue(void **state)
{
	struct fixture *f = *state;
	struct welcome_info wi;
	struct issue is;
	struct herr err;
	long long n;

	assert_true(f->news_w > 0 && f->club_w > f->news_w);
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE id = ?1 AND kind = 'welcome' "
	                       "AND status = 'sending' AND started_at IS NOT NULL", f->news_w), 1);
	assert_int_equal(count(f, "SELECT welcome_issue_id FROM lists WHERE id = ?1", f->news.id),
	                 f->news_w);
	/* no snapshot: nobody was on the list, and nobody is added */
	assert_int_equal(queued(f, f->news_w), 0);
	assert_int_equal(welcome_get(f->db, f->news.id, &wi, &err), 0);
	assert_int_equal(wi.issue_id, f->news_w);
	assert_string_equal(wi.subject, "Welcome, {{name|reader}}");
	assert_string_equal(wi.status, "sending");
	assert_int_equal(wi.counts.total, 0);
	assert_int_equal(welcome_get(f->db, f->plain.id, &wi, &err), 0);
	assert_int_equal(wi.issue_id, 0);
	/* issue.h (6): never scheduled or started, which would snapshot */
	herr_clear(&err);
	assert_int_equal(issue_schedule(f->db, f->news_w, db_now(), NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "welcome"));
	assert_int_equal(issue_get(f->db, f->news_w, &is, &err), 0);
	herr_clear(&err);
	assert_int_equal(issue_start_send(f->db, &is, NULL, NULL, &n, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	issue_clear(&is);
	assert_int_equal(queued(f, f->news_w), 0);
}

static void
test_welcome_set_refuses_other_audiences(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"---\nsubject: W\nlists: [news, plain]\n---\n\nHi.\n",
		"---\nsubject: W\nlist: plain\n---\n\nHi.\n",
		"---\nsubject: W\nwhere: attr.x = \"y\"\n---\n\nHi.\n",
		"---\nsubject: W\nsubject_variants: [\"A\", \"B\"]\n---\n\nHi.\n",
	};
	struct herr err;
	long long before = count(f, "SELECT count(*) FROM issues WHERE ?1", 1), id = 7;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_text(f->bad, sizeof f->bad, f->dir, "bad.md", bad[i]);
		herr_clear(&err);
		assert_int_equal(welcome_set(f->db, &f->cfg, "news", f->bad, NULL, NULL, &id, &err),
		                 -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_int_equal(id, 0);
	}
	/* nothing made, the welcome unchanged; a list that does not exist */
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE ?1", 1), before);
	assert_int_equal(count(f, "SELECT welcome_issue_id FROM lists WHERE id = ?1", f->news.id),
	                 f->news_w);
	herr_clear(&err);
	assert_int_equal(welcome_set(f->db, &f->cfg, "nope", f->md, NULL, NULL, &id, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

/* (1) */
static void
test_welcome_enqueue_on_confirmation(void **state)
{
	struct fixture *f = *state;
	enum confirm_state cs;
	struct herr err;
	long long web, admin, pending, later, cid;

	/* single opt-in: confirmed at once, queued at once */
	web = signup(f, &f->news, "web@example.org", SIGNUP_WEB, 0, 0);
	admin = signup(f, &f->news, "admin@example.org", SIGNUP_ADMIN, 0, 0);
	assert_int_equal(queued_for(f, web), 1);
	assert_int_equal(queued_for(f, admin), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM deliveries WHERE issue_id = ?1 AND "
	                       "status = 'pending'", f->news_w), 2);
	/* an admin's unconfirmed add waits for the confirmation */
	pending = signup(f, &f->news, "pending@example.org", SIGNUP_ADMIN, 1, 0);
	assert_int_equal(queued_for(f, pending), 0);
	assert_int_equal(subscription_confirm(f->db, f->news.id, pending, "cli", &err), 0);
	assert_int_equal(queued_for(f, pending), 1);
	/* double opt-in: nothing for the sign-up, one for the confirmation */
	later = signup(f, &f->club, "later@example.org", SIGNUP_WEB, 0, 0);
	assert_int_equal(queued_for(f, later), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM welcomes WHERE subscriber_id = ?1", later),
	                 0);
	assert_int_equal(confirmation_new(f->db, later, f->club.id, &cid, &err), 0);
	assert_int_equal(confirmation_use(f->db, cid, later, f->club.id, 3600, &cs, &err), 0);
	assert_int_equal(cs, CONFIRM_OPEN);
	assert_int_equal(queued(f, f->club_w), 1);
	assert_int_equal(queued_for(f, later), 1);
}

/* (2) */
static void
test_welcome_enqueue_import_only_when_asked(void **state)
{
	struct fixture *f = *state;
	long long quiet, asked, asked_unconfirmed;

	quiet = signup(f, &f->news, "quiet@example.org", SIGNUP_IMPORT, 0, 0);
	asked = signup(f, &f->news, "asked@example.org", SIGNUP_IMPORT, 0, 1);
	asked_unconfirmed = signup(f, &f->news, "wait@example.org", SIGNUP_IMPORT, 1, 1);
	assert_int_equal(queued_for(f, quiet), 0);
	assert_int_equal(queued_for(f, asked), 1);
	assert_int_equal(queued_for(f, asked_unconfirmed), 0);
	/* a list without a welcome: nothing, --welcome or not (4) */
	assert_int_equal(queued_for(f, signup(f, &f->plain, "x@example.org", SIGNUP_IMPORT, 0, 1)),
	                 0);
}

/* (3) */
static void
test_welcome_enqueue_once_per_subscriber_and_list(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long who, neww, fresh;

	who = signup(f, &f->news, "once@example.org", SIGNUP_ADMIN, 0, 0);
	assert_int_equal(queued_for(f, who), 1);
	/* again: the same add, a confirmation of a confirmed subscription */
	assert_int_equal(signup(f, &f->news, "once@example.org", SIGNUP_ADMIN, 0, 0), who);
	assert_int_equal(subscription_confirm(f->db, f->news.id, who, "web", &err), 0);
	/* unsubscribe, then back: by an admin, and by the reader */
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, who, "cli", &err), 0);
	assert_int_equal(signup(f, &f->news, "once@example.org", SIGNUP_ADMIN, 0, 0), who);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, who, "cli", &err), 0);
	assert_int_equal(subscription_confirm(f->db, f->news.id, who, "web", &err), 0);
	assert_int_equal(queued_for(f, who), 1);
	/* a new welcome file: not again for them, but for someone new */
	assert_int_equal(welcome_set(f->db, &f->cfg, "news", f->md2, NULL, NULL, &neww, &err), 0);
	assert_true(neww != f->news_w);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, who, "cli", &err), 0);
	assert_int_equal(subscription_confirm(f->db, f->news.id, who, "web", &err), 0);
	assert_int_equal(queued_for(f, who), 1);
	assert_int_equal(queued(f, neww), 0);
	fresh = signup(f, &f->news, "fresh@example.org", SIGNUP_WEB, 0, 0);
	assert_int_equal(queued(f, neww), 1);
	assert_int_equal(queued_for(f, fresh), 1);
	/* the same person on another list is another welcome */
	assert_int_equal(signup(f, &f->club, "once@example.org", SIGNUP_ADMIN, 0, 0), who);
	assert_int_equal(queued_for(f, who), 2);
	/* and the key itself refuses a second row */
	assert_int_not_equal(sqlite3_exec(f->db, "INSERT INTO welcomes (list_id, subscriber_id, "
	                                  "created_at) SELECT list_id, subscriber_id, 0 FROM "
	                                  "welcomes LIMIT 1", NULL, NULL, NULL), SQLITE_OK);
}

/* (4) */
static void
test_welcome_enqueue_needs_a_live_welcome(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long a, b, c;

	a = signup(f, &f->plain, "a@example.org", SIGNUP_ADMIN, 0, 0);
	assert_int_equal(queued_for(f, a), 0);
	assert_int_equal(welcome_clear(f->db, "news", &err), 0);
	b = signup(f, &f->news, "b@example.org", SIGNUP_ADMIN, 0, 0);
	assert_int_equal(queued_for(f, b), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM welcomes WHERE subscriber_id = ?1", b), 0);
	assert_int_equal(issue_cancel(f->db, f->club_w, &err), 0);
	c = signup(f, &f->club, "c@example.org", SIGNUP_ADMIN, 0, 0);
	assert_int_equal(queued_for(f, c), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM welcomes WHERE subscriber_id = ?1", c), 0);
	/* promised nothing: a welcome set later greets them on a later confirmation */
	herr_clear(&err);
	assert_int_equal(welcome_clear(f->db, "nope", &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

/* (5) */
static void
test_welcome_not_for_those_confirmed_before(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long old, w;

	old = signup(f, &f->plain, "old@example.org", SIGNUP_ADMIN, 0, 0);
	assert_int_equal(welcome_set(f->db, &f->cfg, "plain", f->md, NULL, NULL, &w, &err), 0);
	assert_int_equal(queued(f, w), 0);
	/* still confirmed: confirming again is no new confirmation */
	assert_int_equal(subscription_confirm(f->db, f->plain.id, old, "web", &err), 0);
	assert_int_equal(signup(f, &f->plain, "old@example.org", SIGNUP_ADMIN, 0, 0), old);
	assert_int_equal(queued(f, w), 0);
}

/* issue.h (6), and what `herald run` and `herald serve` look for */
static void
test_welcome_reopens_and_is_due(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id, who;
	int finished;

	assert_int_equal(welcome_next_due(f->db, 0, db_now(), &id, &err), 0);
	assert_int_equal(id, 0);
	/* nothing to send: finished like any send */
	assert_int_equal(issue_finish(f->db, f->news_w, &finished, &err), 0);
	assert_true(finished);
	who = signup(f, &f->news, "due@example.org", SIGNUP_WEB, 0, 0);
	assert_int_equal(count(f, "SELECT status = 'sending' FROM issues WHERE id = ?1",
	                       f->news_w), 1);
	assert_int_equal(welcome_next_due(f->db, 0, db_now(), &id, &err), 0);
	assert_int_equal(id, f->news_w);
	assert_int_equal(issue_next_due(f->db, 0, db_now(), &id, &err), 0);
	assert_int_equal(id, f->news_w);
	/* a pending row keeps it from being finished (issue.h (2)) */
	assert_int_equal(issue_finish(f->db, f->news_w, &finished, &err), 0);
	assert_false(finished);
	/* sent, it is no longer due */
	assert_int_equal(db_run2(f->db, "UPDATE deliveries SET status = 'sent' WHERE "
	                         "issue_id = ?1 AND subscriber_id = ?2", f->news_w, who, NULL,
	                         "test", &err), 0);
	assert_int_equal(welcome_next_due(f->db, 0, db_now(), &id, &err), 0);
	assert_int_equal(id, 0);
	/* a paused welcome keeps its rows and is not due */
	assert_int_equal(issue_pause(f->db, f->news_w, &err), 0);
	signup(f, &f->news, "held@example.org", SIGNUP_WEB, 0, 0);
	assert_int_equal(queued(f, f->news_w), 2);
	assert_int_equal(welcome_next_due(f->db, 0, db_now(), &id, &err), 0);
	assert_int_equal(id, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_welcome_set_makes_a_sending_welcome_issue),
		T(test_welcome_set_refuses_other_audiences),
		T(test_welcome_enqueue_on_confirmation),
		T(test_welcome_enqueue_import_only_when_asked),
		T(test_welcome_enqueue_once_per_subscriber_and_list),
		T(test_welcome_enqueue_needs_a_live_welcome),
		T(test_welcome_not_for_those_confirmed_before),
		T(test_welcome_reopens_and_is_due),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
