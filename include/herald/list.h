/*
 * list.h - mailing lists: the lists table and the counts shown about them.
 *
 * A list name is what scripts and front matter use ("newsletter"): 1-64
 * characters of a-z 0-9 . _ -, checked here and by a CHECK in sql/.  The
 * title is the human name shown in mails and pages.
 */
#ifndef HERALD_LIST_H
#define HERALD_LIST_H

#include <sqlite3.h>

#include "herald/herr.h"

struct list {
	long long id;
	char      name[65];
	char      title[256];
	int       double_opt_in;
	int       public;        /* its issues are in the web archive */
	int       signup;        /* herald serve's form takes sign-ups for it */
	long long created_at;
	long long n_confirmed;   /* subscriptions by status, filled by list_get/list_each */
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
};
#define LIST_SETTINGS_UNCHANGED { NULL, -1, -1, -1 }

int list_create_with(sqlite3 *db, const char *name, const struct list_settings *s,
                     long long *id_out, struct herr *err);
/* Change the settings of list `name`; EX_NOINPUT when there is none. */
int list_set(sqlite3 *db, const char *name, const struct list_settings *s, struct herr *err);

/* Find by name; EX_NOINPUT "no list named 'x'" when absent. */
int list_get(sqlite3 *db, const char *name, struct list *out, struct herr *err);
int list_get_by_id(sqlite3 *db, long long id, struct list *out, struct herr *err);

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
