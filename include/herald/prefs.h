/*
 * prefs.h - the preference centre's rules and the leaving survey.
 *
 * What a reader may change about themselves from the "manage your
 * subscription" link of a mail (GET and POST /p/TOKEN, webprefs.c), and the
 * answers to the optional "Why are you leaving?" that follows any web
 * unsubscribe.  Each change goes through the core function that owns it
 * (subscriber.h), all of one save in one transaction:
 *   - unticking a list: subscription_unsubscribe_in(), source "preferences",
 *     naming no issue (the reader chose lists, not "this mail": rule (9)
 *     does not apply and stats do not count it against an issue);
 *   - ticking one: subscriber_signup_in() as a SIGNUP_WEB, so subscriber.h
 *     rule (8) holds: a new subscription to a single opt-in list is made
 *     at once, one to a double opt-in list waits for its confirmation mail,
 *     and one that exists unconfirmed or unsubscribed changes only through
 *     the confirmation mail it sends;
 *   - a new name: subscriber_set_name_in() (rule (3));
 *   - a new address: a sign-up of that address to every ticked list, as a
 *     SIGNUP_WEB that waits unconfirmed even on single opt-in lists, so it
 *     gets its own confirmation mail and nothing changes until its owner
 *     follows it.  The current address keeps its subscriptions.
 *
 * Which lists the page shows (prefs_lists()): every list the reader has a
 * subscription to, whatever its status, and every list that takes web
 * sign-ups (`list create|set --signup`): a reader may join what a
 * stranger could join on the form, and no list that is not offered
 * becomes visible through the page.  At most PREFS_LISTS_MAX.
 *
 * Rules (tests/integration/test_preferences.py cites them):
 *   (1) only lists the page shows can change: a POST naming another list
 *       changes nothing for it;
 *   (2) "unsubscribe from everything" ends every subscription the reader
 *       has, one 'unsubscribe' event each, and changes nothing else;
 *   (3) an answer to the survey is only about lists the reader left in
 *       the last PREFS_SURVEY_SPAN seconds; with none, nothing is stored
 *       (EX_NOINPUT).  A second answer about the same leaving replaces the
 *       first.  Leaving never waits for it.
 *
 * The answers are stored in leave_answers (sql/014_preferences.sql), apart
 * from the consent records: `herald stats` counts them per issue (the
 * issue whose mail carried the link) and `herald list show` per list.
 */
#ifndef HERALD_PREFS_H
#define HERALD_PREFS_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/address.h"
#include "herald/herr.h"
#include "herald/list.h"

struct consent_ctx;

struct token_key; /* token.h */

#define PREFS_LISTS_MAX   40    /* lists on one page (web.h WEB_FORM_FIELDS has room) */
#define PREFS_SURVEY_SPAN 7200  /* seconds: how long after leaving an answer is taken */
#define PREFS_NOTE_MAX    300   /* bytes of the "other" text */

/* One list the page shows. */
struct prefs_list {
	long long id;
	char      name[65];
	char      title[256];     /* the title, else the name */
	char      consent_text[LIST_CONSENT_TEXT_MAX + 1]; /* list.h; "" when none */
	char      status[16];     /* the reader's subscription; "" when none */
	int       double_opt_in;
	int       signup;
};

/* The lists the page shows for `subscriber_id`, by title; *out is
 * malloc()ed (free() it, also when *n is 0).  EX_NOINPUT when there is no
 * such subscriber. */
int prefs_lists(sqlite3 *db, long long subscriber_id, struct prefs_list **out, size_t *n,
                struct herr *err);

/* What one POST asks. */
struct prefs_change {
	long long             subscriber_id;
	const char           *name;      /* NULL: unchanged; "" clears it */
	const struct address *new_addr;  /* NULL: unchanged (or the same address) */
	const long long      *ticked;    /* ids of the lists ticked on the form */
	size_t                n_ticked;
	int                   leave_all; /* rule (2): the ticks are ignored */
	/* -1: unchanged; 0/1: the reader's consent to tracking ([tracking]
	 * mode = consent), subscriber_set_tracking_consent() */
	int                   tracking_consent;
	/* The token secret: sign-ups check it against the erased
	 * (subscriber.h rule (10)); NULL skips that check (tests only). */
	const struct token_key *erased_key;
	/* How the reader asked (consent.h (5): source "preferences", client
	 * address, User-Agent); a list ticked here records it with the list's
	 * consent text (list_consent_shown()).  NULL: the source alone. */
	const struct consent_ctx *consent;
};

/* A confirmation mail the save asks for: the caller sends it (webmail.c)
 * after prefs_save() returned. */
struct prefs_mail {
	long long subscriber_id;  /* the reader, or the new address's subscriber */
	long long list_id;
	long long confirm_id;     /* confirmation_new() */
	int       new_address;    /* to prefs_change.new_addr, not the reader */
};

struct prefs_result {
	int               renamed;
	int               tracking_changed; /* tracking_consent changed */
	size_t            left;       /* subscriptions ended */
	size_t            joined;     /* subscriptions confirmed at once */
	struct prefs_mail mails[2 * PREFS_LISTS_MAX];
	size_t            n_mails;
};

/* 1 when saving `c` over `lists` (prefs_lists()) would send the reader a
 * confirmation mail (a ticked list they are not confirmed on, rule (8)),
 * so the caller can count it against the address's limit before saving. */
int prefs_needs_mail(const struct prefs_list *lists, size_t n, const struct prefs_change *c);

/* Save `c` against `lists` (what the page showed: prefs_lists() again, so
 * rule (1) holds) in one transaction.  EX_DATAERR for a name breaking
 * rule (3) of subscriber.h, with nothing written. */
int prefs_save(sqlite3 *db, const struct prefs_list *lists, size_t n,
               const struct prefs_change *c, struct prefs_result *out, struct herr *err);

/* The survey's fixed choices. */
enum prefs_reason {
	PREFS_TOO_MANY,        /* "too_many": too many mails */
	PREFS_NOT_RELEVANT,    /* "not_relevant" */
	PREFS_NEVER_SIGNED_UP, /* "never_signed_up" */
	PREFS_OTHER,           /* "other", with an optional short text */
	PREFS_N_REASONS
};

/* "too_many", ...; and the words people read ("Too many mails"). */
const char *prefs_reason_name(enum prefs_reason r);
const char *prefs_reason_label(enum prefs_reason r);
/* The reason named `s` ("too_many", ...), or -1. */
int prefs_reason_parse(const char *s);

/*
 * Store an answer of `subscriber_id`, reached from the mail of `issue_id`
 * (0: none), about the lists they left in the last PREFS_SURVEY_SPAN
 * seconds (rule 3).  `note` (NULL: none) is kept with PREFS_OTHER only: at
 * most PREFS_NOTE_MAX bytes of UTF-8, control characters turned into
 * spaces.  *n_lists: the lists it is about.  EX_NOINPUT when they left
 * none; EX_DATAERR for a note that is too long or not UTF-8.
 */
int prefs_survey_record(sqlite3 *db, long long subscriber_id, long long issue_id,
                        enum prefs_reason reason, const char *note, size_t *n_lists,
                        struct herr *err);

/* Answers per reason: of the issue `issue_id` (its mail carried the link),
 * or about the list `list_id`. */
int prefs_survey_counts_issue(sqlite3 *db, long long issue_id,
                              long long counts[PREFS_N_REASONS], struct herr *err);
int prefs_survey_counts_list(sqlite3 *db, long long list_id,
                             long long counts[PREFS_N_REASONS], struct herr *err);

#endif
