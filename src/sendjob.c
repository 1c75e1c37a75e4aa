/*
 * sendjob.c - the send loop: claim a recipient, build their copy, hand it
 * to the relay, record the answer (ledger.h invariants (1)-(6)).
 *
 * Sequential over one reused SMTP connection.  What the relay says decides
 * what happens next: a recipient-level answer (2xx, 4xx, 5xx to RCPT or DATA)
 * is recorded and the loop goes on; a relay-level failure (unreachable,
 * authentication, TLS, 5xx to MAIL FROM) stops the run with the row released
 * untouched, because every following recipient would fail the same way and
 * must not be marked as if they had.
 */
#include "herald/sendjob.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/message.h"
#include "herald/smtp.h"
#include "herald/token.h"

struct mid_ctx {
	const struct token_key *key;
	const char *domain;
	long long issue_id;
};

static int
make_mid(void *ctx, long long subscriber_id, char *out, size_t n)
{
	struct mid_ctx *m = ctx;

	return message_id_for(m->key, m->domain, m->issue_id, subscriber_id, out, n);
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* draft|scheduled -> sending with the snapshot, in one transaction (3). */
static int
start_send(sqlite3 *db, const struct issue *is, long long *n, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_begin(db, err) < 0)
		return -1;
	if (db_prepare(db, &st, "UPDATE issues SET status = 'sending', started_at = ?2 "
	               "WHERE id = ?1 AND status IN ('draft', 'scheduled')", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, is->id);
	sqlite3_bind_int64(st, 2, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "start send");
		goto fail;
	}
	if (sqlite3_changes(db) != 1) {
		herr_set(err, EX_TEMPFAIL, NULL, "issue %lld changed state meanwhile", is->id);
		goto fail;
	}
	if (ledger_snapshot(db, is->id, is->list_id, n, err) < 0)
		goto fail;
	return db_commit(db, err);
fail:
	db_rollback(db);
	return -1;
}

/* (4): sending -> sent once nothing is left to do. */
static int
maybe_finish(sqlite3 *db, long long issue_id, int *finished, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "UPDATE issues SET status = 'sent', finished_at = ?2 "
	               "WHERE id = ?1 AND status = 'sending' AND NOT EXISTS (SELECT 1 FROM "
	               "deliveries WHERE issue_id = ?1 AND status IN ('pending', 'sending', "
	               "'deferred'))", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_int64(st, 2, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "finish send");
	*finished = sqlite3_changes(db) == 1;
	return 0;
}

int
sendjob_run(sqlite3 *db, const struct config *cfg, const struct sendjob_opts *opts,
            struct sendjob_report *rep, struct herr *err)
{
	struct issue is;
	struct list l;
	struct token_key key;
	struct message_ctx mctx;
	struct mid_ctx mid;
	struct ledger *led = NULL;
	struct smtp_conn *conn = NULL;
	struct ledger_row row;
	struct message_out mo;
	struct smtp_result res;
	struct sendjob_progress prog;
	struct buf msg = BUF_INIT(MESSAGE_MAX);
	struct timespec t0;
	struct herr berr;
	long long n = 0, now;
	int rc, ret = -1, have_ctx = 0;

	memset(rep, 0, sizeof *rep);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (issue_get(db, opts->issue_id, &is, err) < 0)
		return -1;
	if (!strcmp(is.status, "sent") || !strcmp(is.status, "cancelled") ||
	    !strcmp(is.status, "paused")) {
		herr_set(err, EX_DATAERR, NULL, "issue %lld is %s%s", is.id, is.status,
		         !strcmp(is.status, "paused") ? "; resume it first" : "");
		goto out;
	}
	if (token_key_load(cfg->secret_file, &key, err) < 0 ||
	    list_get_by_id(db, is.list_id, &l, err) < 0)
		goto out;
	if (message_ctx_init(&mctx, cfg, &key, &is, l.title[0] ? l.title : l.name, err) < 0)
		goto out;
	have_ctx = 1;
	if (smtp_conn_new(&cfg->relays[0], &conn, err) < 0)
		goto out;
	if (!strcmp(is.status, "sending")) {
		if (ledger_recover(db, is.id, &n, err) < 0)
			goto out;
	} else {
		if (start_send(db, &is, &n, err) < 0)
			goto out;
		rep->started = 1;
	}
	if (ledger_open(db, is.id, &led, err) < 0)
		goto out;
	/* Progress counts this run's work against what was left at its start;
	 * counting the table after every message would make a send quadratic. */
	memset(&prog, 0, sizeof prog);
	if (ledger_counts(db, is.id, &rep->counts, err) < 0)
		goto out;
	prog.total = rep->counts.pending + rep->counts.deferred;
	mid.key = &key;
	mid.domain = cfg->message_id_domain;
	mid.issue_id = is.id;

	for (;;) {
		now = db_now();
		rc = ledger_claim(led, now, make_mid, &mid, &row, err);
		if (rc < 0)
			goto out;
		if (rc == 0)
			break;
		struct message_recipient r = { row.subscriber_id, row.email, row.name,
		                               row.attributes };
		herr_clear(&berr);
		if (message_build(&mctx, &r, MESSAGE_ISSUE, now, &msg, &mo, &berr) < 0) {
			char why[HERR_MSG_MAX + 32];

			snprintf(why, sizeof why, "cannot build message: %s", berr.msg);
			rc = ledger_fail(led, row.subscriber_id, why, now, err);
			ledger_row_clear(&row);
			if (rc < 0)
				goto out;
			prog.failed++;
			prog.done++;
			continue;
		}
		smtp_send(conn, cfg->return_addr.ascii, mo.rcpt.ascii, msg.data, msg.len, &res);
		if (res.outcome == SMTP_UNREACHABLE || res.outcome == SMTP_FATAL) {
			ledger_release(led, row.subscriber_id, NULL);
			herr_set(err, res.outcome == SMTP_UNREACHABLE ? EX_TEMPFAIL :
			         (res.stage == SMTP_STAGE_AUTH ? EX_CONFIG : EX_UNAVAILABLE),
			         cfg->relays[0].url, "relay %s at %s: %s%s%s",
			         res.outcome == SMTP_UNREACHABLE ? "unreachable" : "refused the send",
			         smtp_stage_name(res.stage), res.code ? res.reply : res.detail,
			         res.code && res.detail[0] ? " / " : "",
			         res.code ? res.detail : "");
			ledger_row_clear(&row);
			goto out;
		}
		rep->attempted++;
		rc = ledger_mark(led, row.subscriber_id, row.attempts, &res, db_now(), err);
		ledger_row_clear(&row);
		if (rc < 0)
			goto out;
		switch (res.outcome) {
		case SMTP_SENT:     prog.sent++; break;
		case SMTP_REJECTED: prog.bounced++; break;
		default:            prog.deferred++; break;
		}
		prog.done++;
		if (opts->progress) {
			prog.elapsed = seconds_since(&t0);
			opts->progress(opts->ctx, &prog);
		}
	}
	if (maybe_finish(db, is.id, &rep->finished, err) < 0)
		goto out;
	ret = 0;
out:
	if (conn)
		rep->connects = smtp_conn_connects(conn);
	if (ledger_counts(db, is.id, &rep->counts, NULL) == 0)
		rep->recipients = rep->counts.total;
	rep->elapsed = seconds_since(&t0);
	ledger_close(led);
	smtp_conn_free(conn);
	if (have_ctx)
		message_ctx_free(&mctx);
	buf_free(&msg);
	issue_clear(&is);
	explicit_bzero(&key, sizeof key);
	return ret;
}
