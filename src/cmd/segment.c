/*
 * segment.c - `herald segment create|ls|show|rm|count`: saved segments and
 * counting who a segment matches.  The language and the storage are
 * segment.h's; this file parses argv, calls it and prints.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/list.h"
#include "herald/segment.h"

const char cmd_segment_usage[] =
	"usage: herald segment create NAME --where EXPR [--description TEXT] [--force]\n"
	"       herald segment ls [--json]\n"
	"       herald segment show NAME [--json]\n"
	"       herald segment rm NAME\n"
	"       herald segment count NAME [--list LIST]\n"
	"       herald segment count --where EXPR [--list LIST]\n"
	"\n"
	"A segment is a filter over subscribers, e.g.\n"
	"  attr.role in (\"Social worker\", \"Team manager\") and engaged 180d\n"
	"  email ends_with \"@example.gov.uk\" and not bounced_soft_within 30d\n"
	"Terms: attr.KEY OP VALUE (= != < <= > >=), attr.KEY [not] in (...),\n"
	"attr.KEY starts_with|ends_with \"x\", exists attr.KEY, name and email with\n"
	"the same operators, list NAME, engaged SPAN, received SPAN,\n"
	"bounced_soft_within SPAN, subscribed_within SPAN, subscribed_before DATE;\n"
	"not, and, or, parentheses.  \"Text\" compares without regard to case, 42\n"
	"as a number, 2025-01-31 as a date; SPAN is 30d, 12h or 2w.  A saved\n"
	"segment is evaluated again each time it is used.  count prints how many\n"
	"active subscribers match (with --list, how many of that list's audience);\n"
	"'herald sub ls --where EXPR' lists them.  NAME follows the rule of list\n"
	"names; create --force replaces a segment of that name.\n";

static json_t *
def_json(const struct segment_def *d)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", d->name, "expr", d->expr,
	                 "description", d->description, "created_at", (json_int_t)d->created_at,
	                 "updated_at", (json_int_t)d->updated_at);
}

static int
segment_create_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "where", required_argument, NULL, 'w' },
		{ "description", required_argument, NULL, 'd' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *expr = NULL, *desc = "";
	int ch, force = 0, replaced;

	while ((ch = getopt_long(argc, argv, "w:d:", opts, NULL)) != -1) {
		switch (ch) {
		case 'w': expr = optarg; break;
		case 'd': desc = optarg; break;
		case 'f': force = 1; break;
		default: return cmd_usage(cmd_segment_usage, 1);
		}
	}
	if (optind + 1 != argc)
		return cmd_usage_error(cmd_segment_usage, "segment create needs exactly one NAME");
	if (!expr)
		return cmd_usage_error(cmd_segment_usage, "segment create needs --where EXPR");
	if (segment_save(env->db, argv[optind], expr, desc, force, &replaced, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("%s segment '%s'\n", replaced ? "replaced" : "created", argv[optind]);
	return 0;
}

struct ls_ctx {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	int     n;
};

static int
print_def(void *ctx, const struct segment_def *d)
{
	struct ls_ctx *c = ctx;

	if (c->json.on)
		return cmd_json_rows_add(&c->json, def_json(d));
	if (c->n++ == 0)
		printf("%-24s %s\n", "NAME", "EXPRESSION");
	printf("%-24s %s\n", d->name, d->expr);
	if (d->description[0])
		printf("%-24s   (%s)\n", "", d->description);
	return 0;
}

static int
segment_ls_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct ls_ctx c = { { argc == 2, 0, &env->err }, 0 };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_segment_usage, "segment ls takes only --json");
	if (segment_each_saved(env->db, print_def, &c, &env->err) < 0) {
		if (!env->err.code)
			herr_set(&env->err, EX_OSERR, NULL, "out of memory");
		return -1;
	}
	if (c.json.on)
		return cmd_json_rows_end(&c.json);
	if (!c.n && !env->quiet)
		printf("no segments yet; create one with 'herald segment create NAME --where EXPR'\n");
	return 0;
}

static int
segment_show_cmd(int argc, char **argv, struct cmd_env *env)
{
	struct segment_def d;
	const char *name;
	char t[32];
	int json = 0, rc;

	if ((rc = cmd_name_arg(cmd_segment_usage, "segment", argc, argv, &name, &json)) != 0)
		return rc;
	if (segment_get(env->db, name, &d, &env->err) < 0)
		return -1;
	if (json)
		return cmd_print_json(def_json(&d));
	printf("segment      %s\n", d.name);
	printf("expression   %s\n", d.expr);
	printf("description  %s\n", d.description[0] ? d.description : "-");
	printf("created      %s\n", cmd_time(d.created_at, t, sizeof t));
	printf("updated      %s\n", cmd_time(d.updated_at, t, sizeof t));
	return 0;
}

static int
segment_rm_cmd(int argc, char **argv, struct cmd_env *env)
{
	const char *name;
	int rc;

	if ((rc = cmd_name_arg(cmd_segment_usage, "segment", argc, argv, &name, NULL)) != 0)
		return rc;
	if (segment_remove(env->db, name, &env->err) < 0)
		return -1;
	if (!env->quiet)
		printf("removed segment '%s'\n", name);
	return 0;
}

static int
segment_count_cmd(int argc, char **argv, struct cmd_env *env)
{
	static const struct option opts[] = {
		{ "where", required_argument, NULL, 'w' },
		{ "list", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *expr = NULL, *list_name = NULL;
	struct segment *seg = NULL;
	struct list l;
	long long n;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "w:l:", opts, NULL)) != -1) {
		switch (ch) {
		case 'w': expr = optarg; break;
		case 'l': list_name = optarg; break;
		default: return cmd_usage(cmd_segment_usage, 1);
		}
	}
	if ((expr && optind != argc) || (!expr && optind + 1 != argc))
		return cmd_usage_error(cmd_segment_usage,
		                       "segment count needs a NAME or --where EXPR, not both");
	l.id = 0;
	if (list_name && list_get(env->db, list_name, &l, &env->err) < 0)
		return -1;
	if (expr)
		rc = segment_compile(env->db, expr, "--where", db_now(), &seg, &env->err);
	else
		rc = segment_compile_saved(env->db, argv[optind], db_now(), &seg, &env->err);
	if (rc < 0)
		return -1;
	rc = segment_count(env->db, seg, l.id, &n, &env->err);
	segment_free(seg);
	if (rc < 0)
		return -1;
	printf("%lld\n", n);
	return 0;
}

int
cmd_segment(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage_error(cmd_segment_usage, "segment needs a verb");
	if (!strcmp(argv[1], "create"))
		return segment_create_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "ls"))
		return segment_ls_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "show"))
		return segment_show_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "rm"))
		return segment_rm_cmd(argc - 1, argv + 1, env);
	if (!strcmp(argv[1], "count"))
		return segment_count_cmd(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_segment_usage, "unknown verb 'segment %s'", argv[1]);
}
