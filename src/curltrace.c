/*
 * curltrace.c - split libcurl's protocol trace into lines (see curltrace.h).
 */
#include <string.h>

#include "herald/curltrace.h"

int
curltrace_lines(curl_infotype type, const char *data, size_t size, curltrace_line_fn fn,
                void *ctx)
{
	const char *line, *end = data + size, *nl;

	if (type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
		return 0;
	for (line = data; line < end; line = nl + 1) {
		if (!(nl = memchr(line, '\n', (size_t)(end - line))))
			nl = end;
		fn(ctx, type == CURLINFO_HEADER_OUT, line, (size_t)(nl - line));
		if (nl == end)
			break;
	}
	return 0;
}
