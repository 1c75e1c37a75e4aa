/*
 * webint.h - what the files of `herald serve` share among themselves; not
 * an API (that is include/herald/web.h).
 *
 *   web.c         the server: libmicrohttpd start and stop, the request
 *                 callbacks and routing to handlers, per-thread database
 *                 connections, the issue cache, response helpers
 *   webtrack.c    handlers: the open pixel and click redirects
 *   websub.c      handlers: unsubscribe (and RFC 8058 one-click), confirm,
 *                 sign-up
 *   webarchive.c  handlers: the web archive and an issue's web copy
 *   webprefs.c    handlers: the preference centre (/p/TOKEN) and the
 *                 leaving survey's answers (also from /u/TOKEN); the
 *                 forms' nonce (include/herald/webprefs.h)
 *   webprivacy.c  handlers: "download my data" and "delete me" of the
 *                 preference centre, and the mailed erase link (privacy.h)
 *   webmail.c     the thread that sends confirmation mail (mailsend.h)
 *   webconn.c     the watch over connections: a deadline for each header
 *                 block (slowloris), a cap on one client's connections
 *   webhttp.c     pure request parsing (routes, forms, user agents,
 *                 client keys, listen addresses), no server state
 *   weblimit.c    the in-memory sign-up rate limiter
 *
 * The invariants are web.c's head comment; handlers cite them by number.
 */
#ifndef HERALD_WEBINT_H
#define HERALD_WEBINT_H

#include <microhttpd.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "herald/buf.h"
#include "herald/config.h"
#include "herald/eventlog.h"
#include "herald/herr.h"
#include "herald/list.h"
#include "herald/tmpl.h"
#include "herald/token.h"
#include "herald/web.h"

#define CSP_PAGE \
	"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; " \
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
/* the web copy of an issue shows the author's own images */
#define CSP_ARCHIVE \
	"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; " \
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

#define ISSUE_BUCKETS   64
#define STOP_DRAIN_WAIT 3.0    /* seconds for requests in flight at stop */
#define LIMIT_KEYS      100000


struct webmail;
struct subscriber_writer;
struct api_job;

/* One server thread's database connection (opened on its first use). */
struct web_thread {
	struct web_thread *next;       /* all of them, to close at stop */
	sqlite3           *db;
	sqlite3_stmt      *rows_exist;     /* may an event name these ids? */
	struct subscriber_writer *api_w;   /* the API's upserts (webapi.c): its
	                                      statements prepared once per thread */
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


/* The routes and statuses /metrics counts requests by (webmetrics.c);
 * a status not in the table is counted as "other" (slot WEB_METRIC_CODES). */
#define WEB_ROUTE_KINDS  (WEB_ROUTE_API + 1)   /* WEB_ROUTE_API is the last kind */
#define WEB_METRIC_CODES 18
extern const unsigned web_metric_codes[WEB_METRIC_CODES];
struct webmetrics;

struct web_server {
	const struct config *cfg;
	struct web_opts      opts;
	struct token_key     key;
	struct MHD_Daemon   *mhd;
	int                  fd;
	char                 url[128];
	struct eventlog     *events;
	struct webmail      *mail;     /* the confirmation-mail thread (webmail.c) */
	struct webconn      *conns;    /* header deadlines, per-client cap (webconn.c) */
	struct web_limiter  *ip_limit, *addr_limit;
	struct web_limiter  *api_limit;  /* per API key: [api] rate a second (webapi.c) */
	/* the API's writes, one at a time: threads queue here rather than in
	 * SQLite's busy handler, which sleeps (1, 2, 5 ms ...) between tries;
	 * upserts waiting together go in one transaction (webapi.c) */
	pthread_mutex_t      api_write_mu;
	pthread_cond_t       api_done;
	struct api_job      *api_pending;  /* upserts waiting for a leader */
	int                  api_leading;  /* a thread is writing a batch */
	struct { long long id, next; } api_marks[32]; /* when each key's last use is
	                                      written next (under api_write_mu) */
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
	atomic_ullong        answered[WEB_ROUTE_KINDS][WEB_METRIC_CODES + 1];
	double               started_at;   /* Unix time */
	struct webmetrics   *metrics;      /* the /metrics listener, or NULL */
	char                 get_marker;   /* *state of a GET between its two calls */
};

/* A POST being received. */
struct request {
	struct web_route route;
	char             token[TOKEN_MAX];
	char             api_path[WEB_API_PATH_MAX];
	struct buf       body;
	int              too_large;
	double           started;      /* monotonic seconds */
};


/* ---- web.c ---- */

/* Queue response `r` with `status` and count it for /metrics under the
 * route this thread is answering.  Every answer goes through here. */
enum MHD_Result web_queue(struct web_server *s, struct MHD_Connection *c, unsigned status,
                          struct MHD_Response *r);
/* The name /metrics gives a route kind: "open", "click", ... */
const char *web_route_name(enum web_route_kind k);
/* Bind and listen on `spec` ("127.0.0.1:8080"); the URL bound into `url`. */
int web_listen_socket(const char *spec, char *url, size_t url_size, struct herr *err);

double web_mono_now(void);
void web_log(struct web_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* This server thread's database connection, opened on first use; NULL
 * (logged) when it cannot be opened. */
struct web_thread *web_thread_db(struct web_server *s);
/* 1 when the token's subscriber and issue exist and the issue is on the
 * token's list (invariant 1), 0 when not, -1 when the database failed. */
int web_rows_exist(struct web_thread *t, const struct token *tok);
/* The cached links of issue `id`, loading them on first use.  NULL with
 * EX_NOINPUT when there is no such issue. */
struct issue_links *web_links_get(struct web_server *s, struct web_thread *t, long long id,
                                  struct herr *err);
/* 0 when `tok` (len bytes) is a valid token of `kind`, filling *t. */
int web_check_token(struct web_server *s, const char *tok, size_t len, enum token_kind kind,
                    struct token *t);

/* Responses (invariant 5: every one carries the security headers). */
void web_add_security_headers(struct MHD_Response *r, const char *csp);
/* Queue `len` bytes of `body` (taken over: free()d by MHD) as `type`. */
enum MHD_Result web_queue_body(struct web_server *s, struct MHD_Connection *c, unsigned status,
                               char *body, size_t len, const char *type, const char *csp,
                               const char *extra_name, const char *extra_value);
enum MHD_Result web_queue_page(struct web_server *s, struct MHD_Connection *c,
                               unsigned status, struct buf *page, const char *extra_name,
                               const char *extra_value);
enum MHD_Result web_queue_notice_h(struct web_server *s, struct MHD_Connection *c,
                                   unsigned status, const char *heading, const char *text,
                                   const char *extra_name, const char *extra_value);
enum MHD_Result web_queue_notice(struct web_server *s, struct MHD_Connection *c,
                                 unsigned status, const char *heading, const char *text);
enum MHD_Result web_not_found(struct web_server *s, struct MHD_Connection *c);
enum MHD_Result web_unavailable(struct web_server *s, struct MHD_Connection *c);
/* A database call failed: 404 when what the token names is gone, else 503
 * (busy past the timeout, or worse: logged). */
enum MHD_Result web_db_failed(struct web_server *s, struct MHD_Connection *c,
                              const struct herr *err, const char *what);
/* The page built by a webpage_*() call that returned `rc`, or 503. */
enum MHD_Result web_queue_page_or_fail(struct web_server *s, struct MHD_Connection *c, int rc,
                                       struct buf *page);

/* The reader's own request as consent (consent.h (5)): `source`, `text`
 * (what the page showed), the client's address by the [web]
 * trusted_proxies rule into `ip` (CONSENT_IP_MAX bytes), its User-Agent,
 * and [privacy] store_ip, which the core applies when it writes the
 * record.  websub.c. */
struct consent_ctx;
void web_consent_of(struct web_server *s, struct MHD_Connection *c, const char *source,
                    const char *text, char *ip, struct consent_ctx *out);

/* ---- webmetrics.c ---- */

/* Start the /metrics listener on [metrics] listen (one thread of its own,
 * its own database connection), answering only [metrics] allow. */
int webmetrics_start(struct web_server *s, struct webmetrics **out, struct herr *err);
const char *webmetrics_url(const struct webmetrics *m);
void webmetrics_stop(struct webmetrics *m);

/* ---- the handlers ---- */

enum MHD_Result web_handle_open(struct web_server *s, struct MHD_Connection *c,
                                enum web_method m, const struct web_route *r);
enum MHD_Result web_handle_click(struct web_server *s, struct MHD_Connection *c,
                                 enum web_method m, const struct web_route *r);
enum MHD_Result web_handle_unsubscribe(struct web_server *s, struct MHD_Connection *c,
                                       enum web_method m, const struct web_route *r,
                                       const struct request *rq);
enum MHD_Result web_handle_confirm(struct web_server *s, struct MHD_Connection *c,
                                   enum web_method m, const struct web_route *r,
                                   const struct request *rq);
enum MHD_Result web_handle_subscribe(struct web_server *s, struct MHD_Connection *c,
                                     const struct request *rq);
enum MHD_Result web_handle_signup_page(struct web_server *s, struct MHD_Connection *c,
                                       const struct web_route *r);
enum MHD_Result web_handle_archive_index(struct web_server *s, struct MHD_Connection *c,
                                         const struct web_route *r);
enum MHD_Result web_handle_archive(struct web_server *s, struct MHD_Connection *c,
                                   const struct web_route *r);
/* ---- webapi.c ---- */
enum MHD_Result web_handle_api(struct web_server *s, struct MHD_Connection *c,
                               enum web_method m, const struct web_route *r,
                               const struct request *rq);
/* The API's 413, in its JSON error shape. */
enum MHD_Result web_api_too_large(struct web_server *s, struct MHD_Connection *c);

/* ---- webprefs.c ---- */
enum MHD_Result web_handle_preferences(struct web_server *s, struct MHD_Connection *c,
                                       enum web_method m, const struct web_route *r,
                                       const struct request *rq);
/* POST action=survey on a page of the token `r` names (its subscriber
 * `tok`): checks the form's nonce, stores the answer (prefs.h), answers
 * with a page.  A wrong or missing nonce is 403 and stores nothing. */
enum MHD_Result web_survey_post(struct web_server *s, struct MHD_Connection *c,
                                struct web_thread *t, const struct web_route *r,
                                const struct token *tok, const struct web_form *form);

/* ---- webprivacy.c ---- */
enum MHD_Result web_handle_privacy(struct web_server *s, struct MHD_Connection *c,
                                   enum web_method m, const struct web_route *r,
                                   const struct request *rq);

/* ---- webconn.c ---- */

struct webconn;
/* Start watching: header blocks must be complete within `deadline`
 * seconds, a client may hold `per_client` connections. */
int webconn_start(const struct config *cfg, long per_client, double deadline,
                  struct webconn **out, struct herr *err);
/* Stop the sweeper and free; how many were cut for slowness and for the cap. */
void webconn_stop(struct webconn *w, long long *cut_slow, long long *cut_cap);
/* From libmicrohttpd's connection notifications (web.c). */
void webconn_opened(struct webconn *w, struct MHD_Connection *c, void **socket_context);
void webconn_closed(struct webconn *w, void **socket_context);
/* A request's header block is complete / its answer is done. */
void webconn_headers_done(struct webconn *w, struct MHD_Connection *c);
void webconn_request_done(struct webconn *w, struct MHD_Connection *c);

/* ---- webmail.c ---- */

/* Start the mail thread: its own database connection (relay usage) and
 * the single-message sender (mailsend.h, which loads the DKIM key: a bad
 * key fails here, with EX_CONFIG). */
int webmail_start(struct web_server *s, struct webmail **out, struct herr *err);
/* Queue the mail of confirmation `confirm_id` (subscriber.h); -1 when the
 * queue is full or stopping. */
int webmail_enqueue(struct webmail *m, long long subscriber_id, long long confirm_id,
                    const struct list *l, const char *email, const char *name);
/* Any other single mail: `build` runs on the mail thread with its database
 * connection and DKIM signer and writes the message for mailsend_one();
 * `ctx` (malloc()ed) is its argument, free()d after, also when the queue
 * refuses it (-1: full or stopping).  `what` names the mail in the log. */
struct message_out;
struct dkim_signer;
typedef int (*webmail_build_fn)(void *ctx, const struct config *cfg, sqlite3 *db,
                                const struct dkim_signer *dkim, struct buf *out,
                                struct message_out *mo, struct herr *err);
int webmail_enqueue_build(struct webmail *m, webmail_build_fn build, void *ctx,
                          const char *what);
/* The same with `done` called on the mail thread after the send (rc of
 * mailsend_one(), its result, the Message-ID, its error) to record it, and
 * `ctx` released by `ctx_free` rather than free(). */
struct mailsend_result;
typedef void (*webmail_done_fn)(void *ctx, sqlite3 *db, int rc,
                                const struct mailsend_result *res, const char *message_id,
                                const struct herr *err);
int webmail_enqueue_build_done(struct webmail *m, webmail_build_fn build, webmail_done_fn done,
                               void (*ctx_free)(void *ctx), void *ctx, const char *what);
/* Send what is queued (for at most a while), stop the thread, free
 * everything; how many went and failed over the server's life.  NULL ok. */
void webmail_stop(struct webmail *m, long long *sent, long long *failed);

#endif
