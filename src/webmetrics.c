/*
 * webmetrics.c - the /metrics listener of `herald serve` (see metrics.h
 * for what it shows).
 *
 * A listener of its own on [metrics] listen, not a path of the public
 * one: the subscriber endpoint sits behind a reverse proxy that anyone
 * can reach, and how many unsubscribes a send caused is not for them.
 * Here only GET /metrics is answered, and only to a peer inside [metrics]
 * allow (loopback by default); the others get 403 without a figure.
 *
 * One libmicrohttpd thread with no pool, so scrapes are answered one at a
 * time and this file's state (its database connection, the previous
 * scrape's counts for the rates) needs no lock.  The connection is opened
 * on the first scrape, by that thread, and closed at stop.
 */
#include "webint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/db.h"
#include "herald/metrics.h"

#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct webmetrics {
	struct web_server   *s;
	struct MHD_Daemon   *mhd;
	int                  fd;
	char                 url[160];
	sqlite3             *db;
	struct metrics_state state;
};

/* Queue `r` (NULL: out of memory) with its headers. */
static enum MHD_Result
queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r, const char *type)
{
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A refusal: a constant line of text. */
static enum MHD_Result
refuse(struct MHD_Connection *c, unsigned status, const char *text)
{
	return queue(c, status, MHD_create_response_from_buffer(strlen(text), (void *)text,
	                                                        MHD_RESPMEM_PERSISTENT),
	             "text/plain; charset=utf-8");
}

/* The exposition, `len` bytes at `body` (taken over). */
static enum MHD_Result
exposition(struct MHD_Connection *c, char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

	if (!r)
		free(body);
	return queue(c, MHD_HTTP_OK, r, METRICS_TYPE);
}

/* Is the peer inside [metrics] allow? */
static int
allowed(const struct config *cfg, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci && web_peer_in(ci->client_addr, cfg->metrics_allow, cfg->n_metrics_allow);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *data, size_t *data_size, void **state)
{
	struct webmetrics *m = cls;
	struct web_server *s = m->s;
	struct metrics_http_count http[WEB_ROUTE_KINDS * (WEB_METRIC_CODES + 1)];
	struct metrics_live live;
	struct buf out = BUF_INIT(1u << 20);
	struct herr err;
	size_t n = 0, k, i, len;

	(void)version;
	(void)data;
	if (!*state) {
		/* answer in the second call, as web.c does, so that a
		 * keep-alive scraper keeps its connection */
		*state = m;
		return MHD_YES;
	}
	if (*data_size) {
		*data_size = 0; /* a body: read and dropped, then 405 */
		return MHD_YES;
	}
	if (!allowed(s->cfg, c))
		return refuse(c, MHD_HTTP_FORBIDDEN, "not in [metrics] allow\n");
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return refuse(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics only\n");
	if (strcmp(url, "/metrics"))
		return refuse(c, MHD_HTTP_NOT_FOUND, "only /metrics here\n");
	if (!m->db && db_open(s->cfg->db_path, DB_OPEN_EXISTING, s->cfg->db_busy_timeout_ms,
	                      &m->db, &err) < 0) {
		web_log(s, "metrics: %s", err.msg);
		return refuse(c, MHD_HTTP_SERVICE_UNAVAILABLE, "database unavailable\n");
	}
	for (k = 0; k < WEB_ROUTE_KINDS; k++)
		for (i = 0; i <= WEB_METRIC_CODES; i++) {
			http[n].endpoint = web_route_name((enum web_route_kind)k);
			http[n].code = i < WEB_METRIC_CODES ? web_metric_codes[i] : 0;
			http[n].n = atomic_load_explicit(&s->answered[k][i], memory_order_relaxed);
			n++;
		}
	memset(&live, 0, sizeof live);
	live.started_at = s->started_at;
	live.in_flight = atomic_load(&s->in_flight);
	live.events_written = eventlog_written(s->events);
	live.http = http;
	live.n_http = n;
	if (metrics_render(m->db, &live, &m->state, db_now_f(), &out, &err) < 0) {
		buf_free(&out);
		web_log(s, "metrics: %s", err.msg);
		return refuse(c, MHD_HTTP_SERVICE_UNAVAILABLE, "database unavailable\n");
	}
	len = out.len;
	return exposition(c, buf_detach(&out), len);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **state,
             enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	*state = NULL;
}

int
webmetrics_start(struct web_server *s, struct webmetrics **out, struct herr *err)
{
	struct webmetrics *m;
	char base[128];

	*out = NULL;
	if (!(m = calloc(1, sizeof *m)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	m->s = s;
	if ((m->fd = web_listen_socket(s->cfg->metrics_listen, base, sizeof base, err)) < 0) {
		herr_wrap(err, "[metrics] listen");
		free(m);
		return -1;
	}
	snprintf(m->url, sizeof m->url, "%s/metrics", base);
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
	                          on_request, m,
	                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)m->fd,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)WEB_TIMEOUT,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WEB_HEADER_MEM,
	                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, m,
	                          MHD_OPTION_END);
	if (!m->mhd) {
		close(m->fd);
		free(m);
		return herr_set(err, EX_UNAVAILABLE, NULL, "cannot start the metrics listener on %s",
		                s->cfg->metrics_listen);
	}
	*out = m;
	return 0;
}

const char *
webmetrics_url(const struct webmetrics *m)
{
	return m->url;
}

void
webmetrics_stop(struct webmetrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);  /* closes the listening socket it was given */
	db_close(m->db);
	free(m);
}
