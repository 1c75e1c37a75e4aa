/*
 * cmd.h - the CLI's subcommands (one file each in src/cmd/) and what cli.c gives them.
 *
 * Adding a command, as git's builtin.h asks:
 *   1. write src/cmd/NAME.c with `int cmd_NAME(int argc, char **argv,
 *      struct cmd_env *env)` and a usage string;
 *   2. declare it below;
 *   3. add one row to `commands[]` in src/cli.c with the setup it needs
 *      (CMD_NEED_CONFIG, CMD_NEED_DB);
 *   4. add a test (tests/integration/) and document it in docs/commands.md
 *      and the man page, docs/herald.1.scd (the tests check the usage lines).
 *
 * A command returns 0 on success, an EX_* code it chose, or -1 after
 * filling env->err, which cli.c prints ("herald: where: message") and turns
 * into the exit status.  Commands print their results to stdout; diagnostics
 * go to stderr.  Nothing below the CLI prints or exits.
 */
#ifndef HERALD_CMD_H
#define HERALD_CMD_H

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>

#include "herald/config.h"
#include "herald/db.h"
#include "herald/herr.h"

enum {
	CMD_NEED_CONFIG = 1 << 0, /* cli.c loads the config before the call */
	CMD_NEED_DB     = 1 << 1, /* ... and opens the database (current schema) */
};

struct cmd_env {
	const char   *config_arg; /* --config, or NULL */
	char          config_path[4096];
	struct config cfg;        /* valid with CMD_NEED_CONFIG */
	int           have_cfg;   /* cfg was loaded: cmd_teardown() frees it */
	sqlite3      *db;         /* valid with CMD_NEED_DB */
	int           quiet;      /* --quiet: only errors */
	struct herr   err;
};

typedef int (*cmd_fn)(int argc, char **argv, struct cmd_env *env);

struct cmd_def {
	const char *name;
	cmd_fn      fn;
	int         flags;
	const char *summary;
	const char *usage;  /* the synopsis lines printed by NAME --help */
};

/* The table in cli.c, ending with a NULL name. */
extern const struct cmd_def cmd_table[];

int cmd_init(int argc, char **argv, struct cmd_env *env);
int cmd_config(int argc, char **argv, struct cmd_env *env);
int cmd_list(int argc, char **argv, struct cmd_env *env);
int cmd_sub(int argc, char **argv, struct cmd_env *env);
int cmd_issue(int argc, char **argv, struct cmd_env *env);
int cmd_send(int argc, char **argv, struct cmd_env *env);
int cmd_stats(int argc, char **argv, struct cmd_env *env);
int cmd_run(int argc, char **argv, struct cmd_env *env);
int cmd_dkim(int argc, char **argv, struct cmd_env *env);
int cmd_doctor(int argc, char **argv, struct cmd_env *env);
int cmd_serve(int argc, char **argv, struct cmd_env *env);
int cmd_bounce(int argc, char **argv, struct cmd_env *env);
int cmd_suppress(int argc, char **argv, struct cmd_env *env);
int cmd_segment(int argc, char **argv, struct cmd_env *env);
int cmd_db(int argc, char **argv, struct cmd_env *env);
int cmd_apikey(int argc, char **argv, struct cmd_env *env);
int cmd_webhook(int argc, char **argv, struct cmd_env *env);
int cmd_sequence(int argc, char **argv, struct cmd_env *env);
/* herald bounce --explain [--why] FILE...: called by cmd_bounce with argv
 * what follows --explain (src/cmd/bounce_explain.c).  Needs no config or
 * database. */
int cmd_bounce_explain(int argc, char **argv, struct cmd_env *env);

extern const char cmd_init_usage[], cmd_config_usage[], cmd_list_usage[],
	cmd_sub_usage[], cmd_issue_usage[], cmd_send_usage[], cmd_stats_usage[],
	cmd_run_usage[], cmd_dkim_usage[], cmd_doctor_usage[], cmd_serve_usage[], cmd_bounce_usage[],
	cmd_suppress_usage[], cmd_segment_usage[], cmd_db_usage[],
	cmd_apikey_usage[], cmd_webhook_usage[], cmd_sequence_usage[];

struct sendjob_progress;
struct sendjob_report;
/* Progress for send and run: a bar on a terminal, a line every 5 s
 * otherwise, nothing with --quiet.  `ctx` is a struct cmd_progress. */
struct cmd_progress {
	int    tty;
	int    quiet;
	double last_line;
	int    drew;
};
void cmd_progress_init(struct cmd_progress *p, int quiet);
void cmd_progress(void *ctx, const struct sendjob_progress *p);
/* The one-line summary of a send of one issue. */
void cmd_send_summary(FILE *fp, long long issue_id, const struct sendjob_report *rep);
/* Move issue_id's subject test on now (subjecttest_advance()) and, unless
 * quiet, say when its winner will be picked or which won and why.  A no-op
 * for an issue without a test.  -1 with env->err set on a database error. */
int cmd_subject_test_step(struct cmd_env *env, long long issue_id);

/* Helpers shared by the commands (src/cmd/common.c). */

/* Print `usage` to stdout (for --help) or stderr (a usage error, returning
 * EX_USAGE). */
int cmd_usage(const char *usage, int is_error);
/* Report a usage error "herald NAME: msg" plus the usage, return EX_USAGE. */
int cmd_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Parse a positive issue id; EX_USAGE message in env->err when not one. */
int cmd_parse_id(const char *s, long long *id, struct herr *err);
/* Format a Unix time as local ISO 8601 "2026-11-26 11:12" into out; "-" for 0. */
const char *cmd_time(long long t, char *out, size_t size);
/* A core module's `warn` callback: "CTX: warning: MSG" on stderr, where
 * ctx is a string naming the subject (a file, "issue 3"). */
void cmd_warn(void *ctx, const char *msg);
/* The arguments of a `NOUN VERB NAME [--json]` verb (argv[0] is the verb):
 * *name the one NAME, *json 1 when --json was given (json NULL: not
 * allowed).  0, or EX_USAGE after printing the usage error. */
int cmd_name_arg(const char *usage, const char *noun, int argc, char **argv,
                 const char **name, int *json);
/* Print a JSON value (jansson json_t *) to stdout and release it. */
int cmd_print_json(void *json);
/*
 * A JSON array written row by row as the rows come (`sub ls --json` over a
 * million subscribers): memory stays that of one row, and the bytes are
 * exactly what cmd_print_json() prints for the whole array.  Nothing is
 * written before the first row, so an error before it leaves stdout empty;
 * an error after it leaves a truncated (invalid) document and the command
 * fails as any other.
 */
struct cmd_json_rows {
	int          on;   /* 0: not --json; add and end do nothing */
	long         n;    /* rows written */
	struct herr *err;  /* where add and end report */
};
/* Append one row (a jansson json_t *, released here; NULL means json_pack
 * ran out of memory).  0, or -1 with *err set (out of memory, write error). */
int cmd_json_rows_add(struct cmd_json_rows *r, void *row);
/* Close the array ("[]" when empty), newline, flush.  0, or -1 with *err. */
int cmd_json_rows_end(struct cmd_json_rows *r);
/* Print `s` padded with spaces to `width` characters, then one space. */
void cmd_print_cell(const char *s, int width);
/* Catch SIGINT/SIGTERM: the first sets the returned flag (stop taking new
 * work, finish what is in flight), the second exits at once. */
volatile sig_atomic_t *cmd_catch_signals(void);
/* Open the database for commands that do their own setup (init, db). */
int cmd_open_db(struct cmd_env *env, enum db_open_mode mode);
/* What cli.c does before a command, by CMD_NEED_* flags: find and load the
 * config, open the database.  -1 with env->err set; cmd_teardown() undoes
 * whatever was done, either way.  A command with no flags in the table may
 * call it itself once it knows what it needs (bounce). */
int cmd_setup(struct cmd_env *env, int flags);
void cmd_teardown(struct cmd_env *env);

#endif
