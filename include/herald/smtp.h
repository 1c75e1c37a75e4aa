/*
 * smtp.h - handing one message to the relay over SMTP.
 *
 * A struct smtp_conn is one session with the relay, kept open between
 * messages (one TCP+TLS+AUTH for many; smtp_conn_connects() counts how many
 * were made).  libcurl opens it: TCP, implicit TLS or STARTTLS with its
 * certificate checks, the greeting, EHLO and AUTH (CURLOPT_CONNECT_ONLY
 * stops there).  herald then runs each message's transaction itself over
 * libcurl's connection: MAIL FROM, one RCPT TO and DATA in a single write
 * when the relay offers PIPELINING (RFC 2920), one at a time when not, then
 * the dot-stuffed body and its final dot in one write.  A session the relay
 * closed while it was kept (an idle timeout) is noticed before the next
 * message, which goes on a new one.
 *
 * The relay's words are kept: the reply that decided the message and the
 * step it answered (MAIL, RCPT, DATA, end of data) are returned, so the
 * ledger can store "550 5.1.1 <x>: user unknown" rather than an error
 * number.  Outgoing lines are never recorded beyond their command verb, so
 * AUTH credentials cannot reach a log.
 *
 * libcurl is initialised once by the program, not here: main (cli.c's
 * herald_main) calls curl_global_init() before any command runs and any
 * thread starts (libcurl's global init is not thread-safe), and
 * curl_global_cleanup() at exit.  Any other program using this module, a
 * test's main() for one, does the same.
 *
 * Classification (RFC 5321 §4.2.1, §4.5.4.1):
 *   2xx after the end of data          -> SMTP_SENT
 *   5xx to RCPT, DATA or end of data   -> SMTP_REJECTED (this recipient, permanent)
 *   4xx anywhere, 421, a dropped
 *   connection, a timeout              -> SMTP_DEFERRED (try again later)
 *   no connection at all               -> SMTP_UNREACHABLE (the relay, not the recipient)
 *   authentication or TLS failure,
 *   5xx to MAIL FROM or EHLO           -> SMTP_FATAL (configuration; stop the send)
 */
#ifndef HERALD_SMTP_H
#define HERALD_SMTP_H

#include <stddef.h>

#include "herald/config.h"
#include "herald/herr.h"

enum smtp_stage {
	SMTP_STAGE_CONNECT,
	SMTP_STAGE_GREETING,
	SMTP_STAGE_EHLO,
	SMTP_STAGE_STARTTLS,
	SMTP_STAGE_AUTH,
	SMTP_STAGE_MAIL,
	SMTP_STAGE_RCPT,
	SMTP_STAGE_DATA,
	SMTP_STAGE_EOD,   /* the reply to the final "." */
	SMTP_STAGE_QUIT,
};

enum smtp_outcome {
	SMTP_SENT,
	SMTP_DEFERRED,
	SMTP_REJECTED,
	SMTP_UNREACHABLE,
	SMTP_FATAL,
};

struct smtp_result {
	enum smtp_outcome outcome;
	enum smtp_stage   stage;   /* the step the last reply answered */
	int               code;    /* the last reply's code, 0 when none */
	char              reply[512]; /* the last reply's text, multi-line joined by " / " */
	char              queue_id[64]; /* the relay's queue id from the final 250, if any */
	char              detail[256];  /* libcurl's view, for connection-level failures */
};

struct smtp_conn;

/* Create a connection object for the relay in `cfg` (no I/O yet).  Reads
 * the password now and keeps it only inside libcurl. */
int smtp_conn_new(const struct config_relay *relay, struct smtp_conn **out, struct herr *err);
void smtp_conn_free(struct smtp_conn *c);

/* Send `len` bytes of `msg` (CRLF line ends; dot-stuffed here) from the
 * envelope sender `mail_from` to the single recipient `rcpt`.  Always fills
 * `r`; returns 0 when SMTP_SENT, -1 otherwise. */
int smtp_send(struct smtp_conn *c, const char *mail_from, const char *rcpt,
              const char *msg, size_t len, struct smtp_result *r);

/*
 * The message as DATA carries it (RFC 5321 §4.5.2): every '.' that starts
 * a line doubled, a CRLF added when the message does not end with one,
 * then the final ".\r\n".  smtp_dot_stuffed_size() is an upper bound of
 * what smtp_dot_stuff() writes to `out` and returns (without reading the
 * message: a dot doubled on every line).
 */
size_t smtp_dot_stuffed_size(const char *msg, size_t len);
size_t smtp_dot_stuff(const char *msg, size_t len, char *out);

/* The longest envelope address smtp_send_ahead() announces (RFC 5321
 * §4.5.3.1.3: a path is at most 256 octets). */
#define SMTP_ADDRESS_MAX 320

/* A message's envelope, announced before its turn. */
struct smtp_envelope {
	const char *from, *rcpt;
	size_t      len;
};

/*
 * As smtp_send(), and when the relay pipelines, `next`'s MAIL, RCPT and
 * DATA go out in the same write as this message's final dot (RFC 2920
 * §3.1 lets message content open a group), so that their replies are
 * waiting when its turn comes: one wait for the relay a message instead
 * of two.  Nothing of `next`'s content is sent before that turn, so it
 * can still be taken back; if the next call is for another message, the
 * session is closed (a DATA the relay answered 354 cannot be withdrawn;
 * without its final dot nothing is delivered) and a new one opened.
 * `next` may be NULL.
 */
int smtp_send_ahead(struct smtp_conn *c, const char *mail_from, const char *rcpt,
                    const char *msg, size_t len, const struct smtp_envelope *next,
                    struct smtp_result *r);

/* What smtp_probe() saw of a relay (herald doctor). */
struct smtp_probe {
	struct smtp_result r;     /* the last reply and the step it answered;
	                             outcome SMTP_SENT when every step went well */
	char ehlo[256];           /* the first line of the reply to EHLO */
	int  starttls_offered;    /* EHLO listed STARTTLS (RFC 3207 §4) */
	int  tls;                 /* the session ran under TLS: smtps://, or
	                             STARTTLS answered 220 and the handshake held */
	int  auth_offered;        /* EHLO listed AUTH (RFC 4954 §3) */
	int  authenticated;       /* AUTH answered 235 */
};

/*
 * Open a connection to `relay` as a send does - greeting, EHLO, STARTTLS
 * and AUTH as the relay's configuration asks (the same options as
 * smtp_conn_new()) - then QUIT without a transaction.  0 when every step
 * succeeded; -1 with *p saying where it stopped (p->r.stage, code, reply,
 * detail), or with `err` set (EX_CONFIG) when the password cannot be read
 * and nothing was tried (p->r.outcome SMTP_FATAL).
 */
int smtp_probe(const struct config_relay *relay, struct smtp_probe *p, struct herr *err);

/* The result of the connection's last transfer. */
const struct smtp_result *smtp_conn_result(const struct smtp_conn *c);

/* Connections opened so far by this object (libcurl's CURLINFO_NUM_CONNECTS
 * summed over transfers). */
long smtp_conn_connects(const struct smtp_conn *c);

const char *smtp_stage_name(enum smtp_stage s);
const char *smtp_outcome_name(enum smtp_outcome o);

#endif
