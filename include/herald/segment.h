/*
 * segment.h - segments: a small, safe filter language over what herald
 * knows about a subscriber, compiled to an SQL boolean expression, and the
 * saved segments (the segments table, sql/007_segments.sql).
 *
 * Called by src/cmd/segment.c (`herald segment ...`), src/cmd/sub.c (`sub
 * ls --where`) and issue.c (an issue's `segment:` or `where:`, which
 * audience.h applies to the issue's lists).
 * The compiled SQL is a condition on the subscriber row alias `s` (table
 * subscribers); every value, attribute key, list id and time in it is a
 * bound parameter: no text the user wrote ever becomes SQL.
 *
 * THE LANGUAGE
 *
 *   expr   := or
 *   or     := and { "or" and }
 *   and    := unary { "and" unary }          precedence: not > and > or
 *   unary  := "not" unary | "(" expr ")" | term
 *   term   := field cmp
 *           | "exists" attr                  the attribute has a value
 *           | "list" LISTNAME                confirmed on that list
 *           | "engaged" SPAN                 a human open or a click of any
 *                                            issue within SPAN before now
 *           | "received" SPAN                an issue sent to them (deliveries
 *                                            status sent, by sent_at) within SPAN
 *           | "bounced_soft_within" SPAN     a soft bounce (bounces table) within SPAN
 *           | "subscribed_within" SPAN       a confirmed subscription to any
 *           | "subscribed_before" DATE|SPAN  list, confirmed (or, without a
 *                                            confirmation time, created) within
 *                                            SPAN before now / before DATE
 *                                            (local midnight) or before now - SPAN
 *   field  := attr | "name" | "email"
 *   attr   := "attr." KEY                    KEY: [A-Za-z0-9_.-]+, case-sensitive
 *   cmp    := ("=" | "!=" | "<" | "<=" | ">" | ">=") value
 *           | ["not"] "in" "(" value { "," value } ")"
 *           | ("starts_with" | "ends_with") STRING
 *   value  := STRING | NUMBER | DATE         (name and email: STRING only)
 *
 *   STRING "text" with \" and \\ as the only escapes; compares as text,
 *          case-insensitively for ASCII letters (COLLATE NOCASE; LIKE for
 *          starts_with and ends_with), so "social worker" = "Social Worker".
 *   NUMBER -?[0-9]+(.[0-9]+)? unquoted; compares numerically, and only
 *          values that are numbers take part: an optional sign, digits and
 *          at most one '.', e.g. "42", "-3.5", "007" (not "1e3", "1,000").
 *   DATE   YYYY-MM-DD unquoted, a real calendar date; compares as ISO text
 *          with values that are a date, or a date followed by 'T' or ' '
 *          and a time (their first ten characters).
 *   SPAN   N followed by h, d or w (hours, days, weeks), 1 to 100 years.
 *   LISTNAME a list name (list.h's rule) or a STRING; an unknown one is an
 *          error at its column.
 *   Keywords (and, or, not, in, exists, list, ...) are case-insensitive;
 *   attribute keys are not (they are the JSON keys the import stored).
 *
 * Semantics (two-valued: every term is true or false, never SQL NULL):
 *   (1) An attribute's value is its JSON string when it is a non-empty
 *       one: what a merge field {{attr.KEY}} prints (audience.h's
 *       "present").  A missing attribute, an empty one (the import never
 *       stores empty cells) and one of another JSON type (a number or null
 *       written by hand) have no value.  Every comparison with no value is
 *       false: =, <, <=, >, >=, in, starts_with and ends_with.
 *   (2) != is exactly `not =`, and `not in` exactly `not (... in ...)`, so
 *       `attr.x != "a"` matches subscribers without x, and
 *       `not (attr.x = "a")` is the same set.  The orderings are not each
 *       other's negation: `attr.age < 18` and `attr.age >= 18` both leave
 *       out those without a numeric age; `not (attr.age < 18)` includes them.
 *   (3) A number compares only with values that are numbers (rule above)
 *       and a date only with values that are dates; others are (1)'s
 *       no value for that term: `attr.age = 42` is false and
 *       `attr.age != 42` true for an age of "unknown".
 *   (4) A comparison of an attribute with "" is refused (it could only
 *       mean "no value"): write `not exists attr.x` or `exists attr.x`.
 *       name and email are always present ('' when no name is known), so
 *       `name != ""` is allowed and means "has a name".
 *   (5) The times of SPAN terms are [now - SPAN, now] inclusive; `now` is
 *       given to segment_compile() (db_now(): --now works).
 *   (6) "Machine open" is report.h's: an open whose detail.ua is
 *       "machine", or at most REPORT_PREFETCH_SECS after that subscriber's
 *       deliveries.sent_at of that issue (or before it); such opens do not
 *       make a subscriber engaged.  Clicks always do.  `engaged` is
 *       engagement.h's (1), written once there (ENGAGEMENT_SQL_ACT).
 *
 * Errors (EX_DATAERR) name the place as WHERE:LINE:COLUMN, WHERE being the
 * caller's name for the text ("--where", "segment NAME", "issue.md"), and
 * LINE and COLUMN counting from 1 (COLUMN in characters):
 *   --where:1:13: unknown attribute function 'contains'; use =, != ... or ends_with
 *   --where:1:6: no list named 'newsleter'; did you mean 'newsletter'?
 * Limits: SEGMENT_EXPR_MAX bytes, SEGMENT_DEPTH_MAX nested "(" and "not",
 * SEGMENT_TERMS_MAX terms (each value of an in-list counts as one).
 *
 * PARAMETERS
 *
 * segment_sql() numbers its parameters from SEGMENT_PARAM_BASE + 1 (?101,
 * ?102, ...), so it composes with any SQL whose own parameters are ?1 to
 * ?100, named (:list) or plain ?, wherever they stand in the text.  (Named
 * parameters such as :seg1 would not: SQLite numbers a named parameter one
 * past the largest number seen so far, so a ?2 written after it in the
 * text would be the same parameter.)  Bind them with segment_bind() after
 * preparing; the numbers below the base that the statement does not use
 * stay unbound, which costs nothing.  One segment per statement.
 *
 * COST
 *
 * A segment is evaluated row by row over the subscribers (all of them, or
 * a list's audience): attribute terms parse s.attributes (json_extract;
 * SQLite parses a row's JSON once for all its terms); list, subscribed_*
 * and bounced_soft_within are index lookups per subscriber; engaged and
 * received build their set of subscriber ids once per statement, by one
 * scan of the events or the deliveries table (neither has an index by
 * subscriber or by time).  The operands of each and/or are reordered
 * cheapest first (columns, sets, indexes, JSON text, JSON numbers and
 * dates), which changes no result: every term is true or false.  No index
 * serves attribute terms: an expression index needs its JSON path as SQL
 * text, and keys here are never SQL.  bench/segment.sh measures it.
 */
#ifndef HERALD_SEGMENT_H
#define HERALD_SEGMENT_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/herr.h"

#define SEGMENT_EXPR_MAX   4096 /* bytes of an expression */
#define SEGMENT_DEPTH_MAX  32   /* nested "(" and "not" */
#define SEGMENT_TERMS_MAX  256  /* terms; each value of an in-list is one */
#define SEGMENT_NAME_MAX   64   /* saved segments: list.h's name rule */
#define SEGMENT_DESC_MAX   1024 /* bytes of a description */
#define SEGMENT_PARAM_BASE 100  /* segment_sql()'s parameters are ?101, ?102, ... */

struct segment; /* a compiled expression: its SQL and parameter values */

/*
 * Compile `expr`.  `where` names the text in error messages (NULL:
 * "segment"); `now` is the time SPAN terms count back from.  The database
 * is read only to resolve list names.  Returns 0 with *out set (free it
 * with segment_free), or -1 with *out NULL: EX_DATAERR for an expression
 * that is wrong (err->where "WHERE:LINE:COL"), EX_OSERR when out of memory.
 */
int segment_compile(sqlite3 *db, const char *expr, const char *where, long long now,
                    struct segment **out, struct herr *err);

/* segment_compile() of an expression that starts at LINE:COL of the text
 * `where` names (an issue's `where:` in its front matter): error positions
 * count from there, so they point into that file.  Its first line starts
 * at COL, the others at column 1. */
int segment_compile_at(sqlite3 *db, const char *expr, const char *where, int line, int col,
                       long long now, struct segment **out, struct herr *err);

/* The boolean SQL over alias `s`, parenthesised; valid until segment_free. */
const char *segment_sql(const struct segment *seg);

/* 1 when the expression has an `engaged` term (negated or not): it
 * targets engagement itself, so audience.h's sunset rule stays out of
 * its way (a re-engagement issue's `where: not engaged 365d`). */
int segment_targets_engagement(const struct segment *seg);

/* How many parameters segment_sql() has (?101 .. ?(100 + N)). */
size_t segment_n_params(const struct segment *seg);

/* Bind the segment's parameters in `st`, prepared from SQL that contains
 * segment_sql().  -1 with EX_SOFTWARE when `st` lacks one of them. */
int segment_bind(const struct segment *seg, sqlite3_stmt *st, struct herr *err);

void segment_free(struct segment *seg);

/*
 * Count the subscribers that match.  list_id 0: every subscriber herald
 * may mail at all (status active, not suppressed); otherwise the audience
 * of that list (audience.h: AUDIENCE_SQL_WHERE) that matches.
 */
int segment_count(sqlite3 *db, const struct segment *seg, long long list_id, long long *n,
                  struct herr *err);

/* One matching subscriber, for segment_each's callback; the pointers are
 * valid only during the call. */
struct segment_row {
	long long   id;
	const char *email;
	const char *name;
	const char *attributes; /* the JSON object text */
	long long   created_at;
};

/* Call fn for each subscriber segment_count() would count, in id order,
 * one row at a time.  Stops with -1 when fn returns -1 (err untouched
 * unless the database failed: the callback reports its own error). */
int segment_each(sqlite3 *db, const struct segment *seg, long long list_id,
                 int (*fn)(void *ctx, const struct segment_row *r), void *ctx,
                 struct herr *err);

/* --- saved segments --------------------------------------------------- */

/* A saved segment as stored; the expression is compiled again at each use,
 * so it always means what the data says now. */
struct segment_def {
	char      name[SEGMENT_NAME_MAX + 1];
	char      expr[SEGMENT_EXPR_MAX + 1];
	char      description[SEGMENT_DESC_MAX + 1];
	long long created_at, updated_at;
};

/* Check a segment name (list.h's rule: 1-64 of a-z 0-9 . _ -). */
int segment_name_check(const char *name, struct herr *err);

/*
 * Save `expr` under `name` after compiling it (an expression that does not
 * compile is not saved: the compile error, where "segment NAME").  An
 * existing segment of that name is an EX_DATAERR error unless `replace`;
 * then its expression and description change and created_at stays.
 * `description` may be NULL ("").  *replaced (may be NULL) says which.
 */
int segment_save(sqlite3 *db, const char *name, const char *expr, const char *description,
                 int replace, int *replaced, struct herr *err);

/* Find by name; EX_NOINPUT "no segment named 'x'" (with a did-you-mean). */
int segment_get(sqlite3 *db, const char *name, struct segment_def *out, struct herr *err);

/* Call fn for every saved segment in name order; stops when fn returns -1. */
int segment_each_saved(sqlite3 *db, int (*fn)(void *ctx, const struct segment_def *d),
                       void *ctx, struct herr *err);

/* Delete a saved segment; EX_NOINPUT when there is none of that name,
 * EX_DATAERR while an issue whose send has not started uses it (issue.h). */
int segment_remove(sqlite3 *db, const char *name, struct herr *err);

/* Compile saved segment `name` (segment_get + segment_compile with where
 * "segment NAME"). */
int segment_compile_saved(sqlite3 *db, const char *name, long long now, struct segment **out,
                          struct herr *err);

#endif
