/*
 * mailbox.c - read returned mail from a Maildir, an IMAP folder or a POP3
 * maildrop, one message at a time (see mailbox.h).
 *
 * Owns no state between calls.  Called by src/cmd/bounce.c, whose callback
 * parses each message (bounce.c) and records it (bouncelog.c).
 *
 * Invariants:
 *  (1) A message is removed only after the callback returned 0 for it, that
 *      is after its result was committed to the database.
 *  (2) The removal may be lost (crash, dropped connection, a server that
 *      does not confirm): the message is then seen again by the next run.
 *      That is safe because bouncelog.c records a message under the SHA-256
 *      of its bytes and does nothing for bytes it has seen (a duplicate).
 *      The reverse - removed but never recorded - cannot happen by (1).
 *  (3) One connection per run.  libcurl would silently connect again when
 *      it finds the first connection closed (the server timed out while
 *      the callback worked, or restarted) and send the next command there;
 *      but POP3 message numbers belong to a session (a "DELE 3" in a new
 *      one may hit another message if the maildrop changed in between), and
 *      a new IMAP session could see another UIDVALIDITY.  So the socket
 *      callback refuses a second connection and the run stops with
 *      EX_TEMPFAIL before anything is sent on it.
 *  (4) Nothing sent to the server is recorded beyond its command verb (the
 *      debug callback), so a password cannot reach an error message; URLs
 *      are shown without user information (and may not carry any).
 *  (5) A message over max_message is never handed to the callback and
 *      never removed; it is counted in skipped_large.  Its size is asked
 *      first (IMAP RFC822.SIZE, POP3 LIST) so it is not even downloaded.
 *
 * Maildir (cr.yp.to/proto/maildir.html): new/ holds messages no reader has
 * seen; a reader moves one to cur/ and appends the info ":2,FLAGS".  We read
 * new/ only: what sits in cur/ was already seen (by us, or by a person with
 * a mail client, who then owns it).
 *
 * IMAP (RFC 9051 / 3501), through libcurl: SELECT (done by libcurl for the
 * URL's mailbox), UID SEARCH UNDELETED (§6.4.4), per message UID FETCH n
 * (RFC822.SIZE FLAGS) then UID FETCH n BODY[] (libcurl's ";UID=n" URL; it has
 * no BODY.PEEK[], so a message left in place gets its unread state back with
 * -FLAGS (\Seen)), after the
 * callback UID STORE n +FLAGS.SILENT (\Deleted) (§6.4.6), and one EXPUNGE
 * (§6.4.3) at the end.  The STORE is the commit: a \Deleted message is never
 * fetched again even if the EXPUNGE is lost.  EXPUNGE removes every \Deleted
 * message of the folder, not only ours: the folder is meant for bounces.
 *
 * POP3 (RFC 1939), through libcurl: LIST (sizes), RETR n, DELE n after the
 * callback.  DELE only marks: the server removes the messages when the
 * session ends with QUIT (§6, the UPDATE state) and keeps them all if the
 * connection ends any other way.  libcurl does send QUIT when the handle is
 * cleaned up, but from an internal handle whose reply nobody sees, so we
 * send QUIT ourselves and count the deletions done only on its +OK; the
 * QUIT libcurl adds at cleanup then meets a closed connection and is
 * dropped (checked against Dovecot 2.3 by tests/integration/
 * test_mailbox_fetch.py).
 *
 * TLS: imaps:// and pop3s:// are TLS from the start.  imap:// and pop3://
 * must upgrade with STARTTLS/STLS (CURLUSESSL_ALL: libcurl fails when the
 * server does not offer it), because the password follows; "try" would send
 * it in clear to anyone who strips the capability.  The one exception is a
 * loopback host (127.0.0.0/8, ::1, localhost): the bytes never leave the
 * machine, so no TLS is attempted there.  Certificates are always verified
 * (peer and host name), against ca_file when given; TLS 1.2 at least.
 */
#include "herald/mailbox.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/buf.h"
#include "herald/curltrace.h"

/* What a command response (UID SEARCH, LIST) may grow to: about a million
 * message numbers. */
#define RESPONSE_MAX ((size_t)16 << 20)

static int
call_fn(mailbox_fn fn, void *ctx, const char *name, const char *data, size_t len,
        struct herr *err)
{
	int rc = fn(ctx, name, data ? data : "", len, err);

	if (rc == 0 || rc == 1)
		return rc;
	if (!err || !err->code) {
		char shown[128];

		herr_show(shown, sizeof shown, name);
		herr_set(err, EX_SOFTWARE, NULL, "stopped at '%s'", shown);
	}
	return -1;
}

static void
note_large(struct mailbox_stats *st, const char *name, unsigned long long size, size_t max)
{
	char shown[128];

	st->skipped_large++;
	herr_show(shown, sizeof shown, name);
	snprintf(st->note, sizeof st->note,
	         "'%s' is %llu bytes, over the limit of %zu: left in place", shown, size, max);
}

/* ------------------------------------------------------------------ */
/* Maildir */

static int
maildir_select(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Byte order, not the locale's: Maildir names start with the time. */
static int
maildir_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
is_dir(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/*
 * Read one file of new/ into b (capped at b->max).  Returns 0 read, 1 pass
 * it over (vanished, not a regular file), 2 too large (*size set), -1 error.
 */
static int
maildir_read(const char *path, struct buf *b, unsigned long long *size, struct herr *err)
{
	struct stat sb;
	char chunk[65536];
	ssize_t n;
	int fd, saved;

	*size = 0;
	buf_reset(b);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return 1;
		return herr_set(err, EX_IOERR, path, "cannot open: %s", strerror(errno));
	}
	if (fstat(fd, &sb) < 0) {
		saved = errno;
		close(fd);
		return herr_set(err, EX_IOERR, path, "cannot stat: %s", strerror(saved));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return 1;
	}
	*size = (unsigned long long)sb.st_size;
	if (*size > b->max) {
		close(fd);
		return 2;
	}
	for (;;) {
		n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			return herr_set(err, EX_IOERR, path, "cannot read: %s", strerror(saved));
		}
		if (n == 0)
			break;
		if (buf_add(b, chunk, (size_t)n) < 0) {
			saved = errno;
			close(fd);
			if (saved == E2BIG) {     /* it grew since fstat */
				*size = (unsigned long long)b->len + (unsigned long long)n;
				return 2;
			}
			return herr_set(err, EX_OSERR, path, "out of memory");
		}
	}
	close(fd);
	return 0;
}

int
mailbox_maildir_each(const char *dir, size_t max_message, mailbox_fn fn, void *ctx,
                     struct mailbox_stats *st, struct herr *err)
{
	struct mailbox_stats local;
	struct dirent **names = NULL;
	struct buf b;
	char newdir[PATH_MAX], curdir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	unsigned long long size;
	int n, i, rc = 0, r;

	if (!st)
		st = &local;
	memset(st, 0, sizeof *st);
	if (!max_message)
		max_message = MAILBOX_MAX_DEFAULT;
	if ((size_t)snprintf(newdir, sizeof newdir, "%s/new", dir) >= sizeof newdir ||
	    (size_t)snprintf(curdir, sizeof curdir, "%s/cur", dir) >= sizeof curdir)
		return herr_set(err, EX_NOINPUT, dir, "path too long");
	if (!is_dir(dir))
		return herr_set(err, EX_NOINPUT, dir, "no such directory");
	if (!is_dir(newdir) || !is_dir(curdir))
		return herr_set(err, EX_NOINPUT, dir, "not a Maildir: no new/ and cur/ in it");
	n = scandir(newdir, &names, maildir_select, maildir_cmp);
	if (n < 0)
		return herr_set(err, errno == ENOMEM ? EX_OSERR : EX_NOINPUT, newdir,
		                "cannot list: %s", strerror(errno));
	buf_init(&b, max_message);
	for (i = 0; i < n && rc == 0; i++) {
		const char *name = names[i]->d_name;

		if ((size_t)snprintf(from, sizeof from, "%s/%s", newdir, name) >= sizeof from) {
			rc = herr_set(err, EX_IOERR, newdir, "file name too long");
			break;
		}
		r = maildir_read(from, &b, &size, err);
		if (r < 0) {
			rc = -1;
			break;
		}
		if (r == 1)
			continue;
		st->seen++;
		if (r == 2) {
			note_large(st, from, size, max_message);
			continue;
		}
		r = call_fn(fn, ctx, from, b.data, b.len, err);
		if (r == 1) {
			st->left++;
			continue;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
		/* Committed: mark it seen.  A name that already carries an info
		 * part (it should not, in new/) keeps it. */
		if ((size_t)snprintf(to, sizeof to, "%s/%s%s", curdir, name,
		                     strchr(name, ':') ? "" : ":2,") >= sizeof to) {
			rc = herr_set(err, EX_IOERR, from, "file name too long to move into cur/");
			break;
		}
		if (rename(from, to) < 0 && errno != ENOENT) {
			/* ENOENT: another reader moved it first; it is done either way */
			rc = herr_set(err, EX_IOERR, from, "cannot move into cur/: %s",
			              strerror(errno));
			break;
		}
		st->done++;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	buf_free(&b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* IMAP and POP3 through libcurl */

enum phase {
	PH_CONNECT,   /* nothing sent yet: connecting, TLS, greeting */
	PH_TLS,       /* STARTTLS / STLS */
	PH_AUTH,      /* LOGIN, AUTHENTICATE, AUTH, USER, PASS, APOP */
	PH_SELECT,    /* SELECT / EXAMINE */
	PH_COMMAND,   /* anything after */
	PH_QUIT,      /* LOGOUT / QUIT */
};

struct fetch {
	struct curltrace trace;  /* protocol lines to note_command/note_reply */
	CURL       *curl;
	int         pop3;
	int         connected;      /* a transfer succeeded: no new socket (3) */
	int         refused;        /* fetch_socket() refused one */
	size_t      max_message;
	char        base[1024];     /* scheme://host:port/MAILBOX, no user info */
	char        errbuf[CURL_ERROR_SIZE];
	char        reply[200];     /* last line from the server, made printable */
	enum phase  phase;          /* of the last command sent */
	int         our_quit;       /* the QUIT being sent is ours, not libcurl's */
	int         closing;        /* libcurl is logging out after a failure */
	struct buf  body;           /* what the write callback got */
	int         over;           /* body passed body.max; the rest was dropped */
	int         nomem;
};

static size_t
fetch_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct fetch *f = ud;
	size_t n = size * nmemb;

	/* Past the cap the bytes are read and dropped rather than refused: a
	 * refused write aborts the transfer and, for POP3, the session with it
	 * (and with it every DELE not yet committed by QUIT). */
	if (!f->over && buf_add(&f->body, p, n) < 0) {
		if (errno != E2BIG) {
			f->nomem = 1;
			return 0;
		}
		f->over = 1;
	}
	return n;
}

/* (3): sockets may be opened until the first transfer worked, never after. */
static curl_socket_t
fetch_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct fetch *f = ud;

	(void)purpose;
	if (f->connected) {
		f->refused = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static const struct {
	const char *verb;
	enum phase  phase;
} verbs[] = {
	{ "STARTTLS", PH_TLS }, { "STLS", PH_TLS },
	{ "LOGIN", PH_AUTH }, { "AUTHENTICATE", PH_AUTH }, { "AUTH", PH_AUTH },
	{ "USER", PH_AUTH }, { "PASS", PH_AUTH }, { "APOP", PH_AUTH },
	{ "SELECT", PH_SELECT }, { "EXAMINE", PH_SELECT },
	{ "UID", PH_COMMAND }, { "FETCH", PH_COMMAND }, { "SEARCH", PH_COMMAND },
	{ "STORE", PH_COMMAND }, { "EXPUNGE", PH_COMMAND }, { "LIST", PH_COMMAND },
	{ "RETR", PH_COMMAND }, { "DELE", PH_COMMAND }, { "UIDL", PH_COMMAND },
	{ "STAT", PH_COMMAND }, { "NOOP", PH_COMMAND },
	{ "LOGOUT", PH_QUIT }, { "QUIT", PH_QUIT },
};

/*
 * A command line went out: find its verb (IMAP: the word after the tag) and
 * remember only the phase it starts.  The line itself is never copied (4):
 * it may be "LOGIN user password" or an AUTH continuation.
 */
static void
note_command(void *ctx, const char *p, size_t n)
{
	struct fetch *f = ctx;
	const char *end = p + n, *w;
	size_t k, i;

	if (!f->pop3) {                         /* skip the tag */
		while (p < end && *p != ' ')
			p++;
		if (p < end)
			p++;
	}
	for (w = p; w < end && isalpha((unsigned char)*w); w++)
		;
	k = (size_t)(w - p);
	if (w < end && *w != ' ' && *w != '\r' && *w != '\n')
		return;                         /* not a plain word: a continuation */
	for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (strlen(verbs[i].verb) == k && !strncasecmp(p, verbs[i].verb, k)) {
			/* CAPABILITY/CAPA and the like keep the phase.  libcurl
			 * logs out by itself after a refused SELECT or login:
			 * that goodbye must not hide what was refused. */
			if (verbs[i].phase == PH_QUIT && !f->our_quit)
				f->closing = 1;
			else
				f->phase = verbs[i].phase;
			return;
		}
}

/* A line came in: keep it, printable, for the error message. */
static void
note_reply(void *ctx, const char *p, size_t n)
{
	struct fetch *f = ctx;
	char line[sizeof f->reply];
	const char *s;
	size_t k;

	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (!n || f->closing)
		return;
	/* IMAP: drop the tag of a tagged reply ("A003 NO ...") */
	if (!f->pop3 && p[0] != '*' && p[0] != '+' && (s = memchr(p, ' ', n)) != NULL) {
		n -= (size_t)(s + 1 - p);
		p = s + 1;
	}
	k = n < sizeof line - 1 ? n : sizeof line - 1;
	memcpy(line, p, k);
	line[k] = '\0';
	herr_show(f->reply, sizeof f->reply, line);
}

/* The error for a failed transfer: a sysexits code by what failed (see
 * mailbox.h), the URL as where, libcurl's words and the server's. */
static int
fetch_fail(struct fetch *f, CURLcode rc, const char *what, struct herr *err)
{
	const char *text = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);
	const char *problem = what;
	int code, quote = 1;

	if (f->refused)
		return herr_set(err, EX_TEMPFAIL, f->base, "the connection was lost before %s: "
		                "stopped; what was not removed yet will be read again next time",
		                what);
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		code = EX_UNAVAILABLE;
		problem = "cannot connect";
		break;
	case CURLE_SSL_CONNECT_ERROR:
		code = EX_UNAVAILABLE;
		problem = "TLS handshake failed";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
		code = EX_CONFIG;
		problem = "server certificate not trusted (check ca_file)";
		quote = 0;      /* the last reply was STARTTLS's go-ahead */
		break;
	case CURLE_USE_SSL_FAILED:
		code = EX_CONFIG;
		problem = "the server offers no STARTTLS (use imaps:// or pop3s://)";
		break;
	case CURLE_LOGIN_DENIED:
		/* libcurl reports a refused SELECT as a refused login too */
		if (f->phase == PH_SELECT) {
			code = EX_CONFIG;
			problem = "cannot open the mailbox";
		} else {
			code = EX_NOPERM;
			problem = "login refused";
		}
		break;
	case CURLE_REMOTE_ACCESS_DENIED:
		code = EX_NOPERM;
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		code = EX_CONFIG;
		break;
	case CURLE_OUT_OF_MEMORY:
		code = EX_OSERR;
		problem = "out of memory";
		break;
	case CURLE_WRITE_ERROR:
		code = f->nomem ? EX_OSERR : EX_TEMPFAIL;
		if (f->nomem)
			problem = "out of memory";
		break;
	case CURLE_QUOTE_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_REMOTE_FILE_NOT_FOUND:
		code = f->phase == PH_AUTH ? EX_NOPERM : EX_PROTOCOL;
		break;
	default:                /* timeouts, lost connections, ... */
		code = EX_TEMPFAIL;
		break;
	}
	if (f->reply[0] && quote)
		return herr_set(err, code, f->base, "%s: %s; the server said '%s'", problem, text,
		                f->reply);
	return herr_set(err, code, f->base, "%s: %s", problem, text);
}

/*
 * One command on the connection: `path` is appended to the base URL
 * (";UID=7", "/3", or ""), `custom` replaces the command libcurl would send
 * for that URL, `nobody` says no multi-line answer comes (POP3 DELE/QUIT).
 * The answer's data lands in f->body, capped at `cap`.
 */
static int
fetch_perform(struct fetch *f, const char *path, const char *custom, int nobody, size_t cap,
              const char *what, struct herr *err)
{
	char url[sizeof f->base + 32];
	CURLcode rc;

	snprintf(url, sizeof url, "%s%s", f->base, path);
	buf_free(&f->body);
	buf_init(&f->body, cap);
	f->over = f->nomem = f->closing = 0;
	f->errbuf[0] = f->reply[0] = '\0';
	curl_easy_setopt(f->curl, CURLOPT_URL, url);
	curl_easy_setopt(f->curl, CURLOPT_CUSTOMREQUEST, custom);
	curl_easy_setopt(f->curl, CURLOPT_NOBODY, nobody ? 1L : 0L);
	rc = curl_easy_perform(f->curl);
	if (rc != CURLE_OK)
		return fetch_fail(f, rc, what, err);
	f->connected = 1;
	return 0;
}

static int
is_loopback(const char *host)
{
	char h[64];
	unsigned char a[16];
	size_t n = strlen(host);

	if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost."))
		return 1;
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		return inet_pton(AF_INET6, h, a) == 1 &&
		       !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
	}
	return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

/*
 * Check o->url and set up f (base URL, protocol, TLS).  The URL is shown in
 * errors only as rebuilt by libcurl, so nothing but scheme, host, port and
 * path can be in a message.
 */
static int
fetch_setup(struct fetch *f, const struct mailbox_opts *o, struct herr *err)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *path = NULL, *x = NULL, *full = NULL;
	char shown[160];
	int imap, tls, rc = -1;

	herr_show(shown, sizeof shown, o->url ? o->url : "");
	if (!o->url || !*o->url)
		return herr_set(err, EX_CONFIG, NULL, "no mailbox URL given");
	if (!(u = curl_url()))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, o->url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		/* the URL as given may hold a password: not shown */
		rc = herr_set(err, EX_CONFIG, NULL, "invalid mailbox URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_OPTIONS, &x, 0) == CURLUE_OK) {
		rc = herr_set(err, EX_CONFIG, NULL, "mailbox URL must not hold a user name or "
		              "password (use username and password_file)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &x, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &x, 0) == CURLUE_OK) {
		rc = herr_set(err, EX_CONFIG, shown, "mailbox URL must not have a query or "
		              "fragment");
		goto out;
	}
	imap = !strcmp(scheme, "imap") || !strcmp(scheme, "imaps");
	f->pop3 = !strcmp(scheme, "pop3") || !strcmp(scheme, "pop3s");
	if (!imap && !f->pop3) {
		rc = herr_set(err, EX_CONFIG, shown, "unsupported mailbox URL scheme '%s' "
		              "(imaps, imap, pop3s or pop3)", scheme);
		goto out;
	}
	tls = scheme[strlen(scheme) - 1] == 's';
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		rc = herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}
	if (strchr(path, ';') || (f->pop3 && strcmp(path, "/") && *path)) {
		rc = herr_set(err, EX_CONFIG, shown, f->pop3 ?
		              "a pop3 mailbox URL has no path" :
		              "mailbox URL must name a folder only, without ';' parameters");
		goto out;
	}
	if (imap && (!strcmp(path, "/") || !*path)) {
		/* libcurl cannot search without a selected folder */
		if (curl_url_set(u, CURLUPART_PATH, "/INBOX", 0) != CURLUE_OK) {
			rc = herr_set(err, EX_OSERR, NULL, "out of memory");
			goto out;
		}
	}
	if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
	    (size_t)snprintf(f->base, sizeof f->base, "%s", full) >= sizeof f->base) {
		rc = herr_set(err, EX_CONFIG, NULL, "mailbox URL too long");
		goto out;
	}
	/* libcurl writes "scheme://host/" for an empty path: POP3 appends "/N" */
	if (f->pop3 && f->base[strlen(f->base) - 1] == '/')
		f->base[strlen(f->base) - 1] = '\0';
	if (!o->username || !*o->username || !o->password) {
		rc = herr_set(err, EX_CONFIG, f->base, "a mailbox needs a username and a password");
		goto out;
	}

	curl_easy_setopt(f->curl, CURLOPT_PROTOCOLS_STR, scheme);
	curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT, o->timeout_s);
	curl_easy_setopt(f->curl, CURLOPT_TIMEOUT, o->timeout_s);
	curl_easy_setopt(f->curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, o->timeout_s);
	curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, f->errbuf);
	curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, f);
	f->trace = (struct curltrace){ note_command, note_reply, f };
	curltrace_attach(f->curl, &f->trace);
	curl_easy_setopt(f->curl, CURLOPT_OPENSOCKETFUNCTION, fetch_socket);
	curl_easy_setopt(f->curl, CURLOPT_OPENSOCKETDATA, f);
	if (!tls)
		curl_easy_setopt(f->curl, CURLOPT_USE_SSL, is_loopback(host) ?
		                 (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
	curl_easy_setopt(f->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(f->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(f->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file)
		curl_easy_setopt(f->curl, CURLOPT_CAINFO, o->ca_file);
	/* libcurl keeps its own copies of both strings */
	curl_easy_setopt(f->curl, CURLOPT_USERNAME, o->username);
	curl_easy_setopt(f->curl, CURLOPT_PASSWORD, o->password);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(x);
	curl_free(full);
	curl_url_cleanup(u);
	return rc;
}

struct numbers {
	unsigned long *v;
	size_t n, cap;
};

static int
numbers_add(struct numbers *ns, unsigned long v)
{
	unsigned long *p;

	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;

		if (!(p = realloc(ns->v, cap * sizeof *p)))
			return -1;
		ns->v = p;
		ns->cap = cap;
	}
	ns->v[ns->n++] = v;
	return 0;
}

static int
numbers_cmp(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

/* The next number in [*p, end), skipping spaces; 0 and *p unchanged if none. */
static int
scan_number(const char **p, const char *end, unsigned long *v)
{
	const char *s = *p;
	unsigned long x = 0;

	while (s < end && *s == ' ')
		s++;
	if (s == end || !isdigit((unsigned char)*s))
		return 0;
	for (; s < end && isdigit((unsigned char)*s); s++) {
		if (x > (ULONG_MAX - 9) / 10)
			return 0;
		x = x * 10 + (unsigned long)(*s - '0');
	}
	*p = s;
	*v = x;
	return 1;
}

/* Call line(ctx, start, end) for every line of the body. */
static int
each_line(const struct buf *b, int (*line)(void *, const char *, const char *), void *ctx)
{
	const char *p = buf_str(b), *end = p + b->len, *nl;

	for (; p < end; p = nl + 1) {
		const char *e;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		e = nl;
		if (e > p && e[-1] == '\r')
			e--;
		if (line(ctx, p, e) < 0)
			return -1;
	}
	return 0;
}

/* "* SEARCH 3 7 9" (RFC 9051 §7.3.4; also ESEARCH-less servers) */
static int
imap_search_line(void *ctx, const char *p, const char *end)
{
	unsigned long v;

	if (end - p < 8 || strncasecmp(p, "* SEARCH", 8))
		return 0;
	p += 8;
	while (scan_number(&p, end, &v))
		if (numbers_add(ctx, v) < 0)
			return -1;
	return 0;
}

struct imap_size {
	unsigned long uid;
	unsigned long long size;
	int found;
	int seen;               /* \Seen before we fetched it */
};

/* "* 4 FETCH (UID 7 RFC822.SIZE 1234 FLAGS (\Seen))", the items in any order */
static int
imap_size_line(void *ctx, const char *p, const char *end)
{
	struct imap_size *s = ctx;
	const char *q, *uid = NULL, *size = NULL;
	unsigned long v, n;

	if (end - p < 2 || strncmp(p, "* ", 2))
		return 0;
	for (q = p + 2; q + 12 <= end; q++) {
		if (!uid && !strncasecmp(q, "UID ", 4) && (q[-1] == '(' || q[-1] == ' '))
			uid = q + 4;
		if (!size && !strncasecmp(q, "RFC822.SIZE ", 12) && (q[-1] == '(' || q[-1] == ' '))
			size = q + 12;
	}
	if (!uid || !size || !scan_number(&uid, end, &v) || v != s->uid ||
	    !scan_number(&size, end, &n))
		return 0;
	s->size = n;
	s->found = 1;
	for (q = p; q + 5 <= end; q++)
		if (!strncasecmp(q, "\\Seen", 5)) {
			s->seen = 1;
			break;
		}
	return 0;
}

static int
imap_each(struct fetch *f, mailbox_fn fn, void *ctx, struct mailbox_stats *st,
          struct herr *err)
{
	struct numbers uids = { NULL, 0, 0 };
	char cmd[96], path[48], name[sizeof f->base + 32];
	size_t i, stored = 0;
	int rc = 0, r;

	if (fetch_perform(f, "", "UID SEARCH UNDELETED", 0, RESPONSE_MAX, "UID SEARCH", err) < 0)
		return -1;
	if (f->over)
		return herr_set(err, EX_PROTOCOL, f->base, "UID SEARCH answer over %zu bytes",
		                (size_t)RESPONSE_MAX);
	if (each_line(&f->body, imap_search_line, &uids) < 0)
		return herr_set(err, EX_OSERR, f->base, "out of memory");
	if (uids.n)
		qsort(uids.v, uids.n, sizeof *uids.v, numbers_cmp);
	for (i = 0; i < uids.n; i++) {
		struct imap_size sz = { uids.v[i], 0, 0, 0 };

		if (i && uids.v[i] == uids.v[i - 1])
			continue;
		snprintf(cmd, sizeof cmd, "UID FETCH %lu (UID RFC822.SIZE FLAGS)", uids.v[i]);
		if (fetch_perform(f, "", cmd, 0, RESPONSE_MAX, "UID FETCH", err) < 0) {
			rc = -1;
			break;
		}
		(void)each_line(&f->body, imap_size_line, &sz);
		if (!sz.found)
			continue;       /* expunged since the search: someone else's */
		st->seen++;
		snprintf(name, sizeof name, "%s;UID=%lu", f->base, uids.v[i]);
		if (sz.size > f->max_message) {
			note_large(st, name, sz.size, f->max_message);
			continue;
		}
		snprintf(path, sizeof path, ";UID=%lu", uids.v[i]);
		if (fetch_perform(f, path, NULL, 0, f->max_message, "UID FETCH", err) < 0) {
			rc = -1;
			break;
		}
		if (f->over) {          /* it grew? a server whose SIZE lies */
			note_large(st, name, sz.size, f->max_message);
			continue;
		}
		r = call_fn(fn, ctx, name, f->body.data, f->body.len, err);
		if (r != 0 && !sz.seen) {
			/* BODY[] set \Seen (libcurl has no BODY.PEEK[]); a message
			 * we leave goes back to unread for whoever reads the box.
			 * Best effort: the message itself is safe either way. */
			struct herr e2;

			snprintf(cmd, sizeof cmd, "UID STORE %lu -FLAGS.SILENT (\\Seen)", uids.v[i]);
			(void)fetch_perform(f, "", cmd, 0, RESPONSE_MAX, "UID STORE", &e2);
		}
		if (r == 1) {
			st->left++;
			continue;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
		snprintf(cmd, sizeof cmd, "UID STORE %lu +FLAGS.SILENT (\\Deleted)", uids.v[i]);
		if (fetch_perform(f, "", cmd, 0, RESPONSE_MAX, "UID STORE", err) < 0) {
			rc = -1;
			break;
		}
		st->done++;
		stored++;
	}
	free(uids.v);
	/* The STOREs are the commit (a \Deleted message is not searched for
	 * again), so the EXPUNGE runs even when we stop on an error, and its
	 * own failure only matters when nothing else failed. */
	if (stored) {
		struct herr e2;

		herr_clear(&e2);
		if (fetch_perform(f, "", "EXPUNGE", 0, RESPONSE_MAX, "EXPUNGE", &e2) < 0 &&
		    rc == 0) {
			if (err)
				*err = e2;
			rc = -1;
		}
	}
	return rc;
}

struct pop3_entry {
	unsigned long num;
	unsigned long long size;
};

struct pop3_list {
	struct pop3_entry *v;
	size_t n, cap;
};

/* "3 1234" (RFC 1939 §5 LIST, the scan listing) */
static int
pop3_list_line(void *ctx, const char *p, const char *end)
{
	struct pop3_list *l = ctx;
	unsigned long num, size;
	struct pop3_entry *v;

	if (!scan_number(&p, end, &num) || !scan_number(&p, end, &size))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;

		if (!(v = realloc(l->v, cap * sizeof *v)))
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].num = num;
	l->v[l->n].size = size;
	l->n++;
	return 0;
}

static int
pop3_each(struct fetch *f, mailbox_fn fn, void *ctx, struct mailbox_stats *st,
          struct herr *err)
{
	struct pop3_list l = { NULL, 0, 0 };
	char path[32], name[sizeof f->base + 32];
	size_t i, marked = 0;
	int rc = 0, r;

	if (fetch_perform(f, "", NULL, 0, RESPONSE_MAX, "LIST", err) < 0)
		return -1;
	if (f->over)
		return herr_set(err, EX_PROTOCOL, f->base, "LIST answer over %zu bytes",
		                (size_t)RESPONSE_MAX);
	if (each_line(&f->body, pop3_list_line, &l) < 0)
		return herr_set(err, EX_OSERR, f->base, "out of memory");
	for (i = 0; i < l.n; i++) {
		snprintf(path, sizeof path, "/%lu", l.v[i].num);
		snprintf(name, sizeof name, "%s/%lu", f->base, l.v[i].num);
		st->seen++;
		if (l.v[i].size > f->max_message) {
			note_large(st, name, l.v[i].size, f->max_message);
			continue;
		}
		if (fetch_perform(f, path, NULL, 0, f->max_message, "RETR", err) < 0) {
			rc = -1;
			break;
		}
		if (f->over) {
			note_large(st, name, l.v[i].size, f->max_message);
			continue;
		}
		r = call_fn(fn, ctx, name, f->body.data, f->body.len, err);
		if (r == 1) {
			st->left++;
			continue;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
		if (fetch_perform(f, path, "DELE", 1, RESPONSE_MAX, "DELE", err) < 0) {
			rc = -1;
			break;
		}
		marked++;
	}
	free(l.v);
	/*
	 * QUIT commits the DELEs (RFC 1939 §6).  Sent by us, not left to
	 * curl_easy_cleanup(), to see the +OK: only then are they done.  After
	 * a failed transfer the connection may be gone, and with it the marks;
	 * QUIT is tried all the same, as the callback's stop leaves it sound.
	 */
	if (marked) {
		struct herr e2;

		herr_clear(&e2);
		f->our_quit = 1;
		if (fetch_perform(f, "", "QUIT", 1, RESPONSE_MAX, "QUIT", &e2) < 0) {
			if (rc == 0)
				herr_set(err, EX_TEMPFAIL, e2.where, "%s; so the %zu messages "
				         "marked deleted stay and will be read again next time",
				         e2.msg, marked);
			return -1;
		}
		st->done += marked;
	}
	return rc;
}

int
mailbox_fetch_each(const struct mailbox_opts *o, mailbox_fn fn, void *ctx,
                   struct mailbox_stats *st, struct herr *err)
{
	struct mailbox_opts opts = *o;
	struct mailbox_stats local;
	struct fetch *f;
	int rc;

	if (!st)
		st = &local;
	memset(st, 0, sizeof *st);
	if (opts.timeout_s <= 0)
		opts.timeout_s = MAILBOX_TIMEOUT_DEFAULT;
	if (!opts.max_message)
		opts.max_message = MAILBOX_MAX_DEFAULT;
	if (!(f = calloc(1, sizeof *f)) || !(f->curl = curl_easy_init())) {
		free(f);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	f->max_message = opts.max_message;
	buf_init(&f->body, RESPONSE_MAX);
	rc = fetch_setup(f, &opts, err);
	if (rc == 0)
		rc = f->pop3 ? pop3_each(f, fn, ctx, st, err) : imap_each(f, fn, ctx, st, err);
	/* LOGOUT (IMAP), or a QUIT that meets a closed connection (POP3) */
	curl_easy_cleanup(f->curl);
	buf_free(&f->body);
	free(f);
	return rc;
}
