/*
 * bounce.h - read a returned message and say what it means.
 *
 * A message that comes back to herald's return path is one of: a delivery
 * status notification (RFC 3464 multipart/report, or one of the older
 * non-standard shapes of qmail, Exchange, Exim, Sendmail, ...), a feedback
 * report (RFC 5965 ARF: a complaint), an auto-reply (RFC 3834), or a "delayed"
 * notice.  bounce_parse() turns its bytes into a bounce_report: one entry per
 * recipient the message speaks of, each with the enhanced status code
 * (RFC 3463), the reply code, the diagnostic text, and a reason from the
 * vocabulary of the sisimai project (userunknown, mailboxfull, ...), so that
 * results compare directly with its test corpus.
 *
 * This module only reads: it never touches the database.  Finding the
 * subscriber (VERP token, Message-ID) and acting on the result belong to
 * bouncelog.c.  MIME parsing is GMime 3's; the parser must survive hostile
 * input (it is fuzzed: tests/fuzz/fuzz_bounce.c).
 */
#ifndef HERALD_BOUNCE_H
#define HERALD_BOUNCE_H

#include <stddef.h>

#include "herald/herr.h"

/* A hex SHA-256 and its NUL. */
#define BOUNCE_DIGEST_SIZE 65
/* Room for the decision path of one recipient (bounce_recipient.why). */
#define BOUNCE_WHY_SIZE 320

/* What a recipient's entry means for the sender. */
enum bounce_class {
	BOUNCE_HARD,      /* permanent: the address is dead (sisimai's hardbounce) */
	BOUNCE_SOFT,      /* failed, but may work later (mailbox full, blocked, ...) */
	BOUNCE_COMPLAINT, /* ARF feedback report: the recipient complained */
	BOUNCE_AUTOREPLY, /* vacation / auto-reply: ignored */
	BOUNCE_DELAYED,   /* Action: delayed, still trying: ignored */
	BOUNCE_DELIVERED, /* Action: delivered/relayed/expanded (a success DSN): ignored */
};

struct bounce_recipient {
	char *recipient;      /* the address, as found (never NULL; "" if none) */
	char  status[16];     /* RFC 3463 "5.1.1", or "" when none is known */
	int   reply_code;     /* RFC 5321 "550", or 0 */
	char *diagnostic;     /* diagnostic text, unfolded, one line; "" if none */
	char *remote_mta;     /* Remote-MTA or the host named; "" if none */
	char *action;         /* RFC 3464 Action, lower case; "" if none */
	char *feedback_type;  /* ARF Feedback-Type (abuse, fraud, ...); "" otherwise */
	const char *reason;   /* sisimai vocabulary, a static string, never NULL */
	enum bounce_class cls;
	/* How class and reason were decided, one line for people: the fields
	 * that won and the rule that used them, e.g. "Action: failed; status
	 * 5.1.1 (bad mailbox) at RCPT -> userunknown; 5.x.x -> hard".  Never
	 * empty for a recipient with a class. */
	char  why[BOUNCE_WHY_SIZE];
};

struct bounce_report {
	/* The report's own headers. */
	char *message_id;        /* of the bounce itself, without <>; "" if none */
	char *from;              /* "" if none */
	char *subject;           /* decoded; "" if none */
	/* Where the bounce was sent to: Delivered-To, X-Original-To, then To
	 * (the first that carries a '+' extension wins).  bouncelog.c looks for
	 * a VERP token in its local part.  "" if none. */
	char *envelope_to;
	/* The returned original's headers, when the report carries them
	 * (message/rfc822, text/rfc822-headers, or quoted in the text). */
	char *orig_message_id;   /* without <>; "" if none */
	char *orig_to;           /* "" if none */
	char *orig_from;         /* "" if none */
	const char *shape;       /* what it was read as: "rfc3464", "arf", "rfc3834",
	                            "qmail", "exim", ... (static) */
	char   sha256[BOUNCE_DIGEST_SIZE]; /* bounce_digest() of the bytes as given */
	size_t n_recipients;
	struct bounce_recipient *recipients;
};

/* Parse `len` bytes of one message (LF, CRLF or CR line ends).
 * `envelope_to`, when not NULL, is the recipient the MTA delivered to (for
 * a pipe: $RECIPIENT / $ORIGINAL_RECIPIENT) and takes precedence over the
 * headers.  Returns 0 and a report (possibly with no recipients: not a bounce
 * herald understands) or -1 with EX_DATAERR when the bytes are not a message
 * at all, EX_OSERR when out of memory.  Never crashes on any input. */
int bounce_parse(const char *data, size_t len, const char *envelope_to,
                 struct bounce_report **out, struct herr *err);
void bounce_report_free(struct bounce_report *r);

/* The lower-case hex SHA-256 of `len` bytes exactly as given (no line-end
 * normalisation): the key by which bouncelog_ingest() knows a message it
 * has read before, so a second copy changes nothing.  bounce_parse() puts
 * it in the report; a caller that records bytes bounce_parse() refused as
 * not a message (EX_DATAERR) takes it from here, so both agree.  Returns 0,
 * or -1 with EX_OSERR (and "" in `out`) when OpenSSL cannot compute it. */
int bounce_digest(const char *data, size_t len, char out[BOUNCE_DIGEST_SIZE],
                  struct herr *err);

/* What is known of one recipient's failure, for bounce_decide(). */
struct bounce_evidence {
	const char *action;      /* RFC 3464 Action, lower case ("failed", "delayed",
	                            "delivered", ...); NULL or "" when none */
	const char *status;      /* RFC 3463 code, or NULL / "" */
	int         reply_code;  /* RFC 5321 reply, or 0 */
	const char *diagnostic;  /* the text, or NULL / "" */
	/* The SMTP phase the failure answered: "CONN", "EHLO", "MAIL",
	 * "RCPT", "DATA" (also "end of data"), the sender's stage names
	 * (smtp_stage_name()), "LOCAL" for a failure the reporting MTA met
	 * itself (no remote server asked), or NULL when unknown. */
	const char *phase;
	/* 1: from a returned message, so the MTA has given up (unless the
	 * Action says delayed); 0: a reply met live at SMTP time, after which
	 * the sender itself retries a 4yz. */
	int         returned;
};

/* Decide class and reason of one failure by bouncereason.c's decision
 * table (structure first: the notice's Action, an MTA's fixed wording,
 * the phase, status and reply code, then the text).  Sets *reason
 * (static) and, when `why` is not NULL, the decision path in `why` (see
 * bounce_recipient.why).  Returns any class but COMPLAINT and AUTOREPLY
 * (a vacation reason is still class soft: the shape decides those). */
enum bounce_class bounce_decide(const struct bounce_evidence *e, const char **reason,
                                char *why, size_t why_size);

/* bounce_decide() without an Action and without the why line: for
 * rejections met at SMTP time by the sender, so both kinds land in the
 * same table with the same reasons.  `smtp_command` is the phase.
 * BOUNCE_HARD or BOUNCE_SOFT (BOUNCE_DELIVERED for a 2.X.Y status). */
enum bounce_class bounce_classify(const char *status, int reply_code, const char *diagnostic,
                                  const char *smtp_command, const char **reason);

/* "hard", "soft", "complaint", "autoreply", "delayed", "delivered". */
const char *bounce_class_name(enum bounce_class c);

#endif
