/*
 * webhttp.c - the pure parts of herald serve's request handling: user-agent
 * classification, routes, form bodies (urlencoded and multipart), the
 * client key of the sign-up limiter, and listen addresses.  No server
 * state and no I/O: unit-tested (tests/unit/test_web.c) and fuzzed
 * (tests/fuzz/fuzz_web.c) on their own.  Declared in web.h.
 *
 * Standards: RFC 7578 multipart/form-data; WHATWG URL §5
 * application/x-www-form-urlencoded; RFC 9110 §9 methods.
 */
#include "herald/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/token.h"
#include "herald/utf8.h"

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
	if (!strcmp(m, "DELETE"))
		return WEB_DELETE;
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
	} else if (starts(path, "/p/", &rest) && token_chars(rest, strlen(rest))) {
		r->kind = WEB_ROUTE_PREFERENCES;
		r->token = rest;
		r->token_len = strlen(rest);
	} else if (starts(path, "/p/", &rest) && (slash = strchr(rest, '/')) &&
	           token_chars(rest, (size_t)(slash - rest)) &&
	           (!strcmp(slash, "/export") || !strcmp(slash, "/forget"))) {
		r->kind = slash[1] == 'e' ? WEB_ROUTE_PRIVACY_EXPORT : WEB_ROUTE_PRIVACY_FORGET;
		r->allow = post_only;
		r->token = rest;
		r->token_len = (size_t)(slash - rest);
	} else if (starts(path, "/erase/", &rest)) {
		if (!token_chars(rest, strlen(rest)))
			goto not_found;
		r->kind = WEB_ROUTE_PRIVACY_ERASE;
		r->token = rest;
		r->token_len = strlen(rest);
	} else if (!strcmp(path, "/subscribe")) {
		r->kind = WEB_ROUTE_SUBSCRIBE;
		r->allow = post_only;
	} else if (starts(path, "/subscribe/", &rest)) {
		/* a list name (list.h: a-z 0-9 . _ -), checked by the handler */
		n = strlen(rest);
		if (!n || n > 64 || strspn(rest, "abcdefghijklmnopqrstuvwxyz0123456789._-") != n)
			goto not_found;
		r->kind = WEB_ROUTE_SIGNUP_PAGE;
		r->allow = get_only;
		r->token = rest;
		r->token_len = n;
	} else if (starts(path, "/api/", &rest)) {
		/* the API routes and answers its own 404s and 405s, in JSON,
		 * after the key is checked (api.h) */
		if (strlen(rest) > WEB_API_PATH_MAX - 1)
			goto not_found;
		r->kind = WEB_ROUTE_API;
		r->allow = "GET, HEAD, POST, DELETE";
		r->api_path = rest;
		return;
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
	if (m == WEB_OTHER || m == WEB_DELETE || (m == WEB_POST && r->allow == get_only) ||
	    (m != WEB_POST && r->allow == post_only)) {
		r->status = 405;
		r->kind = WEB_ROUTE_NONE;
	}
	return;
not_found:
	memset(r, 0, sizeof *r);
	r->allow = both;
	r->status = m == WEB_OTHER || m == WEB_DELETE ? 405 : 404;
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

size_t
web_unescape(char *s)
{
	char *r = s, *w = s;
	int hi, lo;

	while (*r) {
		if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
			unsigned char c = (unsigned char)(hi << 4 | lo);

			if (c >= 0x20 && c != 0x7f) {
				*w++ = (char)c;
				r += 3;
				continue;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
	return (size_t)(w - s);
}

int
web_peer_in(const struct sockaddr *peer, const struct config_cidr *nets, size_t n_nets)
{
	struct in_addr a4;
	struct in6_addr a6;
	size_t i;

	if (!peer)
		return 0;
	if (peer->sa_family == AF_INET) {
		memcpy(&a4, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, sizeof a4);
		for (i = 0; i < n_nets; i++)
			if (config_cidr_match(&nets[i], AF_INET, (const unsigned char *)&a4))
				return 1;
	} else if (peer->sa_family == AF_INET6) {
		memcpy(&a6, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, sizeof a6);
		for (i = 0; i < n_nets; i++)
			if (config_cidr_match(&nets[i], AF_INET6, a6.s6_addr) ||
			    /* an IPv4 peer seen through a dual-stack socket */
			    (IN6_IS_ADDR_V4MAPPED(&a6) &&
			     config_cidr_match(&nets[i], AF_INET, &a6.s6_addr[12])))
				return 1;
	}
	return 0;
}

void
web_client_key(const struct sockaddr *peer, const char *real_ip,
               const struct config_cidr *proxies, size_t n_proxies, char *out, size_t size)
{
	struct in_addr a4;
	struct in6_addr a6;
	int trusted;

	snprintf(out, size, "unknown");
	if (!peer)
		return;
	if (peer->sa_family == AF_INET)
		memcpy(&a4, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, sizeof a4);
	else if (peer->sa_family == AF_INET6)
		memcpy(&a6, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, sizeof a6);
	else
		return;
	trusted = web_peer_in(peer, proxies, n_proxies);
	/* behind a reverse proxy every peer is the proxy: believe its
	 * X-Real-IP, and only a configured proxy's */
	if (trusted && real_ip && *real_ip) {
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

void
web_client_ip(const struct sockaddr *peer, const char *real_ip,
              const struct config_cidr *proxies, size_t n_proxies, char *out, size_t size)
{
	unsigned char a[sizeof(struct in6_addr)];
	char s[INET6_ADDRSTRLEN];

	out[0] = '\0';
	if (!peer || (peer->sa_family != AF_INET && peer->sa_family != AF_INET6))
		return;
	/* the rule of web_client_key(): only a configured proxy is believed */
	if (web_peer_in(peer, proxies, n_proxies) && real_ip && *real_ip) {
		if (inet_pton(AF_INET, real_ip, a) == 1 && inet_ntop(AF_INET, a, s, sizeof s)) {
			snprintf(out, size, "%s", s);
			return;
		}
		if (inet_pton(AF_INET6, real_ip, a) == 1 && inet_ntop(AF_INET6, a, s, sizeof s)) {
			snprintf(out, size, "%s", s);
			return;
		}
	}
	if (peer->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, s,
	              sizeof s))
		snprintf(out, size, "%s", s);
	else if (peer->sa_family == AF_INET6 &&
	         inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr,
	                   s, sizeof s))
		snprintf(out, size, "%s", s);
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

