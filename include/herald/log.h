/*
 * log.h - the one place herald's diagnostics leave the process: errors,
 * warnings and the events an operator watches (a send's summary, a
 * refused issue, a bounce read, serve's problems), as text or JSON lines,
 * to stderr or syslog(3).
 *
 *   text   the line as herald has always written it,
 *          "herald run: issue 3: ..."; on stderr or, with target syslog,
 *          as the message (tag "herald", facility mail).
 *   json   one object a line: {"time":"2026-12-05T04:50:00.123Z",
 *          "level":"info","command":"run","event":"send.summary",
 *          ...fields..., "msg": the text line}; keys and event names are
 *          listed in docs/operations.md ("Logs").
 *
 * The format and target come from [log] in the config, the format also
 * from --log-format (which wins, and works before a config is read).
 * Results a command prints on stdout (a send's summary, listings) stay on
 * stdout; log_result() adds a copy for log readers only when the log is
 * structured (json, or syslog), so a terminal never sees a line twice.
 *
 * What goes in: only what the caller passes.  Callers never pass a
 * secret: passwords, API keys and token secrets are not in any field or
 * message (tests/integration/test_logs.py looks for them).
 *
 * Thread-safe: each line is built in the caller's buffer and written with
 * one call (stdio's own lock, or syslog(3)).
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stddef.h>
#include <syslog.h>

#include "herald/config.h"

/* A field of a JSON line: a string (s) or an integer (n) or a number (d). */
struct log_field {
	const char *key;
	const char *s;
	long long   n;
	double      d;
	char        type; /* 's', 'i' or 'f' */
};
#define LOG_S(k, v) ((struct log_field){ (k), (v), 0, 0, 's' })
#define LOG_I(k, v) ((struct log_field){ (k), NULL, (long long)(v), 0, 'i' })
#define LOG_F(k, v) ((struct log_field){ (k), NULL, 0, (double)(v), 'f' })
#define LOG_FIELDS(...) (const struct log_field[]){ __VA_ARGS__ }, \
	sizeof((const struct log_field[]){ __VA_ARGS__ }) / sizeof(struct log_field)

/* The command being run ("run", "serve"); "herald" before one is known. */
void log_set_command(const char *command);
/* --log-format: `forced` keeps [log] format from changing it. */
void log_set_format(enum config_log_format format, int forced);
/* [log] format (unless forced) and target; opens syslog when asked. */
void log_configure(const struct config *cfg);
/* 1 when lines go out as JSON or to syslog. */
int log_structured(void);

/*
 * Log one event: `level` LOG_ERR, LOG_WARNING or LOG_INFO (syslog.h);
 * `event` a dotted name ("send.summary"); `fields` (n of them, may be
 * NULL) for JSON; the text line from `fmt`, without a newline.
 */
void log_event(int level, const char *event, const struct log_field *fields, size_t n,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same, but only when log_structured(): for what the command also
 * prints as its result. */
void log_result(int level, const char *event, const struct log_field *fields, size_t n,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

void log_close(void);

#endif
