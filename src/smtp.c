/*
 * smtp.c - one SMTP connection driven by libcurl (see smtp.h).
 *
 * RFCs: 5321 (SMTP; §4.2 replies, §4.5.3.2 timeouts), 3207 (STARTTLS),
 * 4954 (AUTH), 2034/3463 (enhanced status codes, kept in the reply text).
 */
#include "herald/smtp.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/curltrace.h"

struct smtp_conn {
	struct curltrace trace;  /* protocol lines to note_command/note_reply */
	CURL  *curl;
	char   errbuf[CURL_ERROR_SIZE];
	long   connects;
	/* per transfer */
	const char *msg;
	size_t      len, off;
	enum smtp_stage stage;
	int         data_accepted; /* saw 354 to DATA: the next reply ends the data */
	struct smtp_result *r;
	int         reply_continues; /* previous line was "NNN-..." */
	struct smtp_result result;   /* of the last transfer */
	struct curl_slist *rcpts;
	struct smtp_probe *probe;    /* smtp_probe(): what EHLO offered */
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

static size_t
read_cb(char *dst, size_t size, size_t nmemb, void *ud)
{
	struct smtp_conn *c = ud;
	size_t want = size * nmemb, left = c->len - c->off;

	if (want > left)
		want = left;
	memcpy(dst, c->msg + c->off, want);
	c->off += want;
	return want;
}

static void
note_command(void *ctx, const char *p, size_t n)
{
	struct smtp_conn *c = ctx;
	/* Only the verb is looked at: never copy what follows AUTH. */
	if (n >= 4 && !strncasecmp(p, "EHLO", 4))
		c->stage = SMTP_STAGE_EHLO;
	else if (n >= 4 && !strncasecmp(p, "HELO", 4))
		c->stage = SMTP_STAGE_EHLO;
	else if (n >= 8 && !strncasecmp(p, "STARTTLS", 8))
		c->stage = SMTP_STAGE_STARTTLS;
	else if (n >= 4 && !strncasecmp(p, "AUTH", 4))
		c->stage = SMTP_STAGE_AUTH;
	else if (n >= 4 && !strncasecmp(p, "MAIL", 4))
		c->stage = SMTP_STAGE_MAIL;
	else if (n >= 4 && !strncasecmp(p, "RCPT", 4))
		c->stage = SMTP_STAGE_RCPT;
	else if (n >= 4 && !strncasecmp(p, "DATA", 4))
		c->stage = SMTP_STAGE_DATA;
	else if (n >= 4 && !strncasecmp(p, "QUIT", 4))
		c->stage = SMTP_STAGE_QUIT;
	/* base64 continuation lines of AUTH leave the stage at AUTH */
}

/* smtp_probe()'s view of one reply line: the EHLO keywords (RFC 5321
 * §4.1.1.1, one per line after the first), STARTTLS's 220, AUTH's 235. */
static void
note_probe(struct smtp_probe *pr, enum smtp_stage stage, int code, const char *p, size_t n)
{
	const char *kw = p + 4;
	size_t kn = n > 4 ? n - 4 : 0;

	if (stage == SMTP_STAGE_EHLO && code == 250) {
		if (!pr->ehlo[0])
			snprintf(pr->ehlo, sizeof pr->ehlo, "%.*s", (int)n, p);
		if (kn >= 8 && !strncasecmp(kw, "STARTTLS", 8) && (kn == 8 || kw[8] == ' '))
			pr->starttls_offered = 1;
		if (kn >= 4 && !strncasecmp(kw, "AUTH", 4) && (kn == 4 || kw[4] == ' ' || kw[4] == '='))
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
	size_t used, take;
	int code;

	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (n < 3 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]))
		return;
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (c->stage == SMTP_STAGE_QUIT)
		return; /* the goodbye says nothing about the message */
	if (c->stage == SMTP_STAGE_DATA && c->data_accepted)
		c->stage = SMTP_STAGE_EOD;
	if (c->stage == SMTP_STAGE_DATA && code == 354) {
		c->data_accepted = 1;
	}
	if (c->stage == SMTP_STAGE_CONNECT)
		c->stage = SMTP_STAGE_GREETING;
	if (c->probe)
		note_probe(c->probe, c->stage, code, p, n);
	/* EHLO's multi-line capability list is not worth keeping */
	if (c->stage == SMTP_STAGE_EHLO && code / 100 == 2)
		return;
	if (!c->reply_continues || code != r->code) {
		r->reply[0] = '\0';
		r->code = code;
	}
	r->stage = c->stage;
	used = strlen(r->reply);
	if (used && used < sizeof r->reply - 4) {
		memcpy(r->reply + used, " / ", 3);
		used += 3;
	}
	take = n;
	if (take > sizeof r->reply - 1 - used)
		take = sizeof r->reply - 1 - used;
	for (size_t i = 0; i < take; i++)
		r->reply[used + i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	r->reply[used + take] = '\0';
	c->reply_continues = n > 3 && p[3] == '-';
}

int
smtp_conn_new(const struct config_relay *cfg, struct smtp_conn **out, struct herr *err)
{
	struct smtp_conn *c;
	char url[1200], password[1024];
	int have_pw;

	*out = NULL;
	if (!(c = calloc(1, sizeof *c)) || !(c->curl = curl_easy_init())) {
		free(c);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	/* The URL path is what libcurl sends in EHLO (its "local domain"). */
	if (cfg->helo && !strchr(strstr(cfg->url, "://") + 3, '/'))
		snprintf(url, sizeof url, "%s/%s", cfg->url, cfg->helo);
	else
		snprintf(url, sizeof url, "%s", cfg->url);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, cfg->connect_timeout);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, cfg->timeout);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, c);
	c->trace = (struct curltrace){ note_command, note_reply, c };
	curltrace_attach(c->curl, &c->trace);
	if (!strncasecmp(cfg->url, "smtp://", 7))
		curl_easy_setopt(c->curl, CURLOPT_USE_SSL,
		                 cfg->starttls == CONFIG_STARTTLS_REQUIRED ? (long)CURLUSESSL_ALL :
		                 cfg->starttls == CONFIG_STARTTLS_OPTIONAL ? (long)CURLUSESSL_TRY :
		                 (long)CURLUSESSL_NONE);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, cfg->tls_verify ? 1L : 0L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, cfg->tls_verify ? 2L : 0L);
	if (cfg->ca_file)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, cfg->ca_file);
	if (cfg->username) {
		have_pw = config_smtp_password(cfg, password, sizeof password, err);
		if (have_pw < 0) {
			smtp_conn_free(c);
			return -1;
		}
		curl_easy_setopt(c->curl, CURLOPT_USERNAME, cfg->username);
		curl_easy_setopt(c->curl, CURLOPT_PASSWORD, password);
		explicit_bzero(password, sizeof password);
	}
	*out = c;
	return 0;
}

void
smtp_conn_free(struct smtp_conn *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->rcpts);
	free(c);
}

long
smtp_conn_connects(const struct smtp_conn *c)
{
	return c->connects;
}

/*
 * What the answer means for this message, and for the send.  The step a
 * failure happened at decides whose problem it is: before MAIL FROM
 * (connecting, greeting, EHLO, STARTTLS, AUTH) and at MAIL FROM it is the
 * relay's or our configuration's, and says nothing about the recipient, so
 * the send stops and the recipient stays pending; from RCPT on it is this
 * recipient's message.  Within each, 5xx is permanent and everything else
 * (4xx, a timeout, a dropped connection) is temporary (RFC 5321 §4.2.1).
 */
static void
classify(CURLcode rc, struct smtp_result *r)
{
	int cls = r->code / 100;
	int relay_level = r->stage < SMTP_STAGE_RCPT;

	if (rc == CURLE_OK && cls == 2) {
		r->outcome = SMTP_SENT;
		return;
	}
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
		break;
	}
	if (relay_level)
		r->outcome = cls == 5 ? SMTP_FATAL : SMTP_UNREACHABLE;
	else
		r->outcome = cls == 5 ? SMTP_REJECTED : SMTP_DEFERRED;
}

/* Set up one transfer on `c`: the options that change per message. */
static int
begin(struct smtp_conn *c, const char *mail_from, const char *rcpt, const char *msg,
      size_t len)
{
	char from[300], to[300];

	memset(&c->result, 0, sizeof c->result);
	snprintf(from, sizeof from, "<%s>", mail_from);
	snprintf(to, sizeof to, "<%s>", rcpt);
	curl_slist_free_all(c->rcpts);
	if (!(c->rcpts = curl_slist_append(NULL, to))) {
		c->result.outcome = SMTP_DEFERRED;
		snprintf(c->result.detail, sizeof c->result.detail, "out of memory");
		return -1;
	}
	c->msg = msg;
	c->len = len;
	c->off = 0;
	c->r = &c->result;
	/* A reused connection starts at MAIL FROM, so its first reply is
	 * taken for MAIL's; a new one is at CONNECT until the greeting. */
	c->stage = SMTP_STAGE_CONNECT;
	c->data_accepted = 0;
	c->reply_continues = 0;
	c->errbuf[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_MAIL_FROM, from);   /* libcurl copies strings */
	curl_easy_setopt(c->curl, CURLOPT_MAIL_RCPT, c->rcpts);
	curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	return 0;
}

/* After the transfer: classify it and pick out the queue id. */
static void
end(struct smtp_conn *c, CURLcode rc)
{
	struct smtp_result *r = &c->result;
	long n = 0;

	if (curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK)
		c->connects += n;
	c->r = NULL;
	if (rc != CURLE_OK)
		snprintf(r->detail, sizeof r->detail, "%s",
		         c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
	classify(rc, r);
	if (r->outcome == SMTP_SENT) {
		/* "250 2.0.0 Ok: queued as 4Xyz" (Postfix), "250 OK id=1abc"
		 * (Exim): keep the token after "queued as " or "id=". */
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
}

int
smtp_send(struct smtp_conn *c, const char *mail_from, const char *rcpt, const char *msg,
          size_t len, struct smtp_result *r)
{
	if (begin(c, mail_from, rcpt, msg, len) == 0)
		end(c, curl_easy_perform(c->curl));
	*r = c->result;
	return r->outcome == SMTP_SENT ? 0 : -1;
}

int
smtp_probe(const struct config_relay *relay, struct smtp_probe *p, struct herr *err)
{
	struct smtp_conn *c;
	CURLcode rc;

	memset(p, 0, sizeof *p);
	if (smtp_conn_new(relay, &c, err) < 0) {
		p->r.outcome = SMTP_FATAL;
		return -1;
	}
	c->probe = p;
	/* CONNECT_ONLY stops after libcurl's connect phase, which for SMTP is
	 * greeting, EHLO, STARTTLS and AUTH; the handle's cleanup says QUIT */
	curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 0L);
	memset(&c->result, 0, sizeof c->result);
	c->r = &c->result;
	c->stage = SMTP_STAGE_CONNECT;
	c->errbuf[0] = '\0';
	rc = curl_easy_perform(c->curl);
	end(c, rc);
	/* libcurl gives up on its own when EHLO lists no STARTTLS: the step
	 * that failed is STARTTLS all the same */
	if (rc == CURLE_USE_SSL_FAILED)
		c->result.stage = SMTP_STAGE_STARTTLS;
	if (rc != CURLE_OK)
		p->tls = 0; /* a 220 to STARTTLS and then a failed handshake */
	else if (!strncasecmp(relay->url, "smtps://", 8))
		p->tls = 1;
	p->r = c->result;
	c->probe = NULL;
	smtp_conn_free(c);
	return rc == CURLE_OK && p->r.outcome == SMTP_SENT ? 0 : -1;
}

const struct smtp_result *
smtp_conn_result(const struct smtp_conn *c)
{
	return &c->result;
}
