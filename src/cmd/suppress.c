/*
 * suppress.c - `herald suppress add|rm|ls`: addresses and domains herald
 * never mails (suppress.h).  Complaints add themselves; admins add role
 * addresses, legal requests and whole domains.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/subscriber.h"
#include "herald/suppress.h"

const char cmd_suppress_usage[] =
	"usage: herald suppress add ADDRESS|@DOMAIN... [--note TEXT]\n"
	"       herald suppress rm ADDRESS|@DOMAIN...\n"
	"       herald suppress ls [--json]\n"
	"\n"
	"A suppressed address, or any address at a suppressed @DOMAIN, is skipped\n"
	"by every send (also one already running), every import and every\n"
	"sign-up.  Complaints are suppressed by `herald bounce` on their own.\n";

/* add and rm: every pattern or none (one transaction). */
static int
change(int argc, char **argv, struct cmd_env *env, int add)
{
	static const struct option opts[] = {
		{ "note", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *note = "";
	int ch, i, done, n = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n' && add)
			note = optarg;
		else
			return cmd_usage(cmd_suppress_usage, 1);
	}
	if (optind >= argc)
		return cmd_usage_error(cmd_suppress_usage, "suppress %s: no ADDRESS or @DOMAIN given",
		                       add ? "add" : "rm");
	if (subscriber_check_text("note", note, 500, &env->err) < 0)
		return -1;
	if (db_begin(env->db, &env->err) < 0)
		return -1;
	for (i = optind; i < argc; i++) {
		if ((add ? suppress_add(env->db, argv[i], "manual", note, &done, &env->err)
		         : suppress_remove(env->db, argv[i], &done, &env->err)) < 0) {
			db_rollback(env->db);
			return -1;
		}
		n += done;
		if (!env->quiet)
			printf("%s: %s\n", argv[i],
			       add ? (done ? "suppressed" : "already suppressed")
			           : (done ? "no longer suppressed" : "was not suppressed"));
	}
	if (db_commit(env->db, &env->err) < 0)
		return -1;
	return 0;
}

struct ls_ctx {
	struct cmd_json_rows json;  /* --json: rows as they come (cmd.h) */
	int     n;
};

static int
print_one(void *ctx, const struct suppression *s)
{
	struct ls_ctx *c = ctx;
	char when[32];

	if (c->json.on)
		return cmd_json_rows_add(&c->json,
		           json_pack("{s:s, s:s, s:s, s:I}", "pattern", s->pattern, "reason",
		                     s->reason, "note", s->note, "created_at",
		                     (json_int_t)s->created_at));
	if (c->n++ == 0)
		printf("%-40s %-12s %-16s %s\n", "PATTERN", "REASON", "SINCE", "NOTE");
	printf("%-40s %-12s %-16s %s\n", s->pattern, s->reason,
	       cmd_time(s->created_at, when, sizeof when), s->note);
	return 0;
}

static int
list_all(int argc, char **argv, struct cmd_env *env)
{
	struct ls_ctx c = { { argc == 2, 0, &env->err }, 0 };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cmd_usage_error(cmd_suppress_usage, "suppress ls takes only --json");
	if (suppress_each(env->db, print_one, &c, &env->err) < 0)
		return -1;
	if (c.json.on)
		return cmd_json_rows_end(&c.json);
	if (!c.n && !env->quiet)
		printf("nothing is suppressed\n");
	return 0;
}

int
cmd_suppress(int argc, char **argv, struct cmd_env *env)
{
	if (argc < 2)
		return cmd_usage(cmd_suppress_usage, 1);
	if (!strcmp(argv[1], "add"))
		return change(argc - 1, argv + 1, env, 1);
	if (!strcmp(argv[1], "rm"))
		return change(argc - 1, argv + 1, env, 0);
	if (!strcmp(argv[1], "ls"))
		return list_all(argc - 1, argv + 1, env);
	return cmd_usage_error(cmd_suppress_usage, "suppress: '%s' is not add, rm or ls", argv[1]);
}
