/*
 * test_suggest.c - suggest.c: the edit distance and the choice of the
 * closest known word behind "did you mean ...?" messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "herald/suggest.h"

static void
test_suggest_distance_edits(void **state)
{
	(void)state;
	assert_int_equal(suggest_distance("starttls", "starttls"), 0);
	assert_int_equal(suggest_distance("startls", "starttls"), 1);    /* deletion */
	assert_int_equal(suggest_distance("starttsl", "starttls"), 1);   /* swap */
	assert_int_equal(suggest_distance("organization", "organisation"), 1);
	assert_int_equal(suggest_distance("", "abc"), 3);
	assert_int_equal(suggest_distance("kitten", "sitting"), 3);
}

static void
test_suggest_distance_folds_case_and_separators(void **state)
{
	(void)state;
	assert_int_equal(suggest_distance("E-mail", "e_mail"), 0);
	assert_int_equal(suggest_distance("Email Address", "email_address"), 0);
	assert_int_equal(suggest_distance("E-mail", "email"), 1);
}

static void
test_suggest_closest_picks_nearest(void **state)
{
	static const char *const keys[] = { "url", "starttls", "username", "password_env",
	                                    "password_file", "connections" };

	(void)state;
	assert_string_equal(suggest_closest("startls", keys, 6), "starttls");
	assert_string_equal(suggest_closest("usrname", keys, 6), "username");
	assert_string_equal(suggest_closest("conections", keys, 6), "connections");
	assert_null(suggest_closest("relay", keys, 6));
	/* a one-letter word suggests nothing: every word is one edit away */
	assert_null(suggest_closest("x", keys, 6));
}

static void
test_suggest_closest_ties_go_first(void **state)
{
	static const char *const cols[] = { "mail", "email", "e-mail" };

	(void)state;
	assert_string_equal(suggest_closest("mails", cols, 3), "mail");
	assert_string_equal(suggest_closest("E_mail", cols, 3), "e-mail");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suggest_distance_edits),
		cmocka_unit_test(test_suggest_distance_folds_case_and_separators),
		cmocka_unit_test(test_suggest_closest_picks_nearest),
		cmocka_unit_test(test_suggest_closest_ties_go_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
