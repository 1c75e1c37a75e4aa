/*
 * test_smtp.c - what smtp.c writes after DATA (RFC 5321 §4.5.2).
 *
 * The transactions themselves are tested against a real server by
 * tests/integration/test_run_faults.py; the dot-stuffing is tested here,
 * because the MIME writer never makes a line that starts with a dot, so no
 * message herald builds would show a mistake in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/smtp.h"

/* The stuffed form of `in`, compared with `want`; also checks the bound. */
static void
stuffs_to(const char *in, const char *want)
{
	size_t len = strlen(in), bound = smtp_dot_stuffed_size(in, len), n;
	char *out = malloc(bound + 1);

	assert_non_null(out);
	memset(out, '#', bound + 1);
	n = smtp_dot_stuff(in, len, out);
	assert_true(n <= bound);
	assert_int_equal(out[bound], '#');   /* nothing past the bound */
	out[n] = '\0';
	assert_string_equal(out, want);
	free(out);
}

static void
test_dot_stuffing(void **state)
{
	(void)state;
	/* nothing to double: only the end of data added */
	stuffs_to("Subject: x\r\n\r\nhello\r\n", "Subject: x\r\n\r\nhello\r\n.\r\n");
	/* a dot starting the message, a line, a line of dots; not mid-line */
	stuffs_to(".a\r\nb.c\r\n.\r\n..\r\nd\r\n",
	          "..a\r\nb.c\r\n..\r\n...\r\nd\r\n.\r\n");
	/* a dot on the very last line, which has no CRLF: one is added */
	stuffs_to("a\r\n.end", "a\r\n..end\r\n.\r\n");
	stuffs_to("no final line break", "no final line break\r\n.\r\n");
	/* dots on consecutive lines */
	stuffs_to("\r\n.\r\n.\r\n.", "\r\n..\r\n..\r\n..\r\n.\r\n");
	stuffs_to("", "\r\n.\r\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dot_stuffing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
