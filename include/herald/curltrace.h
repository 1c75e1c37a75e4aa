/*
 * curltrace.h - libcurl's protocol trace, one line at a time.
 *
 * herald keeps the last command it sent and the last reply it got, so that
 * an error can say "RCPT TO:<a@b> -> 550 5.1.1 ..." or "LOGIN -> NO
 * [AUTHENTICATIONFAILED]" instead of libcurl's generic text.  libcurl hands
 * its debug callback (CURLOPT_DEBUGFUNCTION) blocks that may hold several
 * lines; curltrace_lines() splits them.  Used by smtp.c and mailbox.c.
 */
#ifndef HERALD_CURLTRACE_H
#define HERALD_CURLTRACE_H

#include <stddef.h>

#include <curl/curl.h>

/* Called per line (without its '\n'): `sent` is 1 for what we sent
 * (CURLINFO_HEADER_OUT), 0 for what the server said (CURLINFO_HEADER_IN). */
typedef void (*curltrace_line_fn)(void *ctx, int sent, const char *line, size_t len);

/* Split one debug-callback block of `type` into lines for `fn`; blocks of
 * other types (data, TLS, libcurl's own text) are ignored.  Always 0, the
 * value a CURLOPT_DEBUGFUNCTION returns. */
int curltrace_lines(curl_infotype type, const char *data, size_t size, curltrace_line_fn fn,
                    void *ctx);

#endif
