/*
 * doctor.c - `herald doctor`: run the deliverability checks (doctor.h) and
 * print one line per result, or a JSON array.
 *
 * Exit status (sysexits): 0 when nothing failed (warnings allowed),
 * EX_DATAERR (65) when a check failed, EX_UNAVAILABLE (69) when DNS gave no
 * answer to a question (then the DNS verdicts are unknown, not failures of
 * the setup), EX_USAGE for bad options, EX_CONFIG for the config file.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/doctor.h"

const char cmd_doctor_usage[] =
	"usage: herald doctor [--json] [--resolver IP[:PORT]] [--only CHECK,...]\n"
	"\n"
	"Check what receivers will check of the sending setup, each check saying\n"
	"pass, warn, fail or skip with what it saw and, unless it passed, the fix:\n"
	"spf (the envelope domain's record allows the relay), dkim (the selector's\n"
	"key in DNS is the configured key's), dmarc (exists, is not p=none, aligns\n"
	"with From), tracking (base_url's host resolves), https (base_url is\n"
	"https), one-click (the List-Unsubscribe URL answers an RFC 8058 POST),\n"
	"relay (EHLO, STARTTLS and AUTH work) and bounce (the [bounce] mailbox\n"
	"can be read).  DNS is asked through --resolver when given, else the\n"
	"system's resolver.  Exits 0 when nothing failed, 65 when a check failed,\n"
	"69 when DNS did not answer.  With --quiet only the lines that did not\n"
	"pass are printed.\n";

static void
print_text(const struct doctor_report *rep, int quiet)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct doctor_result *r = &rep->results[i];

		/* --quiet (cron): only what needs a look, so no mail when all passed */
		if (quiet && r->status == DOCTOR_PASS)
			continue;
		printf("%-4s  %-9s %s\n", doctor_status_name(r->status), r->check, r->saw);
		if (r->fix)
			printf("      fix: %s\n", r->fix);
	}
}

static int
print_json(const struct doctor_report *rep, struct herr *err)
{
	json_t *arr = json_array(), *o;

	if (!arr)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	for (size_t i = 0; i < rep->n; i++) {
		const struct doctor_result *r = &rep->results[i];

		o = json_pack("{s:s, s:s, s:s, s:s?}", "check", r->check, "status",
		              doctor_status_name(r->status), "saw", r->saw, "fix", r->fix);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
	}
	return cmd_print_json(arr);
}

int
cmd_doctor(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "resolver", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct doctor_opts o = { 0 };
	struct doctor_report rep = { 0 };
	int ch, json = 0, failed = 0, unanswered = 0, rc;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'r': o.resolver = optarg; break;
		case 'o':
			if (doctor_checks_parse(optarg, &o.checks, &env->err) < 0)
				return cmd_usage_error(cmd_doctor_usage, "%s", env->err.msg);
			break;
		default: return cmd_usage(cmd_doctor_usage, 1);
		}
	}
	if (optind != argc)
		return cmd_usage_error(cmd_doctor_usage, "unexpected argument '%s'", argv[optind]);
	if (doctor_run(&env->cfg, &o, &rep, &env->err) < 0) {
		doctor_report_free(&rep);
		return -1;
	}
	for (size_t i = 0; i < rep.n; i++) {
		failed |= rep.results[i].status == DOCTOR_FAIL;
		unanswered |= rep.results[i].dns_unanswered;
	}
	rc = json ? print_json(&rep, &env->err) : (print_text(&rep, env->quiet), 0);
	doctor_report_free(&rep);
	if (rc < 0)
		return -1;
	return unanswered ? EX_UNAVAILABLE : failed ? EX_DATAERR : 0;
}
