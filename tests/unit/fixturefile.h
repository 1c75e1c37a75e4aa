/*
 * fixturefile.h - two helpers of the unit tests that make issues from
 * files and count rows (test_welcome.c, test_sequence.c): write a small
 * file into the test's directory, and read one number from the database.
 * Header-only, included after <cmocka.h> (the helpers fail the test).
 */
#ifndef HERALD_TEST_FIXTUREFILE_H
#define HERALD_TEST_FIXTUREFILE_H

#include <sqlite3.h>
#include <stdio.h>

/* Write `text` to DIR/NAME; the path goes to `out` (n bytes). */
static void
write_text(char *out, size_t n, const char *dir, const char *name, const char *text)
{
	FILE *fp;

	snprintf(out, n, "%s/%s", dir, name);
	fp = fopen(out, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The first column of the first row of `sql`, ?1 bound to `a`; -1 when
 * there is no row. */
static long long
query_number(sqlite3 *db, const char *sql, long long a)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

#endif
