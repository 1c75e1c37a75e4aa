/*
 * test_utf8.c - strict UTF-8 (src/utf8.c), the decoder behind every
 * "not valid UTF-8" message in herald.  Vectors: RFC 3629 §4 boundaries
 * and Markus Kuhn's UTF-8 decoder stress test (overlongs, surrogates).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "herald/utf8.h"

#define SEQ(lit, cp_out) utf8_seq((const unsigned char *)(lit), sizeof(lit) - 1, (cp_out))

static void
test_utf8_seq_valid_boundaries(void **state)
{
	unsigned long cp;

	(void)state;
	assert_int_equal(SEQ("A", &cp), 1);
	assert_int_equal(cp, 0x41);
	assert_int_equal(SEQ("\xc2\x80", &cp), 2);        /* U+0080 */
	assert_int_equal(cp, 0x80);
	assert_int_equal(SEQ("\xdf\xbf", &cp), 2);        /* U+07FF */
	assert_int_equal(SEQ("\xe0\xa0\x80", &cp), 3);    /* U+0800 */
	assert_int_equal(cp, 0x800);
	assert_int_equal(SEQ("\xed\x9f\xbf", &cp), 3);    /* U+D7FF */
	assert_int_equal(SEQ("\xee\x80\x80", &cp), 3);    /* U+E000 */
	assert_int_equal(SEQ("\xef\xbf\xbd", &cp), 3);    /* U+FFFD */
	assert_int_equal(SEQ("\xf0\x90\x80\x80", &cp), 4);/* U+10000 */
	assert_int_equal(cp, 0x10000);
	assert_int_equal(SEQ("\xf4\x8f\xbf\xbf", &cp), 4);/* U+10FFFF */
	assert_int_equal(cp, 0x10ffff);
	assert_int_equal(SEQ("\xc3\xab", &cp), 2);        /* ë */
	assert_int_equal(cp, 0xeb);
}

static void
test_utf8_seq_invalid(void **state)
{
	(void)state;
	assert_int_equal(SEQ("\x80", NULL), 0);             /* lone continuation */
	assert_int_equal(SEQ("\xc0\xaf", NULL), 0);         /* overlong '/' */
	assert_int_equal(SEQ("\xc1\xbf", NULL), 0);         /* overlong */
	assert_int_equal(SEQ("\xe0\x80\xaf", NULL), 0);     /* overlong 3-byte */
	assert_int_equal(SEQ("\xf0\x80\x80\xaf", NULL), 0); /* overlong 4-byte */
	assert_int_equal(SEQ("\xed\xa0\x80", NULL), 0);     /* U+D800 surrogate */
	assert_int_equal(SEQ("\xed\xbf\xbf", NULL), 0);     /* U+DFFF surrogate */
	assert_int_equal(SEQ("\xf4\x90\x80\x80", NULL), 0); /* U+110000 */
	assert_int_equal(SEQ("\xf5\x80\x80\x80", NULL), 0);
	assert_int_equal(SEQ("\xff", NULL), 0);
	assert_int_equal(SEQ("\xc3", NULL), 0);             /* truncated */
	assert_int_equal(SEQ("\xe2\x82", NULL), 0);         /* truncated */
	assert_int_equal(SEQ("\xe2\x28\xa1", NULL), 0);     /* bad continuation */
	assert_int_equal(SEQ("\xf0\x90\x28\xbc", NULL), 0); /* bad third byte */
	assert_int_equal(utf8_seq((const unsigned char *)"", 0, NULL), 0);
}

static void
test_utf8_invalid_at(void **state)
{
	const char *ok = "Zo\xc3\xab M\xc3\xbcller \xe2\x80\x93 \xf0\x9f\x93\xb0";
	const char *bad = "Zo\xc3\xab \xed\xa0\x80 x";

	(void)state;
	assert_int_equal(utf8_invalid_at((const unsigned char *)ok, strlen(ok)), strlen(ok));
	assert_int_equal(utf8_invalid_at((const unsigned char *)bad, strlen(bad)), 5);
	assert_int_equal(utf8_invalid_at((const unsigned char *)"abc\xc3", 4), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_seq_valid_boundaries),
		cmocka_unit_test(test_utf8_seq_invalid),
		cmocka_unit_test(test_utf8_invalid_at),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
