/*
 * doctor.c - the checks of `herald doctor` (see doctor.h).
 *
 * Each check_*() adds one result per thing it looked at (relay checks one
 * per relay, dkim one per key) through add(), which takes ownership of the
 * two strings it is given.  A DNS question that gets no answer at all is a
 * fail marked dns_unanswered, never "no record": the CLI exits 69 then.
 * The fixes are computed, not canned: the SPF record with the relay's
 * address added, the DKIM record of the configured key (dkim_dns_record(),
 * as `herald dkim keygen` prints it), the DMARC record to start with.
 *
 * RFCs: 7208 (SPF, via spf.c), 6376 §3.6.1 (DKIM key records), 7489 (DMARC,
 * via dmarc.c), 8058 (one-click unsubscribe), 5321/3207/4954 (the relay,
 * via smtp.c).
 */
#include "herald/doctor.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/buf.h"
#include "herald/dkim.h"
#include "herald/dmarc.h"
#include "herald/dns.h"
#include "herald/mailbox.h"
#include "herald/message.h"
#include "herald/smtp.h"
#include "herald/spf.h"
#include "herald/token.h"

#define DOCTOR_TEXT_MAX  (1u << 17) /* one saw or fix string */
#define DOCTOR_RELAY_ADDRS 8        /* relay addresses SPF is checked for */
#define DOCTOR_HTTP_BODY 4096       /* of the one-click reply, kept to show */

const char doctor_check_names[] = "spf,dkim,dmarc,tracking,https,one-click,relay,bounce";

struct run {
	const struct config      *cfg;
	const struct doctor_opts *o;
	struct doctor_report     *rep;
	struct dns_resolver      *dns;
	const char *from_domain;  /* [sender] from's domain */
	const char *env_domain;   /* the envelope sender's: return_path's, else From's */
	int dns_silent;           /* a question got no answer: ask no more */
	int oom;
};

/* A relay's address, for SPF. */
struct relay_addr {
	int family;
	unsigned char ip[16];
	char text[INET6_ADDRSTRLEN];
};

const char *
doctor_status_name(enum doctor_status s)
{
	static const char *names[] = { "pass", "warn", "fail", "skip" };
	return names[s];
}

int
doctor_checks_parse(const char *list, unsigned *out, struct herr *err)
{
	static const char *names[] = { "spf", "dkim", "dmarc", "tracking", "https", "one-click",
	                               "relay", "bounce" };
	const char *p = list, *end;
	size_t i, n;

	*out = 0;
	while (*p) {
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		for (i = 0; i < sizeof names / sizeof names[0]; i++)
			if (strlen(names[i]) == n && !strncmp(p, names[i], n))
				break;
		if (i == sizeof names / sizeof names[0])
			return herr_set(err, EX_USAGE, NULL, "unknown check '%.*s' (checks: %s)",
			                (int)n, p, doctor_check_names);
		*out |= 1u << i;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!*out)
		return herr_set(err, EX_USAGE, NULL, "--only needs check names (%s)",
		                doctor_check_names);
	return 0;
}

void
doctor_report_free(struct doctor_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->results[i].saw);
		free(rep->results[i].fix);
	}
	free(rep->results);
	rep->results = NULL;
	rep->n = 0;
}

/* A new formatted string, or NULL (noted in d->oom) when memory ran out. */
static char *fmt(struct run *d, const char *f, ...) __attribute__((format(printf, 2, 3)));
static char *
fmt(struct run *d, const char *f, ...)
{
	struct buf b = BUF_INIT(DOCTOR_TEXT_MAX);
	va_list ap;
	char *s;

	va_start(ap, f);
	/* past the cap the text is cut, not lost */
	buf_vaddf(&b, f, ap);
	va_end(ap);
	if (!(s = buf_detach(&b)) && !(s = strdup("")))
		d->oom = 1;
	return s;
}

/* Append a result; takes `saw` and `fix` (either may be NULL). */
static void
add(struct run *d, const char *check, enum doctor_status st, int dns_unanswered, char *saw,
    char *fix)
{
	struct doctor_report *rep = d->rep;
	struct doctor_result *grown;

	if (!saw)
		d->oom = 1;
	grown = realloc(rep->results, (rep->n + 1) * sizeof *grown);
	if (!grown) {
		d->oom = 1;
		free(saw);
		free(fix);
		return;
	}
	rep->results = grown;
	grown[rep->n++] = (struct doctor_result){ check, st, saw ? saw : NULL,
	                                          st == DOCTOR_PASS ? (free(fix), NULL) : fix,
	                                          dns_unanswered };
}

/* `s` in double quotes, control characters escaped (herr_show). */
static char *
quoted(struct run *d, const char *s)
{
	size_t size = strlen(s) * 4 + 8;
	char *shown = malloc(size), *out;

	if (!shown) {
		d->oom = 1;
		return NULL;
	}
	herr_show(shown, size, s);
	out = fmt(d, "\"%s\"", shown);
	free(shown);
	return out;
}

/* Every record of `a`, quoted, space-separated; "none" when empty. */
static char *
quoted_all(struct run *d, const struct dns_answer *a)
{
	struct buf b = BUF_INIT(DOCTOR_TEXT_MAX);
	char *q, *s;

	if (!a->n)
		return fmt(d, "none");
	for (size_t i = 0; i < a->n; i++) {
		if (!(q = quoted(d, a->records[i])))
			break;
		buf_addf(&b, "%s%s", i ? " " : "", q);
		free(q);
	}
	if (!(s = buf_detach(&b)))
		d->oom = 1;
	return s;
}

static const char *
type_name(enum dns_type t)
{
	static const char *names[] = { "TXT", "A", "AAAA", "MX" };
	return names[t];
}

/* Ask DNS; on no answer add a fail for `check` saying so and return -1. */
static int
ask(struct run *d, const char *check, const char *name, enum dns_type t, struct dns_answer *a)
{
	struct herr e;

	herr_clear(&e);
	if (d->dns_silent) {
		/* one timeout is enough: asking again would only wait again */
		a->records = NULL;
		a->n = 0;
		add(d, check, DOCTOR_SKIP, 0,
		    fmt(d, "%s %s: not asked, %s gave no answer above", name, type_name(t),
		        dns_server_name(d->dns)), NULL);
		return -1;
	}
	if (dns_query(d->dns, name, t, a, &e) == 0)
		return 0;
	if (e.code == EX_OSERR)
		d->oom = 1;
	d->dns_silent = e.code == EX_UNAVAILABLE;
	add(d, check, DOCTOR_FAIL, e.code == EX_UNAVAILABLE,
	    fmt(d, "%s %s: %s", name, type_name(t), e.msg),
	    fmt(d, "make %s answer for %s (or name a resolver that does with --resolver)",
	        dns_server_name(d->dns), name));
	return -1;
}

/* spf.h's DNS, answered by this run's resolver. */
static int
spf_query(void *ctx, const char *name, enum dns_type type, struct dns_answer *out,
          struct herr *err)
{
	struct run *d = ctx;

	return dns_query(d->dns, name, type, out, err);
}

/* The host of a URL by libcurl's parser, IPv6 brackets removed, and its
 * port (the scheme's default when none is written) when `port` is not
 * NULL. */
static int
url_host(const char *url, char *out, size_t size, long *port)
{
	CURLU *u = curl_url();
	char *host = NULL, *port_text = NULL;
	int rc = -1;
	size_t n;

	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    (!port || curl_url_get(u, CURLUPART_PORT, &port_text, CURLU_DEFAULT_PORT) ==
	              CURLUE_OK)) {
		const char *h = host;

		n = strlen(h);
		if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
			h++;
			n -= 2;
		}
		if (n < size) {
			memcpy(out, h, n);
			out[n] = '\0';
			if (port)
				*port = strtol(port_text, NULL, 10);
			rc = 0;
		}
	}
	curl_free(port_text);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/* A literal address: 1 and *a filled, else 0. */
static int
literal_address(const char *host, struct relay_addr *a)
{
	if (inet_pton(AF_INET, host, a->ip) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, host, a->ip) == 1)
		a->family = AF_INET6;
	else
		return 0;
	inet_ntop(a->family, a->ip, a->text, sizeof a->text);
	return 1;
}

/* 127.0.0.0/8 or ::1. */
static int
is_loopback(const struct relay_addr *a)
{
	static const unsigned char v6_loopback[16] = { [15] = 1 };

	return a->family == AF_INET ? a->ip[0] == 127 : !memcmp(a->ip, v6_loopback, 16);
}

/* Keep `a` as out[*n] unless it is a loopback address: a relay on this
 * machine (a local Postfix) hands mail on from this machine's public
 * address, which doctor cannot see, so SPF is not judged for 127.0.0.1. */
static void
keep_address(const struct relay_addr *a, struct relay_addr *out, size_t *n, int *loopback)
{
	if (is_loopback(a))
		*loopback = 1;
	else
		out[(*n)++] = *a;
}

/* The addresses the relays are reached at: literal, or their A records.
 * A relay host that does not resolve adds nothing (its address is then
 * unknown, and SPF is judged without it); *loopback is set when a relay is
 * on this machine. */
static size_t
relay_addresses(struct run *d, struct relay_addr *out, size_t max, int *loopback)
{
	struct relay_addr lit;
	struct dns_answer a;
	struct herr e;
	char host[256];
	size_t n = 0;

	*loopback = 0;
	for (size_t i = 0; i < d->cfg->n_relays && n < max; i++) {
		if (url_host(d->cfg->relays[i].url, host, sizeof host, NULL) < 0)
			continue;
		if (literal_address(host, &lit)) {
			keep_address(&lit, out, &n, loopback);
			continue;
		}
		herr_clear(&e);
		if (d->dns_silent || dns_query(d->dns, host, DNS_A, &a, &e) < 0)
			continue;
		for (size_t k = 0; k < a.n && n < max; k++)
			if (literal_address(a.records[k], &lit))
				keep_address(&lit, out, &n, loopback);
		dns_answer_free(&a);
	}
	return n;
}

/* ---- spf ---- */

static void
check_spf(struct run *d)
{
	const struct spf_dns sd = { spf_query, d };
	struct relay_addr ra[DOCTOR_RELAY_ADDRS];
	struct spf_verdict v;
	struct dns_answer txt;
	struct buf allowed = BUF_INIT(1024);
	const char *dom = d->env_domain, *rec;
	struct herr e;
	char *shown;
	size_t n, nra, i;
	int loopback;

	if (ask(d, "spf", dom, DNS_TXT, &txt) < 0)
		return;
	nra = relay_addresses(d, ra, DOCTOR_RELAY_ADDRS, &loopback);
	n = spf_records(&txt, &rec);
	shown = quoted_all(d, &txt);
	if (n == 0) {
		add(d, "spf", DOCTOR_FAIL, 0, fmt(d, "%s TXT: no v=spf1 record (TXT seen: %s)", dom,
		                                  shown ? shown : ""),
		    nra ? fmt(d, "publish %s TXT \"v=spf1 %s:%s -all\"", dom,
		              ra[0].family == AF_INET ? "ip4" : "ip6", ra[0].text) :
		          fmt(d, "publish %s TXT \"v=spf1 ip4:<your relay's address> -all\"", dom));
		free(shown);
		dns_answer_free(&txt);
		return;
	}
	if (n > 1) {
		add(d, "spf", DOCTOR_FAIL, 0,
		    fmt(d, "%s TXT %s: %zu SPF records", dom, shown ? shown : "", n),
		    fmt(d, "merge them into one v=spf1 record at %s: with two, receivers treat "
		           "SPF as broken (RFC 7208 §4.5 permerror)", dom));
		free(shown);
		dns_answer_free(&txt);
		return;
	}
	free(shown);
	shown = quoted(d, rec);
	/* no relay address known: still read the record for soundness */
	for (i = 0; i < (nra ? nra : 1); i++) {
		herr_clear(&e);
		if (spf_check(&sd, dom, nra ? ra[i].family : 0, nra ? ra[i].ip : NULL, &v, &e) < 0) {
			d->dns_silent = e.code == EX_UNAVAILABLE;
			add(d, "spf", DOCTOR_FAIL, e.code == EX_UNAVAILABLE,
			    fmt(d, "%s TXT %s: evaluating it: %s", dom, shown ? shown : "", e.msg),
			    fmt(d, "make %s answer for the names the record uses",
			        dns_server_name(d->dns)));
			goto out;
		}
		if (v.result == SPF_PERMERROR) {
			add(d, "spf", DOCTOR_FAIL, 0,
			    fmt(d, "%s TXT %s: %s", dom, shown ? shown : "", v.why),
			    v.lookups > SPF_LOOKUP_LIMIT ?
			        fmt(d, "replace include: terms of %s with the ip4:/ip6: ranges they "
			               "stand for, to stay within %d DNS look-ups", dom,
			            SPF_LOOKUP_LIMIT) :
			        fmt(d, "correct the record at %s: receivers treat a broken one as a "
			               "failure (RFC 7208 §2.6.7)", dom));
			goto out;
		}
		if (nra && v.result != SPF_PASS) {
			const char *mech = ra[i].family == AF_INET ? "ip4" : "ip6";

			add(d, "spf", DOCTOR_FAIL, 0,
			    fmt(d, "%s TXT %s: %s for relay address %s (%s)", dom, shown ? shown : "",
			        spf_result_name(v.result), ra[i].text, v.why),
			    fmt(d, "add %s:%s to it: %s TXT \"v=spf1 %s:%s%s\"", mech, ra[i].text, dom,
			        mech, ra[i].text, rec + 6));
			goto out;
		}
		if (nra)
			buf_addf(&allowed, "%s%s", i ? ", " : "", ra[i].text);
	}
	add(d, "spf", DOCTOR_PASS, 0,
	    nra ? fmt(d, "%s TXT %s allows %s (%d DNS look-ups)", dom, shown ? shown : "",
	              buf_str(&allowed), v.lookups) :
	          fmt(d, "%s TXT %s (%d DNS look-ups; %s, so not checked against it)", dom,
	              shown ? shown : "", v.lookups,
	              loopback ? "the relay is on this machine and the address mail leaves "
	                         "from is not known here" : "the relay's address is not known"),
	    NULL);
out:
	free(shown);
	buf_free(&allowed);
	dns_answer_free(&txt);
}

/* ---- dkim ---- */

/* "t=y" among the colon-separated flags of t= (RFC 6376 §3.6.1). */
static int
testing_flag(const char *rec)
{
	char t[64], *p;

	if (dns_tag_value(rec, "t", t, sizeof t) <= 0)
		return 0;
	for (p = strtok(t, ":"); p; p = strtok(NULL, ":"))
		if (!strcmp(p, "y"))
			return 1;
	return 0;
}

static void
check_dkim_key(struct run *d, enum dkim_alg alg, const char *selector, const char *key)
{
	const char *domain = d->cfg->dkim_domain ? d->cfg->dkim_domain : d->from_domain;
	struct buf want = BUF_INIT(8192);
	struct dns_answer txt;
	char name[600], want_p[2048], got_p[4096], *shown = NULL;
	const char *rec = NULL;
	size_t n = 0;
	struct herr e;

	herr_clear(&e);
	snprintf(name, sizeof name, "%s._domainkey.%s", selector, domain);
	if (dkim_dns_record(alg, key, &want, &e) < 0 ||
	    dns_tag_value(buf_str(&want), "p", want_p, sizeof want_p) <= 0) {
		add(d, "dkim", DOCTOR_FAIL, 0, fmt(d, "%s: %s", key, e.msg),
		    fmt(d, "point [dkim] at a readable private key of its own (herald dkim keygen "
		           "makes one)"));
		buf_free(&want);
		return;
	}
	if (ask(d, "dkim", name, DNS_TXT, &txt) < 0) {
		buf_free(&want);
		return;
	}
	/* key records are those with a p= tag (§3.6.1: the one required tag) */
	for (size_t i = 0; i < txt.n; i++)
		if (dns_tag_value(txt.records[i], "p", got_p, sizeof got_p) != 0) {
			if (!n)
				rec = txt.records[i];
			n++;
		}
	shown = n ? quoted(d, rec) : quoted_all(d, &txt);
	if (n == 0)
		add(d, "dkim", DOCTOR_FAIL, 0,
		    fmt(d, "%s TXT: no DKIM key (TXT seen: %s)", name, shown ? shown : ""),
		    fmt(d, "publish %s TXT \"%s\"", name, buf_str(&want)));
	else if (n > 1)
		add(d, "dkim", DOCTOR_FAIL, 0,
		    fmt(d, "%s TXT: %zu key records, first %s", name, n, shown ? shown : ""),
		    fmt(d, "keep only one: %s TXT \"%s\"", name, buf_str(&want)));
	else if (dns_tag_value(rec, "p", got_p, sizeof got_p) < 0 || !got_p[0])
		add(d, "dkim", DOCTOR_FAIL, 0,
		    fmt(d, "%s TXT %s: key revoked (empty or oversized p=)", name, shown ? shown : ""),
		    fmt(d, "publish %s TXT \"%s\"", name, buf_str(&want)));
	else if (strcmp(got_p, want_p))
		add(d, "dkim", DOCTOR_FAIL, 0,
		    fmt(d, "%s TXT %s: p= is not the public half of %s", name, shown ? shown : "",
		        key),
		    fmt(d, "publish %s TXT \"%s\" (the record of the configured key)", name,
		        buf_str(&want)));
	else if (testing_flag(rec))
		add(d, "dkim", DOCTOR_WARN, 0,
		    fmt(d, "%s TXT %s matches %s, in testing mode (t=y: receivers may treat "
		           "signed mail as unsigned)", name, shown ? shown : "", key),
		    fmt(d, "drop t=y once signatures verify: %s TXT \"%s\"", name, buf_str(&want)));
	else
		add(d, "dkim", DOCTOR_PASS, 0,
		    fmt(d, "%s TXT %s matches %s", name, shown ? shown : "", key), NULL);
	free(shown);
	dns_answer_free(&txt);
	buf_free(&want);
}

static void
check_dkim(struct run *d)
{
	const struct config *c = d->cfg;

	if (!c->dkim_key)
		add(d, "dkim", DOCTOR_WARN, 0, fmt(d, "[dkim] private_key is not set: mail goes "
		                                      "out unsigned"),
		    fmt(d, "run herald dkim keygen --domain %s --selector SELECTOR, publish the "
		           "record it prints and add the [dkim] lines it gives", d->from_domain));
	else
		check_dkim_key(d, DKIM_RSA_SHA256, c->dkim_selector, c->dkim_key);
	if (c->dkim_ed_key)
		check_dkim_key(d, DKIM_ED25519_SHA256, c->dkim_ed_selector, c->dkim_ed_key);
}

/* ---- dmarc ---- */

/* The DMARC records at _dmarc.`domain`: 0 with *n and *rec (the first);
 * -1 when DNS did not answer (a fail was added). */
static int
dmarc_lookup(struct run *d, const char *domain, struct dns_answer *txt, size_t *n,
             const char **rec)
{
	char name[300];

	snprintf(name, sizeof name, "_dmarc.%s", domain);
	if (ask(d, "dmarc", name, DNS_TXT, txt) < 0)
		return -1;
	*n = 0;
	*rec = NULL;
	for (size_t i = 0; i < txt->n; i++)
		if (dmarc_is_record(txt->records[i])) {
			if (!*n)
				*rec = txt->records[i];
			(*n)++;
		}
	return 0;
}

static void
check_dmarc(struct run *d)
{
	const struct config *c = d->cfg;
	const char *from = d->from_domain, *where = from, *rec, *policy;
	const char *dkim_d = c->dkim_key ? (c->dkim_domain ? c->dkim_domain : from) : NULL;
	struct dmarc_record r;
	struct dns_answer txt;
	char org[256], why[128], dkim_text[400], *shown = NULL;
	int dkim_ok, spf_ok;
	size_t n;

	if (dmarc_lookup(d, from, &txt, &n, &rec) < 0)
		return;
	if (n == 0 && dmarc_org_domain(from, org, sizeof org) == 0 && strcasecmp(org, from)) {
		dns_answer_free(&txt);
		where = org;
		if (dmarc_lookup(d, org, &txt, &n, &rec) < 0)
			return;
	} else {
		snprintf(org, sizeof org, "%s", from);
	}
	if (n == 0) {
		add(d, "dmarc", DOCTOR_FAIL, 0,
		    strcmp(where, from) ? fmt(d, "_dmarc.%s TXT: no DMARC record, nor at _dmarc.%s",
		                              from, where) :
		                          fmt(d, "_dmarc.%s TXT: no DMARC record", from),
		    fmt(d, "publish _dmarc.%s TXT \"v=DMARC1; p=none; rua=mailto:postmaster@%s\", "
		           "then p=quarantine once the reports show your mail aligned", org, org));
		dns_answer_free(&txt);
		return;
	}
	shown = n > 1 ? quoted_all(d, &txt) : quoted(d, rec);
	if (n > 1) {
		add(d, "dmarc", DOCTOR_FAIL, 0,
		    fmt(d, "_dmarc.%s TXT %s: %zu DMARC records", where, shown ? shown : "", n),
		    fmt(d, "keep one: with more, receivers apply none (RFC 7489 §6.6.3)"));
		goto out;
	}
	if (dmarc_parse(rec, &r, why, sizeof why) < 0) {
		add(d, "dmarc", DOCTOR_FAIL, 0,
		    fmt(d, "_dmarc.%s TXT %s: %s", where, shown ? shown : "", why),
		    fmt(d, "publish a valid record, e.g. _dmarc.%s TXT \"v=DMARC1; p=none; "
		           "rua=mailto:postmaster@%s\"", where, where));
		goto out;
	}
	/* a record found at the organizational domain governs a From
	 * subdomain with sp= when it has one (§6.3) */
	policy = strcasecmp(where, from) && r.sp[0] ? r.sp : r.p;
	dkim_ok = dkim_d && dmarc_aligned(dkim_d, from, r.adkim);
	spf_ok = dmarc_aligned(d->env_domain, from, r.aspf);
	if (dkim_d)
		snprintf(dkim_text, sizeof dkim_text, "DKIM d=%s %s (adkim=%c)", dkim_d,
		         dkim_ok ? "aligned" : "not aligned", r.adkim);
	else
		snprintf(dkim_text, sizeof dkim_text, "no DKIM");
	if (!dkim_ok && !spf_ok) {
		int relaxed = (dkim_d && dmarc_aligned(dkim_d, from, 'r')) ||
		              dmarc_aligned(d->env_domain, from, 'r');

		add(d, "dmarc", DOCTOR_FAIL, 0,
		    fmt(d, "_dmarc.%s TXT %s: From %s aligns with nothing: %s, SPF %s not aligned "
		           "(aspf=%c)", where, shown ? shown : "", from, dkim_text, d->env_domain,
		        r.aspf),
		    relaxed ? fmt(d, "use relaxed alignment (adkim=r; aspf=r) in _dmarc.%s, or sign "
		                     "with [dkim] domain = %s", where, from) :
		              fmt(d, "sign with [dkim] domain = %s (and publish its key), or send "
		                     "with a [sender] return_path at %s", from, from));
	} else if (!strcmp(policy, "none")) {
		add(d, "dmarc", DOCTOR_WARN, 0,
		    fmt(d, "_dmarc.%s TXT %s: p=none asks receivers to do nothing with mail that "
		           "fails; %s, SPF %s %s (aspf=%c)", where, shown ? shown : "", dkim_text,
		        d->env_domain, spf_ok ? "aligned" : "not aligned", r.aspf),
		    fmt(d, "once the reports%s show your mail aligned, publish p=quarantine at "
		           "_dmarc.%s", r.rua[0] ? " (rua)" : " (add rua=mailto:...)", where));
	} else {
		add(d, "dmarc", DOCTOR_PASS, 0,
		    fmt(d, "_dmarc.%s TXT %s: p=%s; %s, SPF %s %s (aspf=%c)", where,
		        shown ? shown : "", policy, dkim_text, d->env_domain,
		        spf_ok ? "aligned" : "not aligned", r.aspf), NULL);
	}
out:
	free(shown);
	dns_answer_free(&txt);
}

/* ---- the web side ---- */

static void
check_tracking(struct run *d)
{
	struct dns_answer a, aaaa;
	struct relay_addr lit;
	char host[256];

	if (url_host(d->cfg->base_url, host, sizeof host, NULL) < 0) {
		add(d, "tracking", DOCTOR_FAIL, 0, fmt(d, "base_url = %s has no host", d->cfg->base_url),
		    fmt(d, "set [web] base_url = https://HOST of herald serve"));
		return;
	}
	if (literal_address(host, &lit)) {
		add(d, "tracking", DOCTOR_PASS, 0, fmt(d, "%s is an address: nothing to resolve", host),
		    NULL);
		return;
	}
	if (ask(d, "tracking", host, DNS_A, &a) < 0)
		return;
	if (ask(d, "tracking", host, DNS_AAAA, &aaaa) < 0) {
		dns_answer_free(&a);
		return;
	}
	if (!a.n && !aaaa.n) {
		add(d, "tracking", DOCTOR_FAIL, 0, fmt(d, "%s A: none, AAAA: none", host),
		    fmt(d, "publish %s A (or AAAA) with the address of the server running herald "
		           "serve: every link and the open pixel point there", host));
	} else {
		struct dns_answer *both[] = { &a, &aaaa };
		struct buf b = BUF_INIT(4096);

		for (int k = 0; k < 2; k++)
			for (size_t i = 0; i < both[k]->n; i++)
				buf_addf(&b, "%s%s", b.len ? ", " : "", both[k]->records[i]);
		add(d, "tracking", DOCTOR_PASS, 0, fmt(d, "%s resolves to %s", host, buf_str(&b)),
		    NULL);
		buf_free(&b);
	}
	dns_answer_free(&a);
	dns_answer_free(&aaaa);
}

static void
check_https(struct run *d)
{
	const char *url = d->cfg->base_url;
	char host[256];

	if (url_host(url, host, sizeof host, NULL) < 0)
		snprintf(host, sizeof host, "HOST");
	/* Loopback is a warning, not a fail: it is how a test or a demo runs,
	 * and nothing is wrong with the config, but no reader can follow a
	 * link to this machine's 127.0.0.1. */
	if (config_url_is_loopback(url))
		add(d, "https", DOCTOR_WARN, 0,
		    fmt(d, "base_url = %s is on a loopback host: its links work on this machine "
		           "only", url),
		    fmt(d, "set [web] base_url to the public https:// address of herald serve"));
	else if (strncmp(url, "https://", 8))
		add(d, "https", DOCTOR_WARN, 0,
		    fmt(d, "base_url = %s is not https: the one-click unsubscribe URL must be "
		           "(RFC 8058 §3.1), and mail clients flag plain links", url),
		    fmt(d, "put herald serve behind TLS and set [web] base_url = https://%s", host));
	else
		add(d, "https", DOCTOR_PASS, 0, fmt(d, "base_url = %s", url), NULL);
}

/*
 * With --resolver, libcurl is told the addresses that resolver gives for
 * base_url's host (CURLOPT_RESOLVE), so the POST goes where the tracking
 * check said the name points, not where the system's resolver would send
 * it.  Nothing is pinned for a literal address or when DNS says nothing.
 */
static struct curl_slist *
pin_base_url(struct run *d)
{
	struct buf entry = BUF_INIT(2048);
	struct curl_slist *pins = NULL;
	struct relay_addr lit;
	struct dns_answer a;
	enum dns_type types[] = { DNS_A, DNS_AAAA };
	char host[256];
	struct herr e;
	long port;

	if (!d->o->resolver || d->dns_silent ||
	    url_host(d->cfg->base_url, host, sizeof host, &port) < 0 || literal_address(host, &lit))
		return NULL;
	if (buf_addf(&entry, "%s:%ld:", host, port) < 0) {
		d->oom = 1;
		return NULL;
	}
	for (int k = 0; k < 2; k++) {
		herr_clear(&e);
		if (dns_query(d->dns, host, types[k], &a, &e) < 0)
			continue;
		for (size_t i = 0; i < a.n; i++)
			buf_addf(&entry, types[k] == DNS_AAAA ? "%s[%s]" : "%s%s",
			         entry.data[entry.len - 1] == ':' ? "" : ",", a.records[i]);
		dns_answer_free(&a);
	}
	if (entry.data && entry.data[entry.len - 1] != ':' &&
	    !(pins = curl_slist_append(NULL, buf_str(&entry))))
		d->oom = 1;
	buf_free(&entry);
	return pins;
}

static size_t
keep_body(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;

	/* past the cap the rest is dropped: the start is what is shown */
	buf_add(b, p, size * n);
	return size * n;
}

/*
 * RFC 8058 §3.2: the receiver POSTs "List-Unsubscribe=One-Click" to the
 * https URL of List-Unsubscribe.  The URL is made as message.c makes it for
 * a mail, with a genuine token for subscriber 0 of list 0, which no row
 * has: herald serve checks the token (a forged one gets 404), finds nobody
 * to unsubscribe and answers 200 "unsubscribed", changing nothing.  So a
 * pass proves the URL reaches a herald serve that reads the same secret.
 */
static void
check_one_click(struct run *d)
{
	const struct config *c = d->cfg;
	struct buf body = BUF_INIT(DOCTOR_HTTP_BODY);
	struct token_key key;
	char url[600], errbuf[CURL_ERROR_SIZE] = "", shown[200];
	struct curl_slist *pins;
	long code = 0;
	CURLcode rc;
	CURL *h;
	struct herr e;

	herr_clear(&e);
	if (!c->secret_file || token_key_load(c->secret_file, &key, &e) < 0) {
		add(d, "one-click", DOCTOR_FAIL, 0,
		    fmt(d, "[web] secret_file: %s", e.msg[0] ? e.msg : "not set"),
		    fmt(d, "run herald init (it makes the secret) or point [web] secret_file at "
		           "the one herald serve reads"));
		return;
	}
	rc = message_unsubscribe_url(c, &key, 0, 0, 0, url, sizeof url);
	explicit_bzero(&key, sizeof key);
	if (rc != 0 || !(h = curl_easy_init())) {
		d->oom = 1;
		return;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "List-Unsubscribe=One-Click");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT,
	                 d->o->http_timeout_s > 0 ? d->o->http_timeout_s : 10L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "herald-doctor/" HERALD_VERSION);
	pins = pin_base_url(d);
	curl_easy_setopt(h, CURLOPT_RESOLVE, pins);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	curl_slist_free_all(pins);
	herr_show(shown, sizeof shown, buf_str(&body));
	if (rc != CURLE_OK)
		add(d, "one-click", DOCTOR_FAIL, 0,
		    fmt(d, "POST %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc)),
		    fmt(d, "run herald serve where [web] base_url points (or correct base_url)"));
	else if (code == 200 && !strncmp(buf_str(&body), "unsubscribed", 12))
		add(d, "one-click", DOCTOR_PASS, 0,
		    fmt(d, "POST %s List-Unsubscribe=One-Click -> %ld \"%s\"", url, code, shown), NULL);
	else if (code == 404)
		add(d, "one-click", DOCTOR_FAIL, 0,
		    fmt(d, "POST %s -> 404 \"%s\"", url, shown),
		    fmt(d, "make base_url reach herald serve, and have it read this config's "
		           "[web] secret_file: 404 is its answer to a token it did not make"));
	else if (code / 100 == 3)
		add(d, "one-click", DOCTOR_FAIL, 0, fmt(d, "POST %s -> %ld (a redirect)", url, code),
		    fmt(d, "set [web] base_url to the final address: receivers do not follow "
		           "redirects of a one-click POST"));
	else
		add(d, "one-click", DOCTOR_FAIL, 0, fmt(d, "POST %s -> %ld \"%s\"", url, code, shown),
		    fmt(d, "make base_url reach herald serve%s", code / 100 == 5 ?
		           " and look at its log for the error" : ""));
	buf_free(&body);
}

/* ---- relays and the bounce mailbox ---- */

static const char *
relay_fix(const struct config_relay *r, const struct smtp_probe *p)
{
	switch (p->r.stage) {
	case SMTP_STAGE_CONNECT:
	case SMTP_STAGE_GREETING:
		return "check url (host and port) and that the relay accepts connections from here";
	case SMTP_STAGE_STARTTLS:
		return p->starttls_offered ?
		       "the TLS handshake failed: check ca_file and tls_verify, and the relay's "
		       "certificate" :
		       "the relay does not offer STARTTLS: use its submission port (587) or smtps://, "
		       "or starttls = optional on a trusted network only";
	case SMTP_STAGE_AUTH:
		return r->username && !p->auth_offered ?
		       "the relay offers no AUTH here (often only after STARTTLS): check starttls "
		       "and the port" :
		       "check username and the password in password_env or password_file";
	default:
		return "see the relay's reply; its log says more";
	}
}

static void
check_relay(struct run *d, const struct config_relay *r)
{
	char section[80];
	struct smtp_probe p;
	struct herr e;

	snprintf(section, sizeof section, strcmp(r->name, "smtp") ? "[smtp.%s]" : "[%s]", r->name);
	herr_clear(&e);
	if (smtp_probe(r, &p, &e) < 0) {
		if (e.code)
			add(d, "relay", DOCTOR_FAIL, 0, fmt(d, "%s %s: %s", section, r->url, e.msg),
			    fmt(d, "set password_env or password_file in %s to where the password is",
			        section));
		else
			add(d, "relay", DOCTOR_FAIL, 0,
			    fmt(d, "%s %s: %s: %s%s%s", section, r->url, smtp_stage_name(p.r.stage),
			        p.r.code ? p.r.reply : p.r.detail,
			        p.r.code && p.r.detail[0] ? " / " : "",
			        p.r.code ? p.r.detail : ""),
			    fmt(d, "%s", relay_fix(r, &p)));
		return;
	}
	if (!p.tls && !config_url_is_loopback(r->url))
		add(d, "relay", DOCTOR_WARN, 0,
		    fmt(d, "%s %s: %s, plain text (STARTTLS %s)", section, r->url, p.ehlo,
		        p.starttls_offered ? "offered, not used" : "not offered"),
		    fmt(d, "set starttls = required in %s (or use smtps://)", section));
	else
		add(d, "relay", DOCTOR_PASS, 0,
		    fmt(d, "%s %s: %s; %s; %s", section, r->url, p.ehlo,
		        p.tls ? "TLS" : "plain text on loopback",
		        p.authenticated ? "AUTH accepted" : r->username ? "AUTH not asked" :
		                                                          "no AUTH configured"),
		    NULL);
}

/* mailbox_fn: leave every message where it is (none is read: see below). */
static int
leave_it(void *ctx, const char *name, const char *data, size_t len, struct herr *err)
{
	(void)ctx, (void)name, (void)data, (void)len, (void)err;
	return 1;
}

static void
check_bounce(struct run *d)
{
	const struct config *c = d->cfg;
	struct mailbox_opts o;
	struct mailbox_stats st;
	char password[512];
	struct herr e;
	int rc;

	if (!c->bounce_mailbox) {
		add(d, "bounce", DOCTOR_WARN, 0,
		    fmt(d, "[bounce] mailbox is not set: bounces to %s are read only if your MTA "
		           "pipes them into herald bounce",
		        c->return_path ? c->return_addr.ascii : c->from.ascii),
		    fmt(d, "set [bounce] mailbox, username and password_file to the mailbox that "
		           "receives them, and run herald bounce --fetch from cron"));
		return;
	}
	herr_clear(&e);
	if (config_read_password_file(c->bounce_password_file, password, sizeof password, &e) < 0) {
		add(d, "bounce", DOCTOR_FAIL, 0, fmt(d, "%s: %s", c->bounce_mailbox, e.msg),
		    fmt(d, "set [bounce] password_file to a file holding the password (mode 0600)"));
		return;
	}
	memset(&o, 0, sizeof o);
	o.url = c->bounce_mailbox;
	o.username = c->bounce_username;
	o.password = password;
	o.ca_file = c->bounce_ca_file;
	o.timeout_s = 20;
	/* one byte: every message is "too large", so each is sized and counted,
	 * never fetched nor removed (mailbox.c invariant (5)) */
	o.max_message = 1;
	memset(&st, 0, sizeof st);
	rc = mailbox_fetch_each(&o, leave_it, NULL, &st, &e);
	explicit_bzero(password, sizeof password);
	if (rc < 0)
		add(d, "bounce", DOCTOR_FAIL, 0, fmt(d, "%s: %s", c->bounce_mailbox, e.msg),
		    fmt(d, "%s", e.code == EX_NOPERM ? "check [bounce] username and password_file" :
		                 e.code == EX_UNAVAILABLE ?
		                 "check the host and port of [bounce] mailbox, and that it is up" :
		                 "correct [bounce] mailbox (and ca_file) by the server's reply"));
	else
		add(d, "bounce", DOCTOR_PASS, 0,
		    fmt(d, "%s: logged in as %s, %zu message%s waiting", c->bounce_mailbox,
		        c->bounce_username, st.seen, st.seen == 1 ? "" : "s"), NULL);
}

static void
check_relays(struct run *d)
{
	for (size_t i = 0; i < d->cfg->n_relays; i++)
		check_relay(d, &d->cfg->relays[i]);
}

/* In doctor.h's order: the bit --only sets and the check it runs. */
static const struct {
	unsigned bit;
	void (*run)(struct run *d);
} checks[] = {
	{ DOCTOR_SPF, check_spf },           { DOCTOR_DKIM, check_dkim },
	{ DOCTOR_DMARC, check_dmarc },       { DOCTOR_TRACKING, check_tracking },
	{ DOCTOR_HTTPS, check_https },       { DOCTOR_ONE_CLICK, check_one_click },
	{ DOCTOR_RELAY, check_relays },      { DOCTOR_BOUNCE, check_bounce },
};

int
doctor_run(const struct config *cfg, const struct doctor_opts *o, struct doctor_report *rep,
           struct herr *err)
{
	unsigned want = o->checks ? o->checks : DOCTOR_ALL;
	struct run d;

	memset(&d, 0, sizeof d);
	d.cfg = cfg;
	d.o = o;
	d.rep = rep;
	d.from_domain = cfg->from.domain;
	d.env_domain = cfg->return_path ? cfg->return_addr.domain : cfg->from.domain;
	if ((want & (DOCTOR_SPF | DOCTOR_DKIM | DOCTOR_DMARC | DOCTOR_TRACKING) ||
	     (want & DOCTOR_ONE_CLICK && o->resolver)) &&
	    dns_open(&d.dns, o->resolver, o->dns_timeout_ms, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
		if (want & checks[i].bit)
			checks[i].run(&d);
	dns_close(d.dns);
	if (d.oom)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	return 0;
}
