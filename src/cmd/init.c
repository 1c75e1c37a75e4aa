/*
 * init.c - `herald init`: create the database and the token secret beside
 * it.  An existing database is only checked: its schema changes by
 * `herald db migrate` alone, which backs it up first.
 */
#include <stdio.h>
#include <unistd.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/token.h"

const char cmd_init_usage[] =
	"usage: herald init\n"
	"\n"
	"Create the database named by [database] path with the whole schema, and\n"
	"the token secret ([web] secret_file, mode 0600), each if it does not\n"
	"exist.  Safe to run again: an existing database is checked, not changed\n"
	"(an older schema is upgraded by `herald db migrate`).\n";

int
cmd_init(int argc, char **argv, struct cmd_env *env)
{
	int existed, created;

	(void)argv;
	if (argc > 1)
		return cmd_usage_error(cmd_init_usage, "init takes no arguments");
	existed = access(env->cfg.db_path, F_OK) == 0;
	if (cmd_open_db(env, DB_OPEN_CREATE) < 0)
		return -1;
	if ((created = token_key_create(env->cfg.secret_file, &env->err)) < 0)
		return -1;
	if (!env->quiet) {
		printf("%s database %s (schema version %d)\n", existed ? "checked" : "created",
		       env->cfg.db_path, db_schema_version(env->db));
		if (created)
			printf("created token secret %s\n", env->cfg.secret_file);
	}
	return 0;
}
