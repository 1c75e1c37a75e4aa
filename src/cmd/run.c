/*
 * run.c - `herald run`: what cron calls.  Sends every issue whose time has
 * come, resumes every interrupted send, retries deferred deliveries that
 * are due, and exits when nothing more is due.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/log.h"
#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/lock.h"
#include "herald/retention.h"
#include "herald/webhook.h"
#include "herald/sendjob.h"
#include "herald/sequence.h"
#include "herald/subjecttest.h"

const char cmd_run_usage[] =
	"usage: herald run [--max-time SECONDS]\n"
	"\n"
	"The cron entry point.  Sends every scheduled issue whose time has come,\n"
	"the lists' welcome mails waiting for new subscribers (list set --welcome),\n"
	"the sequence steps now due to each subscriber (herald sequence),\n"
	"resumes every interrupted send, and retries deferred deliveries whose\n"
	"retry time has come, one issue after another; exits when nothing more is\n"
	"due, or cleanly at --max-time.  Prints nothing when nothing was due.  Only\n"
	"one run or send at a time: a second exits at once with status 75.  An\n"
	"issue that cannot go (a merge field none of its recipients has) is named\n"
	"on stderr and left scheduled; the others go, and run exits 65.\n"
	"\n"
	"Subject tests: when an issue's test groups have been sent and its\n"
	"test_wait is over, run picks the winning subject (unique clicks per\n"
	"delivered copy, human opens to break a tie) and sends it to the rest;\n"
	"before that it says when it will decide and leaves them alone.\n"
	"\n"
	"Sequences: run first enrols newcomers and queues each subscriber's due\n"
	"step; when campaigns and sequence steps both have mail due, they take\n"
	"turns of 2 seconds, each getting about half of the relays' rate.\n"
	"\n"
	"Retention: after the sends, run removes events, deliveries and inbound\n"
	"mail older than [retention] allows, in batches of 5,000 rows, keeping\n"
	"each issue's figures first so that its stats do not change.\n";

/* [retention]: remove what is too old, say what went (retention.h). */
static int
retention(struct cmd_env *env, const struct sendjob_opts *so)
{
	struct retention_policy p;
	struct retention_report rep;
	int rc;

	retention_policy_from(&env->cfg, &p);
	if (!retention_enabled(&p) || *so->stop)
		return 0;
	p.stop = so->stop;
	p.deadline = so->deadline;
	rc = retention_run(env->db, &p, db_now(), &rep, &env->err);
	if (!env->quiet && (rep.events || rep.deliveries || rep.inbound || rep.kept))
		printf("retention: removed %lld events, %lld deliveries, %lld inbound messages; "
		       "kept the figures of %lld issues; %lld transactions, longest %.1f ms%s\n",
		       rep.events, rep.deliveries, rep.inbound, rep.kept, rep.batches,
		       rep.longest_ms, rep.stopped ? "; stopped, the rest goes next run" : "");
	return rc;
}

/*
 * Rate sharing (sequence.h (6)).  Due work is of two kinds: campaigns
 * (with the lists' welcome mails) and sequence steps.  When both have rows
 * due, they take turns of RUN_SLICE seconds each, every turn a
 * sendjob_run() that stops claiming at its slice's end; with the relays
 * paced by `rate`, each kind gets about half of the rate (less the cost of
 * a turn's start, a few milliseconds and a connection).  When one kind is
 * idle, the other runs without a slice and gets all of it.  A sequence
 * step always runs in slices, so that a campaign whose time comes during a
 * long backlog waits at most one slice.
 */
#define RUN_SLICE 2.0

enum run_kind { RUN_CAMPAIGN, RUN_SEQUENCE };

/* Issues this run is done with: sent to the end, or refused. */
struct run_done {
	long long *ids;
	size_t     n, cap;
};

static int
done_has(const struct run_done *d, long long id)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->ids[i] == id)
			return 1;
	return 0;
}

static int
done_add(struct run_done *d, long long id, struct herr *err)
{
	long long *nv;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		if (!(nv = realloc(d->ids, d->cap * sizeof *nv)))
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		d->ids = nv;
	}
	d->ids[d->n++] = id;
	return 0;
}

/* The next due issue of `kind` after `after` (wrapping round once), not
 * done with in this run; 0 when none. */
static int
next_due(sqlite3 *db, enum run_kind kind, long long after, const struct run_done *done,
         long long *id, struct herr *err)
{
	long long at = after;
	int step, wrapped = 0;

	for (;;) {
		if (issue_next_due(db, at, db_now(), id, err) < 0)
			return -1;
		if (!*id) {
			if (wrapped || !after)
				return 0;
			wrapped = 1;
			at = 0;
			continue;
		}
		if (wrapped && *id > after) {
			*id = 0;
			return 0;
		}
		at = *id;
		if (done_has(done, *id))
			continue;
		if (sequence_is_step(db, *id, &step, err) < 0)
			return -1;
		if (step == (kind == RUN_SEQUENCE))
			return 0;
	}
}

/* Enrol newcomers and queue the sequence steps now due (sequence.h). */
static int
sequences(struct cmd_env *env)
{
	struct sequence_run rep;

	if (sequence_enqueue_due(env->db, &env->cfg, db_now(), &rep, &env->err) < 0)
		return -1;
	if (rep.warning[0])
		log_event(LOG_WARNING, "sequence.warning", NULL, 0, "herald run: %s", rep.warning);
	/* not an error (the default zone serves), so not for --quiet's cron */
	if (rep.bad_zones && !env->quiet)
		log_event(LOG_WARNING, "sequence.unknown_zone",
		          LOG_FIELDS(LOG_I("subscribers", rep.bad_zones)),
		          "herald run: %lld subscriber%s an unknown timezone attribute; "
		          "their steps go at %s time", rep.bad_zones,
		          rep.bad_zones == 1 ? " has" : "s have", env->cfg.sequence_timezone);
	if (!env->quiet && (rep.enrolled || rep.queued || rep.left || rep.passed))
		printf("sequences: %lld enrolled, %lld steps queued, %lld passed over, %lld left\n",
		       rep.enrolled, rep.queued, rep.passed, rep.left);
	return 0;
}

int
cmd_run(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "max-time", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct sendjob_opts so;
	struct sendjob_report rep;
	struct cmd_progress prog;
	struct herald_lock lock;
	struct run_done done = { NULL, 0, 0 };
	long long id = 0, max_time = 0, last[2] = { 0, 0 };
	enum run_kind turn;
	char *end, what[32];
	int ch, rc = 0, refused = 0;

	while ((ch = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		if (ch != 't')
			return cmd_usage(cmd_run_usage, 1);
		errno = 0;
		max_time = strtoll(optarg, &end, 10);
		if (errno || end == optarg || *end || max_time <= 0)
			return cmd_usage_error(cmd_run_usage,
			                       "--max-time wants a number of seconds, not '%s'", optarg);
	}
	if (optind != argc)
		return cmd_usage_error(cmd_run_usage, "run takes no arguments");
	if (lock_acquire(env->cfg.db_path, &lock, &env->err) < 0)
		return -1;
	memset(&so, 0, sizeof so);
	so.stop = cmd_catch_signals();
	if (max_time)
		so.deadline = db_now_f() + (double)max_time;
	cmd_progress_init(&prog, env->quiet);
	so.progress = cmd_progress;
	so.ctx = &prog;
	/* subject tests whose wait is over are decided before the sends, so
	 * that their holdout is due below; the others say when they will be */
	for (id = 0;;) {
		if (subjecttest_next_open(env->db, id, &id, &env->err) < 0) {
			lock_release(&lock);
			return -1;
		}
		if (!id)
			break;
		if (cmd_subject_test_step(env, id) < 0) {
			lock_release(&lock);
			return -1;
		}
	}
	if (sequences(env) < 0) {
		lock_release(&lock);
		return -1;
	}
	for (turn = RUN_CAMPAIGN;;) {
		long long other = 0;

		if (*so.stop || (so.deadline && db_now_f() >= so.deadline))
			break;
		/* whose turn: this kind's next issue, else the other kind's */
		if (next_due(env->db, turn, last[turn], &done, &id, &env->err) < 0 ||
		    next_due(env->db, !turn, last[!turn], &done, &other, &env->err) < 0) {
			rc = -1;
			break;
		}
		if (!id) {
			if (!other)
				break;
			turn = !turn;
			id = other;
			other = 0;
		}
		last[turn] = id;
		so.issue_id = id;
		so.slice_end = other || turn == RUN_SEQUENCE ? db_now_f() + RUN_SLICE : 0;
		snprintf(what, sizeof what, "issue %lld", id);
		so.warn = env->quiet ? NULL : cmd_warn;
		so.warn_ctx = what;
		cmd_progress_init(&prog, env->quiet);
		if (sendjob_run(env->db, &env->cfg, &so, &rep, &env->err) < 0) {
			cmd_send_summary(stderr, id, &rep);
			if (env->err.code == EX_DATAERR) {
				/* this issue cannot go (changed under us, or its
				 * merge fields do not fit its audience): say so, go
				 * on with the next, and exit 65 at the end */
				log_event(LOG_ERR, "issue.refused", LOG_FIELDS(LOG_I("issue", id),
				          LOG_I("code", EX_DATAERR)), "herald run: issue %lld: %s", id,
				          env->err.msg);
				herr_clear(&env->err);
				refused = 1;
				if (done_add(&done, id, &env->err) < 0) {
					rc = -1;
					break;
				}
				continue;
			}
			rc = -1; /* the relays or the database: stop the run */
			break;
		}
		if (!env->quiet && rep.end != SENDJOB_SLICE)
			cmd_send_summary(stdout, id, &rep);
		if (rep.end != SENDJOB_SLICE && done_add(&done, id, &env->err) < 0) {
			rc = -1;
			break;
		}
		/* a test whose groups this send finished: when it decides */
		if (turn == RUN_CAMPAIGN && cmd_subject_test_step(env, id) < 0) {
			rc = -1;
			break;
		}
		if (rep.end == SENDJOB_STOPPED || rep.end == SENDJOB_DEADLINE ||
		    rep.end == SENDJOB_WINDOW)
			break; /* the relays' windows hold for the other issues too */
		if (rep.end == SENDJOB_SLICE)
			turn = !turn;
	}
	free(done.ids);
	/* after the sends, so it never delays one (retention.h) */
	if (rc == 0 && retention(env, &so) < 0)
		rc = -1;
	/* what serve would have delivered, when it is not running (webhook.h);
	 * a receiver that is down is retried at a later run */
	if (rc == 0 && !*so.stop) {
		struct webhook_report hr;

		if (webhook_deliver_due(env->db, &env->cfg, so.stop, 0, &hr, &env->err) < 0)
			rc = -1;
		else if (!env->quiet && (hr.delivered || hr.retried || hr.failed))
			printf("webhooks: %lld delivered, %lld to retry, %lld given up\n",
			       hr.delivered, hr.retried, hr.failed);
	}
	lock_release(&lock);
	return rc == 0 && refused ? EX_DATAERR : rc;
}
