/*
 * bounce.c - read a returned message and say what it means.
 *
 * Owns bounce_parse(): bytes in, a bounce_report out (one entry per
 * recipient the message speaks of), and bounce_digest(), the SHA-256 of a
 * message's bytes that bouncelog.c keeps to know a message read before.  MIME structure and content decoding
 * are GMime 3's; what the parts mean is read here, and why each recipient
 * failed is bouncereason.c's bounce_classify().  Called by cmd/bounce.c
 * (pipe, maildir, mailbox) through bouncelog.c, and by cmd/bounce_explain.c.
 *
 * Evidence, strongest first (the first that yields a recipient wins):
 *   1. RFC 3464 delivery status notification: a message/delivery-status
 *      part (RFC 3464 §2.2 per-message fields, §2.3 per-recipient fields:
 *      Final-Recipient, Original-Recipient, Action, Status, Remote-MTA,
 *      Diagnostic-Code), or the same fields quoted as text by MTAs that
 *      forget the MIME type.  The human-readable part is read as well: the
 *      SMTP command a reply answered and a missing diagnostic are often
 *      only there.
 *   2. RFC 5965 feedback report (ARF): message/feedback-report, recipients
 *      from Original-Rcpt-To, else the returned message's To.
 *   3. RFC 3834 auto-reply: Auto-Submitted: auto-replied, X-Autoreply,
 *      Precedence: auto_reply, or a vacation subject, from a person rather
 *      than a mailer daemon.  The recipient is the one who replied.
 *   4. The non-standard shapes, read as text: qmail ("Hi. This is the
 *      qmail-send program"), Exim ("  address\n    reason"), Sendmail
 *      (addresses and a session transcript), Exchange and Office 365,
 *      Gmail, Yahoo, Domino, Notes, ...  One scanner serves them all
 *      (scan_blocks): an address at the start of a line (or after
 *      "delivered to:" and its kin) opens a recipient, the lines below it
 *      are its diagnostic; an address that is the sender's (a greeting)
 *      is dropped; Exim's X-Failed-Recipients header is the list when the
 *      text names no one else; a transcript (">>> RCPT To:<a>" then
 *      "<<< 550 ...") gives the reply and the command.  The shape name
 *      comes from the MTA's signature sentence (text_shape).
 *   5. Nothing found: a report attached as message/rfc822 (a forwarded
 *      bounce, a filter wrapping the DSN) is read the same way, two
 *      levels at most; a DSN or daemon report that names no recipient
 *      speaks of the returned message's To.
 * A recipient's reason is bounce_classify()'s, from its status, reply
 * code, diagnostic and the SMTP command found around it; the report's
 * own words win where it has them (ARF: feedback, RFC 3834: vacation,
 * PowerMTA's X-PowerMTA-BounceCategory, Google Groups' refusal to post).
 *
 * Invariants (the fuzz target tests/fuzz/fuzz_bounce.c leans on them):
 *   (1) any bytes: no crash, no hang; either -1 with an error or a report;
 *   (2) GMime never sees more than BOUNCE_MAX_NEST multipart or message
 *       Content-Type fields, nor more than BOUNCE_MAX_DELIMS lines that
 *       could be boundary delimiters (the input is cut before the next
 *       one), and the walk below stops at BOUNCE_MAX_DEPTH: GMime's parser
 *       recurses per nesting level and builds an object per part, so the
 *       cut bounds its stack and its memory (10 MB of empty parts would
 *       otherwise be two million objects);
 *   (3) at most BOUNCE_MAX_RCPTS recipients; text examined is capped
 *       (BOUNCE_TEXT_MAX), so time is linear in the input;
 *   (4) every string in the report is valid UTF-8 (bytes that are not are
 *       '?'), diagnostics are one line; text that fails charset conversion
 *       is kept as raw bytes.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <openssl/evp.h>

#include "herald/bounce.h"
#include "herald/buf.h"
#include "herald/utf8.h"

#define BOUNCE_MAX_NEST   64        /* multipart/message Content-Types given to GMime */
#define BOUNCE_MAX_DELIMS 4096      /* lines starting "--" given to GMime */
#define BOUNCE_MAX_DEPTH  32        /* MIME levels walked */
#define BOUNCE_MAX_RCPTS  1000
#define BOUNCE_TEXT_MAX   (256 * 1024) /* human-readable text kept */
#define BOUNCE_PART_MAX   (256 * 1024) /* a DSN / ARF / header part kept */
#define BOUNCE_DIAG_MAX   2048      /* one recipient's diagnostic */
#define BOUNCE_ADDR_MAX   320

/* A recipient while the report is being built. */
struct rw {
	char  addr[BOUNCE_ADDR_MAX];
	char  status[16];       /* from the Status field (or the shape) */
	int   reply;
	struct buf diag;        /* Diagnostic-Code or the text below the address */
	struct buf ctx;         /* the recipient's block in the human-readable text */
	char  remote_mta[256];
	char  action[16];
	char  feedback_type[64];
	const char *preset;     /* reason fixed by the shape (feedback, vacation) */
	const char *hint;       /* reason the report names (PowerMTA's category) */
	char  cmd[8];           /* SMTP command the reply answered, from a transcript */
	int   smtp_diag;        /* Diagnostic-Code of type smtp: a remote server's reply */
	enum bounce_class preset_cls;
	char  why[BOUNCE_WHY_SIZE];
};

struct pctx {
	GMimeMessage *msg;
	GMimeMessage *orig;     /* the returned message (message/rfc822), borrowed */
	struct buf text;        /* text/plain parts of the report itself */
	struct buf html;        /* text/html parts, tags stripped later */
	struct buf dsn;         /* message/delivery-status bodies */
	struct buf arf;         /* message/feedback-report body */
	struct buf orighdr;     /* text/rfc822-headers body */
	struct buf origtext;    /* text/plain of the returned message */
	struct rw *r;
	size_t n, cap;
	int oom;
	/* A DSN recipient block that named nobody (no Final-Recipient, or an
	 * empty one): its fields, for the recipient found elsewhere. */
	int  anon;
	struct rw anon_rw;
};

static const char *pmta_reason(const char *);

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

/*
 * GMime keeps global tables (charsets, type registry) that it builds once
 * and frees only at g_mime_shutdown(); herald never calls that, as another
 * thread may be parsing.  Valgrind counts them as "still reachable".
 */
static void
gmime_start(void)
{
	g_mime_init();
}

/* ---------------------------------------------------------------- text */

static int
ci_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Case-insensitive strstr for ASCII needles, bounded by `n` bytes. */
static const char *
ci_find(const char *h, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;
	int c0;

	if (k == 0)
		return h;
	if (k > n)
		return NULL;
	c0 = tolower((unsigned char)needle[0]);
	for (i = 0; i + k <= n; i++) {
		if (tolower((unsigned char)h[i]) != c0)
			continue;
		if (strncasecmp(h + i, needle, k) == 0)
			return h + i;
	}
	return NULL;
}

/* Copy `s` (n bytes) into a new string that is valid UTF-8 on one line:
 * control characters become spaces, runs of spaces one space, invalid
 * bytes '?', leading and trailing space dropped. */
static char *
clean_line(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o;
	size_t i = 0;
	int sp = 0;

	if (out == NULL)
		return NULL;
	o = out;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k;

		if (c < 0x20 || c == 0x7f || c == ' ') {
			sp = o != out;
			i++;
			continue;
		}
		if (sp)
			*o++ = ' ';
		sp = 0;
		if (c < 0x80) {
			*o++ = (char)c;
			i++;
			continue;
		}
		k = utf8_seq((const unsigned char *)s + i, n - i, NULL);
		if (k == 0) {
			*o++ = '?';
			i++;
			continue;
		}
		memcpy(o, s + i, k);
		o += k;
		i += k;
	}
	*o = '\0';
	return out;
}

static char *
dup_clean(const char *s)
{
	return clean_line(s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* ------------------------------------------------------------ addresses */

static int
local_char(int c)
{
	return isalnum(c) || (c != 0 && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL) || c >= 0x80;
}

static int
domain_char(int c)
{
	return isalnum(c) || c == '.' || c == '-' || c == '_' || c >= 0x80;
}

/*
 * Find the first mail address in s[0..n).  On success store its offset and
 * length and return 1.  The local part is bounded at 128 bytes looking
 * left, so a long run of text is scanned a bounded number of times.
 */
static int
find_addr(const char *s, size_t n, size_t *at, size_t *alen)
{
	size_t i = 0;

	while (i < n) {
		const char *p = memchr(s + i, '@', n - i);
		size_t a, l, d;

		if (p == NULL)
			return 0;
		a = (size_t)(p - s);
		l = a;
		while (l > 0 && a - l < 128 && local_char((unsigned char)s[l - 1]))
			l--;
		/* A local part does not start with a dot; a quote or a
		 * slash before it is the text's ("user 'a@b'", "/a@b"). */
		while (l < a && (s[l] == '.' || s[l] == '\'' || s[l] == '`' || s[l] == '/'))
			l++;
		d = a + 1;
		while (d < n && d - a < 256 && domain_char((unsigned char)s[d]))
			d++;
		while (d > a + 1 && (s[d - 1] == '.' || s[d - 1] == '-'))
			d--;
		/* an internationalised domain (RFC 6533 utf-8 address type) may
		 * start with a UTF-8 byte */
		if (l < a && d > a + 1 &&
		    (isalnum((unsigned char)s[a + 1]) || (unsigned char)s[a + 1] >= 0x80)) {
			*at = l;
			*alen = d - l;
			return 1;
		}
		i = a + 1;
	}
	return 0;
}

/* Normalise an address into out: no <>, domain in lower case.  Returns 0,
 * or -1 when it does not hold an address. */
static int
norm_addr(const char *s, size_t n, char *out, size_t size)
{
	size_t at, len, i;
	char *dom;

	if (!find_addr(s, n, &at, &len) || len + 1 > size)
		return -1;
	memcpy(out, s + at, len);
	out[len] = '\0';
	dom = strchr(out, '@');
	for (i = 0; dom[i] != '\0'; i++)
		dom[i] = (char)tolower((unsigned char)dom[i]);
	return 0;
}

/* ------------------------------------------------------------ recipients */

static struct rw *
rcpt_find(struct pctx *c, const char *addr)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcasecmp(c->r[i].addr, addr) == 0)
			return &c->r[i];
	return NULL;
}

static struct rw *
rcpt_add(struct pctx *c, const char *addr)
{
	struct rw *r;

	if (c->n >= BOUNCE_MAX_RCPTS)
		return NULL;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct rw *nr = realloc(c->r, ncap * sizeof(*nr));

		if (nr == NULL) {
			c->oom = 1;
			return NULL;
		}
		c->r = nr;
		c->cap = ncap;
	}
	r = &c->r[c->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->addr, sizeof(r->addr), "%s", addr);
	buf_init(&r->diag, BOUNCE_DIAG_MAX);
	buf_init(&r->ctx, BOUNCE_DIAG_MAX);
	return r;
}

static struct rw *
rcpt_get(struct pctx *c, const char *addr)
{
	struct rw *r = rcpt_find(c, addr);

	return r != NULL ? r : rcpt_add(c, addr);
}

static void
rcpt_clear(struct pctx *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		buf_free(&c->r[i].diag);
		buf_free(&c->r[i].ctx);
	}
	c->n = 0;
}

/* Append text to a capped buffer, a space between pieces; a full buffer
 * simply stops growing. */
static void
add_piece(struct buf *b, const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return;
	if (b->len > 0 && buf_addc(b, ' ') < 0)
		return;
	if (buf_add(b, s, n) < 0 && b->max > b->len)
		(void)buf_add(b, s, b->max - b->len);
}

/* ------------------------------------------------------ header fields */

/*
 * Call fn(name, value, arg) for each field of the header block at the
 * start of s[0..n) (RFC 5322 §2.2: continuation lines unfolded into one
 * space).  Stops at the first empty line, or at a line that is not a field
 * when `strict`; otherwise such lines are skipped.  `end`, when not NULL,
 * receives the offset just past the block.
 */
typedef void (*field_fn)(const char *name, const char *value, void *arg);

static int
for_fields(const char *s, size_t n, int strict, field_fn fn, void *arg, size_t *end)
{
	struct buf name = BUF_INIT(128), val = BUF_INIT(BOUNCE_DIAG_MAX);
	size_t i = 0;
	int have = 0, nfields = 0;

	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i;
		const char *l = s + i;
		size_t next = i + ll + (nl != NULL);

		if (ll > 0 && (l[0] == ' ' || l[0] == '\t')) {
			if (have)
				add_piece(&val, l, ll);
			i = next;
			continue;
		}
		if (have) {
			fn(buf_str(&name), buf_str(&val), arg);
			nfields++;
			have = 0;
		}
		if (ll == 0 || (ll == 1 && l[0] == '\r')) {
			i = next;
			break;
		}
		{
			size_t k = 0;

			while (k < ll && k < 80 && l[k] > ' ' && l[k] < 0x7f && l[k] != ':')
				k++;
			if (k > 0 && k < ll && l[k] == ':') {
				buf_reset(&name);
				buf_reset(&val);
				if (buf_add(&name, l, k) == 0) {
					add_piece(&val, l + k + 1, ll - k - 1);
					have = 1;
				}
			} else if (strict) {
				break;
			}
		}
		i = next;
	}
	if (have) {
		fn(buf_str(&name), buf_str(&val), arg);
		nfields++;
	}
	if (end != NULL)
		*end = i;
	buf_free(&name);
	buf_free(&val);
	return nfields;
}

/* The value after "type;" in DSN fields ("rfc822; a@b", "smtp; 550 ..."). */
static const char *
after_type(const char *v)
{
	const char *semi = strchr(v, ';');
	const char *p;

	if (semi == NULL || semi - v > 20)
		return v;
	for (p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != ' ')
			return v;
	p = semi + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* --------------------------------------------------------------- MIME */

/* Decoded content of a leaf part, converted to UTF-8 when it names a
 * charset GMime knows; raw bytes when the conversion fails. */
static void
part_text(GMimePart *part, struct buf *out, size_t cap)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem;
	GByteArray *ba;
	const char *cs;
	char *conv = NULL;
	const char *p;
	size_t n;

	if (w == NULL)
		return;
	mem = g_mime_stream_mem_new();
	if (mem == NULL)
		return;
	if (g_mime_data_wrapper_write_to_stream(w, mem) < 0) {
		g_object_unref(mem);
		return;
	}
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	p = (const char *)ba->data;
	n = ba->len;
	if (n > cap)
		n = cap;
	cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
	if ((cs == NULL || g_ascii_strcasecmp(cs, "us-ascii") == 0) &&
	    n > 3 && memchr(p, 0x1b, n) != NULL)
		cs = "iso-2022-jp"; /* seven-bit Japanese sent without a label */
	if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") != 0 &&
	    g_ascii_strcasecmp(cs, "us-ascii") != 0 && n > 0) {
		iconv_t cd = g_mime_iconv_open("UTF-8", g_mime_charset_iconv_name(cs));

		if (cd != (iconv_t)-1) {
			conv = g_mime_iconv_strndup(cd, p, n);
			g_mime_iconv_close(cd);
		}
	}
	if (conv != NULL) {
		p = conv;
		n = strlen(conv);
	}
	if (out->len + n + 1 > out->max)
		n = out->max > out->len + 1 ? out->max - out->len - 1 : 0;
	if (n > 0) {
		(void)buf_add(out, p, n);
		(void)buf_addc(out, '\n');
	}
	g_free(conv);
	g_object_unref(mem);
}

/* The plain text of the returned message: a filter that wraps a bounce
 * (Trend Micro InterScan) returns the MTA's transcript in there. */
static void
walk_orig(struct pctx *c, GMimeObject *obj, int depth)
{
	GMimeContentType *ct;

	if (obj == NULL || depth > BOUNCE_MAX_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);

		for (i = 0; i < n; i++)
			walk_orig(c, g_mime_multipart_get_part(mp, i), depth + 1);
		return;
	}
	if (!GMIME_IS_PART(obj))
		return;
	ct = g_mime_object_get_content_type(obj);
	if (ct != NULL && g_mime_content_type_is_type(ct, "text", "plain"))
		part_text(GMIME_PART(obj), &c->origtext, BOUNCE_TEXT_MAX);
}

static void
walk(struct pctx *c, GMimeObject *obj, int depth)
{
	GMimeContentType *ct;
	const char *type, *sub;

	if (obj == NULL || depth > BOUNCE_MAX_DEPTH)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);

		for (i = 0; i < n; i++)
			walk(c, g_mime_multipart_get_part(mp, i), depth + 1);
		if (n == 0) {
			/* A multipart whose boundary never came: its text
			 * is all in the prologue. */
			const char *pro = g_mime_multipart_get_prologue(mp);

			if (pro != NULL)
				add_piece(&c->text, pro, strlen(pro));
		}
		return;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (c->orig == NULL && m != NULL) {
			c->orig = m;
			walk_orig(c, g_mime_message_get_mime_part(m), depth + 1);
		}
		return;
	}
	if (!GMIME_IS_PART(obj))
		return;
	ct = g_mime_object_get_content_type(obj);
	type = ct != NULL ? g_mime_content_type_get_media_type(ct) : "text";
	sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : "plain";
	if (type == NULL || sub == NULL)
		return;
	if (g_ascii_strcasecmp(type, "message") == 0) {
		if (g_ascii_strcasecmp(sub, "delivery-status") == 0 ||
		    g_ascii_strcasecmp(sub, "global-delivery-status") == 0) {
			part_text(GMIME_PART(obj), &c->dsn, BOUNCE_PART_MAX);
			(void)buf_adds(&c->dsn, "\n");
		} else if (g_ascii_strcasecmp(sub, "feedback-report") == 0) {
			part_text(GMIME_PART(obj), &c->arf, BOUNCE_PART_MAX);
		} else if (c->orighdr.len == 0) {
			/* message/rfc822 GMime left as a leaf,
			 * message/global-headers, ... */
			part_text(GMIME_PART(obj), &c->orighdr, BOUNCE_PART_MAX);
		}
		return;
	}
	if (g_ascii_strcasecmp(type, "text") == 0) {
		if (g_ascii_strcasecmp(sub, "rfc822-headers") == 0) {
			if (c->orighdr.len == 0)
				part_text(GMIME_PART(obj), &c->orighdr, BOUNCE_PART_MAX);
		} else if (g_ascii_strcasecmp(sub, "html") == 0) {
			part_text(GMIME_PART(obj), &c->html, BOUNCE_TEXT_MAX);
		} else if (g_ascii_strcasecmp(sub, "plain") == 0 ||
		    g_ascii_strcasecmp(sub, "enriched") == 0) {
			part_text(GMIME_PART(obj), &c->text, BOUNCE_TEXT_MAX);
		}
	}
}

/* Text of HTML: tags dropped (<br>, </p>, </div>, </tr> end a line),
 * the common entities decoded. */
static void
html_to_text(const struct buf *in, struct buf *out)
{
	const char *s = buf_str(in);
	size_t i = 0, n = in->len;

	while (i < n) {
		if (s[i] == '<') {
			const char *gt = memchr(s + i, '>', n - i);
			size_t tl = gt != NULL ? (size_t)(gt - (s + i)) : n - i;

			if (ci_prefix(s + i, "<br") || ci_prefix(s + i, "</p") ||
			    ci_prefix(s + i, "</div") || ci_prefix(s + i, "</tr") ||
			    ci_prefix(s + i, "<p") || ci_prefix(s + i, "</li") ||
			    ci_prefix(s + i, "</h"))
				(void)buf_addc(out, '\n');
			else if (ci_prefix(s + i, "<style") || ci_prefix(s + i, "<script")) {
				const char *e = ci_find(s + i, n - i,
				    ci_prefix(s + i, "<style") ? "</style" : "</script");

				if (e != NULL)
					tl = (size_t)(e - (s + i));
			}
			i += tl + 1;
			continue;
		}
		if (s[i] == '&') {
			static const struct { const char *e; char c; } ent[] = {
				{ "&nbsp;", ' ' }, { "&lt;", '<' }, { "&gt;", '>' },
				{ "&amp;", '&' }, { "&quot;", '"' }, { "&#39;", '\'' },
			};
			size_t k;

			for (k = 0; k < sizeof(ent) / sizeof(ent[0]); k++) {
				if (ci_prefix(s + i, ent[k].e)) {
					(void)buf_addc(out, ent[k].c);
					i += strlen(ent[k].e);
					break;
				}
			}
			if (k < sizeof(ent) / sizeof(ent[0]))
				continue;
		}
		(void)buf_addc(out, s[i]);
		i++;
	}
}

/* ------------------------------------------------------- status codes */

/* First RFC 3463 code in s ("5.1.1"), not part of a longer number such as
 * an IP address. */
static int
find_status(const char *s, char *out, size_t size)
{
	size_t i;

	out[0] = '\0';
	for (i = 0; s[i] != '\0'; i++) {
		size_t j, d1 = 0, d2 = 0;

		if ((s[i] != '2' && s[i] != '4' && s[i] != '5') || s[i + 1] != '.')
			continue;
		if (i > 0 && (isdigit((unsigned char)s[i - 1]) || s[i - 1] == '.'))
			continue;
		j = i + 2;
		while (isdigit((unsigned char)s[j]) && d1 < 4) {
			j++;
			d1++;
		}
		if (d1 == 0 || d1 > 3 || s[j] != '.')
			continue;
		j++;
		while (isdigit((unsigned char)s[j]) && d2 < 4) {
			j++;
			d2++;
		}
		if (d2 == 0 || d2 > 3 || s[j] == '.' || isdigit((unsigned char)s[j]))
			continue;
		if (j - i >= size)
			continue;
		memcpy(out, s + i, j - i);
		out[j - i] = '\0';
		return 1;
	}
	return 0;
}

/* First SMTP reply code in s: three digits 2xx-5xx standing alone and
 * followed by a space, '-', ':' or the end. */
static int
find_reply(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '2' || s[i] > '5' || !isdigit((unsigned char)s[i + 1]) ||
		    !isdigit((unsigned char)s[i + 2]))
			continue;
		if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '.' ||
		    s[i - 1] == '-' || s[i - 1] == '#' || s[i - 1] == ':' || s[i - 1] == '/'))
			continue;
		if (s[i + 3] != '\0' && s[i + 3] != ' ' && s[i + 3] != '-' &&
		    s[i + 3] != ':' && s[i + 3] != ']' && s[i + 3] != ')')
			continue;
		return (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	}
	return 0;
}

/* The SMTP command a reply answered, from the words around it. */
static const char *
find_cmd(const char *s, size_t n)
{
	static const struct { const char *p; const char *cmd; } tab[] = {
		{ "in reply to rcpt to", "RCPT" },
		{ "in reply to mail from", "MAIL" },
		{ "in reply to end of data", "DATA" },
		{ "in reply to data", "DATA" },
		{ "in reply to helo", "EHLO" },
		{ "in reply to ehlo", "EHLO" },
		{ "after rcpt to", "RCPT" },
		{ "after mail from", "MAIL" },
		{ "after end of data", "DATA" },
		{ "after data", "DATA" },
		{ "after initial connection", "CONN" },
		{ "after helo", "EHLO" },
		{ "after ehlo", "EHLO" },
		{ "for text command", "DATA" },
		{ "did not like our rcpt", "RCPT" },
		{ "did not like our mail", "MAIL" },
		{ "did not like our data", "DATA" },
		{ "does not like recipient", "RCPT" },
		{ "sender was rejected", "MAIL" },
		{ "failed after i sent the message", "DATA" },
		{ ">>> rcpt", "RCPT" },
		{ ">>> mail", "MAIL" },
		{ ">>> data", "DATA" },
		{ ">>> ehlo", "EHLO" },
		{ ">>> helo", "EHLO" },
		{ "<<< rcpt", "RCPT" },
		{ "[rcpt_to]", "RCPT" },
		{ "[mail_from]", "MAIL" },
		{ "[data]", "DATA" },
		{ "rcpt to:", "RCPT" },
		{ "mail from:", "MAIL" },
	};
	const char *best = NULL, *cmd = NULL;
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		const char *h = ci_find(s, n, tab[i].p);

		if (h != NULL && (best == NULL || h < best)) {
			best = h;
			cmd = tab[i].cmd;
		}
	}
	return cmd;
}

/* ---------------------------------------------------------- RFC 3464 */

struct dsnst {
	struct pctx *c;
	struct rw   *cur;
	char reporting[256];
	int  have_final, have_orig;
	char orig_addr[BOUNCE_ADDR_MAX];
	/* Fields seen before the recipient address in the block. */
	char pend_action[16], pend_status[16];
	struct buf pend_diag;
	int  pend_smtp_diag;
	char pend_remote[256];
};

static void
dsn_flush_pending(struct dsnst *d)
{
	struct rw *r = d->cur;

	if (r == NULL)
		return;
	if (r->action[0] == '\0' && d->pend_action[0] != '\0')
		snprintf(r->action, sizeof(r->action), "%s", d->pend_action);
	if (r->status[0] == '\0' && d->pend_status[0] != '\0')
		snprintf(r->status, sizeof(r->status), "%s", d->pend_status);
	if (r->diag.len == 0 && d->pend_diag.len > 0) {
		add_piece(&r->diag, buf_str(&d->pend_diag), d->pend_diag.len);
		r->smtp_diag |= d->pend_smtp_diag;
	}
	d->pend_smtp_diag = 0;
	if (r->remote_mta[0] == '\0' && d->pend_remote[0] != '\0')
		snprintf(r->remote_mta, sizeof(r->remote_mta), "%s", d->pend_remote);
	d->pend_action[0] = d->pend_status[0] = d->pend_remote[0] = '\0';
	buf_reset(&d->pend_diag);
}

static void
dsn_field(const char *name, const char *value, void *arg)
{
	struct dsnst *d = arg;
	char addr[BOUNCE_ADDR_MAX];
	const char *v = after_type(value);

	if (strcasecmp(name, "Reporting-MTA") == 0) {
		snprintf(d->reporting, sizeof(d->reporting), "%s", v);
	} else if (strcasecmp(name, "Final-Recipient") == 0) {
		if (norm_addr(v, strlen(v), addr, sizeof(addr)) < 0)
			return;
		if (d->have_final && d->cur != NULL && strcasecmp(d->cur->addr, addr) != 0)
			d->cur = NULL; /* a new recipient without a blank line */
		if (d->cur == NULL) {
			struct rw *r = rcpt_find(d->c, addr);

			d->cur = r != NULL ? r : rcpt_add(d->c, addr);
		} else if (!d->have_final) {
			/* Original-Recipient came first: Final names it. */
			snprintf(d->cur->addr, sizeof(d->cur->addr), "%s", addr);
		}
		d->have_final = 1;
		dsn_flush_pending(d);
	} else if (strcasecmp(name, "Original-Recipient") == 0) {
		if (norm_addr(v, strlen(v), addr, sizeof(addr)) < 0)
			return;
		if (d->have_orig && d->cur != NULL)
			d->cur = NULL;
		d->have_orig = 1;
		if (d->cur == NULL) {
			struct rw *r = rcpt_find(d->c, addr);

			d->cur = r != NULL ? r : rcpt_add(d->c, addr);
			dsn_flush_pending(d);
		}
	} else if (strcasecmp(name, "Action") == 0) {
		char a[16];
		size_t i;

		for (i = 0; i + 1 < sizeof(a) && isalpha((unsigned char)v[i]); i++)
			a[i] = (char)tolower((unsigned char)v[i]);
		a[i] = '\0';
		if (d->cur != NULL && d->cur->action[0] == '\0')
			snprintf(d->cur->action, sizeof(d->cur->action), "%s", a);
		else if (d->cur == NULL)
			snprintf(d->pend_action, sizeof(d->pend_action), "%s", a);
	} else if (strcasecmp(name, "Status") == 0) {
		char st[16];

		if (!find_status(v, st, sizeof(st)))
			return;
		if (d->cur != NULL && d->cur->status[0] == '\0')
			snprintf(d->cur->status, sizeof(d->cur->status), "%s", st);
		else if (d->cur == NULL)
			snprintf(d->pend_status, sizeof(d->pend_status), "%s", st);
	} else if (strcasecmp(name, "Diagnostic-Code") == 0) {
		/* RFC 3464 §2.3.6: type "smtp" is a remote server's reply. */
		int smtp = v != value && strncasecmp(value, "smtp", 4) == 0;

		if (d->cur != NULL) {
			add_piece(&d->cur->diag, v, strlen(v));
			d->cur->smtp_diag |= smtp;
		} else {
			add_piece(&d->pend_diag, v, strlen(v));
			d->pend_smtp_diag |= smtp;
		}
	} else if (strcasecmp(name, "X-PowerMTA-BounceCategory") == 0) {
		if (d->cur != NULL)
			d->cur->hint = pmta_reason(v);
	} else if (strcasecmp(name, "Remote-MTA") == 0) {
		if (d->cur != NULL && d->cur->remote_mta[0] == '\0')
			snprintf(d->cur->remote_mta, sizeof(d->cur->remote_mta), "%s", v);
		else if (d->cur == NULL)
			snprintf(d->pend_remote, sizeof(d->pend_remote), "%s", v);
	}
}

/* Parse DSN fields in s[0..n): blocks separated by empty lines. */
static void
parse_dsn(struct pctx *c, const char *s, size_t n)
{
	struct dsnst d;
	size_t i = 0, end;

	memset(&d, 0, sizeof(d));
	d.c = c;
	buf_init(&d.pend_diag, BOUNCE_DIAG_MAX);
	while (i < n && c->n < BOUNCE_MAX_RCPTS) {
		/* Skip empty lines between blocks. */
		if (s[i] == '\n') {
			i++;
			continue;
		}
		d.cur = NULL;
		d.have_final = d.have_orig = 0;
		d.pend_action[0] = d.pend_status[0] = d.pend_remote[0] = '\0';
		buf_reset(&d.pend_diag);
		if (for_fields(s + i, n - i, 0, dsn_field, &d, &end) == 0 && end == 0)
			break;
		i += end > 0 ? end : 1;
		if (d.cur == NULL && !c->anon && (d.pend_status[0] != '\0' ||
		    d.pend_action[0] != '\0')) {
			struct rw *a = &c->anon_rw;

			c->anon = 1;
			snprintf(a->status, sizeof(a->status), "%s", d.pend_status);
			snprintf(a->action, sizeof(a->action), "%s", d.pend_action);
			snprintf(a->remote_mta, sizeof(a->remote_mta), "%s", d.pend_remote);
			a->smtp_diag = d.pend_smtp_diag;
			buf_init(&a->diag, BOUNCE_DIAG_MAX);
			if (d.pend_diag.len > 0)
				add_piece(&a->diag, buf_str(&d.pend_diag), d.pend_diag.len);
		}
	}
	buf_free(&d.pend_diag);
}

/* ---------------------------------------------------------- RFC 5965 */

struct arfst {
	struct pctx *c;
	char type[64];
	int nrcpt;
};

static void
arf_field(const char *name, const char *value, void *arg)
{
	struct arfst *a = arg;
	char addr[BOUNCE_ADDR_MAX];
	size_t i;

	if (strcasecmp(name, "Feedback-Type") == 0) {
		for (i = 0; i + 1 < sizeof(a->type) && value[i] != '\0' &&
		    (isalnum((unsigned char)value[i]) || value[i] == '-' || value[i] == '_'); i++)
			a->type[i] = (char)tolower((unsigned char)value[i]);
		a->type[i] = '\0';
	} else if (strcasecmp(name, "Original-Rcpt-To") == 0 ||
	    strcasecmp(name, "Removal-Recipient") == 0) {
		if (norm_addr(value, strlen(value), addr, sizeof(addr)) == 0 &&
		    rcpt_get(a->c, addr) != NULL)
			a->nrcpt++;
	}
}

/* ----------------------------------------------- original message */

struct origst {
	char msgid[512];
	char to[BOUNCE_ADDR_MAX];
	char from[BOUNCE_ADDR_MAX];
	char to_all[4096];
};

static void
orig_field(const char *name, const char *value, void *arg)
{
	struct origst *o = arg;
	char addr[BOUNCE_ADDR_MAX];

	if (strcasecmp(name, "Message-ID") == 0 && o->msgid[0] == '\0') {
		const char *lt = strchr(value, '<'), *gt;

		if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
			snprintf(o->msgid, sizeof(o->msgid), "%.*s", (int)(gt - lt - 1), lt + 1);
		else
			snprintf(o->msgid, sizeof(o->msgid), "%s", value);
	} else if (strcasecmp(name, "To") == 0 && o->to[0] == '\0') {
		if (norm_addr(value, strlen(value), addr, sizeof(addr)) == 0)
			snprintf(o->to, sizeof(o->to), "%s", addr);
		snprintf(o->to_all, sizeof(o->to_all), "%s", value);
	} else if (strcasecmp(name, "From") == 0 && o->from[0] == '\0') {
		if (norm_addr(value, strlen(value), addr, sizeof(addr)) == 0)
			snprintf(o->from, sizeof(o->from), "%s", addr);
	}
}

static void
orig_from_gmime(GMimeMessage *m, struct origst *o)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	int i, n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;

	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *val = g_mime_header_get_value(h);

		if (name != NULL && val != NULL)
			orig_field(name, val, o);
	}
}

/* ------------------------------------------------------- text shapes */

/* Where the returned message begins inside the text of the report, or n. */
static size_t
orig_marker(const char *s, size_t n)
{
	static const char *const mark[] = {
		"below this line is a copy of the message",
		"this is a copy of the message",
		"the header of the original message",
		"message headers follow",
		"original message headers",
		"the following is a copy",
		"original message follows",
		"enclosed is a copy of the message",
		"below is a copy of the original message",
		"returned message",
		"unsent message follows",
		"original message",
		"headers of the original message",
		"copy of the original message",
		"message header follows",
		"rfc822 headers",
	};
	size_t i = 0;

	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i;
		const char *l = s + i;
		size_t k = 0, m;
		int dashed = 0;

		while (k < ll && (l[k] == ' ' || l[k] == '\t'))
			k++;
		while (k < ll && l[k] != '\0' && strchr("-=*_[", l[k]) != NULL) {
			k++;
			dashed = 1;
		}
		while (k < ll && l[k] == ' ')
			k++;
		if (ll - k < 120) {
			for (m = 0; m < sizeof(mark) / sizeof(mark[0]); m++) {
				size_t ml = strlen(mark[m]);

				if (ll - k < ml)
					continue;
				/* "original message" and "returned message"
				 * are separators only when drawn as one. */
				if (m >= 9 && !dashed)
					continue;
				if (strncasecmp(l + k, mark[m], ml) == 0)
					return i;
			}
		}
		i += ll + (nl != NULL);
	}
	return n;
}

/* A line that quotes a header of the returned message ("To: x", "From:"),
 * never a recipient line. */
static int
header_like(const char *l, size_t n)
{
	static const char *const names[] = {
		"to", "from", "cc", "bcc", "subject", "date", "sent", "sender",
		"reply-to", "return-path", "received", "message-id", "original sender",
		"original-sender", "envelope-from", "x-", "in-reply-to", "references",
		"delivered-to", "rcpt to", "mail from", "for", "by", "dkim-signature",
		"content-", "mime-version",
	};
	size_t i;

	/* Transcript lines: their addresses are read by scan_transcript(). */
	if (ci_prefix(l, "sent <<<") || ci_prefix(l, "received >>>"))
		return 1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t k = strlen(names[i]), j;

		if (n <= k || strncasecmp(l, names[i], k) != 0)
			continue;
		j = k;
		/* "X-Anything:", "Content-Type:" */
		if (names[i][k - 1] == '-')
			while (j < n && (isalnum((unsigned char)l[j]) || l[j] == '-'))
				j++;
		while (j < n && (l[j] == ' ' || l[j] == '\t'))
			j++;
		if (j < n && l[j] == ':')
			return 1;
	}
	return 0;
}

/* Words that put an address in the recipient's place when they come just
 * before it on a line. */
static const char *const lead_in[] = {
	"could not be delivered to:", "could not be delivered to",
	"was not delivered to:", "not be delivered to",
	"unable to deliver message to", "unable to deliver to",
	"delivery to the following recipient", "error delivering your mail to",
	"undeliverable to", "delivery failed for", "delivery to",
	"failed to deliver to", "failed recipient:", "recipient:",
	"recipients:", "recipient address:", "address:", "your message to",
	"message to", "mail to", "deliver to", "delivered to",
	"original-recipient:", "final-recipient:", "recipient <",
	"destinataire", "for <", "to <",
};

/*
 * If the line l[0..n) names a recipient in a recipient's place, store the
 * address and the offset of the text after it.  Recipient places: the
 * address first on the line (after spaces, '<', '*', '-', '"'), or right
 * after one of the lead-in words.
 */
static int
rcpt_line(const char *l, size_t n, char *addr, size_t size, size_t *rest, int *oneline)
{
	size_t k = 0, at, alen, i;

	*oneline = 0;
	while (k < n && (l[k] == ' ' || l[k] == '\t'))
		k++;
	if (k < n && (l[k] == '*' || l[k] == '-' || l[k] == '>') && k + 1 < n &&
	    (l[k + 1] == ' ' || l[k + 1] == '\t')) {
		k++;
		while (k < n && (l[k] == ' ' || l[k] == '\t'))
			k++;
	}
	if (k >= n || header_like(l + k, n - k))
		return 0;
	/* Sendmail's "550 <a@b>... User unknown", "554 5.0.0 <a@b>...". */
	if (n - k > 5 && l[k] >= '2' && l[k] <= '5' && isdigit((unsigned char)l[k + 1]) &&
	    isdigit((unsigned char)l[k + 2]) && (l[k + 3] == ' ' || l[k + 3] == '-')) {
		size_t p = k + 4;
		char st[16];

		if (find_status(l + p, st, sizeof(st)) && strncmp(l + p, st, strlen(st)) == 0)
			p += strlen(st);
		while (p < n && l[p] == ' ')
			p++;
		/* Only "<a@b>... text" and "<a@b>: text", a reply about
		 * that address; one that merely quotes an address
		 * ("550 5.2.0 <a@b> From: ...") is a diagnostic. */
		if (p < n && l[p] == '<' && find_addr(l + p, n - p, &at, &alen) && at == 1 &&
		    p + 1 + alen + 2 <= n && (strncmp(l + p + 1 + alen, ">...", 4) == 0 ||
		    strncmp(l + p + 1 + alen, ">:", 2) == 0) &&
		    norm_addr(l + p + 1, alen, addr, size) == 0) {
			*rest = p + 1 + alen;
			*oneline = 1;
			return 1;
		}
		return 0;
	}
	{
		size_t p = k;

		while (p < n && (l[p] == '<' || l[p] == '"' || l[p] == '\''))
			p++;
		if (p < n && local_char((unsigned char)l[p]) &&
		    find_addr(l + p, n - p, &at, &alen) && at == 0 &&
		    norm_addr(l + p, alen, addr, size) == 0) {
			*rest = p + alen;
			return 1;
		}
	}
	for (i = 0; i < sizeof(lead_in) / sizeof(lead_in[0]); i++) {
		const char *h = ci_find(l + k, n - k, lead_in[i]);
		size_t off, p;

		if (h == NULL)
			continue;
		off = (size_t)(h - l) + strlen(lead_in[i]);
		p = off;
		while (p < n && (l[p] == ' ' || l[p] == '\t' || l[p] == '<' ||
		    l[p] == '"' || l[p] == ':'))
			p++;
		if (p < n && find_addr(l + p, n - p, &at, &alen) && at == 0 &&
		    norm_addr(l + p, alen, addr, size) == 0) {
			*rest = p + alen;
			return 1;
		}
	}
	return 0;
}

/* A rule ("-----", "=====", "*****"), or a heading that starts with one
 * ("----- Transcript of session follows -----"): either ends a block. */
static int
rule_line(const char *l, size_t n)
{
	size_t i, marks = 0;

	for (i = 0; i < n; i++) {
		if (l[i] == '-' || l[i] == '=' || l[i] == '*' || l[i] == '_')
			marks++;
		else if (l[i] != ' ' && l[i] != '\t')
			return marks >= 5;
	}
	return marks >= 3;
}

/* Transcript lines (Sendmail ">>> RCPT To:<a>" / "<<< 550 ...", Trend
 * Micro "Sent <<<" / "Received >>>"): give each recipient named in a
 * command the reply that follows it, and the command.  A reply read
 * before any command was sent (after "... while talking to host:") was
 * the server's greeting: CONN.  `add`: recipients named in RCPT commands
 * are added when not known yet. */
static void
scan_transcript(struct pctx *c, const char *s, size_t n, int add)
{
	size_t i = 0;
	struct rw *cur = NULL;
	char cmd[8] = "";

	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i;
		const char *l = s + i;
		size_t k = 0, at, alen;
		char addr[BOUNCE_ADDR_MAX];

		i += ll + (nl != NULL);
		while (k < ll && (l[k] == ' ' || l[k] == '\t'))
			k++;
		if (ci_find(l + k, ll - k, "while talking to") != NULL) {
			snprintf(cmd, sizeof(cmd), "CONN");
			cur = NULL;
		} else if (ll - k > 4 && (strncmp(l + k, ">>>", 3) == 0 ||
		    ci_prefix(l + k, "sent <<<"))) {
			const char *v = l + k + (l[k] == '>' ? 3 : 8);
			size_t vl = ll - (size_t)(v - l);

			while (vl > 0 && *v == ' ') {
				v++;
				vl--;
			}
			cur = NULL;
			if (vl >= 4 && strncasecmp(v, "RCPT", 4) == 0)
				snprintf(cmd, sizeof(cmd), "RCPT");
			else if (vl >= 4 && strncasecmp(v, "MAIL", 4) == 0)
				snprintf(cmd, sizeof(cmd), "MAIL");
			else if (vl >= 4 && (strncasecmp(v, "DATA", 4) == 0 || v[0] == '.'))
				snprintf(cmd, sizeof(cmd), "DATA");
			else if (vl >= 4 && (strncasecmp(v, "EHLO", 4) == 0 ||
			    strncasecmp(v, "HELO", 4) == 0))
				snprintf(cmd, sizeof(cmd), "EHLO");
			else
				cmd[0] = '\0';
			if (strcmp(cmd, "RCPT") == 0 && find_addr(v, vl, &at, &alen) &&
			    norm_addr(v + at, alen, addr, sizeof(addr)) == 0)
				cur = add ? rcpt_get(c, addr) : rcpt_find(c, addr);
		} else if (ll - k > 4 && (strncmp(l + k, "<<<", 3) == 0 ||
		    ci_prefix(l + k, "received >>>"))) {
			const char *v = l + k + (l[k] == '<' ? 3 : 12);
			size_t vl = ll - (size_t)(v - l);
			struct rw *r = cur;

			if (r == NULL && find_addr(v, vl, &at, &alen) &&
			    norm_addr(v + at, alen, addr, sizeof(addr)) == 0)
				r = rcpt_find(c, addr);
			if (r == NULL && c->n == 1)
				r = &c->r[0];
			if (r != NULL) {
				if (r->cmd[0] == '\0' && cmd[0] != '\0')
					snprintf(r->cmd, sizeof(r->cmd), "%s", cmd);
				char reply[512];

				/* The same reply is often also the diagnostic
				 * already: do not say it twice. */
				while (vl > 0 && *v == ' ') {
					v++;
					vl--;
				}
				snprintf(reply, sizeof(reply), "%.*s", (int)(vl < 511 ? vl : 511), v);
				if (reply[0] != '\0' && strstr(buf_str(&r->diag), reply) == NULL)
					add_piece(&r->diag, v, vl);
			}
		}
	}
}

/* The text holds an SMTP reply code or an enhanced status code. */
static int
has_code(const struct buf *b)
{
	char st[16];

	return find_reply(buf_str(b)) != 0 || find_status(buf_str(b), st, sizeof(st));
}

/*
 * The generic scanner: every recipient line opens a block; the lines
 * below it are its diagnostic, up to the next recipient line, a rule, or
 * an empty line.  An empty line does not end a block that has no reply
 * code yet (at most two more paragraphs are read: Gmail and Exchange put
 * the server's reply a paragraph or two below the address) or that ends
 * with a colon ("because:", "Technical details of permanent failure:").
 * A line naming the current recipient again is part of its block.
 * `only_known`: do not add recipients, only fill the ones there are;
 * `into_ctx`: fill their context (the human part of a standard report)
 * rather than their diagnostic.
 */
static void
scan_blocks(struct pctx *c, const char *s, size_t n, int only_known, int into_ctx)
{
	size_t i = 0;
	struct rw *cur = NULL;
	struct buf *dst = NULL;
	int paras = 0, blank = 0;

	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i;
		const char *l = s + i;
		char addr[BOUNCE_ADDR_MAX];
		size_t rest;
		int oneline;

		i += ll + (nl != NULL);
		while (ll > 0 && (l[ll - 1] == '\r' || l[ll - 1] == ' ' || l[ll - 1] == '\t'))
			ll--;
		if (rcpt_line(l, ll, addr, sizeof(addr), &rest, &oneline)) {
			struct rw *r = rcpt_find(c, addr);

			if (r == NULL && !only_known)
				r = rcpt_add(c, addr);
			if (r == NULL) {
				cur = NULL;
				dst = NULL;
				continue;
			}
			if (r == cur) {
				/* Named again before any other recipient:
				 * still its block (Exchange repeats the
				 * address above the server's reply). */
				dst = into_ctx ? &r->ctx : &r->diag;
				add_piece(dst, l, ll);
				blank = 0;
				paras = 0;
				continue;
			}
			cur = r;
			dst = into_ctx ? &r->ctx : &r->diag;
			if (dst->len > 0)
				dst = NULL; /* seen before: keep the first block */
			paras = blank = 0;
			if (dst != NULL && rest < ll) {
				const char *t = l + rest;
				size_t tl = ll - rest, q;

				/* "addr<mailto:addr>" (Outlook), "addr>:" */
				while (tl > 0 && *t != '\0' && strchr(">: \"\t", *t) != NULL) {
					t++;
					tl--;
				}
				if (tl > 8 && strncasecmp(t, "<mailto:", 8) == 0) {
					const char *gt = memchr(t, '>', tl);

					if (gt != NULL) {
						tl -= (size_t)(gt + 1 - t);
						t = gt + 1;
					}
				}
				/* A full stop closing the sentence that named
				 * the address is no diagnostic. */
				for (q = 0; q < tl && !isalnum((unsigned char)t[q]); q++)
					;
				if (q < tl)
					add_piece(dst, t, tl);
			}
			/* Sendmail's "550 <a@b>... reason" is one line. */
			if (oneline)
				dst = NULL;
			continue;
		}
		if (dst == NULL)
			continue;
		if (ll == 0) {
			if (dst->len == 0 || blank)
				continue;
			if (dst->data[dst->len - 1] == ':' || (!has_code(dst) && paras < 2))
				blank = 1;
			else
				dst = NULL;
			continue;
		}
		if (rule_line(l, ll)) {
			if (dst->len > 0)
				dst = NULL;
			continue;
		}
		if (blank) {
			paras++;
			blank = 0;
		}
		add_piece(dst, l, ll);
	}
}

/* Last resort: a report that lists the envelope as "RCPT TO: a@b" among
 * the message details (Apache James). */
static void
rcpt_to_lines(struct pctx *c, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && c->n < BOUNCE_MAX_RCPTS) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i, k = 0, at, alen;
		const char *l = s + i;
		char addr[BOUNCE_ADDR_MAX];

		i += ll + (nl != NULL);
		while (k < ll && (l[k] == ' ' || l[k] == '\t'))
			k++;
		if (ll - k > 8 && strncasecmp(l + k, "rcpt to:", 8) == 0 &&
		    find_addr(l + k + 8, ll - k - 8, &at, &alen) &&
		    norm_addr(l + k + 8 + at, alen, addr, sizeof(addr)) == 0) {
			struct rw *r = rcpt_get(c, addr);

			/* The report's own text is the diagnostic. */
			if (r != NULL && r->diag.len == 0) {
				char *w = clean_line(s, n > 1024 ? 1024 : n);

				if (w != NULL)
					add_piece(&r->diag, w, strlen(w));
				free(w);
			}
		}
	}
}

/* If most lines are quoted ("> "), drop one level of quoting in place. */
static void
unquote(struct buf *b)
{
	char *s = b->data, *o;
	size_t i = 0, lines = 0, quoted = 0, n = b->len;

	if (s == NULL)
		return;
	while (i < n) {
		char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i;

		if (ll > 0) {
			lines++;
			quoted += s[i] == '>';
		}
		i += ll + (nl != NULL);
	}
	if (lines < 4 || quoted * 2 < lines)
		return;
	o = s;
	i = 0;
	while (i < n) {
		char *nl = memchr(s + i, '\n', n - i);
		size_t ll = nl != NULL ? (size_t)(nl - (s + i)) : n - i;
		size_t skip = 0;

		if (ll > 0 && s[i] == '>') {
			skip = 1;
			if (ll > 1 && s[i + 1] == ' ')
				skip = 2;
		}
		memmove(o, s + i + skip, ll - skip);
		o += ll - skip;
		if (nl != NULL)
			*o++ = '\n';
		i += ll + (nl != NULL);
	}
	b->len = (size_t)(o - s);
	s[b->len] = '\0';
}

static const char *
text_shape(const char *s, size_t n, const char *from)
{
	static const struct { const char *sig; const char *shape; } sigs[] = {
		{ "groups.google.com/support", "googlegroups" },
		{ "qmail-send program", "qmail" },
		{ "this is the postfix program", "postfix" },
		{ "created automatically by mail delivery software", "exim" },
		{ "transcript of session follows", "sendmail" },
		{ "transcript of the session follows", "sendmail" },
		{ "following addresses had permanent fatal errors", "sendmail" },
		{ "following addresses had delivery errors", "sendmail" },
		{ "delivery has failed to these recipients", "exchange" },
		{ "did not reach some or all of the intended recipients", "exchange" },
		{ "could not be delivered to one or more recipients", "exchange" },
		{ "delivery to the following recipient failed", "gmail" },
		{ "technical details of permanent failure", "gmail" },
		{ "technical details of temporary failure", "gmail" },
		{ "unable to deliver your message to the following address", "yahoo" },
		{ "courier mail server", "courier" },
		{ "domino directory", "domino" },
		{ "failure reasons", "notes" },
		{ "dragonfly mail agent", "dma" },
		{ "this is the mailer-daemon, please do not reply", "opensmtpd" },
		{ "interscan", "trendmicro" },
		{ "mail.ru", "mailru" },
	};
	size_t i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (ci_find(s, n, sigs[i].sig) != NULL)
			return sigs[i].shape;
	if (from != NULL && ci_find(from, strlen(from), "postmaster") != NULL)
		return "postmaster";
	return "text";
}

/* ---------------------------------------------------------- RFC 3834 */

/* From a mailer daemon or a postmaster: a report, not a person. */
static int
is_daemon(const char *from)
{
	static const char *const who[] = {
		"mailer-daemon", "postmaster", "mail delivery", "maildelivery",
		"mail.delivery", "mailerdaemon", "mail administrator",
	};
	size_t i;

	if (from == NULL)
		return 0;
	for (i = 0; i < sizeof(who) / sizeof(who[0]); i++)
		if (ci_find(from, strlen(from), who[i]) != NULL)
			return 1;
	return 0;
}

static int
is_autoreply(GMimeMessage *m, const char *from, const char *subject)
{
	static const char *const subj[] = {
		"auto reply", "auto-reply", "autoreply", "automatic reply",
		"auto response", "autoresponse", "auto-response", "out of office",
		"out of the office", "away until", "away from", "on vacation",
		"vacation", "abwesenheit", "absence", "automatische antwort",
		"r\xc3\xa9ponse automatique", "respuesta autom", "risposta automatica",
		"autosvar", "automatisch antwoord",
	};
	static const char *const bounce_subj[] = {
		"undeliver", "delivery", "failure", "returned", "failed", "not delivered",
		"undelivered", "non remis", "unzustellbar",
	};
	const char *as = g_mime_object_get_header(GMIME_OBJECT(m), "Auto-Submitted");
	const char *prec = g_mime_object_get_header(GMIME_OBJECT(m), "Precedence");
	int hdr = 0;
	size_t i;

	if (is_daemon(from))
		return 0;
	for (i = 0; subject != NULL && i < sizeof(bounce_subj) / sizeof(bounce_subj[0]); i++)
		if (ci_find(subject, strlen(subject), bounce_subj[i]) != NULL)
			return 0;
	if (as != NULL && ci_prefix(as, "auto-replied"))
		hdr = 1;
	if (g_mime_object_get_header(GMIME_OBJECT(m), "X-Autoreply") != NULL ||
	    g_mime_object_get_header(GMIME_OBJECT(m), "X-Autorespond") != NULL ||
	    g_mime_object_get_header(GMIME_OBJECT(m), "X-Autoresponder") != NULL)
		hdr = 1;
	if (prec != NULL && ci_prefix(prec, "auto_reply"))
		hdr = 1;
	if (hdr)
		return 1;
	for (i = 0; subject != NULL && i < sizeof(subj) / sizeof(subj[0]); i++)
		if (ci_find(subject, strlen(subject), subj[i]) != NULL)
			return 1;
	return 0;
}

/* --------------------------------------------------------- the report */

void
bounce_report_free(struct bounce_report *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n_recipients; i++) {
		struct bounce_recipient *b = &r->recipients[i];

		free(b->recipient);
		free(b->diagnostic);
		free(b->remote_mta);
		free(b->action);
		free(b->feedback_type);
	}
	free(r->recipients);
	free(r->message_id);
	free(r->from);
	free(r->subject);
	free(r->envelope_to);
	free(r->orig_message_id);
	free(r->orig_to);
	free(r->orig_from);
	free(r);
}

/* Line ends to LF; a leading mbox "From " line dropped; the input cut
 * before the BOUNCE_MAX_NEST+1-th multipart/message Content-Type or the
 * BOUNCE_MAX_DELIMS+1-th line starting "--" (invariant 2; what is lost is
 * the end of the returned message).  Returns a malloc'd copy. */
static char *
normalise(const char *data, size_t len, size_t *outlen)
{
	char *o = malloc(len + 1);
	size_t i = 0, j = 0, nest = 0, delims = 0;
	int bol = 1;

	if (o == NULL)
		return NULL;
	if (len > 5 && strncmp(data, "From ", 5) == 0) {
		const char *nl = memchr(data, '\n', len);
		const char *cr = memchr(data, '\r', len);

		if (nl == NULL || (cr != NULL && cr < nl))
			nl = cr;
		i = nl != NULL ? (size_t)(nl - data) + 1 : len;
		if (nl != NULL && *nl == '\r' && i < len && data[i] == '\n')
			i++;
	}
	for (; i < len; i++) {
		char ch = data[i];

		if (bol && ch == '-' && i + 1 < len && data[i + 1] == '-' &&
		    ++delims > BOUNCE_MAX_DELIMS)
			break;
		if (bol && (ch == 'C' || ch == 'c') && len - i > 13 &&
		    strncasecmp(data + i, "content-type:", 13) == 0) {
			/* Look at this field and its continuation lines. */
			size_t e = i + 13, lim = i + 1024 < len ? i + 1024 : len;
			int nesting = 0;

			while (e < lim) {
				if ((data[e] == '\n' || data[e] == '\r') &&
				    !(e + 1 < lim && (data[e + 1] == ' ' || data[e + 1] == '\t') &&
				      data[e] == '\n') &&
				    !(data[e] == '\r' && e + 2 < lim && data[e + 1] == '\n' &&
				      (data[e + 2] == ' ' || data[e + 2] == '\t')))
					break;
				e++;
			}
			if (ci_find(data + i, e - i, "multipart") != NULL ||
			    ci_find(data + i, e - i, "message/rfc822") != NULL ||
			    ci_find(data + i, e - i, "message/global") != NULL ||
			    ci_find(data + i, e - i, "message/news") != NULL ||
			    ci_find(data + i, e - i, "message/partial") != NULL)
				nesting = 1;
			if (nesting && ++nest > BOUNCE_MAX_NEST)
				break;
		}
		if (ch == '\r') {
			o[j++] = '\n';
			if (i + 1 < len && data[i + 1] == '\n')
				i++;
			bol = 1;
			continue;
		}
		o[j++] = ch;
		bol = ch == '\n';
	}
	o[j] = '\0';
	*outlen = j;
	return o;
}

/* Bytes that start with a header field (or are empty) are a message. */
static int
looks_like_message(const char *s, size_t n)
{
	size_t k = 0;

	while (k < n && k < 128 && s[k] > ' ' && s[k] < 0x7f && s[k] != ':')
		k++;
	return k > 0 && k < n && s[k] == ':';
}

int
bounce_digest(const char *data, size_t len, char out[BOUNCE_DIGEST_SIZE], struct herr *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	out[0] = '\0';
	if (EVP_Digest(data != NULL ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return herr_set(err, EX_OSERR, NULL, "cannot compute the message's SHA-256");
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

/* Envelope recipient: Delivered-To, X-Original-To, then To; the first
 * that carries a '+' extension (a VERP token) wins, else the first. */
static void
pick_envelope(GMimeMessage *m, char *out, size_t size)
{
	static const char *const names[] = { "Delivered-To", "X-Original-To", "To" };
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	int i, n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	size_t k;

	out[0] = '\0';
	for (k = 0; k < 3; k++) {
		for (i = 0; i < n; i++) {
			GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
			const char *name = g_mime_header_get_name(h);
			const char *val = g_mime_header_get_value(h);
			char addr[BOUNCE_ADDR_MAX];
			const char *at;

			if (name == NULL || val == NULL || strcasecmp(name, names[k]) != 0)
				continue;
			if (norm_addr(val, strlen(val), addr, sizeof(addr)) < 0)
				continue;
			at = strchr(addr, '@');
			if (memchr(addr, '+', (size_t)(at - addr)) != NULL) {
				snprintf(out, size, "%s", addr);
				return;
			}
			if (out[0] == '\0')
				snprintf(out, size, "%s", addr);
		}
	}
}

static int
has_failed_header(GMimeMessage *m)
{
	return g_mime_object_get_header(GMIME_OBJECT(m), "X-Failed-Recipients") != NULL;
}

/* X-Failed-Recipients (Exim): the list of the failed, in order. */
static void
failed_recipients(GMimeMessage *m, struct pctx *c)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	int i, n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;

	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *v = g_mime_header_get_value(h);
		size_t len, at, alen, p = 0;

		if (name == NULL || v == NULL || strcasecmp(name, "X-Failed-Recipients") != 0)
			continue;
		len = strlen(v);
		while (p < len && find_addr(v + p, len - p, &at, &alen)) {
			char addr[BOUNCE_ADDR_MAX];

			if (norm_addr(v + p + at, alen, addr, sizeof(addr)) == 0)
				(void)rcpt_get(c, addr);
			p += at + alen;
		}
	}
}

/* PowerMTA's X-PowerMTA-BounceCategory names the reason outright; a few
 * of its words are worth more than a guess from a generic code. */
static const char *
pmta_reason(const char *cat)
{
	static const struct { const char *cat; const char *reason; } tab[] = {
		{ "bad-mailbox", "userunknown" }, { "bad-domain", "hostunknown" },
		{ "quota-issues", "mailboxfull" }, { "inactive-mailbox", "suspend" },
		{ "spam-related", "spamdetected" }, { "virus-related", "virusdetected" },
		{ "message-expired", "expired" }, { "no-answer-from-host", "expired" },
		{ "relaying-issues", "norelaying" }, { "bad-connection", "networkerror" },
		{ "routing-errors", "networkerror" }, { "policy-related", "policyviolation" },
		{ "content-related", "contenterror" }, { "invalid-sender", "rejected" },
		{ "message-too-large", "mesgtoobig" }, { "protocol-errors", "systemerror" },
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcasecmp(cat, tab[i].cat) == 0)
			return tab[i].reason;
	return NULL;
}

/* Words of an SMTP client about a remote host (Postfix writes its
 * connection failures with an X-Postfix diagnostic and no Remote-MTA):
 * the failure was not the reporting MTA's own delivery. */
static int
remote_words(const char *d)
{
	static const char *const w[] = {
		"connect to ", "lost connection", "host ", "timed out", "conversation with",
		"connection refused", "no route to", "name service error", "dns",
	};
	size_t i, n = strlen(d);

	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (ci_find(d, n, w[i]) != NULL)
			return 1;
	return 0;
}

/* Append "; note" to a why line, cut to fit. */
static void
why_note(char *why, const char *note)
{
	size_t n = strlen(why);

	if (n + 3 < BOUNCE_WHY_SIZE)
		snprintf(why + n, BOUNCE_WHY_SIZE - n, "%s%s", n ? "; " : "", note);
}

static int
weak(const char *reason)
{
	return strcmp(reason, "onhold") == 0 || strcmp(reason, "undefined") == 0;
}

/* Fill status, reply code, reason and class of each recipient.  `whole`
 * is the human-readable text of the report (up to the returned
 * message): read when a recipient's own lines say nothing. */
static void
finish(struct pctx *c, const char *whole, size_t wlen, int per_rcpt)
{
	size_t i;

	/* A standard report speaks of each recipient in its own fields:
	 * the text around them is about all of them, so it is read only
	 * when there is one. */
	if (per_rcpt && c->n > 1)
		wlen = 0;

	for (i = 0; i < c->n; i++) {
		struct rw *r = &c->r[i];
		const char *d;
		char st[16], generic;
		const char *cmd, *reason;
		enum bounce_class cls;
		struct bounce_evidence ev;

		if (r->preset != NULL)
			continue;
		/* A diagnostic without words of its own (an address, a bare
		 * code): read the recipient's block instead. */
		if (r->diag.len < 4 && r->ctx.len > 0)
			add_piece(&r->diag, buf_str(&r->ctx), r->ctx.len);
		d = buf_str(&r->diag);
		/* The Status field unless it is generic (X.0.0) and the text
		 * has a finer code (RFC 3464 §2.3.4 allows either). */
		if (find_status(d, st, sizeof(st))) {
			if (r->status[0] == '\0' ||
			    (strcmp(r->status + 1, ".0.0") == 0 && st[0] == r->status[0]))
				snprintf(r->status, sizeof(r->status), "%s", st);
		}
		r->reply = find_reply(d);
		cmd = r->cmd[0] != '\0' ? r->cmd : find_cmd(d, r->diag.len);
		if (cmd == NULL)
			cmd = find_cmd(buf_str(&r->ctx), r->ctx.len);
		/* A standard report's recipient that no remote server answered
		 * (no Remote-MTA, no smtp-type diagnostic, no reply code, no
		 * command named): the reporting MTA failed it itself. */
		if (cmd == NULL && r->action[0] != '\0' && r->remote_mta[0] == '\0' &&
		    !r->smtp_diag && r->reply == 0 && !remote_words(d))
			cmd = "LOCAL";
		ev.action = r->action;
		ev.status = r->status;
		ev.reply_code = r->reply;
		ev.diagnostic = d;
		ev.phase = cmd;
		ev.returned = 1;
		cls = bounce_decide(&ev, &reason, r->why, sizeof(r->why));
		/* "User unknown" with no command known reads as a filter
		 * (said after DATA); but a reply that names the recipient
		 * itself, with no finer code than "failed", answered the
		 * RCPT command that named it. */
		generic = r->status[0] == '\0' || strcmp(r->status + 1, ".0.0") == 0;
		if (cmd == NULL && generic && strcmp(reason, "filtered") == 0 &&
		    r->addr[0] != '\0' && ci_find(d, r->diag.len, r->addr) != NULL) {
			ev.phase = cmd = "RCPT";
			cls = bounce_decide(&ev, &reason, r->why, sizeof(r->why));
			why_note(r->why, "the reply names the recipient: read as an answer to RCPT TO");
		}
		if (weak(reason) && wlen > 0) {
			/* Nothing in the recipient's own lines: the text around
			 * them (the reason is sometimes given once, above the
			 * list of addresses). */
			char *w = clean_line(whole, wlen > BOUNCE_DIAG_MAX ? BOUNCE_DIAG_MAX : wlen);
			const char *r2;
			enum bounce_class c2;
			char why2[BOUNCE_WHY_SIZE];

			if (w != NULL) {
				char st2[16] = "";

				if (r->status[0] == '\0' && find_status(w, st2, sizeof(st2)))
					snprintf(r->status, sizeof(r->status), "%s", st2);
				if (r->reply == 0)
					r->reply = find_reply(w);
				if (cmd == NULL)
					cmd = find_cmd(w, strlen(w));
				ev.status = r->status;
				ev.reply_code = r->reply;
				ev.diagnostic = w;
				ev.phase = cmd;
				c2 = bounce_decide(&ev, &r2, why2, sizeof(why2));
				if (!weak(r2)) {
					reason = r2;
					cls = c2;
					snprintf(r->why, sizeof(r->why), "%s", why2);
					why_note(r->why, "read from the text around the recipient list");
					if (r->diag.len < 4) {
						buf_reset(&r->diag);
						add_piece(&r->diag, w, strlen(w));
					}
				}
				free(w);
			}
		}
		if (r->hint != NULL && cls != BOUNCE_DELAYED && cls != BOUNCE_DELIVERED &&
		    (weak(reason) || strcmp(reason, "filtered") == 0 ||
		     strcmp(reason, "securityerror") == 0 || strcmp(reason, "systemerror") == 0)) {
			const char *r3;

			/* Ask the classifier for the class of the hinted
			 * reason: run it on the hint's own name. */
			cls = bounce_classify(r->status, r->reply, r->hint, "RCPT", &r3);
			reason = r->hint;
			if (strcmp(r3, r->hint) != 0)
				cls = (strcmp(reason, "userunknown") == 0 ||
				    strcmp(reason, "hostunknown") == 0) ? BOUNCE_HARD : BOUNCE_SOFT;
			snprintf(r->why, sizeof(r->why), "X-PowerMTA-BounceCategory names %s: %s",
			         reason, bounce_class_name(cls));
		}
		r->preset = reason;
		r->preset_cls = cls;
	}
}

static int
build(struct pctx *c, struct bounce_report *rep)
{
	size_t i;

	if (c->n == 0)
		return 0;
	rep->recipients = calloc(c->n, sizeof(*rep->recipients));
	if (rep->recipients == NULL)
		return -1;
	for (i = 0; i < c->n; i++) {
		struct rw *r = &c->r[i];
		struct bounce_recipient *b = &rep->recipients[i];

		rep->n_recipients++;
		b->recipient = dup_clean(r->addr);
		b->diagnostic = clean_line(buf_str(&r->diag), r->diag.len);
		b->remote_mta = dup_clean(r->remote_mta);
		b->action = dup_clean(r->action);
		b->feedback_type = dup_clean(r->feedback_type);
		snprintf(b->status, sizeof(b->status), "%s", r->status);
		b->reply_code = r->reply;
		b->reason = r->preset != NULL ? r->preset : "undefined";
		b->cls = r->preset_cls;
		if (r->why[0] != '\0')
			memcpy(b->why, r->why, sizeof(b->why));
		else
			snprintf(b->why, sizeof(b->why), "the report's shape (%s) -> %s: %s",
			         rep->shape ? rep->shape : "?", b->reason, bounce_class_name(b->cls));
		if (b->recipient == NULL || b->diagnostic == NULL || b->remote_mta == NULL ||
		    b->action == NULL || b->feedback_type == NULL)
			return -1;
	}
	return 0;
}

/* Drop recipients that are the sender of the returned message (greetings
 * such as "Hello a@b," name the sender, not a failed address). */
static void
drop_senders(struct pctx *c, const char *const *senders, size_t ns, int others)
{
	size_t i, j, k, keep = 0;

	for (i = 0; i < c->n; i++) {
		int is = 0;

		for (k = 0; k < ns; k++)
			if (senders[k][0] != '\0' && strcasecmp(c->r[i].addr, senders[k]) == 0)
				is = 1;
		keep += !is;
	}
	/* The sender alone, and no other list: a message to oneself. */
	if (keep == 0 && !others)
		return;
	for (i = 0, j = 0; i < c->n; i++) {
		int drop = 0;

		for (k = 0; k < ns; k++)
			if (senders[k][0] != '\0' && strcasecmp(c->r[i].addr, senders[k]) == 0)
				drop = 1;
		if (drop) {
			buf_free(&c->r[i].diag);
			buf_free(&c->r[i].ctx);
			continue;
		}
		if (i != j)
			c->r[j] = c->r[i];
		j++;
	}
	c->n = j;
}

static void
reset_parts(struct pctx *c)
{
	buf_reset(&c->text);
	buf_reset(&c->html);
	buf_reset(&c->dsn);
	buf_reset(&c->arf);
	buf_reset(&c->orighdr);
	buf_reset(&c->origtext);
	c->orig = NULL;
}

/*
 * Read one message as a report: collect its parts, then try the shapes in
 * order of evidence.  Returns the shape; c->n recipients found.  *cut is
 * where the returned message begins in c->text.
 */
static const char *
read_report(struct pctx *c, GMimeMessage *m, struct origst *o, size_t *cut)
{
	const char *hfrom = g_mime_object_get_header(GMIME_OBJECT(m), "From");
	const char *subj = g_mime_message_get_subject(m);
	const char *shape = "none";
	char senders[3][BOUNCE_ADDR_MAX];
	const char *sp[3];
	const char *hto = g_mime_object_get_header(GMIME_OBJECT(m), "To");

	reset_parts(c);
	memset(o, 0, sizeof(*o));
	walk(c, g_mime_message_get_mime_part(m), 0);
	if (c->text.len == 0 && c->html.len > 0)
		html_to_text(&c->html, &c->text);
	unquote(&c->text);
	*cut = orig_marker(buf_str(&c->text), c->text.len);

	/* The returned message's headers. */
	if (c->orig != NULL)
		orig_from_gmime(c->orig, o);
	if (o->msgid[0] == '\0' && o->to[0] == '\0' && c->orighdr.len > 0)
		(void)for_fields(buf_str(&c->orighdr), c->orighdr.len, 0, orig_field, o, NULL);
	if (o->msgid[0] == '\0' && o->to[0] == '\0' && *cut < c->text.len) {
		/* Quoted after the marker: from the first header field in
		 * the next few lines. */
		const char *t = buf_str(&c->text) + *cut, *e = buf_str(&c->text) + c->text.len;
		const char *nl = memchr(t, '\n', (size_t)(e - t));
		int k;

		for (k = 0; nl != NULL && k < 20; k++) {
			const char *l = nl + 1;

			if (l < e && looks_like_message(l, (size_t)(e - l))) {
				(void)for_fields(l, (size_t)(e - l), 0, orig_field, o, NULL);
				break;
			}
			nl = memchr(l, '\n', (size_t)(e - l));
		}
	}

	/* 1. RFC 3464. */
	if (c->dsn.len > 0) {
		parse_dsn(c, buf_str(&c->dsn), c->dsn.len);
		if (c->n > 0)
			shape = "rfc3464";
	}
	if (c->n == 0) {
		const char *t = buf_str(&c->text);
		const char *fr = ci_find(t, c->text.len, "final-recipient:");

		if (fr == NULL)
			fr = ci_find(t, c->text.len, "original-recipient:");
		if (fr != NULL) {
			/* Back up to the start of its block. */
			const char *b = fr;

			while (b > t && !(b[-1] == '\n' && b - 1 > t && b[-2] == '\n'))
				b--;
			parse_dsn(c, b, c->text.len - (size_t)(b - t));
			if (c->n > 0)
				shape = "rfc3464";
		}
	}
	if (c->n > 0) {
		/* The human-readable part: the command, and diagnostics the
		 * DSN left out. */
		scan_blocks(c, buf_str(&c->text), *cut, 1, 1);
		scan_transcript(c, buf_str(&c->text), *cut, 0);
		return shape;
	}

	/* 2. RFC 5965. */
	if (c->arf.len > 0) {
		struct arfst a;
		size_t i;

		memset(&a, 0, sizeof(a));
		a.c = c;
		(void)for_fields(buf_str(&c->arf), c->arf.len, 0, arf_field, &a, NULL);
		if (c->n == 0 && o->to_all[0] != '\0') {
			size_t p = 0, at, alen, tl = strlen(o->to_all);

			while (p < tl && find_addr(o->to_all + p, tl - p, &at, &alen)) {
				char addr[BOUNCE_ADDR_MAX];

				if (norm_addr(o->to_all + p + at, alen, addr, sizeof(addr)) == 0)
					(void)rcpt_get(c, addr);
				p += at + alen;
			}
		}
		if (c->n == 0)
			(void)rcpt_add(c, "");
		for (i = 0; i < c->n; i++) {
			snprintf(c->r[i].feedback_type, sizeof(c->r[i].feedback_type), "%s",
			    a.type[0] != '\0' ? a.type : "abuse");
			c->r[i].preset = "feedback";
			c->r[i].preset_cls = BOUNCE_COMPLAINT;
			snprintf(c->r[i].why, sizeof(c->r[i].why),
			         "an RFC 5965 feedback report (Feedback-Type: %s) -> feedback: complaint",
			         c->r[i].feedback_type);
		}
		return "arf";
	}

	/* 3. RFC 3834. */
	if (is_autoreply(m, hfrom, subj)) {
		char addr[BOUNCE_ADDR_MAX];
		struct rw *r;

		if (hfrom == NULL || norm_addr(hfrom, strlen(hfrom), addr, sizeof(addr)) < 0)
			addr[0] = '\0';
		if ((r = rcpt_add(c, addr)) != NULL) {
			r->preset = "vacation";
			r->preset_cls = BOUNCE_AUTOREPLY;
			snprintf(r->why, sizeof(r->why),
			         "an RFC 3834 auto-reply from a person -> vacation: autoreply");
			if (subj != NULL)
				add_piece(&r->diag, subj, strlen(subj));
		}
		return "rfc3834";
	}

	/* 4. The text shapes. */
	if (c->text.len == 0)
		return shape;
	scan_blocks(c, buf_str(&c->text), *cut, 0, 0);
	senders[0][0] = senders[1][0] = senders[2][0] = '\0';
	if (hto != NULL)
		(void)norm_addr(hto, strlen(hto), senders[0], sizeof(senders[0]));
	snprintf(senders[1], sizeof(senders[1]), "%s", o->from);
	if (hfrom != NULL)
		(void)norm_addr(hfrom, strlen(hfrom), senders[2], sizeof(senders[2]));
	sp[0] = senders[0];
	sp[1] = senders[1];
	sp[2] = senders[2];
	drop_senders(c, sp, 3, has_failed_header(m));
	if (c->n == 0) {
		/* Exim's list, then whatever the transcript names. */
		failed_recipients(m, c);
		if (c->n > 0)
			scan_blocks(c, buf_str(&c->text), *cut, 1, 0);
	}
	scan_transcript(c, buf_str(&c->text), *cut, c->n == 0);
	if (c->n == 0)
		rcpt_to_lines(c, buf_str(&c->text), *cut);
	if (c->n > 0 && c->origtext.len > 0)
		scan_transcript(c, buf_str(&c->origtext), c->origtext.len, 0);
	if (c->n > 0)
		shape = text_shape(buf_str(&c->text), *cut, hfrom);
	if (strcmp(shape, "googlegroups") == 0) {
		size_t i;

		/* Google Groups refuses a post from a sender who may not
		 * post (or to a group that is gone), in the language of
		 * the sender; the reason is always that refusal. */
		for (i = 0; i < c->n; i++)
			c->r[i].hint = "rejected";
	}
	return shape;
}

int
bounce_parse(const char *data, size_t len, const char *envelope_to,
    struct bounce_report **out, struct herr *err)
{
	struct bounce_report *rep = NULL;
	struct pctx c;
	struct origst o;
	char *norm = NULL, env[BOUNCE_ADDR_MAX];
	size_t nlen = 0, cut = 0;
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *m;
	GByteArray *ba;
	const char *shape, *mid, *hfrom, *subj;
	int rc = -1, level;

	shape = "none";

	*out = NULL;
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	buf_init(&c.text, BOUNCE_TEXT_MAX);
	buf_init(&c.html, BOUNCE_TEXT_MAX);
	buf_init(&c.dsn, BOUNCE_PART_MAX);
	buf_init(&c.arf, BOUNCE_PART_MAX);
	buf_init(&c.orighdr, BOUNCE_PART_MAX);
	buf_init(&c.origtext, BOUNCE_TEXT_MAX);

	if (data == NULL && len > 0)
		return herr_set(err, EX_SOFTWARE, NULL, "bounce_parse: no data");
	norm = normalise(data != NULL ? data : "", len, &nlen);
	if (norm == NULL)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (nlen == 0 || !looks_like_message(norm, nlen)) {
		free(norm);
		return herr_set(err, EX_DATAERR, NULL,
		    "not a mail message: no header field at the start");
	}
	rep = calloc(1, sizeof(*rep));
	if (rep == NULL) {
		free(norm);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	if (bounce_digest(data, len, rep->sha256, err) < 0) {
		free(norm);
		free(rep);
		return -1;
	}
	pthread_once(&gmime_once, gmime_start);

	/* The stream takes the bytes over: no second copy of a large
	 * message. */
	ba = g_byte_array_new_take((guint8 *)norm, nlen);
	stream = g_mime_stream_mem_new_with_byte_array(ba);
	parser = g_mime_parser_new_with_stream(stream);
	g_object_unref(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	c.msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (c.msg == NULL) {
		herr_set(err, EX_DATAERR, NULL, "not a mail message: no header could be read");
		goto fail;
	}

	mid = g_mime_message_get_message_id(c.msg);
	hfrom = g_mime_object_get_header(GMIME_OBJECT(c.msg), "From");
	subj = g_mime_message_get_subject(c.msg);
	rep->message_id = dup_clean(mid);
	rep->from = dup_clean(hfrom);
	rep->subject = dup_clean(subj);
	if (envelope_to != NULL && *envelope_to != '\0') {
		rep->envelope_to = dup_clean(envelope_to);
	} else {
		pick_envelope(c.msg, env, sizeof(env));
		rep->envelope_to = dup_clean(env);
	}
	if (rep->message_id == NULL || rep->from == NULL || rep->subject == NULL ||
	    rep->envelope_to == NULL)
		goto oom;

	/* A report that says nothing itself may carry the real one as an
	 * attachment (a forwarded bounce, a filter wrapping the DSN). */
	m = c.msg;
	for (level = 0; level < 3 && m != NULL; level++) {
		GMimeMessage *inner;

		shape = read_report(&c, m, &o, &cut);
		if (c.n > 0 || c.oom)
			break;
		inner = c.orig;
		if (inner == NULL || inner == m)
			break;
		m = inner;
	}
	if (c.n == 0 && level > 0 && !c.oom)
		shape = read_report(&c, c.msg, &o, &cut); /* back to the outer one */
	if (c.oom)
		goto oom;
	if (c.n == 0 && (o.to[0] != '\0' || c.anon) && (c.dsn.len > 0 || is_daemon(hfrom))) {
		/* A delivery report that names no recipient (Postfix's
		 * "Delivery report unavailable", a recipient block without
		 * Final-Recipient): the returned message's To is the one it is
		 * about, with the block's fields when there was one. */
		struct rw *r = rcpt_add(&c, o.to);

		if (r != NULL && c.anon) {
			snprintf(r->status, sizeof(r->status), "%s", c.anon_rw.status);
			snprintf(r->action, sizeof(r->action), "%s", c.anon_rw.action);
			snprintf(r->remote_mta, sizeof(r->remote_mta), "%s", c.anon_rw.remote_mta);
			r->smtp_diag = c.anon_rw.smtp_diag;
			if (c.anon_rw.diag.len > 0)
				add_piece(&r->diag, buf_str(&c.anon_rw.diag), c.anon_rw.diag.len);
		}

		/* The text of a standard report without its fields is
		 * boilerplate; a non-standard one may give the reason. */
		if (r != NULL && cut > 0 && c.dsn.len == 0) {
			char *w = clean_line(buf_str(&c.text), cut > 1024 ? 1024 : cut);

			if (w != NULL)
				add_piece(&r->diag, w, strlen(w));
			free(w);
		}
		shape = c.dsn.len > 0 ? "rfc3464" : text_shape(buf_str(&c.text), cut, hfrom);
	}
	if (c.n == 0)
		shape = "none";

	finish(&c, buf_str(&c.text), cut, strcmp(shape, "rfc3464") == 0);
	rep->shape = shape;
	rep->orig_message_id = dup_clean(o.msgid);
	rep->orig_to = dup_clean(o.to);
	rep->orig_from = dup_clean(o.from);
	if (rep->orig_message_id == NULL || rep->orig_to == NULL || rep->orig_from == NULL)
		goto oom;
	if (build(&c, rep) < 0)
		goto oom;
	*out = rep;
	rep = NULL;
	rc = 0;
	goto done;
oom:
	herr_set(err, EX_OSERR, NULL, "out of memory");
fail:
	rc = -1;
done:
	if (c.msg != NULL)
		g_object_unref(c.msg);
	rcpt_clear(&c);
	free(c.r);
	buf_free(&c.text);
	buf_free(&c.html);
	buf_free(&c.dsn);
	buf_free(&c.arf);
	buf_free(&c.orighdr);
	buf_free(&c.origtext);
	if (c.anon)
		buf_free(&c.anon_rw.diag);
	bounce_report_free(rep);
	return rc;
}
