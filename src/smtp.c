/*
 * smtp.c - one SMTP connection: libcurl opens it, herald runs the
 * transactions (see smtp.h).
 *
 * libcurl does the part of a session that is hard to get right and the same
 * for every message: TCP, implicit TLS or STARTTLS with certificate checks,
 * the greeting, EHLO and AUTH.  CURLOPT_CONNECT_ONLY stops it there (for
 * SMTP its connect phase ends after AUTH), and the connection is handed to
 * us through curl_easy_send()/curl_easy_recv(), which go through its TLS
 * layer.  The transactions are ours because libcurl cannot pipeline: with
 * PIPELINING offered (RFC 2920) MAIL, RCPT and DATA go out in one write and
 * the body with its final dot in a second, two waits for the relay a
 * message instead of libcurl's four, with none of a libcurl transfer's set
 * up (issue 19: the waits were most of the send's context switches).
 * Without PIPELINING each command waits for its reply, as RFC 5321 asks.
 *
 * RFCs: 5321 (SMTP; §4.2 replies, §4.1.1.5 RSET, §4.5.2 dot-stuffing,
 * §4.5.3.2 timeouts), 2920 (PIPELINING), 1870 (SIZE), 3207 (STARTTLS),
 * 4954 (AUTH), 2034/3463 (enhanced status codes, kept in the reply text).
 */
#include "herald/smtp.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "herald/curltrace.h"

/* Seconds to wait for the reply to QUIT before closing anyway. */
#define QUIT_WAIT_S 5

/* What EHLO offered on the session (RFC 5321 §4.1.1.1). */
#define CAP_PIPELINING 0x1u
#define CAP_SIZE       0x2u
#define CAP_TLS        0x4u   /* not a keyword: the session runs under TLS */

struct smtp_conn {
	struct curltrace trace;  /* libcurl's part: protocol lines to note_* */
	CURL  *tmpl;             /* the relay's options; never performs */
	CURL  *curl;             /* the open session, or NULL */
	curl_socket_t sock;      /* its socket, for poll() */
	long   timeout;          /* seconds a transaction may take */
	int    smtps;            /* TLS from the first byte (smtps://) */
	char   errbuf[CURL_ERROR_SIZE];
	long   connects;
	CURLcode connect_rc;     /* libcurl's word on the last session_open() */
	unsigned caps, caps_seen; /* CAP_*: of the session; of the EHLO being read */
	/* libcurl's trace while it connects */
	enum smtp_stage stage;
	struct smtp_result *r;
	int         reply_continues; /* previous line was "NNN-..." */
	struct smtp_probe *probe;    /* smtp_probe(): what EHLO offered */
	struct smtp_result result;   /* of the last transaction */
	/* our part */
	char   rbuf[4096];       /* replies read, not yet taken */
	size_t rlen, roff;
	char  *wbuf;             /* commands, or the dot-stuffed body */
	size_t wcap;
	/* the next message's envelope, sent behind this one's final dot
	 * (smtp_send_ahead()); its replies are still to be read */
	int    announced;
	char   ann_from[SMTP_ADDRESS_MAX], ann_rcpt[SMTP_ADDRESS_MAX];
	struct timespec deadline;
};

/* One reply of the relay's: its code and its lines. */
struct reply {
	int  code;               /* 0: none came (see the result's detail) */
	char text[sizeof ((struct smtp_result *)0)->reply];
};

const char *
smtp_stage_name(enum smtp_stage s)
{
	static const char *names[] = { "connect", "greeting", "EHLO", "STARTTLS", "AUTH",
	                               "MAIL FROM", "RCPT TO", "DATA", "end of data", "QUIT" };
	return names[s];
}

const char *
smtp_outcome_name(enum smtp_outcome o)
{
	static const char *names[] = { "sent", "deferred", "rejected", "unreachable", "fatal" };
	return names[o];
}

/* Append one reply line to `text` ("a / b" for a multi-line reply),
 * printable ASCII only: it goes into the ledger and onto terminals. */
static void
text_append(char *text, size_t size, const char *p, size_t n)
{
	size_t used = strlen(text), take;

	if (used && used < size - 4) {
		memcpy(text + used, " / ", 3);
		used += 3;
	}
	take = n;
	if (take > size - 1 - used)
		take = size - 1 - used;
	for (size_t i = 0; i < take; i++)
		text[used + i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	text[used + take] = '\0';
}

static int
reply_code(const char *p, size_t n)
{
	if (n < 3 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) || (n > 3 && p[3] != ' ' && p[3] != '-'))
		return -1;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* ---- libcurl's part: the trace of connecting ---- */

static void
note_command(void *ctx, const char *p, size_t n)
{
	struct smtp_conn *c = ctx;
	/* Only the verb is looked at: never copy what follows AUTH. */
	if (n >= 4 && (!strncasecmp(p, "EHLO", 4) || !strncasecmp(p, "HELO", 4))) {
		c->stage = SMTP_STAGE_EHLO;
		/* after STARTTLS, the second EHLO's list counts */
		c->caps_seen &= CAP_TLS;
	} else if (n >= 8 && !strncasecmp(p, "STARTTLS", 8))
		c->stage = SMTP_STAGE_STARTTLS;
	else if (n >= 4 && !strncasecmp(p, "AUTH", 4))
		c->stage = SMTP_STAGE_AUTH;
	else if (n >= 4 && !strncasecmp(p, "QUIT", 4))
		c->stage = SMTP_STAGE_QUIT;
	/* base64 continuation lines of AUTH leave the stage at AUTH */
}

/* An EHLO keyword line "250-KEYWORD params" (RFC 5321 §4.1.1.1). */
static int
is_keyword(const char *kw, size_t kn, const char *want)
{
	size_t w = strlen(want);
	return kn >= w && !strncasecmp(kw, want, w) && (kn == w || kw[w] == ' ' || kw[w] == '=');
}

/* smtp_probe()'s view of one reply line: the EHLO keywords, STARTTLS's
 * 220, AUTH's 235. */
static void
note_probe(struct smtp_probe *pr, enum smtp_stage stage, int code, const char *p, size_t n)
{
	const char *kw = p + 4;
	size_t kn = n > 4 ? n - 4 : 0;

	if (stage == SMTP_STAGE_EHLO && code == 250) {
		if (!pr->ehlo[0])
			snprintf(pr->ehlo, sizeof pr->ehlo, "%.*s", (int)n, p);
		if (is_keyword(kw, kn, "STARTTLS"))
			pr->starttls_offered = 1;
		if (is_keyword(kw, kn, "AUTH"))
			pr->auth_offered = 1;
	} else if (stage == SMTP_STAGE_STARTTLS && code == 220) {
		pr->tls = 1;
	} else if (stage == SMTP_STAGE_AUTH && code == 235) {
		pr->authenticated = 1;
	}
}

static void
note_reply(void *ctx, const char *p, size_t n)
{
	struct smtp_conn *c = ctx;
	struct smtp_result *r = c->r;
	int code;

	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (!r || (code = reply_code(p, n)) < 0 || c->stage == SMTP_STAGE_QUIT)
		return; /* the goodbye says nothing about the message */
	if (c->stage == SMTP_STAGE_CONNECT)
		c->stage = SMTP_STAGE_GREETING;
	if (c->stage == SMTP_STAGE_STARTTLS && code == 220)
		c->caps_seen |= CAP_TLS;
	if (c->probe)
		note_probe(c->probe, c->stage, code, p, n);
	if (c->stage == SMTP_STAGE_EHLO && code == 250 && n > 4) {
		if (is_keyword(p + 4, n - 4, "PIPELINING"))
			c->caps_seen |= CAP_PIPELINING;
		if (is_keyword(p + 4, n - 4, "SIZE"))
			c->caps_seen |= CAP_SIZE;
	}
	/* EHLO's multi-line capability list is not worth keeping */
	if (c->stage == SMTP_STAGE_EHLO && code / 100 == 2)
		return;
	if (!c->reply_continues || code != r->code) {
		r->reply[0] = '\0';
		r->code = code;
	}
	r->stage = c->stage;
	text_append(r->reply, sizeof r->reply, p, n);
	c->reply_continues = n > 3 && p[3] == '-';
}

int
smtp_conn_new(const struct config_relay *cfg, struct smtp_conn **out, struct herr *err)
{
	struct smtp_conn *c;
	char url[1200], password[1024];
	int have_pw;

	*out = NULL;
	if (!(c = calloc(1, sizeof *c)) || !(c->tmpl = curl_easy_init())) {
		free(c);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	c->timeout = cfg->timeout > 0 ? cfg->timeout : 300;
	c->smtps = !strncasecmp(cfg->url, "smtps://", 8);
	c->sock = CURL_SOCKET_BAD;
	/* The URL path is what libcurl sends in EHLO (its "local domain"). */
	if (cfg->helo && !strchr(strstr(cfg->url, "://") + 3, '/'))
		snprintf(url, sizeof url, "%s/%s", cfg->url, cfg->helo);
	else
		snprintf(url, sizeof url, "%s", cfg->url);
	curl_easy_setopt(c->tmpl, CURLOPT_URL, url);
	curl_easy_setopt(c->tmpl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c->tmpl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->tmpl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->tmpl, CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout);
	/* the whole of connecting (TCP, TLS, EHLO, AUTH); the QUIT libcurl
	 * says when the handle goes waits no longer either */
	curl_easy_setopt(c->tmpl, CURLOPT_TIMEOUT, c->timeout);
	curl_easy_setopt(c->tmpl, CURLOPT_SERVER_RESPONSE_TIMEOUT, c->timeout);
	curl_easy_setopt(c->tmpl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->tmpl, CURLOPT_CONNECT_ONLY, 1L);
	c->trace = (struct curltrace){ note_command, note_reply, c };
	curltrace_attach(c->tmpl, &c->trace);
	if (!strncasecmp(cfg->url, "smtp://", 7))
		curl_easy_setopt(c->tmpl, CURLOPT_USE_SSL,
		                 cfg->starttls == CONFIG_STARTTLS_REQUIRED ? (long)CURLUSESSL_ALL :
		                 cfg->starttls == CONFIG_STARTTLS_OPTIONAL ? (long)CURLUSESSL_TRY :
		                 (long)CURLUSESSL_NONE);
	curl_easy_setopt(c->tmpl, CURLOPT_SSL_VERIFYPEER, cfg->tls_verify ? 1L : 0L);
	curl_easy_setopt(c->tmpl, CURLOPT_SSL_VERIFYHOST, cfg->tls_verify ? 2L : 0L);
	if (cfg->ca_file)
		curl_easy_setopt(c->tmpl, CURLOPT_CAINFO, cfg->ca_file);
	if (cfg->username) {
		have_pw = config_smtp_password(cfg, password, sizeof password, err);
		if (have_pw < 0) {
			smtp_conn_free(c);
			return -1;
		}
		curl_easy_setopt(c->tmpl, CURLOPT_USERNAME, cfg->username);
		curl_easy_setopt(c->tmpl, CURLOPT_PASSWORD, password);
		explicit_bzero(password, sizeof password);
	}
	*out = c;
	return 0;
}

long
smtp_conn_connects(const struct smtp_conn *c)
{
	return c->connects;
}

/*
 * What a connection-level failure (libcurl's code from connecting) means:
 * the relay could not be reached, or our configuration is wrong.
 */
static void
classify_connect(CURLcode rc, struct smtp_result *r)
{
	int cls = r->code / 100;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		r->outcome = SMTP_UNREACHABLE;
		r->stage = SMTP_STAGE_CONNECT;
		return;
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		r->outcome = SMTP_FATAL;
		return;
	case CURLE_LOGIN_DENIED:
		r->stage = SMTP_STAGE_AUTH;
		/* 454 4.7.0 is "temporary authentication failure" (RFC 4954 §6) */
		r->outcome = cls == 4 ? SMTP_UNREACHABLE : SMTP_FATAL;
		return;
	default:
		/* a 5xx greeting or EHLO is the relay refusing us; anything
		 * else (4xx, a drop, a timeout) may pass */
		r->outcome = cls == 5 ? SMTP_FATAL : SMTP_UNREACHABLE;
		return;
	}
}

/*
 * Open a session: libcurl connects, greets, says EHLO, STARTTLS and AUTH.
 * 0, or -1 with c->result saying why.
 */
static int
session_open(struct smtp_conn *c)
{
	struct smtp_result *r = &c->result;
	CURLcode rc;
	long n = 0;

	if (!(c->curl = curl_easy_duphandle(c->tmpl))) {
		r->outcome = SMTP_DEFERRED;
		snprintf(r->detail, sizeof r->detail, "out of memory");
		return -1;
	}
	c->r = r;
	c->stage = SMTP_STAGE_CONNECT;
	c->reply_continues = 0;
	c->caps_seen = 0;
	c->errbuf[0] = '\0';
	rc = c->connect_rc = curl_easy_perform(c->curl);
	if (curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK)
		c->connects += n;
	c->r = NULL;
	if (rc == CURLE_OK) {
		curl_socket_t s;

		if (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
		    s != CURL_SOCKET_BAD) {
			c->sock = s;
			c->caps = c->caps_seen;
			if (c->smtps)
				c->caps |= CAP_TLS;
			c->stage = SMTP_STAGE_QUIT; /* libcurl's trace from here is its QUIT */
			return 0;
		}
		snprintf(r->detail, sizeof r->detail, "libcurl gave no socket for the session");
		r->outcome = SMTP_UNREACHABLE;
	} else {
		snprintf(r->detail, sizeof r->detail, "%s",
		         c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
		classify_connect(rc, r);
	}
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
	return -1;
}

/* A session kept open between messages may have been closed by the relay
 * meanwhile (an idle timeout, often with a 421 first): anything readable
 * before we speak means it is gone. */
static int
session_stale(struct smtp_conn *c)
{
	struct pollfd p = { .fd = c->sock, .events = POLLIN };

	return c->rlen > c->roff || poll(&p, 1, 0) != 0;
}

/* Milliseconds left before the transaction's deadline, at least 0. */
static int
ms_left(const struct smtp_conn *c)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (c->deadline.tv_sec - now.tv_sec) * 1000LL +
	     (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 1 << 30 ? 1 << 30 : (int)ms;
}

/* Wait for the socket to be ready for `events`; -1 with the detail set
 * when the deadline passes or poll fails. */
static int
wait_socket(struct smtp_conn *c, short events, const char *what)
{
	struct pollfd p = { .fd = c->sock, .events = events };
	int n;

	do
		n = poll(&p, 1, ms_left(c));
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return 0;
	if (n == 0)
		snprintf(c->result.detail, sizeof c->result.detail,
		         "no answer from the relay within %ld s (%s)", c->timeout, what);
	else
		snprintf(c->result.detail, sizeof c->result.detail, "poll: %s", strerror(errno));
	return -1;
}

static int
session_write(struct smtp_conn *c, const char *p, size_t len, const char *what)
{
	while (len) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(c->curl, p, len, &n);

		if (rc == CURLE_AGAIN) {
			if (wait_socket(c, POLLOUT, what) < 0)
				return -1;
			continue;
		}
		if (rc != CURLE_OK) {
			snprintf(c->result.detail, sizeof c->result.detail, "sending %s: %s", what,
			         curl_easy_strerror(rc));
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* The next line of the relay's, without its CRLF; -1 with the detail set
 * when none comes. */
static int
session_line(struct smtp_conn *c, const char **line, size_t *len, const char *what)
{
	for (;;) {
		char *start = c->rbuf + c->roff;
		char *nl = memchr(start, '\n', c->rlen - c->roff);
		size_t n = 0;
		CURLcode rc;

		if (nl) {
			*line = start;
			*len = (size_t)(nl - start);
			if (*len && start[*len - 1] == '\r')
				(*len)--;
			c->roff += (size_t)(nl - start) + 1;
			return 0;
		}
		if (c->roff) {
			memmove(c->rbuf, start, c->rlen - c->roff);
			c->rlen -= c->roff;
			c->roff = 0;
		}
		if (c->rlen == sizeof c->rbuf) {
			snprintf(c->result.detail, sizeof c->result.detail,
			         "a reply line longer than %zu bytes (%s)", sizeof c->rbuf, what);
			return -1;
		}
		/* Plain TCP: nothing can be here before the socket says so, and
		 * a recv that finds nothing is a system call a wait.  Under TLS
		 * the library may hold a record already read: ask it first. */
		if (!(c->caps & CAP_TLS) && wait_socket(c, POLLIN, what) < 0)
			return -1;
		rc = curl_easy_recv(c->curl, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, &n);
		if (rc == CURLE_AGAIN) {
			if ((c->caps & CAP_TLS) && wait_socket(c, POLLIN, what) < 0)
				return -1;
			continue;   /* plain TCP waits at the top */
		}
		if (rc != CURLE_OK || n == 0) {
			snprintf(c->result.detail, sizeof c->result.detail,
			         "the relay closed the connection (%s)%s%s", what,
			         rc != CURLE_OK ? ": " : "", rc != CURLE_OK ? curl_easy_strerror(rc) : "");
			return -1;
		}
		c->rlen += n;
	}
}

/* One whole reply, "NNN-..." lines up to "NNN ...".  -1 when none came or
 * it cannot be read (the session is then of no more use). */
static int
session_reply(struct smtp_conn *c, struct reply *rp, const char *what)
{
	const char *p;
	size_t n;
	int code;

	rp->code = 0;
	rp->text[0] = '\0';
	for (;;) {
		if (session_line(c, &p, &n, what) < 0)
			return -1;
		if ((code = reply_code(p, n)) < 0 || (rp->code && code != rp->code)) {
			snprintf(c->result.detail, sizeof c->result.detail,
			         "a reply herald cannot read (%s): %.80s", what, p);
			for (char *q = c->result.detail; *q; q++)
				if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
					*q = '?';
			rp->code = 0;
			return -1;
		}
		rp->code = code;
		text_append(rp->text, sizeof rp->text, p, n);
		if (n == 3 || p[3] == ' ')
			return 0;
	}
}

/*
 * Close the session.  When it is `broken` (dropped, timed out, a reply we
 * could not read, 421) the socket is shut first, so that the QUIT libcurl
 * says from curl_easy_cleanup() fails at once instead of waiting for a
 * relay that will not answer.
 */
static void
session_close(struct smtp_conn *c, int broken)
{
	if (!c->curl)
		return;
	if (!broken && c->sock != CURL_SOCKET_BAD) {
		/* RFC 5321 §4.1.1.10: QUIT, and wait a little for its 221
		 * (libcurl says nothing on a CONNECT_ONLY connection) */
		struct smtp_result keep = c->result;
		struct reply rp;

		clock_gettime(CLOCK_MONOTONIC, &c->deadline);
		c->deadline.tv_sec += c->timeout < QUIT_WAIT_S ? c->timeout : QUIT_WAIT_S;
		if (session_write(c, "QUIT\r\n", 6, "QUIT") == 0)
			(void)session_reply(c, &rp, "QUIT");
		c->result = keep;
	}
	if (broken && c->sock != CURL_SOCKET_BAD)
		shutdown(c->sock, SHUT_RDWR);
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
	c->sock = CURL_SOCKET_BAD;
	c->rlen = c->roff = 0;
	c->caps = 0;
	c->announced = 0;
}

void
smtp_conn_free(struct smtp_conn *c)
{
	if (!c)
		return;
	/* with a DATA announced and accepted, a QUIT would be read as part
	 * of the message: the session is dropped instead (nothing of that
	 * message is delivered without its final dot) */
	session_close(c, c->announced);
	if (c->tmpl)
		curl_easy_cleanup(c->tmpl);
	free(c->wbuf);
	free(c);
}

/* Room for `n` more bytes after `used` in the write buffer. */
static int
wbuf_reserve(struct smtp_conn *c, size_t used, size_t n)
{
	char *p;
	size_t cap;

	if (used + n <= c->wcap)
		return 0;
	cap = c->wcap ? c->wcap : 8192;
	while (cap < used + n)
		cap *= 2;
	if (!(p = realloc(c->wbuf, cap)))
		return -1;
	c->wbuf = p;
	c->wcap = cap;
	return 0;
}

/* A dot doubled on every line is the most there can be: a line is at
 * least its '.' and '\n'.  A bound, not a count, so the message is read
 * once, by smtp_dot_stuff(). */
size_t
smtp_dot_stuffed_size(const char *msg, size_t len)
{
	(void)msg;
	return len + len / 2 + 6;
}

size_t
smtp_dot_stuff(const char *msg, size_t len, char *out)
{
	const char *p = msg, *end = msg + len, *nl;
	size_t o = 0, n;

	while (p < end) {
		if (*p == '.')
			out[o++] = '.';
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	if (len < 2 || msg[len - 2] != '\r' || msg[len - 1] != '\n') {
		memcpy(out + o, "\r\n", 2);
		o += 2;
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* The body as DATA carries it, in c->wbuf; its length, or 0 when memory
 * ran out. */
static size_t
stuff_body(struct smtp_conn *c, const char *msg, size_t len)
{
	if (wbuf_reserve(c, 0, smtp_dot_stuffed_size(msg, len)) < 0)
		return 0;
	return smtp_dot_stuff(msg, len, c->wbuf);
}

/* Keep `rp` as the transaction's answer, at `stage`. */
static void
keep_reply(struct smtp_result *r, enum smtp_stage stage, const struct reply *rp)
{
	r->stage = stage;
	r->code = rp->code;
	memcpy(r->reply, rp->text, sizeof r->reply);
}

/*
 * What the answer means for this message, and for the send.  The step a
 * failure happened at decides whose problem it is: at MAIL FROM it is the
 * relay's or our configuration's and says nothing about the recipient, so
 * the send stops and the recipient stays pending; from RCPT on it is this
 * recipient's message.  Within each, 5xx is permanent and everything else
 * (4xx, a timeout, a dropped connection) is temporary (RFC 5321 §4.2.1).
 */
static void
classify(struct smtp_result *r)
{
	int cls = r->code / 100;

	if (r->stage == SMTP_STAGE_EOD && cls == 2)
		r->outcome = SMTP_SENT;
	else if (r->stage < SMTP_STAGE_RCPT)
		r->outcome = cls == 5 ? SMTP_FATAL : SMTP_UNREACHABLE;
	else
		r->outcome = cls == 5 ? SMTP_REJECTED : SMTP_DEFERRED;
}

enum tx_end {
	TX_DONE,       /* a reply decided it; the session can go on */
	TX_BROKEN,     /* the session is of no more use */
	TX_UNHEARD,    /* broken before the relay said a word to this
	                  transaction, or a 421 to its MAIL: nothing of the
	                  message can have gone */
};

/* After a refused RCPT or DATA, what is left of the session: MAIL was
 * accepted, so that transaction is ended with RSET before the next one
 * (RFC 5321 §4.1.1.5).  Only on this failure path, so never pipelined. */
static enum tx_end
reset(struct smtp_conn *c)
{
	struct reply rs;

	if (c->result.code == 421)  /* the relay is closing the session */
		return TX_BROKEN;
	if (session_write(c, "RSET\r\n", 6, "RSET") < 0 || session_reply(c, &rs, "RSET") < 0 ||
	    rs.code / 100 != 2)
		return TX_BROKEN;
	return TX_DONE;
}

/* With pipelining, the replies still owed for the commands after a
 * refused one; a 354 among them is answered with an empty message's dot
 * (RFC 2920 §3.1: DATA can be accepted when no recipient was). */
static int
drain(struct smtp_conn *c, int replies)
{
	struct reply rp;

	while (replies-- > 0) {
		if (session_reply(c, &rp, "a pipelined command") < 0)
			return -1;
		if (rp.code == 354 && (session_write(c, ".\r\n", 3, "end of data") < 0 ||
		                       session_reply(c, &rp, "end of data") < 0))
			return -1;
	}
	return 0;
}

/* Append MAIL FROM (with SIZE when offered) and, when pipelining, RCPT TO
 * and DATA to c->wbuf at `at`; the new length, or 0 when memory ran out. */
static size_t
put_envelope(struct smtp_conn *c, size_t at, const char *from, const char *rcpt, size_t len,
             int pipelining)
{
	size_t n = at;
	char size[32] = "";

	if (c->caps & CAP_SIZE)   /* RFC 1870: the relay may refuse it at MAIL */
		snprintf(size, sizeof size, " SIZE=%zu", len);
	if (wbuf_reserve(c, at, strlen(from) + strlen(rcpt) + sizeof size + 64) < 0)
		return 0;
	n += (size_t)snprintf(c->wbuf + n, c->wcap - n, "MAIL FROM:<%s>%s\r\n", from, size);
	if (pipelining)
		n += (size_t)snprintf(c->wbuf + n, c->wcap - n, "RCPT TO:<%s>\r\nDATA\r\n", rcpt);
	return n;
}

/*
 * One transaction on the open session.  c->result says how it ended (the
 * step and the reply that decided it); the return value what became of
 * the session.
 */
static enum tx_end
transaction(struct smtp_conn *c, const char *mail_from, const char *rcpt, const char *msg,
            size_t len, const struct smtp_envelope *next)
{
	struct smtp_result *r = &c->result;
	struct reply rp;
	int pipelining = (c->caps & CAP_PIPELINING) != 0;
	int announced = c->announced;  /* smtp_send_ahead() checked it is ours */
	size_t n, body;

	/* nothing of connecting (the greeting's 220) may pass for an answer */
	memset(r, 0, sizeof *r);
	c->announced = 0;
	r->stage = SMTP_STAGE_MAIL;
	/* the envelope in one write when the relay pipelines (RFC 2920 §3.1:
	 * DATA ends the group; the body waits for its 354), or already sent
	 * behind the previous message */
	if (!announced) {
		if (!(n = put_envelope(c, 0, mail_from, rcpt, len, pipelining))) {
			snprintf(r->detail, sizeof r->detail, "out of memory");
			return TX_DONE;
		}
		if (session_write(c, c->wbuf, n, "MAIL FROM") < 0)
			return TX_UNHEARD;
	}
	if (session_reply(c, &rp, "MAIL FROM") < 0)
		return TX_UNHEARD;
	if (rp.code / 100 != 2) {
		keep_reply(r, SMTP_STAGE_MAIL, &rp);
		/* 421 to MAIL: the relay ends the session before this message
		 * (an idle timeout, its messages-per-session limit) */
		if (rp.code == 421)
			return TX_UNHEARD;
		if (pipelining && drain(c, 2) < 0)
			return TX_BROKEN;
		return TX_DONE;
	}

	r->stage = SMTP_STAGE_RCPT;
	if (!pipelining) {
		n = (size_t)snprintf(c->wbuf, c->wcap, "RCPT TO:<%s>\r\n", rcpt);
		if (session_write(c, c->wbuf, n, "RCPT TO") < 0)
			return TX_BROKEN;
	}
	if (session_reply(c, &rp, "RCPT TO") < 0)
		return TX_BROKEN;
	if (rp.code / 100 != 2) {
		keep_reply(r, SMTP_STAGE_RCPT, &rp);
		if (rp.code != 421 && pipelining && drain(c, 1) < 0)
			return TX_BROKEN;
		return reset(c);
	}

	r->stage = SMTP_STAGE_DATA;
	if (!pipelining && session_write(c, "DATA\r\n", 6, "DATA") < 0)
		return TX_BROKEN;
	if (session_reply(c, &rp, "DATA") < 0)
		return TX_BROKEN;
	if (rp.code != 354) {
		keep_reply(r, SMTP_STAGE_DATA, &rp);
		return reset(c);
	}

	r->stage = SMTP_STAGE_EOD;
	if (!(body = stuff_body(c, msg, len)) ||
	    (next && pipelining &&
	     !(body = put_envelope(c, body, next->from, next->rcpt, next->len, 1)))) {
		/* the relay waits for a body we cannot give: leave */
		snprintf(r->detail, sizeof r->detail, "out of memory");
		return TX_BROKEN;
	}
	if (session_write(c, c->wbuf, body, "the message") < 0)
		return TX_BROKEN;
	if (next && pipelining) {
		/* the next message's replies come behind this one's */
		snprintf(c->ann_from, sizeof c->ann_from, "%s", next->from);
		snprintf(c->ann_rcpt, sizeof c->ann_rcpt, "%s", next->rcpt);
		c->announced = 1;
	}
	if (session_reply(c, &rp, "end of data") < 0)
		return TX_BROKEN;
	keep_reply(r, SMTP_STAGE_EOD, &rp);
	return rp.code == 421 ? TX_BROKEN : TX_DONE;
}

/* The relay's queue id from the final 250, if it says one. */
static void
pick_queue_id(struct smtp_result *r)
{
	/* "250 2.0.0 Ok: queued as 4Xyz" (Postfix), "250 OK id=1abc" (Exim):
	 * keep the token after "queued as " or "id=". */
	const char *q = strstr(r->reply, "queued as ");
	size_t k = 0;

	if (q)
		q += 10;
	else if ((q = strstr(r->reply, "id=")))
		q += 3;
	while (q && q[k] && !isspace((unsigned char)q[k]) && k < sizeof r->queue_id - 1) {
		r->queue_id[k] = q[k];
		k++;
	}
	r->queue_id[k] = '\0';
}

int
smtp_send(struct smtp_conn *c, const char *mail_from, const char *rcpt, const char *msg,
          size_t len, struct smtp_result *r)
{
	return smtp_send_ahead(c, mail_from, rcpt, msg, len, NULL, r);
}

int
smtp_send_ahead(struct smtp_conn *c, const char *mail_from, const char *rcpt,
                const char *msg, size_t len, const struct smtp_envelope *next,
                struct smtp_result *r)
{
	enum tx_end how;
	int attempt, reused;

	memset(&c->result, 0, sizeof c->result);
	if (next && (strlen(next->from) >= sizeof c->ann_from ||
	             strlen(next->rcpt) >= sizeof c->ann_rcpt || strpbrk(next->from, "\r\n") ||
	             strpbrk(next->rcpt, "\r\n")))
		next = NULL;   /* its own call will say what is wrong with it */
	if (c->announced &&
	    (strcmp(c->ann_from, mail_from) != 0 || strcmp(c->ann_rcpt, rcpt) != 0)) {
		/* another message than the one announced (it was taken back):
		 * a DATA the relay accepted cannot be withdrawn, only dropped
		 * with the session, and without a dot nothing is delivered */
		session_close(c, 1);
	}
	if (strpbrk(mail_from, "\r\n") || strpbrk(rcpt, "\r\n")) {
		/* address.c never lets one through; a line break here would be
		 * a command of its own */
		c->result.stage = strpbrk(mail_from, "\r\n") ? SMTP_STAGE_MAIL : SMTP_STAGE_RCPT;
		c->result.outcome = c->result.stage == SMTP_STAGE_MAIL ? SMTP_FATAL : SMTP_REJECTED;
		snprintf(c->result.detail, sizeof c->result.detail, "a line break in the address");
		goto out;
	}
	for (attempt = 0;; attempt++) {
		reused = c->curl != NULL;
		/* announced: its replies may be here already; not stale */
		if (reused && !c->announced && session_stale(c)) {
			session_close(c, 1);
			reused = 0;
		}
		if (!c->curl && session_open(c) < 0)
			goto out;  /* session_open() said what it means */
		clock_gettime(CLOCK_MONOTONIC, &c->deadline);
		c->deadline.tv_sec += c->timeout;
		how = transaction(c, mail_from, rcpt, msg, len, next);
		if (how != TX_DONE)
			session_close(c, 1);
		/* a kept session the relay dropped without a word, or closed
		 * with a 421 to MAIL: once more on a new one (nothing of the
		 * message was taken) */
		if (how == TX_UNHEARD && reused && attempt == 0) {
			memset(&c->result, 0, sizeof c->result);
			continue;
		}
		break;
	}
	classify(&c->result);
	if (c->result.outcome == SMTP_SENT)
		pick_queue_id(&c->result);
out:
	*r = c->result;
	return r->outcome == SMTP_SENT ? 0 : -1;
}

int
smtp_probe(const struct config_relay *relay, struct smtp_probe *p, struct herr *err)
{
	struct smtp_conn *c;
	int rc;

	memset(p, 0, sizeof *p);
	if (smtp_conn_new(relay, &c, err) < 0) {
		p->r.outcome = SMTP_FATAL;
		return -1;
	}
	c->probe = p;
	memset(&c->result, 0, sizeof c->result);
	rc = session_open(c);
	/* libcurl gives up on its own when EHLO lists no STARTTLS: the step
	 * that failed is STARTTLS all the same */
	if (c->connect_rc == CURLE_USE_SSL_FAILED)
		c->result.stage = SMTP_STAGE_STARTTLS;
	if (rc < 0)
		p->tls = 0; /* a 220 to STARTTLS and then a failed handshake */
	else if (c->smtps)
		p->tls = 1;
	if (rc == 0)
		c->result.outcome = SMTP_SENT;
	p->r = c->result;
	c->probe = NULL;
	smtp_conn_free(c);  /* libcurl says QUIT */
	return rc;
}

const struct smtp_result *
smtp_conn_result(const struct smtp_conn *c)
{
	return &c->result;
}
