/*
 * serve.c - `herald serve`: run the subscriber web endpoint (web.c) until
 * SIGTERM or SIGINT, then stop cleanly and say what it did.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "herald/log.h"
#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/sendjob.h"
#include "herald/web.h"
#include "herald/webhook.h"
#include "herald/welcome.h"

#define WELCOME_EVERY   2.0   /* seconds between looks for welcome mail to send */
#define WEBHOOK_EVERY   1.0   /* seconds between looks at the webhook outbox */

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
#define WELCOME_BACKOFF 60.0  /* after a relay error or full relay windows */

const char cmd_serve_usage[] =
	"usage: herald serve [--listen ADDR:PORT]\n"
	"\n"
	"Run the web endpoint the mails point at ([web] base_url, behind a TLS\n"
	"reverse proxy): the open pixel /o/TOKEN.gif, click redirects /c/TOKEN/N,\n"
	"unsubscribing (/u/TOKEN, with RFC 8058 one-click), sign-up (POST\n"
	"/subscribe with email, name, list) and its confirmation (/confirm/TOKEN),\n"
	"and the archive of public lists (/archive).  --listen defaults to\n"
	"127.0.0.1:8080; write IPv6 as [::1]:8080; port 0 takes a free port.  Prints\n"
	"\"herald serve: listening on URL\" once it accepts connections.  Opens and\n"
	"clicks are written in batches; SIGTERM or SIGINT stops it: it finishes the\n"
	"requests in flight, sends queued confirmation mails, writes every event\n"
	"and exits 0.  It takes no lock: it runs beside `herald run`, but for\n"
	"sending the lists' welcome mails (list set --welcome), which it does\n"
	"every few seconds under the send lock when `herald run` is not.\n"
	"With [metrics] listen set it also answers GET /metrics there (Prometheus\n"
	"text format) to the addresses in [metrics] allow, and prints \"herald\n"
	"serve: metrics on URL\".\n";

static void
log_line(void *ctx, const char *line)
{
	(void)ctx;
	log_event(LOG_WARNING, "serve.problem", NULL, 0, "herald serve: %s", line);
}

/* Up to the hard limit of descriptors: each connection is one. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
cmd_serve(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct web_opts wo;
	struct web_server *ws;
	struct web_summary sum;
	volatile sig_atomic_t *stop;
	struct welcome_run wr;
	struct webhook_report hr;
	double next_welcome = 0, next_webhook = 0;
	int ch, rc;

	memset(&wo, 0, sizeof wo);
	wo.listen = "127.0.0.1:8080";
	wo.log = log_line;
	while ((ch = getopt_long(argc, argv, "l:", opts, NULL)) != -1) {
		if (ch != 'l')
			return cmd_usage(cmd_serve_usage, 1);
		wo.listen = optarg;
	}
	if (optind != argc)
		return cmd_usage_error(cmd_serve_usage, "serve takes no arguments");
	/* the server opens its own connections, one per thread */
	raise_nofile();
	stop = cmd_catch_signals();
	if (web_start(&env->cfg, &wo, &ws, &env->err) < 0)
		return -1;
	printf("herald serve: listening on %s\n", web_url(ws));
	if (web_metrics_url(ws))
		printf("herald serve: metrics on %s\n", web_metrics_url(ws));
	log_result(LOG_INFO, "serve.start", LOG_FIELDS(LOG_S("url", web_url(ws)),
	           LOG_S("metrics", web_metrics_url(ws))),
	           "herald serve: listening on %s", web_url(ws));
	fflush(stdout);
	while (!*stop) {
		struct timespec ts = { 0, 100 * 1000000L };

		nanosleep(&ts, NULL);
		if (!*stop && db_now_f() >= next_webhook) {
			/* webhook.h: this thread waits on the receivers, never a
			 * request thread; a second's work at most between looks */
			next_webhook = db_now_f() + WEBHOOK_EVERY;
			if (webhook_deliver_due(env->db, &env->cfg, stop, mono_now() + WEBHOOK_EVERY,
			                        &hr, &env->err) < 0) {
				log_event(LOG_WARNING, "webhook.problem", NULL, 0,
				          "herald serve: webhooks: %s", env->err.msg);
				herr_clear(&env->err);
			} else if (hr.retried || hr.failed)
				log_event(LOG_WARNING, "webhook.retry", LOG_FIELDS(
				          LOG_I("delivered", hr.delivered), LOG_I("retried", hr.retried),
				          LOG_I("given_up", hr.failed)),
				          "herald serve: webhooks: %lld delivered, %lld to retry, "
				          "%lld given up", hr.delivered, hr.retried, hr.failed);
		}
		if (*stop || db_now_f() < next_welcome)
			continue;
		next_welcome = db_now_f() + WELCOME_EVERY;
		if (welcome_send_due(env->db, &env->cfg, stop, &wr, &env->err) < 0) {
			/* the rows stay pending: say why, and try again later */
			log_event(LOG_WARNING, "welcome.problem", NULL, 0,
			          "herald serve: welcome mail: %s", env->err.msg);
			herr_clear(&env->err);
			next_welcome = db_now_f() + WELCOME_BACKOFF;
			continue;
		}
		if (wr.end == SENDJOB_WINDOW)
			next_welcome = db_now_f() + WELCOME_BACKOFF;
		if (wr.attempted)
			log_event(LOG_INFO, "welcome.sent", LOG_FIELDS(LOG_I("sent", wr.sent),
			          LOG_I("not_sent", wr.attempted - wr.sent)),
			          "herald serve: welcome mail: %lld sent, %lld not (yet)",
			          wr.sent, wr.attempted - wr.sent);
	}
	rc = web_stop(ws, &sum, &env->err);
	log_event(LOG_INFO, "serve.stop", LOG_FIELDS(LOG_I("requests", (long long)sum.requests),
	          LOG_I("events", sum.events), LOG_I("mails_sent", sum.mails_sent),
	          LOG_I("mails_failed", sum.mails_failed), LOG_I("cut_slow", sum.cut_slow),
	          LOG_I("cut_cap", sum.cut_cap)),
	          "herald serve: stopped: %llu requests served, %lld events written, "
	          "%lld confirmation mails sent, %lld failed; %lld connections cut for slow "
	          "headers, %lld for the per-client cap", sum.requests, sum.events,
	          sum.mails_sent, sum.mails_failed, sum.cut_slow, sum.cut_cap);
	return rc;
}
