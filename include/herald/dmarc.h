/*
 * dmarc.h - a DMARC record (RFC 7489) and the alignment it asks for.
 *
 * Used by doctor.c.  A receiver looks for the record at _dmarc.<From
 * domain>, then at _dmarc.<its organizational domain> (§6.6.3), and
 * passes the mail when SPF's or DKIM's authenticated domain is aligned with
 * the From domain: the same name under strict alignment, the same
 * organizational domain under relaxed (§3.1).  The organizational domain
 * comes from the public suffix list (libpsl's built-in copy), as in
 * dkim_aligned().
 */
#ifndef HERALD_DMARC_H
#define HERALD_DMARC_H

#include <stddef.h>

struct dmarc_record {
	char p[16];      /* none, quarantine or reject */
	char sp[16];     /* for subdomains; "" when absent (then p applies) */
	char adkim;      /* 'r' (default) or 's' */
	char aspf;       /* 'r' (default) or 's' */
	int  pct;        /* 0..100, default 100 */
	char rua[256];   /* aggregate report addresses, "" when none */
};

/* 1 when `txt` is a DMARC record: starts with "v=DMARC1" (§6.4: it must be
 * the first tag), spaces allowed around the '='. */
int dmarc_is_record(const char *txt);

/*
 * Read the tags of `txt` into *out.  0, or -1 with a reason in `why`
 * (`why_size` bytes) when it is not a valid record: no v=DMARC1 first, p
 * missing or not none/quarantine/reject, adkim/aspf not r or s, pct not
 * 0..100 (§6.3).
 */
int dmarc_parse(const char *txt, struct dmarc_record *out, char *why, size_t why_size);

/* The organizational domain of `domain` (§3.2), lower-cased, into `out`:
 * its registrable part by the public suffix list, or the whole name when it
 * is a public suffix itself or libpsl has no list.  0, or -1 when `domain`
 * is empty or does not fit. */
int dmarc_org_domain(const char *domain, char *out, size_t size);

/* Is `authenticated` (DKIM d=, or SPF's MAIL FROM domain) aligned with
 * `from_domain` in `mode` ('s' strict: equal ignoring case; 'r' relaxed:
 * same organizational domain)?  1 or 0. */
int dmarc_aligned(const char *authenticated, const char *from_domain, char mode);

#endif
