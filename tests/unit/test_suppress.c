/*
 * test_suppress.c - the suppression table (src/suppress.c): pattern
 * normalisation, add/remove/check, and that the SQL fragment the ledger
 * and the subscriber writer use agrees with suppress_check().
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

#include "herald/db.h"
#include "herald/suppress.h"

struct fixture {
	char     path[TEMPDB_PATH_MAX];
	sqlite3 *db;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	if (tempdb_open(f->path, "suppress", &f->db) < 0)
		return -1;
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
test_suppress_pattern_forms(void **state)
{
	char out[SUPPRESS_PATTERN_MAX];
	struct herr err;

	(void)state;
	assert_int_equal(suppress_pattern("Grace@Example.NET", out, &err), 0);
	assert_string_equal(out, "grace@example.net");
	assert_int_equal(suppress_pattern("@Lists.Example.net", out, &err), 0);
	assert_string_equal(out, "@lists.example.net");
	/* IDNA 2008 / UTS #46, as address.c does it: ß is kept (xn--strae-oqa) */
	assert_int_equal(suppress_pattern("@stra\xc3\x9f" "e.example", out, &err), 0);
	assert_string_equal(out, "@xn--strae-oqa.example");
	assert_int_equal(suppress_pattern("not an address", out, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(suppress_pattern("@bad..domain", out, &err), -1);
	assert_non_null(strstr(err.msg, "is not a domain"));
	assert_int_equal(suppress_pattern("@", out, &err), -1);
}

static int
count_rows(void *ctx, const struct suppression *s)
{
	(void)s;
	(*(int *)ctx)++;
	return 0;
}

static void
test_suppress_add_check_remove(void **state)
{
	struct fixture *f = *state;
	char hit[SUPPRESS_PATTERN_MAX];
	struct herr err;
	int added, removed, n = 0;

	assert_int_equal(suppress_add(f->db, "A@Example.org", "manual", "", &added, &err), 0);
	assert_int_equal(added, 1);
	assert_int_equal(suppress_add(f->db, "a@example.org", "complaint", "", &added, &err), 0);
	assert_int_equal(added, 0); /* already there, first reason kept */
	assert_int_equal(suppress_add(f->db, "@spam.example", "manual", "x", &added, &err), 0);

	assert_int_equal(suppress_check(f->db, "a@example.org", hit, &err), 1);
	assert_string_equal(hit, "a@example.org");
	assert_int_equal(suppress_check(f->db, "anyone@spam.example", hit, &err), 1);
	assert_string_equal(hit, "@spam.example");
	/* a domain does not cover its subdomains, nor a look-alike suffix */
	assert_int_equal(suppress_check(f->db, "x@sub.spam.example", hit, &err), 0);
	assert_int_equal(suppress_check(f->db, "x@notspam.example", hit, &err), 0);
	assert_int_equal(suppress_check(f->db, "b@example.org", hit, &err), 0);

	assert_int_equal(suppress_each(f->db, count_rows, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(suppress_remove(f->db, "@SPAM.example", &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(suppress_remove(f->db, "@spam.example", &removed, &err), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(suppress_check(f->db, "anyone@spam.example", hit, &err), 0);
}

/* The fragment in ledger.c's and subscriber.c's SQL says what
 * suppress_check() says, for the same keys. */
static void
test_suppress_sql_fragment_agrees(void **state)
{
	struct fixture *f = *state;
	static const char *keys[] = { "a@example.org", "b@example.org", "x@spam.example",
	                              "x@sub.spam.example", "a@example.org.evil" };
	sqlite3_stmt *st;
	struct herr err;
	size_t i;
	int added;

	assert_int_equal(suppress_add(f->db, "a@example.org", NULL, NULL, &added, &err), 0);
	assert_int_equal(suppress_add(f->db, "@spam.example", NULL, NULL, &added, &err), 0);
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT " SUPPRESS_SQL_NOT("?1"), -1, &st, NULL),
	                 SQLITE_OK);
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		sqlite3_bind_text(st, 1, keys[i], -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0),
		                 !suppress_check(f->db, keys[i], NULL, &err));
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suppress_pattern_forms),
		cmocka_unit_test_setup_teardown(test_suppress_add_check_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_suppress_sql_fragment_agrees, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
