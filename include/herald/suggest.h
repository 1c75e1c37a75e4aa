/*
 * suggest.h - "did you mean ...?": the closest of a set of known words.
 *
 * Used wherever herald rejects or doubts a name the user typed and can say
 * which one was likely meant: config keys, CSV header columns, merge-field
 * attributes.  Distance is Damerau-Levenshtein (optimal string alignment:
 * insertions, deletions, substitutions and swaps of two neighbours each
 * cost 1), over bytes, with ASCII letters compared case-insensitively and
 * '_', '-' and ' ' treated as the same character, so "E-mail Address"
 * is close to "email_address" and "organization" to "organisation".
 */
#ifndef HERALD_SUGGEST_H
#define HERALD_SUGGEST_H

#include <stddef.h>

/* Edit distance between a and b as described above.  Words longer than
 * SUGGEST_MAX_LEN bytes are compared by their first SUGGEST_MAX_LEN. */
#define SUGGEST_MAX_LEN 64
unsigned suggest_distance(const char *a, const char *b);

/*
 * The candidate closest to `word`, or NULL when none is close enough to be
 * a likely typo: the distance must be at most a third of the longer word's
 * length (at least 1, at most 3) and smaller than the word itself, so "x"
 * never suggests "y".  Ties go to the earlier candidate.  An exact match
 * (under the folding above) is returned too; callers that look for an
 * alternative should leave the word itself out of `candidates`.
 * The result points into `candidates`.
 */
const char *suggest_closest(const char *word, const char *const *candidates, size_t n);

#endif
