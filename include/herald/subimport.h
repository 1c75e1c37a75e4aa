/*
 * subimport.h - importing a spreadsheet of subscribers into a list.
 *
 * The whole file is one transaction: every good row or none (a database
 * failure half-way leaves the list as it was); a dry run rolls it back.
 * Rows go through subscriber_signup_in() as SIGNUP_IMPORT, so an import
 * obeys the subscriber rules (never resubscribes, never adds a blocked or
 * suppressed address).  What each row came to is reported through the
 * callbacks, with its line, for the caller to print; bad rows are skipped
 * and counted, never fatal.  CSV parsing is csvimport.h's.
 *
 * The rows are written in the order of their addresses, not of the file
 * (subimport.c says why), so the subscribers one import adds get their
 * ids, and their places in `sub ls`, in address order.  The callbacks are
 * called at the end, all of them in line order, as if the file had been
 * written line by line; also when the import fails, for what was found
 * before.  The file is read on a thread the import starts and joins
 * (`fp` is not the caller's meanwhile); the callbacks are called on the
 * caller's thread.
 *
 * Consent (consent.h): each subscription the import makes or changes is
 * recorded with the source "import FILE" at the import's time, unless the
 * row carries a consent from another system in the optional columns
 * consent_at (ISO 8601, as issue_parse_time() reads it; not in the
 * future) and consent_source (that system's words): then those, with
 * "imported from FILE" as the detail.  They are not attributes; a bad
 * consent_at makes the row bad.  `sub export --with-consent` writes both
 * columns, so an export imported elsewhere keeps them.
 */
#ifndef HERALD_SUBIMPORT_H
#define HERALD_SUBIMPORT_H

#include <sqlite3.h>
#include <stdio.h>

#include "herald/csvimport.h"
#include "herald/herr.h"
#include "herald/list.h"
#include "herald/subscriber.h"

struct subimport_opts {
	FILE                           *fp;
	const char                     *path;    /* for messages: "subs.csv" */
	const struct list              *list;
	const struct csvimport_columns *columns; /* NULL: "email" and "name" */
	int                             unconfirmed;
	int                             welcome; /* queue the list's welcome (welcome.h (2)) */
	int                             dry_run;
	const struct token_key         *erased_key; /* the token secret: erased
	                                               addresses are skipped
	                                               (subscriber.h rule 10);
	                                               required */
};

struct subimport_report {
	long counts[SUBSCRIBE_N_RESULTS];
	long bad;
};

struct subimport_handler {
	/* A row skipped as bad: "invalid address 'x': missing '@'". */
	void (*bad)(void *ctx, unsigned long line, const char *reason);
	/* Something worth telling about a row that was taken. */
	void (*note)(void *ctx, unsigned long line, const char *message);
	/* A good row the subscriber rules left out (unsubscribed, blocked,
	 * suppressed): res says which. */
	void (*skipped)(void *ctx, unsigned long line, const char *addr,
	                enum subscribe_result res);
	void *ctx;
};

/* Import; `rep` counts what happened (also after a dry run, what would
 * have).  Returns 0 when the file was read (bad rows or not), -1 when the
 * file or the database failed: nothing was imported then. */
int subimport_run(sqlite3 *db, const struct subimport_opts *o, const struct subimport_handler *h,
                  struct subimport_report *rep, struct herr *err);

#endif
