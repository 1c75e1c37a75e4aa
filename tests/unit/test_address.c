/*
 * test_address.c - address_parse() and address_parse_mailbox() (src/address.c).
 *
 * Covers the forms herald accepts (dot-atom local parts with every atext
 * special, the RFC 5321 size limits at their boundaries, IDN domains in
 * U-label and A-label form, case handling of addr/ascii/key), every
 * rejection reason with its exact message, the escaping of control
 * characters in messages, and the mailbox forms of config files.
 *
 * IDN vector: bücher.de <-> xn--bcher-kva.de is the example of RFC 3492 /
 * libidn2's documentation; checked with Python's "bücher".encode("idna").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "herald/address.h"

static char *
repeat(char *dst, char c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
	return dst;
}

/* Parse `in`, expect success. */
static void
ok(const char *in, struct address *a)
{
	struct herr err;

	herr_clear(&err);
	if (address_parse(in, a, &err) != 0)
		fail_msg("'%s' rejected: %s", in, err.msg);
	assert_int_equal(err.code, 0);
}

/* Parse `in`, expect the exact message. */
static void
rejected(const char *in, const char *msg)
{
	struct address a;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(address_parse(in, &a, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.msg, msg);
	/* Nothing half-filled is left behind for a careless caller. */
	assert_string_equal(a.ascii, "");
	assert_string_equal(a.key, "");
}

static void
test_address_parse_plain(void **state)
{
	struct address a;

	(void)state;
	ok("ada.lovelace@example.org", &a);
	assert_string_equal(a.addr, "ada.lovelace@example.org");
	assert_string_equal(a.ascii, "ada.lovelace@example.org");
	assert_string_equal(a.key, "ada.lovelace@example.org");
	assert_string_equal(a.domain, "example.org");
}

static void
test_address_parse_plus_addressing(void **state)
{
	struct address a;

	(void)state;
	ok("ada+newsletter@example.org", &a);
	assert_string_equal(a.ascii, "ada+newsletter@example.org");
	ok("o'brien@example.com", &a);
	assert_string_equal(a.ascii, "o'brien@example.com");
}

static void
test_address_parse_atext_specials(void **state)
{
	struct address a;

	(void)state;
	/* Every RFC 5322 §3.2.3 atext special, plus an interior dot. */
	ok("a!#$%&'*+-/=?^_`{|}~.z@example.org", &a);
	assert_string_equal(a.ascii, "a!#$%&'*+-/=?^_`{|}~.z@example.org");
	ok("0@example.org", &a);
	assert_string_equal(a.ascii, "0@example.org");
}

static void
test_address_parse_local_64_octets(void **state)
{
	char local[80], in[128];
	struct address a;

	(void)state;
	snprintf(in, sizeof in, "%s@example.org", repeat(local, 'l', 64));
	ok(in, &a);
	assert_string_equal(a.ascii, in);
}

static void
test_address_parse_local_65_octets(void **state)
{
	char local[80], in[128], msg[512];

	(void)state;
	snprintf(in, sizeof in, "%s@example.org", repeat(local, 'l', 65));
	snprintf(msg, sizeof msg, "invalid address '%s': local part is longer than 64 octets",
	    in);
	rejected(in, msg);
}

/* Three 63-octet labels and one of `last` octets: 192 + last octets. */
static void
long_domain(char *dst, size_t last)
{
	char l[64];

	strcpy(dst, repeat(l, 'a', 63));
	strcat(dst, ".");
	strcat(dst, repeat(l, 'b', 63));
	strcat(dst, ".");
	strcat(dst, repeat(l, 'c', 63));
	strcat(dst, ".");
	strcat(dst, repeat(l, 'd', last));
}

static void
test_address_parse_domain_limits(void **state)
{
	char dom[300], in[400], msg[700];
	struct address a;

	(void)state;
	/* 252-octet domain and a 1-octet local part: 254 octets, the maximum
	 * address (RFC 5321 §4.5.3.1.3: 256 with the angle brackets). */
	long_domain(dom, 60);
	assert_int_equal(strlen(dom), 252);
	snprintf(in, sizeof in, "x@%s", dom);
	ok(in, &a);
	assert_int_equal(strlen(a.ascii), 254);
	assert_string_equal(a.domain, dom);

	/* A 253-octet domain is a valid domain, but no address can use it:
	 * the shortest address would be 255 octets. */
	long_domain(dom, 61);
	assert_int_equal(strlen(dom), 253);
	snprintf(in, sizeof in, "x@%s", dom);
	/* The quoted input is cut at 200 bytes with "...". */
	snprintf(msg, sizeof msg,
	    "invalid address '%.200s...': address is longer than 254 octets", in);
	rejected(in, msg);

	long_domain(dom, 62);
	assert_int_equal(strlen(dom), 254);
	snprintf(in, sizeof in, "x@%s", dom);
	snprintf(msg, sizeof msg,
	    "invalid address '%.200s...': domain is longer than 253 octets", in);
	rejected(in, msg);
}

static void
test_address_parse_total_255_octets(void **state)
{
	char local[80], dom[300], in[400], msg[700];

	(void)state;
	/* 64 + 1 + 190 = 255. */
	long_domain(dom, 61);
	dom[190] = '\0';
	assert_int_equal(strlen(dom), 190);
	assert_int_not_equal(dom[189], '.');
	snprintf(in, sizeof in, "%s@%s", repeat(local, 'l', 64), dom);
	assert_int_equal(strlen(in), 255);
	snprintf(msg, sizeof msg,
	    "invalid address '%.200s...': address is longer than 254 octets", in);
	rejected(in, msg);
}

static void
test_address_parse_label_64_octets(void **state)
{
	char label[80], in[128], msg[512];

	(void)state;
	repeat(label, 'x', 64);
	snprintf(in, sizeof in, "a@%s.org", label);
	snprintf(msg, sizeof msg,
	    "invalid address '%s': domain label '%s' is longer than 63 octets", in, label);
	rejected(in, msg);
	/* 63 is fine. */
	{
		struct address a;

		label[63] = '\0';
		snprintf(in, sizeof in, "a@%s.org", label);
		ok(in, &a);
	}
}

static void
test_address_parse_idn(void **state)
{
	struct address a;

	(void)state;
	ok("user@bücher.de", &a);
	assert_string_equal(a.ascii, "user@xn--bcher-kva.de");
	assert_string_equal(a.key, "user@xn--bcher-kva.de");
	assert_string_equal(a.domain, "xn--bcher-kva.de");
	assert_string_equal(a.addr, "user@bücher.de");

	/* UTS #46 mapping lower-cases the U-labels too. */
	ok("User@BÜCHER.DE", &a);
	assert_string_equal(a.ascii, "User@xn--bcher-kva.de");
	assert_string_equal(a.key, "user@xn--bcher-kva.de");
	assert_string_equal(a.addr, "User@bücher.de");

	/* Given in A-label form: addr still shows the U-label. */
	ok("user@XN--BCHER-KVA.de", &a);
	assert_string_equal(a.ascii, "user@xn--bcher-kva.de");
	assert_string_equal(a.addr, "user@bücher.de");
}

static void
test_address_parse_case(void **state)
{
	struct address a;

	(void)state;
	ok("Grace@Example.net", &a);
	assert_string_equal(a.addr, "Grace@example.net");
	assert_string_equal(a.ascii, "Grace@example.net");
	assert_string_equal(a.key, "grace@example.net");
	assert_string_equal(a.domain, "example.net");

	ok("GRACE@EXAMPLE.NET", &a);
	assert_string_equal(a.ascii, "GRACE@example.net");
	assert_string_equal(a.key, "grace@example.net");
}

static void
test_address_parse_rejections(void **state)
{
	(void)state;
	rejected("", "invalid address '': empty");
	rejected("not-an-email", "invalid address 'not-an-email': missing '@'");
	rejected("a@b@x.org", "invalid address 'a@b@x.org': more than one '@'");
	rejected("@x.org", "invalid address '@x.org': empty local part");
	rejected("a@", "invalid address 'a@': empty domain");
	rejected("a..b@x.org", "invalid address 'a..b@x.org': local part has two dots in a row");
	rejected(".a@x.org", "invalid address '.a@x.org': local part starts with a dot");
	rejected("a.@x.org", "invalid address 'a.@x.org': local part ends with a dot");
	rejected("a(b)@x.org", "invalid address 'a(b)@x.org': invalid character '(' in local part");
	rejected("a\"b@x.org", "invalid address 'a\"b@x.org': invalid character '\"' in local part");
	rejected("a@x", "invalid address 'a@x': domain 'x' has no dot");
	rejected("a@-x.org", "invalid address 'a@-x.org': domain label '-x' starts with a hyphen");
	rejected("a@x-.org", "invalid address 'a@x-.org': domain label 'x-' ends with a hyphen");
	rejected("a@x.123", "invalid address 'a@x.123': top-level domain '123' is all digits");
	rejected("a@192.0.2.1", "invalid address 'a@192.0.2.1': top-level domain '1' is all digits");
	rejected("a@x.org.", "invalid address 'a@x.org.': domain ends with a dot");
	rejected("a@.x.org", "invalid address 'a@.x.org': domain starts with a dot");
	rejected("a@x..org", "invalid address 'a@x..org': domain has an empty label");
	rejected("a@x_y.org", "invalid address 'a@x_y.org': invalid character '_' in domain");
	rejected("a b@x.org", "invalid address 'a b@x.org': contains whitespace");
	rejected("a@x.org ", "invalid address 'a@x.org ': contains whitespace");
	rejected("\"quoted\"@x.org",
	    "invalid address '\"quoted\"@x.org': quoted local parts are not accepted");
	rejected("\"a@b\"@x.org",
	    "invalid address '\"a@b\"@x.org': quoted local parts are not accepted");
	rejected("a@[192.0.2.1]",
	    "invalid address 'a@[192.0.2.1]': domain literals are not accepted");
	rejected("zoë.müller@example.de",
	    "invalid address 'zoë.müller@example.de': non-ASCII local part needs SMTPUTF8, "
	    "which herald does not send");
	/* A no-break space pasted from a web page is whitespace, not "non-ASCII". */
	rejected("a\xc2\xa0" "b@x.org", "invalid address 'a\xc2\xa0" "b@x.org': contains whitespace");
	/* xn--zz is not valid Punycode (libidn2: IDN2_PUNYCODE_BAD_INPUT). */
	rejected("a@xn--zz.org",
	    "invalid address 'a@xn--zz.org': domain has an invalid A-label: "
	    "string contains invalid punycode data");
}

static void
test_address_parse_escapes_controls(void **state)
{
	struct address a;
	struct herr err;

	(void)state;
	rejected("a@x.org\r\nBcc: v@x.org",
	    "invalid address 'a@x.org\\r\\nBcc: v@x.org': contains a control character");
	rejected("a\tb@x.org", "invalid address 'a\\tb@x.org': contains a control character");
	rejected("a\x01@x.org", "invalid address 'a\\x01@x.org': contains a control character");
	rejected("a\x7f@x.org", "invalid address 'a\\x7F@x.org': contains a control character");
	/* Latin-1 "ö" is not UTF-8: shown as a byte. */
	rejected("a@b\xf6.org", "invalid address 'a@b\\xF6.org': not valid UTF-8");

	herr_clear(&err);
	assert_int_equal(address_parse("evil@x.org\nBcc: victim@example.com", &a, &err), -1);
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\r'));
}

static void
test_address_parse_long_input_keeps_reason(void **state)
{
	char in[2000], msg[HERR_MSG_MAX];
	struct address a;
	struct herr err;

	(void)state;
	repeat(in, 'x', sizeof in - 1);
	herr_clear(&err);
	assert_int_equal(address_parse(in, &a, &err), -1);
	snprintf(msg, sizeof msg, "invalid address '%.200s...': missing '@'", in);
	assert_string_equal(err.msg, msg);

	/* 500 control characters: escaped, the quote is still cut short. */
	repeat(in, '\x01', 500);
	herr_clear(&err);
	assert_int_equal(address_parse(in, &a, &err), -1);
	assert_int_equal(strncmp(err.msg, "invalid address '\\x01\\x01", 25), 0);
	assert_non_null(strstr(err.msg, "...': contains a control character"));
	assert_true(strlen(err.msg) < 300);
}

static void
mailbox_ok(const char *in, const char *name, const char *ascii)
{
	char got[128];
	struct address a;
	struct herr err;

	herr_clear(&err);
	if (address_parse_mailbox(in, got, sizeof got, &a, &err) != 0)
		fail_msg("'%s' rejected: %s", in, err.msg);
	assert_string_equal(got, name);
	assert_string_equal(a.ascii, ascii);
}

static void
mailbox_rejected(const char *in, const char *msg)
{
	char name[128];
	struct address a;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(address_parse_mailbox(in, name, sizeof name, &a, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.msg, msg);
	assert_string_equal(name, "");
}

static void
test_address_parse_mailbox_forms(void **state)
{
	(void)state;
	mailbox_ok("Herald News <news@example.org>", "Herald News", "news@example.org");
	mailbox_ok("\"Jones, Alex\" <jones@example.org>", "Jones, Alex", "jones@example.org");
	mailbox_ok("\"Alex \\\"AJ\\\" Jones\" <aj@example.org>", "Alex \"AJ\" Jones",
	    "aj@example.org");
	mailbox_ok("<news@example.org>", "", "news@example.org");
	mailbox_ok("news@example.org", "", "news@example.org");
	mailbox_ok("  Herald   <  news@Example.ORG >  ", "Herald", "news@example.org");
	mailbox_ok("Zoë Müller <zoe@bücher.de>", "Zoë Müller", "zoe@xn--bcher-kva.de");
	mailbox_ok("\"Smith <x>\" <s@example.org>", "Smith <x>", "s@example.org");
}

static void
test_address_parse_mailbox_rejections(void **state)
{
	char name[4];
	struct address a;
	struct herr err;

	(void)state;
	mailbox_rejected("", "invalid mailbox '': empty");
	mailbox_rejected("News <news@example.org>\r\nBcc: v@x.org",
	    "invalid mailbox 'News <news@example.org>\\r\\nBcc: v@x.org': "
	    "contains a control character");
	mailbox_rejected("News\n <news@example.org>",
	    "invalid mailbox 'News\\n <news@example.org>': contains a control character");
	mailbox_rejected("\"News <news@example.org>",
	    "invalid mailbox '\"News <news@example.org>': unbalanced quotes");
	mailbox_rejected("News <news@example.org",
	    "invalid mailbox 'News <news@example.org': unbalanced '<'");
	mailbox_rejected("News news@example.org>",
	    "invalid mailbox 'News news@example.org>': unbalanced '>'");
	mailbox_rejected("News <news@example.org> x",
	    "invalid mailbox 'News <news@example.org> x': text after '>'");
	mailbox_rejected("News <a@x.org> <b@x.org>",
	    "invalid mailbox 'News <a@x.org> <b@x.org>': text after '>'");
	/* The address inside is checked by address_parse(). */
	mailbox_rejected("News <not-an-email>", "invalid address 'not-an-email': missing '@'");
	mailbox_rejected("News <zoë@example.de>",
	    "invalid address 'zoë@example.de': non-ASCII local part needs SMTPUTF8, "
	    "which herald does not send");

	herr_clear(&err);
	assert_int_equal(address_parse_mailbox("Long Name <a@x.org>", name, sizeof name, &a,
	    &err), -1);
	assert_string_equal(err.msg,
	    "invalid mailbox 'Long Name <a@x.org>': display name is longer than 3 bytes");
	assert_string_equal(name, "");

	/* A NULL name is allowed: the caller only wants the address. */
	herr_clear(&err);
	assert_int_equal(address_parse_mailbox("Long Name <A@X.org>", NULL, 0, &a, &err), 0);
	assert_string_equal(a.key, "a@x.org");
}

/* Found by tests/fuzz/fuzz_address.c: a domain that UTS #46 maps to
 * nothing became "" (and was read before its start); a made-up A-label
 * passed beside a U-label; C1 controls passed in a display name. */
static void
test_address_parse_fuzz_findings(void **state)
{
	struct address a;
	char name[64];
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(address_parse("x@\xc2\xad", &a, &err), -1);        /* U+00AD */
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "empty domain"));
	assert_int_equal(address_parse("x@\xef\xb8\x8e", &a, &err), -1);    /* U+FE0E */
	assert_int_equal(address_parse("a@\xc3\xbc.xn--bcher-khxn--bcher-kher-m5a.example", &a,
	                               &err), -1);
	assert_non_null(strstr(err.msg, "A-label"));
	/* the real thing still passes, and its ASCII form parses back to it */
	ok("a@\xc3\xbc.xn--bcher-kva.example", &a);
	assert_string_equal(a.ascii, "a@xn--tda.xn--bcher-kva.example");
	herr_clear(&err);
	assert_int_equal(address_parse_mailbox("Team\xc2\x85 <news@example.org>", name,
	                                       sizeof name, &a, &err), -1);
	assert_non_null(strstr(err.msg, "control character"));
	assert_int_equal(address_parse_mailbox("Te\xc2\xa0" "am <news@example.org>", name,
	                                       sizeof name, &a, &err), 0); /* NBSP is no control */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_parse_plain),
		cmocka_unit_test(test_address_parse_plus_addressing),
		cmocka_unit_test(test_address_parse_atext_specials),
		cmocka_unit_test(test_address_parse_local_64_octets),
		cmocka_unit_test(test_address_parse_local_65_octets),
		cmocka_unit_test(test_address_parse_domain_limits),
		cmocka_unit_test(test_address_parse_total_255_octets),
		cmocka_unit_test(test_address_parse_label_64_octets),
		cmocka_unit_test(test_address_parse_idn),
		cmocka_unit_test(test_address_parse_case),
		cmocka_unit_test(test_address_parse_rejections),
		cmocka_unit_test(test_address_parse_escapes_controls),
		cmocka_unit_test(test_address_parse_long_input_keeps_reason),
		cmocka_unit_test(test_address_parse_mailbox_forms),
		cmocka_unit_test(test_address_parse_mailbox_rejections),
		cmocka_unit_test(test_address_parse_fuzz_findings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
