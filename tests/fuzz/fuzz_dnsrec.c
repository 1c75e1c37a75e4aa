/*
 * fuzz_dnsrec.c - libFuzzer target for the DNS records `herald doctor`
 * reads from the outside world: SPF evaluation (spf_check(), src/spf.c),
 * DMARC records (dmarc_is_record(), dmarc_parse(), src/dmarc.c) and the
 * tag=value reader DKIM and DMARC share (dns_tag_value(), src/dns.c).
 *
 * Input: one record (cut at its first NUL).  The fake DNS answers every
 * TXT question with it, so include: and redirect= walk into the same
 * record again (the look-up limit and the depth limit must end that); A
 * and AAAA questions get 192.0.2.1 / 2001:db8::1, MX gets mx.example.
 *
 * Broken promises of include/herald/spf.h, dmarc.h and dns.h abort():
 *   - spf_check() returns 0 (this DNS always answers), a result among the
 *     enum, at most SPF_LOOKUP_LIMIT + 1 look-ups counted, and a why that
 *     is NUL-terminated within its array, for no address, an IPv4 and an
 *     IPv6 one;
 *   - dmarc_parse() succeeds only on what dmarc_is_record() accepts, with
 *     p (and sp when set) none/quarantine/reject, adkim and aspf r or s,
 *     pct 0..100;
 *   - dns_tag_value() returns -1, 0 or 1, and on 1 a value without white
 *     space, NUL-terminated within the buffer.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/dmarc.h"
#include "herald/dns.h"
#include "herald/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_dnsrec: broken promise: %s (%.300s)\n", what, detail ? detail : "");
	abort();
}

static int
one(struct dns_answer *out, const char *value)
{
	if (!(out->records = malloc(sizeof *out->records)) ||
	    !(out->records[0] = strdup(value))) {
		free(out->records);
		out->records = NULL;
		return -1;
	}
	out->n = 1;
	return 0;
}

static int
fake_query(void *ctx, const char *name, enum dns_type type, struct dns_answer *out,
           struct herr *err)
{
	(void)name;
	out->records = NULL;
	out->n = 0;
	switch (type) {
	case DNS_TXT: return one(out, ctx) < 0 ? herr_set(err, EX_OSERR, NULL, "oom") : 0;
	case DNS_A: return one(out, "192.0.2.1") < 0 ? herr_set(err, EX_OSERR, NULL, "oom") : 0;
	case DNS_AAAA: return one(out, "2001:db8::1") < 0 ? herr_set(err, EX_OSERR, NULL, "oom") : 0;
	case DNS_MX: return one(out, "mx.example") < 0 ? herr_set(err, EX_OSERR, NULL, "oom") : 0;
	}
	return 0;
}

static void
check_spf(const char *rec)
{
	const struct spf_dns dns = { fake_query, (void *)rec };
	unsigned char v4[16], v6[16];
	struct spf_verdict v;
	struct herr err;

	inet_pton(AF_INET, "192.0.2.1", v4);
	inet_pton(AF_INET6, "2001:db8::1", v6);
	for (int k = 0; k < 3; k++) {
		herr_clear(&err);
		if (spf_check(&dns, "example.org", k == 2 ? AF_INET6 : AF_INET,
		              k == 0 ? NULL : k == 1 ? v4 : v6, &v, &err) != 0)
			broken("spf_check failed with a DNS that answers", err.msg);
		if (v.result < SPF_PASS || v.result > SPF_PERMERROR)
			broken("spf result out of range", rec);
		if (v.lookups > SPF_LOOKUP_LIMIT + 1)
			broken("look-ups counted past the limit", rec);
		if (!memchr(v.why, '\0', sizeof v.why))
			broken("why not terminated", rec);
	}
}

static int
is_policy(const char *p)
{
	return !strcmp(p, "none") || !strcmp(p, "quarantine") || !strcmp(p, "reject");
}

static void
check_dmarc(const char *rec)
{
	struct dmarc_record r;
	char why[128];

	if (dmarc_parse(rec, &r, why, sizeof why) != 0)
		return;
	if (!dmarc_is_record(rec))
		broken("dmarc_parse took what dmarc_is_record refuses", rec);
	if (!is_policy(r.p) || (r.sp[0] && !is_policy(r.sp)))
		broken("bad policy accepted", rec);
	if ((r.adkim != 'r' && r.adkim != 's') || (r.aspf != 'r' && r.aspf != 's'))
		broken("bad alignment mode accepted", rec);
	if (r.pct < 0 || r.pct > 100)
		broken("pct out of range", rec);
}

static void
check_tags(const char *rec)
{
	static const char *tags[] = { "v", "p", "k", "t", "sp", "rua" };
	char out[32];
	int rc;

	for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
		memset(out, 'X', sizeof out);
		rc = dns_tag_value(rec, tags[i], out, sizeof out);
		if (rc < -1 || rc > 1)
			broken("dns_tag_value result out of range", rec);
		if (rc == 1 && (!memchr(out, '\0', sizeof out) || strpbrk(out, " \t\r\n")))
			broken("tag value unterminated or with white space", rec);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *rec = malloc(size + 1);

	if (!rec)
		return 0;
	memcpy(rec, data, size);
	rec[size] = '\0';
	check_spf(rec);
	check_dmarc(rec);
	check_tags(rec);
	free(rec);
	return 0;
}
