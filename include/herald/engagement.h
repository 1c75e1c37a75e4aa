/*
 * engagement.h - what a subscriber did with the mail herald sent them, and
 * the sunset rule built on it.
 *
 * Definitions (one text each; segment.c, audience.c and report.c use these
 * rather than writing their own):
 *   (1) An engaging act is a click, or an open that is not a machine open
 *       (report.h: REPORT_SQL_MACHINE_OPEN).  ENGAGEMENT_SQL_ACT is it.
 *       segment.h's `engaged SPAN` is "an engaging act within SPAN".
 *   (2) The last human open, the last click, the last issue sent: the
 *       latest such event (events.at) and the latest delivery in status
 *       `sent` (deliveries.sent_at), each with its issue.  `sub show`
 *       prints them (engagement_get()).
 *   (3) Sunset.  With [audience] sunset_after = SPAN (config.h; 0: off), a
 *       subscriber is unengaged at time NOW when
 *         - their first delivery was sent at or before NOW - SPAN (they
 *           have been getting mail for the whole span),
 *         - at least one delivery was sent within [NOW - SPAN, NOW], and
 *         - they did no engaging act within [NOW - SPAN, NOW].
 *       ENGAGEMENT_SQL_SUNSET writes that as a test on subscriber alias `s`.
 *       audience.c leaves the unengaged out of every audience (audience.h);
 *       `herald sub ls --unengaged` lists them (engagement_each_unengaged()).
 *
 * Reads events, deliveries and issues; writes nothing.  Cost: (2) is three
 * lookups by subscriber (events_by_subscriber; deliveries has no index by
 * subscriber, so the last issue sent is one scan of it); (3) builds its
 * set once per statement from one pass over deliveries grouped by
 * subscriber and one over events in the span, like `engaged`.
 */
#ifndef HERALD_ENGAGEMENT_H
#define HERALD_ENGAGEMENT_H

#include <sqlite3.h>

#include "herald/herr.h"
#include "herald/report.h"

/* SQL: (1), for event alias E (a string).  Never NULL. */
#define ENGAGEMENT_SQL_ACT(E) \
	"(" E ".kind = 'click' OR (" E ".kind = 'open' AND NOT " REPORT_SQL_MACHINE_OPEN(E) "))"

/* SQL: (3) for subscriber alias `s`; FROM and NOW are SQL operands (two
 * parameters, "?99" and "?100") holding NOW - SPAN and NOW.  Never NULL:
 * the set holds no NULL (deliveries.subscriber_id is NOT NULL). */
#define ENGAGEMENT_SQL_SUNSET(FROM, NOW) \
	"s.id IN (SELECT sd.subscriber_id FROM deliveries sd WHERE sd.status = 'sent' " \
	"GROUP BY sd.subscriber_id HAVING min(sd.sent_at) <= " FROM " " \
	"AND max(sd.sent_at BETWEEN " FROM " AND " NOW ") " \
	"EXCEPT SELECT e.subscriber_id FROM events e WHERE e.at BETWEEN " FROM " AND " NOW \
	" AND e.kind IN ('open', 'click') AND " ENGAGEMENT_SQL_ACT("e") ")"

/* (2) for one subscriber; 0 in a time or an issue id means none. */
struct engagement {
	long long last_open_at, last_open_issue;   /* the last human open */
	long long last_click_at, last_click_issue; /* the last click */
	long long last_sent_at, last_sent_issue;   /* the last issue sent */
	char     *last_sent_subject;               /* owned; NULL when none */
	int       unengaged;                       /* (3) now; 0 when sunset is off */
};
#define ENGAGEMENT_INIT { 0, 0, 0, 0, 0, 0, NULL, 0 }

/*
 * Fill *out for subscriber `subscriber_id`; `sunset_after` (seconds, 0:
 * off) and `now` decide out->unengaged.  Free with engagement_clear(),
 * also after a failure.  Returns 0 or -1 (a database error).
 */
int engagement_get(sqlite3 *db, long long subscriber_id, long long sunset_after,
                   long long now, struct engagement *out, struct herr *err);
void engagement_clear(struct engagement *e);

/* One unengaged subscriber, for engagement_each_unengaged()'s callback; the
 * pointers are valid only during the call. */
struct engagement_row {
	long long   id;
	const char *email;
	const char *name;
	long long   first_sent_at; /* their first delivery */
	long long   last_sent_at;  /* their last delivery */
};

/*
 * Call fn for each active subscriber who is unengaged (3) at `now` with
 * span `sunset_after` (> 0), in id order.  Stops with -1 when fn returns
 * -1 (err untouched unless the database failed).
 */
int engagement_each_unengaged(sqlite3 *db, long long sunset_after, long long now,
                              int (*fn)(void *ctx, const struct engagement_row *r), void *ctx,
                              struct herr *err);

#endif
