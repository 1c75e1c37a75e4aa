/*
 * test_web.c - the pure parts of herald serve (src/web.c) and its pages
 * (src/webpages.c).
 *
 * The user-agent classifier on real agents of mail clients, image proxies
 * and scanners; the event detail JSON (parsed back with jansson: escaping,
 * the 120-character cut, bytes that are not UTF-8); routing of every path
 * and method, including the malformed ones that must be 404 (invariant 2:
 * no click without a well-formed token and link number); form decoding of
 * RFC 8058 one-click bodies in both encodings; the sliding-window limiter
 * on a fake clock; the client key behind a proxy; listen addresses; and
 * that pages escape every value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>

#include "herald/buf.h"
#include "herald/web.h"
#include "herald/webpages.h"

/* ---- user agents ---- */

static void
test_web_ua_classify_machines(void **state)
{
	static const char *const machines[] = {
		/* Apple Mail Privacy Protection's proxy: exactly this */
		"Mozilla/5.0",
		"",
		"curl/7.88.1",
		"python-requests/2.31.0",
		"Python-urllib/3.11",
		"Wget/1.21.3",
		"Go-http-client/1.1",
		"Java/1.8.0_392",
		"okhttp/4.12.0",
		"libwww-perl/6.72",
		"Apache-HttpClient/4.5.14 (Java/17.0.9)",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
		"HeadlessChrome/120.0.6099.109 Safari/537.36",
		"Barracuda Sentinel (EE)",
		"Mimecast-Link-Scanner/1.0",
		"Proofpoint URL Defense",
		"Microsoft Office Existence Discovery",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) SkypeUriPreview Preview/0.5",
		"Mozilla/5.0 (compatible; YandexSpider/3.0)",
		"Mozilla/5.0 (compatible; AhrefsCrawler)",
		"Symantec Email Security.cloud Link Scanner",
	};
	size_t i;

	(void)state;
	assert_int_equal(web_ua_classify(NULL), WEB_UA_MACHINE);
	for (i = 0; i < sizeof machines / sizeof machines[0]; i++) {
		if (web_ua_classify(machines[i]) != WEB_UA_MACHINE)
			fail_msg("'%s' should be a machine", machines[i]);
	}
	assert_string_equal(web_ua_name(WEB_UA_MACHINE), "machine");
}

static void
test_web_ua_classify_humans(void **state)
{
	static const char *const humans[] = {
		/* Gmail fetches images through its proxy when the mail is opened */
		"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
		"GoogleImageProxy)",
		"YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
		"Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
		"Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0",
		"Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
		"(KHTML, like Gecko) Mobile/15E148",
		/* close to Apple's, but not exactly it */
		"Mozilla/5.0 ",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof humans / sizeof humans[0]; i++) {
		if (web_ua_classify(humans[i]) != WEB_UA_HUMAN)
			fail_msg("'%s' should be a human", humans[i]);
	}
	assert_string_equal(web_ua_name(WEB_UA_HUMAN), "human");
}

/* ---- event detail ---- */

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	if (!j)
		fail_msg("not JSON (%s): %s", e.text, s);
	return j;
}

static void
test_web_event_detail_open_and_click(void **state)
{
	char out[1024];
	json_t *j;

	(void)state;
	assert_int_equal(web_event_detail(out, sizeof out, 0, WEB_UA_HUMAN, "Thunderbird/115"), 0);
	assert_string_equal(out, "{\"ua\":\"human\",\"agent\":\"Thunderbird/115\"}");
	assert_int_equal(web_event_detail(out, sizeof out, 3, WEB_UA_MACHINE, NULL), 0);
	assert_string_equal(out, "{\"n\":3,\"ua\":\"machine\",\"agent\":\"\"}");
	j = parse(out);
	assert_int_equal(json_integer_value(json_object_get(j, "n")), 3);
	json_decref(j);
}

static void
test_web_event_detail_escapes(void **state)
{
	char out[1024];
	json_t *j;

	(void)state;
	/* quote, backslash, a tab, a line break, DEL, and a byte that is not
	 * UTF-8 (0xff), which becomes U+FFFD */
	assert_int_equal(web_event_detail(out, sizeof out, 0, WEB_UA_HUMAN,
	                                  "a\"b\\c\td\r\ne\x7f" "f\xff" "g"), 0);
	j = parse(out);
	assert_string_equal(json_string_value(json_object_get(j, "agent")),
	                    "a\"b\\c\td\r\ne\x7f" "f\xef\xbf\xbd" "g");
	json_decref(j);
}

static void
test_web_event_detail_cut(void **state)
{
	char agent[400], out[1024];
	json_t *j;
	const char *a;
	size_t i;

	(void)state;
	/* 150 characters of two bytes each (U+00E9): 120 are kept, whole */
	for (i = 0; i < 150; i++)
		memcpy(agent + 2 * i, "\xc3\xa9", 2);
	agent[300] = '\0';
	assert_int_equal(web_event_detail(out, sizeof out, 0, WEB_UA_HUMAN, agent), 0);
	j = parse(out);
	a = json_string_value(json_object_get(j, "agent"));
	assert_int_equal(strlen(a), 2 * WEB_AGENT_MAX);
	assert_memory_equal(a, agent, 2 * WEB_AGENT_MAX);
	json_decref(j);
	/* too small a buffer fails rather than cutting the JSON */
	assert_int_equal(web_event_detail(out, 20, 0, WEB_UA_HUMAN, "abc"), -1);
}

/* ---- routing ---- */

static void
test_web_route_paths(void **state)
{
	struct web_route r;

	(void)state;
	web_route(WEB_GET, "/o/EgEBAex5H4i1_rFFV1HWNA.gif", &r);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.kind, WEB_ROUTE_OPEN);
	assert_int_equal(r.token_len, 22);
	assert_memory_equal(r.token, "EgEBAex5H4i1_rFFV1HWNA", 22);

	/* the pixel answers whatever the token: only .gif is needed */
	web_route(WEB_GET, "/o/not!a*token.gif", &r);
	assert_int_equal(r.kind, WEB_ROUTE_OPEN);
	assert_int_equal(r.token_len, 0);
	web_route(WEB_GET, "/o/abc", &r);
	assert_int_equal(r.status, 404);

	web_route(WEB_GET, "/c/EwEBATOykxCXtmBnMNYsnw/12", &r);
	assert_int_equal(r.kind, WEB_ROUTE_CLICK);
	assert_int_equal(r.n, 12);
	assert_int_equal(r.token_len, 22);

	web_route(WEB_POST, "/u/EQEBAY3JOOwbcjDkGT-cdQ", &r);
	assert_int_equal(r.kind, WEB_ROUTE_UNSUBSCRIBE);
	assert_int_equal(r.token_len, 22);
	web_route(WEB_GET, "/confirm/FQQBACkUdsNslT3_LOPxOA", &r);
	assert_int_equal(r.kind, WEB_ROUTE_CONFIRM);
	web_route(WEB_POST, "/subscribe", &r);
	assert_int_equal(r.kind, WEB_ROUTE_SUBSCRIBE);
	web_route(WEB_GET, "/subscribe/news.letter_2-b", &r);
	assert_int_equal(r.kind, WEB_ROUTE_SIGNUP_PAGE);
	assert_int_equal(r.token_len, 15);

	web_route(WEB_GET, "/archive", &r);
	assert_int_equal(r.kind, WEB_ROUTE_ARCHIVE_INDEX);
	assert_int_equal(r.index_slash, 0);
	web_route(WEB_HEAD, "/archive/", &r);
	assert_int_equal(r.kind, WEB_ROUTE_ARCHIVE_INDEX);
	assert_int_equal(r.index_slash, 1);
	web_route(WEB_GET, "/archive/42", &r);
	assert_int_equal(r.kind, WEB_ROUTE_ARCHIVE);
	assert_int_equal(r.id, 42);
	assert_int_equal(r.token_len, 0);
	web_route(WEB_GET, "/archive/42/FgACAoMilsWfQ7GTm7NdPg", &r);
	assert_int_equal(r.kind, WEB_ROUTE_ARCHIVE);
	assert_int_equal(r.token_len, 22);
}

static void
test_web_route_rejects(void **state)
{
	static const char *const not_found[] = {
		"/", "/favicon.ico", "/c/EwEBATOykxCXtmBnMNYsnw/0", "/c/EwEBATOykxCXtmBnMNYsnw/01",
		"/c/EwEBATOykxCXtmBnMNYsnw/-1", "/c/EwEBATOykxCXtmBnMNYsnw/+1",
		"/c/EwEBATOykxCXtmBnMNYsnw/1x", "/c/EwEBATOykxCXtmBnMNYsnw/",
		"/c/EwEBATOykxCXtmBnMNYsnw/1/", "/c/EwEBATOykxCXtmBnMNYsnw/1234567890",
		"/c/EwEBATOy=kxCXtmBnMNYsnw/1", "/c//1", "/c/EwEBATOykxCXtmBnMNYsnw",
		"/u/", "/u/a/b", "/u/a b", "/u/a.b", "/confirm/", "/archive/0", "/archive/x",
		"/archive/1/", "/archive/1/a/b", "/subscribe/", "/SUBSCRIBE", "/o/.gif",
		"/subscribe/News", "/subscribe/a/b", "/subscribe/a%20b",
		"/subscribe/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		/* a token longer than any token_make() writes */
		"/u/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct web_route r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof not_found / sizeof not_found[0]; i++) {
		web_route(WEB_GET, not_found[i], &r);
		if (r.status != 404 || r.kind != WEB_ROUTE_NONE)
			fail_msg("'%s' should be 404, got %d", not_found[i], r.status);
	}
	/* methods: the pixel, clicks and the archive are GET/HEAD only;
	 * /subscribe is POST only; nothing takes PUT */
	web_route(WEB_POST, "/o/x.gif", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, HEAD");
	web_route(WEB_POST, "/c/EwEBATOykxCXtmBnMNYsnw/1", &r);
	assert_int_equal(r.status, 405);
	web_route(WEB_GET, "/subscribe", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "POST");
	web_route(WEB_POST, "/subscribe/news", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, HEAD");
	web_route(WEB_OTHER, "/u/EQEBAY3JOOwbcjDkGT-cdQ", &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, HEAD, POST");
	web_route(WEB_OTHER, "/nowhere", &r);
	assert_int_equal(r.status, 405);
	assert_int_equal(web_method("GET"), WEB_GET);
	assert_int_equal(web_method("HEAD"), WEB_HEAD);
	assert_int_equal(web_method("POST"), WEB_POST);
	assert_int_equal(web_method("get"), WEB_OTHER);
	assert_int_equal(web_method("DELETE"), WEB_DELETE);
	assert_int_equal(web_method("PUT"), WEB_OTHER);
	/* DELETE is the API's only: a 405 everywhere else */
	web_route(WEB_DELETE, "/u/EQEBAY3JOOwbcjDkGT-cdQ", &r);
	assert_int_equal(r.status, 405);
	/* the API routes its own methods and 404s, after the key (webapi.c) */
	web_route(WEB_DELETE, "/api/v1/subscribers/a@example.org", &r);
	assert_int_equal(r.kind, WEB_ROUTE_API);
	assert_string_equal(r.api_path, "v1/subscribers/a@example.org");
	web_route(WEB_OTHER, "/api/anything", &r);
	assert_int_equal(r.kind, WEB_ROUTE_API);
	web_route(WEB_GET, "/api", &r);
	assert_int_equal(r.status, 404);
}

/* ---- forms ---- */

static void
test_web_form_parse_urlencoded(void **state)
{
	static const char one_click[] = "List-Unsubscribe=One-Click";
	static const char form[] = "email=a%2Bb%40example.org&name=Gr%C3%A2ce+H.&flag&empty=&list=news";
	struct web_form f;

	(void)state;
	/* RFC 8058 §3.2's body */
	assert_int_equal(web_form_parse("application/x-www-form-urlencoded", one_click,
	                                strlen(one_click), &f), 0);
	assert_string_equal(web_form_get(&f, "List-Unsubscribe"), "One-Click");
	/* a missing Content-Type is read as urlencoded */
	assert_int_equal(web_form_parse(NULL, form, strlen(form), &f), 0);
	assert_int_equal(f.n, 5);
	assert_string_equal(web_form_get(&f, "email"), "a+b@example.org");
	assert_string_equal(web_form_get(&f, "name"), "Gr\xc3\xa2" "ce H.");
	assert_string_equal(web_form_get(&f, "flag"), "");
	assert_string_equal(web_form_get(&f, "empty"), "");
	assert_null(web_form_get(&f, "Email"));
	/* a trailing CRLF is not part of the value */
	assert_int_equal(web_form_parse(NULL, "List-Unsubscribe=One-Click\r\n", 28, &f), 0);
	assert_string_equal(web_form_get(&f, "List-Unsubscribe"), "One-Click");
	assert_int_equal(web_form_parse(NULL, "", 0, &f), 0);
	assert_int_equal(f.n, 0);
}

static void
test_web_form_parse_malformed(void **state)
{
	struct web_form f;
	char many[16 * (WEB_FORM_FIELDS + 1)];
	size_t i, o = 0;

	(void)state;
	assert_int_equal(web_form_parse(NULL, "a=%zz", 5, &f), -1);
	assert_int_equal(f.n, 0);
	assert_int_equal(web_form_parse(NULL, "a=%4", 4, &f), -1);
	assert_int_equal(web_form_parse(NULL, "a=%", 3, &f), -1);
	/* a NUL, escaped or raw, would cut a value short in C */
	assert_int_equal(web_form_parse(NULL, "a=x%00y", 7, &f), -1);
	assert_int_equal(web_form_parse(NULL, "a=x\0y", 5, &f), -1);
	for (i = 0; i <= WEB_FORM_FIELDS; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "f%zu=1&", i);
	assert_int_equal(web_form_parse(NULL, many, o, &f), -1);
	assert_int_equal(web_form_parse(NULL, many, WEB_BODY_MAX + 1, &f), -1);
}

static void
test_web_form_parse_multipart(void **state)
{
	/* what `curl -F List-Unsubscribe=One-Click -F action=x` sends */
	static const char body[] =
		"--------------------------d74496d66958873e\r\n"
		"Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
		"\r\n"
		"One-Click\r\n"
		"--------------------------d74496d66958873e\r\n"
		"Content-Disposition: form-data; name=\"action\"\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"two\r\nlines\r\n"
		"--------------------------d74496d66958873e--\r\n";
	static const char quoted[] =
		"preamble\r\n--b q\r\ncontent-disposition: form-data; name=email\r\n\r\n"
		"a@example.org\r\n--b q--";
	static const char unended[] = "--x\r\nContent-Disposition: form-data; name=a\r\n\r\nv";
	struct web_form f;

	(void)state;
	assert_int_equal(web_form_parse("multipart/form-data; "
	                                "boundary=------------------------d74496d66958873e",
	                                body, strlen(body), &f), 0);
	assert_int_equal(f.n, 2);
	assert_string_equal(web_form_get(&f, "List-Unsubscribe"), "One-Click");
	assert_string_equal(web_form_get(&f, "action"), "two\r\nlines");
	assert_int_equal(web_form_parse("Multipart/Form-Data; charset=utf-8; boundary=\"b q\"",
	                                quoted, strlen(quoted), &f), 0);
	assert_string_equal(web_form_get(&f, "email"), "a@example.org");
	/* no boundary, a wrong one, a part that never ends */
	assert_int_equal(web_form_parse("multipart/form-data", body, strlen(body), &f), -1);
	assert_int_equal(web_form_parse("multipart/form-data; boundary=nope", body, strlen(body),
	                                &f), -1);
	assert_int_equal(web_form_parse("multipart/form-data; boundary=x", unended,
	                                strlen(unended), &f), -1);
	assert_int_equal(f.n, 0);
}

/* ---- rate limiter ---- */

static void
test_web_limiter_window(void **state)
{
	struct web_limiter *l;
	int i;

	(void)state;
	assert_int_equal(web_limiter_new(5, 600, 100, &l), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(web_limiter_hit(l, "192.0.2.1", 1000 + i), 1);
	/* a sixth inside 10 minutes of the first is refused, and not counted */
	assert_int_equal(web_limiter_hit(l, "192.0.2.1", 1005), 0);
	assert_int_equal(web_limiter_hit(l, "192.0.2.1", 1599.9), 0);
	/* other keys are not affected */
	assert_int_equal(web_limiter_hit(l, "192.0.2.2", 1005), 1);
	/* sliding, not a fixed bucket: at 1600 only the hit of 1000 has left */
	assert_int_equal(web_limiter_hit(l, "192.0.2.1", 1600), 1);
	assert_int_equal(web_limiter_hit(l, "192.0.2.1", 1600.5), 0);
	assert_int_equal(web_limiter_hit(l, "192.0.2.1", 1601), 1);
	web_limiter_free(l);
}

static void
test_web_limiter_full(void **state)
{
	struct web_limiter *l;
	char key[32];
	int i;

	(void)state;
	assert_int_equal(web_limiter_new(1, 60, 10, &l), 0);
	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(web_limiter_hit(l, key, 100), 1);
	}
	/* ten active keys: an eleventh is refused (fail closed) ... */
	assert_int_equal(web_limiter_hit(l, "new", 130), 0);
	/* ... until the old ones age out and are swept */
	assert_int_equal(web_limiter_hit(l, "new", 161), 1);
	assert_int_equal(web_limiter_hit(l, "new", 162), 0);
	web_limiter_free(l);
}

/* ---- client keys and listen addresses ---- */

static void
test_web_client_key(void **state)
{
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	struct config_cidr proxies[2];
	char key[128];

	(void)state;
	assert_int_equal(config_parse_cidr("127.0.0.1", &proxies[0]), 0);
	assert_int_equal(config_parse_cidr("2001:db8:ff::/48", &proxies[1]), 0);
	memset(&in4, 0, sizeof in4);
	in4.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.7", &in4.sin_addr);
	web_client_key((struct sockaddr *)&in4, "203.0.113.9", proxies, 2, key, sizeof key);
	assert_string_equal(key, "198.51.100.7"); /* X-Real-IP only from a trusted proxy */
	inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr);
	web_client_key((struct sockaddr *)&in4, NULL, proxies, 2, key, sizeof key);
	assert_string_equal(key, "127.0.0.1");
	web_client_key((struct sockaddr *)&in4, "203.0.113.9", proxies, 2, key, sizeof key);
	assert_string_equal(key, "203.0.113.9");
	/* the same loopback peer, no proxies configured: the header is nobody's word */
	web_client_key((struct sockaddr *)&in4, "203.0.113.9", NULL, 0, key, sizeof key);
	assert_string_equal(key, "127.0.0.1");
	/* another loopback address is not the configured proxy */
	inet_pton(AF_INET, "127.0.0.2", &in4.sin_addr);
	web_client_key((struct sockaddr *)&in4, "203.0.113.9", proxies, 2, key, sizeof key);
	assert_string_equal(key, "127.0.0.2");
	inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr);
	web_client_key((struct sockaddr *)&in4, "2001:db8:1:2:3:4:5:6", proxies, 2, key,
	               sizeof key);
	assert_string_equal(key, "2001:db8:1:2::/64");
	web_client_key((struct sockaddr *)&in4, "not an address", proxies, 2, key, sizeof key);
	assert_string_equal(key, "127.0.0.1");

	memset(&in6, 0, sizeof in6);
	in6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:aa:bb:1:2:3:4", &in6.sin6_addr);
	web_client_key((struct sockaddr *)&in6, NULL, proxies, 2, key, sizeof key);
	assert_string_equal(key, "2001:db8:aa:bb::/64"); /* a whole /64 is one client */
	inet_pton(AF_INET6, "::ffff:192.0.2.33", &in6.sin6_addr);
	web_client_key((struct sockaddr *)&in6, NULL, proxies, 2, key, sizeof key);
	assert_string_equal(key, "192.0.2.33");
	/* an IPv6 proxy inside a trusted /48, and a v4 proxy seen as v4-mapped */
	inet_pton(AF_INET6, "2001:db8:ff:1::9", &in6.sin6_addr);
	web_client_key((struct sockaddr *)&in6, "192.0.2.1", proxies, 2, key, sizeof key);
	assert_string_equal(key, "192.0.2.1");
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
	web_client_key((struct sockaddr *)&in6, "192.0.2.2", proxies, 2, key, sizeof key);
	assert_string_equal(key, "192.0.2.2");
	inet_pton(AF_INET6, "::1", &in6.sin6_addr);
	web_client_key((struct sockaddr *)&in6, "192.0.2.1", proxies, 2, key, sizeof key);
	assert_string_equal(key, "::/64"); /* ::1 is not trusted here */
}

static void
test_web_parse_listen(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80",
		"127.0.0.1:8o", "::1:8080", "[::1]8080", "[::1", ":8080", "[]:80",
	};
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	struct herr err;
	socklen_t len;
	size_t i;

	(void)state;
	assert_int_equal(web_parse_listen("127.0.0.1:8080", &ss, &len, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(in4->sin_port), 8080);
	assert_int_equal(ntohl(in4->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(web_parse_listen("[::1]:0", &ss, &len, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 0);
	assert_true(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		herr_clear(&err);
		if (web_parse_listen(bad[i], &ss, &len, &err) != -1 || err.code != EX_USAGE)
			fail_msg("'%s' should be refused", bad[i]);
	}
	assert_non_null(strstr(err.msg, "invalid listen address"));
}

/* ---- pages ---- */

static void
test_webpage_escapes(void **state)
{
	struct buf b = BUF_INIT(1u << 16);
	struct webpage_issue is = { 7, "<script>alert(1)</script>", "A & B", 1795701157 };

	(void)state;
	assert_int_equal(webpage_unsubscribe_ask(&b, "fr", "<b>News</b>", 1, "x\"@example.org"), 0);
	assert_non_null(strstr(b.data, "<html lang=\"fr\">"));
	assert_non_null(strstr(b.data, "<title>Unsubscribe from &lt;b&gt;News&lt;/b&gt;</title>"));
	assert_non_null(strstr(b.data, "x&quot;@example.org"));
	assert_null(strstr(b.data, "<b>"));
	/* the form posts back to the page's own URL */
	assert_non_null(strstr(b.data, "<form method=\"post\">"));
	assert_null(strstr(b.data, "action=\""));
	assert_non_null(strstr(b.data, "name=\"action\" value=\"unsubscribe\">Unsubscribe</button>"));
	buf_reset(&b);
	assert_int_equal(webpage_unsubscribed(&b, NULL, "T", 1, "a@example.org", NULL), 0);
	assert_non_null(strstr(b.data, "<html lang=\"en\">"));
	assert_non_null(strstr(b.data, "value=\"resubscribe\">Subscribe again</button>"));
	assert_null(strstr(b.data, "value=\"survey\""));
	/* with a nonce: the optional survey, the nonce in a hidden field */
	buf_reset(&b);
	assert_int_equal(webpage_unsubscribed(&b, NULL, "T", 1, "a@example.org", "ab\"c"), 0);
	assert_non_null(strstr(b.data, "<input type=\"hidden\" name=\"nonce\" value=\"ab&quot;c\">"));
	assert_non_null(strstr(b.data, "name=\"action\" value=\"survey\""));
	assert_non_null(strstr(b.data, "Why are you leaving? (optional)"));
	buf_reset(&b);
	assert_int_equal(webpage_archive(&b, "en", "archive/", &is, 1), 0);
	assert_non_null(strstr(b.data, "<a href=\"archive/7\">&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(b.data, "datetime=\"2026-11-26\""));
	assert_non_null(strstr(b.data, "A &amp; B"));
	assert_null(strstr(b.data, "<script"));
	buf_reset(&b);
	assert_int_equal(webpage_notice(&b, "en", "Not <found>", "It's gone"), 0);
	assert_non_null(strstr(b.data, "<h1>Not &lt;found&gt;</h1>"));
	assert_non_null(strstr(b.data, "It&#39;s gone"));
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_web_ua_classify_machines),
		cmocka_unit_test(test_web_ua_classify_humans),
		cmocka_unit_test(test_web_event_detail_open_and_click),
		cmocka_unit_test(test_web_event_detail_escapes),
		cmocka_unit_test(test_web_event_detail_cut),
		cmocka_unit_test(test_web_route_paths),
		cmocka_unit_test(test_web_route_rejects),
		cmocka_unit_test(test_web_form_parse_urlencoded),
		cmocka_unit_test(test_web_form_parse_malformed),
		cmocka_unit_test(test_web_form_parse_multipart),
		cmocka_unit_test(test_web_limiter_window),
		cmocka_unit_test(test_web_limiter_full),
		cmocka_unit_test(test_web_client_key),
		cmocka_unit_test(test_web_parse_listen),
		cmocka_unit_test(test_webpage_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
