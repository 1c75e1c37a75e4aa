/*
 * sequence.c - `herald sequence create|add|ls|show|pause|resume|rm|stats`:
 * series of issues sent on each subscriber's own clock.  The rules and the
 * storage are sequence.h's; this file parses argv, calls it and prints.
 * The sending is `herald run`'s (src/cmd/run.c).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/sequence.h"

const char cmd_sequence_usage[] =
	"usage: herald sequence create NAME --list LIST [--segment NAME | --where EXPR] "
	"[--start-from joined|confirmed|attr.DATE_FIELD] [--include-existing [--backfill]]\n"
	"       herald sequence add NAME FILE.md --after DELAY [--at-local HH:MM]\n"
	"       herald sequence ls [--json]\n"
	"       herald sequence show NAME [--json]\n"
	"       herald sequence pause|resume|rm NAME\n"
	"       herald sequence stats NAME [--json]\n"
	"\n"
	"A sequence sends a series of issues to each subscriber of LIST on their\n"
	"own clock: each step DELAY after their start (0d, 3d, 2w, 12h; -14d for\n"
	"two weeks before a date), by 'herald run'.  The start is when they joined\n"
	"(the default), were confirmed, or the date in an attribute (--start-from\n"
	"attr.renewal_date; a date alone is midnight UTC).  --at-local 09:00 sends\n"
	"the step at the next 09:00 in the subscriber's zone (attribute timezone,\n"
	"else [sequences] timezone).  Subscribers confirmed after create enter;\n"
	"--include-existing enrols those on the list now, starting now, or at\n"
	"their own start with --backfill (each gets only their latest due step).\n"
	"Whoever is no longer in the audience when a step is due (unsubscribed,\n"
	"bounced, suppressed, out of the segment) leaves.  A step added later\n"
	"reaches only those who have not passed its point.  FILE.md is an issue\n"
	"file without lists:, segment:, where: or subject_variants:.  pause keeps\n"
	"everyone's place; rm cancels what is queued and keeps the sent issues.\n";

static json_t *
def_json(const struct sequence_def *d)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:s, s:I}", "name", d->name, "list",
	                 d->list_name, "segment", d->segment[0] ? d->segment : NULL, "where",
	                 d->where[0] ? d->where : NULL, "start_from", d->start_from, "status",
	                 d->status, "created_at", (json_int_t)d->created_at);
}

static void
format_at_local(int at_local, char *out, size_t n)
{
	if (at_local < 0)
		snprintf(out, n, "-");
	else
		snprintf(out, n, "%02d:%02d", (at_local / 60) % 24, at_local % 60);
}

static int
create_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "list", required_argument, NULL, 'l' },
		{ "segment", required_argument, NULL, 's' },
		{ "where", required_argument, NULL, 'w' },
		{ "start-from", required_argument, NULL, 'f' },
		{ "include-existing", no_argument, NULL, 'i' },
		{ "backfill", no_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct sequence_new n;
	long long enrolled;
	int ch;

	memset(&n, 0, sizeof n);
	while ((ch = getopt_long(argc, argv, "l:s:w:f:", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': n.list_name = optarg; break;
		case 's': n.segment = optarg; break;
		case 'w': n.where = optarg; break;
		case 'f': n.start_from = optarg; break;
		case 'i': n.include_existing = 1; break;
		case 'b': n.backfill = 1; break;
		default: return cmd_usage(cmd_sequence_usage, 1);
		}
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_sequence_usage, "sequence create needs exactly one NAME");
	if (!n.list_name)
		return cmd_usage_error(cmd_sequence_usage, "sequence create needs --list LIST");
	n.name = argv[optind];
	if (sequence_create(env->db, &n, NULL, &enrolled, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("created sequence '%s'%s\n", n.name,
		       n.include_existing ? "" : "; subscribers who join from now on enter it");
	if (!env->quiet && n.include_existing)
		printf("enrolled %lld existing subscriber%s\n", enrolled, enrolled == 1 ? "" : "s");
	return 0;
}

static int
add_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "after", required_argument, NULL, 'a' },
		{ "at-local", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *after = NULL;
	long long delay, issue_id;
	int ch, at_local = -1;
	char d[32];

	while ((ch = getopt_long(argc, argv, "a:t:", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': after = optarg; break;
		case 't':
			if (sequence_parse_at_local(optarg, &at_local, &env->err) < 0)
				return cmd_usage_error(cmd_sequence_usage, "%s", env->err.msg);
			break;
		default: return cmd_usage(cmd_sequence_usage, 1);
		}
	}
	if (optind + 2 != argc)
		return cmd_usage_error(cmd_sequence_usage, "sequence add needs NAME and FILE.md");
	if (!after)
		return cmd_usage_error(cmd_sequence_usage, "sequence add needs --after DELAY");
	if (sequence_parse_delay(after, &delay, &env->err) < 0)
		return cmd_usage_error(cmd_sequence_usage, "%s", env->err.msg);
	if (sequence_add_step(env->db, &env->cfg, argv[optind], argv[optind + 1], delay, at_local,
	                      env->quiet ? NULL : cmd_warn, argv[optind + 1], &issue_id,
	                      &env->err) < 0)
		return -1;
	sequence_format_delay(delay, d, sizeof d);
	if (!env->quiet)
		printf("added issue %lld to sequence '%s' at %s\n", issue_id, argv[optind], d);
	return 0;
}

struct ls_ctx {
	json_t *arr;
	int     n;
};

static int
print_def(void *ctx, const struct sequence_def *d)
{
	struct ls_ctx *c = ctx;

	if (c->arr)
		return json_array_append_new(c->arr, def_json(d));
	if (c->n++ == 0)
		printf("%-24s %-16s %-8s %s\n", "NAME", "LIST", "STATUS", "START");
	printf("%-24s %-16s %-8s %s\n", d->name, d->list_name, d->status, d->start_from);
	return 0;
}

static int
ls_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct ls_ctx c = { NULL, 0 };

	(void)argv;
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_sequence_usage, "sequence ls takes only --json");
	if (argc == 2 && !(c.arr = json_array()))
		return herr_set(&env->err, EX_OSERR, NULL, "out of memory");
	if (sequence_each(env->db, print_def, &c, &env->err) < 0) {
		json_decref(c.arr);
		if (!env->err.code)
			herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		return -1;
	}
	if (c.arr)
		return cmd_print_json(c.arr);
	if (!c.n && !env->quiet)
		printf("no sequences yet; create one with 'herald sequence create NAME --list LIST'\n");
	return 0;
}

static json_t *
steps_json(const struct sequence_stats *st, int figures)
{
	json_t *arr = json_array(), *o;
	char d[32], t[16];
	size_t i;

	for (i = 0; arr && i < st->n_steps; i++) {
		const struct sequence_step_stats *s = &st->steps[i];

		sequence_format_delay(s->step.delay, d, sizeof d);
		format_at_local(s->step.at_local, t, sizeof t);
		o = json_pack("{s:s, s:I, s:s?, s:I, s:s, s:s}", "after", d, "delay",
		              (json_int_t)s->step.delay, "at_local",
		              s->step.at_local < 0 ? NULL : t, "issue_id",
		              (json_int_t)s->step.issue_id, "subject", s->step.subject, "status",
		              s->step.status);
		if (o && figures &&
		    json_object_update_new(o, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		                                        "sent", (json_int_t)s->sent, "queued",
		                                        (json_int_t)s->queued, "failed",
		                                        (json_int_t)s->failed, "opens",
		                                        (json_int_t)s->opens, "clicks",
		                                        (json_int_t)s->clicks, "unsubscribes",
		                                        (json_int_t)s->unsubscribes, "at_step",
		                                        (json_int_t)s->at_step)) < 0)
			o = NULL;
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int
show_cmd(int argc, char **argv, struct cmd_env *env, int figures)
{
	struct sequence_def d;
	struct sequence_stats st;
	const char *name;
	json_t *o;
	char t[32], at[16];
	size_t i;
	int json = 0, rc;

	if ((rc = cmd_name_arg(cmd_sequence_usage, "sequence", argc, argv, &name, &json)) != 0)
		return rc;
	if (sequence_get(env->db, name, &d, &env->err) < 0 ||
	    sequence_stats(env->db, name, &st, &env->err) < 0)
		return -1;
	if (json) {
		o = def_json(&d);
		if (o && json_object_update_new(o, json_pack("{s:I, s:I, s:I, s:I, s:o*}",
		                                "enrolled", (json_int_t)st.enrolled, "active",
		                                (json_int_t)st.active, "waiting",
		                                (json_int_t)st.waiting, "left", (json_int_t)st.left,
		                                "steps", steps_json(&st, figures))) < 0) {
			json_decref(o);
			o = NULL;
		}
		sequence_stats_clear(&st);
		if (!o)
			return herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		return cmd_print_json(o);
	}
	printf("sequence     %s (%s)\n", d.name, d.status);
	printf("list         %s\n", d.list_name);
	if (d.segment[0])
		printf("segment      %s\n", d.segment);
	if (d.where[0])
		printf("where        %s\n", d.where);
	printf("start from   %s\n", d.start_from);
	printf("created      %s\n", cmd_time(d.created_at, t, sizeof t));
	printf("enrolled     %lld: %lld active (%lld before the first step), %lld left\n",
	       st.enrolled, st.active, st.waiting, st.left);
	if (!st.n_steps)
		printf("no steps yet; add one with 'herald sequence add %s FILE.md --after 0d'\n",
		       d.name);
	else if (figures)
		printf("%-6s %-6s %-6s %7s %7s %7s %7s %7s %7s  %s\n", "AFTER", "AT", "ISSUE",
		       "AT_STEP", "SENT", "QUEUED", "OPENS", "CLICKS", "UNSUBS", "SUBJECT");
	else
		printf("%-6s %-6s %-6s %-9s %s\n", "AFTER", "AT", "ISSUE", "STATUS", "SUBJECT");
	for (i = 0; i < st.n_steps; i++) {
		const struct sequence_step_stats *s = &st.steps[i];

		sequence_format_delay(s->step.delay, t, sizeof t);
		format_at_local(s->step.at_local, at, sizeof at);
		if (figures)
			printf("%-6s %-6s %-6lld %7lld %7lld %7lld %7lld %7lld %7lld  %s\n", t, at,
			       s->step.issue_id, s->at_step, s->sent, s->queued, s->opens, s->clicks,
			       s->unsubscribes, s->step.subject);
		else
			printf("%-6s %-6s %-6lld %-9s %s\n", t, at, s->step.issue_id, s->step.status,
			       s->step.subject);
	}
	sequence_stats_clear(&st);
	return 0;
}

static int
change_cmd(int argc, char **argv, struct cmd_env *env)
{
	const char *name, *verb = argv[0], *done;
	int rc;

	if ((rc = cmd_name_arg(cmd_sequence_usage, "sequence", argc, argv, &name, NULL)) != 0)
		return rc;
	if (!strcmp(verb, "pause")) {
		rc = sequence_pause(env->db, name, &env->err);
		done = "paused";
	} else if (!strcmp(verb, "resume")) {
		rc = sequence_resume(env->db, name, &env->err);
		done = "resumed";
	} else {
		rc = sequence_remove(env->db, name, &env->err);
		done = "removed";
	}
	if (rc < 0)
		return -1;
	if (!env->quiet)
		printf("%s sequence '%s'\n", done, name);
	return 0;
}

int
cmd_sequence(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage_error(cmd_sequence_usage, "sequence needs a verb");
	if (!strcmp(argv[1], "create"))
		return create_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "add"))
		return add_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "ls"))
		return ls_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "show"))
		return show_cmd(argc - 1, argv + 1, env, 0);
	if (!strcmp(argv[1], "stats"))
		return show_cmd(argc - 1, argv + 1, env, 1);
	if (!strcmp(argv[1], "pause") || !strcmp(argv[1], "resume") || !strcmp(argv[1], "rm"))
		return change_cmd(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_sequence_usage, "unknown verb 'sequence %s'", argv[1]);
}
