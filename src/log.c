/*
 * log.c - text or JSON lines to stderr or syslog (see log.h).
 *
 * Process-wide settings, written by the CLI before any thread starts and
 * only read after, so they need no lock.
 */
#include "herald/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald/utf8.h"

static const char *log_command = "herald";
static enum config_log_format log_format = CONFIG_LOG_TEXT;
static int log_forced, log_syslog, log_opened;

void
log_set_command(const char *command)
{
	log_command = command;
}

void
log_set_format(enum config_log_format format, int forced)
{
	log_format = format;
	log_forced = forced;
}

void
log_configure(const struct config *cfg)
{
	if (!log_forced)
		log_format = cfg->log_format;
	log_syslog = cfg->log_syslog;
	if (log_syslog && !log_opened) {
		/* LOG_MAIL: herald is mail software; the admin finds it with
		 * the MTA's lines (journalctl -t herald, or mail.log) */
		openlog("herald", LOG_PID, LOG_MAIL);
		log_opened = 1;
	}
}

int
log_structured(void)
{
	return log_format == CONFIG_LOG_JSON || log_syslog;
}

static const char *
level_name(int level)
{
	switch (level) {
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	default:
		return "info";
	}
}

/* A JSON string of `s`, each byte that is not UTF-8 (an address from a
 * CSV, a reply from a relay) as U+FFFD: jansson refuses invalid UTF-8. */
static json_t *
json_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;
	char *clean;
	json_t *j;

	if (utf8_invalid_at(p, n) == n)
		return json_stringn(s, n);
	if (!(clean = malloc(n * 3 + 1)))
		return NULL;
	for (k = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i, NULL);

		if (len) {
			memcpy(clean + k, p + i, len);
			k += len;
			i += len;
		} else {
			memcpy(clean + k, "\xef\xbf\xbd", 3);
			k += 3;
			i++;
		}
	}
	j = json_stringn(clean, k);
	free(clean);
	return j;
}

static void
emit(int level, const char *event, const struct log_field *fields, size_t n,
     const char *fmt, va_list ap)
{
	char text[4096], when[40];
	char *line = NULL;
	struct timespec ts;
	struct tm tm;
	json_t *j;
	size_t i;

	vsnprintf(text, sizeof text, fmt, ap);
	if (log_format == CONFIG_LOG_JSON) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + strlen(when), sizeof when - strlen(when), ".%03ldZ",
		         ts.tv_nsec / 1000000L);
		if ((j = json_object())) {
			json_object_set_new(j, "time", json_string(when));
			json_object_set_new(j, "level", json_string(level_name(level)));
			json_object_set_new(j, "command", json_string(log_command));
			json_object_set_new(j, "event", json_string(event));
			for (i = 0; i < n; i++) {
				const struct log_field *f = &fields[i];

				json_object_set_new(j, f->key,
				                    f->type == 'i' ? json_integer(f->n) :
				                    f->type == 'f' ? json_real(f->d) :
				                    f->s ? json_text(f->s) : json_null());
			}
			json_object_set_new(j, "msg", json_text(text));
			line = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
			json_decref(j);
		}
	}
	if (log_syslog) {
		syslog(level, "%s", line ? line : text);
	} else {
		/* one write of the whole line, so threads' lines never mix */
		if (line)
			fprintf(stderr, "%s\n", line);
		else
			fprintf(stderr, "%s\n", text);
	}
	free(line);
}

void
log_event(int level, const char *event, const struct log_field *fields, size_t n,
          const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, event, fields, n, fmt, ap);
	va_end(ap);
}

void
log_result(int level, const char *event, const struct log_field *fields, size_t n,
           const char *fmt, ...)
{
	va_list ap;

	if (!log_structured())
		return;
	va_start(ap, fmt);
	emit(level, event, fields, n, fmt, ap);
	va_end(ap);
}

void
log_close(void)
{
	if (log_opened)
		closelog();
	log_opened = 0;
}
