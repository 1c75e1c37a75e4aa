/*
 * curltrace.h - libcurl's protocol trace, one line at a time.
 *
 * herald keeps the last command it sent and the last reply it got, so that
 * an error can say "RCPT TO:<a@b> -> 550 5.1.1 ..." or "LOGIN -> NO
 * [AUTHENTICATIONFAILED]" instead of libcurl's generic text.  libcurl hands
 * its debug callback (CURLOPT_DEBUGFUNCTION) blocks that may hold several
 * lines; curltrace splits them and hands each to the caller's two
 * functions.  Used by smtp.c and mailbox.c.
 */
#ifndef HERALD_CURLTRACE_H
#define HERALD_CURLTRACE_H

#include <stddef.h>

#include <curl/curl.h>

/* One line (without its '\n'). */
typedef void (*curltrace_line_fn)(void *ctx, const char *line, size_t len);

struct curltrace {
	curltrace_line_fn on_command;   /* what we sent (CURLINFO_HEADER_OUT) */
	curltrace_line_fn on_reply;     /* what the server said (CURLINFO_HEADER_IN) */
	void *ctx;
};

/* Turn the trace on for `h`: every protocol line goes to `t`'s functions;
 * data, TLS and libcurl's own text are ignored.  `t` must outlive the
 * handle's transfers (keep it beside the handle). */
void curltrace_attach(CURL *h, const struct curltrace *t);

#endif
