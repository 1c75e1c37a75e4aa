/*
 * list.h - mailing lists: the lists table and the counts shown about them.
 *
 * A list name is what scripts and front matter use ("newsletter"): 1-64
 * characters of a-z 0-9 . _ -, checked here and by a CHECK in sql/.  The
 * title is the human name shown in mails and pages.  The consent text is
 * what its sign-up form says the reader agrees to (sql/018_consent_text.sql);
 * list_consent_shown() is the one answer to "what did a web sign-up see".
 */
#ifndef HERALD_LIST_H
#define HERALD_LIST_H

#include <sqlite3.h>

#include "herald/herr.h"

#define LIST_CONSENT_TEXT_MAX 1000  /* bytes; the CHECK of sql/018 */

struct list {
	long long id;
	char      name[65];
	char      title[256];
	char      consent_text[LIST_CONSENT_TEXT_MAX + 1]; /* "" when none set */
	int       double_opt_in;
	int       public;        /* its issues are in the web archive */
	int       signup;        /* herald serve's form takes sign-ups for it */
	long long created_at;
	long long n_confirmed;   /* subscriptions by status: list_each, list_get_counted */
	long long n_unconfirmed;
	long long n_unsubscribed;
	long long n_issues;      /* issues going to it (one of their lists) */
};

/* Check a list name; EX_DATAERR with the reason when it is not valid. */
int list_name_check(const char *name, struct herr *err);

/* Create a list; EX_DATAERR when the name is invalid or already taken. */
int list_create(sqlite3 *db, const char *name, const char *title, int double_opt_in,
                int public, long long *id_out, struct herr *err);

/* A list's settings, for list_create_with() and list_set(): NULL or -1
 * leaves a setting as it is (list_create_with: "" and 0). */
struct list_settings {
	const char *title;
	int         double_opt_in;
	int         public;
	int         signup;
	const char *consent_text;  /* NULL: unchanged (set) or none (create); "" clears */
};
#define LIST_SETTINGS_UNCHANGED { NULL, -1, -1, -1, NULL }

/* What a web sign-up to `l` was shown to agree to: its consent text, else
 * its title, else its name.  The consent record of a form sign-up keeps
 * it (consent.h (4)). */
const char *list_consent_shown(const struct list *l);

int list_create_with(sqlite3 *db, const char *name, const struct list_settings *s,
                     long long *id_out, struct herr *err);
/* Change the settings of list `name`; EX_NOINPUT when there is none. */
int list_set(sqlite3 *db, const char *name, const struct list_settings *s, struct herr *err);

/* Find by name; EX_NOINPUT "no list named 'x'" when absent. */
int list_get(sqlite3 *db, const char *name, struct list *out, struct herr *err);
int list_get_by_id(sqlite3 *db, long long id, struct list *out, struct herr *err);
/* list_get() with the counts, which read all the list's subscriptions
 * (list show, list rm); list_get() and list_get_by_id() leave them 0. */
int list_get_counted(sqlite3 *db, const char *name, struct list *out, struct herr *err);

/* Call fn for every list in name order; stops when fn returns -1. */
int list_each(sqlite3 *db, int (*fn)(void *ctx, const struct list *l), void *ctx,
              struct herr *err);

/*
 * Delete a list and its subscriptions.  Refused with EX_DATAERR while
 * issues going to the list (one of their lists) exist unless `force` (then
 * they go too, with their ledgers).  Subscribers themselves stay: they may
 * be on other lists.
 */
int list_remove(sqlite3 *db, const char *name, int force, struct herr *err);

#endif
