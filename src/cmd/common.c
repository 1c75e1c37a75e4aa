/*
 * common.c - small helpers the subcommands share (see cmd.h).
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/log.h"
#include "herald/audience.h"
#include "herald/cmd.h"
#include "herald/db.h"

int
cmd_usage(const char *usage, int is_error)
{
	fputs(usage, is_error ? stderr : stdout);
	return is_error ? EX_USAGE : 0;
}

int
cmd_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("herald: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage, stderr);
	return EX_USAGE;
}

int
cmd_parse_id(const char *s, long long *id, struct herr *err)
{
	char *end;

	errno = 0;
	*id = strtoll(s, &end, 10);
	if (errno || end == s || *end || *id <= 0)
		return herr_set(err, EX_USAGE, NULL, "'%s' is not an issue id (a positive number)", s);
	return 0;
}

const char *
cmd_time(long long t, char *out, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!t) {
		snprintf(out, size, "-");
		return out;
	}
	localtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M", &tm);
	return out;
}

int
cmd_print_json(void *json)
{
	json_t *j = json;
	int rc;

	if (!j) {
		fputs("herald: out of memory building JSON\n", stderr);
		return EX_OSERR;
	}
	rc = json_dumpf(j, stdout, JSON_INDENT(2));
	json_decref(j);
	fputc('\n', stdout);
	return rc < 0 ? EX_IOERR : 0;
}

/* jansson's JSON_INDENT(2) dump of a row, indented one level more, as it
 * sits inside the array: every line break it writes is structural (strings
 * escape theirs), so each gets two more spaces after it.  jansson hands
 * over a few bytes at a time; the caller holds the stream's lock, so the
 * bytes go out with putc_unlocked. */
static int
rows_write(const char *buf, size_t size, void *data)
{
	size_t i;

	(void)data;
	for (i = 0; i < size; i++) {
		if (putc_unlocked(buf[i], stdout) == EOF)
			return -1;
		if (buf[i] == '\n' &&
		    (putc_unlocked(' ', stdout) == EOF || putc_unlocked(' ', stdout) == EOF))
			return -1;
	}
	return 0;
}

int
cmd_json_rows_add(struct cmd_json_rows *r, void *row)
{
	json_t *j = row;
	int rc;

	if (!r->on) {
		json_decref(j);
		return 0;
	}
	if (!j)
		return herr_set(r->err, EX_OSERR, NULL, "out of memory building JSON");
	flockfile(stdout);
	/* ",\n" and "[\n" get their two spaces as the row's lines do */
	rc = rows_write(r->n++ ? ",\n" : "[\n", 2, NULL) < 0 ? -1 :
	     json_dump_callback(j, rows_write, NULL, JSON_INDENT(2));
	funlockfile(stdout);
	json_decref(j);
	if (rc < 0)
		return herr_set(r->err, EX_IOERR, NULL, "write error: %s", strerror(errno));
	return 0;
}

int
cmd_json_rows_end(struct cmd_json_rows *r)
{
	if (!r->on)
		return 0;
	if (fputs(r->n ? "\n]\n" : "[]\n", stdout) == EOF || fflush(stdout) != 0)
		return herr_set(r->err, EX_IOERR, NULL, "write error: %s", strerror(errno));
	return 0;
}

int
cmd_open_db(struct cmd_env *env, enum db_open_mode mode)
{
	if (db_open(env->cfg.db_path, mode,
	            env->cfg.db_busy_timeout_ms, &env->db, &env->err) < 0)
		return -1;
	if (env->cfg.db_sync_full && db_set_synchronous_full(env->db, &env->err) < 0) {
		db_close(env->db);
		env->db = NULL;
		return -1;
	}
	return 0;
}

int
cmd_setup(struct cmd_env *env, int flags)
{
	if (flags & CMD_NEED_CONFIG) {
		if (config_locate(env->config_arg, env->config_path, sizeof env->config_path,
		                  &env->err) < 0)
			return -1;
		env->have_cfg = 1; /* config_load() initialises it even when it fails */
		if (config_load(env->config_path, &env->cfg, &env->err) < 0)
			return -1;
		log_configure(&env->cfg);
		/* every audience this process takes follows [audience] */
		audience_set_sunset(env->cfg.sunset_after);
	}
	if ((flags & CMD_NEED_DB) && cmd_open_db(env, DB_OPEN_EXISTING) < 0)
		return -1;
	return 0;
}

void
cmd_teardown(struct cmd_env *env)
{
	db_close(env->db);
	env->db = NULL;
	if (env->have_cfg)
		config_free(&env->cfg);
	env->have_cfg = 0;
}

void
cmd_print_cell(const char *s, int width)
{
	const unsigned char *p;
	int cols = 0;

	/* Pad by characters, not bytes, so "Seán" lines up with "Sean".
	 * (Wide CJK characters would need wcwidth; names here rarely are.) */
	for (p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			cols++;
	fputs(s, stdout);
	for (; cols < width; cols++)
		fputc(' ', stdout);
	fputc(' ', stdout);
}

static volatile sig_atomic_t stop_requested;

static void
on_stop_signal(int sig)
{
	/* The first signal asks for a clean stop; a second one means now.
	 * Stopping now is safe: every ledger change is its own committed
	 * transaction, and rows left in flight are recovered next run. */
	if (stop_requested)
		_exit(128 + sig);
	stop_requested = 1;
}

volatile sig_atomic_t *
cmd_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return &stop_requested;
}

void
cmd_warn(void *ctx, const char *msg)
{
	log_event(LOG_WARNING, "warning", LOG_FIELDS(LOG_S("about", (const char *)ctx)),
	          "%s: warning: %s", (const char *)ctx, msg);
}

int
cmd_name_arg(const char *usage, const char *noun, int argc, char **argv, const char **name,
             int *json)
{
	int i;

	*name = NULL;
	for (i = 1; i < argc; i++) {
		if (json && !strcmp(argv[i], "--json"))
			*json = 1;
		else if (!*name && argv[i][0] != '-')
			*name = argv[i];
		else
			return cmd_usage_error(usage, "unexpected '%s'", argv[i]);
	}
	if (!*name)
		return cmd_usage_error(usage, "%s %s needs a NAME", noun, argv[0]);
	return 0;
}
