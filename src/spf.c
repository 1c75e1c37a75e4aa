/*
 * spf.c - SPF policy evaluation for doctor (see spf.h; RFC 7208).
 *
 * check_host() (§4) is one recursive walk: fetch the domain's TXT records,
 * take the one SPF record (none: "none"; two: permerror, §4.5), read its
 * terms left to right (§4.6) and remember the first mechanism that matches.
 * Unlike a receiver it does not stop there: the rest of the tree is still
 * walked, without resolving a/mx/exists any more, so that the look-up count
 * is the one a receiver checking any other address would reach (§4.6.4).
 * include (§5.2) matches when the included domain passes; redirect (§6.1)
 * applies only when no mechanism matched.
 */
#include "herald/spf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/config.h"

#define SPF_DEPTH_MAX 12 /* include/redirect nesting; the look-up limit ends loops sooner */

struct walk {
	const struct spf_dns *dns;
	int family;
	const unsigned char *ip;  /* NULL: no address to match */
	int lookups;
	int permerror;            /* set once: the why says which */
	char why[256];
	struct herr *err;
};

const char *
spf_result_name(enum spf_result r)
{
	static const char *names[] = { "pass", "fail", "softfail", "neutral", "none",
	                               "permerror" };
	return names[r];
}

/* "v=spf1" alone or followed by a space (§4.5). */
static int
is_spf(const char *txt)
{
	return !strncasecmp(txt, "v=spf1", 6) && (txt[6] == '\0' || txt[6] == ' ');
}

size_t
spf_records(const struct dns_answer *txt, const char **first)
{
	size_t n = 0;

	if (first)
		*first = NULL;
	for (size_t i = 0; i < txt->n; i++)
		if (is_spf(txt->records[i])) {
			if (!n && first)
				*first = txt->records[i];
			n++;
		}
	return n;
}

/* The first permerror is the one reported. */
static void permerror(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
permerror(struct walk *w, const char *fmt, ...)
{
	va_list ap;

	if (w->permerror)
		return;
	w->permerror = 1;
	va_start(ap, fmt);
	vsnprintf(w->why, sizeof w->why, fmt, ap);
	va_end(ap);
}

/* Count one DNS-querying term; 0 while within the limit. */
static int
count_lookup(struct walk *w)
{
	if (++w->lookups <= SPF_LOOKUP_LIMIT)
		return 0;
	permerror(w, "more than %d DNS look-ups (RFC 7208 §4.6.4)", SPF_LOOKUP_LIMIT);
	return -1;
}

/* One term of a record, split (§4.6.1, §5, §6). */
struct term {
	char qual;          /* '+', '-', '~' or '?' */
	int  modifier;      /* name=value */
	char name[16];      /* lower case */
	char arg[256];      /* domain-spec, address or modifier value; "" if none */
	int  bits4, bits6;  /* dual-cidr-length, -1 when absent */
};

/* "/24", "//64" or "/24//64" at the end of `arg`, cut off into t. */
static int
take_cidr(struct term *t)
{
	char *p = strchr(t->arg, '/');
	char *end;
	long v;

	if (!p)
		return 0;
	*p++ = '\0';
	if (*p != '/') {
		v = strtol(p, &end, 10);
		if (end == p || v < 0 || v > 32)
			return -1;
		t->bits4 = (int)v;
		p = end;
		if (!*p)
			return 0;
		if (*p++ != '/')
			return -1;
	}
	if (*p++ != '/')
		return -1;
	v = strtol(p, &end, 10);
	if (end == p || *end || v < 0 || v > 128)
		return -1;
	t->bits6 = (int)v;
	return 0;
}

static int
parse_term(const char *s, size_t len, struct term *t)
{
	size_t i = 0, n = 0;

	memset(t, 0, sizeof *t);
	t->bits4 = t->bits6 = -1;
	t->qual = '+';
	if (len && strchr("+-~?", s[0])) {
		t->qual = s[0];
		i++;
	}
	while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' ||
	                   s[i] == '.')) {
		if (n + 1 >= sizeof t->name)
			return -1;
		t->name[n++] = (char)tolower((unsigned char)s[i++]);
	}
	t->name[n] = '\0';
	if (!n)
		return -1;
	if (i < len && s[i] == '=') {
		if (t->qual != '+' || s[0] == '+')
			return -1;
		t->modifier = 1;
		i++;
	} else if (i < len && s[i] == ':') {
		i++;
	} else if (i < len && s[i] != '/') {
		return -1;
	}
	if (len - i >= sizeof t->arg)
		return -1;
	memcpy(t->arg, s + i, len - i);
	t->arg[len - i] = '\0';
	/* ip4:/ip6: keep their prefix for config_parse_cidr */
	if (!t->modifier && strcmp(t->name, "ip4") && strcmp(t->name, "ip6"))
		return take_cidr(t);
	return 0;
}

/* Does any address of `name` fall inside the term's CIDR?  1, 0, or -1 on
 * a DNS failure. */
static int
match_host(struct walk *w, const char *name, const struct term *t)
{
	struct dns_answer a;
	struct config_cidr net;
	char spec[INET6_ADDRSTRLEN + 8];
	int hit = 0, bits;

	if (w->dns->query(w->dns->ctx, name, w->family == AF_INET ? DNS_A : DNS_AAAA, &a,
	                  w->err) < 0)
		return -1;
	bits = w->family == AF_INET ? (t->bits4 < 0 ? 32 : t->bits4) :
	                              (t->bits6 < 0 ? 128 : t->bits6);
	for (size_t i = 0; i < a.n && !hit; i++) {
		snprintf(spec, sizeof spec, "%s/%d", a.records[i], bits);
		hit = config_parse_cidr(spec, &net) == 0 && config_cidr_match(&net, w->family, w->ip);
	}
	dns_answer_free(&a);
	return hit;
}

/* mx (§5.4): the addresses of each exchange, at most 10 of them. */
static int
match_mx(struct walk *w, const char *name, const struct term *t)
{
	struct dns_answer mx;
	int hit = 0;

	if (w->dns->query(w->dns->ctx, name, DNS_MX, &mx, w->err) < 0)
		return -1;
	for (size_t i = 0; i < mx.n && i < 10 && hit == 0; i++)
		hit = match_host(w, mx.records[i], t);
	dns_answer_free(&mx);
	return hit;
}

/* exists (§5.7): any A record at all. */
static int
match_exists(struct walk *w, const char *name)
{
	struct dns_answer a;
	int hit;

	if (w->dns->query(w->dns->ctx, name, DNS_A, &a, w->err) < 0)
		return -1;
	hit = a.n > 0;
	dns_answer_free(&a);
	return hit;
}

static enum spf_result
qualifier_result(char q)
{
	return q == '-' ? SPF_FAIL : q == '~' ? SPF_SOFTFAIL : q == '?' ? SPF_NEUTRAL : SPF_PASS;
}

static int check_host(struct walk *w, const char *domain, int depth, enum spf_result *res,
                      char *why, size_t why_size);

/* include:X (§5.2): walked always (for the count), a match when X passes. */
static int
match_include(struct walk *w, const char *target, int depth, int decided)
{
	enum spf_result sub;
	char sub_why[200];

	if (check_host(w, target, depth + 1, &sub, sub_why, sizeof sub_why) < 0)
		return -1;
	if (sub == SPF_NONE)
		permerror(w, "include:%s has no SPF record", target);
	return !decided && sub == SPF_PASS;
}

/* Evaluate one mechanism: 1 match, 0 none, -1 DNS failure. */
static int
match_term(struct walk *w, const struct term *t, const char *domain, int depth, int decided)
{
	const char *target = t->arg[0] ? t->arg : domain;
	struct config_cidr net;
	int resolve = w->ip && !decided && !strchr(target, '%'); /* macros: not expanded */

	if (!strcmp(t->name, "all"))
		return t->arg[0] ? (permerror(w, "'all' takes no argument at %s", domain), 0) : 1;
	if (!strcmp(t->name, "ip4") || !strcmp(t->name, "ip6")) {
		if (config_parse_cidr(t->arg, &net) < 0 ||
		    net.family != (t->name[2] == '4' ? AF_INET : AF_INET6)) {
			permerror(w, "bad address '%s' at %s", t->arg, domain);
			return 0;
		}
		return w->ip && config_cidr_match(&net, w->family, w->ip);
	}
	if (!strcmp(t->name, "a"))
		return count_lookup(w) < 0 ? 0 : resolve ? match_host(w, target, t) : 0;
	if (!strcmp(t->name, "mx"))
		return count_lookup(w) < 0 ? 0 : resolve ? match_mx(w, target, t) : 0;
	if (!strcmp(t->name, "exists"))
		return count_lookup(w) < 0 ? 0 : resolve ? match_exists(w, target) : 0;
	if (!strcmp(t->name, "ptr"))
		return count_lookup(w) < 0 ? 0 : 0; /* §5.5: do not use; never matched here */
	if (!strcmp(t->name, "include")) {
		if (!t->arg[0]) {
			permerror(w, "include without a domain at %s", domain);
			return 0;
		}
		return count_lookup(w) < 0 ? 0 : match_include(w, t->arg, depth, decided);
	}
	permerror(w, "unknown mechanism '%s' at %s", t->name, domain);
	return 0;
}

static int
check_host(struct walk *w, const char *domain, int depth, enum spf_result *res, char *why,
           size_t why_size)
{
	struct dns_answer txt;
	const char *rec, *p, *end;
	char redirect[256] = "", shown[64];
	struct term t;
	size_t n;
	int decided = 0, hit;

	*res = SPF_NEUTRAL;
	snprintf(why, why_size, "no term matched at %s", domain);
	if (depth > SPF_DEPTH_MAX) {
		permerror(w, "includes nested too deeply at %s", domain);
		*res = SPF_PERMERROR;
		return 0;
	}
	if (w->dns->query(w->dns->ctx, domain, DNS_TXT, &txt, w->err) < 0)
		return -1;
	n = spf_records(&txt, &rec);
	if (n == 0) {
		*res = SPF_NONE;
		snprintf(why, why_size, "no SPF record at %s", domain);
		dns_answer_free(&txt);
		return 0;
	}
	if (n > 1) {
		permerror(w, "%zu SPF records at %s (RFC 7208 §4.5: one at most)", n, domain);
		*res = SPF_PERMERROR;
		dns_answer_free(&txt);
		return 0;
	}
	for (p = rec + 6; *p && !w->permerror; p = end) {
		while (*p == ' ')
			p++;
		for (end = p; *end && *end != ' '; end++)
			;
		if (end == p)
			break;
		if (parse_term(p, (size_t)(end - p), &t) < 0) {
			snprintf(shown, sizeof shown, "%.*s", (int)(end - p), p);
			permerror(w, "bad term '%s' at %s", shown, domain);
			break;
		}
		if (t.modifier) {
			/* §6.1: redirect once; exp= and unknown modifiers are ignored */
			if (!strcmp(t.name, "redirect"))
				snprintf(redirect, sizeof redirect, "%s", t.arg);
			continue;
		}
		if ((hit = match_term(w, &t, domain, depth, decided)) < 0) {
			dns_answer_free(&txt);
			return -1;
		}
		if (hit && !decided) {
			decided = 1;
			*res = qualifier_result(t.qual);
			snprintf(shown, sizeof shown, "%.*s", (int)(end - p), p);
			snprintf(why, why_size, "%s at %s", shown, domain);
		}
	}
	dns_answer_free(&txt);
	if (!decided && redirect[0] && !w->permerror) {
		char sub_why[200];

		if (count_lookup(w) < 0)
			return 0;
		if (check_host(w, redirect, depth + 1, res, sub_why, sizeof sub_why) < 0)
			return -1;
		if (*res == SPF_NONE)
			permerror(w, "redirect=%s has no SPF record", redirect);
		snprintf(why, why_size, "redirect=%s: %s", redirect, sub_why);
	}
	if (w->permerror)
		*res = SPF_PERMERROR;
	return 0;
}

int
spf_check(const struct spf_dns *dns, const char *domain, int family, const unsigned char *ip,
          struct spf_verdict *v, struct herr *err)
{
	struct walk w;

	memset(&w, 0, sizeof w);
	w.dns = dns;
	w.family = family;
	w.ip = ip;
	w.err = err;
	memset(v, 0, sizeof *v);
	if (check_host(&w, domain, 0, &v->result, v->why, sizeof v->why) < 0)
		return -1;
	v->lookups = w.lookups;
	if (w.permerror) {
		v->result = SPF_PERMERROR;
		snprintf(v->why, sizeof v->why, "%s", w.why);
	}
	return 0;
}
