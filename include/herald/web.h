/*
 * web.h - `herald serve`: the HTTP endpoint subscribers reach from their mail.
 *
 * The server (GNU libmicrohttpd, a thread pool of one epoll loop per CPU)
 * answers the paths a sent mail points at, relative to [web] base_url:
 *
 *   GET  /o/TOKEN.gif         open pixel: always the GIF; an open event when
 *                             TOKEN is a valid TOKEN_OPEN
 *   GET  /c/TOKEN/N           click: 302 to the Nth link, else 404
 *   GET  /u/TOKEN             unsubscribe page (changes nothing)
 *   POST /u/TOKEN             unsubscribe (RFC 8058 one-click or the form),
 *                             or action=resubscribe
 *   POST /subscribe           the sign-up form (email, name, list)
 *   GET  /confirm/TOKEN       double opt-in page; POST confirms
 *   GET  /archive             the sent issues of public lists
 *   GET  /archive/ID[/TOKEN]  one issue as a reader without data sees it
 *   GET  /p/TOKEN             the preference centre (changes nothing); POST
 *                             saves it with the page's nonce (webprefs.h)
 *   POST /p/TOKEN/export      mail the reader their data (privacy.h)
 *   POST /p/TOKEN/forget      mail the reader a link to erase them
 *   GET  /erase/CODE          that link's page; POST erases (once)
 *
 * Opens and clicks never write SQLite on a request thread: they go to the
 * batched event writer (eventlog.h).  State changes (unsubscribe, confirm,
 * subscribe) are written directly, each in its own transaction, on a
 * connection per server thread.  Confirmation mails go out from one mail
 * thread so that no request waits on SMTP.
 *
 * Meant to sit behind a TLS reverse proxy that maps base_url to it.  The
 * proxy should pass the client address in X-Real-IP (the sign-up rate limit
 * is per client; the header is believed only from a loopback peer):
 *
 *   location / {
 *       proxy_pass http://127.0.0.1:8080;
 *       proxy_set_header Host $host;
 *       proxy_set_header X-Real-IP $remote_addr;
 *       client_max_body_size 4k;
 *       proxy_read_timeout 20s;
 *   }
 *
 * Besides the server, this header exposes its pure parts (user-agent
 * classification, routing, form decoding, the in-memory rate limiter,
 * listen-address parsing), which tests/unit/test_web.c checks.
 */
#ifndef HERALD_WEB_H
#define HERALD_WEB_H

#include <stddef.h>
#include <sys/socket.h>

#include "herald/config.h"
#include "herald/herr.h"

#define WEB_BODY_MAX        4096   /* request body cap; more is 413 (API: [api] max_body) */
#define WEB_API_PATH_MAX    1024   /* bytes of an API path after "/api/" */
#define WEB_TIMEOUT         15     /* seconds: idle connection, and a whole request body */
#define WEB_HEADER_MEM      (32u << 10) /* per-connection memory: request line + headers */
#define WEB_CONNECTIONS_MAX 1000

#define WEB_AGENT_MAX       120    /* characters of User-Agent kept in an event */

/* Sign-up limits, kept in memory (a restart forgets them). */
#define WEB_SUBSCRIBE_PER_IP    5
#define WEB_SUBSCRIBE_IP_SPAN   600.0    /* 10 minutes */
#define WEB_CONFIRM_PER_ADDR    3
#define WEB_CONFIRM_ADDR_SPAN   86400.0  /* a day */

/* ---- the server ---- */

struct web_server;

struct web_summary {
	unsigned long long requests;  /* requests answered */
	long long          events;    /* opens and clicks committed by the event writer */
	long long          mails_sent, mails_failed; /* confirmation mails */
	long long          cut_slow;  /* connections cut: a header block too slow */
	long long          cut_cap;   /* ... one client's too many */
};

struct web_opts {
	const char *listen;    /* "127.0.0.1:8080", "[::1]:8080"; port 0: any free one */
	unsigned    threads;   /* server threads; 0: one per CPU */
	/* Where the server reports what it cannot answer for (a confirmation
	 * mail the relay refused, a database error): one line, no newline.
	 * Called from any thread; may be NULL. */
	void      (*log)(void *ctx, const char *line);
	void       *log_ctx;
};

/*
 * Load the token secret and the DKIM key, bind the listen address, start
 * the event writer, the mail thread and the server threads.  `cfg` must
 * outlive the server.  EX_USAGE for a bad address, EX_UNAVAILABLE when it
 * cannot be bound, EX_CONFIG / EX_NOINPUT for the key files.
 */
int web_start(const struct config *cfg, const struct web_opts *opts, struct web_server **out,
              struct herr *err);
/* "http://127.0.0.1:PORT" with the port actually bound. */
const char *web_url(const struct web_server *s);
/* The /metrics listener's URL ([metrics] listen), or NULL when off. */
const char *web_metrics_url(const struct web_server *s);
/*
 * Stop accepting, let the requests in flight finish (a few seconds at
 * most), stop the threads, send the confirmation mails still queued
 * (bounded wait), flush the event log, free everything.  Fills `sum`.
 * Returns -1 when events could not be written (the error says how many).
 */
int web_stop(struct web_server *s, struct web_summary *sum, struct herr *err);

/* ---- pure parts, for the server and its tests ---- */

enum web_ua {
	WEB_UA_HUMAN,
	WEB_UA_MACHINE, /* a proxy or scanner fetched it, not a person opening */
};

/*
 * Classify a User-Agent (NULL when absent).  Machine: missing or empty,
 * exactly "Mozilla/5.0" (Apple Mail Privacy Protection's proxy), and known
 * scanners, link checkers and HTTP libraries.  Human otherwise, including
 * Gmail's GoogleImageProxy and Yahoo's proxy, which fetch on a real open.
 */
enum web_ua web_ua_classify(const char *ua);
const char *web_ua_name(enum web_ua ua); /* "human" | "machine" */

/*
 * The detail JSON of an open (n <= 0) or click (n > 0) event:
 * {"n":N,"ua":"human","agent":"..."} with the first WEB_AGENT_MAX
 * characters of `agent` (NULL: ""), control characters escaped and bytes
 * that are not UTF-8 replaced by U+FFFD, so the text is always valid JSON.
 * Returns 0, or -1 when `size` is too small (1 KiB always suffices).
 */
int web_event_detail(char *out, size_t size, long long n, enum web_ua ua, const char *agent);

enum web_route_kind {
	WEB_ROUTE_NONE,          /* status 404 or 405 */
	WEB_ROUTE_OPEN,          /* /o/TOKEN.gif (token may be malformed: still the GIF) */
	WEB_ROUTE_CLICK,         /* /c/TOKEN/N */
	WEB_ROUTE_UNSUBSCRIBE,   /* /u/TOKEN */
	WEB_ROUTE_SUBSCRIBE,     /* POST /subscribe */
	WEB_ROUTE_SIGNUP_PAGE,   /* GET /subscribe/NAME: the hosted form (token: NAME) */
	WEB_ROUTE_CONFIRM,       /* /confirm/TOKEN */
	WEB_ROUTE_ARCHIVE_INDEX, /* /archive or /archive/ */
	WEB_ROUTE_ARCHIVE,       /* /archive/ID or /archive/ID/TOKEN */
	WEB_ROUTE_PREFERENCES,   /* /p/TOKEN (webprefs.c) */
	WEB_ROUTE_PRIVACY_EXPORT, /* POST /p/TOKEN/export (webprivacy.c) */
	WEB_ROUTE_PRIVACY_FORGET, /* POST /p/TOKEN/forget */
	WEB_ROUTE_PRIVACY_ERASE,  /* /erase/CODE, the link the forget mail holds */
	WEB_ROUTE_API,            /* /api/..., the HTTP API (webapi.c); path: after "/api/"
	                             (the last kind: webint.h counts them by it) */
};

enum web_method {
	WEB_GET,
	WEB_HEAD,
	WEB_POST,
	WEB_DELETE,   /* the API only; elsewhere a 405 */
	WEB_OTHER,
};

struct web_route {
	enum web_route_kind kind;
	int         status;     /* 0 when routed, else 404 or 405 */
	const char *allow;      /* the Allow header value for a 405 */
	const char *token;      /* points into the path; not NUL-terminated */
	size_t      token_len;  /* 0: none */
	long long   n;          /* click: the link number, 1..999999999 */
	long long   id;         /* archive: the issue id */
	int         index_slash;/* archive index asked as "/archive/" */
	const char *api_path;   /* API: the path after "/api/" (points into the path) */
};

enum web_method web_method(const char *method);
/* Route `path` (no query string).  Tokens must be 1..TOKEN_MAX-1 URL-safe
 * base64 characters; numbers are decimal without sign or leading zero. */
void web_route(enum web_method m, const char *path, struct web_route *r);

#define WEB_FORM_FIELDS 48   /* the preference centre: a checkbox per list (prefs.h) */

struct web_form_field {
	const char *name;
	const char *value;      /* NUL-terminated; never holds a NUL */
};

struct web_form {
	struct web_form_field f[WEB_FORM_FIELDS];
	size_t n;
	char   data[WEB_BODY_MAX + 2 * WEB_FORM_FIELDS + 2]; /* the decoded strings */
};

/*
 * Decode a form body: application/x-www-form-urlencoded (also when the
 * type is missing or unknown) or multipart/form-data (RFC 7578, the
 * boundary from `content_type`).  At most WEB_BODY_MAX bytes.  Returns 0,
 * or -1 when it is malformed (a bad %-escape, a NUL, more than
 * WEB_FORM_FIELDS fields, a broken multipart body); `f` is then empty.
 */
int web_form_parse(const char *content_type, const char *body, size_t len, struct web_form *f);
/* The first value of field `name` (exact match), or NULL. */
const char *web_form_get(const struct web_form *f, const char *name);

/*
 * A sliding-window limit per key: at most `max_hits` hits in any `span`
 * seconds.  Thread-safe.  At most `max_keys` keys are remembered; when
 * that many are active at once, new keys are refused (fail closed).
 */
struct web_limiter;

int web_limiter_new(size_t max_hits, double span, size_t max_keys, struct web_limiter **out);
void web_limiter_free(struct web_limiter *l);
/* Count a hit of `key` at `now` when allowed and return 1; return 0 (and
 * count nothing) when the key already had max_hits hits in the span. */
int web_limiter_hit(struct web_limiter *l, const char *key, double now);

/*
 * The rate-limit key of a client: its IPv4 address, or the /64 of its IPv6
 * address (one household or host has a whole /64).  When the peer is one
 * of `proxies` ([web] trusted_proxies; none by default) and `real_ip` (the
 * X-Real-IP header, NULL when absent) is a valid address, that address is
 * used instead: any other client could send the header too.
 */
void web_client_key(const struct sockaddr *peer, const char *real_ip,
                    const struct config_cidr *proxies, size_t n_proxies, char *out,
                    size_t size);
/* The client's address itself, as text ("192.0.2.7", "2001:db8::1"), by
 * the same trust rule: a configured proxy's valid X-Real-IP, else the
 * peer.  "" when there is no peer.  For consent records (consent.h), which
 * cut it as [privacy] store_ip says. */
void web_client_ip(const struct sockaddr *peer, const char *real_ip,
                   const struct config_cidr *proxies, size_t n_proxies, char *out,
                   size_t size);
/* Percent-decode `s` in place (a URL path), leaving %XX that would decode
 * to a control byte (NUL included) as it is; the new length. */
size_t web_unescape(char *s);
/* 1 when `peer` is inside one of the networks `nets` ([web]
 * trusted_proxies, [metrics] allow); an IPv4 peer seen through a
 * dual-stack socket matches IPv4 networks. */
int web_peer_in(const struct sockaddr *peer, const struct config_cidr *nets,
                      size_t n_proxies);

/* Parse "HOST:PORT" ("127.0.0.1:8080", "[::1]:0", "localhost:8080") into
 * a socket address.  EX_USAGE with the reason when it is not one. */
int web_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                     struct herr *err);

#endif
