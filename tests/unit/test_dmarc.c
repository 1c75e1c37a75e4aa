/*
 * test_dmarc.c - dmarc.c: recognising and reading a DMARC record, the
 * organizational domain, strict and relaxed alignment; and dns.c's
 * tag=value reader that DMARC and DKIM records share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "herald/dmarc.h"
#include "herald/dns.h"

static void
test_dmarc_is_record(void **state)
{
	(void)state;
	assert_true(dmarc_is_record("v=DMARC1; p=none"));
	assert_true(dmarc_is_record("v = DMARC1;p=reject"));
	assert_true(dmarc_is_record("v=DMARC1"));
	assert_false(dmarc_is_record("p=none; v=DMARC1"));   /* v= must come first */
	assert_false(dmarc_is_record("v=DMARC10; p=none"));
	assert_false(dmarc_is_record("v=spf1 -all"));
}

static void
test_dmarc_parse_tags_and_defaults(void **state)
{
	struct dmarc_record r;
	char why[128];

	(void)state;
	assert_int_equal(dmarc_parse("v=DMARC1; p=quarantine; rua=mailto:d@example.org", &r, why,
	                             sizeof why), 0);
	assert_string_equal(r.p, "quarantine");
	assert_string_equal(r.sp, "");
	assert_int_equal(r.adkim, 'r');
	assert_int_equal(r.aspf, 'r');
	assert_int_equal(r.pct, 100);
	assert_string_equal(r.rua, "mailto:d@example.org");
	assert_int_equal(dmarc_parse("v=DMARC1;p=reject;sp=none;adkim=s;aspf=s;pct=20", &r, why,
	                             sizeof why), 0);
	assert_string_equal(r.sp, "none");
	assert_int_equal(r.adkim, 's');
	assert_int_equal(r.aspf, 's');
	assert_int_equal(r.pct, 20);
}

static void
test_dmarc_parse_rejects_invalid(void **state)
{
	struct dmarc_record r;
	char why[128];

	(void)state;
	assert_int_equal(dmarc_parse("v=DMARC1; rua=mailto:x@y", &r, why, sizeof why), -1);
	assert_string_equal(why, "has no p= tag");
	assert_int_equal(dmarc_parse("v=DMARC1; p=block", &r, why, sizeof why), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=none; adkim=x", &r, why, sizeof why), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=none; pct=101", &r, why, sizeof why), -1);
	assert_int_equal(dmarc_parse("p=none", &r, why, sizeof why), -1);
}

static void
test_dmarc_org_domain(void **state)
{
	char org[256];

	(void)state;
	assert_int_equal(dmarc_org_domain("news.Example.ORG", org, sizeof org), 0);
	assert_string_equal(org, "example.org");
	assert_int_equal(dmarc_org_domain("a.b.example.co.uk.", org, sizeof org), 0);
	assert_string_equal(org, "example.co.uk");
	assert_int_equal(dmarc_org_domain("example.org", org, sizeof org), 0);
	assert_string_equal(org, "example.org");
	assert_int_equal(dmarc_org_domain("", org, sizeof org), -1);
}

static void
test_dmarc_alignment_modes(void **state)
{
	(void)state;
	assert_true(dmarc_aligned("example.org", "Example.org.", 's'));
	assert_false(dmarc_aligned("mail.example.org", "example.org", 's'));
	assert_true(dmarc_aligned("mail.example.org", "example.org", 'r'));
	assert_true(dmarc_aligned("mail.example.org", "news.example.org", 'r'));
	assert_false(dmarc_aligned("example.net", "example.org", 'r'));
	/* under a public suffix: co.uk neighbours are not one organization */
	assert_false(dmarc_aligned("a.co.uk", "b.co.uk", 'r'));
	assert_false(dmarc_aligned(NULL, "example.org", 'r'));
}

static void
test_dns_tag_value(void **state)
{
	char v[64];

	(void)state;
	assert_int_equal(dns_tag_value("v=DKIM1; k=rsa; p=AB CD\tEF", "p", v, sizeof v), 1);
	assert_string_equal(v, "ABCDEF");           /* folded base64 joined */
	assert_int_equal(dns_tag_value("v=DKIM1; k=rsa; p=", "p", v, sizeof v), 1);
	assert_string_equal(v, "");                 /* revoked key: present, empty */
	assert_int_equal(dns_tag_value("v=DKIM1; k=rsa", "p", v, sizeof v), 0);
	assert_int_equal(dns_tag_value("sp=none; p=reject", "p", v, sizeof v), 1);
	assert_string_equal(v, "reject");           /* sp= is not p= */
	assert_int_equal(dns_tag_value(" t = y:s ;", "t", v, sizeof v), 1);
	assert_string_equal(v, "y:s");
	assert_int_equal(dns_tag_value("p=0123456789", "p", v, 5), -1);
	assert_int_equal(dns_tag_value("P=x", "p", v, sizeof v), 0);  /* case-sensitive */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dmarc_is_record),
		cmocka_unit_test(test_dmarc_parse_tags_and_defaults),
		cmocka_unit_test(test_dmarc_parse_rejects_invalid),
		cmocka_unit_test(test_dmarc_org_domain),
		cmocka_unit_test(test_dmarc_alignment_modes),
		cmocka_unit_test(test_dns_tag_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
