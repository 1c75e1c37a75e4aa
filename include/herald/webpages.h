/*
 * webpages.h - the HTML of the pages `herald serve` shows.
 *
 * Small self-contained pages: one inline <style>, no scripts, no external
 * assets (the server's Content-Security-Policy forbids them), lang and
 * title set, forms that POST to the page's own URL (no action attribute).
 * Every value from the database or the request is escaped with
 * tmpl_escape_html().  Each function appends one whole page to `b` and
 * returns 0, or -1 when the buffer's cap is reached or memory runs out.
 * `lang` is [render] lang ("en" when NULL).
 */
#ifndef HERALD_WEBPAGES_H
#define HERALD_WEBPAGES_H

#include "herald/buf.h"

/* A heading and one paragraph: errors and simple notices. */
int webpage_notice(struct buf *b, const char *lang, const char *heading, const char *text);

/* GET /u/TOKEN: "Unsubscribe from TITLE?" for `email`, with the button.
 * `list_title` names the `n_lists` lists unsubscribing ends ("News and
 * Research": subscriber.h rule (9)); with more than one the page says
 * that the issue came through them all and the reader leaves them all. */
int webpage_unsubscribe_ask(struct buf *b, const char *lang, const char *list_title,
                            size_t n_lists, const char *email);
/* After the form: "You have been unsubscribed from TITLE", "Subscribe again";
 * `n_lists` as above.  With a `nonce` (webprefs.h), the optional "Why are
 * you leaving?" form below (POST action=survey). */
int webpage_unsubscribed(struct buf *b, const char *lang, const char *list_title,
                         size_t n_lists, const char *email, const char *nonce);
/* After "Subscribe again": "You are subscribed again". */
int webpage_resubscribed(struct buf *b, const char *lang, const char *list_title,
                         const char *email);

/* GET /confirm/TOKEN: "Confirm my subscription" button. */
int webpage_confirm_ask(struct buf *b, const char *lang, const char *list_title,
                        const char *email);
/* POST /confirm/TOKEN: "Subscription confirmed". */
int webpage_confirmed(struct buf *b, const char *lang, const char *list_title,
                      const char *email);
/* /confirm/TOKEN of a used or expired link: nothing changed; a "Send me a
 * new link" button (POST action=resend). */
int webpage_confirm_expired(struct buf *b, const char *lang, const char *list_title,
                            const char *email);

/* POST /subscribe to a double opt-in list: "Check your inbox". */
int webpage_check_inbox(struct buf *b, const char *lang, const char *list_title,
                        const char *email);
/* POST /subscribe to a single opt-in list: "You are subscribed". */
int webpage_subscribed(struct buf *b, const char *lang, const char *list_title,
                       const char *email);

/* A list's sign-up form: e-mail, name, the tracking checkbox when
 * [tracking] mode = consent, the consent text above the button, posting
 * `list` to `action` (POST /subscribe; web.h). */
struct webpage_signup {
	const char *list_name;
	const char *list_title;    /* the title, else the name */
	const char *consent_text;  /* the list's consent text; "" or NULL: none */
	const char *action;        /* the form's action URL */
	int         tracking_shown;
};
/* The <form> alone, for an organisation's own page (`herald list form`). */
int webpage_signup_form(struct buf *b, const struct webpage_signup *f);
/* GET /subscribe/NAME: the hosted page holding that form. */
int webpage_signup(struct buf *b, const char *lang, const struct webpage_signup *f);

/* One list on the preference centre's page. */
struct webpage_pref_list {
	long long   id;          /* the checkbox's value (field "list") */
	const char *title;
	const char *consent_text; /* what ticking it agrees to (list.h); "" or NULL: none */
	int         checked;     /* subscribed, or waiting for confirmation */
	int         waiting;     /* unconfirmed: "waiting for your confirmation" */
};

struct webpage_prefs {
	const char *email, *name;
	const char *token;       /* the page's token: the export and forget forms
	                            post to TOKEN/export and TOKEN/forget */
	const char *nonce;       /* every form's hidden `nonce` (webprefs.h) */
	const struct webpage_pref_list *lists;
	size_t      n;
	const char *notice;      /* NULL, or a paragraph above it all ("saved") */
	int         survey;      /* the reader just left a list: the survey form */
	int         tracking_shown;   /* [tracking] mode = consent: the checkbox */
	int         tracking_consent; /* its state: the reader's tracking_consent */
};

/* GET /p/TOKEN, and the answer to its POST: the address, the name, a
 * checkbox per list, "Save my choices" (action=save), "Unsubscribe from
 * everything" (action=leave_all), maybe the survey, and the two forms of
 * the reader's data ("Download my data", "Delete me"). */
int webpage_preferences(struct buf *b, const char *lang, const struct webpage_prefs *p);

/* GET /erase/CODE (the link of the "delete me" mail): what erasing
 * `email` means, and the button that does it (POST action=erase). */
int webpage_erase_ask(struct buf *b, const char *lang, const char *email);

struct webpage_issue {
	long long   id;
	const char *subject;
	const char *list_title;
	long long   date;        /* Unix time the send started */
};

/* GET /archive: the issues, newest first as given; each links to
 * HREF_PREFIX + id ("archive/" or "", relative to the page). */
int webpage_archive(struct buf *b, const char *lang, const char *href_prefix,
                    const struct webpage_issue *v, size_t n);

#endif
