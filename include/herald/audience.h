/*
 * audience.h - who an issue goes to, and what herald knows about them.
 *
 * An audience is one or more lists and, optionally, a segment (segment.h):
 * every subscriber confirmed on at least one of the lists, who is globally
 * active (not blocked, bounced or complained) and not suppressed
 * (suppress.h), and whom the segment matches - each person once, however
 * many of the lists they are on.  audience_sql() writes that rule, once:
 * the recipient snapshot of a send (ledger_snapshot()), the counts made
 * before a send (`issue show`, `issue schedule`, the merge-field check
 * below) and the listing (`issue audience`) all use it, so what herald
 * shows and warns about is what it will send to.
 *
 * issue.c builds an issue's audience (issue_audience(): its lists from
 * issue_lists, its saved segment or inline `where:` compiled at that
 * moment); this file knows nothing of issues.
 *
 * audience_field_gaps() answers "how many recipients would see a blank
 * where the issue says {{attr.organization}}?" for issue.c's checks at
 * `issue new`, `issue schedule` and the start of a send.
 *
 * SUNSET: with [audience] sunset_after set (audience_set_sunset(), once
 * per process by the CLI's setup, as db_set_now() sets the clock), the
 * rule leaves out the unengaged (engagement.h (3)): people who were sent
 * issues over the whole span and engaged with none.  It is one more
 * exclusion in audience_sql(), so the snapshot, the counts and `issue
 * audience` agree.  EXCEPT: an audience whose filter has an `engaged` term
 * (segment_targets_engagement(): `where: not engaged 365d`, or a saved
 * segment that says it) targets engagement itself and is left as its
 * filter says; the sunset rule does not apply to it.  When a send starts,
 * audience_record() keeps how many the rule left out, and the audience's
 * definition as it was (lists, segment and its expression, or where:), in
 * the send_audiences table (sql/011_engagement.sql) for `herald stats`.
 *
 * PARAMETERS: audience_sql() uses ?1 (the list ids, as one JSON array
 * bound by audience_bind()), ?99 and ?100 (AUDIENCE_PARAM_SUNSET: the
 * sunset's span start and now) and the segment's ?101 and up (segment.h),
 * so a statement around it may use ?2 to ?98 for its own values.
 */
#ifndef HERALD_AUDIENCE_H
#define HERALD_AUDIENCE_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/buf.h"
#include "herald/herr.h"
#include "herald/segment.h"
#include "herald/suppress.h"

/* SQL: true when subscriber `s` (table alias) with subscription `sub` (to
 * the list in question) may be mailed: the rule of audience_sql() for one
 * list, for segment.c's one-list questions (`segment count --list`). */
#define AUDIENCE_SQL_MEMBER \
	"(sub.status = 'confirmed' AND s.status = 'active' " \
	"AND " SUPPRESS_SQL_NOT("s.email_key") ")"
/* SQL: ... and in the audience of list LIST (a parameter, "?1"). */
#define AUDIENCE_SQL_WHERE(LIST) \
	"sub.list_id = " LIST " AND " AUDIENCE_SQL_MEMBER
/* SQL: the FROM clause AUDIENCE_SQL_WHERE expects. */
#define AUDIENCE_SQL_FROM \
	"subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id"

/* SQL: true while subscriber `s` may still be mailed issue ISSUE (an SQL
 * expression): active, not suppressed, and confirmed on at least one of the
 * issue's lists (issue_lists).  ledger.c asks it of each snapshotted row at
 * claim time (ledger.h (6)); the segment is not asked again there: whom it
 * matched was decided when the send started. */
#define AUDIENCE_SQL_ISSUE_MEMBER(ISSUE) \
	"(s.status = 'active' AND EXISTS (SELECT 1 FROM issue_lists il " \
	"JOIN subscriptions sub ON sub.list_id = il.list_id AND sub.subscriber_id = s.id " \
	"WHERE il.issue_id = " ISSUE " AND sub.status = 'confirmed') " \
	"AND " SUPPRESS_SQL_NOT("s.email_key") ")"

#define AUDIENCE_PARAM_SUNSET 99 /* ?99: now - sunset_after; ?100: now */

#define AUDIENCE_KEY_MAX   128
#define AUDIENCE_LISTS_MAX 32  /* lists of one audience (an issue's lists:) */

/* Lists and an optional filter.  Fill it with audience_add_list() and, for
 * a filter, set `seg` (the audience owns it then); audience_clear() frees. */
struct audience {
	long long       list_ids[AUDIENCE_LISTS_MAX]; /* distinct, in the issue's order */
	size_t          n_lists;
	struct segment *seg;                          /* NULL: everyone on the lists */
};
#define AUDIENCE_INIT { { 0 }, 0, NULL }

/* [audience] sunset_after in seconds, 0 (the default) for off; for every
 * audience this process evaluates afterwards. */
void audience_set_sunset(long long sunset_after);
/* The span set, 0 when off. */
long long audience_sunset(void);
/* 1 when the sunset rule applies to `a`: it is on and a's filter does not
 * target engagement (head comment). */
int audience_sunset_applies(const struct audience *a);

/* Add a list (again: ignored).  EX_DATAERR past AUDIENCE_LISTS_MAX. */
int audience_add_list(struct audience *a, long long list_id, struct herr *err);

/* Free the segment and empty `a`. */
void audience_clear(struct audience *a);

/*
 * Append to `sql` the audience rule as a boolean SQL expression over
 * `s` (FROM subscribers s), parenthesised: the caller writes
 * "SELECT ... FROM subscribers s WHERE " and this.  Parameters as in the
 * head comment; bind them with audience_bind() after preparing.  An
 * audience of no lists is nobody.  -1 only when `sql` is full.
 */
int audience_sql(const struct audience *a, struct buf *sql);

/* Bind ?1 and the segment's parameters in `st`; -1 (EX_OSERR, EX_SOFTWARE). */
int audience_bind(const struct audience *a, sqlite3_stmt *st, struct herr *err);

/* How many people the audience is now. */
int audience_count(sqlite3 *db, const struct audience *a, long long *n, struct herr *err);

/* How many people the sunset rule leaves out of the audience now: those
 * the rule without it would take who are unengaged.  0 when it does not
 * apply. */
int audience_count_unengaged(sqlite3 *db, const struct audience *a, long long *n,
                             struct herr *err);

/*
 * Record the audience of issue `issue_id` as its send starts: its lists'
 * names, `segment` (a saved segment's name, or NULL) with that segment's
 * expression as saved now, or `where` (an inline expression, or NULL), the
 * sunset span applied (0: off, or not applied) and how many it left out.
 * Inside the transaction that takes the snapshot (issue.c), so the count
 * is of the same moment.  A second call for one issue changes nothing.
 */
int audience_record(sqlite3 *db, long long issue_id, const struct audience *a,
                    const char *segment, const char *where, struct herr *err);

/* The record of one send, as audience_record() kept it. */
struct audience_sent {
	int       found;                 /* 0: the send has not started (or
	                                    started before herald kept this) */
	char      lists[AUDIENCE_LISTS_MAX * 68]; /* JSON array of list names */
	char      segment[65];           /* "" when none */
	char      expr[4097];            /* the segment's expression or where:, "" */
	long long sunset_after;          /* seconds; 0: not applied */
	int       sunset_skipped;        /* on, but the filter targets engagement */
	long long unengaged;             /* left out by the sunset rule */
	long long at;                    /* when the send started */
};

/* Read the record of issue `issue_id` into *out (out->found 0 when none). */
int audience_sent_get(sqlite3 *db, long long issue_id, struct audience_sent *out,
                      struct herr *err);

/* One person of the audience, for audience_each's callback; the pointers
 * are valid only during the call. */
struct audience_row {
	long long   id;
	const char *email;
	const char *name;
	const char *lists; /* the names of the audience's lists they are confirmed
	                      on, in the audience's order, comma-separated */
};

/* Call fn for each person audience_count() counts, in subscriber id order
 * (the order a send goes in).  Stops with -1 when fn returns -1 (err
 * untouched unless the database failed). */
int audience_each(sqlite3 *db, const struct audience *a,
                  int (*fn)(void *ctx, const struct audience_row *r), void *ctx,
                  struct herr *err);

/* One merge field asked about, and what the audience holds for it. */
struct audience_gap {
	const char *field;    /* IN: "name", "first_name" or "attr.KEY" */
	long long   missing;  /* OUT: recipients with no (or an empty) value */
	/* OUT, for attr.KEY fields that some recipients lack: the closest
	 * attribute key that recipients do have ("organisation" for
	 * "organization"), and how many have it; "" and 0 when none is near. */
	char        suggest[AUDIENCE_KEY_MAX];
	long long   suggest_have;
};

/*
 * Count the audience `a` into *total and, for each of
 * gaps[0..n), the recipients without a value for its field.  A value
 * counts as present when the merge would print something: a non-empty
 * name (first_name: the same), an attribute that is a non-empty string.
 * One pass over the audience for all fields together.  Returns 0 or -1.
 */
int audience_field_gaps(sqlite3 *db, const struct audience *a, struct audience_gap *gaps,
                        size_t n, long long *total, struct herr *err);

#endif
