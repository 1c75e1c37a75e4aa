/*
 * webconn.c - herald serve's watch over its connections: a deadline for
 * each request's header block, and a cap on one client's open connections.
 *
 * libmicrohttpd's own timeout is an idle timeout: a client that sends one
 * header line every few seconds ("slowloris") is never idle and would hold
 * its connection, and enough of them would hold them all.  So every
 * connection is watched from the moment it opens (or its previous request
 * ended) until its header block is complete (web.c's request callback);
 * a sweeper thread shuts down any that took longer than WEB_TIMEOUT.
 * shutdown(2), not close(2): the library still owns the descriptor, sees
 * the end of the stream and closes the connection its own way.  The entry
 * is removed, under the same mutex, when the library reports the
 * connection closed, which it does before it closes the descriptor, so
 * the sweeper never touches a descriptor that was reused.
 *
 * The cap: at most [web] max_connections_per_client open connections per
 * client (an IPv4 address, an IPv6 /64); one more is shut down as soon as
 * it opens.  Trusted proxies ([web] trusted_proxies) are not capped: every
 * reader comes through them.
 */
#include "webint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SWEEP_EVERY_MS 250
#define CLIENT_BUCKETS 1024

struct watched {
	struct watched *prev, *next;
	int             fd;
	double          since;    /* when the wait for a header block began */
	int             waiting;  /* a header block is awaited */
	int             cut;      /* shut down already */
	struct client  *client;   /* NULL: not counted (a trusted proxy) */
};

struct client {
	struct client *next;
	long           open;
	char           key[64];
};

struct webconn {
	pthread_mutex_t  mu;
	pthread_cond_t   wake;
	pthread_t        thread;
	int              running, stopping;
	struct watched  *head;
	struct client   *bucket[CLIENT_BUCKETS];
	const struct config *cfg;
	long             per_client;
	double           deadline;   /* seconds */
	atomic_llong     cut_slow, cut_cap;
};

static unsigned
client_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % CLIENT_BUCKETS;
}

/* The counting key of a peer (its address, an IPv6 /64), or -1 when it is
 * a trusted proxy or unknown: not counted. */
static int
client_key(const struct webconn *w, const struct sockaddr *peer, char *out, size_t size)
{
	if (!peer || web_peer_in(peer, w->cfg->proxies, w->cfg->n_proxies))
		return -1;
	web_client_key(peer, NULL, NULL, 0, out, size);
	return strcmp(out, "unknown") ? 0 : -1;
}

static void *
sweeper(void *arg)
{
	struct webconn *w = arg;
	struct timespec until;
	struct watched *e;
	double now;

	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += SWEEP_EVERY_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&w->wake, &w->mu, &until);
		now = web_mono_now();
		for (e = w->head; e; e = e->next)
			if (e->waiting && !e->cut && now - e->since > w->deadline) {
				shutdown(e->fd, SHUT_RDWR);
				e->cut = 1;
				atomic_fetch_add(&w->cut_slow, 1);
			}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
webconn_start(const struct config *cfg, long per_client, double deadline,
              struct webconn **out, struct herr *err)
{
	struct webconn *w = calloc(1, sizeof *w);

	*out = NULL;
	if (!w)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	w->cfg = cfg;
	w->per_client = per_client;
	w->deadline = deadline;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->wake, NULL);
	if (pthread_create(&w->thread, NULL, sweeper, w) != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return herr_set(err, EX_OSERR, NULL, "cannot start the connection watch");
	}
	w->running = 1;
	*out = w;
	return 0;
}

void
webconn_stop(struct webconn *w, long long *cut_slow, long long *cut_cap)
{
	struct watched *e, *en;
	struct client *c, *cn;
	size_t i;

	if (!w)
		return;
	if (w->running) {
		pthread_mutex_lock(&w->mu);
		w->stopping = 1;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	if (cut_slow)
		*cut_slow = atomic_load(&w->cut_slow);
	if (cut_cap)
		*cut_cap = atomic_load(&w->cut_cap);
	for (e = w->head; e; e = en) {
		en = e->next;
		free(e);
	}
	for (i = 0; i < CLIENT_BUCKETS; i++)
		for (c = w->bucket[i]; c; c = cn) {
			cn = c->next;
			free(c);
		}
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void
webconn_opened(struct webconn *w, struct MHD_Connection *c, void **socket_context)
{
	const union MHD_ConnectionInfo *ci;
	struct watched *e = calloc(1, sizeof *e);
	struct client *cl = NULL;
	char key[64];
	unsigned b;

	*socket_context = e;
	if (!e)
		return; /* unwatched: only the library's idle timeout holds it */
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	e->fd = ci ? ci->connect_fd : -1;
	e->since = web_mono_now();
	e->waiting = 1;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	pthread_mutex_lock(&w->mu);
	if (client_key(w, ci ? ci->client_addr : NULL, key, sizeof key) == 0) {
		b = client_hash(key);
		for (cl = w->bucket[b]; cl && strcmp(cl->key, key); cl = cl->next)
			;
		if (!cl && (cl = calloc(1, sizeof *cl))) {
			snprintf(cl->key, sizeof cl->key, "%s", key);
			cl->next = w->bucket[b];
			w->bucket[b] = cl;
		}
		if (cl) {
			cl->open++;
			e->client = cl;
			if (cl->open > w->per_client && e->fd >= 0) {
				/* one too many from this client: end it now */
				shutdown(e->fd, SHUT_RDWR);
				e->cut = 1;
				atomic_fetch_add(&w->cut_cap, 1);
			}
		}
	}
	if (e->fd >= 0) {
		e->next = w->head;
		if (w->head)
			w->head->prev = e;
		w->head = e;
	}
	pthread_mutex_unlock(&w->mu);
}

void
webconn_closed(struct webconn *w, void **socket_context)
{
	struct watched *e = *socket_context;

	if (!e)
		return;
	pthread_mutex_lock(&w->mu);
	if (e->fd >= 0) {
		if (e->prev)
			e->prev->next = e->next;
		else
			w->head = e->next;
		if (e->next)
			e->next->prev = e->prev;
	}
	if (e->client && --e->client->open == 0) {
		/* forgotten with its last connection: memory follows the open
		 * connections, not every client ever seen */
		struct client **pp = &w->bucket[client_hash(e->client->key)];

		while (*pp && *pp != e->client)
			pp = &(*pp)->next;
		if (*pp)
			*pp = e->client->next;
		free(e->client);
	}
	pthread_mutex_unlock(&w->mu);
	free(e);
	*socket_context = NULL;
}

void
webconn_headers_done(struct webconn *w, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct watched *e = ci ? ci->socket_context : NULL;

	if (!e)
		return;
	pthread_mutex_lock(&w->mu);
	e->waiting = 0;
	pthread_mutex_unlock(&w->mu);
}

void
webconn_request_done(struct webconn *w, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct watched *e = ci ? ci->socket_context : NULL;

	if (!e)
		return;
	pthread_mutex_lock(&w->mu);
	/* the next request's header block has its own deadline */
	e->waiting = 1;
	e->since = web_mono_now();
	pthread_mutex_unlock(&w->mu);
}
