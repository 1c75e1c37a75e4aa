/*
 * mailbox.h - where returned mail comes from: a Maildir, an IMAP folder or a
 * POP3 maildrop, one message at a time.
 *
 * Each message is handed to a callback, and removed from the mailbox only
 * after the callback says its result is committed (moved to cur/ in a
 * Maildir, flagged \Deleted and expunged over IMAP, DELE and QUIT over
 * POP3).  A crash in between leaves the message where it was, so it is seen
 * again by the next run: the callback must make a second processing of the
 * same bytes change nothing (bouncelog.c keys them by their digest).
 *
 * Used by src/cmd/bounce.c (herald bounce --maildir DIR, --fetch).  Nothing
 * here prints or exits; errors come back in a struct herr.
 *
 * mailbox_fetch_each() uses libcurl, which the program initialises once:
 * main (cli.c's herald_main) calls curl_global_init() before any command
 * runs and any thread starts (it is not thread-safe), and
 * curl_global_cleanup() at exit; a test's main() does the same.
 */
#ifndef HERALD_MAILBOX_H
#define HERALD_MAILBOX_H

#include <stddef.h>

#include "herald/herr.h"

/* A message larger than this is not read when max_message is 0. */
#define MAILBOX_MAX_DEFAULT   ((size_t)32 << 20)
/* Seconds for one server command when timeout_s is 0 or less. */
#define MAILBOX_TIMEOUT_DEFAULT 60L

struct mailbox_opts {
	const char *url;        /* imaps://host[:port][/MAILBOX] (default INBOX),
	                           imap://..., pop3s://host[:port], pop3://...;
	                           no user, password, query or ";UID=" in it */
	const char *username;   /* required */
	const char *password;   /* required; never appears in an error */
	const char *ca_file;    /* PEM CA bundle to verify the server with;
	                           NULL = the system's */
	long timeout_s;         /* per server command, a whole message fetch
	                           included; <= 0: MAILBOX_TIMEOUT_DEFAULT */
	size_t max_message;     /* bytes; larger messages are skipped (counted
	                           in skipped_large, noted) and left in place;
	                           0: MAILBOX_MAX_DEFAULT */
};

/*
 * Called once per message.  `name` says where it is, for messages and logs:
 * the file's path for a Maildir ("DIR/new/1700000000.M1P2.host"), the URL of
 * the message otherwise ("imaps://127.0.0.1:993/INBOX;UID=7",
 * "pop3s://127.0.0.1:995/3"); never a password.  `data` is the whole message
 * as stored (`len` bytes, NUL-terminated for convenience but it may hold
 * NULs), valid only during the call.
 * Return 0: its result is committed, remove it; 1: leave it where it is (it
 * will be seen again); -1: stop now, after filling `err` (any other value is
 * taken as -1).  Messages already committed are still removed on -1.
 */
typedef int (*mailbox_fn)(void *ctx, const char *name, const char *data, size_t len,
                          struct herr *err);

struct mailbox_stats {
	size_t seen;           /* messages found and looked at */
	size_t done;           /* callback returned 0 and the message was removed */
	size_t left;           /* callback returned 1: left in place */
	size_t skipped_large;  /* over max_message: not read, left in place */
	char   note[256];      /* about the last message skipped as too large
	                          (its name and size), "" when none was */
};

/*
 * Every message in DIR/new (not tmp/, not cur/), in name order (Maildir
 * names start with the delivery time).  After the callback returns 0 the
 * file is renamed into DIR/cur/ with the ":2," info suffix, as a mail reader
 * does when it has seen a message (cr.yp.to/proto/maildir.html).  Names
 * starting with '.', and anything not a regular file (symbolic links
 * included), are passed over.  A file that vanishes before it is read was
 * taken by another reader and is passed over too.
 * Returns 0 and fills *st (which may be NULL), or -1: EX_NOINPUT with the
 * path when DIR is missing or is not a Maildir (no new/ or cur/), EX_IOERR
 * when a file cannot be read or moved, or the callback's error.
 */
int mailbox_maildir_each(const char *dir, size_t max_message, mailbox_fn fn, void *ctx,
                         struct mailbox_stats *st, struct herr *err);

/*
 * Every message of the IMAP folder or POP3 maildrop in o->url, over one
 * connection (TLS verified against o->ca_file; see mailbox.c for when
 * imap:// and pop3:// must use STARTTLS).  IMAP: messages not yet \Deleted,
 * by UID; removed by UID STORE +FLAGS (\Deleted) and one EXPUNGE at the end.
 * POP3: every message, by number; DELE, then QUIT at the end commits them.
 * Returns 0 and fills *st (may be NULL), or -1 with, where = the URL (never
 * the password), the server's last reply in the message, and a code:
 *   EX_CONFIG       bad URL, no username/password, mailbox not found,
 *                   certificate not trusted, no STARTTLS offered
 *   EX_NOPERM       login refused by the server
 *   EX_UNAVAILABLE  cannot connect, TLS handshake failed
 *   EX_TEMPFAIL     timeout, connection lost or replaced mid-run, QUIT not
 *                   confirmed (POP3 deletions not done)
 *   EX_PROTOCOL     the server refused a command after login
 *   EX_OSERR        out of memory
 * or the callback's error.
 */
int mailbox_fetch_each(const struct mailbox_opts *o, mailbox_fn fn, void *ctx,
                       struct mailbox_stats *st, struct herr *err);

#endif
