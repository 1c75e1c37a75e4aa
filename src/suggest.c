/*
 * suggest.c - closest-word suggestions for error messages (see suggest.h).
 *
 * Optimal string alignment distance in O(len(a) * len(b)) time over three
 * rows of at most SUGGEST_MAX_LEN + 1 cells on the stack: the words are
 * config keys and column names, so no allocation is worth it.
 */
#include "herald/suggest.h"

#include <string.h>

static unsigned char
fold(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	if (c == '-' || c == ' ')
		return '_';
	return c;
}

static unsigned
min3(unsigned a, unsigned b, unsigned c)
{
	unsigned m = a < b ? a : b;

	return m < c ? m : c;
}

unsigned
suggest_distance(const char *a, const char *b)
{
	unsigned rows[3][SUGGEST_MAX_LEN + 1], *prev2 = rows[0], *prev = rows[1],
	         *cur = rows[2], *t;
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > SUGGEST_MAX_LEN)
		la = SUGGEST_MAX_LEN;
	if (lb > SUGGEST_MAX_LEN)
		lb = SUGGEST_MAX_LEN;
	for (j = 0; j <= lb; j++)
		prev[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		unsigned char ca = fold((unsigned char)a[i - 1]);

		cur[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			unsigned char cb = fold((unsigned char)b[j - 1]);
			unsigned cost = ca != cb;

			cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
			/* a swap of two neighbours ("starttsl") costs one edit */
			if (i > 1 && j > 1 && ca == fold((unsigned char)b[j - 2]) &&
			    fold((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < cur[j])
				cur[j] = prev2[j - 2] + 1;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

const char *
suggest_closest(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	unsigned best_d = ~0u, d, limit;
	size_t i, lw = strlen(word), lc, longer;

	for (i = 0; i < n; i++) {
		if (!candidates[i])
			continue;
		lc = strlen(candidates[i]);
		longer = lw > lc ? lw : lc;
		limit = (unsigned)(longer / 3);
		if (limit < 1)
			limit = 1;
		if (limit > 3)
			limit = 3;
		d = suggest_distance(word, candidates[i]);
		if (d <= limit && d < lw && d < best_d) {
			best = candidates[i];
			best_d = d;
		}
	}
	return best;
}
