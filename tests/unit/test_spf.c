/*
 * test_spf.c - spf.c: which record counts, the mechanisms' matching, the
 * qualifiers, include and redirect, and the permerrors doctor reports (two
 * records, a bad term, more than 10 look-ups).  DNS answers come from a
 * table through struct spf_dns.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/spf.h"

struct row {
	const char *name;
	enum dns_type type;
	const char *value;
};

static const struct row zone[] = {
	{ "plain.test", DNS_TXT, "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all" },
	{ "plain.test", DNS_TXT, "site-verification=abc" },
	{ "two.test", DNS_TXT, "v=spf1 -all" },
	{ "two.test", DNS_TXT, "v=spf1 +all" },
	{ "none.test", DNS_TXT, "v=spf10 not ours" },
	{ "soft.test", DNS_TXT, "v=spf1 a mx/30 include:inc.test ~all" },
	{ "soft.test", DNS_A, "198.51.100.7" },
	{ "soft.test", DNS_MX, "mx.soft.test" },
	{ "mx.soft.test", DNS_A, "203.0.113.9" },
	{ "inc.test", DNS_TXT, "v=spf1 ip4:10.1.0.0/16 -all" },
	{ "redir.test", DNS_TXT, "v=spf1 ?ip4:192.0.2.5 redirect=plain.test" },
	{ "bad.test", DNS_TXT, "v=spf1 ip4:300.1.1.1 -all" },
	{ "unknown.test", DNS_TXT, "v=spf1 frob:x -all" },
	{ "deep.test", DNS_TXT, "v=spf1 include:d1.test include:d2.test include:d3.test "
	                        "include:d4.test include:d5.test include:d6.test -all" },
	{ "d1.test", DNS_TXT, "v=spf1 a mx -all" },
	{ "d2.test", DNS_TXT, "v=spf1 a mx -all" },
	{ "d3.test", DNS_TXT, "v=spf1 -all" },
	{ "d4.test", DNS_TXT, "v=spf1 -all" },
	{ "d5.test", DNS_TXT, "v=spf1 -all" },
	{ "d6.test", DNS_TXT, "v=spf1 -all" },
	{ "noinc.test", DNS_TXT, "v=spf1 include:nothing.test -all" },
};

static int
table_query(void *ctx, const char *name, enum dns_type type, struct dns_answer *out,
            struct herr *err)
{
	(void)ctx;
	if (!strcmp(name, "down.test"))
		return herr_set(err, EX_UNAVAILABLE, name, "no answer");
	out->records = NULL;
	out->n = 0;
	for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++)
		if (!strcmp(zone[i].name, name) && zone[i].type == type) {
			out->records = realloc(out->records, (out->n + 1) * sizeof *out->records);
			assert_non_null(out->records);
			out->records[out->n++] = strdup(zone[i].value);
		}
	return 0;
}

static const struct spf_dns dns = { table_query, NULL };

/* Evaluate `domain` for the address `ip` (NULL: none). */
static struct spf_verdict
eval(const char *domain, const char *ip)
{
	struct spf_verdict v;
	unsigned char addr[16];
	int family = ip && strchr(ip, ':') ? AF_INET6 : AF_INET;
	struct herr err;

	herr_clear(&err);
	if (ip)
		assert_int_equal(inet_pton(family, ip, addr), 1);
	assert_int_equal(spf_check(&dns, domain, family, ip ? addr : NULL, &v, &err), 0);
	return v;
}

static void
test_spf_records_counts_only_spf1(void **state)
{
	char *recs[] = { "v=spf1 -all", "v=spf10 x", "V=SPF1", "google=1", "v=spf1x" };
	struct dns_answer a = { recs, 5 };
	const char *first;

	(void)state;
	assert_int_equal(spf_records(&a, &first), 2);
	assert_string_equal(first, "v=spf1 -all");
}

static void
test_spf_ip_ranges_and_all(void **state)
{
	(void)state;
	assert_int_equal(eval("plain.test", "192.0.2.77").result, SPF_PASS);
	assert_string_equal(eval("plain.test", "192.0.2.77").why, "ip4:192.0.2.0/24 at plain.test");
	assert_int_equal(eval("plain.test", "2001:db8::25").result, SPF_PASS);
	assert_int_equal(eval("plain.test", "192.0.3.1").result, SPF_FAIL);
	assert_string_equal(eval("plain.test", "192.0.3.1").why, "-all at plain.test");
	assert_int_equal(eval("plain.test", "192.0.3.1").lookups, 0);
}

static void
test_spf_a_mx_include_softfail(void **state)
{
	struct spf_verdict v;

	(void)state;
	assert_int_equal(eval("soft.test", "198.51.100.7").result, SPF_PASS);      /* a */
	v = eval("soft.test", "203.0.113.11");                                      /* mx/30 */
	assert_int_equal(v.result, SPF_PASS);
	assert_string_equal(v.why, "mx/30 at soft.test");
	assert_int_equal(eval("soft.test", "203.0.113.12").result, SPF_SOFTFAIL);  /* outside /30 */
	v = eval("soft.test", "10.1.200.3");                                        /* include */
	assert_int_equal(v.result, SPF_PASS);
	assert_string_equal(v.why, "include:inc.test at soft.test");
	/* a, mx, include: three look-ups, with or without an address */
	assert_int_equal(v.lookups, 3);
	assert_int_equal(eval("soft.test", NULL).lookups, 3);
}

static void
test_spf_redirect_applies_when_nothing_matched(void **state)
{
	struct spf_verdict v;

	(void)state;
	assert_int_equal(eval("redir.test", "192.0.2.5").result, SPF_NEUTRAL);  /* ?ip4 first */
	v = eval("redir.test", "192.0.3.1");
	assert_int_equal(v.result, SPF_FAIL);
	assert_string_equal(v.why, "redirect=plain.test: -all at plain.test");
	assert_int_equal(v.lookups, 1);
}

static void
test_spf_permerrors(void **state)
{
	struct spf_verdict v;

	(void)state;
	v = eval("two.test", "192.0.2.1");
	assert_int_equal(v.result, SPF_PERMERROR);
	assert_non_null(strstr(v.why, "2 SPF records at two.test"));
	assert_int_equal(eval("bad.test", "192.0.2.1").result, SPF_PERMERROR);
	v = eval("unknown.test", "192.0.2.1");
	assert_int_equal(v.result, SPF_PERMERROR);
	assert_string_equal(v.why, "unknown mechanism 'frob' at unknown.test");
	v = eval("noinc.test", "192.0.2.1");
	assert_int_equal(v.result, SPF_PERMERROR);
	assert_string_equal(v.why, "include:nothing.test has no SPF record");
	assert_int_equal(eval("none.test", "192.0.2.1").result, SPF_NONE);
}

static void
test_spf_lookup_limit_counts_the_whole_tree(void **state)
{
	struct spf_verdict v;

	(void)state;
	/* 6 includes + a mx + a mx = 10: at the limit, still fine */
	v = eval("deep.test", "192.0.2.1");
	assert_int_equal(v.lookups, 10);
	assert_int_equal(v.result, SPF_FAIL);
}

static void
test_spf_dns_failure_is_an_error(void **state)
{
	struct spf_verdict v;
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(spf_check(&dns, "down.test", AF_INET, NULL, &v, &err), -1);
	assert_int_equal(err.code, EX_UNAVAILABLE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spf_records_counts_only_spf1),
		cmocka_unit_test(test_spf_ip_ranges_and_all),
		cmocka_unit_test(test_spf_a_mx_include_softfail),
		cmocka_unit_test(test_spf_redirect_applies_when_nothing_matched),
		cmocka_unit_test(test_spf_permerrors),
		cmocka_unit_test(test_spf_lookup_limit_counts_the_whole_tree),
		cmocka_unit_test(test_spf_dns_failure_is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
