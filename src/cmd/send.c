/*
 * send.c - `herald send ID`: send an issue now, or resume it.
 */
#include <stdio.h>
#include <unistd.h>

#include "herald/cmd.h"
#include "herald/sendjob.h"

const char cmd_send_usage[] =
	"usage: herald send ID\n"
	"\n"
	"Send issue ID to every confirmed, active subscriber of its list now,\n"
	"whatever its schedule.  One ledger row per recipient records what the\n"
	"relay said.  Running it again resumes an interrupted send and retries\n"
	"deferred recipients whose retry time has come; nobody is mailed twice on\n"
	"purpose.  Exit status 0 when the run went through (see the summary for\n"
	"deferred and bounced recipients), 75 when the relay was unreachable.\n";

static void
progress(void *ctx, const struct sendjob_progress *p)
{
	int *tty = ctx;

	if (*tty && (p->done % 10 == 0 || p->done == p->total))
		fprintf(stderr, "\r%lld/%lld  sent %lld  deferred %lld  bounced %lld  failed %lld  %.0f/s ",
		        p->done, p->total, p->sent, p->deferred, p->bounced, p->failed,
		        p->elapsed > 0 ? (double)p->done / p->elapsed : 0.0);
}

int
cmd_send(int argc, char **argv, struct cmd_env *env)
{
	struct sendjob_opts opts = { 0, NULL, NULL };
	struct sendjob_report rep;
	int tty = isatty(STDERR_FILENO) && !env->quiet, rc;

	if (argc != 2)
		return cmd_usage_error(cmd_send_usage, "send needs exactly one issue ID");
	if (cmd_parse_id(argv[1], &opts.issue_id, &env->err) < 0)
		return -1;
	opts.progress = progress;
	opts.ctx = &tty;
	rc = sendjob_run(env->db, &env->cfg, &opts, &rep, &env->err);
	if (tty)
		fputc('\n', stderr);
	if (rc < 0 && env->err.code == EX_NOINPUT)
		return rc; /* no such issue: nothing to summarise */
	if (!env->quiet || rc < 0)
		fprintf(rc < 0 ? stderr : stdout,
		        "issue %lld: %lld recipients: %lld sent, %lld deferred, %lld bounced, "
		        "%lld failed, %lld skipped, %lld pending; %lld attempted in %.1f s over %ld "
		        "connection%s%s\n",
		        opts.issue_id, rep.recipients, rep.counts.sent, rep.counts.deferred,
		        rep.counts.bounced, rep.counts.failed, rep.counts.skipped,
		        rep.counts.pending + rep.counts.sending, rep.attempted, rep.elapsed,
		        rep.connects, rep.connects == 1 ? "" : "s",
		        rep.finished ? "; issue is sent" : "");
	return rc;
}
