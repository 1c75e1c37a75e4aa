/*
 * init.c - `herald init`: create the database (or bring its schema up to
 * date) and the token secret beside it.
 */
#include <stdio.h>
#include <unistd.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/token.h"

const char cmd_init_usage[] =
	"usage: herald init\n"
	"\n"
	"Create the database named by [database] path, or apply pending schema\n"
	"migrations to an existing one, and create the token secret ([web]\n"
	"secret_file, mode 0600) if it does not exist.  Safe to run again.\n";

int
cmd_init(int argc, char **argv, struct cmd_env *env)
{
	int existed, created;

	(void)argv;
	if (argc > 1)
		return cmd_usage_error(cmd_init_usage, "init takes no arguments");
	existed = access(env->cfg.db_path, F_OK) == 0;
	if (cmd_open_db(env, 1) < 0)
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
