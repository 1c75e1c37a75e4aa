/*
 * test_message.c - one subscriber's copy of an issue (src/message.c), built
 * from an issue stored by issue_create() on a fresh database per test, and
 * the double opt-in confirmation mail.
 *
 * Covers, from message.h:
 *   - message_merge(): personalisation ({{name}}, {{first_name}},
 *     {{attr.KEY}} and their fallbacks), HTML escaping of the reader's
 *     values in the HTML part only; links: the HTML part goes through
 *     BASE/c/TOKEN/N (a click token for this reader, issue and list) when
 *     the issue tracks and the reader is tracked, with an open pixel, while
 *     the text part always lists the real destination "[N] URL"; an
 *     untracked reader (attribute tracking = no, a preview/test copy, the
 *     stand-in id 0, an issue with tracking off) gets direct links and no
 *     pixel; a mailto link is never redirected;
 *   - message_build(): the headers receivers ask of list mail: List-Id,
 *     List-Unsubscribe with the https URL and a mailto carrying the same
 *     unsubscribe token, List-Unsubscribe-Post on issue mail only
 *     (MESSAGE_TEST has none and is marked "[TEST]" in its Subject),
 *     Feedback-ID; the deterministic Message-ID (stable for an issue x
 *     subscriber, different across subscribers, the same bytes for the
 *     same message); the VERP envelope sender (a bounce token) and the
 *     plain return path with verp off or for a test copy;
 *   - header injection: whatever a name holds (CR, LF, a fold, NEL, an
 *     encoded-word that decodes to CRLF, "Bcc:" text), the built message
 *     never has a header field it should not have, and a raw line break is
 *     refused with EX_DATAERR and nothing built;
 *   - a long merged Subject within the documented limits is
 *     never cut;
 *   - message_build_confirm(): Auto-Submitted, no list headers, a random
 *     Message-ID, the plain return path, and BASE/confirm/TOKEN with a
 *     confirm token for the subscriber, list and confirmation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/config.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/list.h"
#include "herald/message.h"
#include "herald/subscriber.h"
#include "herald/token.h"

#define BASE "https://news.example.org"

struct fixture {
	char      dir[64];
	char      files[4][128];
	int       n_files;
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	struct config cfg;
	int       have_cfg;
	struct token_key key;
	struct list news, digest;
	long long ada, bob;
	long long issue_id;
	struct issue is;
	struct message_ctx m;
	int       have_ctx;
};

static const char *
write_file(struct fixture *f, const char *name, const char *text)
{
	FILE *fp;
	char *p, full[sizeof f->files[0]];

	assert_true(f->n_files < 4);
	p = f->files[f->n_files++];
	snprintf(full, sizeof full, "%s/%s", f->dir, name);
	memcpy(p, full, sizeof full);
	fp = fopen(p, "wb");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return p;
}

static long long
add_sub(struct fixture *f, const char *addr, const char *name, const char *key,
        const char *value)
{
	struct tmpl_attr attr = { key, value };
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;

	assert_int_equal(address_parse(addr, &a, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = name;
	r.attrs = &attr;
	r.n_attrs = 1;
	r.source = SIGNUP_ADMIN;
	if (subscriber_signup(f->db, &f->news, &r, &res, &err) < 0)
		fail_msg("%s: %s", addr, err.msg);
	return res.subscriber_id;
}

#define CONF \
	"[database]\npath = herald.db\n" \
	"[smtp]\nurl = smtp://127.0.0.1:2525\nstarttls = never\n" \
	"[sender]\nfrom = The News Team <news@example.org>\n" \
	"reply_to = Desk <desk@example.org>\npostal_address = 1 Example Street\n" \
	"return_path = bounces@example.org\nverp = yes\n" \
	"[web]\nbase_url = " BASE "\ntracking = yes\n"

#define ISSUE_MD \
	"---\n" \
	"subject: \"News for {{first_name|friend}}\"\n" \
	"list: news\n" \
	"---\n" \
	"Hello {{name|there}} from {{attr.organisation|nowhere}}.\n" \
	"\n" \
	"Read [the report](https://example.org/report?a=1&b=2) or\n" \
	"[write to us](mailto:team@example.org).\n"

/* Store an issue from `md` and prepare a message context for it. */
static void
prepare(struct fixture *f, const char *name, const char *md)
{
	struct issue_source src;
	struct herr err;

	if (f->have_ctx) {
		message_ctx_free(&f->m);
		issue_clear(&f->is);
		f->have_ctx = 0;
	}
	herr_clear(&err);
	if (issue_source_read(write_file(f, name, md), &src, &err) < 0 ||
	    issue_create(f->db, &f->cfg, &src, NULL, &f->issue_id, NULL, NULL, &err) < 0)
		fail_msg("issue: %s: %s", err.where, err.msg);
	issue_source_free(&src);
	assert_int_equal(issue_get(f->db, f->issue_id, &f->is, &err), 0);
	if (message_ctx_init(&f->m, &f->cfg, &f->key, &f->is, &f->news, &err) < 0)
		fail_msg("ctx: %s", err.msg);
	f->have_ctx = 1;
}

/*
 * A config, a token key, list 'news' ("The News", private) with ada (Ada
 * Lovelace, organisation "Lambeth & <Co>") and bob (tracking = no), list
 * 'digest' (double opt-in), and the issue ISSUE_MD prepared.
 */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;
	long long id;
	int i;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/herald-message-XXXXXX");
	if (!mkdtemp(f->dir) || tempdb_open(f->path, "message", &f->db) < 0)
		return -1;
	*state = f;
	f->have_cfg = 1;
	if (config_load(write_file(f, "herald.conf", CONF), &f->cfg, &err) < 0)
		fail_msg("config: %s", err.msg);
	for (i = 0; i < TOKEN_SECRET_LEN; i++)
		f->key.secret[i] = (unsigned char)(i * 7 + 1);
	if (list_create(f->db, "news", "The News", 0, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->news, &err) < 0 ||
	    list_create(f->db, "digest", "The Digest", 1, 0, &id, &err) < 0 ||
	    list_get_by_id(f->db, id, &f->digest, &err) < 0)
		return -1;
	f->ada = add_sub(f, "ada@example.org", "Ada Lovelace", "organisation", "Lambeth & <Co>");
	f->bob = add_sub(f, "bob@example.org", "Bob Jones", "tracking", "no");
	prepare(f, "issue.md", ISSUE_MD);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	if (f->have_ctx) {
		message_ctx_free(&f->m);
		issue_clear(&f->is);
	}
	if (f->have_cfg)
		config_free(&f->cfg);
	for (i = 0; i < f->n_files; i++)
		unlink(f->files[i]);
	rmdir(f->dir);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

static const struct message_recipient ADA_BASE = { 0, "ada@example.org", "Ada Lovelace",
	"{\"organisation\":\"Lambeth & <Co>\"}", 0, 0, NULL };

static struct message_recipient
ada(struct fixture *f)
{
	struct message_recipient r = ADA_BASE;

	r.subscriber_id = f->ada;
	return r;
}

static struct message_recipient
bob(struct fixture *f)
{
	struct message_recipient r = { f->bob, "bob@example.org", "Bob Jones",
	                               "{\"tracking\":\"no\"}", 0, 0, NULL };

	return r;
}

struct parts {
	struct buf subject, html, text;
};

static void
merge(struct fixture *f, const struct message_recipient *r, struct parts *p)
{
	struct herr err;

	buf_init(&p->subject, 1u << 16);
	buf_init(&p->html, MESSAGE_MAX);
	buf_init(&p->text, MESSAGE_MAX);
	herr_clear(&err);
	if (message_merge(&f->m, r, &p->subject, &p->html, &p->text, &err) < 0)
		fail_msg("merge: %s", err.msg);
}

static void
parts_free(struct parts *p)
{
	buf_free(&p->subject);
	buf_free(&p->html);
	buf_free(&p->text);
}

/* The token that follows `prefix` in `s` (up to a character that cannot be
 * in one), checked to be of `kind` for (sub, list, issue). */
static void
assert_token_after(const struct fixture *f, const char *s, const char *prefix,
                   enum token_kind kind, long long sub, long long list, long long issue,
                   char tok[TOKEN_MAX])
{
	const char *p = strstr(s, prefix);
	struct token t;
	size_t n;

	if (!p)
		fail_msg("'%s' not found", prefix);
	p += strlen(prefix);
	n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
	assert_true(n > 0 && n < TOKEN_MAX);
	memcpy(tok, p, n);
	tok[n] = '\0';
	memset(&t, 0, sizeof t);
	assert_int_equal(token_verify(&f->key, tok, n, &t), 0);
	assert_int_equal(t.kind, kind);
	assert_int_equal(t.subscriber_id, sub);
	assert_int_equal(t.list_id, list);
	assert_int_equal(t.issue_id, issue);
}

/* ---- parsing a built message ------------------------------------------------ */

/* Length of the header block (up to the blank line); fails when absent. */
static size_t
header_len(const struct buf *msg)
{
	const char *e = strstr(buf_str(msg), "\r\n\r\n");

	assert_non_null(e);
	return (size_t)(e - msg->data) + 2;
}

/* The unfolded value of the first header field `name` into out; returns
 * how many fields of that name there are. */
static int
header(const struct buf *msg, const char *name, char *out, size_t size)
{
	size_t hl = header_len(msg), nl = strlen(name), o = 0;
	const char *p = msg->data, *end = msg->data + hl, *q;
	int found = 0;

	if (out)
		out[0] = '\0';
	while (p < end) {
		q = strstr(p, "\r\n");
		if (!strncmp(p, name, nl) && p[nl] == ':') {
			if (!found && out) {
				const char *v = p + nl + 1;

				while (*v == ' ')
					v++;
				/* this line and its continuation lines, CRLFs taken out */
				for (;;) {
					while (v < q && o + 1 < size)
						out[o++] = *v++;
					if (q + 2 < end && (q[2] == ' ' || q[2] == '\t')) {
						v = q + 2;
						q = strstr(v, "\r\n");
						continue;
					}
					break;
				}
				out[o] = '\0';
			}
			found++;
		}
		p = q + 2;
	}
	return found;
}

/*
 * Every header field of `msg` is one of `allowed` (names, NULL-ended); no
 * bare CR or LF anywhere; no line over 998 octets.  Returns the number of
 * header fields.
 */
static int
assert_well_formed(const struct buf *msg, const char *const *allowed)
{
	size_t hl = header_len(msg), i, col = 0;
	const char *p = msg->data, *end = msg->data + hl, *q;
	int fields = 0;

	for (i = 0; i < msg->len; i++) {
		if (msg->data[i] == '\r') {
			assert_true(i + 1 < msg->len && msg->data[i + 1] == '\n');
			col = 0;
			i++;
			continue;
		}
		assert_int_not_equal(msg->data[i], '\n');
		assert_true(++col <= 998);
	}
	while (p < end) {
		q = strstr(p, "\r\n");
		if (*p != ' ' && *p != '\t') {
			const char *colon = memchr(p, ':', (size_t)(q - p));
			size_t k;

			assert_non_null(colon);
			for (k = 0; allowed[k]; k++)
				if (strlen(allowed[k]) == (size_t)(colon - p) &&
				    !strncmp(p, allowed[k], (size_t)(colon - p)))
					break;
			if (!allowed[k])
				fail_msg("unexpected header line: %.*s", (int)(q - p), p);
			fields++;
		}
		p = q + 2;
	}
	return fields;
}

static const char *const ISSUE_HEADERS[] = {
	"Date", "From", "To", "Reply-To", "Subject", "Message-ID", "List-Id",
	"List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID", "MIME-Version",
	"Content-Type", NULL,
};

/* The message body after the headers, quoted-printable decoded (boundary
 * lines come through as they are: "=_" is no escape). */
static char *
body_decoded(const struct buf *msg)
{
	const char *s = msg->data + header_len(msg);
	char *out = malloc(strlen(s) + 1), *o = out;
	static const char hex[] = "0123456789ABCDEF";

	assert_non_null(out);
	while (*s) {
		if (s[0] == '=' && s[1] == '\r' && s[2] == '\n') {
			s += 3;
		} else if (s[0] == '=' && s[1] && s[2] && strchr(hex, s[1]) && strchr(hex, s[2])) {
			*o++ = (char)((strchr(hex, s[1]) - hex) * 16 + (strchr(hex, s[2]) - hex));
			s += 3;
		} else
			*o++ = *s++;
	}
	*o = '\0';
	return out;
}

static int
build(struct fixture *f, const struct message_recipient *r, enum message_kind kind,
      long long now, struct buf *out, struct message_out *mo, struct herr *err)
{
	buf_init(out, MESSAGE_MAX);
	memset(mo, 0, sizeof *mo);
	herr_clear(err);
	return message_build(&f->m, r, kind, now, out, mo, err);
}

/* ---- message_merge ----------------------------------------------------------- */

static void
test_message_merge_personalises_and_escapes(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct parts p;

	merge(f, &r, &p);
	assert_string_equal(buf_str(&p.subject), "News for Ada");
	/* the text part takes the values as they are */
	assert_non_null(strstr(buf_str(&p.text), "Hello Ada Lovelace from Lambeth & <Co>.\n"));
	/* the HTML part escapes them; the layout's own markup stays */
	assert_non_null(strstr(buf_str(&p.html), "Hello Ada Lovelace from Lambeth &amp; "
	                                         "&lt;Co&gt;."));
	assert_null(strstr(buf_str(&p.html), "Lambeth & <Co>"));
	assert_non_null(strstr(buf_str(&p.html), "<a href="));
	parts_free(&p);

	/* a name that is markup */
	r.name = "<script>alert(1)</script> \"Q\" & 'R'";
	merge(f, &r, &p);
	assert_null(strstr(buf_str(&p.html), "<script>alert"));
	assert_non_null(strstr(buf_str(&p.html), "Hello &lt;script&gt;alert(1)&lt;/script&gt; "));
	assert_non_null(strstr(buf_str(&p.html), "&amp;"));
	assert_null(strstr(buf_str(&p.html), "\"Q\""));
	assert_non_null(strstr(buf_str(&p.text), "Hello <script>alert(1)</script> \"Q\" & 'R' "));
	/* first_name is the first word */
	assert_string_equal(buf_str(&p.subject), "News for <script>alert(1)</script>");
	parts_free(&p);

	/* nothing known: the fallbacks */
	r.name = "";
	r.attributes = "{}";
	merge(f, &r, &p);
	assert_string_equal(buf_str(&p.subject), "News for friend");
	assert_non_null(strstr(buf_str(&p.text), "Hello there from nowhere.\n"));
	parts_free(&p);
	r.name = NULL;
	r.attributes = NULL;
	merge(f, &r, &p);
	assert_string_equal(buf_str(&p.subject), "News for friend");
	parts_free(&p);
}

static void
test_message_merge_refuses_attributes_not_an_object(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct buf s = BUF_INIT(4096), h = BUF_INIT(MESSAGE_MAX), t = BUF_INIT(MESSAGE_MAX);
	struct herr err;

	r.attributes = "[\"not\", \"an\", \"object\"]";
	herr_clear(&err);
	assert_int_equal(message_merge(&f->m, &r, &s, &h, &t, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	buf_free(&s);
	buf_free(&h);
	buf_free(&t);
}

static void
test_message_merge_tracked_links(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	char tok[TOKEN_MAX], ctok[TOKEN_MAX], want[200];
	struct parts p;

	assert_int_equal(f->is.tracking, 1);
	merge(f, &r, &p);
	/* HTML: the web link through the redirect, with this reader's token */
	assert_token_after(f, buf_str(&p.html), "<a href=\"" BASE "/c/", TOKEN_CLICK, f->ada,
	                   f->news.id, f->issue_id, ctok);
	snprintf(want, sizeof want, "href=\"" BASE "/c/%s/1\"", ctok);
	assert_non_null(strstr(buf_str(&p.html), want));
	assert_null(strstr(buf_str(&p.html), "href=\"https://example.org/report"));
	/* a mailto is never redirected, and has no number of its own there */
	assert_non_null(strstr(buf_str(&p.html), "href=\"mailto:team@example.org\""));
	assert_null(strstr(buf_str(&p.html), "/2\""));
	/* the open pixel */
	assert_token_after(f, buf_str(&p.html), "<img src=\"" BASE "/o/", TOKEN_OPEN, f->ada,
	                   f->news.id, f->issue_id, tok);
	snprintf(want, sizeof want, BASE "/o/%s.gif\"", tok);
	assert_non_null(strstr(buf_str(&p.html), want));
	/* text: the real destinations, never the redirect */
	assert_non_null(strstr(buf_str(&p.text), "\n[1] https://example.org/report?a=1&b=2\n"
	                                         "[2] mailto:team@example.org\n"));
	assert_null(strstr(buf_str(&p.text), "/c/"));
	assert_null(strstr(buf_str(&p.text), "/o/"));
	/* both parts: this reader's unsubscribe link; the private web copy */
	assert_token_after(f, buf_str(&p.text), BASE "/u/", TOKEN_UNSUBSCRIBE, f->ada,
	                   f->news.id, f->issue_id, tok);
	snprintf(want, sizeof want, BASE "/u/%s", tok);
	assert_non_null(strstr(buf_str(&p.html), want));
	snprintf(want, sizeof want, BASE "/archive/%lld/", f->issue_id);
	assert_token_after(f, buf_str(&p.text), want, TOKEN_VIEW, 0, f->news.id, f->issue_id,
	                   tok);
	parts_free(&p);
	/* another reader, another click token */
	r.subscriber_id = f->ada + 100;
	merge(f, &r, &p);
	assert_token_after(f, buf_str(&p.html), "<a href=\"" BASE "/c/", TOKEN_CLICK, f->ada + 100,
	                   f->news.id, f->issue_id, tok);
	assert_string_not_equal(tok, ctok);
	parts_free(&p);
}

/* Direct links, no pixel, nothing of /c/ or /o/ anywhere. */
static void
assert_untracked(const struct parts *p)
{
	assert_non_null(strstr(buf_str(&p->html),
	                       "href=\"https://example.org/report?a=1&amp;b=2\""));
	assert_null(strstr(buf_str(&p->html), BASE "/c/"));
	assert_null(strstr(buf_str(&p->html), BASE "/o/"));
	assert_non_null(strstr(buf_str(&p->text), "[1] https://example.org/report?a=1&b=2\n"));
	assert_null(strstr(buf_str(&p->text), BASE "/c/"));
}

static void
test_message_merge_untracked_gets_direct_links(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r;
	struct parts p;

	/* the reader said tracking = no */
	r = bob(f);
	merge(f, &r, &p);
	assert_untracked(&p);
	assert_non_null(strstr(buf_str(&p.text), BASE "/u/"));
	parts_free(&p);
	/* a preview or test copy */
	r = ada(f);
	r.untracked = 1;
	merge(f, &r, &p);
	assert_untracked(&p);
	parts_free(&p);
	/* the stand-in reader of the web copy: its "unsubscribe" is the archive */
	r = ada(f);
	r.subscriber_id = 0;
	merge(f, &r, &p);
	assert_untracked(&p);
	assert_non_null(strstr(buf_str(&p.text), BASE "/archive\n"));
	assert_null(strstr(buf_str(&p.text), BASE "/u/"));
	parts_free(&p);
	/* an issue with tracking off, for a reader who would be tracked */
	prepare(f, "untracked.md", "---\nsubject: S\nlist: news\ntracking: false\n---\n"
	                           "[the report](https://example.org/report?a=1&b=2)\n");
	assert_int_equal(f->is.tracking, 0);
	r = ada(f);
	merge(f, &r, &p);
	assert_untracked(&p);
	parts_free(&p);
}

static void
test_message_tracking_refused_values(void **state)
{
	(void)state;
	assert_int_equal(message_tracking_refused("{\"tracking\":\"no\"}"), 1);
	assert_int_equal(message_tracking_refused("{\"tracking\":\"OFF\"}"), 1);
	assert_int_equal(message_tracking_refused("{\"tracking\":\"False\"}"), 1);
	assert_int_equal(message_tracking_refused("{\"a\":\"b\",\"tracking\":\"0\"}"), 1);
	assert_int_equal(message_tracking_refused("{\"tracking\":\"yes\"}"), 0);
	assert_int_equal(message_tracking_refused("{\"tracking\":0}"), 0);
	assert_int_equal(message_tracking_refused("{\"tracking_note\":\"x\"}"), 0);
	assert_int_equal(message_tracking_refused("{\"x\":\"tracking\"}"), 0);
	assert_int_equal(message_tracking_refused(NULL), 0);
	assert_int_equal(message_tracking_refused("not json tracking"), 0);
}

/* ---- message_build ------------------------------------------------------------ */

static void
test_message_build_issue_headers(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct message_out mo;
	struct buf out;
	struct herr err;
	char v[1024], https[TOKEN_MAX], mailto[TOKEN_MAX], want[200];

	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	assert_int_equal(assert_well_formed(&out, ISSUE_HEADERS), 12);
	assert_int_equal(header(&out, "From", v, sizeof v), 1);
	assert_string_equal(v, "The News Team <news@example.org>");
	assert_int_equal(header(&out, "To", v, sizeof v), 1);
	assert_string_equal(v, "Ada Lovelace <ada@example.org>");
	assert_int_equal(header(&out, "Reply-To", v, sizeof v), 1);
	assert_string_equal(v, "Desk <desk@example.org>");
	assert_int_equal(header(&out, "Subject", v, sizeof v), 1);
	assert_string_equal(v, "News for Ada");
	assert_int_equal(header(&out, "Date", v, sizeof v), 1);
	assert_string_equal(v, "Tue, 14 Nov 2023 22:13:20 +0000");
	assert_int_equal(header(&out, "List-Id", v, sizeof v), 1);
	assert_string_equal(v, "\"The News\" <news.example.org>");
	/* RFC 2369: the https URL, then a mailto at the return path's domain,
	 * both with the same unsubscribe token */
	assert_int_equal(header(&out, "List-Unsubscribe", v, sizeof v), 1);
	assert_int_equal(strncmp(v, "<" BASE "/u/", strlen("<" BASE "/u/")), 0);
	assert_token_after(f, v, "<" BASE "/u/", TOKEN_UNSUBSCRIBE, f->ada, f->news.id,
	                   f->issue_id, https);
	assert_token_after(f, v, "<mailto:unsubscribe+", TOKEN_UNSUBSCRIBE, f->ada, f->news.id,
	                   f->issue_id, mailto);
	assert_string_equal(https, mailto);
	snprintf(want, sizeof want, "<" BASE "/u/%s>, <mailto:unsubscribe+%s@example.org>", https,
	         mailto);
	assert_string_equal(v, want);
	/* RFC 8058 one-click, on list mail */
	assert_int_equal(header(&out, "List-Unsubscribe-Post", v, sizeof v), 1);
	assert_string_equal(v, "List-Unsubscribe=One-Click");
	assert_int_equal(header(&out, "Feedback-ID", v, sizeof v), 1);
	snprintf(want, sizeof want, "%lld:news:newsletter:herald", f->issue_id);
	assert_string_equal(v, want);
	assert_int_equal(header(&out, "Content-Type", v, sizeof v), 1);
	assert_non_null(strstr(v, "multipart/alternative"));
	assert_string_equal(mo.rcpt.ascii, "ada@example.org");
	buf_free(&out);
}

static void
test_message_build_test_copy_is_marked(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct message_out mo, mo2;
	struct buf out, out2;
	struct herr err;
	char v[1024], prefix[64];

	r.untracked = 1;
	assert_int_equal(build(f, &r, MESSAGE_TEST, 1700000000, &out, &mo, &err), 0);
	assert_well_formed(&out, ISSUE_HEADERS);
	assert_int_equal(header(&out, "Subject", v, sizeof v), 1);
	assert_string_equal(v, "[TEST] News for Ada");
	/* not list mail: no one-click, but still a way out */
	assert_int_equal(header(&out, "List-Unsubscribe-Post", NULL, 0), 0);
	assert_int_equal(header(&out, "List-Unsubscribe", v, sizeof v), 1);
	assert_non_null(strstr(v, BASE "/u/"));
	/* its own Message-ID, and the plain return path */
	snprintf(prefix, sizeof prefix, "test.%lld.", f->issue_id);
	assert_int_equal(strncmp(mo.message_id, prefix, strlen(prefix)), 0);
	assert_non_null(strstr(mo.message_id, "@example.org"));
	assert_string_equal(mo.mail_from, "bounces@example.org");
	assert_int_equal(build(f, &r, MESSAGE_TEST, 1700000000, &out2, &mo2, &err), 0);
	assert_string_not_equal(mo.message_id, mo2.message_id);
	buf_free(&out);
	buf_free(&out2);
	/* the same reader's real copy is not marked */
	r.untracked = 0;
	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	assert_int_equal(header(&out, "Subject", v, sizeof v), 1);
	assert_string_equal(v, "News for Ada");
	buf_free(&out);
}

static void
test_message_build_message_id_is_stable(void **state)
{
	struct fixture *f = *state;
	struct message_recipient a = ada(f), b = bob(f);
	struct message_out mo1, mo2, mo3;
	struct buf o1, o2, o3;
	struct herr err;
	struct token_key other;
	char v[400], want[310], prefix[64];
	size_t i;

	assert_int_equal(build(f, &a, MESSAGE_ISSUE, 1700000000, &o1, &mo1, &err), 0);
	assert_int_equal(build(f, &a, MESSAGE_ISSUE, 1700000000, &o2, &mo2, &err), 0);
	/* the same message is the same bytes */
	assert_int_equal(o1.len, o2.len);
	assert_memory_equal(o1.data, o2.data, o1.len);
	buf_free(&o2);
	/* a retry days later: the same Message-ID */
	assert_int_equal(build(f, &a, MESSAGE_ISSUE, 1700300000, &o2, &mo2, &err), 0);
	assert_string_equal(mo1.message_id, mo2.message_id);
	/* ISSUE.SUBSCRIBER.MAC@message_id_domain, as message_id_for() says */
	snprintf(prefix, sizeof prefix, "%lld.%lld.", f->issue_id, f->ada);
	assert_int_equal(strncmp(mo1.message_id, prefix, strlen(prefix)), 0);
	for (i = strlen(prefix); i < strlen(prefix) + 8; i++)
		assert_non_null(strchr("0123456789abcdef", mo1.message_id[i]));
	assert_string_equal(mo1.message_id + strlen(prefix) + 8, "@example.org");
	assert_int_equal(message_id_for(&f->key, "example.org", f->issue_id, f->ada, want,
	                                sizeof want), 0);
	assert_string_equal(mo1.message_id, want);
	assert_int_equal(header(&o1, "Message-ID", v, sizeof v), 1);
	snprintf(want, sizeof want, "<%s>", mo1.message_id);
	assert_string_equal(v, want);
	/* another subscriber, another id; another secret, another MAC */
	assert_int_equal(build(f, &b, MESSAGE_ISSUE, 1700000000, &o3, &mo3, &err), 0);
	assert_string_not_equal(mo1.message_id, mo3.message_id);
	memcpy(&other, &f->key, sizeof other);
	other.secret[0] ^= 1;
	assert_int_equal(message_id_for(&other, "example.org", f->issue_id, f->ada, want,
	                                sizeof want), 0);
	assert_string_not_equal(mo1.message_id, want);
	buf_free(&o1);
	buf_free(&o2);
	buf_free(&o3);
}

static void
test_message_build_verp_envelope_sender(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct message_out mo;
	struct buf out;
	struct herr err;
	char tok[TOKEN_MAX], want[300], plain[300];

	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	assert_token_after(f, mo.mail_from, "bounces+", TOKEN_BOUNCE, f->ada, f->news.id,
	                   f->issue_id, tok);
	snprintf(want, sizeof want, "bounces+%s@example.org", tok);
	assert_string_equal(mo.mail_from, want);
	assert_int_equal(message_envelope_from(&f->cfg, &f->key, f->ada, f->news.id, f->issue_id,
	                                       plain, sizeof plain), 0);
	assert_string_equal(plain, want);
	buf_free(&out);
	/* [sender] verp = no: the return path itself */
	f->cfg.verp = 0;
	assert_int_equal(message_envelope_from(&f->cfg, &f->key, f->ada, f->news.id, f->issue_id,
	                                       plain, sizeof plain), 0);
	assert_string_equal(plain, "bounces@example.org");
	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	assert_string_equal(mo.mail_from, "bounces@example.org");
	f->cfg.verp = 1;
	buf_free(&out);
}

/* ---- header injection ----------------------------------------------------------- */

static void
test_message_build_name_never_adds_a_header(void **state)
{
	struct fixture *f = *state;
	static const char *const raw[] = {
		"Eve\r\nBcc: victim@example.org",
		"Eve\nBcc: victim@example.org",
		"Eve\rBcc: victim@example.org",
		"Eve\r\n Bcc: victim@example.org",      /* would look like a fold */
		"Eve\r\n\r\nInjected body",
		"Eve\xc2\x85" "Bcc: victim@example.org",    /* NEL */
		"Eve\x0b" "Bcc: victim@example.org",
	};
	static const char *const cooked[] = {
		"Eve Bcc: victim@example.org",
		"=?utf-8?q?Eve=0D=0ABcc:_victim@example.org?=",
		"Eve =?utf-8?b?DQpCY2M6IHZpY3RpbUBleGFtcGxlLm9yZw==?=",
		"Ev\xc3\xa9 \"x\" <y@example.org>, Bcc: victim@example.org",
	};
	struct message_recipient r = ada(f);
	struct message_out mo;
	struct buf out;
	struct herr err;
	size_t i;
	int baseline;
	char v[1024];

	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	baseline = assert_well_formed(&out, ISSUE_HEADERS);
	buf_free(&out);
	/* a raw line break or control character: refused, nothing built */
	for (i = 0; i < sizeof raw / sizeof raw[0]; i++) {
		r.name = raw[i];
		assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_int_equal(out.len, 0);
		assert_null(strchr(err.msg, '\n'));
		buf_free(&out);
		/* and in a test copy */
		assert_int_equal(build(f, &r, MESSAGE_TEST, 1700000000, &out, &mo, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		buf_free(&out);
	}
	/* text that merely says Bcc, or an encoded-word that decodes to a line
	 * break: built, with exactly the usual header fields */
	for (i = 0; i < sizeof cooked / sizeof cooked[0]; i++) {
		r.name = cooked[i];
		if (build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err) < 0)
			fail_msg("%s: %s", cooked[i], err.msg);
		assert_int_equal(assert_well_formed(&out, ISSUE_HEADERS), baseline);
		assert_int_equal(header(&out, "Bcc", NULL, 0), 0);
		assert_int_equal(header(&out, "To", v, sizeof v), 1);
		assert_non_null(strstr(v, "<ada@example.org>"));
		/* the address is the last thing in To: nothing after it */
		assert_string_equal(v + strlen(v) - strlen("<ada@example.org>"), "<ada@example.org>");
		buf_free(&out);
	}
	/* an address with a line break never gets that far */
	r.name = "Eve";
	r.email = "eve@example.org\r\nBcc: victim@example.org";
	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

/* The same through a merge field in the Subject. */
static void
test_message_build_attribute_never_adds_a_header(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct message_out mo;
	struct buf out;
	struct herr err;
	char v[1024];

	prepare(f, "subj.md", "---\nsubject: \"{{attr.organisation|News}} weekly\"\nlist: news\n"
	                      "---\nBody\n");
	r.attributes = "{\"organisation\":\"Acme\\r\\nBcc: victim@example.org\"}";
	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(out.len, 0);
	buf_free(&out);
	r.attributes = "{\"organisation\":\"Acme Bcc: victim@example.org\"}";
	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	assert_well_formed(&out, ISSUE_HEADERS);
	assert_int_equal(header(&out, "Subject", v, sizeof v), 1);
	assert_string_equal(v, "Acme Bcc: victim@example.org weekly");
	assert_int_equal(header(&out, "Bcc", NULL, 0), 0);
	buf_free(&out);
}

/*
 * A Subject within the documented limits (front matter values up to 998
 * bytes, names up to SUBSCRIBER_NAME_MAX) is sent whole, whatever the
 * merge makes of it.
 * (Once a bug: a 1200-byte array cut it, even inside a UTF-8 sequence.)
 */
static void
test_message_build_long_subject_is_not_cut(void **state)
{
	struct fixture *f = *state;
	struct message_recipient r = ada(f);
	struct message_out mo;
	struct buf out;
	struct herr err;
	char md[1200], name[SUBSCRIBER_NAME_MAX + 1], want[1300], *v;
	size_t i;

	/* 950 + 1 + 250 bytes of ASCII */
	memset(md, 0, sizeof md);
	strcpy(md, "---\nsubject: \"");
	memset(md + strlen(md), 'x', 950);
	strcat(md, " {{name}}\"\nlist: news\n---\nBody\n");
	prepare(f, "long.md", md);
	memset(name, 'n', 250);
	name[249] = 'Z';
	name[250] = '\0';
	r.name = name;
	assert_int_equal(build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err), 0);
	v = malloc(8192);
	assert_non_null(v);
	assert_int_equal(header(&out, "Subject", v, 8192), 1);
	memset(want, 'x', 950);
	want[950] = ' ';
	memcpy(want + 951, name, 251);
	assert_string_equal(v, want);
	buf_free(&out);
	/* 949 + 1 + 250 bytes, the name in two-byte characters */
	memset(md, 0, sizeof md);
	strcpy(md, "---\nsubject: \"");
	memset(md + strlen(md), 'x', 949);
	strcat(md, " {{name}}\"\nlist: news\n---\nBody\n");
	prepare(f, "long2.md", md);
	for (i = 0; i < 125; i++) {
		name[2 * i] = '\xc3';
		name[2 * i + 1] = '\xa9';
	}
	name[250] = '\0';
	if (build(f, &r, MESSAGE_ISSUE, 1700000000, &out, &mo, &err) < 0)
		fail_msg("%s: %s", err.where, err.msg);
	buf_free(&out);
	free(v);
}

/* ---- message_build_confirm --------------------------------------------------------- */

static const char *const CONFIRM_HEADERS[] = {
	"Date", "From", "To", "Subject", "Message-ID", "Auto-Submitted", "MIME-Version",
	"Content-Type", NULL,
};

static void
test_message_build_confirm(void **state)
{
	struct fixture *f = *state;
	struct message_out mo, mo2;
	struct buf out = BUF_INIT(MESSAGE_MAX), out2 = BUF_INIT(MESSAGE_MAX);
	struct herr err;
	char v[1024], tok[TOKEN_MAX], want[300], *body;
	size_t i;

	herr_clear(&err);
	assert_int_equal(message_build_confirm(&f->cfg, &f->key, NULL, &f->digest, 77, 5,
	                                       "Ada@Example.ORG", "Ada <Lovelace>", 1700000000,
	                                       &out, &mo, &err), 0);
	assert_int_equal(assert_well_formed(&out, CONFIRM_HEADERS), 8);
	assert_int_equal(header(&out, "Auto-Submitted", v, sizeof v), 1);
	assert_string_equal(v, "auto-generated");
	assert_int_equal(header(&out, "List-Unsubscribe-Post", NULL, 0), 0);
	assert_int_equal(header(&out, "Subject", v, sizeof v), 1);
	assert_string_equal(v, "Please confirm your subscription to The Digest");
	assert_int_equal(header(&out, "To", v, sizeof v), 1);
	assert_string_equal(v, "\"Ada <Lovelace>\" <Ada@example.org>");
	assert_int_equal(header(&out, "From", v, sizeof v), 1);
	assert_string_equal(v, "The News Team <news@example.org>");
	/* a random Message-ID, the plain return path */
	assert_int_equal(strncmp(mo.message_id, "confirm.", 8), 0);
	for (i = 8; i < 24; i++)
		assert_non_null(strchr("0123456789abcdef", mo.message_id[i]));
	assert_string_equal(mo.message_id + 24, "@example.org");
	assert_string_equal(mo.mail_from, "bounces@example.org");
	assert_string_equal(mo.rcpt.ascii, "Ada@example.org");
	/* the confirmation link, in both parts, with a confirm token */
	body = body_decoded(&out);
	assert_token_after(f, body, BASE "/confirm/", TOKEN_CONFIRM, 77, f->digest.id, 5, tok);
	snprintf(want, sizeof want, "\r\n" BASE "/confirm/%s\r\n", tok);
	assert_non_null(strstr(body, want));            /* text part, on its own line */
	snprintf(want, sizeof want, "<a href=\"" BASE "/confirm/%s\"", tok);
	assert_non_null(strstr(body, want));            /* HTML part */
	assert_non_null(strstr(body, "Hello Ada <Lovelace>,"));
	assert_non_null(strstr(body, "Hello Ada &lt;Lovelace&gt;,"));
	assert_non_null(strstr(body, "1 Example Street"));
	free(body);
	/* each one its own Message-ID */
	assert_int_equal(message_build_confirm(&f->cfg, &f->key, NULL, &f->digest, 77, 5,
	                                       "Ada@Example.ORG", NULL, 1700000000, &out2, &mo2,
	                                       &err), 0);
	assert_string_not_equal(mo.message_id, mo2.message_id);
	assert_int_equal(header(&out2, "To", v, sizeof v), 1);
	assert_string_equal(v, "Ada@example.org");
	buf_free(&out2);
	/* a name with a line break builds nothing */
	herr_clear(&err);
	assert_int_equal(message_build_confirm(&f->cfg, &f->key, NULL, &f->digest, 77, 5,
	                                       "ada@example.org", "Ada\r\nBcc: victim@example.org",
	                                       1700000000, &out, &mo, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_message_merge_personalises_and_escapes),
		T(test_message_merge_refuses_attributes_not_an_object),
		T(test_message_merge_tracked_links),
		T(test_message_merge_untracked_gets_direct_links),
		cmocka_unit_test(test_message_tracking_refused_values),
		T(test_message_build_issue_headers),
		T(test_message_build_test_copy_is_marked),
		T(test_message_build_message_id_is_stable),
		T(test_message_build_verp_envelope_sender),
		T(test_message_build_name_never_adds_a_header),
		T(test_message_build_attribute_never_adds_a_header),
		T(test_message_build_long_subject_is_not_cut),
		T(test_message_build_confirm),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
