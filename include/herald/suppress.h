/*
 * suppress.h - addresses and whole domains herald never mails.
 *
 * A suppression outlives subscriptions: it is what a complaint leaves
 * behind (the person asked us, loudly, to stop), and what an admin adds
 * for a role address or a domain that must never be mailed.  Every path
 * that could mail someone honours it: the recipient snapshot and the
 * per-message eligibility check of a send (ledger.c, through
 * SUPPRESS_SQL_NOT below), the CSV import and `sub add` (subscriber.c), and
 * the web sign-up form.
 *
 * A pattern is either an address, stored as its identity key (address.h:
 * ASCII, lower-cased), or a domain written "@domain" (A-label, lower-case),
 * which matches every address at exactly that domain (not subdomains: a
 * university's "@alumni.example.edu" is not "@example.edu").
 */
#ifndef HERALD_SUPPRESS_H
#define HERALD_SUPPRESS_H

#include <sqlite3.h>

#include "herald/herr.h"

/* SQL: true when the email key in column expression KEY is not suppressed.
 * Two primary-key lookups (the address, then "@domain"), written as two
 * `=`: SQLite runs "pattern IN (KEY, ...)" by building a temporary B-tree
 * of the two values each time it is evaluated (OpenEphemeral), which was
 * a tenth of an import's time and is paid per subscriber in an audience. */
#define SUPPRESS_SQL_NOT(KEY) \
	"(NOT EXISTS (SELECT 1 FROM suppressions WHERE pattern = " KEY ") AND " \
	"NOT EXISTS (SELECT 1 FROM suppressions WHERE pattern = " \
	"substr(" KEY ", instr(" KEY ", '@'))))"

#define SUPPRESS_PATTERN_MAX 256

/* Normalise `in` ("a@b.example", "@b.example", IDN allowed) into a pattern.
 * EX_DATAERR with the reason when it is neither an address nor a domain. */
int suppress_pattern(const char *in, char out[SUPPRESS_PATTERN_MAX], struct herr *err);

/* Add a pattern (normalised by suppress_pattern).  *added is 1 when new, 0
 * when it was there already (its reason is kept).  `reason`: "manual",
 * "complaint", "hard-bounce". */
int suppress_add(sqlite3 *db, const char *in, const char *reason, const char *note,
                 int *added, struct herr *err);
/* Remove a pattern; *removed 0 when it was not there. */
int suppress_remove(sqlite3 *db, const char *in, int *removed, struct herr *err);

/* Is the address with identity key `key` suppressed?  1 yes (the matching
 * pattern in `hit` when not NULL), 0 no, -1 error. */
int suppress_check(sqlite3 *db, const char *key, char hit[SUPPRESS_PATTERN_MAX],
                   struct herr *err);

struct suppression {
	const char *pattern;
	const char *reason;
	const char *note;
	long long   created_at;
};
/* Every pattern in order; fn returning non-zero stops with that value. */
int suppress_each(sqlite3 *db, int (*fn)(void *ctx, const struct suppression *s), void *ctx,
                  struct herr *err);

#endif
