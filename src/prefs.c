/*
 * prefs.c - the preference centre's saves and the leaving survey (see
 * prefs.h for what a reader may change and rules (1)-(3)).
 *
 * Owns the leave_answers and leave_answer_lists tables
 * (sql/014_preferences.sql); every subscription and subscriber change goes
 * through subscriber.h.  Called by webprefs.c and websub.c (the pages),
 * report.c and cmd/list.c (the counts).
 */
#include "herald/prefs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/consent.h"
#include "herald/db.h"
#include "herald/list.h"
#include "herald/subscriber.h"
#include "herald/utf8.h"

static const struct {
	const char *name, *label;
} reasons[PREFS_N_REASONS] = {
	[PREFS_TOO_MANY]        = { "too_many", "Too many mails" },
	[PREFS_NOT_RELEVANT]    = { "not_relevant", "Not relevant to me" },
	[PREFS_NEVER_SIGNED_UP] = { "never_signed_up", "I never signed up" },
	[PREFS_OTHER]           = { "other", "Other" },
};

const char *
prefs_reason_name(enum prefs_reason r)
{
	return (unsigned)r < PREFS_N_REASONS ? reasons[r].name : "";
}

const char *
prefs_reason_label(enum prefs_reason r)
{
	return (unsigned)r < PREFS_N_REASONS ? reasons[r].label : "";
}

int
prefs_reason_parse(const char *s)
{
	int i;

	for (i = 0; s && i < PREFS_N_REASONS; i++)
		if (!strcmp(s, reasons[i].name))
			return i;
	return -1;
}

/* ---- the lists the page shows ---- */

int
prefs_lists(sqlite3 *db, long long subscriber_id, struct prefs_list **out, size_t *n,
            struct herr *err)
{
	struct prefs_list *v;
	struct subscriber s;
	sqlite3_stmt *st;
	const char *t;
	int rc;

	*out = NULL;
	*n = 0;
	/* a token whose subscriber was removed names nobody */
	if (subscriber_get_by_id(db, subscriber_id, &s, err) < 0)
		return -1;
	subscriber_clear(&s);
	if (!(v = calloc(PREFS_LISTS_MAX, sizeof *v)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (db_prepare(db, &st,
	               "SELECT l.id, l.name, CASE WHEN l.title <> '' THEN l.title ELSE l.name END, "
	               "ifnull(s.status, ''), l.double_opt_in, l.signup, l.consent_text FROM lists l "
	               "LEFT JOIN subscriptions s ON s.list_id = l.id AND s.subscriber_id = ?1 "
	               "WHERE s.status IS NOT NULL OR l.signup = 1 "
	               "ORDER BY 3, l.id LIMIT ?2", err) < 0) {
		free(v);
		return -1;
	}
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_int(st, 2, PREFS_LISTS_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < PREFS_LISTS_MAX) {
		struct prefs_list *p = &v[*n];

		p->id = sqlite3_column_int64(st, 0);
		t = (const char *)sqlite3_column_text(st, 1);
		snprintf(p->name, sizeof p->name, "%s", t ? t : "");
		t = (const char *)sqlite3_column_text(st, 2);
		snprintf(p->title, sizeof p->title, "%s", t ? t : "");
		t = (const char *)sqlite3_column_text(st, 3);
		snprintf(p->status, sizeof p->status, "%s", t ? t : "");
		p->double_opt_in = sqlite3_column_int(st, 4);
		p->signup = sqlite3_column_int(st, 5);
		t = (const char *)sqlite3_column_text(st, 6);
		snprintf(p->consent_text, sizeof p->consent_text, "%s", t ? t : "");
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		free(v);
		*n = 0;
		return db_error(db, err, "read the reader's lists");
	}
	*out = v;
	return 0;
}

/* ---- saving ---- */

static int
is_ticked(const struct prefs_change *c, long long id)
{
	size_t i;

	if (c->leave_all)
		return 0;
	for (i = 0; i < c->n_ticked; i++)
		if (c->ticked[i] == id)
			return 1;
	return 0;
}

/* A tick of `p` that mails the reader (subscriber.h rule 8). */
static int
tick_mails(const struct prefs_list *p)
{
	return (!p->status[0] && p->double_opt_in) || !strcmp(p->status, "unconfirmed") ||
	       !strcmp(p->status, "unsubscribed");
}

int
prefs_needs_mail(const struct prefs_list *lists, size_t n, const struct prefs_change *c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (is_ticked(c, lists[i].id) && strcmp(lists[i].status, "confirmed") &&
		    tick_mails(&lists[i]))
			return 1;
	return 0;
}

/* A sign-up of `a` to `p` inside the transaction of `w`; a mail it asks
 * for goes to out->mails. */
static int
signup(struct subscriber_writer *w, sqlite3 *db, const struct prefs_list *p,
       const struct address *a, const char *name, int new_address,
       const struct prefs_change *c, struct prefs_result *out, struct herr *err)
{
	static const struct consent_ctx bare = { .source = "preferences" };
	struct signup_result res;
	struct signup_req req;
	struct consent_ctx how;
	struct list l;

	if (list_get_by_id(db, p->id, &l, err) < 0)
		return -1;
	how = c->consent ? *c->consent : bare;
	how.text = list_consent_shown(&l);
	memset(&req, 0, sizeof req);
	req.consent = &how;
	req.addr = a;
	req.name = name && *name ? name : NULL;
	req.source = SIGNUP_WEB;
	req.unconfirmed = new_address;
	req.erased_key = c->erased_key;  /* subscriber.h rule (10) */
	if (subscriber_signup_in(w, &l, &req, &res, err) < 0)
		return -1;
	if (res.confirm_mail && out->n_mails < sizeof out->mails / sizeof out->mails[0]) {
		struct prefs_mail *m = &out->mails[out->n_mails++];

		m->subscriber_id = res.subscriber_id;
		m->list_id = p->id;
		m->confirm_id = res.confirm_id;
		m->new_address = new_address;
	} else if (!new_address && (res.res == SUBSCRIBE_ADDED || res.res == SUBSCRIBE_UPDATED))
		out->joined++;
	return 0;
}

int
prefs_save(sqlite3 *db, const struct prefs_list *lists, size_t n,
           const struct prefs_change *c, struct prefs_result *out, struct herr *err)
{
	struct subscriber_writer *w = NULL;
	struct subscriber me;
	struct address a;
	size_t i;
	int changed;

	memset(out, 0, sizeof *out);
	if (subscriber_get_by_id(db, c->subscriber_id, &me, err) < 0)
		return -1;
	if (address_parse(me.email, &a, err) < 0) {
		subscriber_clear(&me);
		return -1;
	}
	if (subscriber_writer_open(db, &w, err) < 0) {
		subscriber_clear(&me);
		return -1;
	}
	if (db_begin(db, err) < 0)
		goto fail;
	if (c->name && !c->leave_all) {
		if (subscriber_set_name_in(db, c->subscriber_id, c->name, &changed, err) < 0)
			goto fail;
		out->renamed = changed;
	}
	/* the reader's own consent to tracking, given or withdrawn here */
	if (c->tracking_consent >= 0 && !c->leave_all) {
		if (subscriber_set_tracking_consent(db, c->subscriber_id, c->tracking_consent,
		                                    &changed, err) < 0)
			goto fail;
		out->tracking_changed = changed;
	}
	for (i = 0; i < n; i++) {
		const struct prefs_list *p = &lists[i];
		int on = !strcmp(p->status, "confirmed") || !strcmp(p->status, "unconfirmed");

		if (on && !is_ticked(c, p->id)) {
			if (subscription_unsubscribe_in(db, p->id, c->subscriber_id, 0, "preferences",
			                                &changed, err) < 0)
				goto fail;
			out->left += (size_t)changed;
		} else if (is_ticked(c, p->id) && strcmp(p->status, "confirmed") &&
		           signup(w, db, p, &a, NULL, 0, c, out, err) < 0)
			goto fail;
	}
	/* a new address: its own sign-up to what the reader keeps, each
	 * waiting for the mail to that address (prefs.h) */
	if (c->new_addr && !c->leave_all && strcmp(c->new_addr->key, a.key))
		for (i = 0; i < n; i++)
			if (is_ticked(c, lists[i].id) &&
			    signup(w, db, &lists[i], c->new_addr, c->name ? c->name : me.name, 1,
			           c, out, err) < 0)
				goto fail;
	subscriber_writer_close(w);
	w = NULL;
	subscriber_clear(&me);
	return db_commit(db, err);
fail:
	db_rollback(db);
	subscriber_writer_close(w);
	subscriber_clear(&me);
	memset(out, 0, sizeof *out);
	return -1;
}

/* ---- the survey ---- */

/* `note` cleaned into `out` (PREFS_NOTE_MAX + 1 bytes): trimmed, control
 * characters as spaces.  -1 with EX_DATAERR when too long or not UTF-8. */
static int
clean_note(const char *note, char *out, struct herr *err)
{
	size_t len, i;
	unsigned char ch;

	while (*note == ' ')
		note++;
	len = strlen(note);
	while (len && note[len - 1] == ' ')
		len--;
	if (len > PREFS_NOTE_MAX)
		return herr_set(err, EX_DATAERR, NULL, "the text is longer than %d bytes",
		                PREFS_NOTE_MAX);
	if (utf8_invalid_at((const unsigned char *)note, len) != len)
		return herr_set(err, EX_DATAERR, NULL, "the text is not valid UTF-8");
	for (i = 0; i < len; i++) {
		ch = (unsigned char)note[i];
		out[i] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
		/* C1 controls, U+0080..U+009F (C2 80..C2 9F) */
		if (ch == 0xc2 && i + 1 < len && (unsigned char)note[i + 1] <= 0x9f &&
		    (unsigned char)note[i + 1] >= 0x80) {
			out[i] = ' ';
			out[++i] = ' ';
		}
	}
	out[len] = '\0';
	return 0;
}

int
prefs_survey_record(sqlite3 *db, long long subscriber_id, long long issue_id,
                    enum prefs_reason reason, const char *note, size_t *n_lists,
                    struct herr *err)
{
	char text[PREFS_NOTE_MAX + 1] = "";
	sqlite3_stmt *st = NULL;
	long long now = db_now(), answer;

	*n_lists = 0;
	if ((unsigned)reason >= PREFS_N_REASONS)
		return herr_set(err, EX_DATAERR, NULL, "no such reason");
	if (reason == PREFS_OTHER && note && clean_note(note, text, err) < 0)
		return -1;
	if (db_begin(db, err) < 0)
		return -1;
	/* rule (3): a second answer about the same leaving replaces the first */
	if (db_prepare(db, &st,
	               "DELETE FROM leave_answers WHERE subscriber_id = ?1 AND id IN "
	               "(SELECT a.answer_id FROM leave_answer_lists a JOIN subscriptions s ON "
	               "s.list_id = a.list_id AND s.subscriber_id = ?1 AND "
	               "s.unsubscribed_at = a.left_at WHERE s.status = 'unsubscribed' AND "
	               "s.unsubscribed_at >= ?2)", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, subscriber_id);
	sqlite3_bind_int64(st, 2, now - PREFS_SURVEY_SPAN);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db_fail;
	sqlite3_finalize(st);
	if (db_prepare(db, &st, "INSERT INTO leave_answers (subscriber_id, issue_id, reason, note, "
	               "answered_at) VALUES (?1, ?2, ?3, ?4, ?5)", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, subscriber_id);
	if (issue_id > 0)
		sqlite3_bind_int64(st, 2, issue_id);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_text(st, 3, prefs_reason_name(reason), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db_fail;
	sqlite3_finalize(st);
	answer = sqlite3_last_insert_rowid(db);
	if (db_prepare(db, &st, "INSERT INTO leave_answer_lists (answer_id, list_id, left_at) "
	               "SELECT ?1, list_id, unsubscribed_at FROM subscriptions WHERE "
	               "subscriber_id = ?2 AND status = 'unsubscribed' AND unsubscribed_at >= ?3",
	               err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, answer);
	sqlite3_bind_int64(st, 2, subscriber_id);
	sqlite3_bind_int64(st, 3, now - PREFS_SURVEY_SPAN);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto db_fail;
	sqlite3_finalize(st);
	st = NULL;
	*n_lists = (size_t)sqlite3_changes(db);
	if (!*n_lists) {
		db_rollback(db);
		return herr_set(err, EX_NOINPUT, NULL, "no list left lately to answer about");
	}
	return db_commit(db, err);
db_fail:
	db_error(db, err, "store the answer");
fail:
	sqlite3_finalize(st);
	db_rollback(db);
	*n_lists = 0;
	return -1;
}

static int
counts(sqlite3 *db, const char *sql, long long id, long long c[PREFS_N_REASONS],
       struct herr *err)
{
	sqlite3_stmt *st;
	int rc, r;

	memset(c, 0, PREFS_N_REASONS * sizeof c[0]);
	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = prefs_reason_parse((const char *)sqlite3_column_text(st, 0))) >= 0)
			c[r] = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "count the reasons for leaving");
	return 0;
}

int
prefs_survey_counts_issue(sqlite3 *db, long long issue_id, long long c[PREFS_N_REASONS],
                          struct herr *err)
{
	return counts(db, "SELECT reason, count(*) FROM leave_answers WHERE issue_id = ?1 "
	              "GROUP BY reason", issue_id, c, err);
}

int
prefs_survey_counts_list(sqlite3 *db, long long list_id, long long c[PREFS_N_REASONS],
                         struct herr *err)
{
	return counts(db, "SELECT a.reason, count(*) FROM leave_answer_lists l JOIN "
	              "leave_answers a ON a.id = l.answer_id WHERE l.list_id = ?1 "
	              "GROUP BY a.reason", list_id, c, err);
}
