/*
 * web.c - herald serve: the HTTP endpoint subscribers reach (see web.h).
 *
 * Owns the libmicrohttpd daemon and its callbacks, the routing of each
 * request to its handler (webtrack.c, websub.c, webarchive.c, webprefs.c,
 * webprivacy.c), the
 * per-thread database connections, the cache of issues' links, the
 * sign-up rate limiters and the responses every handler queues; the mail
 * thread is webmail.c's, the pages' HTML webpages.c's (webint.h lists
 * the files).  Called by src/cmd/serve.c.
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
#include "webint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald/db.h"
#include "herald/subscriber.h"
#include "herald/issue.h"
#include "herald/webpages.h"

#define STOP_DRAIN_WAIT 3.0    /* seconds for requests in flight at stop */

/* A transparent 1x1 GIF89a (43 bytes). */
static const unsigned char pixel_gif[43] = {
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02,
	0x44, 0x01, 0x00, 0x3b,
};


double
web_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
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

struct web_thread *
web_thread_db(struct web_server *s)
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
	               "SELECT (?1 = 0 OR EXISTS (SELECT 1 FROM subscribers WHERE id = ?1)) AND "
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
 * token's list (invariant 1), 0 when not, -1 when the database failed.
 * Subscriber 0 is an anonymous token's (tracking.h): no one to look up. */
int
web_rows_exist(struct web_thread *t, const struct token *tok)
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
struct issue_links *
web_links_get(struct web_server *s, struct web_thread *t, long long id, struct herr *err)
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

void
web_add_security_headers(struct MHD_Response *r, const char *csp)
{
	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

/* Queue `len` bytes of `body` (taken over: free()d by MHD) as `type`. */
enum MHD_Result
web_queue_body(struct web_server *s, struct MHD_Connection *c, unsigned status, char *body,
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
	web_add_security_headers(r, csp);
	if (extra_name)
		MHD_add_response_header(r, extra_name, extra_value);
	if (atomic_load(&s->stopping))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = web_queue(s, c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result
web_queue_page(struct web_server *s, struct MHD_Connection *c, unsigned status, struct buf *page,
           const char *extra_name, const char *extra_value)
{
	size_t len = page->len;
	char *body = buf_detach(page);

	if (!body)
		return MHD_NO;
	return web_queue_body(s, c, status, body, len, "text/html; charset=utf-8", CSP_PAGE, extra_name,
	                  extra_value);
}

enum MHD_Result
web_queue_notice_h(struct web_server *s, struct MHD_Connection *c, unsigned status,
               const char *heading, const char *text, const char *extra_name,
               const char *extra_value)
{
	struct buf page = BUF_INIT(1u << 16);

	if (webpage_notice(&page, s->cfg->lang, heading, text) < 0) {
		buf_free(&page);
		return MHD_NO;
	}
	return web_queue_page(s, c, status, &page, extra_name, extra_value);
}

enum MHD_Result
web_queue_notice(struct web_server *s, struct MHD_Connection *c, unsigned status,
             const char *heading, const char *text)
{
	return web_queue_notice_h(s, c, status, heading, text, NULL, NULL);
}

enum MHD_Result
web_not_found(struct web_server *s, struct MHD_Connection *c)
{
	return web_queue(s, c, MHD_HTTP_NOT_FOUND,
	                 atomic_load(&s->stopping) ? s->not_found_close : s->not_found);
}

enum MHD_Result
web_unavailable(struct web_server *s, struct MHD_Connection *c)
{
	return web_queue_notice_h(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "Please try again in a moment",
	                      "We could not do that just now. Nothing has changed; please try "
	                      "again in a minute.", MHD_HTTP_HEADER_RETRY_AFTER, "30");
}

/* A database call failed: 404 when what the token names is gone, else
 * 503 (busy past the timeout, or worse: logged). */
enum MHD_Result
web_db_failed(struct web_server *s, struct MHD_Connection *c, const struct herr *err,
          const char *what)
{
	if (err->code == EX_NOINPUT)
		return web_not_found(s, c);
	if (err->code != EX_TEMPFAIL)
		web_log(s, "%s: %s", what, err->msg);
	return web_unavailable(s, c);
}

enum MHD_Result
web_queue_page_or_fail(struct web_server *s, struct MHD_Connection *c, int rc, struct buf *page)
{
	if (rc < 0) {
		buf_free(page);
		return web_unavailable(s, c);
	}
	return web_queue_page(s, c, MHD_HTTP_OK, page, NULL, NULL);
}

int
web_check_token(struct web_server *s, const char *tok, size_t len, enum token_kind kind,
            struct token *t)
{
	return len && token_verify(&s->key, tok, len, t) == 0 && t->kind == kind ? 0 : -1;
}


/* ---- counting answers for /metrics ---- */

const unsigned web_metric_codes[WEB_METRIC_CODES] = {
	200, 201, 204, 302, 303, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500,
	501, 503,
};

/* The route the calling server thread is answering: libmicrohttpd calls
 * a connection's callbacks on the one thread that owns it, and every
 * answer is queued from inside them. */
static _Thread_local enum web_route_kind answering;

const char *
web_route_name(enum web_route_kind k)
{
	static const char *const names[WEB_ROUTE_KINDS] = {
		[WEB_ROUTE_NONE] = "other", [WEB_ROUTE_OPEN] = "open",
		[WEB_ROUTE_CLICK] = "click", [WEB_ROUTE_UNSUBSCRIBE] = "unsubscribe",
		[WEB_ROUTE_SUBSCRIBE] = "subscribe", [WEB_ROUTE_SIGNUP_PAGE] = "signup_page",
		[WEB_ROUTE_CONFIRM] = "confirm", [WEB_ROUTE_ARCHIVE_INDEX] = "archive_index",
		[WEB_ROUTE_ARCHIVE] = "archive", [WEB_ROUTE_PREFERENCES] = "preferences",
		[WEB_ROUTE_PRIVACY_EXPORT] = "privacy_export",
		[WEB_ROUTE_PRIVACY_FORGET] = "privacy_forget",
		[WEB_ROUTE_PRIVACY_ERASE] = "privacy_erase", [WEB_ROUTE_API] = "api",
	};

	return (unsigned)k < WEB_ROUTE_KINDS && names[k] ? names[k] : "other";
}

enum MHD_Result
web_queue(struct web_server *s, struct MHD_Connection *c, unsigned status,
          struct MHD_Response *r)
{
	size_t i;

	for (i = 0; i < WEB_METRIC_CODES && web_metric_codes[i] != status; i++)
		;
	atomic_fetch_add_explicit(&s->answered[(unsigned)answering < WEB_ROUTE_KINDS ?
	                          answering : WEB_ROUTE_NONE][i], 1, memory_order_relaxed);
	return MHD_queue_response(c, status, r);
}

/* ---- the MHD callbacks ---- */

static enum MHD_Result
dispatch(struct web_server *s, struct MHD_Connection *c, enum web_method m,
         const struct web_route *r, const struct request *rq)
{
	switch (r->kind) {
	case WEB_ROUTE_OPEN:
		return web_handle_open(s, c, m, r);
	case WEB_ROUTE_CLICK:
		return web_handle_click(s, c, m, r);
	case WEB_ROUTE_UNSUBSCRIBE:
		return web_handle_unsubscribe(s, c, m, r, rq);
	case WEB_ROUTE_CONFIRM:
		return web_handle_confirm(s, c, m, r, rq);
	case WEB_ROUTE_SUBSCRIBE:
		return web_handle_subscribe(s, c, rq);
	case WEB_ROUTE_SIGNUP_PAGE:
		return web_handle_signup_page(s, c, r);
	case WEB_ROUTE_ARCHIVE_INDEX:
		return web_handle_archive_index(s, c, r);
	case WEB_ROUTE_ARCHIVE:
		return web_handle_archive(s, c, r);
	case WEB_ROUTE_PREFERENCES:
		return web_handle_preferences(s, c, m, r, rq);
	case WEB_ROUTE_PRIVACY_EXPORT:
	case WEB_ROUTE_PRIVACY_FORGET:
	case WEB_ROUTE_PRIVACY_ERASE:
		return web_handle_privacy(s, c, m, r, rq);
	case WEB_ROUTE_API:
		return web_handle_api(s, c, m, r, rq);
	case WEB_ROUTE_NONE:
		break;
	}
	return web_not_found(s, c);
}

static enum MHD_Result
too_large(struct web_server *s, struct MHD_Connection *c)
{
	return web_queue_notice(s, c, MHD_HTTP_CONTENT_TOO_LARGE, "Too much data",
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
	size_t cap;

	(void)version;
	if (rq == (void *)&s->get_marker) {
		/* the second call of a GET or HEAD: answering now rather than
		 * in the first call keeps the connection open for the next
		 * request (libmicrohttpd closes after an "early" response) */
		if (*data_size)
			return MHD_NO; /* a body with a GET: not from a browser */
		m = web_method(method);
		web_route(m, url, &r);
		answering = r.kind;
		return dispatch(s, c, m, &r, NULL);
	}
	if (!rq) {
		/* the first call: the request line and headers are in */
		atomic_fetch_add(&s->requests, 1);
		atomic_fetch_add(&s->in_flight, 1);
		answering = WEB_ROUTE_NONE;
		webconn_headers_done(s->conns, c);
		/* RFC 9112 §6.3: both framings at once is how requests are
		 * smuggled past a proxy; refuse, and end the connection */
		if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		                                MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		                                MHD_HTTP_HEADER_CONTENT_LENGTH))
			return web_queue_notice_h(s, c, MHD_HTTP_BAD_REQUEST, "Bad request",
			                          "The request had both a Content-Length and a "
			                          "Transfer-Encoding.", MHD_HTTP_HEADER_CONNECTION,
			                          "close");
		m = web_method(method);
		web_route(m, url, &r);
		answering = r.status ? WEB_ROUTE_NONE : r.kind;
		if (r.status == 405)
			return web_queue_notice_h(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Not allowed",
			                      "This address does not take that kind of request.",
			                      MHD_HTTP_HEADER_ALLOW, r.allow);
		if (r.status)
			return web_not_found(s, c);
		if (m != WEB_POST) {
			*state = &s->get_marker;
			return MHD_YES;
		}
		/* the API takes larger bodies (a bulk upsert), the pages' forms
		 * never more than WEB_BODY_MAX */
		cap = r.kind == WEB_ROUTE_API ? (size_t)s->cfg->api_max_body : WEB_BODY_MAX;
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > cap)
			return r.kind == WEB_ROUTE_API ? web_api_too_large(s, c) : too_large(s, c);
		if (!(rq = calloc(1, sizeof *rq)))
			return MHD_NO;
		rq->route = r;
		if (r.token_len) {
			memcpy(rq->token, r.token, r.token_len);
			rq->token[r.token_len] = '\0';
			rq->route.token = rq->token;
		}
		if (r.api_path) {
			snprintf(rq->api_path, sizeof rq->api_path, "%s", r.api_path);
			rq->route.api_path = rq->api_path;
		}
		buf_init(&rq->body, cap);
		rq->started = web_mono_now();
		*state = rq;
		return MHD_YES;
	}
	if (*data_size) {
		/* a slow sender gets WEB_TIMEOUT seconds for the whole body,
		 * not per read */
		elapsed = web_mono_now() - rq->started;
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
	answering = rq->route.kind;
	if (rq->too_large)
		return rq->route.kind == WEB_ROUTE_API ? web_api_too_large(s, c) : too_large(s, c);
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
	webconn_request_done(s->conns, c);
	atomic_fetch_sub(&s->in_flight, 1);
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
	struct web_server *s = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		webconn_opened(s->conns, c, socket_context);
	else
		webconn_closed(s->conns, socket_context);
}

/*
 * The path as libmicrohttpd hands it over is percent-decoded in place.  A
 * %00 would end the C string early ("/c/T/1%00junk" read as "/c/T/1"), and
 * other control bytes have no business in a path: those stay encoded, so
 * routing (webhttp.c) sees "%00" and refuses the path.
 */
static size_t
unescape_path(void *cls, struct MHD_Connection *c, char *uri)
{
	(void)cls;
	(void)c;
	return web_unescape(uri);
}

/* ---- start and stop ---- */

int
web_listen_socket(const char *spec, char *url, size_t url_size, struct herr *err)
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
	web_add_security_headers(r, CSP_PAGE);
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
	web_add_security_headers(r, CSP_PAGE);
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
		subscriber_writer_close(t->api_w);
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
	web_limiter_free(s->api_limit);
	if (s->tkey_made)
		pthread_key_delete(s->tkey);
	pthread_mutex_destroy(&s->threads_mu);
	pthread_mutex_destroy(&s->cache_mu);
	pthread_mutex_destroy(&s->api_write_mu);
	pthread_cond_destroy(&s->api_done);
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
	pthread_mutex_init(&s->api_write_mu, NULL);
	pthread_cond_init(&s->api_done, NULL);
	if (token_key_load(cfg->secret_file, &s->key, err) < 0)
		goto fail;
	if (pthread_key_create(&s->tkey, NULL) != 0) {
		herr_set(err, EX_OSERR, NULL, "cannot make a thread key");
		goto fail;
	}
	s->tkey_made = 1;
	if (web_limiter_new(WEB_SUBSCRIBE_PER_IP, WEB_SUBSCRIBE_IP_SPAN, LIMIT_KEYS,
	                    &s->ip_limit) < 0 ||
	    web_limiter_new(WEB_CONFIRM_PER_ADDR, WEB_CONFIRM_ADDR_SPAN, LIMIT_KEYS,
	                    &s->addr_limit) < 0 ||
	    web_limiter_new((size_t)cfg->api_rate, 1.0, 1000, &s->api_limit) < 0 ||
	    !(s->gif = make_gif(0)) || !(s->gif_close = make_gif(1)) ||
	    !(s->not_found = make_not_found(cfg->lang, 0)) ||
	    !(s->not_found_close = make_not_found(cfg->lang, 1))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto fail;
	}
	s->started_at = db_now_f();
	if ((s->fd = web_listen_socket(opts->listen, s->url, sizeof s->url, err)) < 0)
		goto fail;
	if (eventlog_open(cfg->db_path, cfg->db_busy_timeout_ms, &s->events, err) < 0)
		goto fail;
	if (webmail_start(s, &s->mail, err) < 0 ||
	    webconn_start(cfg, cfg->web_per_client, WEB_TIMEOUT, &s->conns, err) < 0)
		goto fail;
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
			MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
			MHD_OPTION_UNESCAPE_CALLBACK, unescape_path, s,
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
	if (cfg->metrics_listen && webmetrics_start(s, &s->metrics, err) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	webmail_stop(s->mail, NULL, NULL);
	webconn_stop(s->conns, NULL, NULL);
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

const char *
web_metrics_url(const struct web_server *s)
{
	return s->metrics ? webmetrics_url(s->metrics) : NULL;
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
	webmetrics_stop(s->metrics);
	s->metrics = NULL;
	lfd = MHD_quiesce_daemon(s->mhd);
	atomic_store(&s->stopping, 1);
	until = web_mono_now() + STOP_DRAIN_WAIT;
	while (atomic_load(&s->in_flight) > 0 && web_mono_now() < until) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(s->mhd);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	webmail_stop(s->mail, &sum->mails_sent, &sum->mails_failed);
	s->mail = NULL;
	/* after the daemon: no connection is reported any more */
	webconn_stop(s->conns, &sum->cut_slow, &sum->cut_cap);
	s->conns = NULL;
	eventlog_flush(s->events);
	sum->requests = atomic_load(&s->requests);
	sum->events = eventlog_written(s->events);
	ret = eventlog_close(s->events, err);
	web_free(s);
	return ret;
}

