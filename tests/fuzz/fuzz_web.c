/*
 * fuzz_web.c - libFuzzer target for the parts of the subscriber web endpoint
 * that read what a client sends (include/herald/web.h's pure parts:
 * web_route(), web_form_parse(), web_form_get(), web_method(),
 * web_ua_classify(), web_event_detail(), web_client_key(); and
 * token_verify(), token_make() of include/herald/token.h).
 *
 * Input: lines separated by LF, the rest being the body:
 *   1  the Content-Type of the body ("" means none: NULL)
 *   2  the request path ("/u/TOKEN", "/c/TOKEN/3", ...), cut at a NUL
 *   3  a header value used as the method, the User-Agent and X-Real-IP
 *   4- the request body (any bytes, NULs included)
 * Tokens are checked with a fixed key (bytes 0..31), the one the committed
 * seeds were minted with, so seeds reach past the MAC check.
 *
 * Broken promises abort():
 *   - routing: with each method, status is 0 (routed), 404 or 405, the kind
 *     is NONE exactly when status is not 0, any other method than GET,
 *     HEAD and POST is 405 but under /api/ (the API answers its own), Allow
 *     is set; an API path lies in the path, after "/api/"; a token points into the path and
 *     is 1..TOKEN_MAX-1 URL-safe base64 characters; link numbers and issue
 *     ids are 1..999999999; GET and HEAD route alike;
 *   - tokens: one that verifies is the token token_make() writes for what
 *     it says (one spelling per token); a token made from values taken from
 *     the input verifies to the same values, and fails once a character is
 *     changed, once truncated and once extended;
 *   - forms: -1 leaves no field; 0 gives at most WEB_FORM_FIELDS fields
 *     whose names and values lie NUL-terminated in the form's own data, and
 *     web_form_get() finds the first value of each name; a body over
 *     WEB_BODY_MAX is refused; the same with no content type (urlencoded);
 *   - paths: web_unescape() never grows a path, returns the length it left,
 *     adds no control byte (a %00 or %0A stays as its three characters),
 *     leaves a path without '%' as it was; the unescaped path routes under
 *     the same promises as the raw one;
 *   - web_method() maps exactly "GET", "HEAD", "POST", "DELETE"; a User-Agent gives
 *     event JSON that fits 1 KiB, is valid UTF-8 and holds no raw control
 *     character; X-Real-IP is believed only from a loopback peer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "herald/token.h"
#include "herald/utf8.h"
#include "herald/web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_web: broken promise: %s (%.200s)\n", what, detail ? detail : "");
	abort();
}

static void
fuzz_key(struct token_key *k)
{
	size_t i;

	for (i = 0; i < TOKEN_SECRET_LEN; i++)
		k->secret[i] = (unsigned char)i;
}

static int
url_safe(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

/* A token that verifies has exactly one spelling: token_make's. */
static void
check_token(const struct token_key *k, const char *s, size_t len)
{
	struct token t;
	char again[TOKEN_MAX];

	if (token_verify(k, s, len, &t) < 0)
		return;
	if (token_make(k, &t, again) < 0)
		broken("token_make failed", "");
	if (strlen(again) != len || memcmp(again, s, len))
		broken("a token verified that token_make spells otherwise", again);
}

static void
check_route(enum web_method m, const char *path, struct web_route *r)
{
	size_t plen = strlen(path);

	web_route(m, path, r);
	if (r->status != 0 && r->status != 404 && r->status != 405)
		broken("status not 0, 404 or 405", path);
	if ((r->kind == WEB_ROUTE_NONE) != (r->status != 0))
		broken("kind and status disagree", path);
	if ((m == WEB_OTHER || m == WEB_DELETE) && r->status != 405 && r->kind != WEB_ROUTE_API)
		broken("an unknown method is not 405", path);
	if (r->kind == WEB_ROUTE_API &&
	    (strncmp(path, "/api/", 5) || r->api_path != path + 5 ||
	     strlen(r->api_path) >= WEB_API_PATH_MAX))
		broken("an API path not after /api/", path);
	if (r->allow == NULL)
		broken("no Allow value", path);
	if (r->token_len > 0) {
		if (r->token == NULL || r->token < path || r->token + r->token_len > path + plen)
			broken("token outside the path", path);
		if (r->token_len >= TOKEN_MAX || !url_safe(r->token, r->token_len))
			broken("token not 1..TOKEN_MAX-1 URL-safe characters", path);
	}
	if (r->kind == WEB_ROUTE_CLICK && (r->n < 1 || r->n > 999999999 || r->token_len == 0))
		broken("click without a token or with a link number out of range", path);
	if (r->kind == WEB_ROUTE_ARCHIVE && (r->id < 1 || r->id > 999999999))
		broken("archive id out of range", path);
	if ((r->kind == WEB_ROUTE_UNSUBSCRIBE || r->kind == WEB_ROUTE_CONFIRM) &&
	    r->token_len == 0)
		broken("unsubscribe or confirm without a token", path);
	if (r->kind == WEB_ROUTE_OPEN && (plen < 4 || strcmp(path + plen - 4, ".gif")))
		broken("open pixel not ending in .gif", path);
}

static void
routes(const struct token_key *k, const char *path)
{
	static const enum web_method methods[] = { WEB_GET, WEB_HEAD, WEB_POST, WEB_DELETE,
	                                           WEB_OTHER };
	struct web_route r, get;
	size_t i;

	check_route(WEB_GET, path, &get);
	for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		check_route(methods[i], path, &r);
		if (methods[i] == WEB_HEAD &&
		    (r.kind != get.kind || r.status != get.status || r.token != get.token ||
		     r.token_len != get.token_len))
			broken("GET and HEAD route differently", path);
		if (r.token_len > 0)
			check_token(k, r.token, r.token_len);
	}
	/* The path itself, and its last segment, as a token. */
	check_token(k, path, strlen(path));
	if (strrchr(path, '/'))
		check_token(k, strrchr(path, '/') + 1, strlen(strrchr(path, '/') + 1));
}

/* A token from input bytes: it round-trips, and damaged it does not. */
static void
token_roundtrip(const struct token_key *k, const uint8_t *data, size_t size)
{
	unsigned long long v[3] = { 0, 0, 0 };
	struct token t, back;
	char s[TOKEN_MAX], bad[TOKEN_MAX + 1];
	size_t i, n, pos;
	unsigned shift;

	for (i = 0; i < size && i < 24; i++) {
		shift = (unsigned)(i % 8) * 8;
		v[i / 8] |= (unsigned long long)data[i] << shift;
	}
	memset(&t, 0, sizeof t);
	t.kind = (enum token_kind)(1 + (size ? data[size - 1] : 0) % 6);
	t.subscriber_id = v[0];
	t.list_id = v[1] >> (size % 64);
	t.issue_id = v[2];
	if (token_make(k, &t, s) < 0)
		broken("token_make failed", "");
	n = strlen(s);
	if (n == 0 || n >= TOKEN_MAX || !url_safe(s, n))
		broken("token_make wrote a token that is not URL-safe base64", s);
	if (token_verify(k, s, n, &back) < 0)
		broken("a made token does not verify", s);
	if (back.kind != t.kind || back.subscriber_id != t.subscriber_id ||
	    back.list_id != t.list_id || back.issue_id != t.issue_id)
		broken("a made token verifies to other values", s);

	pos = size ? data[0] % n : 0;
	memcpy(bad, s, n + 1);
	bad[pos] = bad[pos] == 'A' ? 'B' : 'A';
	if (token_verify(k, bad, n, &back) == 0)
		broken("a token with a changed character verifies", bad);
	if (token_verify(k, s, n - 1, &back) == 0)
		broken("a truncated token verifies", s);
	memcpy(bad, s, n);
	bad[n] = size ? "AQgw-_"[data[0] % 6] : 'A';
	if (token_verify(k, bad, n + 1, &back) == 0)
		broken("an extended token verifies", s);
}

static void
check_form(const char *ctype, const char *body, size_t len)
{
	struct web_form *f;
	const char *end, *want, *got;
	size_t i, j;
	int rc;

	if (!(f = malloc(sizeof *f)))
		return;
	rc = web_form_parse(ctype, body, len, f);
	if (rc < 0) {
		if (f->n != 0)
			broken("a refused form has fields", "");
	} else {
		if (rc != 0)
			broken("neither 0 nor -1", "");
		if (len > WEB_BODY_MAX)
			broken("a body over WEB_BODY_MAX was accepted", "");
		if (f->n > WEB_FORM_FIELDS)
			broken("more than WEB_FORM_FIELDS fields", "");
		end = f->data + sizeof f->data;
		for (i = 0; i < f->n; i++) {
			if (!f->f[i].name || !f->f[i].value || f->f[i].name < f->data ||
			    f->f[i].name >= end || f->f[i].value < f->data || f->f[i].value >= end)
				broken("a field outside the form's data", "");
			if (!memchr(f->f[i].name, '\0', (size_t)(end - f->f[i].name)) ||
			    !memchr(f->f[i].value, '\0', (size_t)(end - f->f[i].value)))
				broken("a field not NUL-terminated in the form's data", "");
		}
		for (i = 0; i < f->n; i++) {
			want = NULL;
			for (j = 0; j < f->n && !want; j++)
				if (!strcmp(f->f[j].name, f->f[i].name))
					want = f->f[j].value;
			if ((got = web_form_get(f, f->f[i].name)) != want)
				broken("web_form_get did not find a name's first value", f->f[i].name);
		}
	}
	(void)web_form_get(f, "email");
	(void)web_form_get(f, "");
	free(f);
}

static void
check_agent(const char *ua)
{
	char out[1024];
	enum web_ua kind = web_ua_classify(ua);
	const char *name = web_ua_name(kind);
	size_t n, i;

	if (web_ua_classify(NULL) != WEB_UA_MACHINE || web_ua_classify("") != WEB_UA_MACHINE)
		broken("a missing User-Agent is not a machine", "");
	if (!name || (strcmp(name, "human") && strcmp(name, "machine")))
		broken("web_ua_name is neither human nor machine", name);
	if (web_event_detail(out, sizeof out, 7, kind, ua) < 0 ||
	    web_event_detail(out, sizeof out, 0, kind, ua) < 0)
		broken("event detail does not fit 1 KiB", ua);
	n = strlen(out);
	if (n < 2 || out[0] != '{' || out[n - 1] != '}')
		broken("event detail is not a JSON object", out);
	if (utf8_invalid_at((const unsigned char *)out, n) != n)
		broken("event detail is not UTF-8", out);
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			broken("raw control character in event detail", out);
}

static void
check_client_key(const char *real_ip)
{
	struct sockaddr_in lo4, far4;
	struct sockaddr_in6 lo6, far6;
	struct config_cidr proxies[2];
	char a[128], b[128];

	memset(&lo4, 0, sizeof lo4);
	lo4.sin_family = AF_INET;
	lo4.sin_addr.s_addr = htonl(0x7f000001);
	far4 = lo4;
	far4.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
	memset(&lo6, 0, sizeof lo6);
	lo6.sin6_family = AF_INET6;
	lo6.sin6_addr = in6addr_loopback;
	far6 = lo6;
	inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &far6.sin6_addr);
	/* the loopback peers are the trusted proxies ([web] trusted_proxies) */
	config_parse_cidr("127.0.0.1", &proxies[0]);
	config_parse_cidr("::1", &proxies[1]);

	web_client_key((const struct sockaddr *)&lo4, real_ip, proxies, 2, a, sizeof a);
	if (!memchr(a, '\0', sizeof a) || !*a)
		broken("empty or unterminated client key", real_ip);
	web_client_key((const struct sockaddr *)&lo6, real_ip, proxies, 2, a, sizeof a);
	if (!memchr(a, '\0', sizeof a) || !*a)
		broken("empty or unterminated client key", real_ip);
	web_client_key((const struct sockaddr *)&far4, real_ip, proxies, 2, a, sizeof a);
	web_client_key((const struct sockaddr *)&far4, NULL, proxies, 2, b, sizeof b);
	if (strcmp(a, b))
		broken("X-Real-IP believed from a remote IPv4 peer", real_ip);
	web_client_key((const struct sockaddr *)&far6, real_ip, proxies, 2, a, sizeof a);
	web_client_key((const struct sockaddr *)&far6, NULL, proxies, 2, b, sizeof b);
	if (strcmp(a, b))
		broken("X-Real-IP believed from a remote IPv6 peer", real_ip);
	/* A small buffer cuts the key, still terminated. */
	web_client_key((const struct sockaddr *)&lo6, real_ip, proxies, 2, a, 6);
	if (!memchr(a, '\0', 6))
		broken("client key not terminated in a small buffer", real_ip);
}

static size_t
count_controls(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			n++;
	return n;
}

/* MHD hands herald the path raw; web_unescape() decodes it in place. */
static void
check_unescape(const struct token_key *k, const char *path)
{
	size_t n = strlen(path), got;
	char *s = malloc(n + 1);

	if (!s)
		return;
	memcpy(s, path, n + 1);
	got = web_unescape(s);
	if (got != strlen(s) || got > n)
		broken("web_unescape returns a wrong length", path);
	if (count_controls(s) != count_controls(path))
		broken("web_unescape decoded a control byte", path);
	if (!strchr(path, '%') && strcmp(s, path))
		broken("web_unescape changed a path without '%'", path);
	routes(k, s);
	free(s);
}

static void
check_method(const char *m)
{
	enum web_method got = web_method(m), want = WEB_OTHER;

	if (!strcmp(m, "GET"))
		want = WEB_GET;
	else if (!strcmp(m, "HEAD"))
		want = WEB_HEAD;
	else if (!strcmp(m, "POST"))
		want = WEB_POST;
	else if (!strcmp(m, "DELETE"))
		want = WEB_DELETE;
	if (got != want)
		broken("web_method maps a method wrongly", m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct token_key k;
	const char *p = (const char *)data, *end = p + size, *nl;
	char *line[3], *body;
	size_t i, n;

	fuzz_key(&k);
	for (i = 0; i < 3; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!(line[i] = malloc(n + 1))) {
			while (i > 0)
				free(line[--i]);
			return 0;
		}
		memcpy(line[i], p, n);
		line[i][n] = '\0'; /* a NUL inside cuts the string, as for a C caller */
		p = nl ? nl + 1 : end;
	}
	/* The body in a buffer of its own size, so an over-read is caught. */
	n = (size_t)(end - p);
	if ((body = malloc(n ? n : 1)) != NULL) {
		if (n)
			memcpy(body, p, n);
		check_form(line[0][0] ? line[0] : NULL, body, n);
		check_form(NULL, body, n);
		free(body);
	}
	routes(&k, line[1]);
	check_unescape(&k, line[1]);
	token_roundtrip(&k, data, size);
	check_method(line[2]);
	check_agent(line[2]);
	check_client_key(line[2]);
	for (i = 0; i < 3; i++)
		free(line[i]);
	return 0;
}
