/*
 * test_webprefs.c - the preference centre's nonce (webprefs.h) and its core
 * rules (prefs.h): a nonce works for its token in its window and the next,
 * never for another token, after that or with a changed character; a save
 * changes exactly what was ticked (rule 1 for lists not shown), "leave
 * all" ends everything (rule 2), a new address waits unconfirmed with a
 * confirmation, and the survey stores only about a recent leaving, once
 * (rule 3), counted per issue and per list.  The page escapes what it shows.
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
#include "herald/db.h"
#include "herald/list.h"
#include "herald/prefs.h"
#include "herald/subscriber.h"
#include "herald/webpages.h"
#include "herald/webprefs.h"

static const struct token_key key = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
                                        30, 31, 32 } };
static const char tok[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQV";
#define T0 1800000000LL /* a window's start: 1800000000 / 3600 = 500000 */

static void
test_webprefs_nonce_make_check(void **state)
{
	char n[WEBPREFS_NONCE_MAX], n2[WEBPREFS_NONCE_MAX];

	(void)state;
	assert_int_equal(webprefs_nonce_make(&key, tok, strlen(tok), T0, n), 0);
	assert_int_equal(strlen(n), WEBPREFS_NONCE_LEN);
	/* the same in the whole window: a page reloaded gives the same form */
	assert_int_equal(webprefs_nonce_make(&key, tok, strlen(tok), T0 + 3599, n2), 0);
	assert_string_equal(n, n2);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), n, T0), 0);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), n, T0 + 3599), 0);
	/* the next window still takes it: at least one window of life */
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), n, T0 + 3600), 0);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), n, T0 + 7199), 0);
	/* expired after that, and never from the future */
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), n, T0 + 7200), -1);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), n, T0 - 1), -1);
}

static void
test_webprefs_nonce_refuses_others(void **state)
{
	struct token_key other = key;
	char n[WEBPREFS_NONCE_MAX], bad[WEBPREFS_NONCE_MAX + 1];
	size_t i;

	(void)state;
	assert_int_equal(webprefs_nonce_make(&key, tok, strlen(tok), T0, n), 0);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), NULL, T0), -1);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), "", T0), -1);
	/* another token (one character less, one changed) */
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok) - 1, n, T0), -1);
	assert_int_equal(webprefs_nonce_check(&key, "BQIDBAUGBwgJCgsMDQ4PEBESExQV", strlen(tok),
	                                      n, T0), -1);
	/* another secret */
	other.secret[0] ^= 1;
	assert_int_equal(webprefs_nonce_check(&other, tok, strlen(tok), n, T0), -1);
	/* every character changed, one at a time; and longer, shorter */
	for (i = 0; i < WEBPREFS_NONCE_LEN; i++) {
		memcpy(bad, n, sizeof n);
		bad[i] = bad[i] == '0' ? '1' : '0';
		assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), bad, T0), -1);
	}
	snprintf(bad, sizeof bad, "%s0", n);
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), bad, T0), -1);
	bad[WEBPREFS_NONCE_LEN - 1] = '\0';
	assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), bad, T0), -1);
	/* upper case is another string */
	for (i = 0; i < WEBPREFS_NONCE_LEN; i++)
		bad[i] = (char)(n[i] >= 'a' && n[i] <= 'f' ? n[i] - 32 : n[i]);
	bad[WEBPREFS_NONCE_LEN] = '\0';
	if (strcmp(bad, n))
		assert_int_equal(webprefs_nonce_check(&key, tok, strlen(tok), bad, T0), -1);
}

/* ---- the core rules ---- */

struct fixture {
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	struct list news, digest, hidden;
	long long reader;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct list_settings news = { "The News", 0, 0, 1, NULL }, digest = { "The Digest", 1, 0, 1, NULL },
	                     hidden = { "Hidden", 0, 0, 0, NULL };
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;
	long long id;

	if (!f || tempdb_open(f->path, "webprefs", &f->db) < 0)
		return -1;
	if (list_create_with(f->db, "news", &news, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0 ||
	    list_create_with(f->db, "digest", &digest, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->digest, &err) < 0 ||
	    list_create_with(f->db, "hidden", &hidden, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->hidden, &err) < 0)
		return -1;
	memset(&r, 0, sizeof r);
	if (address_parse("Reader@Example.org", &a, &err) < 0)
		return -1;
	r.addr = &a;
	r.name = "Reader";
	r.source = SIGNUP_ADMIN;
	if (subscriber_signup(f->db, &f->news, &r, &res, &err) < 0)
		return -1;
	f->reader = res.subscriber_id;
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

static const char *
status(struct fixture *f, long long list, long long sub)
{
	static char s[16];
	struct herr err;

	if (subscription_status(f->db, list, sub, s, &err) < 0)
		return "";
	return s;
}

static void
test_prefs_lists_and_save(void **state)
{
	struct fixture *f = *state;
	struct prefs_list *lists;
	struct prefs_result res;
	struct prefs_change c;
	struct subscriber s;
	long long ticked[2];
	struct herr err;
	size_t n, i;

	herr_clear(&err);
	assert_int_equal(prefs_lists(f->db, f->reader, &lists, &n, &err), 0);
	/* their list and the one taking sign-ups; not the hidden one */
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		assert_int_not_equal(lists[i].id, f->hidden.id);
	/* tick the digest (double opt-in: a mail, unconfirmed), keep the news,
	 * try the hidden list (rule 1: not shown, not changed), rename */
	memset(&c, 0, sizeof c);
	c.tracking_consent = -1;
	c.subscriber_id = f->reader;
	ticked[0] = f->digest.id;
	ticked[1] = f->hidden.id;
	c.ticked = ticked;
	c.n_ticked = 2;
	c.name = "Réader Two";
	assert_true(prefs_needs_mail(lists, n, &c));
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), 0);
	assert_int_equal(res.renamed, 1);
	assert_int_equal(res.left, 1); /* news unticked */
	assert_int_equal(res.n_mails, 1);
	assert_int_equal(res.mails[0].list_id, f->digest.id);
	assert_string_equal(status(f, f->news.id, f->reader), "unsubscribed");
	assert_string_equal(status(f, f->digest.id, f->reader), "unconfirmed");
	assert_string_equal(status(f, f->hidden.id, f->reader), "");
	assert_int_equal(subscriber_get_by_id(f->db, f->reader, &s, &err), 0);
	assert_string_equal(s.name, "Réader Two");
	subscriber_clear(&s);
	free(lists);

	/* a name breaking rule (3) changes nothing at all */
	assert_int_equal(prefs_lists(f->db, f->reader, &lists, &n, &err), 0);
	c.name = "Evil\r\nBcc: x@y";
	c.n_ticked = 0;
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(status(f, f->digest.id, f->reader), "unconfirmed");

	/* rule (2): leave everything */
	herr_clear(&err);
	memset(&c, 0, sizeof c);
	c.tracking_consent = -1;
	c.subscriber_id = f->reader;
	c.leave_all = 1;
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), 0);
	assert_int_equal(res.left, 1);
	assert_string_equal(status(f, f->digest.id, f->reader), "unsubscribed");
	free(lists);
}

static void
test_prefs_new_address_waits(void **state)
{
	struct fixture *f = *state;
	struct prefs_list *lists;
	struct prefs_result res;
	struct prefs_change c;
	struct subscriber s;
	struct address to;
	long long ticked[1];
	struct herr err;
	size_t n;

	herr_clear(&err);
	assert_int_equal(prefs_lists(f->db, f->reader, &lists, &n, &err), 0);
	assert_int_equal(address_parse("new@example.org", &to, &err), 0);
	memset(&c, 0, sizeof c);
	c.tracking_consent = -1;
	c.subscriber_id = f->reader;
	ticked[0] = f->news.id;
	c.ticked = ticked;
	c.n_ticked = 1;
	c.new_addr = &to;
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), 0);
	free(lists);
	/* news is single opt-in, yet the new address waits for its mail */
	assert_int_equal(res.n_mails, 1);
	assert_true(res.mails[0].new_address);
	assert_int_equal(subscriber_get(f->db, "new@example.org", &s, &err), 0);
	assert_string_equal(status(f, f->news.id, s.id), "unconfirmed");
	assert_int_equal(res.mails[0].subscriber_id, s.id);
	subscriber_clear(&s);
	/* and the reader's own address keeps its list */
	assert_string_equal(status(f, f->news.id, f->reader), "confirmed");
}

static void
test_prefs_survey(void **state)
{
	struct fixture *f = *state;
	long long c[PREFS_N_REASONS];
	struct herr err;
	size_t n;
	char note[PREFS_NOTE_MAX + 2];

	herr_clear(&err);
	assert_int_equal(prefs_reason_parse("too_many"), PREFS_TOO_MANY);
	assert_int_equal(prefs_reason_parse("other"), PREFS_OTHER);
	assert_int_equal(prefs_reason_parse("nope"), -1);
	assert_int_equal(prefs_reason_parse(NULL), -1);
	/* rule (3): nothing left, nothing stored */
	assert_int_equal(prefs_survey_record(f->db, f->reader, 0, PREFS_TOO_MANY, NULL, &n, &err),
	                 -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(subscription_unsubscribe(f->db, f->news.id, f->reader, "web", &err), 0);
	assert_int_equal(prefs_survey_record(f->db, f->reader, 0, PREFS_TOO_MANY, NULL, &n, &err),
	                 0);
	assert_int_equal(n, 1);
	/* a second answer replaces the first */
	assert_int_equal(prefs_survey_record(f->db, f->reader, 0, PREFS_OTHER, "no\ttime", &n,
	                                     &err), 0);
	assert_int_equal(prefs_survey_counts_list(f->db, f->news.id, c, &err), 0);
	assert_int_equal(c[PREFS_TOO_MANY], 0);
	assert_int_equal(c[PREFS_OTHER], 1);
	/* too long a note: refused, the answer stays */
	memset(note, 'x', sizeof note - 1);
	note[sizeof note - 1] = '\0';
	assert_int_equal(prefs_survey_record(f->db, f->reader, 0, PREFS_OTHER, note, &n, &err),
	                 -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(prefs_survey_counts_list(f->db, f->news.id, c, &err), 0);
	assert_int_equal(c[PREFS_OTHER], 1);
	/* too late: PREFS_SURVEY_SPAN after leaving */
	db_set_now(db_now() + PREFS_SURVEY_SPAN + 5);
	assert_int_equal(prefs_survey_record(f->db, f->reader, 0, PREFS_NOT_RELEVANT, NULL, &n,
	                                     &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(prefs_survey_counts_issue(f->db, 1, c, &err), 0);
	assert_int_equal(c[PREFS_OTHER], 0);
}

/* The sign-up form: every text escaped, the checkbox only when asked. */
static void
test_webpage_signup_escapes(void **state)
{
	struct webpage_signup f = { "news", "<i>News</i>", "I agree \"<b>\" & more", "../subscribe",
	                            0 };
	struct buf b = BUF_INIT(1u << 12);

	(void)state;
	assert_int_equal(webpage_signup(&b, "en", &f), 0);
	assert_non_null(strstr(b.data, "<h1>Subscribe to &lt;i&gt;News&lt;/i&gt;</h1>"));
	assert_non_null(strstr(b.data, "I agree &quot;&lt;b&gt;&quot; &amp; more"));
	assert_non_null(strstr(b.data, "action=\"../subscribe\""));
	assert_non_null(strstr(b.data, "name=\"list\" value=\"news\""));
	assert_null(strstr(b.data, "<b>"));
	assert_null(strstr(b.data, "tracking_consent"));
	buf_free(&b);
	f.tracking_shown = 1;
	f.consent_text = "";
	assert_int_equal(webpage_signup_form(&b, &f), 0);
	assert_non_null(strstr(b.data, "name=\"tracking_consent\""));
	assert_null(strstr(b.data, "class=\"small consent\""));
	assert_null(strstr(b.data, "<html"));
	buf_free(&b);
}

static void
test_webpage_preferences_escapes(void **state)
{
	struct webpage_pref_list l[2] = { { 3, "<b>News</b>", "I agree <to> it", 1, 0 },
	                                  { 9, "A & B", NULL, 1, 1 } };
	struct webpage_prefs p = { "a\"@example.org", "<Tom>", "TOK", "N0NCE", l, 2, NULL, 1, 0, 0 };
	struct buf b = BUF_INIT(1u << 17);

	(void)state;
	assert_int_equal(webpage_preferences(&b, "en", &p), 0);
	assert_non_null(strstr(b.data, "value=\"3\" checked> &lt;b&gt;News&lt;/b&gt;"));
	assert_non_null(strstr(b.data, "A &amp; B <span class=\"small\">(waiting"));
	/* a list's consent text under its title, escaped */
	assert_non_null(strstr(b.data, "News&lt;/b&gt;<br><span class=\"small\">I agree &lt;to&gt; "
	                       "it</span></label>"));
	assert_non_null(strstr(b.data, "value=\"&lt;Tom&gt;\""));
	assert_non_null(strstr(b.data, "a&quot;@example.org"));
	assert_null(strstr(b.data, "<b>"));
	assert_null(strstr(b.data, "<script"));
	assert_non_null(strstr(b.data, "action=\"TOK/export\""));
	assert_non_null(strstr(b.data, "action=\"TOK/forget\""));
	assert_non_null(strstr(b.data, "value=\"leave_all\">Unsubscribe from everything"));
	assert_non_null(strstr(b.data, "value=\"survey\""));
	/* every form carries the nonce: save, leave all, survey, export, forget */
	{
		const char *q = b.data;
		int k = 0;

		while ((q = strstr(q, "name=\"nonce\" value=\"N0NCE\"")))
			k++, q++;
		assert_int_equal(k, 5);
	}
	/* no tracking checkbox unless [tracking] mode = consent shows it */
	assert_null(strstr(b.data, "name=\"tracking_consent\""));
	buf_free(&b);
	p.tracking_shown = 1;
	p.tracking_consent = 1;
	assert_int_equal(webpage_preferences(&b, "en", &p), 0);
	assert_non_null(strstr(b.data, "name=\"tracking_consent\" value=\"yes\" checked>"));
	buf_free(&b);
	p.tracking_consent = 0;
	assert_int_equal(webpage_preferences(&b, "en", &p), 0);
	assert_non_null(strstr(b.data, "name=\"tracking_consent\" value=\"yes\">"));
	buf_free(&b);
}

/* The reader gives and withdraws consent to tracking on the page; -1
 * leaves it alone; "leave all" does not touch it. */
static void
test_prefs_save_tracking_consent(void **state)
{
	struct fixture *f = *state;
	struct prefs_list *lists;
	struct prefs_change c;
	struct prefs_result res;
	struct herr err;
	size_t n;
	int yes = -1;

	assert_int_equal(prefs_lists(f->db, f->reader, &lists, &n, &err), 0);
	memset(&c, 0, sizeof c);
	c.subscriber_id = f->reader;
	c.tracking_consent = 1;
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), 0);
	assert_int_equal(res.tracking_changed, 1);
	assert_int_equal(subscriber_tracking_consent(f->db, f->reader, &yes, &err), 0);
	assert_int_equal(yes, 1);
	c.tracking_consent = -1;
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), 0);
	assert_int_equal(res.tracking_changed, 0);
	assert_int_equal(subscriber_tracking_consent(f->db, f->reader, &yes, &err), 0);
	assert_int_equal(yes, 1);
	c.tracking_consent = 0;
	assert_int_equal(prefs_save(f->db, lists, n, &c, &res, &err), 0);
	assert_int_equal(subscriber_tracking_consent(f->db, f->reader, &yes, &err), 0);
	assert_int_equal(yes, 0);
	free(lists);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_webprefs_nonce_make_check),
		cmocka_unit_test(test_webprefs_nonce_refuses_others),
		cmocka_unit_test_setup_teardown(test_prefs_lists_and_save, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefs_new_address_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefs_survey, setup, teardown),
		cmocka_unit_test(test_webpage_preferences_escapes),
		cmocka_unit_test(test_webpage_signup_escapes),
		cmocka_unit_test_setup_teardown(test_prefs_save_tracking_consent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
