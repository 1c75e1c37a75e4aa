/*
 * herr.h - the error value every herald module returns through.
 *
 * Functions below the CLI return 0 on success and -1 on failure, filling a
 * caller-owned struct herr.  `code` is a sysexits(3) value chosen by the
 * module that knows what went wrong (EX_DATAERR for bad input, EX_TEMPFAIL
 * for a busy database or a relay that said 4xx, ...); `where` names the
 * place (a file:line, an address, an SMTP step) and `msg` says what is wrong,
 * lower-case first word and no full stop, as git's error messages do.
 * Only src/cli.c prints it and turns `code` into the exit status.
 */
#ifndef HERALD_HERR_H
#define HERALD_HERR_H

#include <stddef.h>
#include <sysexits.h>

#define HERR_WHERE_MAX 160
#define HERR_MSG_MAX   768

struct herr {
	int  code;                  /* sysexits value, 0 when no error */
	char where[HERR_WHERE_MAX]; /* "subs.csv:17", "RCPT <a@b>", or "" */
	char msg[HERR_MSG_MAX];     /* what went wrong; truncated with "..." */
};

/* Clear an error value so it can be reused. */
void herr_clear(struct herr *e);

/*
 * Record an error.  `where` may be NULL.  Always returns -1 so callers can
 * write `return herr_set(err, EX_DATAERR, path, "bad thing")`.  A NULL `e`
 * is allowed and ignored, for callers that only want the return code.
 */
int herr_set(struct herr *e, int code, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Prefix the existing message with more context: "ctx: old message". */
int herr_wrap(struct herr *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Copy `s` into `dst` fit to quote in a message: CR, LF and TAB as \r \n
 * \t, other control characters and bytes that are not UTF-8 as \xNN, cut
 * with "..." to fit `size`.  A message built with it never holds a raw
 * line break, whatever the input was.
 */
void herr_show(char *dst, size_t size, const char *s);

#endif
