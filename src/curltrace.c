/*
 * curltrace.c - split libcurl's protocol trace into lines (see curltrace.h).
 */
#include <string.h>

#include "herald/curltrace.h"

static int
curltrace_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
	const struct curltrace *t = ud;
	const char *line, *end = data + size, *nl;
	curltrace_line_fn fn;

	(void)h;
	if (type == CURLINFO_HEADER_OUT)
		fn = t->on_command;
	else if (type == CURLINFO_HEADER_IN)
		fn = t->on_reply;
	else
		return 0;
	for (line = data; line < end; line = nl + 1) {
		if (!(nl = memchr(line, '\n', (size_t)(end - line))))
			nl = end;
		fn(t->ctx, line, (size_t)(nl - line));
		if (nl == end)
			break;
	}
	return 0;   /* what a CURLOPT_DEBUGFUNCTION must return */
}

void
curltrace_attach(CURL *h, const struct curltrace *t)
{
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, curltrace_debug);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, (void *)t);
}
