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
 * `n_lists` as above. */
int webpage_unsubscribed(struct buf *b, const char *lang, const char *list_title,
                         size_t n_lists, const char *email);
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
