/*
 * utf8.c - strict UTF-8 decoding (see utf8.h).  The valid ranges of the
 * second byte are those of RFC 3629 §4's table, which is what rules out
 * overlong forms and surrogates without decoding first.
 */
#include "herald/utf8.h"

size_t
utf8_seq(const unsigned char *s, size_t n, unsigned long *cp)
{
	unsigned char c, lo = 0x80, hi = 0xbf;
	unsigned long v;
	size_t len, i;

	if (n == 0)
		return 0;
	c = s[0];
	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;      /* no overlong 3-byte forms */
		else if (c == 0xed)
			hi = 0x9f;      /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;      /* no overlong 4-byte forms */
		else if (c == 0xf4)
			hi = 0x8f;      /* nothing above U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 1; i < len; i++) {
		if (i > 1 && (s[i] < 0x80 || s[i] > 0xbf))
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (cp)
		*cp = v;
	return len;
}

size_t
utf8_invalid_at(const unsigned char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (!(k = utf8_seq(s + i, n - i, NULL)))
			return i;
		i += k;
	}
	return n;
}
