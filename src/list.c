/*
 * list.c - the lists table (see list.h).
 */
#include "herald/list.h"

#include <stdio.h>
#include <string.h>

#include "herald/db.h"
#include "herald/utf8.h"

int
list_name_check(const char *name, struct herr *err)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > 64)
		return herr_set(err, EX_DATAERR, NULL,
		                "invalid list name '%s': must be 1 to 64 characters", name);
	for (i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return herr_set(err, EX_DATAERR, NULL,
			                "invalid list name '%.80s': use only a-z, 0-9, '.', '_' and '-'",
			                name);
	}
	return 0;
}

/* A title or consent text goes into pages and mail headers' words:
 * UTF-8, no control character (CR/LF among them), not too long. */
static int
check_text(const char *what, const char *text, size_t max, struct herr *err)
{
	const char *p;
	size_t len;

	if (!text)
		return 0;
	for (p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return herr_set(err, EX_DATAERR, NULL, "list %s contains a control character",
			                what);
	len = strlen(text);
	if (utf8_invalid_at((const unsigned char *)text, len) != len)
		return herr_set(err, EX_DATAERR, NULL, "list %s is not valid UTF-8", what);
	if (len > max)
		return herr_set(err, EX_DATAERR, NULL, "list %s is %zu bytes; at most %zu", what,
		                len, max);
	return 0;
}

static int
check_settings(const struct list_settings *s, struct herr *err)
{
	return check_text("title", s->title, sizeof ((struct list *)0)->title - 1, err) < 0 ||
	       check_text("consent text", s->consent_text, LIST_CONSENT_TEXT_MAX, err) < 0
	       ? -1 : 0;
}

const char *
list_consent_shown(const struct list *l)
{
	return l->consent_text[0] ? l->consent_text : l->title[0] ? l->title : l->name;
}

int
list_create(sqlite3 *db, const char *name, const char *title, int double_opt_in,
            int public, long long *id_out, struct herr *err)
{
	struct list_settings s = { title, double_opt_in != 0, public != 0, 0, NULL };

	return list_create_with(db, name, &s, id_out, err);
}

int
list_create_with(sqlite3 *db, const char *name, const struct list_settings *s,
                 long long *id_out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (list_name_check(name, err) < 0 || check_settings(s, err) < 0)
		return -1;
	if (db_prepare(db, &st,
	               "INSERT INTO lists (name, title, double_opt_in, public, signup, created_at, "
	               "consent_text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->title ? s->title : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, s->double_opt_in > 0);
	sqlite3_bind_int(st, 4, s->public > 0);
	sqlite3_bind_int(st, 5, s->signup > 0);
	sqlite3_bind_int64(st, 6, db_now());
	sqlite3_bind_text(st, 7, s->consent_text ? s->consent_text : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return herr_set(err, EX_DATAERR, NULL, "a list named '%s' already exists", name);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "create list");
	if (id_out)
		*id_out = sqlite3_last_insert_rowid(db);
	return 0;
}

int
list_set(sqlite3 *db, const char *name, const struct list_settings *s, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (check_settings(s, err) < 0)
		return -1;
	if (db_prepare(db, &st,
	               "UPDATE lists SET title = coalesce(?2, title), "
	               "double_opt_in = coalesce(?3, double_opt_in), public = coalesce(?4, public), "
	               "signup = coalesce(?5, signup), consent_text = coalesce(?6, consent_text) "
	               "WHERE name = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (s->title)
		sqlite3_bind_text(st, 2, s->title, -1, SQLITE_STATIC);
	if (s->double_opt_in >= 0)
		sqlite3_bind_int(st, 3, s->double_opt_in != 0);
	if (s->public >= 0)
		sqlite3_bind_int(st, 4, s->public != 0);
	if (s->signup >= 0)
		sqlite3_bind_int(st, 5, s->signup != 0);
	if (s->consent_text)
		sqlite3_bind_text(st, 6, s->consent_text, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "change list");
	if (!sqlite3_changes(db))
		return herr_set(err, EX_NOINPUT, NULL, "no list named '%s'", name);
	return 0;
}

/* The counts read every subscription of the list: list_get() and
 * list_get_by_id(), which the send path, the web sign-up and the API call
 * per request, leave them 0; list_each() and list_get_counted() fill them. */
#define LIST_COLUMNS_COUNTED \
	"SELECT l.id, l.name, l.title, l.double_opt_in, l.public, l.created_at, " \
	"(SELECT count(*) FROM subscriptions s WHERE s.list_id = l.id AND s.status = 'confirmed'), " \
	"(SELECT count(*) FROM subscriptions s WHERE s.list_id = l.id AND s.status = 'unconfirmed'), " \
	"(SELECT count(*) FROM subscriptions s WHERE s.list_id = l.id AND s.status = 'unsubscribed'), " \
	"(SELECT count(*) FROM issue_lists il WHERE il.list_id = l.id), l.signup, l.consent_text " \
	"FROM lists l "
#define LIST_COLUMNS \
	"SELECT l.id, l.name, l.title, l.double_opt_in, l.public, l.created_at, 0, 0, 0, 0, " \
	"l.signup, l.consent_text FROM lists l "

static void
row_to_list(sqlite3_stmt *st, struct list *l)
{
	memset(l, 0, sizeof *l);
	l->id = sqlite3_column_int64(st, 0);
	snprintf(l->name, sizeof l->name, "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(l->title, sizeof l->title, "%s", (const char *)sqlite3_column_text(st, 2));
	l->double_opt_in = sqlite3_column_int(st, 3);
	l->public = sqlite3_column_int(st, 4);
	l->created_at = sqlite3_column_int64(st, 5);
	l->n_confirmed = sqlite3_column_int64(st, 6);
	l->n_unconfirmed = sqlite3_column_int64(st, 7);
	l->n_unsubscribed = sqlite3_column_int64(st, 8);
	l->n_issues = sqlite3_column_int64(st, 9);
	l->signup = sqlite3_column_int(st, 10);
	snprintf(l->consent_text, sizeof l->consent_text, "%s",
	         (const char *)sqlite3_column_text(st, 11));
}

static int
get_one(sqlite3 *db, const char *sql, const char *name, long long id, struct list *out,
        struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, sql, err) < 0)
		return -1;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_to_list(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		if (name)
			return herr_set(err, EX_NOINPUT, NULL, "no list named '%s'", name);
		return herr_set(err, EX_NOINPUT, NULL, "no list with id %lld", id);
	}
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read list");
	return 0;
}

int
list_get(sqlite3 *db, const char *name, struct list *out, struct herr *err)
{
	return get_one(db, LIST_COLUMNS "WHERE l.name = ?1", name, 0, out, err);
}

int
list_get_by_id(sqlite3 *db, long long id, struct list *out, struct herr *err)
{
	return get_one(db, LIST_COLUMNS "WHERE l.id = ?1", NULL, id, out, err);
}

int
list_get_counted(sqlite3 *db, const char *name, struct list *out, struct herr *err)
{
	return get_one(db, LIST_COLUMNS_COUNTED "WHERE l.name = ?1", name, 0, out, err);
}

int
list_each(sqlite3 *db, int (*fn)(void *ctx, const struct list *l), void *ctx,
          struct herr *err)
{
	sqlite3_stmt *st;
	struct list l;
	int rc;

	if (db_prepare(db, &st, LIST_COLUMNS_COUNTED "ORDER BY l.name", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_list(st, &l);
		if (fn(ctx, &l) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list lists");
	return 0;
}

int
list_remove(sqlite3 *db, const char *name, int force, struct herr *err)
{
	struct list l;
	sqlite3_stmt *st;
	int rc;

	if (list_get_counted(db, name, &l, err) < 0)
		return -1;
	if (l.n_issues && !force)
		return herr_set(err, EX_DATAERR, NULL,
		                "list '%s' has %lld issue(s); remove them first or use --force",
		                name, l.n_issues);
	if (db_begin(db, err) < 0)
		return -1;
	/* every issue that goes to it, first list or not (issue_lists) */
	if (db_prepare(db, &st, "DELETE FROM issues WHERE id IN (SELECT issue_id FROM "
	               "issue_lists WHERE list_id = ?1)", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, l.id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "remove issues of list");
		goto fail;
	}
	if (db_prepare(db, &st, "DELETE FROM lists WHERE id = ?1", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, l.id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "remove list");
		goto fail;
	}
	return db_commit(db, err);
fail:
	db_rollback(db);
	return -1;
}
