/*
 * test_bounce.c - reading returned mail (src/bounce.c) and classifying
 * failures (src/bouncereason.c).
 *
 * The samples in tests/data/bounces/ are written for these tests in the
 * shapes the MTAs use (none is copied from a real corpus): an RFC 3464
 * DSN as Postfix writes it, a soft 4.2.2, a delayed notice, two ARF
 * reports, an RFC 3834 auto-reply, qmail, Exim, Exchange/Office 365,
 * Sendmail, Gmail, a truncated DSN and a message that is not a bounce.
 * Hostile input is built here: 200 levels of MIME nesting and two million
 * empty parts (invariant 2 of bounce.c: the input GMime sees is cut),
 * 1500 recipients (invariant 3),
 * 10 MB, a charset nobody knows (invariant 4: the report is UTF-8), bytes
 * that are not a message.  bounce_classify() is checked against vectors
 * built from RFC 3463 codes and from the replies MTAs write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/bounce.h"
#include "herald/buf.h"
#include "herald/utf8.h"

#ifdef HERALD_SOURCE_DIR
#define DATA_DIR HERALD_SOURCE_DIR "/tests/data/bounces"
#endif

/* The data directory: the build's definition, else $HERALD_TEST_DATA,
 * else next to this source file. */
static void
data_path(const char *name, char *out, size_t size)
{
	const char *env = getenv("HERALD_TEST_DATA");

	if (env != NULL && *env != '\0') {
		snprintf(out, size, "%s/%s", env, name);
		return;
	}
#ifdef DATA_DIR
	snprintf(out, size, "%s/%s", DATA_DIR, name);
#else
	{
		const char *f = __FILE__, *slash = strrchr(f, '/');
		int dir = slash != NULL ? (int)(slash - f) : 1;

		snprintf(out, size, "%.*s/../data/bounces/%s", dir, slash != NULL ? f : ".", name);
	}
#endif
}

static char *
load(const char *name, size_t *len)
{
	char path[1024];
	FILE *fp;
	char *p;
	long n;

	data_path(name, path, sizeof(path));
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n > 0);
	rewind(fp);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
	p[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return p;
}

static struct bounce_report *
parse_file(const char *name)
{
	struct bounce_report *r = NULL;
	struct herr err;
	size_t len;
	char *data = load(name, &len);

	herr_clear(&err);
	if (bounce_parse(data, len, NULL, &r, &err) != 0)
		fail_msg("%s: %s", name, err.msg);
	free(data);
	assert_non_null(r);
	return r;
}

/* Every string of a report is valid UTF-8, the diagnostics on one line. */
static void
assert_clean(const struct bounce_report *r)
{
	size_t i;

	for (i = 0; i < r->n_recipients; i++) {
		const struct bounce_recipient *b = &r->recipients[i];

		assert_non_null(b->recipient);
		assert_non_null(b->reason);
		assert_int_equal(utf8_invalid_at((const unsigned char *)b->diagnostic,
		    strlen(b->diagnostic)), strlen(b->diagnostic));
		assert_null(strchr(b->diagnostic, '\n'));
		assert_null(strchr(b->diagnostic, '\r'));
		assert_int_equal(utf8_invalid_at((const unsigned char *)b->recipient,
		    strlen(b->recipient)), strlen(b->recipient));
	}
	assert_int_equal(utf8_invalid_at((const unsigned char *)r->subject,
	    strlen(r->subject)), strlen(r->subject));
}

/* Line ends rewritten: "\r\n" or "\r" for every "\n". */
static char *
with_line_ends(const char *s, size_t len, const char *eol, size_t *outlen)
{
	struct buf b = BUF_INIT(64 * 1024 * 1024);
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n')
			assert_int_equal(buf_adds(&b, eol), 0);
		else
			assert_int_equal(buf_addc(&b, s[i]), 0);
	}
	*outlen = b.len;
	return buf_detach(&b);
}

/* ------------------------------------------------------------ parsing */

static void
check_postfix(const struct bounce_report *r)
{
	const struct bounce_recipient *b;

	assert_int_equal(r->n_recipients, 1);
	b = &r->recipients[0];
	/* The domain folded to lower case, the local part kept. */
	assert_string_equal(b->recipient, "nobody@example.net");
	assert_string_equal(b->status, "5.1.1");
	assert_int_equal(b->reply_code, 550);
	assert_string_equal(b->reason, "userunknown");
	assert_int_equal(b->cls, BOUNCE_HARD);
	assert_string_equal(b->action, "failed");
	assert_string_equal(b->remote_mta, "mx1.example.net");
	assert_string_equal(b->feedback_type, "");
	/* Diagnostic-Code unfolded, its "smtp;" type dropped. */
	assert_string_equal(b->diagnostic, "550 5.1.1 <nobody@example.net>: Recipient address "
	    "rejected: User unknown in local recipient table");
	assert_string_equal(r->shape, "rfc3464");
	assert_string_equal(r->envelope_to, "bounce+7a1c.42@news.example.org");
	assert_string_equal(r->message_id, "20260303091502.4Xq2Lw0sbLz9vH@mx.example.org");
	assert_string_equal(r->subject, "Undelivered Mail Returned to Sender");
	assert_string_equal(r->orig_message_id, "issue-42.7a1c@news.example.org");
	assert_string_equal(r->orig_to, "nobody@example.net");
	assert_string_equal(r->orig_from, "editor@news.example.org");
	assert_int_equal(strlen(r->sha256), 64);
	assert_clean(r);
}

static void
test_bounce_parse_postfix_userunknown(void **state)
{
	struct bounce_report *r = parse_file("postfix-userunknown.eml");

	(void)state;
	check_postfix(r);
	bounce_report_free(r);
}

static void
test_bounce_parse_line_ends(void **state)
{
	static const char *const eols[] = { "\r\n", "\r" };
	size_t len, i;
	char *lf = load("postfix-userunknown.eml", &len);
	struct bounce_report *r0 = NULL;
	struct herr err;

	(void)state;
	assert_int_equal(bounce_parse(lf, len, NULL, &r0, &err), 0);
	for (i = 0; i < 2; i++) {
		struct bounce_report *r = NULL;
		size_t n;
		char *other = with_line_ends(lf, len, eols[i], &n);

		assert_int_equal(bounce_parse(other, n, NULL, &r, &err), 0);
		check_postfix(r);
		/* The digest is of the bytes as given, not as read. */
		assert_string_not_equal(r->sha256, r0->sha256);
		bounce_report_free(r);
		free(other);
	}
	bounce_report_free(r0);
	free(lf);
}

static void
test_bounce_parse_mbox_from_line(void **state)
{
	size_t len;
	char *lf = load("postfix-userunknown.eml", &len);
	struct buf b = BUF_INIT(1 << 20);
	struct bounce_report *r = NULL;
	struct herr err;

	(void)state;
	assert_int_equal(buf_adds(&b, "From MAILER-DAEMON Tue Mar  3 10:15:02 2026\n"), 0);
	assert_int_equal(buf_add(&b, lf, len), 0);
	assert_int_equal(bounce_parse(b.data, b.len, NULL, &r, &err), 0);
	check_postfix(r);
	bounce_report_free(r);
	buf_free(&b);
	free(lf);
}

static void
test_bounce_parse_sha256(void **state)
{
	/* Python: hashlib.sha256(b"From: a@example.org\n\nx\n").hexdigest() */
	static const char msg[] = "From: a@example.org\n\nx\n";
	struct bounce_report *r = NULL;
	struct herr err;

	(void)state;
	assert_int_equal(bounce_parse(msg, strlen(msg), NULL, &r, &err), 0);
	assert_string_equal(r->sha256,
	    "0a9bba4d5d9e4272571fbab855f5028893d99def00c9a3ad6e9e5eeaa1f65620");
	assert_int_equal(r->n_recipients, 0);
	bounce_report_free(r);
}

/* bounce_digest() is the same key for a message and for bytes that are not
 * one (cmd/bounce.c records those by it, so they are not read twice). */
static void
test_bounce_digest(void **state)
{
	static const char msg[] = "From: a@example.org\n\nx\n";
	char hex[BOUNCE_DIGEST_SIZE];
	struct bounce_report *r = NULL;
	struct herr err;

	(void)state;
	assert_int_equal(bounce_parse(msg, strlen(msg), NULL, &r, &err), 0);
	assert_int_equal(bounce_digest(msg, strlen(msg), hex, &err), 0);
	assert_string_equal(hex, r->sha256);
	bounce_report_free(r);
	assert_int_equal(bounce_parse("hello world\n", 12, NULL, &r, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(bounce_digest("hello world\n", 12, hex, &err), 0);
	assert_string_equal(hex, "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447");
	assert_int_equal(bounce_digest("", 0, hex, &err), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_bounce_parse_envelope_to_argument(void **state)
{
	size_t len;
	char *data = load("postfix-userunknown.eml", &len);
	struct bounce_report *r = NULL;
	struct herr err;

	(void)state;
	assert_int_equal(bounce_parse(data, len, "bounce+other@news.example.org", &r, &err), 0);
	assert_string_equal(r->envelope_to, "bounce+other@news.example.org");
	bounce_report_free(r);
	free(data);
}

static void
test_bounce_parse_mailbox_full_soft(void **state)
{
	struct bounce_report *r = parse_file("mailboxfull-soft.eml");

	(void)state;
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "carol@example.com");
	assert_string_equal(r->recipients[0].status, "4.2.2");
	assert_int_equal(r->recipients[0].reply_code, 452);
	assert_string_equal(r->recipients[0].reason, "mailboxfull");
	assert_int_equal(r->recipients[0].cls, BOUNCE_SOFT);
	/* The returned message/rfc822 part. */
	assert_string_equal(r->orig_message_id, "issue-43.b2@news.example.org");
	assert_string_equal(r->orig_to, "carol@example.com");
	/* No '+' anywhere: the first candidate, To. */
	assert_string_equal(r->envelope_to, "bounce+b2.43@news.example.org");
	bounce_report_free(r);
}

/* RFC 6533: an internationalised address, domain in U-labels. */
static void
test_bounce_parse_utf8_recipient(void **state)
{
	struct bounce_report *r = parse_file("utf8-recipient.eml");

	(void)state;
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "zo\xc3\xab@\xe4\xbe\x8b\xe3\x81\x88.example");
	assert_string_equal(r->recipients[0].reason, "userunknown");
	assert_int_equal(r->recipients[0].cls, BOUNCE_HARD);
	bounce_report_free(r);
}

static void
test_bounce_parse_delayed(void **state)
{
	struct bounce_report *r = parse_file("delayed.eml");

	(void)state;
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "dave@slow.example");
	assert_string_equal(r->recipients[0].action, "delayed");
	assert_int_equal(r->recipients[0].cls, BOUNCE_DELAYED);
	/* A delay warning is not a failure: its own reason, whatever the
	 * text says (here a timed-out connection). */
	assert_string_equal(r->recipients[0].reason, "delayed");
	assert_non_null(strstr(r->recipients[0].why, "Action: delayed"));
	assert_string_equal(r->recipients[0].diagnostic,
	    "connect to mx.slow.example[192.0.2.40]:25: Connection timed out");
	bounce_report_free(r);
}

static void
test_bounce_parse_arf_abuse(void **state)
{
	struct bounce_report *r = parse_file("arf-abuse.eml");

	(void)state;
	assert_string_equal(r->shape, "arf");
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "Erin@example.com");
	assert_string_equal(r->recipients[0].feedback_type, "abuse");
	assert_string_equal(r->recipients[0].reason, "feedback");
	assert_int_equal(r->recipients[0].cls, BOUNCE_COMPLAINT);
	assert_string_equal(r->orig_message_id, "issue-45.d4@news.example.org");
	bounce_report_free(r);
}

static void
test_bounce_parse_arf_without_rcpt_to(void **state)
{
	struct bounce_report *r = parse_file("arf-no-rcpt.eml");

	(void)state;
	/* No Original-Rcpt-To: the returned headers' To. */
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "frank@mail.example");
	assert_string_equal(r->recipients[0].feedback_type, "fraud");
	assert_int_equal(r->recipients[0].cls, BOUNCE_COMPLAINT);
	assert_string_equal(r->orig_message_id, "issue-45.f6@news.example.org");
	bounce_report_free(r);
}

static void
test_bounce_parse_autoreply(void **state)
{
	struct bounce_report *r = parse_file("autoreply.eml");

	(void)state;
	assert_string_equal(r->shape, "rfc3834");
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "grace@example.com");
	assert_string_equal(r->recipients[0].reason, "vacation");
	assert_int_equal(r->recipients[0].cls, BOUNCE_AUTOREPLY);
	bounce_report_free(r);
}

static void
test_bounce_parse_qmail(void **state)
{
	struct bounce_report *r = parse_file("qmail.eml");

	(void)state;
	assert_string_equal(r->shape, "qmail");
	assert_int_equal(r->n_recipients, 2);
	assert_string_equal(r->recipients[0].recipient, "henry@example.net");
	assert_string_equal(r->recipients[0].status, "5.1.1");
	assert_string_equal(r->recipients[0].reason, "userunknown");
	assert_int_equal(r->recipients[0].cls, BOUNCE_HARD);
	assert_string_equal(r->recipients[1].recipient, "ivy@nohost.example");
	assert_string_equal(r->recipients[1].status, "5.1.2");
	assert_string_equal(r->recipients[1].reason, "hostunknown");
	assert_int_equal(r->recipients[1].cls, BOUNCE_HARD);
	/* Quoted below "--- Below this line is a copy of the message." */
	assert_string_equal(r->orig_message_id, "issue-47.f6@news.example.org");
	assert_string_equal(r->orig_to, "henry@example.net");
	bounce_report_free(r);
}

static void
test_bounce_parse_exim(void **state)
{
	struct bounce_report *r = parse_file("exim.eml");

	(void)state;
	assert_string_equal(r->shape, "exim");
	assert_int_equal(r->n_recipients, 2);
	assert_string_equal(r->recipients[0].recipient, "jack@example.net");
	assert_string_equal(r->recipients[0].status, "5.7.1");
	assert_int_equal(r->recipients[0].reply_code, 550);
	assert_string_equal(r->recipients[0].reason, "norelaying");
	assert_int_equal(r->recipients[0].cls, BOUNCE_SOFT);
	assert_string_equal(r->recipients[1].recipient, "kate@full.example");
	assert_string_equal(r->recipients[1].reason, "mailboxfull");
	assert_string_equal(r->recipients[1].diagnostic, "mailbox is full: retry timeout exceeded");
	assert_string_equal(r->orig_message_id, "issue-48.g7@news.example.org");
	bounce_report_free(r);
}

static void
test_bounce_parse_exchange(void **state)
{
	struct bounce_report *r = parse_file("exchange.eml");

	(void)state;
	assert_string_equal(r->shape, "exchange");
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "leo@contoso.example");
	assert_string_equal(r->recipients[0].status, "5.1.10");
	assert_string_equal(r->recipients[0].reason, "userunknown");
	assert_int_equal(r->recipients[0].cls, BOUNCE_HARD);
	assert_non_null(strstr(r->recipients[0].diagnostic, "RESOLVER.ADR.RecipientNotFound"));
	assert_string_equal(r->orig_message_id, "issue-49.h8@news.example.org");
	bounce_report_free(r);
}

static void
test_bounce_parse_sendmail_after_data(void **state)
{
	struct bounce_report *r = parse_file("sendmail.eml");

	(void)state;
	/* "Unknown user" said in reply to DATA is a filter, not a dead
	 * address (Japanese carriers answer so for a refused sender). */
	assert_string_equal(r->shape, "sendmail");
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "mia@mobile.example");
	assert_string_equal(r->recipients[0].reason, "filtered");
	assert_int_equal(r->recipients[0].cls, BOUNCE_SOFT);
	assert_string_equal(r->orig_message_id, "issue-50.i9@news.example.org");
	bounce_report_free(r);
}

static void
test_bounce_parse_gmail(void **state)
{
	struct bounce_report *r = parse_file("gmail.eml");

	(void)state;
	assert_string_equal(r->shape, "gmail");
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "noah@example.edu");
	assert_string_equal(r->recipients[0].status, "5.2.2");
	assert_int_equal(r->recipients[0].reply_code, 552);
	assert_string_equal(r->recipients[0].reason, "mailboxfull");
	bounce_report_free(r);
}

static void
test_bounce_parse_truncated(void **state)
{
	struct bounce_report *r = parse_file("truncated.eml");

	(void)state;
	/* The DSN stops in the middle of a field: what is there is read. */
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "olga@example.net");
	assert_string_equal(r->recipients[0].status, "5.1.1");
	assert_int_equal(r->recipients[0].cls, BOUNCE_HARD);
	assert_clean(r);
	bounce_report_free(r);
}

static void
test_bounce_parse_not_a_bounce(void **state)
{
	struct bounce_report *r = parse_file("not-bounce.eml");

	(void)state;
	assert_int_equal(r->n_recipients, 0);
	assert_null(r->recipients);
	assert_string_equal(r->shape, "none");
	assert_string_equal(r->from, "Paul Reader <paul@example.com>");
	assert_string_equal(r->message_id, "reply-1@example.com");
	bounce_report_free(r);
}

static void
test_bounce_parse_not_a_message(void **state)
{
	static const char *const bad[] = {
		"", "hello world\n", "\n\nFrom: a@b\n", ": no name\n", "\x01\x02\x03",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bounce_report *r = (struct bounce_report *)1;
		struct herr err;

		herr_clear(&err);
		assert_int_equal(bounce_parse(bad[i], strlen(bad[i]), NULL, &r, &err), -1);
		assert_null(r);
		assert_int_equal(err.code, EX_DATAERR);
	}
}

/* 200 levels of multipart/mixed, or of message/rfc822, around a DSN. */
static char *
nested(int levels, int as_message, size_t *len)
{
	struct buf b = BUF_INIT(8 * 1024 * 1024);
	int i;

	assert_int_equal(buf_adds(&b, "From: MAILER-DAEMON@deep.example\nSubject: deep\n"
	    "MIME-Version: 1.0\n"), 0);
	for (i = 0; i < levels; i++) {
		if (as_message)
			assert_int_equal(buf_adds(&b, "Content-Type: message/rfc822\n\n"
			    "From: x@deep.example\nMIME-Version: 1.0\n"), 0);
		else
			assert_int_equal(buf_addf(&b, "Content-Type: multipart/mixed; "
			    "boundary=\"b%d\"\n\n--b%d\n", i, i), 0);
	}
	assert_int_equal(buf_adds(&b, "Content-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; deep.example\n\nFinal-Recipient: rfc822; bottom@deep.example\n"
	    "Action: failed\nStatus: 5.1.1\n\n"), 0);
	for (i = levels - 1; !as_message && i >= 0; i--)
		assert_int_equal(buf_addf(&b, "--b%d--\n", i), 0);
	*len = b.len;
	return buf_detach(&b);
}

static void
test_bounce_parse_nested_200(void **state)
{
	int as_message;

	(void)state;
	for (as_message = 0; as_message < 2; as_message++) {
		struct bounce_report *r = NULL;
		struct herr err;
		size_t len;
		char *data = nested(200, as_message, &len);

		assert_int_equal(bounce_parse(data, len, NULL, &r, &err), 0);
		/* Cut before the 65th nested Content-Type: the DSN at the
		 * bottom is never reached, and nothing else is invented. */
		assert_int_equal(r->n_recipients, 0);
		bounce_report_free(r);
		free(data);

		/* Shallow enough, the same DSN is found. */
		data = nested(10, as_message, &len);
		assert_int_equal(bounce_parse(data, len, NULL, &r, &err), 0);
		if (!as_message) {
			assert_int_equal(r->n_recipients, 1);
			assert_string_equal(r->recipients[0].recipient, "bottom@deep.example");
		}
		bounce_report_free(r);
		free(data);
	}
}

/* A multipart of `empty` empty parts, with a DSN part before or after
 * them. */
static char *
many_parts(int empty, int dsn_first, size_t *len)
{
	static const char dsn[] = "--b\nContent-Type: message/delivery-status\n\n"
	    "Reporting-MTA: dns; parts.example\n\nFinal-Recipient: rfc822; p@parts.example\n"
	    "Action: failed\nStatus: 5.1.1\n\n";
	struct buf b = BUF_INIT(16 * 1024 * 1024);
	int i;

	assert_int_equal(buf_adds(&b, "From: MAILER-DAEMON@parts.example\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; boundary=b\n\n"), 0);
	if (dsn_first)
		assert_int_equal(buf_adds(&b, dsn), 0);
	for (i = 0; i < empty; i++)
		assert_int_equal(buf_adds(&b, "--b\n\n"), 0);
	if (!dsn_first)
		assert_int_equal(buf_adds(&b, dsn), 0);
	assert_int_equal(buf_adds(&b, "--b--\n"), 0);
	*len = b.len;
	return buf_detach(&b);
}

static void
test_bounce_parse_many_parts(void **state)
{
	struct bounce_report *r = NULL;
	struct herr err;
	size_t len;
	char *data;

	(void)state;
	/* 10 MB of empty parts would be two million GMime objects: the
	 * input is cut after 4096 delimiter lines, so a DSN behind 5000 of
	 * them is not seen, and one before them is. */
	data = many_parts(5000, 0, &len);
	assert_int_equal(bounce_parse(data, len, NULL, &r, &err), 0);
	assert_int_equal(r->n_recipients, 0);
	bounce_report_free(r);
	free(data);
	data = many_parts(5000, 1, &len);
	assert_int_equal(bounce_parse(data, len, NULL, &r, &err), 0);
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "p@parts.example");
	bounce_report_free(r);
	free(data);
	/* And the whole 10 MB, which must simply finish. */
	data = many_parts(2000000, 1, &len);
	assert_int_equal(bounce_parse(data, len, NULL, &r, &err), 0);
	assert_int_equal(r->n_recipients, 1);
	bounce_report_free(r);
	free(data);
}

static void
test_bounce_parse_recipient_cap(void **state)
{
	struct buf b = BUF_INIT(1 << 20);
	struct bounce_report *r = NULL;
	struct herr err;
	int i;

	(void)state;
	assert_int_equal(buf_adds(&b, "From: MAILER-DAEMON@many.example\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"m\"\n\n"
	    "--m\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; many.example\n\n"), 0);
	for (i = 0; i < 1500; i++)
		assert_int_equal(buf_addf(&b, "Final-Recipient: rfc822; u%d@many.example\n"
		    "Action: failed\nStatus: 5.1.1\n\n", i), 0);
	assert_int_equal(buf_adds(&b, "--m--\n"), 0);
	assert_int_equal(bounce_parse(b.data, b.len, NULL, &r, &err), 0);
	assert_int_equal(r->n_recipients, 1000);
	assert_string_equal(r->recipients[999].recipient, "u999@many.example");
	bounce_report_free(r);
	buf_free(&b);
}

static void
test_bounce_parse_ten_megabytes(void **state)
{
	size_t len, i;
	char *head = load("mailboxfull-soft.eml", &len);
	struct buf b = BUF_INIT(12 * 1024 * 1024);
	struct bounce_report *r = NULL;
	struct herr err;
	const char *end = strstr(head, "Hello Carol.");

	(void)state;
	assert_non_null(end);
	assert_int_equal(buf_add(&b, head, (size_t)(end - head)), 0);
	/* 10 MB of returned body, in 100-byte lines. */
	for (i = 0; i < 100 * 1024; i++)
		assert_int_equal(buf_adds(&b, "Lorem ipsum dolor sit amet, consectetur adipiscing "
		    "elit, sed do eiusmod tempor incididunt ut labo\n"), 0);
	assert_int_equal(buf_adds(&b, "\n--B0UND--\n"), 0);
	assert_int_equal(bounce_parse(b.data, b.len, NULL, &r, &err), 0);
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].reason, "mailboxfull");
	bounce_report_free(r);
	buf_free(&b);
	free(head);
}

static void
test_bounce_parse_bad_charset(void **state)
{
	static const char msg[] =
	    "From: MAILER-DAEMON@cs.example\nTo: bounce+1@news.example.org\n"
	    "Subject: =?x-no-such-charset?B?/w==?= failure\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=x-no-such-charset\n"
	    "Content-Transfer-Encoding: 8bit\n\n"
	    "Delivery to the following recipient failed permanently:\n\n"
	    "     zoe@example.org\n\n"
	    "550 5.1.1 \xff\xfe\xc3 user unknown \xed\xa0\x80 \x01\x7f end\n";
	struct bounce_report *r = NULL;
	struct herr err;

	(void)state;
	assert_int_equal(bounce_parse(msg, sizeof(msg) - 1, NULL, &r, &err), 0);
	assert_int_equal(r->n_recipients, 1);
	assert_string_equal(r->recipients[0].recipient, "zoe@example.org");
	assert_string_equal(r->recipients[0].reason, "userunknown");
	/* Raw bytes kept, the invalid ones '?': "\xff\xfe\xc3" -> "???". */
	assert_non_null(strstr(r->recipients[0].diagnostic, "550 5.1.1 ??? user unknown"));
	assert_clean(r);
	bounce_report_free(r);
}

static void
test_bounce_parse_garbage_does_not_crash(void **state)
{
	struct bounce_report *r = NULL;
	struct herr err;
	unsigned int seed = 12345;
	size_t len, i, round;
	char *base = load("postfix-userunknown.eml", &len);
	char *m = malloc(len);

	(void)state;
	assert_non_null(m);
	/* A cheap stand-in for the fuzzer: flip bytes, cut anywhere. */
	for (round = 0; round < 300; round++) {
		size_t n = len - (round * 7919) % len;

		memcpy(m, base, len);
		for (i = 0; i < 20; i++) {
			seed = seed * 1103515245u + 12345u;
			m[(seed >> 8) % n] = (char)(seed >> 16);
		}
		if (bounce_parse(m, n, NULL, &r, &err) == 0) {
			assert_clean(r);
			bounce_report_free(r);
		}
		r = NULL;
	}
	free(m);
	free(base);
}

/* ---------------------------------------------------------- classify */

static void
test_bounce_classify_vectors(void **state)
{
	static const struct {
		const char *status;
		int reply;
		const char *diag;
		const char *cmd;
		const char *reason;
		enum bounce_class cls;
	} v[] = {
		/* RFC 3463 codes alone */
		{ "5.1.1", 550, "", "RCPT", "userunknown", BOUNCE_HARD },
		{ "5.1.2", 550, "", NULL, "hostunknown", BOUNCE_HARD },
		{ "4.2.2", 452, "", "RCPT", "mailboxfull", BOUNCE_SOFT },
		{ "5.2.2", 552, "", NULL, "mailboxfull", BOUNCE_SOFT },
		{ "5.3.4", 552, "", "DATA", "mesgtoobig", BOUNCE_SOFT },
		{ "5.2.3", 552, "", "DATA", "exceedlimit", BOUNCE_SOFT },
		{ "5.1.6", 550, "", NULL, "hasmoved", BOUNCE_HARD },
		{ "5.1.10", 550, "", "RCPT", "notaccept", BOUNCE_HARD },
		{ "4.3.2", 421, "", "CONN", "notaccept", BOUNCE_SOFT },
		{ "5.7.26", 550, "", "DATA", "authfailure", BOUNCE_SOFT },
		{ "5.7.25", 550, "", "CONN", "requireptr", BOUNCE_SOFT },
		{ "4.4.7", 0, "", NULL, "expired", BOUNCE_SOFT },
		{ "5.6.0", 554, "", "DATA", "contenterror", BOUNCE_SOFT },
		{ "2.1.5", 250, "ok", "RCPT", "delivered", BOUNCE_DELIVERED },
		/* The text decides where the code is generic or misleading */
		{ "5.0.0", 550, "550 5.1.1 <a@b.example>... User unknown", "RCPT",
		  "userunknown", BOUNCE_HARD },
		{ "5.1.1", 550, "sorry, mailbox a@b.example is over quota", "RCPT",
		  "mailboxfull", BOUNCE_SOFT },
		{ "5.7.1", 554, "5.7.1 <a@b.example>: Relay access denied", "RCPT",
		  "norelaying", BOUNCE_SOFT },
		{ "5.7.1", 550, "Service unavailable; Client host [192.0.2.1] blocked using "
		  "zen.spamhaus.org", "RCPT", "blocked", BOUNCE_SOFT },
		{ "5.7.1", 554, "Message rejected as spam by Content Filtering", "DATA",
		  "spamdetected", BOUNCE_SOFT },
		{ "5.7.1", 554, "Virus detected: Eicar-Test-Signature", "DATA",
		  "virusdetected", BOUNCE_SOFT },
		{ "5.7.26", 550, "Unauthenticated email from example.org is not accepted due to "
		  "domain's DMARC policy", "DATA", "authfailure", BOUNCE_SOFT },
		{ "5.1.8", 553, "<x@y.example>... Sender address rejected: Domain not found",
		  "MAIL", "rejected", BOUNCE_SOFT },
		{ "4.7.0", 451, "Client host rejected: Please try again slower", "RCPT",
		  "speeding", BOUNCE_SOFT },
		{ "4.7.0", 421, "Too many concurrent SMTP connections from this IP address",
		  "CONN", "toomanyconn", BOUNCE_SOFT },
		{ "5.7.1", 550, "Client host rejected: cannot find your hostname", "RCPT",
		  "requireptr", BOUNCE_SOFT },
		{ NULL, 0, "retry timeout exceeded", NULL, "expired", BOUNCE_SOFT },
		{ NULL, 0, "Sorry, I couldn't find any host named nx.example. (#5.1.2)", NULL,
		  "hostunknown", BOUNCE_HARD },
		{ "", 551, "551 not our customer", "RCPT", "hasmoved", BOUNCE_HARD },
		{ "5.0.0", 554, "Remote server returned null MX: domain accepts no mail", NULL,
		  "notaccept", BOUNCE_HARD },
		{ "4.0.0", 421, "domain has a null MX", NULL, "notaccept", BOUNCE_SOFT },
		/* The SMTP command matters: after DATA "user unknown" is a filter */
		{ "5.0.0", 550, "550 User unknown", "DATA", "filtered", BOUNCE_SOFT },
		{ "", 550, "550 User unknown", "RCPT", "userunknown", BOUNCE_HARD },
		{ "5.2.1", 550, "5.2.1 <a@b.example>... User Unknown", "RCPT", "userunknown",
		  BOUNCE_HARD },
		{ "5.2.1", 550, "mailbox disabled", NULL, "suspend", BOUNCE_SOFT },
		/* Refused at the greeting: the sending host */
		{ "", 554, "554 mx.example ESMTP not here", "CONN", "blocked", BOUNCE_SOFT },
		{ "", 501, "501 Syntax error in parameters", "MAIL", "syntaxerror", BOUNCE_SOFT },
		/* Nothing known */
		{ "5.0.0", 550, "550 Something odd happened", NULL, "onhold", BOUNCE_SOFT },
		{ NULL, 0, NULL, NULL, "undefined", BOUNCE_SOFT },
		{ "", 0, "", "", "undefined", BOUNCE_SOFT },
		{ "9.9.9", 999, "", "NOOP", "undefined", BOUNCE_SOFT },
		{ "5.1", 0, "", NULL, "undefined", BOUNCE_SOFT },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const char *reason = NULL;
		enum bounce_class c = bounce_classify(v[i].status, v[i].reply, v[i].diag,
		    v[i].cmd, &reason);

		if (reason == NULL || strcmp(reason, v[i].reason) != 0 || c != v[i].cls)
			fail_msg("vector %zu (%s, %d, \"%s\"): got %s/%s, want %s/%s", i,
			    v[i].status ? v[i].status : "NULL", v[i].reply,
			    v[i].diag ? v[i].diag : "NULL", reason ? reason : "NULL",
			    bounce_class_name(c), v[i].reason, bounce_class_name(v[i].cls));
	}
}

/*
 * The decision table's structural rows (bouncereason.c, above
 * bounce_decide()): the notice's Action, an expiry of a wait condition,
 * a failure met by the final MTA itself, the sender's stage names as the
 * phase; and every decision leaves a why line naming its evidence.
 */
static void
test_bounce_decide_structure(void **state)
{
	static const struct {
		const char *action, *status;
		int reply;
		const char *diag, *phase, *reason;
		enum bounce_class cls;
		const char *why_has;
	} v[] = {
		/* 2: a delay warning is never a failure, whatever it says */
		{ "delayed", "4.4.1", 0, "connect to mx.example[192.0.2.1]:25: Connection refused",
		  NULL, "delayed", BOUNCE_DELAYED, "delay warning" },
		{ "delayed", "4.2.2", 452, "mailbox full", "RCPT", "delayed", BOUNCE_DELAYED,
		  "Action: delayed" },
		/* 1: a success notice */
		{ "relayed", "", 0, "", NULL, "delivered", BOUNCE_DELIVERED, "success" },
		/* 6: the MTA gave up on a wait condition: an expiry */
		{ "failed", "4.7.1", 451, "451 4.7.1 Greylisted, please try again in 300 seconds",
		  "RCPT", "expired", BOUNCE_SOFT, "greylisting" },
		{ "failed", "4.4.1", 0, "connect to mx.example[192.0.2.1]:25: Connection refused",
		  NULL, "expired", BOUNCE_SOFT, "no connection" },
		{ "failed", "4.7.0", 421, "421 4.7.0 Too many connections, try later", "CONN",
		  "expired", BOUNCE_SOFT, "too many connections" },
		/* ... but a transient verdict keeps its reason */
		{ "failed", "4.2.2", 452, "452 4.2.2 Mailbox full", "RCPT", "mailboxfull",
		  BOUNCE_SOFT, "X.2.2" },
		{ "failed", "4.7.1", 450, "450 4.7.1 Client host rejected: may not be mail exchanger",
		  "RCPT", "blocked", BOUNCE_SOFT, "client" },
		/* ... and a permanent refusal with the same words is that condition */
		{ "failed", "5.7.0", 554, "554 5.7.0 Too many connections", "CONN",
		  "toomanyconn", BOUNCE_SOFT, "too many" },
		/* the final MTA's own "Unknown user" (Exim: 5.0.0, no remote) */
		{ "failed", "5.0.0", 0, "Unknown user", "LOCAL", "userunknown", BOUNCE_HARD,
		  "final MTA" },
		/* the same words with no phase known: a filter (sisimai) */
		{ "failed", "5.0.0", 550, "550 Unknown user", NULL, "filtered", BOUNCE_SOFT,
		  "phase unknown" },
		/* the sender's stage names are phases */
		{ NULL, "5.0.0", 550, "550 No such user here", "RCPT TO", "userunknown",
		  BOUNCE_HARD, "RCPT TO" },
		{ NULL, "5.0.0", 550, "550 Sender address rejected", "MAIL FROM", "rejected",
		  BOUNCE_SOFT, "MAIL FROM" },
		{ NULL, "5.0.0", 550, "550 No such user here", "end of data", "filtered",
		  BOUNCE_SOFT, "after DATA" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct bounce_evidence e = {
			.action = v[i].action, .status = v[i].status, .reply_code = v[i].reply,
			.diagnostic = v[i].diag, .phase = v[i].phase,
			.returned = v[i].action != NULL,
		};
		const char *reason = NULL;
		char why[BOUNCE_WHY_SIZE];
		enum bounce_class c = bounce_decide(&e, &reason, why, sizeof why);

		if (reason == NULL || strcmp(reason, v[i].reason) != 0 || c != v[i].cls ||
		    strstr(why, v[i].why_has) == NULL || strstr(why, reason) == NULL)
			fail_msg("row %zu (%s %s \"%s\"): got %s/%s why \"%s\", want %s/%s "
			    "and \"%s\" in why", i, v[i].action ? v[i].action : "-", v[i].status,
			    v[i].diag, reason ? reason : "NULL", bounce_class_name(c), why,
			    v[i].reason, bounce_class_name(v[i].cls), v[i].why_has);
	}
}

static void
test_bounce_classify_long_text(void **state)
{
	struct buf b = BUF_INIT(1 << 20);
	const char *reason;
	int i;

	(void)state;
	/* The reason in the first lines, then 100 KB of noise: read. */
	assert_int_equal(buf_adds(&b, "550 5.2.2 mailbox full "), 0);
	for (i = 0; i < 10000; i++)
		assert_int_equal(buf_adds(&b, "noise noise "), 0);
	assert_int_equal(bounce_classify("5.0.0", 550, b.data, NULL, &reason), BOUNCE_SOFT);
	assert_string_equal(reason, "mailboxfull");
	buf_free(&b);
}

static void
test_bounce_class_name_all(void **state)
{
	(void)state;
	assert_string_equal(bounce_class_name(BOUNCE_HARD), "hard");
	assert_string_equal(bounce_class_name(BOUNCE_SOFT), "soft");
	assert_string_equal(bounce_class_name(BOUNCE_COMPLAINT), "complaint");
	assert_string_equal(bounce_class_name(BOUNCE_AUTOREPLY), "autoreply");
	assert_string_equal(bounce_class_name(BOUNCE_DELAYED), "delayed");
	assert_string_equal(bounce_class_name(BOUNCE_DELIVERED), "delivered");
}

static void
test_bounce_report_free_null(void **state)
{
	(void)state;
	bounce_report_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounce_parse_postfix_userunknown),
		cmocka_unit_test(test_bounce_parse_line_ends),
		cmocka_unit_test(test_bounce_parse_mbox_from_line),
		cmocka_unit_test(test_bounce_parse_sha256),
		cmocka_unit_test(test_bounce_digest),
		cmocka_unit_test(test_bounce_parse_envelope_to_argument),
		cmocka_unit_test(test_bounce_parse_mailbox_full_soft),
		cmocka_unit_test(test_bounce_parse_utf8_recipient),
		cmocka_unit_test(test_bounce_parse_delayed),
		cmocka_unit_test(test_bounce_parse_arf_abuse),
		cmocka_unit_test(test_bounce_parse_arf_without_rcpt_to),
		cmocka_unit_test(test_bounce_parse_autoreply),
		cmocka_unit_test(test_bounce_parse_qmail),
		cmocka_unit_test(test_bounce_parse_exim),
		cmocka_unit_test(test_bounce_parse_exchange),
		cmocka_unit_test(test_bounce_parse_sendmail_after_data),
		cmocka_unit_test(test_bounce_parse_gmail),
		cmocka_unit_test(test_bounce_parse_truncated),
		cmocka_unit_test(test_bounce_parse_not_a_bounce),
		cmocka_unit_test(test_bounce_parse_not_a_message),
		cmocka_unit_test(test_bounce_parse_nested_200),
		cmocka_unit_test(test_bounce_parse_many_parts),
		cmocka_unit_test(test_bounce_parse_recipient_cap),
		cmocka_unit_test(test_bounce_parse_ten_megabytes),
		cmocka_unit_test(test_bounce_parse_bad_charset),
		cmocka_unit_test(test_bounce_parse_garbage_does_not_crash),
		cmocka_unit_test(test_bounce_classify_vectors),
		cmocka_unit_test(test_bounce_decide_structure),
		cmocka_unit_test(test_bounce_classify_long_text),
		cmocka_unit_test(test_bounce_class_name_all),
		cmocka_unit_test(test_bounce_report_free_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
