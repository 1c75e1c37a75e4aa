/*
 * config.c - `herald config check`: every problem with the configuration at
 * once, each with its file and line, plus what it would use.
 *
 * It checks the configuration, not whether `herald init` has run: before
 * init, a database and token secret that do not exist yet are a note, not a
 * problem, as long as the directories they go in let init create them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/dkim.h"
#include "herald/token.h"

const char cmd_config_usage[] =
	"usage: herald config check\n"
	"\n"
	"Read the configuration, report every problem with its line, warn about\n"
	"risky settings, and check that the database and token secret are usable.\n"
	"Before 'herald init' has created them, it says so in a note and checks\n"
	"that init can.  Exit status 0 when the configuration is usable, 78\n"
	"(EX_CONFIG) when not.  The SMTP password is never printed.\n";

/* 1 when `path` does not exist (and nothing else stops us knowing). */
static int
missing(const char *path)
{
	return access(path, F_OK) < 0 && errno == ENOENT;
}

/* `path` does not exist yet: can `herald init` create it?  Prints the
 * error and returns 1 when its directory is missing or not writable. */
static int
check_creatable(const char *what, const char *path)
{
	char *dir = strdup(path), *slash;
	int bad = 0;

	if (!dir) {
		fprintf(stderr, "error: out of memory\n");
		return 1;
	}
	if (!(slash = strrchr(dir, '/')))
		strcpy(dir, ".");
	else
		slash[slash == dir] = '\0'; /* "/x" keeps its "/" */
	if (access(dir, W_OK | X_OK) < 0) {
		fprintf(stderr, "error: %s %s cannot be created: directory %s: %s\n", what, path,
		        dir, strerror(errno));
		bad = 1;
	}
	free(dir);
	return bad;
}

/* Load the DKIM keys as a send would, and say what DMARC will think. */
static int
check_dkim(const struct config *c, int quiet)
{
	struct dkim_signer *s;
	struct herr err;
	char warning[256];
	int bad = 0;

	if (!c->dkim_key) {
		fprintf(stderr, "warning: no [dkim] private_key: mail goes out unsigned, which Gmail "
		        "and Yahoo reject or file as spam for bulk senders (see 'herald dkim keygen')\n");
		return 0;
	}
	if (dkim_signer_new(&s, &err) < 0)
		return 1;
	herr_clear(&err);
	if (dkim_signer_add_key(s, DKIM_RSA_SHA256, c->dkim_domain, c->dkim_selector,
	                        c->dkim_key, warning, &err) < 0) {
		fprintf(stderr, "error: [dkim] private_key: %s%s%s\n", err.where,
		        err.where[0] ? ": " : "", err.msg);
		bad = 1;
	} else if (warning[0])
		fprintf(stderr, "warning: [dkim] private_key: %s\n", warning);
	if (c->dkim_ed_key) {
		herr_clear(&err);
		if (dkim_signer_add_key(s, DKIM_ED25519_SHA256, c->dkim_domain, c->dkim_ed_selector,
		                        c->dkim_ed_key, warning, &err) < 0) {
			fprintf(stderr, "error: [dkim] ed25519_private_key: %s%s%s\n", err.where,
			        err.where[0] ? ": " : "", err.msg);
			bad = 1;
		}
	}
	dkim_signer_free(s);
	if (!dkim_aligned(c->dkim_domain, c->from.domain))
		fprintf(stderr, "warning: [dkim] domain %s does not align with the From domain %s: "
		        "DMARC passes only when the signing domain and the From domain share an "
		        "organizational domain\n", c->dkim_domain, c->from.domain);
	(void)quiet;
	return bad;
}

int
cmd_config(int argc, char **argv, struct cmd_env *env)
{
	struct token_key key;
	size_t i;
	int rc, bad = 0, no_db = 0, no_secret = 0;

	if (argc != 2 || strcmp(argv[1], "check"))
		return cmd_usage_error(cmd_config_usage, "expected 'config check'");
	if (config_locate(env->config_arg, env->config_path, sizeof env->config_path,
	                  &env->err) < 0)
		return -1;
	rc = config_load(env->config_path, &env->cfg, &env->err);
	for (i = 0; i < env->cfg.n_problems; i++)
		fprintf(stderr, "error: %s\n", env->cfg.problems[i]);
	for (i = 0; i < env->cfg.n_warnings; i++)
		fprintf(stderr, "warning: %s\n", env->cfg.warnings[i]);
	if (rc < 0 && !env->cfg.n_problems) {
		/* could not even read it */
		config_free(&env->cfg);
		return -1;
	}
	if (rc == 0) {
		/* Before `herald init`: nothing to open yet, only to create. */
		if ((no_db = missing(env->cfg.db_path)))
			bad |= check_creatable("database", env->cfg.db_path);
		else if (db_open(env->cfg.db_path, DB_OPEN_EXISTING, env->cfg.db_busy_timeout_ms,
		                 &env->db, &env->err) < 0) {
			fprintf(stderr, "error: %s: %s\n", env->err.where, env->err.msg);
			bad = 1;
		}
		herr_clear(&env->err);
		/* A database without its secret is broken; before init, both are
		 * missing (and one unusable directory is reported once). */
		if (no_db && (no_secret = missing(env->cfg.secret_file))) {
			if (!bad)
				bad |= check_creatable("token secret", env->cfg.secret_file);
		} else if (token_key_load(env->cfg.secret_file, &key, &env->err) < 0) {
			fprintf(stderr, "error: %s: %s\n", env->err.where, env->err.msg);
			bad = 1;
		}
		explicit_bzero(&key, sizeof key);
		bad |= check_dkim(&env->cfg, env->quiet);
		if (no_db && !bad && !env->quiet)
			fprintf(stderr, "note: the database %s does not exist yet; "
			        "'herald init' creates it%s%s%s\n", env->cfg.db_path,
			        no_secret ? " (and the token secret " : "",
			        no_secret ? env->cfg.secret_file : "", no_secret ? ")" : "");
	}
	if (rc == 0 && !bad && !env->quiet) {
		printf("%s: OK\n", env->config_path);
		if (no_db)
			printf("  database   %s (not created yet: run 'herald init')\n",
			       env->cfg.db_path);
		else
			printf("  database   %s (schema version %d)\n", env->cfg.db_path,
			       db_schema_version(env->db));
		for (i = 0; i < env->cfg.n_relays; i++) {
			const struct config_relay *r = &env->cfg.relays[i];

			printf("  relay      %s (starttls %s, user %s, %ld connections",
			       r->url,
			       r->starttls == CONFIG_STARTTLS_REQUIRED ? "required" :
			       r->starttls == CONFIG_STARTTLS_OPTIONAL ? "optional" : "never",
			       r->username ? r->username : "none", r->connections);
			if (r->rate > 0)
				printf(", %g/s", r->rate);
			if (r->max_per_hour)
				printf(", %ld/hour", r->max_per_hour);
			if (r->max_per_day)
				printf(", %ld/day", r->max_per_day);
			printf(")%s%s%s\n", i ? " [smtp." : "", i ? r->name : "", i ? "]" : "");
		}
		printf("  from       %s\n", env->cfg.sender_from);
		printf("  return     %s\n", env->cfg.return_addr.ascii);
		printf("  links      %s\n", env->cfg.base_url);
		if (env->cfg.dkim_key)
			printf("  dkim       d=%s s=%s%s%s\n", env->cfg.dkim_domain,
			       env->cfg.dkim_selector, env->cfg.dkim_ed_key ? ", ed25519 s=" : "",
			       env->cfg.dkim_ed_key ? env->cfg.dkim_ed_selector : "");
	}
	db_close(env->db);
	env->db = NULL;
	config_free(&env->cfg);
	if (rc < 0 || bad) {
		herr_set(&env->err, EX_CONFIG, NULL, "configuration is not usable");
		fprintf(stderr, "herald config: %s\n", env->err.msg);
		return EX_CONFIG;
	}
	return 0;
}
