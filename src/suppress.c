/*
 * suppress.c - the suppression table (see suppress.h).
 *
 * Patterns are normalised with the address module so that what an admin
 * types and what a bounce names compare equal: "Grace@Example.NET" and
 * "grace@example.net" are one pattern, "@bücher.example" is stored as
 * "@xn--bcher-kva.example".
 */
#include <stdio.h>
#include <string.h>

#include "herald/address.h"
#include "herald/db.h"
#include "herald/suppress.h"

int
suppress_pattern(const char *in, char out[SUPPRESS_PATTERN_MAX], struct herr *err)
{
	struct address a;
	struct herr why;
	char probe[SUPPRESS_PATTERN_MAX + 8];

	if (in[0] == '@') {
		/* A domain: checked as the domain of a one-letter address. */
		if (strlen(in) >= SUPPRESS_PATTERN_MAX)
			return herr_set(err, EX_DATAERR, NULL, "domain '%.64s...' is too long", in);
		snprintf(probe, sizeof probe, "x%s", in);
		if (address_parse(probe, &a, &why) < 0)
			return herr_set(err, EX_DATAERR, NULL, "'%s' is not a domain: %s", in, why.msg);
		snprintf(out, SUPPRESS_PATTERN_MAX, "@%s", a.domain);
		return 0;
	}
	if (address_parse(in, &a, err) < 0)
		return -1;
	snprintf(out, SUPPRESS_PATTERN_MAX, "%s", a.key);
	return 0;
}

static int
step_once(sqlite3 *db, sqlite3_stmt *st, const char *what, struct herr *err)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, what);
	return 0;
}

int
suppress_add(sqlite3 *db, const char *in, const char *reason, const char *note,
             int *added, struct herr *err)
{
	char pattern[SUPPRESS_PATTERN_MAX];
	sqlite3_stmt *st;

	*added = 0;
	if (suppress_pattern(in, pattern, err) < 0)
		return -1;
	if (db_prepare(db, &st,
	               "INSERT INTO suppressions (pattern, reason, note, created_at) "
	               "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, reason ? reason : "manual", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, note ? note : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, db_now());
	if (step_once(db, st, "add suppression", err) < 0)
		return -1;
	*added = sqlite3_changes(db) > 0;
	return 0;
}

int
suppress_remove(sqlite3 *db, const char *in, int *removed, struct herr *err)
{
	char pattern[SUPPRESS_PATTERN_MAX];
	sqlite3_stmt *st;

	*removed = 0;
	if (suppress_pattern(in, pattern, err) < 0)
		return -1;
	if (db_prepare(db, &st, "DELETE FROM suppressions WHERE pattern = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
	if (step_once(db, st, "remove suppression", err) < 0)
		return -1;
	*removed = sqlite3_changes(db) > 0;
	return 0;
}

int
suppress_check(sqlite3 *db, const char *key, char hit[SUPPRESS_PATTERN_MAX], struct herr *err)
{
	sqlite3_stmt *st;
	const char *at = strrchr(key, '@');
	int rc;

	if (db_prepare(db, &st,
	               "SELECT pattern FROM suppressions WHERE pattern IN (?1, ?2) "
	               "ORDER BY length(pattern) DESC LIMIT 1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, at ? at : key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && hit)
		snprintf(hit, SUPPRESS_PATTERN_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return db_error(db, err, "check suppressions");
	return 0;
}

int
suppress_each(sqlite3 *db, int (*fn)(void *ctx, const struct suppression *s), void *ctx,
              struct herr *err)
{
	sqlite3_stmt *st;
	struct suppression s;
	int rc, stop = 0;

	if (db_prepare(db, &st,
	               "SELECT pattern, reason, note, created_at FROM suppressions "
	               "ORDER BY pattern", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		s.pattern = (const char *)sqlite3_column_text(st, 0);
		s.reason = (const char *)sqlite3_column_text(st, 1);
		s.note = (const char *)sqlite3_column_text(st, 2);
		s.created_at = sqlite3_column_int64(st, 3);
		if ((stop = fn(ctx, &s)) != 0)
			break;
	}
	sqlite3_finalize(st);
	if (stop)
		return stop;
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list suppressions");
	return 0;
}
