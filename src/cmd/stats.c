/*
 * stats.c - `herald stats ID`: what happened to an issue, as text, as JSON
 * for scripts, and as a self-contained HTML page with a chart.
 *
 * Only the options and the output live here.  The figures and their
 * definitions are report.c's (report.h), and so is the JSON object, a
 * contract for scripts described there (report_json_text()); the page is
 * reportpage.c's (reportpage.h).  The text output is this file's own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/buf.h"
#include "herald/cmd.h"
#include "herald/issue.h"
#include "herald/report.h"
#include "herald/reportpage.h"
#include "herald/subjecttest.h"

const char cmd_stats_usage[] =
	"usage: herald stats ID [--json] [--html FILE]\n"
	"\n"
	"What happened to the issue: deliveries by status (pending, sending, sent,\n"
	"deferred, bounced, failed, skipped), opens (unique and total, human and\n"
	"machine), clicks per link, unsubscribes, bounces and complaints, and the\n"
	"rates against delivered (sent) mail.\n"
	"\n"
	"  --json       print the figures as JSON (the contract for scripts)\n"
	"  --html FILE  also write a self-contained report page with a chart of\n"
	"               opens and clicks per hour over the first 72 hours\n"
	"\n"
	"Definitions: unique counts subscribers, total counts events.  An open is\n"
	"a machine open when the server saw a proxy or prefetching client, or when\n"
	"it came within 2 s of the delivery; human opens are subscribers with at\n"
	"least one other open, and the open rate is unique human opens / delivered.\n"
	"An issue with a subject test also shows each variant's figures and which\n"
	"won and why.  The audience is shown as the send took it; skipped: unengaged\n"
	"counts the people [audience] sunset_after left out of it.\n";

/* --- text ------------------------------------------------------------- */

static void
text_row(const char *label, long long v)
{
	printf("  %-14s %8lld\n", label, v);
}

static void
text_rate(const char *label, double v, const char *how)
{
	printf("  %-18s %5.1f%%  %s\n", label, v * 100.0, how);
}

/* A subject test: each variant's figures, the winner and why. */
static void
print_subject_test(const struct subjecttest *t)
{
	size_t i;

	printf("\nsubject test: %d%% of the audience, %lld held back (%lld sent)\n", t->share,
	       t->holdout, t->holdout_sent);
	printf("  %-8s %10s %8s %12s %8s %9s %10s  %s\n", "variant", "recipients", "sent",
	       "human opens", "clicks", "open rate", "click rate", "subject");
	for (i = 0; i < t->n; i++) {
		const struct subjecttest_variant *v = &t->v[i];

		printf("  %-8zu %10lld %8lld %12lld %8lld %8.1f%% %9.1f%%  %s%s\n", i + 1,
		       v->recipients, v->sent, v->opens_human, v->clicks,
		       v->sent ? 100.0 * (double)v->opens_human / (double)v->sent : 0.0,
		       v->sent ? 100.0 * (double)v->clicks / (double)v->sent : 0.0, v->subject,
		       t->winner == (int)i + 1 ? "  (won)" : "");
	}
	if (t->winner)
		printf("  winner: variant %d: %s\n", t->winner, t->why);
	else
		printf("  winner: not picked yet\n");
}

static void
print_text(const struct issue *is, const struct report *r)
{
	const struct ledger_counts *c = &r->deliveries;
	size_t i;

	struct buf aud = BUF_INIT(1u << 16);

	printf("issue %lld: %s [%s]\n", is->id, is->subject, is->status);
	/* the [tracking] mode the send went under (report.h `tracking`) */
	printf("  %-14s %s%s\n", "tracking", r->tracking_mode[0] ? r->tracking_mode : "not recorded",
	       !strcmp(r->tracking_mode, "anonymous") ? " (events name no one: no unique counts)"
	       : !strcmp(r->tracking_mode, "consent") ? " (only readers who agreed are counted)"
	       : "");
	if (report_audience_text(r, &aud) == 0)
		printf("  audience       %s\n", buf_str(&aud));
	buf_free(&aud);
	text_row("recipients", c->total);
	text_row("sent", c->sent);
	text_row("deferred", c->deferred);
	text_row("bounced", c->bounced);
	text_row("failed", c->failed);
	text_row("skipped", c->skipped);
	/* not in the ledger at all: the sunset rule left them out (audience.h) */
	printf("  %-14s %8lld\n", "skipped: unengaged", r->audience.unengaged);
	text_row("pending", c->pending);
	text_row("sending", c->sending);
	printf("\n");
	printf("  %-14s %8lld  (sent: the rates below are against it)\n", "delivered",
	       r->delivered);
	printf("  %-14s %8lld  total, %lld unique: %lld human, %lld machine\n", "opens",
	       r->opens.total, r->opens.unique, r->opens.human, r->opens.machine);
	printf("  %-14s %8lld  total, %lld unique\n", "clicks", r->clicks.total,
	       r->clicks.unique);
	for (i = 0; i < r->clicks.n_links; i++)
		printf("    link %-4d %8lld  total, %lld unique  %s\n", r->clicks.links[i].n,
		       r->clicks.links[i].total, r->clicks.links[i].unique, r->clicks.links[i].url);
	text_row("unsubscribes", r->unsubscribes);
	/* the answers to "Why are you leaving?" from this issue's mail (prefs.h) */
	printf("    %-12s", "leaving:");
	for (i = 0; i < PREFS_N_REASONS; i++)
		printf("%s %s %lld", i ? "," : "", prefs_reason_label((enum prefs_reason)i),
		       r->leave_reasons[i]);
	printf("\n");
	printf("  %-14s %8lld  hard, %lld soft\n", "bounces", r->bounces.hard, r->bounces.soft);
	text_row("complaints", r->bounces.complaints);
	for (i = 0; i < r->bounces.n_reasons; i++) {
		const struct report_reason *x = &r->bounces.reasons[i];

		printf("    %-9s %-15s %6lld  %-7s %s\n", x->cls, x->reason, x->count,
		       x->status[0] ? x->status : "-", x->diagnostic);
	}
	printf("\n");
	text_rate("open rate", r->rates.open, "unique human opens / delivered");
	text_rate("click rate", r->rates.click, "unique clicks / delivered");
	text_rate("click-to-open", r->rates.click_to_open, "unique clicks / unique opens");
	text_rate("unsubscribe rate", r->rates.unsubscribe, "unsubscribes / delivered");
	text_rate("complaint rate", r->rates.complaint, "complaints / delivered");
	text_rate("bounce rate", r->rates.bounce, "(hard + soft) / (delivered + bounced)");
	if (r->subject_test)
		print_subject_test(r->subject_test);
}

/* --- JSON and HTML ---------------------------------------------------- */

static int
print_json(const struct issue *is, const struct report *r)
{
	char *text = report_json_text(is, r);
	int ok;

	if (!text)
		return cmd_print_json(NULL); /* says "out of memory building JSON" */
	ok = fputs(text, stdout) != EOF && fputc('\n', stdout) != EOF;
	free(text);
	return ok ? 0 : EX_IOERR;
}

static int
write_html(const char *path, const struct issue *is, const struct report *r,
           struct herr *err)
{
	struct buf page = BUF_INIT(REPORTPAGE_MAX);
	FILE *fp;
	int ok;

	if (reportpage_html(is, r, (long long)time(NULL), &page, err) < 0) {
		buf_free(&page);
		return herr_wrap(err, "%s", path);
	}
	if (!(fp = fopen(path, "w"))) {
		buf_free(&page);
		return herr_set(err, EX_CANTCREAT, path, "cannot create: %s", strerror(errno));
	}
	ok = fwrite(page.data, 1, page.len, fp) == page.len;
	if (fclose(fp) != 0)
		ok = 0;
	buf_free(&page);
	if (!ok)
		return herr_set(err, EX_IOERR, path, "cannot write: %s", strerror(errno));
	return 0;
}

/* --- the command ------------------------------------------------------ */

int
cmd_stats(int argc, char **argv, struct cmd_env *env)
{
	struct issue is;
	struct report r;
	const char *ids = NULL, *html = NULL;
	long long id;
	int i, json = 0, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--html")) {
			if (++i == argc)
				return cmd_usage_error(cmd_stats_usage, "--html needs a FILE");
			html = argv[i];
		} else if (!strncmp(argv[i], "--html=", 7) && argv[i][7])
			html = argv[i] + 7;
		else if (!strncmp(argv[i], "--", 2))
			return cmd_usage_error(cmd_stats_usage, "unknown option '%s'", argv[i]);
		else if (!ids)
			ids = argv[i];
		else
			return cmd_usage_error(cmd_stats_usage, "unexpected '%s'", argv[i]);
	}
	if (!ids)
		return cmd_usage_error(cmd_stats_usage, "stats needs an issue ID");
	if (cmd_parse_id(ids, &id, &env->err) < 0 || issue_get(env->db, id, &is, &env->err) < 0)
		return -1;
	if (report_compute(env->db, id, &r, &env->err) < 0) {
		report_clear(&r);
		issue_clear(&is);
		return -1;
	}
	if (html && write_html(html, &is, &r, &env->err) < 0)
		rc = -1;
	else if (json)
		rc = print_json(&is, &r);
	else {
		print_text(&is, &r);
		rc = 0;
	}
	report_clear(&r);
	issue_clear(&is);
	return rc;
}
