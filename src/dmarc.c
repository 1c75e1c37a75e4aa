/*
 * dmarc.c - DMARC records and identifier alignment (see dmarc.h; RFC 7489
 * §3.1 alignment, §3.2 organizational domain, §6.3 tags, §6.4 syntax).
 */
#include "herald/dmarc.h"

#include <libpsl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/dns.h"

int
dmarc_is_record(const char *txt)
{
	const char *p = txt;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != 'v')
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != '=')
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	return !strncmp(p, "DMARC1", 6) &&
	       (p[6] == '\0' || p[6] == ';' || p[6] == ' ' || p[6] == '\t');
}

/* adkim/aspf: 'r' when absent, -1 when neither r nor s. */
static int
alignment_mode(const char *txt, const char *tag, char *mode)
{
	char v[8];
	int rc = dns_tag_value(txt, tag, v, sizeof v);

	*mode = 'r';
	if (rc == 0)
		return 0;
	if (rc < 0 || (strcmp(v, "r") && strcmp(v, "s")))
		return -1;
	*mode = v[0];
	return 0;
}

static int
is_policy(const char *v)
{
	return !strcmp(v, "none") || !strcmp(v, "quarantine") || !strcmp(v, "reject");
}

int
dmarc_parse(const char *txt, struct dmarc_record *out, char *why, size_t why_size)
{
	char pct[8];
	char *end;
	long n;
	int rc;

	memset(out, 0, sizeof *out);
	out->pct = 100;
	if (!dmarc_is_record(txt)) {
		snprintf(why, why_size, "does not start with v=DMARC1");
		return -1;
	}
	rc = dns_tag_value(txt, "p", out->p, sizeof out->p);
	if (rc <= 0 || !is_policy(out->p)) {
		snprintf(why, why_size, "%s", rc == 0 ? "has no p= tag" :
		                                "p= is not none, quarantine or reject");
		return -1;
	}
	rc = dns_tag_value(txt, "sp", out->sp, sizeof out->sp);
	if (rc < 0 || (rc > 0 && !is_policy(out->sp))) {
		snprintf(why, why_size, "sp= is not none, quarantine or reject");
		return -1;
	}
	if (alignment_mode(txt, "adkim", &out->adkim) < 0 ||
	    alignment_mode(txt, "aspf", &out->aspf) < 0) {
		snprintf(why, why_size, "adkim= and aspf= are r or s");
		return -1;
	}
	if ((rc = dns_tag_value(txt, "pct", pct, sizeof pct)) != 0) {
		n = rc > 0 ? strtol(pct, &end, 10) : -1;
		if (rc < 0 || end == pct || *end || n < 0 || n > 100) {
			snprintf(why, why_size, "pct= is not 0 to 100");
			return -1;
		}
		out->pct = (int)n;
	}
	if (dns_tag_value(txt, "rua", out->rua, sizeof out->rua) < 0)
		out->rua[0] = '\0';
	return 0;
}

/* The last two labels: the organizational domain when no public suffix
 * list is at hand (wrong for example.co.uk, right for most .com/.org). */
static const char *
last_two_labels(const char *d)
{
	const char *p = d + strlen(d), *last = NULL;

	while (p > d) {
		p--;
		if (*p == '.') {
			if (last)
				return p + 1;
			last = p;
		}
	}
	return d;
}

int
dmarc_org_domain(const char *domain, char *out, size_t size)
{
	const psl_ctx_t *psl = psl_builtin();
	const char *org;
	size_t i, n = strlen(domain);

	if (n && domain[n - 1] == '.') /* an absolute name: the same domain */
		n--;
	if (n == 0 || n >= size)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] + 32) : domain[i];
	out[n] = '\0';
	/* libpsl's built-in list is compiled in and immutable: no file to
	 * load, safe from any thread.  A build without one (NULL) falls back
	 * to the last two labels.  No registrable domain (NULL): the name is
	 * a public suffix itself and stands for itself alone. */
	org = psl ? psl_registrable_domain(psl, out) : last_two_labels(out);
	if (org && org != out)
		memmove(out, org, strlen(org) + 1);
	return 0;
}

/* The length of a name without an absolute name's final dot. */
static size_t
name_len(const char *s)
{
	size_t n = strlen(s);

	return n && s[n - 1] == '.' ? n - 1 : n;
}

int
dmarc_aligned(const char *authenticated, const char *from_domain, char mode)
{
	char a[256], b[256];
	size_t n;

	if (!authenticated || !from_domain)
		return 0;
	if (mode == 's') { /* strict: the same name */
		n = name_len(authenticated);
		return n > 0 && n == name_len(from_domain) &&
		       !strncasecmp(authenticated, from_domain, n);
	}
	return dmarc_org_domain(authenticated, a, sizeof a) == 0 &&
	       dmarc_org_domain(from_domain, b, sizeof b) == 0 && !strcmp(a, b);
}
