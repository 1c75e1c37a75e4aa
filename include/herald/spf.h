/*
 * spf.h - reading a domain's SPF policy (RFC 7208) as a receiver would, to
 * tell whether it lets an address send for the domain.
 *
 * Used by doctor.c.  Covers what sender domains publish: the mechanisms
 * all, ip4, ip6, a, mx, include, exists (by its A record) and ptr (counted,
 * never matched: RFC 7208 §5.5 says not to use it), the redirect modifier,
 * qualifiers, CIDR lengths.  Macros (§7) are not expanded: a term holding
 * one matches nothing, and the verdict says so.  The limit of 10 terms that
 * query DNS (§4.6.4) is counted over the whole tree of includes, not only
 * up to the first match, because a receiver checking another address walks
 * all of it.
 *
 * DNS comes through a struct spf_dns so that tests can answer from a table.
 */
#ifndef HERALD_SPF_H
#define HERALD_SPF_H

#include <stddef.h>

#include "herald/dns.h"
#include "herald/herr.h"

#define SPF_LOOKUP_LIMIT 10 /* RFC 7208 §4.6.4 */

enum spf_result {
	SPF_PASS,      /* "+" matched */
	SPF_FAIL,      /* "-" matched */
	SPF_SOFTFAIL,  /* "~" matched */
	SPF_NEUTRAL,   /* "?" matched, or nothing matched */
	SPF_NONE,      /* no SPF record */
	SPF_PERMERROR, /* two records, a syntax error, too many look-ups */
};

struct spf_dns {
	/* dns_query()'s contract: 0 with records (maybe none), -1 with err */
	int  (*query)(void *ctx, const char *name, enum dns_type type, struct dns_answer *out,
	              struct herr *err);
	void *ctx;
};

struct spf_verdict {
	enum spf_result result;
	int  lookups;        /* terms that query DNS, over the whole tree */
	char why[256];       /* the term that decided, and where: "ip4:192.0.2.1 at
	                        example.org", "-all at example.org", "11 DNS look-ups
	                        (limit 10)", "2 SPF records at example.org" */
};

/*
 * How many of the TXT records in `txt` are SPF records ("v=spf1" alone or
 * followed by a space, case-insensitive, §4.5); *first (may be NULL) is the
 * first of them, or NULL.
 */
size_t spf_records(const struct dns_answer *txt, const char **first);

/*
 * Evaluate the SPF policy of `domain` for the address `ip` (`family`
 * AF_INET or AF_INET6, 4 or 16 bytes; ip NULL: no address known, only the
 * record's soundness and its look-up count are checked, and the result is
 * that of no match).  0 with *v filled, whatever the result; -1 only when
 * DNS gave no answer (dns's error in err, a temperror in RFC terms) or
 * memory ran out.
 */
int spf_check(const struct spf_dns *dns, const char *domain, int family,
              const unsigned char *ip, struct spf_verdict *v, struct herr *err);

const char *spf_result_name(enum spf_result r);

#endif
