/*
 * send.c - `herald send ID`: send an issue now, or resume it; and the
 * progress display and summary that `herald run` shares.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "herald/log.h"
#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/lock.h"
#include "herald/sendjob.h"
#include "herald/subjecttest.h"

const char cmd_send_usage[] =
	"usage: herald send ID\n"
	"\n"
	"Send issue ID to every confirmed, active subscriber of its list now,\n"
	"whatever its schedule, over [smtp] connections in parallel within the\n"
	"relays' limits.  One ledger row per recipient records what the relay said.\n"
	"Running it again resumes an interrupted send and retries deferred\n"
	"recipients whose retry time has come; nobody is mailed twice on purpose.\n"
	"SIGINT/SIGTERM stop it cleanly (messages in flight are finished); a second\n"
	"signal stops it at once.  Exit status 0 when the run went through (see the\n"
	"summary for deferred and bounced recipients), 69 when no relay could be\n"
	"used, 75 when another herald run or send holds the lock.\n";

void
cmd_progress_init(struct cmd_progress *p, int quiet)
{
	memset(p, 0, sizeof *p);
	p->quiet = quiet;
	p->tty = !quiet && isatty(STDERR_FILENO);
}

void
cmd_progress(void *ctx, const struct sendjob_progress *p)
{
	struct cmd_progress *c = ctx;
	double left = p->total > p->done ? (double)(p->total - p->done) : 0;
	char eta[32] = "-";
	int width = 30, fill;

	if (c->quiet)
		return;
	if (p->rate > 0)
		snprintf(eta, sizeof eta, "%.0fs", left / p->rate);
	if (c->tty) {
		if (p->final && !c->drew)
			return;
		fill = p->total > 0 ? (int)((double)width * (double)p->done / (double)p->total) : 0;
		if (fill > width)
			fill = width;
		fprintf(stderr, "\r[%.*s%*s] %lld/%lld  sent %lld  deferred %lld  bounced %lld  "
		        "failed %lld  %.0f/s  eta %s \033[K",
		        fill, "##############################", width - fill, "", p->done, p->total,
		        p->sent, p->deferred, p->bounced, p->failed, p->rate, eta);
		c->drew = 1;
		if (p->final)
			fputc('\n', stderr);
		return;
	}
	/* Off a terminal (cron, a log file): a line every few seconds. */
	if (p->final || p->elapsed - c->last_line < 5.0)
		return;
	c->last_line = p->elapsed;
	log_event(LOG_INFO, "send.progress", LOG_FIELDS(LOG_I("issue", p->issue_id),
	          LOG_I("done", p->done), LOG_I("total", p->total), LOG_I("sent", p->sent),
	          LOG_I("deferred", p->deferred), LOG_I("bounced", p->bounced),
	          LOG_I("failed", p->failed), LOG_F("rate", p->rate)),
	          "issue %lld: %lld/%lld sent %lld deferred %lld bounced %lld failed %lld "
	          "%.1f/s eta %s", p->issue_id, p->done, p->total, p->sent, p->deferred,
	          p->bounced, p->failed, p->rate, eta);
}

/* The summary's fields in a JSON log line (docs/operations.md, "Logs"). */
#define SUMMARY_FIELDS(id, rep) LOG_FIELDS(LOG_I("issue", (id)), \
	LOG_I("recipients", (rep)->recipients), LOG_I("sent", (rep)->counts.sent), \
	LOG_I("deferred", (rep)->counts.deferred), LOG_I("bounced", (rep)->counts.bounced), \
	LOG_I("failed", (rep)->counts.failed), LOG_I("skipped", (rep)->counts.skipped), \
	LOG_I("pending", (rep)->counts.pending + (rep)->counts.sending), \
	LOG_I("attempted", (rep)->attempted), LOG_F("seconds", (rep)->elapsed), \
	LOG_I("connections", (rep)->connects), LOG_I("finished", (rep)->finished))

void
cmd_send_summary(FILE *fp, long long issue_id, const struct sendjob_report *rep)
{
	static const char *ends[] = {
		[SENDJOB_DRAINED] = "",
		[SENDJOB_STOPPED] = "; stopped by a signal",
		[SENDJOB_DEADLINE] = "; stopped at --max-time",
		[SENDJOB_PAUSED] = "; paused",
		[SENDJOB_CANCELLED] = "; cancelled",
		[SENDJOB_FAILED] = "; stopped: no relay usable",
		[SENDJOB_WINDOW] = "; stopped: the relays' hourly or daily limit is reached",
		[SENDJOB_SLICE] = "; its turn is over, the rest goes next turn",
	};

	char line[512];

	snprintf(line, sizeof line, "issue %lld: %lld recipients: %lld sent, %lld deferred, "
	         "%lld bounced, %lld failed, %lld skipped, %lld pending; %lld attempted in %.1f s "
	         "over %ld connection%s%s%s", issue_id, rep->recipients, rep->counts.sent,
	         rep->counts.deferred, rep->counts.bounced, rep->counts.failed,
	         rep->counts.skipped, rep->counts.pending + rep->counts.sending, rep->attempted,
	         rep->elapsed, rep->connects, rep->connects == 1 ? "" : "s", ends[rep->end],
	         rep->finished ? "; issue is sent" : "");
	/* on stdout it is the command's result, and a copy goes to a
	 * structured log; on stderr (the send failed) it is the log line */
	if (fp == stderr)
		log_event(LOG_WARNING, "send.summary", SUMMARY_FIELDS(issue_id, rep), "%s", line);
	else {
		fprintf(fp, "%s\n", line);
		log_result(LOG_INFO, "send.summary", SUMMARY_FIELDS(issue_id, rep), "%s", line);
	}
	if (rep->end == SENDJOB_WINDOW) {
		char t[32];

		fprintf(fp, "issue %lld: the rest can go from %s (the next 'herald run' after that)\n",
		        issue_id, cmd_time((long long)rep->window_opens, t, sizeof t));
	}
}

/* "3h 59m", "12m", "40s" */
static void
span_text(long long s, char *out, size_t size)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(out, size, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, size, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, size, "%lldm", s / 60);
	else
		snprintf(out, size, "%llds", s);
}

int
cmd_subject_test_step(struct cmd_env *env, long long issue_id)
{
	enum subjecttest_phase phase;
	struct subjecttest t;
	char when[32], left[32];
	long long now = db_now();
	int decided_now, rc = 0;

	if (subjecttest_advance(env->db, issue_id, now, &t, &phase, &decided_now, &env->err) < 0) {
		subjecttest_clear(&t);
		return -1;
	}
	if (phase == SUBJECTTEST_WAITING && !env->quiet) {
		if ((rc = subjecttest_figures(env->db, &t, &env->err)) == 0) {
			span_text(t.done_at + t.wait - now, left, sizeof left);
			printf("issue %lld: subject test: %lld held back; the winner is picked at %s "
			       "(in %s), by the first 'herald run' after that\n", issue_id, t.holdout,
			       cmd_time(t.done_at + t.wait, when, sizeof when), left);
		}
	} else if (decided_now && !env->quiet)
		printf("issue %lld: subject test decided: %s; %lld held back get variant %d: %s\n",
		       issue_id, t.why, t.holdout, t.winner, t.v[t.winner - 1].subject);
	subjecttest_clear(&t);
	return rc;
}

int
cmd_send(int argc, char **argv, struct cmd_env *env)
{
	struct sendjob_opts opts;
	struct sendjob_report rep;
	struct cmd_progress prog;
	struct herald_lock lock;
	char what[32];
	int rc;

	if (argc != 2)
		return cmd_usage_error(cmd_send_usage, "send needs exactly one issue ID");
	memset(&opts, 0, sizeof opts);
	if (cmd_parse_id(argv[1], &opts.issue_id, &env->err) < 0)
		return -1;
	if (lock_acquire(env->cfg.db_path, &lock, &env->err) < 0)
		return -1;
	cmd_progress_init(&prog, env->quiet);
	opts.progress = cmd_progress;
	opts.ctx = &prog;
	opts.stop = cmd_catch_signals();
	snprintf(what, sizeof what, "issue %lld", opts.issue_id);
	opts.warn = env->quiet ? NULL : cmd_warn;
	opts.warn_ctx = what;
	/* a subject test whose wait is over is decided first, so that this
	 * send takes its holdout; after it, say when the test will be */
	if (cmd_subject_test_step(env, opts.issue_id) < 0) {
		lock_release(&lock);
		return -1;
	}
	rc = sendjob_run(env->db, &env->cfg, &opts, &rep, &env->err);
	if (rc < 0 && (env->err.code == EX_NOINPUT || env->err.code == EX_DATAERR) &&
	    !rep.attempted) {
		lock_release(&lock);
		return rc; /* nothing was sent: the error says it all */
	}
	if (!env->quiet || rc < 0)
		cmd_send_summary(rc < 0 ? stderr : stdout, opts.issue_id, &rep);
	if (rc == 0 && cmd_subject_test_step(env, opts.issue_id) < 0)
		rc = -1;
	lock_release(&lock);
	return rc;
}
