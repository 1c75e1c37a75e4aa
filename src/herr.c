/*
 * herr.c - filling struct herr (see herr.h).
 * Messages that do not fit are cut and marked with "...", as OpenSMTPD's
 * envelope_set_errormsg() does, so a truncated reason is never mistaken for
 * a complete one.
 */
#include "herald/herr.h"
#include "herald/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void
mark_truncated(char *s, size_t size, int n)
{
	if (n >= 0 && (size_t)n >= size && size > 4)
		memcpy(s + size - 4, "...", 4);
}

void
herr_clear(struct herr *e)
{
	if (!e)
		return;
	e->code = 0;
	e->where[0] = '\0';
	e->msg[0] = '\0';
}

int
herr_set(struct herr *e, int code, const char *where, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!e)
		return -1;
	e->code = code ? code : EX_SOFTWARE;
	n = snprintf(e->where, sizeof e->where, "%s", where ? where : "");
	mark_truncated(e->where, sizeof e->where, n);
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	mark_truncated(e->msg, sizeof e->msg, n);
	return -1;
}

int
herr_wrap(struct herr *e, const char *fmt, ...)
{
	char prefix[HERR_MSG_MAX], old[HERR_MSG_MAX];
	va_list ap;
	int n;

	if (!e)
		return -1;
	memcpy(old, e->msg, sizeof old);
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	n = snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
	mark_truncated(e->msg, sizeof e->msg, n);
	if (!e->code)
		e->code = EX_SOFTWARE;
	return -1;
}

void
herr_show(char *dst, size_t size, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0, k;

	if (size < 8) {
		if (size)
			dst[0] = '\0';
		return;
	}
	while (i < n) {
		if (o + 5 > size - 4) {         /* room for "\xNN" or "..." + NUL */
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (u[i] == '\r' || u[i] == '\n' || u[i] == '\t') {
			dst[o++] = '\\';
			dst[o++] = u[i] == '\r' ? 'r' : u[i] == '\n' ? 'n' : 't';
			i++;
		} else if (u[i] < 0x20 || u[i] == 0x7f ||
		           (k = utf8_seq(u + i, n - i, NULL)) == 0) {
			snprintf(dst + o, 5, "\\x%02X", u[i]);
			o += 4;
			i++;
		} else {
			if (o + k > size - 4) {
				memcpy(dst + o, "...", 3);
				o += 3;
				break;
			}
			memcpy(dst + o, u + i, k);
			o += k;
			i += k;
		}
	}
	dst[o] = '\0';
}
