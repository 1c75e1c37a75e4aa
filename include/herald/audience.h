/*
 * audience.h - who an issue goes to, and what herald knows about them.
 *
 * The audience of a list is every subscriber confirmed on it who is
 * globally active (not blocked, bounced or complained) and not suppressed
 * (suppress.h).  AUDIENCE_SQL_WHERE is that rule, written once: the
 * recipient snapshot of a send (ledger.c) and every count made before a
 * send (the merge-field check below) use it, so what herald warns about is
 * what it will send to.
 *
 * audience_field_gaps() answers "how many recipients would see a blank
 * where the issue says {{attr.organization}}?" for issue.c's checks at
 * `issue new`, `issue schedule` and the start of a send.
 */
#ifndef HERALD_AUDIENCE_H
#define HERALD_AUDIENCE_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/herr.h"
#include "herald/suppress.h"

/* SQL: true when subscriber `s` (table alias) with subscription `sub` (to
 * the list in question) may be mailed; NULL when `sub` is a LEFT JOIN
 * that found no row, so test it with IS 1 there. */
#define AUDIENCE_SQL_MEMBER \
	"(sub.status = 'confirmed' AND s.status = 'active' " \
	"AND " SUPPRESS_SQL_NOT("s.email_key") ")"
/* SQL: ... and in the audience of list LIST (a parameter, "?1"). */
#define AUDIENCE_SQL_WHERE(LIST) \
	"sub.list_id = " LIST " AND " AUDIENCE_SQL_MEMBER
/* SQL: the FROM clause AUDIENCE_SQL_WHERE expects. */
#define AUDIENCE_SQL_FROM \
	"subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id"

#define AUDIENCE_KEY_MAX 128

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
 * Count the audience of list `list_id` into *total and, for each of
 * gaps[0..n), the recipients without a value for its field.  A value
 * counts as present when the merge would print something: a non-empty
 * name (first_name: the same), an attribute that is a non-empty string.
 * One pass over the audience for all fields together.  Returns 0 or -1.
 */
int audience_field_gaps(sqlite3 *db, long long list_id, struct audience_gap *gaps,
                        size_t n, long long *total, struct herr *err);

#endif
