/*
 * dns.c - blocking DNS queries over c-ares (see dns.h).
 *
 * One query at a time: dns_query() starts it with ares_query() (no search
 * list: doctor asks for fully qualified names) and runs c-ares's sockets
 * with poll() until the callback has fired.  EDNS0 with a 1232-byte payload
 * (the DNS flag day 2020 size) lets a 2048-bit DKIM key come back over
 * UDP; a truncated answer is asked again over TCP by c-ares itself.
 */
#include "herald/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"

#define DNS_RECORD_MAX 65536 /* one TXT record, joined */

struct dns_resolver {
	ares_channel channel;
	char server[128];      /* for messages */
};

/* What the callback hands back to dns_query(). */
struct dns_pending {
	int done;
	int status;            /* ARES_* */
	enum dns_type type;
	struct dns_answer *out;
	int oom;
};

int
dns_open(struct dns_resolver **out, const char *server, long timeout_ms, struct herr *err)
{
	struct ares_options opts;
	struct dns_resolver *r;
	int rc;

	*out = NULL;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		return herr_set(err, EX_UNAVAILABLE, NULL, "c-ares: %s", ares_strerror(rc));
	if (!(r = calloc(1, sizeof *r))) {
		ares_library_cleanup();
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	memset(&opts, 0, sizeof opts);
	opts.timeout = timeout_ms > 0 ? (int)timeout_ms : DNS_TIMEOUT_MS_DEFAULT;
	opts.tries = 2;
	opts.flags = ARES_FLAG_EDNS;
	opts.ednspsz = 1232;
	rc = ares_init_options(&r->channel, &opts,
	                       ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
	                       ARES_OPT_EDNSPSZ);
	if (rc != ARES_SUCCESS) {
		free(r);
		ares_library_cleanup();
		return herr_set(err, rc == ARES_ENOMEM ? EX_OSERR : EX_UNAVAILABLE, NULL,
		                "cannot start the resolver: %s", ares_strerror(rc));
	}
	if (server) {
		/* ares_set_servers_ports_csv() takes "IP", "IP:PORT" and
		 * "[IPv6]:PORT"; a host name is not a server address */
		if (strlen(server) >= sizeof r->server || strchr(server, ',') ||
		    ares_set_servers_ports_csv(r->channel, server) != ARES_SUCCESS) {
			dns_close(r);
			return herr_set(err, EX_USAGE, NULL,
			                "'%s' is not a DNS server address (IP or IP:PORT)", server);
		}
		snprintf(r->server, sizeof r->server, "%s", server);
	} else {
		snprintf(r->server, sizeof r->server, "the system resolver");
	}
	*out = r;
	return 0;
}

void
dns_close(struct dns_resolver *r)
{
	if (!r)
		return;
	ares_destroy(r->channel);
	free(r);
	ares_library_cleanup();
}

const char *
dns_server_name(const struct dns_resolver *r)
{
	return r->server;
}

void
dns_answer_free(struct dns_answer *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->records[i]);
	free(a->records);
	a->records = NULL;
	a->n = 0;
}

/* Append a copy of `s` to `a`; -1 when out of memory. */
static int
answer_add(struct dns_answer *a, const char *s)
{
	char **grown, *copy;

	if (!(copy = strdup(s)))
		return -1;
	if (!(grown = realloc(a->records, (a->n + 1) * sizeof *grown))) {
		free(copy);
		return -1;
	}
	a->records = grown;
	a->records[a->n++] = copy;
	return 0;
}

/* The character-strings of each TXT record joined into one (RFC 7208 §3.3
 * for SPF; RFC 6376 §3.6.2.2 reads DKIM keys the same way). */
static int
parse_txt(const unsigned char *abuf, int alen, struct dns_answer *out)
{
	struct ares_txt_ext *txt = NULL, *t;
	struct buf rec = BUF_INIT(DNS_RECORD_MAX);
	int rc, bad = 0;

	if ((rc = ares_parse_txt_reply_ext(abuf, alen, &txt)) != ARES_SUCCESS)
		return rc;
	for (t = txt; t && !bad; t = t->next) {
		if (t->record_start && t != txt) {
			bad = answer_add(out, buf_str(&rec)) < 0;
			buf_reset(&rec);
		}
		if (!bad && buf_add(&rec, t->txt, t->length) < 0)
			bad = 1;
	}
	if (txt && !bad)
		bad = answer_add(out, buf_str(&rec)) < 0;
	buf_free(&rec);
	ares_free_data(txt);
	return bad ? ARES_ENOMEM : ARES_SUCCESS;
}

static int
parse_addresses(const unsigned char *abuf, int alen, int family, struct dns_answer *out)
{
	struct ares_addrttl v4[32];
	struct ares_addr6ttl v6[32];
	char text[INET6_ADDRSTRLEN];
	int n = 32, rc, i;

	if (family == AF_INET)
		rc = ares_parse_a_reply(abuf, alen, NULL, v4, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, v6, &n);
	if (rc != ARES_SUCCESS)
		return rc;
	for (i = 0; i < n; i++) {
		if (!inet_ntop(family, family == AF_INET ? (const void *)&v4[i].ipaddr :
		                                           (const void *)&v6[i].ip6addr,
		               text, sizeof text))
			continue;
		if (answer_add(out, text) < 0)
			return ARES_ENOMEM;
	}
	return ARES_SUCCESS;
}

static int
parse_mx(const unsigned char *abuf, int alen, struct dns_answer *out)
{
	struct ares_mx_reply *mx = NULL, *m, *best;
	int rc = ARES_SUCCESS, last = -1;

	if ((rc = ares_parse_mx_reply(abuf, alen, &mx)) != ARES_SUCCESS)
		return rc;
	/* by preference: pick the lowest above the last taken, a handful of
	 * records make the quadratic walk nothing */
	for (;;) {
		best = NULL;
		for (m = mx; m; m = m->next)
			if ((int)m->priority > last && (!best || m->priority < best->priority))
				best = m;
		if (!best)
			break;
		for (m = mx; m; m = m->next)
			if (m->priority == best->priority && answer_add(out, m->host) < 0) {
				rc = ARES_ENOMEM;
				break;
			}
		last = best->priority;
	}
	ares_free_data(mx);
	return rc;
}

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_pending *p = arg;

	(void)timeouts;
	p->done = 1;
	p->status = status;
	if (status != ARES_SUCCESS)
		return;
	switch (p->type) {
	case DNS_TXT: p->status = parse_txt(abuf, alen, p->out); break;
	case DNS_A: p->status = parse_addresses(abuf, alen, AF_INET, p->out); break;
	case DNS_AAAA: p->status = parse_addresses(abuf, alen, AF_INET6, p->out); break;
	case DNS_MX: p->status = parse_mx(abuf, alen, p->out); break;
	}
}

/* Run c-ares until `p` is answered (c-ares's own timeouts end it). */
static void
wait_for(struct dns_resolver *r, struct dns_pending *p)
{
	while (!p->done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp;
		unsigned bits;
		int n = 0, i, ms, ready;

		/* the bit tests by hand: c-ares's ARES_GETSOCK_WRITABLE() shifts
		 * a signed 1 by up to 31 places, undefined behaviour */
		bits = (unsigned)ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if ((bits >> i) & 1u)
				ev |= POLLIN;
			if ((bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u)
				ev |= POLLOUT;
			if (ev)
				pfd[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
		}
		tvp = ares_timeout(r->channel, NULL, &tv);
		ms = tvp ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 100;
		ready = poll(pfd, (nfds_t)n, ms);
		if (ready <= 0) {
			ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < n; i++)
			ares_process_fd(r->channel,
			                pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd :
			                                                                ARES_SOCKET_BAD,
			                pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
	}
}

int
dns_query(struct dns_resolver *r, const char *name, enum dns_type type, struct dns_answer *out,
          struct herr *err)
{
	static const int qtypes[] = { 16 /* TXT */, 1 /* A */, 28 /* AAAA */, 15 /* MX */ };
	static const char *qnames[] = { "TXT", "A", "AAAA", "MX" };
	struct dns_pending p = { 0, 0, type, out, 0 };

	out->records = NULL;
	out->n = 0;
	ares_query(r->channel, name, 1 /* IN */, qtypes[type], on_answer, &p);
	wait_for(r, &p);
	switch (p.status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENODATA:   /* no records of that type */
	case ARES_ENOTFOUND: /* NXDOMAIN */
		dns_answer_free(out);
		return 0;
	case ARES_ENOMEM:
		dns_answer_free(out);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	case ARES_EBADNAME:
		dns_answer_free(out);
		return herr_set(err, EX_DATAERR, name, "not a name DNS can look up");
	default:
		dns_answer_free(out);
		return herr_set(err, EX_UNAVAILABLE, name, "no %s answer from %s: %s", qnames[type],
		                r->server, ares_strerror(p.status));
	}
}

int
dns_tag_value(const char *record, const char *tag, char *out, size_t size)
{
	size_t tlen = strlen(tag), n;
	const char *p = record, *name, *end;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';' || *p == '\r' || *p == '\n')
			p++;
		name = p;
		while (*p && *p != '=' && *p != ';')
			p++;
		end = p;
		while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (*p != '=') {
			continue; /* "tag" without a value: not one of ours */
		}
		p++;
		if ((size_t)(end - name) == tlen && !strncmp(name, tag, tlen)) {
			for (n = 0; *p && *p != ';'; p++) {
				if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
					continue;
				if (n + 1 >= size)
					return -1;
				out[n++] = *p;
			}
			out[n] = '\0';
			return 1;
		}
		while (*p && *p != ';')
			p++;
	}
	return 0;
}
