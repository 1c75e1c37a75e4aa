/*
 * utf8.h - strict UTF-8 (RFC 3629 §4): the one decoder every module uses.
 *
 * Overlong forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF,
 * stray continuation bytes and truncated sequences are all invalid.
 */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stddef.h>

/* Length (1-4) of the well-formed sequence at the start of the `n` bytes at
 * `s`, or 0 when it is not one (or n is 0).  If `cp` is not NULL it receives
 * the code point. */
size_t utf8_seq(const unsigned char *s, size_t n, unsigned long *cp);

/* Offset of the first byte that does not start a well-formed sequence, or
 * `n` when all of s is valid UTF-8. */
size_t utf8_invalid_at(const unsigned char *s, size_t n);

#endif
