/*
 * web.c - herald serve: the HTTP endpoint subscribers reach (see web.h).
 *
 * Owns the libmicrohttpd daemon, the per-thread database connections, the
 * cache of issues' links, the sign-up rate limiters and the mail thread
 * that sends double opt-in confirmations.  Called by src/cmd/serve.c; the
 * pages' HTML is webpages.c's.
 *
 * Standards:
 *   RFC 9110 HTTP semantics: 302 with Location (§15.4.3), 405 with Allow
 *            (§15.5.6, §10.2.1), 413 (§15.5.14), 503 with Retry-After
 *            (§15.6.4, §10.2.3); HEAD answers as GET without a body (§9.3.2)
 *   RFC 6585 §4  429 Too Many Requests, with Retry-After
 *   RFC 8058 §3.2 one-click unsubscribe: POST with List-Unsubscribe=One-Click,
 *            urlencoded or multipart/form-data, needs no further interaction
 *   RFC 7578 multipart/form-data; WHATWG URL §5 x-www-form-urlencoded
 *   RFC 3834 (the confirmation mail is Auto-Submitted, see message.c)
 *
 * Invariants (tests/integration/test_web.py and tests/unit/test_web.c check them):
 *   (1) an open or click is recorded only for a valid token of its kind
 *       whose issue and subscriber exist and whose list is that issue's
 *       list (read from the database on every hit: an event naming a
 *       deleted row would fail its batch on a foreign key), and only on
 *       GET (a HEAD records nothing);
 *   (2) a click redirects only to one of the token's issue's own http(s)
 *       links: never anywhere a request names (no open redirect);
 *   (3) GET and HEAD never change the database;
 *   (4) request threads never write events to SQLite: opens and clicks go
 *       to the event writer (eventlog.c), so the disk sees one transaction
 *       per batch; state changes (unsubscribe, confirm, subscribe) are one
 *       transaction each, written before the answer;
 *   (5) every response carries the security headers; every page also
 *       Cache-Control: no-store;
 *   (6) a sign-up never reveals whether the address is known, blocked or
 *       already subscribed: the page is the same.
 *
 * Threads: MHD's pool (one epoll loop per CPU) runs on_request(); each
 * thread opens its own SQLite connection on first use (thread_db()), closed
 * at stop.  The issue cache and the limiters have their own mutexes.  The
 * mail thread owns the SMTP connections and the DKIM signer.
 */
#include "herald/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "herald/address.h"
#include "herald/buf.h"
#include "herald/db.h"
#include "herald/dkim.h"
#include "herald/eventlog.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/message.h"
#include "herald/smtp.h"
#include "herald/subscriber.h"
#include "herald/tmpl.h"
#include "herald/token.h"
#include "herald/utf8.h"
#include "herald/webpages.h"

struct mailer;
struct web_server;

static void web_log(struct web_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int mail_enqueue(struct mailer *m, long long subscriber_id, const struct list *l,
                        const char *email, const char *name);

/* ------------------------------------------------------------------ */
/* User agents                                                        */
/* ------------------------------------------------------------------ */

/*
 * Lower-case substrings of user agents that fetch without a person
 * opening: crawlers, link scanners of mail security gateways, previewers,
 * HTTP libraries and headless browsers.  Not here on purpose: Gmail's
 * "GoogleImageProxy" and Yahoo's "YahooMailProxy", which fetch images when
 * the reader opens the mail, so their hits are real opens.
 */
static const char *const machine_agents[] = {
	"bot", "spider", "crawl", "preview", "scanner", "scan/", "slurp",
	"barracuda", "mimecast", "proofpoint", "messagelabs", "symantec",
	"trendmicro", "trend micro", "forcepoint", "fireeye", "ironport",
	"urldefense", "safelinks", "mailscanner", "existence discovery",
	"facebookexternalhit", "whatsapp", "linkchecker", "link checker",
	"validator", "monitor", "python-", "python/", "curl/", "wget", "libwww",
	"go-http-client", "java/", "okhttp", "httpclient", "http_request",
	"axios", "node-fetch", "undici", "aiohttp", "httpx", "guzzle", "ruby",
	"php/", "postman", "headlesschrome", "phantomjs", "puppeteer",
	"playwright", "zgrab", "masscan", "nmap",
};

/* Case-insensitive strstr for an ASCII lower-case needle. */
static int
has_lower(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	const char *p;

	for (p = hay; *p; p++)
		if (!strncasecmp(p, needle, n))
			return 1;
	return 0;
}

enum web_ua
web_ua_classify(const char *ua)
{
	size_t i;

	if (!ua || !*ua)
		return WEB_UA_MACHINE;
	/* Apple Mail Privacy Protection fetches every image of every mail
	 * on delivery through a proxy that says only this. */
	if (!strcmp(ua, "Mozilla/5.0"))
		return WEB_UA_MACHINE;
	for (i = 0; i < sizeof machine_agents / sizeof machine_agents[0]; i++)
		if (has_lower(ua, machine_agents[i]))
			return WEB_UA_MACHINE;
	return WEB_UA_HUMAN;
}

const char *
web_ua_name(enum web_ua ua)
{
	return ua == WEB_UA_MACHINE ? "machine" : "human";
}

int
web_event_detail(char *out, size_t size, long long n, enum web_ua ua, const char *agent)
{
	const unsigned char *p = (const unsigned char *)(agent ? agent : "");
	size_t o, len = strlen((const char *)p), k, chars = 0;
	int w;

	if (n > 0)
		w = snprintf(out, size, "{\"n\":%lld,\"ua\":\"%s\",\"agent\":\"", n, web_ua_name(ua));
	else
		w = snprintf(out, size, "{\"ua\":\"%s\",\"agent\":\"", web_ua_name(ua));
	if (w < 0 || (size_t)w >= size)
		return -1;
	o = (size_t)w;
	while (*p && chars < WEB_AGENT_MAX) {
		char tmp[8];
		const char *piece = tmp;
		size_t plen;

		k = utf8_seq(p, len, NULL);
		if (k == 0) {
			piece = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
			plen = 3;
			k = 1;
		} else if (*p == '"' || *p == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)*p;
			plen = 2;
		} else if (*p < 0x20 || *p == 0x7f) {
			plen = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p);
		} else {
			piece = (const char *)p;
			plen = k;
		}
		if (o + plen + 3 > size)
			return -1;
		memcpy(out + o, piece, plen);
		o += plen;
		p += k;
		len -= k;
		chars++;
	}
	if (o + 3 > size)
		return -1;
	memcpy(out + o, "\"}", 3);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Routing                                                            */
/* ------------------------------------------------------------------ */

enum web_method
web_method(const char *m)
{
	if (!strcmp(m, "GET"))
		return WEB_GET;
	if (!strcmp(m, "HEAD"))
		return WEB_HEAD;
	if (!strcmp(m, "POST"))
		return WEB_POST;
	return WEB_OTHER;
}

static int
token_chars(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n >= TOKEN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

/* 1..999999999 written plainly: no sign, no leading zero, no spaces. */
static int
parse_number(const char *s, size_t n, long long *out)
{
	size_t i;

	if (n == 0 || n > 9 || s[0] == '0')
		return -1;
	*out = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*out = *out * 10 + (s[i] - '0');
	}
	return 0;
}

static int
starts(const char *s, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n))
		return 0;
	*rest = s + n;
	return 1;
}

void
web_route(enum web_method m, const char *path, struct web_route *r)
{
	static const char get_only[] = "GET, HEAD", post_only[] = "POST",
	                  both[] = "GET, HEAD, POST";
	const char *rest, *slash;
	size_t n;

	memset(r, 0, sizeof *r);
	r->allow = both;
	if (starts(path, "/o/", &rest)) {
		n = strlen(rest);
		/* any /o/....gif is the pixel: a mail client must never show
		 * a broken image, whatever became of the token */
		if (n < 5 || strcmp(rest + n - 4, ".gif"))
			goto not_found;
		r->kind = WEB_ROUTE_OPEN;
		r->allow = get_only;
		if (token_chars(rest, n - 4)) {
			r->token = rest;
			r->token_len = n - 4;
		}
	} else if (starts(path, "/c/", &rest)) {
		if (!(slash = strchr(rest, '/')) || !token_chars(rest, (size_t)(slash - rest)) ||
		    parse_number(slash + 1, strlen(slash + 1), &r->n) < 0)
			goto not_found;
		r->kind = WEB_ROUTE_CLICK;
		r->allow = get_only;
		r->token = rest;
		r->token_len = (size_t)(slash - rest);
	} else if (starts(path, "/u/", &rest) || starts(path, "/confirm/", &rest)) {
		if (!token_chars(rest, strlen(rest)))
			goto not_found;
		r->kind = path[1] == 'u' ? WEB_ROUTE_UNSUBSCRIBE : WEB_ROUTE_CONFIRM;
		r->token = rest;
		r->token_len = strlen(rest);
	} else if (!strcmp(path, "/subscribe")) {
		r->kind = WEB_ROUTE_SUBSCRIBE;
		r->allow = post_only;
	} else if (!strcmp(path, "/archive") || !strcmp(path, "/archive/")) {
		r->kind = WEB_ROUTE_ARCHIVE_INDEX;
		r->allow = get_only;
		r->index_slash = path[8] == '/';
	} else if (starts(path, "/archive/", &rest)) {
		slash = strchr(rest, '/');
		n = slash ? (size_t)(slash - rest) : strlen(rest);
		if (parse_number(rest, n, &r->id) < 0 ||
		    (slash && !token_chars(slash + 1, strlen(slash + 1))))
			goto not_found;
		r->kind = WEB_ROUTE_ARCHIVE;
		r->allow = get_only;
		if (slash) {
			r->token = slash + 1;
			r->token_len = strlen(slash + 1);
		}
	} else
		goto not_found;
	if (m == WEB_OTHER || (m == WEB_POST && r->allow == get_only) ||
	    (m != WEB_POST && r->allow == post_only)) {
		r->status = 405;
		r->kind = WEB_ROUTE_NONE;
	}
	return;
not_found:
	memset(r, 0, sizeof *r);
	r->allow = both;
	r->status = m == WEB_OTHER ? 405 : 404;
}

/* ------------------------------------------------------------------ */
/* Forms                                                              */
/* ------------------------------------------------------------------ */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Append `n` bytes of `s` to the form's data, %-decoding when `enc`;
 * returns the start of the NUL-terminated copy, or NULL when malformed. */
static const char *
form_copy(struct web_form *f, size_t *used, const char *s, size_t n, int enc)
{
	char *start = f->data + *used, *o = start;
	size_t i;
	int hi, lo;

	if (*used + n + 1 > sizeof f->data)
		return NULL;
	for (i = 0; i < n; i++) {
		if (enc && s[i] == '+')
			*o++ = ' ';
		else if (enc && s[i] == '%') {
			if (i + 2 >= n)
				return NULL;
			if ((hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0 || (hi == 0 && lo == 0))
				return NULL;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '\0')
			return NULL;
		else
			*o++ = s[i];
	}
	*o++ = '\0';
	*used += (size_t)(o - start);
	return start;
}

static int
form_add(struct web_form *f, size_t *used, const char *name, size_t nlen, const char *value,
         size_t vlen, int enc)
{
	if (f->n == WEB_FORM_FIELDS)
		return -1;
	if (!(f->f[f->n].name = form_copy(f, used, name, nlen, enc)) ||
	    !(f->f[f->n].value = form_copy(f, used, value, vlen, enc)))
		return -1;
	f->n++;
	return 0;
}

static int
form_urlencoded(const char *body, size_t len, struct web_form *f)
{
	const char *p = body, *end = body + len, *amp, *eq;
	size_t used = 0;

	/* a trailing line break some clients add is not part of the value */
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (!amp)
			amp = end;
		if (amp > p) {
			eq = memchr(p, '=', (size_t)(amp - p));
			if (form_add(f, &used, p, (size_t)((eq ? eq : amp) - p), eq ? eq + 1 : amp,
			             eq ? (size_t)(amp - eq - 1) : 0, 1) < 0)
				return -1;
		}
		p = amp + 1;
	}
	return 0;
}

static const char *
mem_find(const char *hay, size_t n, const char *needle, size_t k)
{
	size_t i;

	if (k == 0 || k > n)
		return NULL;
	for (i = 0; i + k <= n; i++)
		if (hay[i] == needle[0] && !memcmp(hay + i, needle, k))
			return hay + i;
	return NULL;
}

/* A parameter of a header value: `key`=value or `key`="value" after a
 * ';'.  Copies it into out (size); returns 0, or -1 when absent. */
static int
header_param(const char *v, size_t vlen, const char *key, char *out, size_t size)
{
	const char *p = v, *end = v + vlen, *s;
	size_t klen = strlen(key), n;

	while ((p = memchr(p, ';', (size_t)(end - p)))) {
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(end - p) <= klen || strncasecmp(p, key, klen) || p[klen] != '=')
			continue;
		p += klen + 1;
		if (p < end && *p == '"') {
			s = ++p;
			while (p < end && *p != '"')
				p++;
			if (p == end)
				return -1;
		} else {
			s = p;
			while (p < end && *p != ';' && *p != ' ' && *p != '\t')
				p++;
		}
		n = (size_t)(p - s);
		if (n == 0 || n >= size)
			return -1;
		memcpy(out, s, n);
		out[n] = '\0';
		return 0;
	}
	return -1;
}

/* RFC 7578 §4: parts separated by CRLF "--" boundary; each part's
 * Content-Disposition: form-data; name="..." names the field. */
static int
form_multipart(const char *ctype, const char *body, size_t len, struct web_form *f)
{
	char boundary[80], delim[84], name[256];
	const char *p, *end = body + len, *hdr_end, *next, *line, *eol;
	size_t dlen, used = 0;
	int have_name;

	if (header_param(ctype, strlen(ctype), "boundary", boundary, sizeof boundary) < 0 ||
	    strlen(boundary) > 70)
		return -1;
	dlen = (size_t)snprintf(delim, sizeof delim, "--%s", boundary);
	/* the first delimiter: at the very start or after a preamble line */
	if (len >= dlen && !memcmp(body, delim, dlen))
		p = body + dlen;
	else {
		char crlf_delim[88];
		size_t cl = (size_t)snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);

		if (!(p = mem_find(body, len, crlf_delim, cl)))
			return -1;
		p += cl;
	}
	for (;;) {
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return 0; /* the close delimiter */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			return -1;
		p += 2;
		if (!(hdr_end = mem_find(p, (size_t)(end - p), "\r\n\r\n", 4))) {
			/* a part with no headers starts with the blank line */
			if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
				hdr_end = p - 2;
			else
				return -1;
		}
		have_name = 0;
		for (line = p; line < hdr_end; line = eol + 2) {
			if (!(eol = mem_find(line, (size_t)(hdr_end + 2 - line), "\r\n", 2)))
				break;
			if ((size_t)(eol - line) > 20 && !strncasecmp(line, "content-disposition:", 20) &&
			    header_param(line, (size_t)(eol - line), "name", name, sizeof name) == 0)
				have_name = 1;
		}
		p = hdr_end + 4;
		{
			char crlf_delim[88];
			size_t cl = (size_t)snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);

			if (p > end || !(next = mem_find(p, (size_t)(end - p), crlf_delim, cl)))
				return -1;
			if (have_name && form_add(f, &used, name, strlen(name), p, (size_t)(next - p), 0) < 0)
				return -1;
			p = next + cl;
		}
	}
}

int
web_form_parse(const char *ctype, const char *body, size_t len, struct web_form *f)
{
	int rc;

	f->n = 0;
	if (len > WEB_BODY_MAX)
		return -1;
	if (ctype && !strncasecmp(ctype, "multipart/form-data", 19))
		rc = form_multipart(ctype, body, len, f);
	else
		rc = form_urlencoded(body, len, f);
	if (rc < 0)
		f->n = 0;
	return rc;
}

const char *
web_form_get(const struct web_form *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (!strcmp(f->f[i].name, name))
			return f->f[i].value;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Rate limiter                                                       */
/* ------------------------------------------------------------------ */

struct limit_entry {
	struct limit_entry *next;   /* hash chain */
	char   *key;
	double  last;               /* newest hit */
	size_t  head, count;        /* ring of the last max_hits hits */
	double  t[];
};

struct web_limiter {
	pthread_mutex_t      mu;
	size_t               max_hits, max_keys, n_keys, n_buckets;
	double               span;
	uint64_t             seed;  /* random, so keys cannot be chosen to collide */
	struct limit_entry **bucket;
};

static uint64_t
limit_hash(const struct web_limiter *l, const char *s)
{
	uint64_t h = 1469598103934665603ULL ^ l->seed;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

int
web_limiter_new(size_t max_hits, double span, size_t max_keys, struct web_limiter **out)
{
	struct web_limiter *l = calloc(1, sizeof *l);
	struct timespec ts;

	*out = NULL;
	if (!l || !max_hits)
		goto fail;
	l->max_hits = max_hits;
	l->span = span;
	l->max_keys = max_keys;
	for (l->n_buckets = 64; l->n_buckets < max_keys && l->n_buckets < (1u << 16);)
		l->n_buckets <<= 1;
	if (!(l->bucket = calloc(l->n_buckets, sizeof *l->bucket)))
		goto fail;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)l;
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return 0;
fail:
	free(l);
	return -1;
}

void
web_limiter_free(struct web_limiter *l)
{
	struct limit_entry *e, *next;
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n_buckets; i++)
		for (e = l->bucket[i]; e; e = next) {
			next = e->next;
			free(e->key);
			free(e);
		}
	free(l->bucket);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* Forget every key with no hit inside the span. */
static void
limit_sweep(struct web_limiter *l, double now)
{
	struct limit_entry **pp, *e;
	size_t i;

	for (i = 0; i < l->n_buckets; i++)
		for (pp = &l->bucket[i]; (e = *pp);) {
			if (e->last <= now - l->span) {
				*pp = e->next;
				free(e->key);
				free(e);
				l->n_keys--;
			} else
				pp = &e->next;
		}
}

int
web_limiter_hit(struct web_limiter *l, const char *key, double now)
{
	struct limit_entry *e;
	size_t b;
	int ok = 0;

	pthread_mutex_lock(&l->mu);
	b = (size_t)(limit_hash(l, key) & (l->n_buckets - 1));
	for (e = l->bucket[b]; e && strcmp(e->key, key); e = e->next)
		;
	if (!e) {
		if (l->n_keys >= l->max_keys)
			limit_sweep(l, now);
		if (l->n_keys >= l->max_keys)
			goto out; /* full of active keys: refuse rather than forget */
		if (!(e = calloc(1, sizeof *e + l->max_hits * sizeof e->t[0])) ||
		    !(e->key = strdup(key))) {
			free(e);
			goto out;
		}
		e->next = l->bucket[b];
		l->bucket[b] = e;
		l->n_keys++;
	}
	while (e->count && e->t[e->head] <= now - l->span) {
		e->head = (e->head + 1) % l->max_hits;
		e->count--;
	}
	if (e->count < l->max_hits) {
		e->t[(e->head + e->count) % l->max_hits] = now;
		e->count++;
		e->last = now;
		ok = 1;
	}
out:
	pthread_mutex_unlock(&l->mu);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                          */
/* ------------------------------------------------------------------ */

static void
key_v4(const struct in_addr *a, char *out, size_t size)
{
	char s[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, a, s, sizeof s);
	snprintf(out, size, "%s", s);
}

static void
key_v6(const struct in6_addr *a, char *out, size_t size)
{
	struct in6_addr net = *a;
	char s[INET6_ADDRSTRLEN];

	if (IN6_IS_ADDR_V4MAPPED(a)) {
		struct in_addr v4;

		memcpy(&v4, &a->s6_addr[12], 4);
		key_v4(&v4, out, size);
		return;
	}
	memset(&net.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &net, s, sizeof s);
	snprintf(out, size, "%s/64", s);
}

void
web_client_key(const struct sockaddr *peer, const char *real_ip, char *out, size_t size)
{
	struct in_addr a4;
	struct in6_addr a6;
	int loopback = 0;

	snprintf(out, size, "unknown");
	if (!peer)
		return;
	if (peer->sa_family == AF_INET) {
		memcpy(&a4, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, sizeof a4);
		loopback = (ntohl(a4.s_addr) >> 24) == 127;
	} else if (peer->sa_family == AF_INET6) {
		memcpy(&a6, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, sizeof a6);
		loopback = IN6_IS_ADDR_LOOPBACK(&a6) ||
		           (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	} else
		return;
	/* behind the reverse proxy every peer is the proxy: believe its
	 * X-Real-IP, and only its (a remote client could send one too) */
	if (loopback && real_ip && *real_ip) {
		struct in_addr r4;
		struct in6_addr r6;

		if (inet_pton(AF_INET, real_ip, &r4) == 1) {
			key_v4(&r4, out, size);
			return;
		}
		if (inet_pton(AF_INET6, real_ip, &r6) == 1) {
			key_v6(&r6, out, size);
			return;
		}
	}
	if (peer->sa_family == AF_INET)
		key_v4(&a4, out, size);
	else
		key_v6(&a6, out, size);
}

int
web_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, struct herr *err)
{
	struct addrinfo hints, *res = NULL;
	char host[256], shown[300];
	const char *port_s, *colon;
	size_t n;
	long port;
	char *end;
	int rc;

	herr_show(shown, sizeof shown, s);
	if (s[0] == '[') {
		if (!(colon = strchr(s, ']')) || colon[1] != ':')
			return herr_set(err, EX_USAGE, NULL,
			                "invalid listen address '%s': want [IPv6]:PORT", shown);
		n = (size_t)(colon - s - 1);
		if (n == 0 || n >= sizeof host)
			return herr_set(err, EX_USAGE, NULL, "invalid listen address '%s'", shown);
		memcpy(host, s + 1, n);
		host[n] = '\0';
		port_s = colon + 2;
	} else {
		if (!(colon = strrchr(s, ':')))
			return herr_set(err, EX_USAGE, NULL,
			                "invalid listen address '%s': want ADDRESS:PORT", shown);
		n = (size_t)(colon - s);
		if (memchr(s, ':', n))
			return herr_set(err, EX_USAGE, NULL,
			                "invalid listen address '%s': write an IPv6 address in brackets, "
			                "[::1]:8080", shown);
		if (n == 0 || n >= sizeof host)
			return herr_set(err, EX_USAGE, NULL,
			                "invalid listen address '%s': want ADDRESS:PORT", shown);
		memcpy(host, s, n);
		host[n] = '\0';
		port_s = colon + 1;
	}
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (!*port_s || *end || errno || port < 0 || port > 65535 || *port_s == '-' ||
	    *port_s == '+' || *port_s == ' ')
		return herr_set(err, EX_USAGE, NULL,
		                "invalid listen address '%s': the port must be 0-65535", shown);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0 || !res)
		return herr_set(err, EX_USAGE, NULL, "invalid listen address '%s': %s", shown,
		                gai_strerror(rc));
	memset(ss, 0, sizeof *ss);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
	freeaddrinfo(res);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The server                                                         */
/* ------------------------------------------------------------------ */

#define CSP_PAGE \
	"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; " \
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
/* the web copy of an issue shows the author's own images */
#define CSP_ARCHIVE \
	"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; " \
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

#define ISSUE_BUCKETS   64
#define MAIL_QUEUE_MAX  1000
#define MAIL_STOP_WAIT  30.0   /* seconds to send what is queued at stop */
#define STOP_DRAIN_WAIT 3.0    /* seconds for requests in flight at stop */
#define ARCHIVE_MAX     500    /* issues listed on /archive */
#define LIMIT_KEYS      100000

/* A transparent 1x1 GIF89a (43 bytes). */
static const unsigned char pixel_gif[43] = {
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02,
	0x44, 0x01, 0x00, 0x3b,
};

/* One server thread's database connection (opened on its first use). */
struct web_thread {
	struct web_thread *next;       /* all of them, to close at stop */
	sqlite3           *db;
	sqlite3_stmt      *rows_exist;     /* may an event name these ids? */
};

/* What the click and open paths need of an issue; immutable once in the
 * cache, except archive_html which is set once under the cache mutex. */
struct issue_links {
	struct issue_links *next;
	long long     id, list_id;
	size_t        n;
	char        **url;             /* the issue's links JSON, as written */
	struct tmpl **tmpl;            /* compiled when the link has merge fields */
	char         *archive_html;    /* the web copy, rendered on first view */
	size_t        archive_len;
};

struct mail_job {
	struct mail_job *next;
	long long        subscriber_id;
	struct list      list;
	char             email[512];
	char             name[SUBSCRIBER_NAME_MAX + 1];
};

struct mailer {
	struct web_server  *s;
	pthread_t           thread;
	int                 running;
	pthread_mutex_t     mu;        /* guards the queue and stopping */
	pthread_cond_t      wake;
	struct mail_job    *head, *tail;
	size_t              queued;
	int                 stopping;
	double              deadline;  /* set at stop: give up on the rest after it */
	struct dkim_signer *dkim;
	struct smtp_conn  **conn;      /* one per relay, open while there is work */
	sqlite3            *db;        /* relay_usage, opened when first needed */
	atomic_llong        sent, failed;
};

struct web_server {
	const struct config *cfg;
	struct web_opts      opts;
	struct token_key     key;
	struct MHD_Daemon   *mhd;
	int                  fd;
	char                 url[128];
	struct eventlog     *events;
	struct mailer        mail;
	struct web_limiter  *ip_limit, *addr_limit;
	pthread_key_t        tkey;
	int                  tkey_made;
	pthread_mutex_t      threads_mu;
	struct web_thread   *threads;
	pthread_mutex_t      cache_mu;
	struct issue_links  *cache[ISSUE_BUCKETS];
	struct MHD_Response *gif, *not_found;
	struct MHD_Response *gif_close, *not_found_close; /* the same, ending the connection */
	atomic_int           stopping;  /* answers say Connection: close */
	atomic_ullong        requests;
	atomic_long          in_flight;
	char                 get_marker;   /* *state of a GET between its two calls */
};

/* A POST being received. */
struct request {
	struct web_route route;
	char             token[TOKEN_MAX];
	struct buf       body;
	int              too_large;
	double           started;      /* monotonic seconds */
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
web_log(struct web_server *s, const char *fmt, ...)
{
	char line[1200];
	va_list ap;

	if (!s->opts.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->opts.log(s->opts.log_ctx, line);
}

/* ---- per-thread database ---- */

static struct web_thread *
thread_db(struct web_server *s)
{
	struct web_thread *t = pthread_getspecific(s->tkey);
	struct herr err;

	if (t)
		return t;
	herr_clear(&err);
	if (!(t = calloc(1, sizeof *t)))
		return NULL;
	if (db_open(s->cfg->db_path, DB_OPEN_EXISTING, s->cfg->db_busy_timeout_ms, &t->db,
	            &err) < 0 ||
	    (s->cfg->db_sync_full && db_set_synchronous_full(t->db, &err) < 0) ||
	    db_prepare(t->db, &t->rows_exist,
	               "SELECT EXISTS (SELECT 1 FROM subscribers WHERE id = ?1) AND "
	               "EXISTS (SELECT 1 FROM issues WHERE id = ?2 AND list_id = ?3)", &err) < 0) {
		web_log(s, "cannot open the database: %s", err.msg);
		db_close(t->db);
		free(t);
		return NULL;
	}
	pthread_setspecific(s->tkey, t);
	pthread_mutex_lock(&s->threads_mu);
	t->next = s->threads;
	s->threads = t;
	pthread_mutex_unlock(&s->threads_mu);
	return t;
}

/* 1 when the token's subscriber and issue exist and the issue is on the
 * token's list (invariant 1), 0 when not, -1 when the database failed. */
static int
rows_exist(struct web_thread *t, const struct token *tok)
{
	int rc, ok = 0;

	sqlite3_bind_int64(t->rows_exist, 1, (long long)tok->subscriber_id);
	sqlite3_bind_int64(t->rows_exist, 2, (long long)tok->issue_id);
	sqlite3_bind_int64(t->rows_exist, 3, (long long)tok->list_id);
	if ((rc = sqlite3_step(t->rows_exist)) == SQLITE_ROW)
		ok = sqlite3_column_int(t->rows_exist, 0);
	sqlite3_reset(t->rows_exist);
	return rc == SQLITE_ROW ? ok != 0 : -1;
}

/* ---- the issue cache ---- */

static void
links_free(struct issue_links *il)
{
	size_t i;

	if (!il)
		return;
	for (i = 0; i < il->n; i++) {
		free(il->url ? il->url[i] : NULL);
		tmpl_free(il->tmpl ? il->tmpl[i] : NULL);
	}
	free(il->url);
	free(il->tmpl);
	free(il->archive_html);
	free(il);
}

static struct issue_links *
links_load(sqlite3 *db, long long id, struct herr *err)
{
	struct issue_links *il;
	struct issue is;
	json_t *a;
	size_t i;

	if (issue_get(db, id, &is, err) < 0)
		return NULL;
	a = json_loads(is.links && *is.links ? is.links : "[]", 0, NULL);
	if (!a || !json_is_array(a) || !(il = calloc(1, sizeof *il))) {
		json_decref(a);
		issue_clear(&is);
		herr_set(err, EX_SOFTWARE, NULL, "issue %lld: cannot read its links", id);
		return NULL;
	}
	il->id = id;
	il->list_id = is.list_id;
	il->n = json_array_size(a);
	issue_clear(&is);
	if (!(il->url = calloc(il->n + 1, sizeof *il->url)) ||
	    !(il->tmpl = calloc(il->n + 1, sizeof *il->tmpl)))
		goto oom;
	for (i = 0; i < il->n; i++) {
		const char *u = json_string_value(json_array_get(a, i));

		if (!(il->url[i] = strdup(u ? u : "")))
			goto oom;
		/* compiled once here, merged per click; a link that does not
		 * compile was never sent through the redirect (message.c
		 * compiles every link), so it stays literal */
		if (strstr(il->url[i], "{{") &&
		    tmpl_compile(il->url[i], strlen(il->url[i]), "link", 1, &il->tmpl[i], NULL) < 0)
			il->tmpl[i] = NULL;
	}
	json_decref(a);
	return il;
oom:
	json_decref(a);
	links_free(il);
	herr_set(err, EX_OSERR, NULL, "out of memory");
	return NULL;
}

/* The cached links of issue `id`, loading them on first use.  NULL with
 * EX_NOINPUT when there is no such issue. */
static struct issue_links *
links_get(struct web_server *s, struct web_thread *t, long long id, struct herr *err)
{
	struct issue_links *il, *mine;
	size_t b = (size_t)id % ISSUE_BUCKETS;

	pthread_mutex_lock(&s->cache_mu);
	for (il = s->cache[b]; il && il->id != id; il = il->next)
		;
	pthread_mutex_unlock(&s->cache_mu);
	if (il)
		return il;
	/* load outside the lock: other issues' hits must not wait on it */
	if (!(mine = links_load(t->db, id, err)))
		return NULL;
	pthread_mutex_lock(&s->cache_mu);
	for (il = s->cache[b]; il && il->id != id; il = il->next)
		;
	if (!il) {
		mine->next = s->cache[b];
		s->cache[b] = il = mine;
		mine = NULL;
	}
	pthread_mutex_unlock(&s->cache_mu);
	links_free(mine);
	return il;
}

/* ---- responses ---- */

static void
add_security_headers(struct MHD_Response *r, const char *csp)
{
	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

/* Queue `len` bytes of `body` (taken over: free()d by MHD) as `type`. */
static enum MHD_Result
queue_body(struct web_server *s, struct MHD_Connection *c, unsigned status, char *body,
           size_t len, const char *type, const char *csp, const char *extra_name,
           const char *extra_value)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!(r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE))) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	add_security_headers(r, csp);
	if (extra_name)
		MHD_add_response_header(r, extra_name, extra_value);
	if (atomic_load(&s->stopping))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
queue_page(struct web_server *s, struct MHD_Connection *c, unsigned status, struct buf *page,
           const char *extra_name, const char *extra_value)
{
	size_t len = page->len;
	char *body = buf_detach(page);

	if (!body)
		return MHD_NO;
	return queue_body(s, c, status, body, len, "text/html; charset=utf-8", CSP_PAGE, extra_name,
	                  extra_value);
}

static enum MHD_Result
queue_notice_h(struct web_server *s, struct MHD_Connection *c, unsigned status,
               const char *heading, const char *text, const char *extra_name,
               const char *extra_value)
{
	struct buf page = BUF_INIT(1u << 16);

	if (webpage_notice(&page, s->cfg->lang, heading, text) < 0) {
		buf_free(&page);
		return MHD_NO;
	}
	return queue_page(s, c, status, &page, extra_name, extra_value);
}

static enum MHD_Result
queue_notice(struct web_server *s, struct MHD_Connection *c, unsigned status,
             const char *heading, const char *text)
{
	return queue_notice_h(s, c, status, heading, text, NULL, NULL);
}

static enum MHD_Result
not_found(struct web_server *s, struct MHD_Connection *c)
{
	return MHD_queue_response(c, MHD_HTTP_NOT_FOUND,
	                          atomic_load(&s->stopping) ? s->not_found_close : s->not_found);
}

static enum MHD_Result
unavailable(struct web_server *s, struct MHD_Connection *c)
{
	return queue_notice_h(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "Please try again in a moment",
	                      "We could not do that just now. Nothing has changed; please try "
	                      "again in a minute.", MHD_HTTP_HEADER_RETRY_AFTER, "30");
}

/* A database call failed: 404 when what the token names is gone, else
 * 503 (busy past the timeout, or worse: logged). */
static enum MHD_Result
db_failed(struct web_server *s, struct MHD_Connection *c, const struct herr *err,
          const char *what)
{
	if (err->code == EX_NOINPUT)
		return not_found(s, c);
	if (err->code != EX_TEMPFAIL)
		web_log(s, "%s: %s", what, err->msg);
	return unavailable(s, c);
}

static enum MHD_Result
queue_page_or_fail(struct web_server *s, struct MHD_Connection *c, int rc, struct buf *page)
{
	if (rc < 0) {
		buf_free(page);
		return unavailable(s, c);
	}
	return queue_page(s, c, MHD_HTTP_OK, page, NULL, NULL);
}

static int
check_token(struct web_server *s, const char *tok, size_t len, enum token_kind kind,
            struct token *t)
{
	return len && token_verify(&s->key, tok, len, t) == 0 && t->kind == kind ? 0 : -1;
}

/* ---- opens and clicks ---- */

/* Invariant (1): only events whose rows exist reach the event writer, so
 * a batch is never refused by a foreign key. */
static void
record(struct web_server *s, struct MHD_Connection *c, const char *kind, const struct token *t,
       long long n)
{
	const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_USER_AGENT);
	char detail[1024];
	struct event ev;

	if (web_event_detail(detail, sizeof detail, n, web_ua_classify(ua), ua) < 0)
		return;
	memset(&ev, 0, sizeof ev);
	ev.kind = kind;
	ev.issue_id = (long long)t->issue_id;
	ev.subscriber_id = (long long)t->subscriber_id;
	ev.list_id = (long long)t->list_id;
	ev.detail = detail;
	eventlog_add(s->events, &ev);
}

static enum MHD_Result
handle_open(struct web_server *s, struct MHD_Connection *c, enum web_method m,
            const struct web_route *r)
{
	struct web_thread *t;
	struct token tok;

	/* a mail client must never see a broken image: the GIF whatever
	 * the token, and nothing recorded when it is not a valid one */
	if (m == WEB_GET && check_token(s, r->token, r->token_len, TOKEN_OPEN, &tok) == 0 &&
	    (t = thread_db(s)) && rows_exist(t, &tok) == 1)
		record(s, c, "open", &tok, 0);
	return MHD_queue_response(c, MHD_HTTP_OK,
	                          atomic_load(&s->stopping) ? s->gif_close : s->gif);
}

/* The Location for a click: the link merged for the subscriber when it
 * has fields (as message.c would have written it directly), with bytes a
 * URL cannot hold raw (controls, space, non-ASCII) %-encoded.  Returns 0,
 * or -1 with err set. */
static int
click_target(struct web_server *s, struct web_thread *t, const struct issue_links *il,
             const struct token *tok, size_t i, struct buf *out, struct herr *err)
{
	struct buf merged = BUF_INIT(1u << 16);
	const unsigned char *p;

	if (!il->tmpl[i])
		p = (const unsigned char *)il->url[i];
	else {
		struct subscriber sub;
		struct tmpl_vars v;
		struct tmpl_attr *attrs = NULL;
		json_t *obj = NULL;
		char unsub[512];
		int rc, exists;

		if (subscriber_get_by_id(t->db, (long long)tok->subscriber_id, &sub, err) == 0)
			exists = 1;
		else if (err->code == EX_NOINPUT) {
			exists = 0; /* gone since the send: the link without their data */
			herr_clear(err);
		} else
			return -1;
		memset(&v, 0, sizeof v);
		if (exists) {
			if (message_load_attrs(sub.attributes, &obj, &attrs, &v.n_attrs) < 0)
				v.n_attrs = 0;
			v.attrs = attrs;
			v.name = sub.name;
			v.email = sub.email;
		}
		if (message_unsubscribe_url(s->cfg, &s->key, (long long)tok->subscriber_id,
		                            (long long)tok->list_id, (long long)tok->issue_id, unsub,
		                            sizeof unsub) == 0)
			v.unsubscribe_url = unsub;
		rc = tmpl_merge(il->tmpl[i], &v, TMPL_URL, &merged); /* as message.c does */
		free(attrs);
		json_decref(obj);
		if (exists)
			subscriber_clear(&sub);
		if (rc < 0) {
			buf_free(&merged);
			return herr_set(err, EX_SOFTWARE, NULL, "cannot merge link %zu", i + 1);
		}
		p = (const unsigned char *)buf_str(&merged);
	}
	for (; *p; p++) {
		if ((*p <= 0x20 || *p >= 0x7f) ? buf_addf(out, "%%%02X", *p) < 0
		                               : buf_addc(out, (char)*p) < 0) {
			buf_free(&merged);
			return herr_set(err, EX_SOFTWARE, NULL, "link %zu is too long", i + 1);
		}
	}
	buf_free(&merged);
	return 0;
}

static enum MHD_Result
handle_click(struct web_server *s, struct MHD_Connection *c, enum web_method m,
             const struct web_route *r)
{
	struct buf loc = BUF_INIT(1u << 16);
	struct issue_links *il;
	struct web_thread *t;
	struct MHD_Response *resp;
	struct token tok;
	struct herr err;
	enum MHD_Result ret;

	herr_clear(&err);
	if (check_token(s, r->token, r->token_len, TOKEN_CLICK, &tok) < 0)
		return not_found(s, c);
	if (!(t = thread_db(s)))
		return unavailable(s, c);
	if (!(il = links_get(s, t, (long long)tok.issue_id, &err)))
		return db_failed(s, c, &err, "click");
	/* invariant (2): the token's own issue, one of its links */
	if (il->list_id != (long long)tok.list_id || r->n < 1 || (size_t)r->n > il->n)
		return not_found(s, c);
	if (click_target(s, t, il, &tok, (size_t)r->n - 1, &loc, &err) < 0) {
		buf_free(&loc);
		return db_failed(s, c, &err, "click");
	}
	if (strncasecmp(buf_str(&loc), "https://", 8) && strncasecmp(buf_str(&loc), "http://", 7)) {
		buf_free(&loc);
		return not_found(s, c); /* mailto and the like were never redirected */
	}
	if (m == WEB_GET && rows_exist(t, &tok) == 1)
		record(s, c, "click", &tok, r->n);
	if (!(resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT))) {
		buf_free(&loc);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, buf_str(&loc)) != MHD_YES) {
		MHD_destroy_response(resp);
		buf_free(&loc);
		return not_found(s, c);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	add_security_headers(resp, CSP_PAGE);
	if (atomic_load(&s->stopping))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, MHD_HTTP_FOUND, resp);
	MHD_destroy_response(resp);
	buf_free(&loc);
	return ret;
}

/* ---- unsubscribe and confirm ---- */

/* The subscriber and list a token names, for a page. */
static int
load_pair(struct web_thread *t, const struct token *tok, struct subscriber *sub,
          struct list *l, struct herr *err)
{
	if (subscriber_get_by_id(t->db, (long long)tok->subscriber_id, sub, err) < 0)
		return -1;
	if (list_get_by_id(t->db, (long long)tok->list_id, l, err) < 0) {
		subscriber_clear(sub);
		return -1;
	}
	return 0;
}

static const char *
title_of(const struct list *l)
{
	return l->title[0] ? l->title : l->name;
}

static enum MHD_Result
handle_unsubscribe(struct web_server *s, struct MHD_Connection *c, enum web_method m,
                   const struct web_route *r, const struct request *rq)
{
	struct buf page = BUF_INIT(1u << 16);
	struct web_form *form = NULL;
	struct subscriber sub;
	struct web_thread *t;
	struct list l;
	struct token tok;
	struct herr err;
	const char *v, *ctype;
	int rc, one_click = 0, resubscribe = 0;

	herr_clear(&err);
	if (check_token(s, r->token, r->token_len, TOKEN_UNSUBSCRIBE, &tok) < 0)
		return not_found(s, c);
	if (!(t = thread_db(s)))
		return unavailable(s, c);
	if (m == WEB_POST) {
		if (!(form = malloc(sizeof *form)))
			return MHD_NO;
		ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		/* RFC 8058 §3.2: the key/value pair, urlencoded or multipart;
		 * anything else posted here is the page's own form */
		if (web_form_parse(ctype, buf_str(&rq->body), rq->body.len, form) == 0) {
			one_click = (v = web_form_get(form, "List-Unsubscribe")) && !strcmp(v, "One-Click");
			resubscribe = !one_click && (v = web_form_get(form, "action")) &&
			              !strcmp(v, "resubscribe");
		}
		free(form);
		if (one_click) {
			rc = subscription_unsubscribe_issue(t->db, (long long)tok.list_id,
			                                    (long long)tok.subscriber_id,
			                                    (long long)tok.issue_id, "one-click", &err);
			if (rc < 0 && err.code != EX_NOINPUT)
				return db_failed(s, c, &err, "unsubscribe");
			/* not (or no longer) on the list: what was asked holds */
			if (!(v = strdup("unsubscribed")))
				return MHD_NO;
			return queue_body(s, c, MHD_HTTP_OK, (char *)v, strlen(v),
			                  "text/plain; charset=utf-8", CSP_PAGE, NULL, NULL);
		}
	}
	if (load_pair(t, &tok, &sub, &l, &err) < 0)
		return db_failed(s, c, &err, "unsubscribe page");
	if (m != WEB_POST)
		rc = webpage_unsubscribe_ask(&page, s->cfg->lang, title_of(&l), sub.email);
	else if (resubscribe) {
		if (subscription_confirm(t->db, l.id, sub.id, "web", &err) < 0) {
			subscriber_clear(&sub);
			if (err.code == EX_DATAERR)
				return queue_notice(s, c, MHD_HTTP_OK, "We cannot send to this address",
				                    "Mail to this address was refused or reported, so we "
				                    "no longer send anything to it.");
			if (err.code == EX_NOINPUT)
				return queue_notice(s, c, MHD_HTTP_OK, "You are not on this list",
				                    "This address was removed from the list. Please sign "
				                    "up again.");
			return db_failed(s, c, &err, "resubscribe");
		}
		rc = webpage_resubscribed(&page, s->cfg->lang, title_of(&l), sub.email);
	} else {
		if (subscription_unsubscribe_issue(t->db, l.id, sub.id, (long long)tok.issue_id, "web",
		                                   &err) < 0 &&
		    err.code != EX_NOINPUT) {
			subscriber_clear(&sub);
			return db_failed(s, c, &err, "unsubscribe");
		}
		rc = webpage_unsubscribed(&page, s->cfg->lang, title_of(&l), sub.email);
	}
	subscriber_clear(&sub);
	return queue_page_or_fail(s, c, rc, &page);
}

static enum MHD_Result
handle_confirm(struct web_server *s, struct MHD_Connection *c, enum web_method m,
               const struct web_route *r)
{
	struct buf page = BUF_INIT(1u << 16);
	struct subscriber sub;
	struct web_thread *t;
	struct list l;
	struct token tok;
	struct herr err;
	char status[16];
	int rc;

	herr_clear(&err);
	if (check_token(s, r->token, r->token_len, TOKEN_CONFIRM, &tok) < 0)
		return not_found(s, c);
	if (!(t = thread_db(s)))
		return unavailable(s, c);
	if (load_pair(t, &tok, &sub, &l, &err) < 0)
		return db_failed(s, c, &err, "confirm");
	if (subscription_status(t->db, l.id, sub.id, status, &err) < 0) {
		subscriber_clear(&sub);
		return db_failed(s, c, &err, "confirm");
	}
	if (m != WEB_POST && strcmp(status, "confirmed"))
		rc = webpage_confirm_ask(&page, s->cfg->lang, title_of(&l), sub.email);
	else if (m != WEB_POST)
		rc = webpage_confirmed(&page, s->cfg->lang, title_of(&l), sub.email);
	else if (subscription_confirm(t->db, l.id, sub.id, "web", &err) < 0) {
		subscriber_clear(&sub);
		if (err.code == EX_DATAERR)
			return queue_notice(s, c, MHD_HTTP_OK, "We cannot send to this address",
			                    "Mail to this address was refused or reported, so we no "
			                    "longer send anything to it.");
		return db_failed(s, c, &err, "confirm");
	} else
		rc = webpage_confirmed(&page, s->cfg->lang, title_of(&l), sub.email);
	subscriber_clear(&sub);
	return queue_page_or_fail(s, c, rc, &page);
}

/* ---- sign-up ---- */

/*
 * Add or keep the subscriber and their subscription in one transaction.
 * A known subscriber keeps their name: a form anyone can post must not
 * rename someone else.  Someone who had unsubscribed may come back (they
 * ask again, and on a double opt-in list they confirm again).  Sets
 * *mail when a confirmation mail should go (the subscription waits for
 * one), *blocked when rule (1) refused the address.
 */
static int
subscribe_write(sqlite3 *db, const struct list *l, const struct address *a, const char *name,
                long long *id, int *mail, int *blocked, struct herr *err)
{
	struct subscriber_writer *w = NULL;
	struct subscribe_req req;
	enum subscribe_result res;
	struct subscriber sub;
	char status[16];
	int known;

	*mail = *blocked = 0;
	*id = 0;
	if (subscriber_get(db, a->addr, &sub, err) == 0) {
		known = 1;
		subscriber_clear(&sub);
	} else if (err->code == EX_NOINPUT) {
		known = 0;
		herr_clear(err);
	} else
		return -1;
	memset(&req, 0, sizeof req);
	req.addr = a;
	req.name = known ? NULL : name;
	req.confirmed = !l->double_opt_in;
	req.resubscribe = 1;
	if (subscriber_writer_open(db, &w, err) < 0)
		return -1;
	if (db_begin(db, err) < 0)
		goto fail;
	if (subscriber_subscribe(w, l->id, &req, &res, err) < 0)
		goto fail;
	if (res == SUBSCRIBE_SKIPPED_BLOCKED || res == SUBSCRIBE_SKIPPED_UNSUBSCRIBED ||
	    res == SUBSCRIBE_SKIPPED_SUPPRESSED) {
		*blocked = 1;
		db_rollback(db);
		subscriber_writer_close(w);
		return 0;
	}
	if (subscriber_get(db, a->addr, &sub, err) < 0)
		goto fail;
	*id = sub.id;
	subscriber_clear(&sub);
	if (subscription_status(db, l->id, *id, status, err) < 0)
		goto fail;
	*mail = l->double_opt_in && !strcmp(status, "unconfirmed");
	if (!l->double_opt_in && res != SUBSCRIBE_UNCHANGED) {
		sqlite3_stmt *st;
		int rc;

		if (db_prepare(db, &st, "INSERT INTO events (kind, subscriber_id, list_id, at, detail) "
		               "VALUES ('subscribe', ?1, ?2, ?3, json_object('source', 'web'))",
		               err) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, *id);
		sqlite3_bind_int64(st, 2, l->id);
		sqlite3_bind_int64(st, 3, db_now());
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			db_error(db, err, "record subscribe");
			goto fail;
		}
	}
	if (db_commit(db, err) < 0)
		goto fail;
	subscriber_writer_close(w);
	return 0;
fail:
	db_rollback(db);
	subscriber_writer_close(w);
	return -1;
}

static enum MHD_Result
handle_subscribe(struct web_server *s, struct MHD_Connection *c, const struct request *rq)
{
	const union MHD_ConnectionInfo *ci;
	struct buf page = BUF_INIT(1u << 16);
	struct web_form *form;
	struct web_thread *t;
	struct address a;
	struct list l;
	struct herr err;
	const char *email, *name, *list_name;
	char key[128], msg[HERR_MSG_MAX + 2];
	long long id;
	int rc, mail, blocked;

	herr_clear(&err);
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	web_client_key(ci ? ci->client_addr : NULL,
	               MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Real-IP"), key, sizeof key);
	if (!web_limiter_hit(s->ip_limit, key, mono_now()))
		return queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
		                      "Please wait a few minutes before signing up again.",
		                      MHD_HTTP_HEADER_RETRY_AFTER, "600");
	if (!(form = malloc(sizeof *form)))
		return MHD_NO;
	if (web_form_parse(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_CONTENT_TYPE),
	                   buf_str(&rq->body), rq->body.len, form) < 0) {
		free(form);
		return queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "The form could not be read",
		                    "Please go back and send it again.");
	}
	email = web_form_get(form, "email");
	name = web_form_get(form, "name");
	list_name = web_form_get(form, "list");
	if (!email || !*email) {
		free(form);
		return queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "Please give your e-mail address",
		                    "The form had no e-mail address.");
	}
	if (address_parse(email, &a, &err) < 0) {
		free(form);
		snprintf(msg, sizeof msg, "%s.", err.msg);
		msg[0] = (char)(msg[0] == 'i' ? 'I' : msg[0]);
		return queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "This address cannot be used", msg);
	}
	if (name && (utf8_invalid_at((const unsigned char *)name, strlen(name)) != strlen(name) ||
	             subscriber_check_text("the name", name, SUBSCRIBER_NAME_MAX, &err) < 0)) {
		free(form);
		snprintf(msg, sizeof msg, "%s.", err.code ? err.msg : "the name is not valid UTF-8");
		msg[0] = (char)(msg[0] == 't' ? 'T' : msg[0]);
		return queue_notice(s, c, MHD_HTTP_BAD_REQUEST, "This name cannot be used", msg);
	}
	if (!list_name || list_name_check(list_name, &err) < 0) {
		free(form);
		return queue_notice(s, c, MHD_HTTP_NOT_FOUND, "No such list",
		                    "The form names a list we do not have.");
	}
	if (!(t = thread_db(s))) {
		free(form);
		return unavailable(s, c);
	}
	if (list_get(t->db, list_name, &l, &err) < 0) {
		free(form);
		if (err.code == EX_NOINPUT)
			return queue_notice(s, c, MHD_HTTP_NOT_FOUND, "No such list",
			                    "The form names a list we do not have.");
		return db_failed(s, c, &err, "subscribe");
	}
	/* counted before anything is looked up, so the answer is the same
	 * for a known, a blocked and a new address (invariant 6) */
	if (l.double_opt_in && !web_limiter_hit(s->addr_limit, a.key, mono_now())) {
		free(form);
		return queue_notice_h(s, c, MHD_HTTP_TOO_MANY_REQUESTS, "Too many requests",
		                      "We have already sent several confirmation messages to this "
		                      "address today. Please look for them in your inbox.",
		                      MHD_HTTP_HEADER_RETRY_AFTER, "3600");
	}
	rc = subscribe_write(t->db, &l, &a, name && *name ? name : NULL, &id, &mail, &blocked, &err);
	free(form);
	if (rc < 0)
		return db_failed(s, c, &err, "subscribe");
	/* the mail greets nobody by name: a form anyone can post must not
	 * carry their text into a stranger's inbox */
	if (mail && mail_enqueue(&s->mail, id, &l, a.addr, "") < 0)
		return unavailable(s, c);
	if (l.double_opt_in)
		rc = webpage_check_inbox(&page, s->cfg->lang, title_of(&l), a.addr);
	else
		rc = webpage_subscribed(&page, s->cfg->lang, title_of(&l), a.addr);
	return queue_page_or_fail(s, c, rc, &page);
}

/* ---- the archive ---- */

static enum MHD_Result
handle_archive_index(struct web_server *s, struct MHD_Connection *c, const struct web_route *r)
{
	struct buf page = BUF_INIT(4u << 20);
	struct webpage_issue *v;
	struct web_thread *t;
	sqlite3_stmt *st;
	struct herr err;
	size_t n = 0, i;
	int rc = SQLITE_DONE;

	herr_clear(&err);
	if (!(t = thread_db(s)))
		return unavailable(s, c);
	if (db_prepare(t->db, &st,
	               "SELECT i.id, i.subject, coalesce(i.started_at, i.send_at, i.created_at), "
	               "CASE WHEN l.title != '' THEN l.title ELSE l.name END "
	               "FROM issues i JOIN lists l ON l.id = i.list_id "
	               "WHERE l.public = 1 AND i.status IN ('sent', 'sending') "
	               "ORDER BY 3 DESC, i.id DESC LIMIT ?1", &err) < 0)
		return db_failed(s, c, &err, "archive");
	sqlite3_bind_int(st, 1, ARCHIVE_MAX);
	if (!(v = calloc(ARCHIVE_MAX, sizeof *v))) {
		sqlite3_finalize(st);
		return MHD_NO;
	}
	while (n < ARCHIVE_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].subject = strdup((const char *)sqlite3_column_text(st, 1));
		v[n].date = sqlite3_column_int64(st, 2);
		v[n].list_title = strdup((const char *)sqlite3_column_text(st, 3));
		if (!v[n].subject || !v[n].list_title) {
			n++;
			herr_set(&err, EX_OSERR, NULL, "out of memory");
			break;
		}
		n++;
	}
	if (!err.code && rc != SQLITE_DONE && rc != SQLITE_ROW)
		db_error(t->db, &err, "list the archive");
	sqlite3_finalize(st);
	rc = err.code ? -1 :
	     webpage_archive(&page, s->cfg->lang, r->index_slash ? "" : "archive/", v, n);
	for (i = 0; i < n; i++) {
		free((char *)v[i].subject);
		free((char *)v[i].list_title);
	}
	free(v);
	if (err.code) {
		buf_free(&page);
		return db_failed(s, c, &err, "archive");
	}
	return queue_page_or_fail(s, c, rc, &page);
}

/* The issue as a reader with no data sees it: message_merge() for a
 * stand-in recipient, untracked, so links are direct and there is no
 * pixel.  *out is malloc'd. */
static int
render_archive(struct web_server *s, sqlite3 *db, long long id, char **out, size_t *len,
               struct herr *err)
{
	struct message_recipient rcpt = { 0, "", "", NULL, 1 };
	struct buf subject = BUF_INIT(1u << 16), html = BUF_INIT(MESSAGE_MAX),
	           text = BUF_INIT(MESSAGE_MAX);
	struct message_ctx m;
	struct issue is;
	struct list l;
	int rc;

	if (issue_get(db, id, &is, err) < 0)
		return -1;
	if (list_get_by_id(db, is.list_id, &l, err) < 0) {
		issue_clear(&is);
		return -1;
	}
	rc = message_ctx_init(&m, s->cfg, &s->key, &is, &l, err);
	issue_clear(&is);
	if (rc < 0)
		return -1;
	rc = message_merge(&m, &rcpt, &subject, &html, &text, err);
	message_ctx_free(&m);
	buf_free(&subject);
	buf_free(&text);
	if (rc < 0) {
		buf_free(&html);
		return -1;
	}
	*len = html.len;
	if (!(*out = buf_detach(&html)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	return 0;
}

static enum MHD_Result
handle_archive(struct web_server *s, struct MHD_Connection *c, const struct web_route *r)
{
	struct issue_links *il;
	struct web_thread *t;
	sqlite3_stmt *st;
	struct token tok;
	struct herr err;
	char *html = NULL, *copy;
	size_t len = 0;
	long long list_id = 0;
	int rc, public = 0, shown = 0;

	herr_clear(&err);
	if (!(t = thread_db(s)))
		return unavailable(s, c);
	if (db_prepare(t->db, &st, "SELECT i.list_id, l.public, i.status IN ('sent', 'sending') "
	               "OR (i.status = 'paused' AND i.started_at IS NOT NULL) "
	               "FROM issues i JOIN lists l ON l.id = i.list_id WHERE i.id = ?1", &err) < 0)
		return db_failed(s, c, &err, "archive");
	sqlite3_bind_int64(st, 1, r->id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list_id = sqlite3_column_int64(st, 0);
		public = sqlite3_column_int(st, 1);
		shown = sqlite3_column_int(st, 2);
	} else if (rc != SQLITE_DONE)
		db_error(t->db, &err, "read issue");
	sqlite3_finalize(st);
	if (err.code)
		return db_failed(s, c, &err, "archive");
	/* drafts are nobody's business; a list that is not public needs the
	 * view token its mails carry */
	if (!shown)
		return not_found(s, c);
	if (r->token_len) {
		if (check_token(s, r->token, r->token_len, TOKEN_VIEW, &tok) < 0 ||
		    (long long)tok.issue_id != r->id || (long long)tok.list_id != list_id)
			return not_found(s, c);
	} else if (!public)
		return not_found(s, c);
	if (!(il = links_get(s, t, r->id, &err)))
		return db_failed(s, c, &err, "archive");
	pthread_mutex_lock(&s->cache_mu);
	if (il->archive_html && (copy = malloc(il->archive_len + 1))) {
		memcpy(copy, il->archive_html, il->archive_len + 1);
		html = copy;
		len = il->archive_len;
	}
	pthread_mutex_unlock(&s->cache_mu);
	if (!html) {
		if (render_archive(s, t->db, r->id, &html, &len, &err) < 0)
			return db_failed(s, c, &err, "archive");
		/* a sent issue's parts never change: keep the copy */
		pthread_mutex_lock(&s->cache_mu);
		if (!il->archive_html && (copy = malloc(len + 1))) {
			memcpy(copy, html, len + 1);
			il->archive_html = copy;
			il->archive_len = len;
		}
		pthread_mutex_unlock(&s->cache_mu);
	}
	return queue_body(s, c, MHD_HTTP_OK, html, len, "text/html; charset=utf-8", CSP_ARCHIVE,
	                  NULL, NULL);
}

/* ---- the mail thread ---- */

static void
mail_record_usage(struct mailer *m, const char *relay)
{
	struct web_server *s = m->s;
	sqlite3_stmt *st;
	struct herr err;

	/* the relays' hour and day windows count these too (sendjob.c) */
	herr_clear(&err);
	if (!m->db && db_open(s->cfg->db_path, DB_OPEN_EXISTING, s->cfg->db_busy_timeout_ms,
	                      &m->db, &err) < 0) {
		web_log(s, "relay usage not recorded: %s", err.msg);
		return;
	}
	if (db_prepare(m->db, &st, "INSERT INTO relay_usage (relay, at) VALUES (?1, ?2)",
	               &err) < 0) {
		web_log(s, "relay usage not recorded: %s", err.msg);
		return;
	}
	sqlite3_bind_text(st, 1, relay, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, db_now_f());
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_error(m->db, &err, "record relay usage");
		web_log(s, "relay usage not recorded: %s", err.msg);
	}
	sqlite3_finalize(st);
}

static void
mail_close_conns(struct mailer *m)
{
	size_t i;

	for (i = 0; i < m->s->cfg->n_relays; i++) {
		smtp_conn_free(m->conn[i]);
		m->conn[i] = NULL;
	}
}

/* Build and send one confirmation: the first relay that can be reached
 * takes it; a refusal is logged with the relay's own words. */
static void
mail_send(struct mailer *m, const struct mail_job *j)
{
	const struct config *cfg = m->s->cfg;
	struct buf msg = BUF_INIT(1u << 20);
	struct message_out mo;
	struct smtp_result res;
	struct herr err;
	size_t i;

	herr_clear(&err);
	if (message_build_confirm(cfg, &m->s->key, m->dkim, &j->list, j->subscriber_id, j->email,
	                          j->name, db_now(), &msg, &mo, &err) < 0) {
		web_log(m->s, "confirmation mail to %s not sent: %s", j->email, err.msg);
		atomic_fetch_add(&m->failed, 1);
		buf_free(&msg);
		return;
	}
	for (i = 0; i < cfg->n_relays; i++) {
		const char *relay = cfg->relays[i].name;

		if (!m->conn[i] && smtp_conn_new(&cfg->relays[i], &m->conn[i], &err) < 0) {
			web_log(m->s, "relay %s: %s", relay, err.msg);
			continue;
		}
		smtp_send(m->conn[i], mo.mail_from, mo.rcpt.ascii, msg.data, msg.len, &res);
		if (res.outcome != SMTP_UNREACHABLE)
			mail_record_usage(m, relay);
		if (res.outcome == SMTP_SENT) {
			atomic_fetch_add(&m->sent, 1);
			buf_free(&msg);
			return;
		}
		if (res.code)
			web_log(m->s, "confirmation mail to %s: relay %s (%s) said %d %s", j->email, relay,
			        smtp_stage_name(res.stage), res.code, res.reply);
		else
			web_log(m->s, "confirmation mail to %s: relay %s: %s", j->email, relay,
			        res.detail[0] ? res.detail : smtp_outcome_name(res.outcome));
		/* a fresh connection next time; the next relay only when this
		 * one could not be used at all */
		smtp_conn_free(m->conn[i]);
		m->conn[i] = NULL;
		if (res.outcome != SMTP_UNREACHABLE && res.outcome != SMTP_FATAL)
			break;
	}
	atomic_fetch_add(&m->failed, 1);
	buf_free(&msg);
}

static void *
mail_main(void *arg)
{
	struct mailer *m = arg;
	struct mail_job *j;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (!m->head && !m->stopping) {
			/* idle: let the relay connections go */
			pthread_mutex_unlock(&m->mu);
			mail_close_conns(m);
			pthread_mutex_lock(&m->mu);
			if (!m->head && !m->stopping)
				pthread_cond_wait(&m->wake, &m->mu);
		}
		if (!m->head)
			break; /* stopping, nothing left */
		j = m->head;
		if (!(m->head = j->next))
			m->tail = NULL;
		m->queued--;
		pthread_mutex_unlock(&m->mu);
		if (m->stopping && mono_now() > m->deadline) {
			web_log(m->s, "confirmation mail to %s not sent: stopping", j->email);
			atomic_fetch_add(&m->failed, 1);
		} else
			mail_send(m, j);
		free(j);
		pthread_mutex_lock(&m->mu);
	}
	pthread_mutex_unlock(&m->mu);
	mail_close_conns(m);
	return NULL;
}

static int
mail_enqueue(struct mailer *m, long long subscriber_id, const struct list *l, const char *email,
             const char *name)
{
	struct mail_job *j;

	if (!(j = calloc(1, sizeof *j)))
		return -1;
	j->subscriber_id = subscriber_id;
	j->list = *l;
	snprintf(j->email, sizeof j->email, "%s", email);
	snprintf(j->name, sizeof j->name, "%s", name);
	pthread_mutex_lock(&m->mu);
	if (m->queued >= MAIL_QUEUE_MAX || m->stopping) {
		pthread_mutex_unlock(&m->mu);
		free(j);
		return -1;
	}
	if (m->tail)
		m->tail->next = j;
	else
		m->head = j;
	m->tail = j;
	m->queued++;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

static void
mail_stop(struct mailer *m)
{
	struct mail_job *j;

	if (m->running) {
		pthread_mutex_lock(&m->mu);
		m->stopping = 1;
		m->deadline = mono_now() + MAIL_STOP_WAIT;
		pthread_cond_signal(&m->wake);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thread, NULL);
		m->running = 0;
	}
	while ((j = m->head)) {
		m->head = j->next;
		free(j);
	}
	free(m->conn);
	m->conn = NULL;
	db_close(m->db);
	m->db = NULL;
	dkim_signer_free(m->dkim);
	m->dkim = NULL;
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->mu);
}

/* ---- the MHD callbacks ---- */

static enum MHD_Result
dispatch(struct web_server *s, struct MHD_Connection *c, enum web_method m,
         const struct web_route *r, const struct request *rq)
{
	switch (r->kind) {
	case WEB_ROUTE_OPEN:
		return handle_open(s, c, m, r);
	case WEB_ROUTE_CLICK:
		return handle_click(s, c, m, r);
	case WEB_ROUTE_UNSUBSCRIBE:
		return handle_unsubscribe(s, c, m, r, rq);
	case WEB_ROUTE_CONFIRM:
		return handle_confirm(s, c, m, r);
	case WEB_ROUTE_SUBSCRIBE:
		return handle_subscribe(s, c, rq);
	case WEB_ROUTE_ARCHIVE_INDEX:
		return handle_archive_index(s, c, r);
	case WEB_ROUTE_ARCHIVE:
		return handle_archive(s, c, r);
	case WEB_ROUTE_NONE:
		break;
	}
	return not_found(s, c);
}

static enum MHD_Result
too_large(struct web_server *s, struct MHD_Connection *c)
{
	return queue_notice(s, c, MHD_HTTP_CONTENT_TOO_LARGE, "Too much data",
	                    "That request was larger than this site accepts.");
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *data, size_t *data_size, void **state)
{
	struct web_server *s = cls;
	struct request *rq = *state;
	struct web_route r;
	enum web_method m;
	const char *cl;
	double elapsed;

	(void)version;
	if (rq == (void *)&s->get_marker) {
		/* the second call of a GET or HEAD: answering now rather than
		 * in the first call keeps the connection open for the next
		 * request (libmicrohttpd closes after an "early" response) */
		if (*data_size)
			return MHD_NO; /* a body with a GET: not from a browser */
		m = web_method(method);
		web_route(m, url, &r);
		return dispatch(s, c, m, &r, NULL);
	}
	if (!rq) {
		/* the first call: the request line and headers are in */
		atomic_fetch_add(&s->requests, 1);
		atomic_fetch_add(&s->in_flight, 1);
		m = web_method(method);
		web_route(m, url, &r);
		if (r.status == 405)
			return queue_notice_h(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Not allowed",
			                      "This address does not take that kind of request.",
			                      MHD_HTTP_HEADER_ALLOW, r.allow);
		if (r.status)
			return not_found(s, c);
		if (m != WEB_POST) {
			*state = &s->get_marker;
			return MHD_YES;
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > WEB_BODY_MAX)
			return too_large(s, c);
		if (!(rq = calloc(1, sizeof *rq)))
			return MHD_NO;
		rq->route = r;
		if (r.token_len) {
			memcpy(rq->token, r.token, r.token_len);
			rq->token[r.token_len] = '\0';
			rq->route.token = rq->token;
		}
		buf_init(&rq->body, WEB_BODY_MAX);
		rq->started = mono_now();
		*state = rq;
		return MHD_YES;
	}
	if (*data_size) {
		/* a slow sender gets WEB_TIMEOUT seconds for the whole body,
		 * not per read */
		elapsed = mono_now() - rq->started;
		if (elapsed >= WEB_TIMEOUT)
			return MHD_NO;
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
		                          (unsigned int)(WEB_TIMEOUT - elapsed) + 1);
		if (rq->too_large || buf_add(&rq->body, data, *data_size) < 0)
			rq->too_large = 1; /* read and drop the rest, then 413 */
		*data_size = 0;
		return MHD_YES;
	}
	MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)WEB_TIMEOUT);
	if (rq->too_large)
		return too_large(s, c);
	return dispatch(s, c, WEB_POST, &rq->route, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **state,
             enum MHD_RequestTerminationCode toe)
{
	struct web_server *s = cls;
	struct request *rq = *state;

	(void)c;
	(void)toe;
	if (rq && rq != (void *)&s->get_marker) {
		buf_free(&rq->body);
		free(rq);
		*state = NULL;
	}
	atomic_fetch_sub(&s->in_flight, 1);
}

/* ---- start and stop ---- */

static int
listen_socket(const char *spec, char *url, size_t url_size, struct herr *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char host[INET6_ADDRSTRLEN];
	int fd, one = 1;
	unsigned port;

	if (web_parse_listen(spec, &ss, &len, err) < 0)
		return -1;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return herr_set(err, EX_OSERR, NULL, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		herr_set(err, EX_UNAVAILABLE, NULL, "cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	len = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &len);
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(url, url_size, "http://%s:%u", host, port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		snprintf(url, url_size, "http://[%s]:%u", host, port);
	}
	return fd;
}

static struct MHD_Response *
make_gif(int closing)
{
	struct MHD_Response *r;

	/* one response for every hit: MHD counts its references */
	r = MHD_create_response_from_buffer(sizeof pixel_gif, (void *)pixel_gif,
	                                    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "image/gif");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
	                        "no-store, no-cache, must-revalidate, max-age=0");
	MHD_add_response_header(r, MHD_HTTP_HEADER_PRAGMA, "no-cache");
	MHD_add_response_header(r, MHD_HTTP_HEADER_EXPIRES, "0");
	add_security_headers(r, CSP_PAGE);
	if (closing)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	return r;
}

static struct MHD_Response *
make_not_found(const char *lang, int closing)
{
	struct buf page = BUF_INIT(1u << 16);
	struct MHD_Response *r;

	if (webpage_notice(&page, lang, "Page not found",
	                   "This link is not valid, or what it pointed to is gone.") < 0) {
		buf_free(&page);
		return NULL;
	}
	r = MHD_create_response_from_buffer(page.len, page.data, MHD_RESPMEM_MUST_COPY);
	buf_free(&page);
	if (!r)
		return NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	add_security_headers(r, CSP_PAGE);
	if (closing)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	return r;
}

static unsigned
connection_limit(void)
{
	long max = sysconf(_SC_OPEN_MAX);

	/* MHD refuses to start when the limit exceeds the descriptors; keep
	 * room for the database, the relays and the event writer */
	if (max > 0 && max - 64 < WEB_CONNECTIONS_MAX)
		return max > 128 ? (unsigned)(max - 64) : 64;
	return WEB_CONNECTIONS_MAX;
}

static void
web_free(struct web_server *s)
{
	struct web_thread *t, *tn;
	struct issue_links *il, *in;
	size_t i;

	for (t = s->threads; t; t = tn) {
		tn = t->next;
		sqlite3_finalize(t->rows_exist);
		db_close(t->db);
		free(t);
	}
	for (i = 0; i < ISSUE_BUCKETS; i++)
		for (il = s->cache[i]; il; il = in) {
			in = il->next;
			links_free(il);
		}
	if (s->gif)
		MHD_destroy_response(s->gif);
	if (s->gif_close)
		MHD_destroy_response(s->gif_close);
	if (s->not_found)
		MHD_destroy_response(s->not_found);
	if (s->not_found_close)
		MHD_destroy_response(s->not_found_close);
	web_limiter_free(s->ip_limit);
	web_limiter_free(s->addr_limit);
	if (s->tkey_made)
		pthread_key_delete(s->tkey);
	pthread_mutex_destroy(&s->threads_mu);
	pthread_mutex_destroy(&s->cache_mu);
	explicit_bzero(&s->key, sizeof s->key);
	free(s);
}

int
web_start(const struct config *cfg, const struct web_opts *opts, struct web_server **out,
          struct herr *err)
{
	struct web_server *s;
	unsigned threads = opts->threads;
	long ncpu;
	int flags;

	*out = NULL;
	if (!cfg->base_url)
		return herr_set(err, EX_CONFIG, NULL, "[web] base_url is not set");
	if (!cfg->n_relays)
		return herr_set(err, EX_CONFIG, NULL, "no [smtp] relay for confirmation mails");
	if (!(s = calloc(1, sizeof *s)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	s->cfg = cfg;
	s->opts = *opts;
	s->fd = -1;
	pthread_mutex_init(&s->threads_mu, NULL);
	pthread_mutex_init(&s->cache_mu, NULL);
	pthread_mutex_init(&s->mail.mu, NULL);
	pthread_cond_init(&s->mail.wake, NULL);
	s->mail.s = s;
	if (token_key_load(cfg->secret_file, &s->key, err) < 0)
		goto fail;
	if (message_dkim_open(cfg, &s->mail.dkim, err) < 0)
		goto fail;
	if (pthread_key_create(&s->tkey, NULL) != 0) {
		herr_set(err, EX_OSERR, NULL, "cannot make a thread key");
		goto fail;
	}
	s->tkey_made = 1;
	if (!(s->mail.conn = calloc(cfg->n_relays, sizeof *s->mail.conn)) ||
	    web_limiter_new(WEB_SUBSCRIBE_PER_IP, WEB_SUBSCRIBE_IP_SPAN, LIMIT_KEYS,
	                    &s->ip_limit) < 0 ||
	    web_limiter_new(WEB_CONFIRM_PER_ADDR, WEB_CONFIRM_ADDR_SPAN, LIMIT_KEYS,
	                    &s->addr_limit) < 0 ||
	    !(s->gif = make_gif(0)) || !(s->gif_close = make_gif(1)) ||
	    !(s->not_found = make_not_found(cfg->lang, 0)) ||
	    !(s->not_found_close = make_not_found(cfg->lang, 1))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto fail;
	}
	if ((s->fd = listen_socket(opts->listen, s->url, sizeof s->url, err)) < 0)
		goto fail;
	if (eventlog_open(cfg->db_path, cfg->db_busy_timeout_ms, &s->events, err) < 0)
		goto fail;
	if (pthread_create(&s->mail.thread, NULL, mail_main, &s->mail) != 0) {
		herr_set(err, EX_OSERR, NULL, "cannot start the mail thread");
		goto fail;
	}
	s->mail.running = 1;
	if (!threads) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		threads = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_EPOLL;
	for (;;) {
		s->mhd = MHD_start_daemon(
			flags, 0, NULL, NULL, on_request, s,
			MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->fd,
			MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(threads > 1 ? threads : 0),
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)WEB_TIMEOUT,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WEB_HEADER_MEM,
			MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
			MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)WEB_PER_IP_MAX,
			MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)SOMAXCONN,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
			MHD_OPTION_END);
		if (s->mhd || !(flags & MHD_USE_EPOLL))
			break;
		/* a libmicrohttpd without epoll: let it choose */
		flags = (flags & ~MHD_USE_EPOLL) | MHD_USE_AUTO;
	}
	if (!s->mhd) {
		herr_set(err, EX_UNAVAILABLE, NULL, "cannot start the HTTP server on %s",
		         opts->listen);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	mail_stop(&s->mail);
	if (s->events) {
		struct herr ignored;

		eventlog_close(s->events, &ignored);
	}
	if (s->fd >= 0)
		close(s->fd);
	web_free(s);
	return -1;
}

const char *
web_url(const struct web_server *s)
{
	return s->url;
}

int
web_stop(struct web_server *s, struct web_summary *sum, struct herr *err)
{
	MHD_socket lfd;
	double until;
	int ret;

	memset(sum, 0, sizeof *sum);
	/* stop taking connections; answer what is in flight, each answer
	 * closing its connection, so keep-alive clients leave rather than
	 * have a next request cut off */
	lfd = MHD_quiesce_daemon(s->mhd);
	atomic_store(&s->stopping, 1);
	until = mono_now() + STOP_DRAIN_WAIT;
	while (atomic_load(&s->in_flight) > 0 && mono_now() < until) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(s->mhd);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	mail_stop(&s->mail);
	eventlog_flush(s->events);
	sum->requests = atomic_load(&s->requests);
	sum->events = eventlog_written(s->events);
	sum->mails_sent = atomic_load(&s->mail.sent);
	sum->mails_failed = atomic_load(&s->mail.failed);
	ret = eventlog_close(s->events, err);
	web_free(s);
	return ret;
}
