/*
 * cli.c - herald's command line: global options, the command table, and the
 * one place where an error becomes a message on stderr and an exit status.
 *
 * Everything a command needs that is common (config, database) is set up
 * here according to the command's flags, as git.c does with RUN_SETUP, so
 * the commands themselves stay small.
 *
 * The program's process-wide libraries are started here once too: libcurl
 * (smtp.c, mailbox.c) by curl_global_init() before anything else runs -
 * it is not thread-safe and must precede every thread (the send workers,
 * `herald serve`'s) - and curl_global_cleanup() when the command is done.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/log.h"
#include "herald/cmd.h"
#include "herald/db.h"
#include "herald/issue.h"

int herald_main(int argc, char **argv);

const struct cmd_def cmd_table[] = {
	{ "init",   cmd_init,   CMD_NEED_CONFIG, "create the database", cmd_init_usage },
	{ "config", cmd_config, 0, "check the configuration file", cmd_config_usage },
	{ "list",   cmd_list,   CMD_NEED_CONFIG | CMD_NEED_DB, "manage mailing lists", cmd_list_usage },
	{ "sub",    cmd_sub,    CMD_NEED_CONFIG | CMD_NEED_DB, "manage subscribers", cmd_sub_usage },
	{ "issue",  cmd_issue,  CMD_NEED_CONFIG | CMD_NEED_DB, "write, preview, schedule issues", cmd_issue_usage },
	{ "send",   cmd_send,   CMD_NEED_CONFIG | CMD_NEED_DB, "send an issue now", cmd_send_usage },
	{ "run",    cmd_run,    CMD_NEED_CONFIG | CMD_NEED_DB, "send what is due (for cron)", cmd_run_usage },
	{ "dkim",   cmd_dkim,   0, "make DKIM keys and their DNS records", cmd_dkim_usage },
	{ "doctor", cmd_doctor, CMD_NEED_CONFIG, "check SPF, DKIM, DMARC, links, relay, bounces",
	  cmd_doctor_usage },
	{ "stats",  cmd_stats,  CMD_NEED_CONFIG | CMD_NEED_DB, "show what happened to an issue", cmd_stats_usage },
	{ "serve",  cmd_serve,  CMD_NEED_CONFIG | CMD_NEED_DB, "the subscriber web endpoint", cmd_serve_usage },
	/* bounce sets itself up: --explain needs neither, and on stdin a
	 * set-up failure must be 75 for the MTA (src/cmd/bounce.c) */
	{ "bounce", cmd_bounce, 0, "read returned mail: bounces, complaints", cmd_bounce_usage },
	{ "suppress", cmd_suppress, CMD_NEED_CONFIG | CMD_NEED_DB,
	  "addresses and domains never to mail", cmd_suppress_usage },
	{ "segment", cmd_segment, CMD_NEED_CONFIG | CMD_NEED_DB, "filters over subscribers", cmd_segment_usage },
	{ "sequence", cmd_sequence, CMD_NEED_CONFIG | CMD_NEED_DB,
	  "series of issues on each subscriber's own clock", cmd_sequence_usage },
	/* db opens the database itself: backup, check and migrate take any
	 * schema version (src/cmd/db.c) */
	{ "db",     cmd_db,     CMD_NEED_CONFIG, "backup, check, migrate, sizes of the database",
	  cmd_db_usage },
	{ "apikey", cmd_apikey, CMD_NEED_CONFIG | CMD_NEED_DB, "keys of the HTTP API", cmd_apikey_usage },
	{ "webhook", cmd_webhook, CMD_NEED_CONFIG | CMD_NEED_DB, "events POSTed to other systems",
	  cmd_webhook_usage },
	{ NULL, NULL, 0, NULL, NULL },
};

static const char main_usage[] =
	"usage: herald [--config FILE] [--quiet] [--now TIME] [--log-format text|json] COMMAND [ARGS]\n"
	"       herald help COMMAND | herald COMMAND --help\n"
	"       herald --version\n";

static void
print_main_help(FILE *fp)
{
	const struct cmd_def *c;

	fputs(main_usage, fp);
	fputs("\ncommands:\n", fp);
	for (c = cmd_table; c->name; c++)
		fprintf(fp, "  %-8s %s\n", c->name, c->summary);
	fputs("\nThe configuration is --config FILE, else $HERALD_CONFIG, else ./herald.conf.\n"
	      "Exit status follows sysexits(3): 0 ok, 64 usage, 65 bad data, 66 missing input,\n"
	      "69 no relay usable, 70 internal error, 75 try again later (another run holds the\n"
	      "lock, database busy), 78 configuration.\n", fp);
}

static const struct cmd_def *
find_command(const char *name)
{
	const struct cmd_def *c;

	for (c = cmd_table; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static int
report(struct cmd_env *env, const char *cmd)
{
	struct herr *e = &env->err;

	if (e->where[0])
		log_event(LOG_ERR, "error", LOG_FIELDS(LOG_S("where", e->where),
		          LOG_I("code", e->code ? e->code : EX_SOFTWARE)),
		          "herald %s: %s: %s", cmd, e->where, e->msg);
	else
		log_event(LOG_ERR, "error", LOG_FIELDS(LOG_I("code", e->code ? e->code : EX_SOFTWARE)),
		          "herald %s: %s", cmd, e->msg);
	return e->code ? e->code : EX_SOFTWARE;
}

static int
wants_help(int argc, char **argv)
{
	int i;

	/* Only `herald CMD --help` and `herald CMD VERB --help`, so that a
	 * value such as a subject "--help" is not taken for the option. */
	for (i = 1; i < argc && i <= 2; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

static int
dispatch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config",  required_argument, NULL, 'c' },
		{ "quiet",   no_argument,       NULL, 'q' },
		{ "now",     required_argument, NULL, 'N' },
		{ "help",    no_argument,       NULL, 'h' },
		{ "version", no_argument,       NULL, 'V' },
		{ "log-format", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_env env;
	const struct cmd_def *cmd;
	long long now;
	int ch, rc;

	memset(&env, 0, sizeof env);
	/* '+': stop at the command name; its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			env.config_arg = optarg;
			break;
		case 'q':
			env.quiet = 1;
			break;
		case 'N':
			if (issue_parse_time(optarg, &now, &env.err) < 0)
				return report(&env, "--now");
			db_set_now(now);
			break;
		case 'h':
			print_main_help(stdout);
			return 0;
		case 'V':
			printf("herald %s\n", HERALD_VERSION);
			return 0;
		case 'L':
			if (!strcmp(optarg, "text"))
				log_set_format(CONFIG_LOG_TEXT, 1);
			else if (!strcmp(optarg, "json"))
				log_set_format(CONFIG_LOG_JSON, 1);
			else {
				fprintf(stderr, "herald: --log-format is text or json, not '%s'\n",
				        optarg);
				return EX_USAGE;
			}
			break;
		default:
			fputs(main_usage, stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		print_main_help(stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[0], "help")) {
		if (argc < 2) {
			print_main_help(stdout);
			return 0;
		}
		if (!(cmd = find_command(argv[1]))) {
			fprintf(stderr, "herald: '%s' is not a command; see 'herald --help'\n", argv[1]);
			return EX_USAGE;
		}
		return cmd_usage(cmd->usage, 0);
	}
	if (!(cmd = find_command(argv[0]))) {
		fprintf(stderr, "herald: '%s' is not a command; see 'herald --help'\n", argv[0]);
		return EX_USAGE;
	}
	if (wants_help(argc, argv))
		return cmd_usage(cmd->usage, 0);

	log_set_command(cmd->name);
	optind = 0; /* reset getopt for the command's own options (glibc) */
	if (cmd_setup(&env, cmd->flags) < 0) {
		rc = report(&env, cmd->name);
		cmd_teardown(&env);
		return rc;
	}
	rc = cmd->fn(argc, argv, &env);
	if (rc < 0)
		rc = report(&env, cmd->name);
	cmd_teardown(&env);
	return rc;
}

int
herald_main(int argc, char **argv)
{
	int rc;

	/* It fails only when memory or the TLS library cannot be set up:
	 * worth trying again later, and `herald bounce` on an MTA's pipe must
	 * then exit 75 so that the MTA keeps the message (src/cmd/bounce.c). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fputs("herald: cannot initialise libcurl (exit 75: try again later)\n", stderr);
		return EX_TEMPFAIL;
	}
	/* SQLite's memory statistics take a process-wide mutex on every
	 * allocation, which herald never reads: off before SQLite starts, so
	 * that serve's threads do not queue on it (sqlite3_config(3)) */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	rc = dispatch(argc, argv);
	log_close();
	curl_global_cleanup();
	return rc;
}
