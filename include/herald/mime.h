/*
 * mime.h - writing the exact bytes of an outgoing message.
 *
 * Hand-written on purpose: the DKIM signer signs these bytes, the sender
 * streams them, and both need them canonical and fast.  Everything produced
 * here is 7-bit ASCII with CRLF line ends and no line over 998 octets
 * (RFC 5322 §2.1.1); header lines are folded at whitespace to stay within 78
 * where the content allows.
 *
 * RFCs: 5322 (format, Date, Message-ID), 2045 §6.7 (quoted-printable),
 * 2046 §5.1.4 (multipart/alternative), 2047 (encoded-words in Subject and
 * display names), 2369 and 8058 (List-Unsubscribe[-Post]), 2919 (List-Id).
 */
#ifndef HERALD_MIME_H
#define HERALD_MIME_H

#include <stddef.h>
#include <time.h>

#include "herald/buf.h"
#include "herald/herr.h"

#define MIME_LINE_MAX   998 /* RFC 5322 §2.1.1 hard limit, without CRLF */
#define MIME_FOLD_WIDTH 78  /* RFC 5322 §2.1.1 recommended limit */
#define MIME_QP_WIDTH   76  /* RFC 2045 §6.7 rule (5) */

/*
 * Quoted-printable encode `len` bytes of text.  Input line ends may be LF or
 * CRLF; each becomes CRLF (a hard line break); a lone CR is escaped as =0D.
 * Output lines are at most 76 characters, broken with soft line breaks
 * ("=" CRLF) that never split an =XX escape; '=' and bytes outside 33..126
 * (except SP and TAB inside a line) are escaped; a SP or TAB before a line
 * end or the end of the text is escaped (rule 3); a '.' or "From " at the
 * start of an output line is escaped (=2E, =46) so no transport can mangle
 * it.  Text that does not end with a line end gives output that does not end
 * with CRLF (the boundary's CRLF follows it).  Appends to `out`; returns 0,
 * or -1 (buffer cap or memory) with nothing appended.  Space is reserved
 * ahead, so it may fail when the output would come within 8 bytes of the cap.
 */
int mime_qp_encode(struct buf *out, const char *in, size_t len);

/*
 * Append `utf8` as the body of an unstructured header (Subject) whose name
 * and ": " already take `used` columns of the first line.  Printable ASCII is
 * copied unchanged.  Otherwise the run of words from the first to the last
 * word needing encoding (non-ASCII, containing "=?" so it could be taken for
 * an encoded-word, or too long for a 998-octet line) becomes RFC 2047
 * encoded-words (charset UTF-8, 'B' or 'Q', whichever is shorter), each at
 * most 75 characters and never splitting a UTF-8 sequence; the spaces inside
 * the run are encoded too, as decoders drop whitespace between encoded-words.
 * The first word is sized to fill the line after `used` columns.  Words
 * before and after the run stay plain.  The result is one unfolded line with
 * single spaces between encoded-words: pass it to mime_add_header, which
 * folds there.  Returns 0, or -1 (EX_DATAERR) for CR/LF or other control
 * characters (C0 but TAB, DEL, C1), or invalid UTF-8 (overlongs, surrogates,
 * > U+10FFFF), with nothing appended.
 */
int mime_encode_unstructured(struct buf *out, size_t used, const char *utf8,
                             struct herr *err);

/*
 * Append a mailbox, `display-name <addr>` or bare `addr` when name is NULL,
 * "" or only whitespace (leading and trailing SP/TAB are trimmed).  An ASCII
 * name is written as an atom sequence when it is one (RFC 5322 §3.2.3
 * atext, so "O'Brien" stays bare) and as a quoted-string otherwise ("Jones,
 * Alex", with \" and \\ escaped); a non-ASCII name, or one containing
 * "=?", as RFC 2047 'B' or 'Q' encoded-words valid in a phrase (§5 rule 3),
 * the first sized to follow "Reply-To: " on a 78-column line.  The result is
 * one unfolded value: mime_add_header folds it.  `addr` must be ASCII
 * (address.ascii) with an '@' and no whitespace or angle brackets.  Returns
 * 0 or -1 (EX_DATAERR) for control characters, CR or LF anywhere, invalid
 * UTF-8 or a bad address, with nothing appended.
 */
int mime_format_mailbox(struct buf *out, const char *name, const char *addr,
                        struct herr *err);

/*
 * Append one header field "Name: value" CRLF, folding `value` at existing
 * whitespace (CRLF inserted before it, RFC 5322 §2.2.3) so lines stay within
 * 78 columns when possible and never exceed 998.  `value` must already be
 * ASCII (encoded by the functions above); CR, LF or control characters other
 * than TAB make it fail with EX_DATAERR before anything is appended, so a
 * value taken from a subscriber, a file or a config can never start a new
 * header.  A name that is not RFC 5322 ftext, or a value that cannot be
 * folded under 998 octets a line, also fails.  err->where is
 * "header 'Name'".
 */
int mime_add_header(struct buf *out, const char *name, const char *value,
                    struct herr *err);

/* Format `t` as an RFC 5322 §3.3 date-time in UTC ("Thu, 28 Mar 2019
 * 09:05:00 +0000", day of month two digits), with English names whatever
 * the locale.  A time outside years 1900..9999 gives the epoch.  `out`
 * needs 32 bytes. */
void mime_format_date(time_t t, char out[32]);

struct mime_field {
	const char *name;
	const char *value; /* ASCII, unfolded; folded by the writer */
};

/* One message with a text/plain and a text/html alternative. */
struct mime_message {
	const char *from_name;     /* UTF-8 display name, or NULL */
	const char *from_addr;     /* ASCII addr-spec */
	const char *to_name;       /* the subscriber's name, or NULL */
	const char *to_addr;       /* ASCII addr-spec */
	const char *reply_to_name; /* or NULL */
	const char *reply_to_addr; /* or NULL: no Reply-To */
	const char *subject;       /* UTF-8 */
	time_t      date;
	const char *message_id;    /* "local@domain", without angle brackets */
	const struct mime_field *extra; /* List-Id, List-Unsubscribe, ... in order */
	size_t      n_extra;
	const char *text;          /* UTF-8 plain text, LF or CRLF line ends */
	size_t      text_len;
	const char *html;          /* UTF-8 HTML document */
	size_t      html_len;
};

/*
 * Append a complete message: Date, From, To, Reply-To (only when
 * reply_to_addr is set), Subject, Message-ID, the extra fields in order,
 * MIME-Version, Content-Type multipart/alternative; a blank line; then the
 * text/plain part and the text/html part, both charset=UTF-8 and
 * quoted-printable, and the close delimiter.  The boundary is "=_herald_"
 * and 16 hex digits of a hash of the Message-ID, so the same message gives
 * the same bytes; it contains "=_", which quoted-printable output can never
 * contain, so it cannot collide with a body line.  message_id must be
 * printable ASCII with an '@' and no whitespace or angle brackets.  Returns
 * 0, or -1 with nothing appended and EX_DATAERR naming the header whose
 * value was refused in err->where ("header 'To'").
 */
int mime_write_alternative(struct buf *out, const struct mime_message *m,
                           struct herr *err);

#endif
