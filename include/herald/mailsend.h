/*
 * mailsend.h - sending one message outside an issue's send loop.
 *
 * The one path for every single message herald sends: the confirmation
 * mail of a sign-up (web.c's mail thread), the [TEST] copy of `issue
 * test`, and whatever single mail comes later (welcome mail, an API's
 * one-off message).  An issue's campaign goes through sendjob.h instead,
 * which paces many connections; both record every hand-over in
 * relay_usage (relayuse.h), so a relay's max_per_hour and max_per_day
 * count test and confirmation mail too.
 *
 * Relay choice: the relays in config order.  One whose hour or day window
 * is full (counted from relay_usage, so other processes' sends count) is
 * passed over.  One that cannot be used at all (no connection, a refused
 * login or TLS) is passed over for the next; a relay that answered about
 * the recipient (sent, deferred, rejected) is the answer.  Connections stay
 * open between messages until mailsend_idle() or mailsend_close().
 *
 * DKIM: the signer the config asks for is loaded once here and handed to
 * the message builders (message.h) through mailsend_dkim().
 */
#ifndef HERALD_MAILSEND_H
#define HERALD_MAILSEND_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/config.h"
#include "herald/dkim.h"
#include "herald/herr.h"
#include "herald/smtp.h"

struct mailsend;

/* `db` records relay usage and counts the windows; the caller keeps it
 * open (and uses it from one thread) while `out` lives.  Fails when the
 * DKIM key cannot be loaded (EX_CONFIG). */
int mailsend_open(const struct config *cfg, sqlite3 *db, struct mailsend **out,
                  struct herr *err);
void mailsend_close(struct mailsend *ms);

/* The DKIM signer for builders, or NULL when [dkim] is not configured. */
const struct dkim_signer *mailsend_dkim(const struct mailsend *ms);

struct mailsend_result {
	struct smtp_result smtp;   /* the last relay's answer */
	const char        *relay;  /* its config name, NULL when none was tried */
};

/*
 * Hand `len` bytes of `msg` from `mail_from` to `rcpt`.  Returns 0 once a
 * relay accepted it.  Otherwise -1 with `err` naming the recipient and
 * the relay's words: EX_TEMPFAIL when it may go later (deferred, no relay
 * reachable, every window full), EX_UNAVAILABLE when refused for good.
 * `res` is filled either way.  Usage-recording failures do not fail a
 * message that went (it went); they are in res->relay's log by the caller.
 */
int mailsend_one(struct mailsend *ms, const char *mail_from, const char *rcpt,
                 const char *msg, size_t len, struct mailsend_result *res, struct herr *err);

/* Close the relay connections (an idle mail thread). */
void mailsend_idle(struct mailsend *ms);

#endif
