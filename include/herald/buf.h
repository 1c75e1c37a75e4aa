/*
 * buf.h - growable byte buffers with a size cap fixed at birth.
 *
 * Modelled on curl's dynbuf: every buffer is created with the largest size it
 * may ever reach (a header line, a request body, a whole message), and an
 * append past that fails instead of growing without bound.  The contents are
 * always NUL-terminated so text can be passed to C string functions, but the
 * length is authoritative: binary data may contain NULs.
 */
#ifndef HERALD_BUF_H
#define HERALD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char  *data; /* NULL until the first append; NUL-terminated after */
	size_t len;  /* bytes used, not counting the terminating NUL */
	size_t cap;  /* bytes allocated */
	size_t max;  /* appends that would make len exceed this fail */
};

#define BUF_INIT(max_) { NULL, 0, 0, (max_) }

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Empty the buffer but keep its memory for reuse. */
void buf_reset(struct buf *b);

/* Appends return 0, or -1 when the cap would be exceeded or memory ran out
 * (errno is E2BIG or ENOMEM); the buffer is unchanged on failure. */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Make room for n more bytes without changing len. */
int buf_reserve(struct buf *b, size_t n);

/* The contents as a C string; "" for a buffer never written to. */
const char *buf_str(const struct buf *b);
/* Hand the memory to the caller (free() it); the buffer becomes empty.
 * Returns a valid empty string, or NULL only if allocating that failed. */
char *buf_detach(struct buf *b);

#endif
