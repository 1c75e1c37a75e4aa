/*
 * mailsend.c - one message, one relay at a time (see mailsend.h).
 */
#include "herald/mailsend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/message.h"
#include "herald/ratelimit.h"
#include "herald/relayuse.h"

struct mailsend {
	const struct config *cfg;
	sqlite3             *db;
	struct dkim_signer  *dkim;
	struct smtp_conn   **conn;  /* one per relay, opened on first use */
};

int
mailsend_open(const struct config *cfg, sqlite3 *db, struct mailsend **out, struct herr *err)
{
	struct mailsend *ms = calloc(1, sizeof *ms);

	*out = NULL;
	if (!ms || !(ms->conn = calloc(cfg->n_relays ? cfg->n_relays : 1, sizeof *ms->conn))) {
		free(ms);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	ms->cfg = cfg;
	ms->db = db;
	if (message_dkim_open(cfg, &ms->dkim, err) < 0) {
		mailsend_close(ms);
		return -1;
	}
	*out = ms;
	return 0;
}

void
mailsend_idle(struct mailsend *ms)
{
	size_t i;

	for (i = 0; ms && i < ms->cfg->n_relays; i++) {
		smtp_conn_free(ms->conn[i]);
		ms->conn[i] = NULL;
	}
}

void
mailsend_close(struct mailsend *ms)
{
	if (!ms)
		return;
	mailsend_idle(ms);
	free(ms->conn);
	dkim_signer_free(ms->dkim);
	free(ms);
}

const struct dkim_signer *
mailsend_dkim(const struct mailsend *ms)
{
	return ms->dkim;
}

/* 1 when the relay's hour or day window has no room now. */
static int
window_full(struct mailsend *ms, const struct config_relay *r, double now, struct herr *err)
{
	long n;

	if (r->max_per_hour) {
		if (relayuse_count(ms->db, r->name, now - RATELIMIT_HOUR, &n, err) < 0)
			return -1;
		if (n >= r->max_per_hour)
			return 1;
	}
	if (r->max_per_day) {
		if (relayuse_count(ms->db, r->name, now - RATELIMIT_DAY, &n, err) < 0)
			return -1;
		if (n >= r->max_per_day)
			return 1;
	}
	return 0;
}

int
mailsend_one(struct mailsend *ms, const char *mail_from, const char *rcpt, const char *msg,
             size_t len, struct mailsend_result *res, struct herr *err)
{
	const struct config *cfg = ms->cfg;
	struct herr why;
	size_t i, full = 0;
	double now;
	int rc;

	memset(res, 0, sizeof *res);
	res->smtp.outcome = SMTP_UNREACHABLE;
	herr_clear(&why);
	for (i = 0; i < cfg->n_relays; i++) {
		const struct config_relay *r = &cfg->relays[i];

		now = db_now_f();
		if ((rc = window_full(ms, r, now, err)) < 0)
			return -1;
		if (rc) {
			full++;
			continue;
		}
		if (!ms->conn[i] && smtp_conn_new(r, &ms->conn[i], &why) < 0)
			continue; /* its password cannot be read: the next relay */
		res->relay = r->name;
		smtp_send(ms->conn[i], mail_from, rcpt, msg, len, &res->smtp);
		if (res->smtp.outcome != SMTP_UNREACHABLE &&
		    relayuse_record_once(ms->db, r->name, now, &why) < 0)
			herr_clear(&why); /* the message went; the window counts one less */
		if (res->smtp.outcome == SMTP_SENT)
			return 0;
		/* a fresh connection next time */
		smtp_conn_free(ms->conn[i]);
		ms->conn[i] = NULL;
		/* the next relay only when this one could not be used at all */
		if (res->smtp.outcome != SMTP_UNREACHABLE && res->smtp.outcome != SMTP_FATAL)
			break;
	}
	if (!res->relay) {
		/* no relay was even tried */
		if (why.code)
			return herr_set(err, why.code, rcpt, "not sent: %s", why.msg);
		return herr_set(err, full ? EX_TEMPFAIL : EX_UNAVAILABLE, rcpt, "not sent: %s",
		                full ? "every relay's max_per_hour or max_per_day window is full"
		                     : "no relay is configured");
	}
	return herr_set(err,
	                res->smtp.outcome == SMTP_DEFERRED || res->smtp.outcome == SMTP_UNREACHABLE
	                    ? EX_TEMPFAIL : EX_UNAVAILABLE,
	                rcpt, "not sent (%s at %s): relay %s: %s%s%s",
	                smtp_outcome_name(res->smtp.outcome), smtp_stage_name(res->smtp.stage),
	                res->relay, res->smtp.code ? res->smtp.reply : "",
	                res->smtp.code && res->smtp.detail[0] ? " / " : "", res->smtp.detail);
}
