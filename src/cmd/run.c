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

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/lock.h"
#include "herald/retention.h"
#include "herald/webhook.h"
#include "herald/sendjob.h"
#include "herald/subjecttest.h"

const char cmd_run_usage[] =
	"usage: herald run [--max-time SECONDS]\n"
	"\n"
	"The cron entry point.  Sends every scheduled issue whose time has come,\n"
	"the lists' welcome mails waiting for new subscribers (list set --welcome),\n"
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
	long long id = 0, max_time = 0;
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
	for (;;) {
		if (*so.stop || (so.deadline && db_now_f() >= so.deadline))
			break;
		if (issue_next_due(env->db, id, db_now(), &id, &env->err) < 0) {
			rc = -1;
			break;
		}
		if (!id)
			break;
		so.issue_id = id;
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
				fprintf(stderr, "herald run: issue %lld: %s\n", id, env->err.msg);
				herr_clear(&env->err);
				refused = 1;
				continue;
			}
			rc = -1; /* the relays or the database: stop the run */
			break;
		}
		if (!env->quiet)
			cmd_send_summary(stdout, id, &rep);
		/* a test whose groups this send finished: when it decides */
		if (cmd_subject_test_step(env, id) < 0) {
			rc = -1;
			break;
		}
		if (rep.end == SENDJOB_STOPPED || rep.end == SENDJOB_DEADLINE ||
		    rep.end == SENDJOB_WINDOW)
			break; /* the relays' windows hold for the other issues too */
	}
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
