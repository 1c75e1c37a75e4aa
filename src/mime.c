/*
 * mime.c - writing the exact bytes of an outgoing message.
 *
 * Owns the wire form of every message herald sends: header encoding and
 * folding, quoted-printable bodies and the multipart/alternative frame.
 * Called by the send job once per recipient; its bytes go to the DKIM signer
 * and the SMTP client unchanged, so the same input always gives the same
 * output: no clock, no randomness, the boundary is a hash of the Message-ID.
 *
 * RFCs:
 *   5322 §2.1.1 line limits, §2.2.3 folding, §3.2.3 atoms, §3.2.4 quoted
 *        strings, §3.3 date-time, §3.4 mailboxes, §3.6.4 Message-ID
 *   2045 §6.7 quoted-printable
 *   2046 §5.1.1 boundaries, §5.1.4 multipart/alternative
 *   2047 §2, §4, §5 encoded-words (charset UTF-8 only)
 *   3629 §4 UTF-8, checked strictly (no overlongs, surrogates, > U+10FFFF)
 *
 * Invariants:
 *   (1) output is 7-bit ASCII with CRLF line ends and no line over 998
 *       octets (test_mime_write_alternative_structure).
 *   (2) a public function that fails appends nothing: out->len is restored.
 *   (3) no header value can start a new header line: CR, LF and every other
 *       control character are refused before anything is written
 *       (test_mime_add_header_injection).
 *   (4) quoted-printable output never contains "=_" ('=' is always followed
 *       by two hex digits or CRLF) and every boundary does, so a body line
 *       can never be taken for a boundary (RFC 2046 §5.1.1, RFC 2045 §6.7).
 */
#include "herald/mime.h"
#include "herald/utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* RFC 2047 §2: an encoded-word is at most 75 characters; "=?UTF-8?Q?" and
 * "?=" take 12 of them. */
#define EW_MAX      75
#define EW_OVERHEAD 12
/* The smallest first word worth placing after text already on a line: room
 * for the overhead and one 4-byte character in either encoding. */
#define EW_MIN      (EW_OVERHEAD + 12)

/* A single header value (a mailbox, a Subject) is never larger than this. */
#define MIME_VALUE_MAX (64 * 1024)

/* Quoted-printable: the most one input byte can write (soft break "=" CRLF
 * plus an "=XX" escape), and the chunk reserved ahead of the writer. */
#define QP_STEP_MAX 8
#define QP_CHUNK    (64 * 1024)

enum ew_set { EW_TEXT, EW_PHRASE };

static const char hexdig[] = "0123456789ABCDEF";

static const char b64dig[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char *const day_name[7] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const month_name[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static int	nospace(struct herr *, const char *);
static void	truncate_to(struct buf *, size_t);
static int	is_wsp(unsigned char);
static int	is_atext(unsigned char);
static int	q_plain(unsigned char, enum ew_set);
static size_t	u8_len(unsigned char);
static int	check_utf8(const char *, size_t, const char *, struct herr *);
static int	check_ascii_value(const char *, const char *, struct herr *);
static int	check_addr(const char *, const char *, struct herr *);
static int	looks_encoded(const char *, size_t);
static int	word_needs_ew(const char *, size_t, size_t);
static size_t	ew_first_cap(size_t);
static int	ew_run(struct buf *, const char *, size_t, int, enum ew_set,
		    size_t, size_t *);
static int	ew_best(struct buf *, const char *, size_t, enum ew_set, size_t);
static int	fold_header(struct buf *, const char *, const char *, size_t,
		    const char *, struct herr *);
static int	encode_unstructured(struct buf *, size_t, const char *,
		    const char *, struct herr *);
static int	format_mailbox(struct buf *, const char *, const char *, size_t,
		    const char *, struct herr *);
static int	add_mailbox_header(struct buf *, struct buf *, const char *,
		    const char *, const char *, struct herr *);
static int	check_message_id(const char *, struct herr *);
static uint64_t	fnv1a64(const char *);

/*
 * Quoted-printable (RFC 2045 §6.7).  One pass over the input writing into
 * space reserved ahead, so the common case (a printable byte) is one table
 * look-up and one store.  `col` counts the characters on the current output
 * line.  A unit (a literal byte or an =XX escape) goes on the current line if
 * the line stays within 75 characters, leaving room for the soft break '=';
 * a unit that makes the line exactly 76 is allowed only when a hard line
 * break or the end of the text follows, since then no '=' is needed.
 *
 * Beyond the RFC rules: '.' and "From " at the start of an output line
 * (also after a soft break) are escaped, so neither an SMTP dot-stuffing bug
 * nor an mbox "From " quoting can change the decoded text, and a lone CR is
 * escaped as =0D so only CRLF ever appears as a line end.
 */

/* 1 for bytes written as themselves anywhere: 33..126 except '='. */
static const unsigned char qp_lit[256] = {
	['!'] = 1, ['"'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1,
	['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1,
	['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1,
	['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
	['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['>'] = 1, ['?'] = 1,
	['@'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
	['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
	['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
	['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,
	['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['['] = 1, ['\\'] = 1, [']'] = 1,
	['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
	['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,
	['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['{'] = 1,
	['|'] = 1, ['}'] = 1, ['~'] = 1,
};

/* True when the text at s (before end) starts with a line end or is over. */
static inline int
qp_at_eol(const unsigned char *s, const unsigned char *end)
{
	return s == end || *s == '\n' ||
	    (*s == '\r' && s + 1 < end && s[1] == '\n');
}

/* True when the byte at s must be escaped because it starts an output
 * line: '.' or the F of "From ". */
static inline int
qp_guard(const unsigned char *s, const unsigned char *end)
{
	return *s == '.' ||
	    (*s == 'F' && end - s >= 5 && memcmp(s + 1, "rom ", 4) == 0);
}

/*
 * Does any byte of the little 8-byte word `w` need more than copying: below
 * SP, above '~', or '='?  Spaces count as plain here (the caller backs off a
 * space that ends a line).  Branch-free byte tests from "Bit Twiddling
 * Hacks" (hasless, hasmore, haszero); exact as to whether any byte matches.
 */
static inline int
qp_word_needs_look(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t below = (w - ones * 0x20) & ~w & high;          /* byte < 0x20 */
	uint64_t above = ((w + ones * (127 - 0x7e)) | w) & high; /* byte > 0x7e */
	uint64_t eq = w ^ (ones * '=');
	uint64_t equals = (eq - ones) & ~eq & high;              /* byte == '=' */

	return (below | above | equals) != 0;
}

int
mime_qp_encode(struct buf *out, const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in, *end = s + len;
	size_t start = out->len, col = 0, rest, want, w;
	char *p = NULL, *lim = NULL;
	unsigned char c;

	while (s < end) {
		if ((size_t)(lim - p) < QP_STEP_MAX) {
			/* Reserve the worst case for what is left (3 bytes
			 * per byte, plus 3 per 73 for soft breaks, which
			 * 1/8 covers), in chunks; near the cap, fall back
			 * to one step at a time. */
			if (p)
				out->len = (size_t)(p - out->data);
			rest = (size_t)(end - s);
			want = rest > QP_CHUNK / 4 ? QP_CHUNK :
			    rest * 3 + rest / 8 + QP_STEP_MAX;
			if (buf_reserve(out, want) < 0) {
				want = QP_STEP_MAX;
				if (errno != E2BIG || buf_reserve(out, want) < 0)
					goto fail;
			}
			p = out->data + out->len;
			lim = p + want;
		}
		c = *s;
		if (col > 0 && col < MIME_QP_WIDTH - 1 && (qp_lit[c] || c == ' ')) {
			/* Fast path: a run of bytes that stand for themselves
			 * and fit on this line before the last column, where
			 * the slow path below decides about soft breaks.  A
			 * space joins the run unless a line break or the end
			 * follows it (rule 3).  Most of a newsletter is such
			 * runs. */
			const unsigned char *q = s, *stop;
			size_t room = MIME_QP_WIDTH - 1 - col, n;

			if ((size_t)(lim - p) - QP_STEP_MAX < room)
				room = (size_t)(lim - p) - QP_STEP_MAX;
			stop = (size_t)(end - s) < room ? end : s + room;
			/* eight bytes at a time while none needs a look */
			while (stop - q >= 8) {
				uint64_t word;

				memcpy(&word, q, 8);
				if (qp_word_needs_look(word))
					break;
				q += 8;
			}
			while (q < stop && (qp_lit[*q] ||
			                    (*q == ' ' && q + 1 < end && q[1] != '\n' && q[1] != '\r')))
				q++;
			/* a space that ends the run before a line break or the
			 * end must be encoded (rule 3): leave it to the slow path */
			while (q > s && q[-1] == ' ' &&
			       (q == end || *q == '\n' || *q == '\r'))
				q--;
			n = (size_t)(q - s);
			if (n) {
				memcpy(p, s, n);
				p += n;
				col += n;
				s = q;
				continue;
			}
		}
		if (c == '\n' || (c == '\r' && s + 1 < end && s[1] == '\n')) {
			/* Hard line break; rule (3) was applied to any SP
			 * or TAB before it when that was written. */
			*p++ = '\r';
			*p++ = '\n';
			col = 0;
			s += c == '\r' ? 2 : 1;
			continue;
		}
		if (qp_lit[c])
			w = col == 0 && qp_guard(s, end) ? 3 : 1;
		else if (c == ' ' || c == '\t')
			w = qp_at_eol(s + 1, end) ? 3 : 1;
		else
			w = 3;
		if (col + w > MIME_QP_WIDTH - 1 &&
		    !(col + w == MIME_QP_WIDTH && qp_at_eol(s + 1, end))) {
			*p++ = '=';
			*p++ = '\r';
			*p++ = '\n';
			col = 0;
			if (w == 1 && qp_guard(s, end))
				w = 3;
		}
		if (w == 1) {
			*p++ = (char)c;
		} else {
			*p++ = '=';
			*p++ = hexdig[c >> 4];
			*p++ = hexdig[c & 15];
		}
		col += w;
		s++;
	}
	if (p) {
		out->len = (size_t)(p - out->data);
		*p = '\0';
	}
	return 0;
fail:
	truncate_to(out, start);
	return -1;
}

/*
 * Helpers and header checks.
 */

static int
nospace(struct herr *err, const char *where)
{
	if (errno == E2BIG)
		return herr_set(err, EX_DATAERR, where,
		    "message larger than its size cap");
	return herr_set(err, EX_OSERR, where, "out of memory");
}

static void
truncate_to(struct buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 5322 §3.2.3 atext. */
static int
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Bytes a Q encoded-word may carry as themselves.  In text (Subject) any
 * printable ASCII but '=', '?' and '_' (RFC 2047 §4.2); in a phrase only
 * letters, digits and "!*+-/" (§5 rule 3; '=' and '_' are listed there but
 * '=' is the escape and '_' stands for a space, so both are escaped).
 */
static int
q_plain(unsigned char c, enum ew_set set)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	if (set == EW_PHRASE)
		return c != '\0' && strchr("!*+-/", c) != NULL;
	return c > ' ' && c < 127 && c != '=' && c != '?' && c != '_';
}

/* Length of the UTF-8 sequence led by c; the text was checked already. */
static size_t
u8_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c < 0xe0)
		return 2;
	if (c < 0xf0)
		return 3;
	return 4;
}

/*
 * Strict UTF-8 (RFC 3629 §4 table): no overlong forms, no surrogates
 * (ED A0..BF), nothing above U+10FFFF.  C0 controls but TAB, DEL and C1
 * controls (C2 80..9F) are refused too: none belongs in a header, and CR or
 * LF would end it.
 */
static int
check_utf8(const char *str, size_t n, const char *where, struct herr *err)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, k;
	unsigned char c;

	while (i < n) {
		c = s[i];
		if (c < 0x80) {
			if (c == '\r' || c == '\n')
				return herr_set(err, EX_DATAERR, where,
				    "line break in value at byte %zu", i);
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return herr_set(err, EX_DATAERR, where,
				    "control character U+%04X at byte %zu",
				    c, i);
			i++;
			continue;
		}
		if (!(k = utf8_seq(s + i, n - i, NULL)))
			goto bad;
		if (c == 0xc2 && s[i + 1] <= 0x9f)
			return herr_set(err, EX_DATAERR, where,
			    "control character U+%04X at byte %zu",
			    s[i + 1], i);
		i += k;
	}
	return 0;
bad:
	return herr_set(err, EX_DATAERR, where, "invalid UTF-8 at byte %zu", i);
}

/* A header value ready for the wire: printable ASCII, SP and TAB. */
static int
check_ascii_value(const char *v, const char *where, struct herr *err)
{
	const unsigned char *s = (const unsigned char *)v;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] >= 0x80)
			return herr_set(err, EX_DATAERR, where,
			    "8-bit byte 0x%02X at byte %zu", s[i], i);
		if (s[i] == '\r' || s[i] == '\n')
			return herr_set(err, EX_DATAERR, where,
			    "line break in value at byte %zu", i);
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return herr_set(err, EX_DATAERR, where,
			    "control character U+%04X at byte %zu", s[i], i);
	}
	return 0;
}

/*
 * "left@right" as it goes between angle brackets - an addr-spec as
 * address.c produces it, or a msg-id (RFC 5322 §3.6.4): printable ASCII,
 * no whitespace, '<' or '>', an '@' with something on both sides.  Only
 * what could break the header is checked here.  `what` names it in errors.
 */
static int
check_angle_addr(const char *v, const char *what, const char *where, struct herr *err)
{
	const unsigned char *s = (const unsigned char *)v;
	size_t i;

	if (!v || !*v)
		return herr_set(err, EX_DATAERR, where, "empty %s", what);
	for (i = 0; s[i]; i++)
		if (s[i] <= ' ' || s[i] >= 127 || s[i] == '<' || s[i] == '>')
			return herr_set(err, EX_DATAERR, where,
			    "invalid %s: byte 0x%02X at %zu not allowed", what, s[i], i);
	if (!strchr(v, '@') || *v == '@' || s[i - 1] == '@')
		return herr_set(err, EX_DATAERR, where,
		    "invalid %s '%s': not of the form left@right", what, v);
	return 0;
}

static int
check_addr(const char *addr, const char *where, struct herr *err)
{
	return check_angle_addr(addr, "address", where, err);
}

/*
 * RFC 2047 encoded-words.
 */

/* A word a decoder could take for an encoded-word must not be sent as
 * itself (RFC 2047 §5 and §6.2 do not say what "=?x?q?y?=" typed by a user
 * means; decoders decode it).  "=?" is enough to be careful. */
static int
looks_encoded(const char *w, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i++)
		if (w[i] == '=' && w[i + 1] == '?')
			return 1;
	return 0;
}

/* A word is sent as encoded-words when it is not ASCII, could be read as an
 * encoded-word, or is too long to fit on a 998-octet line even after a fold
 * (encoded-words can be split, a plain word cannot). */
static int
word_needs_ew(const char *w, size_t n, size_t used)
{
	size_t i;

	if (n + (used > 1 ? used : 1) > MIME_LINE_MAX)
		return 1;
	for (i = 0; i < n; i++)
		if ((unsigned char)w[i] >= 0x80)
			return 1;
	return looks_encoded(w, n);
}

/* Size of the first encoded-word when `col` columns of its line are taken:
 * fill the line to 78 if that leaves a useful word, otherwise a full word
 * that the folder puts on a line of its own. */
static size_t
ew_first_cap(size_t col)
{
	if (col + EW_MIN <= MIME_FOLD_WIDTH)
		return MIME_FOLD_WIDTH - col < EW_MAX ?
		    MIME_FOLD_WIDTH - col : EW_MAX;
	return EW_MAX;
}

/*
 * Write (or, with out NULL, only measure) `n` bytes of checked UTF-8 as
 * encoded-words of encoding `enc` ('Q' or 'B'), separated by one space.  The
 * first word is at most `cap1` characters, the others EW_MAX; a word ends
 * only between two UTF-8 sequences (RFC 2047 §5: "each 'encoded-word' MUST
 * represent an integral number of characters").  The total length goes to
 * *total.  Returns 0 or -1 (buffer).
 */
static int
ew_run(struct buf *out, const char *str, size_t n, int enc, enum ew_set set,
    size_t cap1, size_t *total)
{
	const unsigned char *s = (const unsigned char *)str;
	char word[EW_MAX + 1];
	size_t i = 0, j, k, cap = cap1, q, ql, cl, wl, maxb, b;
	uint32_t v;

	*total = 0;
	while (i < n) {
		/* Gather whole characters into one word. */
		maxb = (cap - EW_OVERHEAD) / 4 * 3;
		q = 0;
		for (j = i; j < n; j += cl) {
			cl = u8_len(s[j]);
			if (enc == 'B') {
				if (j + cl - i > maxb)
					break;
				continue;
			}
			for (ql = 0, k = j; k < j + cl; k++)
				ql += s[k] == ' ' || q_plain(s[k], set) ? 1 : 3;
			if (q + ql > cap - EW_OVERHEAD)
				break;
			q += ql;
		}
		wl = EW_OVERHEAD + (enc == 'B' ? (j - i + 2) / 3 * 4 : q);
		*total += wl + (i > 0);
		if (out) {
			memcpy(word, enc == 'B' ? "=?UTF-8?B?" : "=?UTF-8?Q?",
			    10);
			wl = 10;
			if (enc == 'B') {
				for (b = i; b < j; b += 3) {
					v = (uint32_t)s[b] << 16;
					if (b + 1 < j)
						v |= (uint32_t)s[b + 1] << 8;
					if (b + 2 < j)
						v |= s[b + 2];
					word[wl++] = b64dig[v >> 18];
					word[wl++] = b64dig[(v >> 12) & 63];
					word[wl++] = b + 1 < j ?
					    b64dig[(v >> 6) & 63] : '=';
					word[wl++] = b + 2 < j ?
					    b64dig[v & 63] : '=';
				}
			} else {
				for (b = i; b < j; b++) {
					if (s[b] == ' ')
						word[wl++] = '_';
					else if (q_plain(s[b], set))
						word[wl++] = (char)s[b];
					else {
						word[wl++] = '=';
						word[wl++] = hexdig[s[b] >> 4];
						word[wl++] = hexdig[s[b] & 15];
					}
				}
			}
			word[wl++] = '?';
			word[wl++] = '=';
			if ((i > 0 && buf_addc(out, ' ') < 0) ||
			    buf_add(out, word, wl) < 0)
				return -1;
		}
		i = j;
		cap = EW_MAX;
	}
	return 0;
}

/* Encode a run with 'Q' or 'B', whichever gives the shorter text; 'Q' on a
 * tie, as it stays readable. */
static int
ew_best(struct buf *out, const char *s, size_t n, enum ew_set set,
    size_t cap1)
{
	size_t qlen, blen;

	ew_run(NULL, s, n, 'Q', set, cap1, &qlen);
	ew_run(NULL, s, n, 'B', set, cap1, &blen);
	return ew_run(out, s, n, qlen <= blen ? 'Q' : 'B', set, cap1, &qlen);
}

/*
 * Folding (RFC 5322 §2.2.3).  A fold is a CRLF put before whitespace that is
 * already in the value, so unfolding gives the value back exactly.  Folds go
 * before the first SP/TAB of a run (no line ends in whitespace), never
 * before trailing whitespace (no whitespace-only line) and never before the
 * first word of the value.  Greedy: the last fold point that keeps the line
 * within 78; if there is none, the first one after, as long as the line
 * stays within 998 (test_mime_add_header_fold_long, _unfoldable).
 */
static int
fold_header(struct buf *out, const char *name, const char *v, size_t n,
    const char *where, struct herr *err)
{
	size_t start = out->len, nlen = strlen(name), col, pos = 0, q, r, best;

	col = nlen + 2;
	if (buf_add(out, name, nlen) < 0 || buf_add(out, ": ", 2) < 0)
		goto nomem;
	while (col + (n - pos) > MIME_FOLD_WIDTH) {
		best = 0;
		for (q = pos + 1; q < n; q++) {
			if (!is_wsp(v[q]) || is_wsp(v[q - 1]))
				continue;
			for (r = q; r < n && is_wsp(v[r]); r++)
				;
			if (r == n)
				break;
			if (best && col + (q - pos) > MIME_FOLD_WIDTH)
				break;
			best = q;
			if (col + (q - pos) > MIME_FOLD_WIDTH)
				break;
			q = r;
		}
		if (!best)
			break;
		if (col + (best - pos) > MIME_LINE_MAX)
			goto toolong;
		if (buf_add(out, v + pos, best - pos) < 0 ||
		    buf_add(out, "\r\n", 2) < 0)
			goto nomem;
		col = 0;
		pos = best;
	}
	if (col + (n - pos) > MIME_LINE_MAX)
		goto toolong;
	if (buf_add(out, v + pos, n - pos) < 0 || buf_add(out, "\r\n", 2) < 0)
		goto nomem;
	return 0;
toolong:
	truncate_to(out, start);
	return herr_set(err, EX_DATAERR, where,
	    "value cannot be folded under %d octets a line", MIME_LINE_MAX);
nomem:
	truncate_to(out, start);
	return nospace(err, where);
}

int
mime_add_header(struct buf *out, const char *name, const char *value,
    struct herr *err)
{
	char where[HERR_WHERE_MAX];
	const unsigned char *s = (const unsigned char *)name;
	size_t i;

	snprintf(where, sizeof where, "header '%s'", name ? name : "");
	if (!name || !*name)
		return herr_set(err, EX_DATAERR, where, "empty header name");
	/* RFC 5322 §3.6.8 ftext: printable ASCII but ':'. */
	for (i = 0; s[i]; i++)
		if (s[i] <= ' ' || s[i] >= 127 || s[i] == ':')
			return herr_set(err, EX_DATAERR, where,
			    "invalid byte 0x%02X in header name", s[i]);
	if (i + 2 > MIME_LINE_MAX)
		return herr_set(err, EX_DATAERR, where, "header name too long");
	if (!value)
		value = "";
	if (check_ascii_value(value, where, err) < 0)
		return -1;
	return fold_header(out, name, value, strlen(value), where, err);
}

/*
 * Unstructured text (Subject).  Only the run of words from the first to the
 * last word that needs encoding becomes encoded-words; the whitespace inside
 * the run is encoded with it, because decoders drop whitespace between two
 * adjacent encoded-words (RFC 2047 §6.2), while the whitespace before and
 * after the run stays plain and separates the words as §5 rule 1 requires.
 */
static int
encode_unstructured(struct buf *out, size_t used, const char *v,
    const char *where, struct herr *err)
{
	size_t n = strlen(v), start = out->len, i, a, first = n, last = 0;

	if (check_utf8(v, n, where, err) < 0)
		return -1;
	for (i = 0; i < n;) {
		while (i < n && is_wsp((unsigned char)v[i]))
			i++;
		for (a = i; i < n && !is_wsp((unsigned char)v[i]); i++)
			;
		if (i > a && word_needs_ew(v + a, i - a, used)) {
			if (first == n)
				first = a;
			last = i;
		}
	}
	if (first == n) {
		if (buf_add(out, v, n) < 0)
			goto nomem;
		return 0;
	}
	if (buf_add(out, v, first) < 0 ||
	    ew_best(out, v + first, last - first, EW_TEXT,
	    ew_first_cap(used + first)) < 0 ||
	    buf_add(out, v + last, n - last) < 0)
		goto nomem;
	return 0;
nomem:
	truncate_to(out, start);
	return nospace(err, where);
}

int
mime_encode_unstructured(struct buf *out, size_t used, const char *utf8,
    struct herr *err)
{
	return encode_unstructured(out, used, utf8 ? utf8 : "",
	    "unstructured header", err);
}

/*
 * A mailbox (RFC 5322 §3.4).  The display name is trimmed, then written as
 * the words themselves when each is an atom, as one quoted-string when it is
 * ASCII but not atoms ("Jones, Alex"), and as encoded-words when it is not
 * ASCII, could be read as an encoded-word, or has a word too long for a
 * line.  Encoded names are encoded whole: mixing atoms and encoded-words in
 * one phrase saves little and quoted text next to an encoded-word is easy
 * to get wrong.
 */
static int
format_mailbox(struct buf *out, const char *name, const char *addr,
    size_t used, const char *where, struct herr *err)
{
	size_t start = out->len, n, i, a;
	int atoms = 1, encode = 0;

	if (check_addr(addr, where, err) < 0)
		return -1;
	if (!name)
		name = "";
	n = strlen(name);
	if (check_utf8(name, n, where, err) < 0)
		return -1;
	while (n > 0 && is_wsp((unsigned char)name[n - 1]))
		n--;
	while (n > 0 && is_wsp((unsigned char)*name)) {
		name++;
		n--;
	}
	if (n == 0) {
		if (buf_adds(out, addr) < 0)
			goto nomem;
		return 0;
	}
	for (i = 0; i < n;) {
		while (i < n && is_wsp((unsigned char)name[i]))
			i++;
		for (a = i; i < n && !is_wsp((unsigned char)name[i]); i++)
			if (!is_atext((unsigned char)name[i]))
				atoms = 0;
		if (i > a && word_needs_ew(name + a, i - a, used))
			encode = 1;
	}
	if (encode) {
		if (ew_best(out, name, n, EW_PHRASE, ew_first_cap(used)) < 0)
			goto nomem;
	} else if (atoms) {
		if (buf_add(out, name, n) < 0)
			goto nomem;
	} else {
		/* RFC 5322 §3.2.4: qtext is printable ASCII but '"' and
		 * '\\'; those two become quoted-pairs. */
		if (buf_addc(out, '"') < 0)
			goto nomem;
		for (i = 0; i < n; i = a) {
			for (a = i; a < n && name[a] != '"' &&
			    name[a] != '\\'; a++)
				;
			if (buf_add(out, name + i, a - i) < 0)
				goto nomem;
			if (a < n) {
				if (buf_addc(out, '\\') < 0 ||
				    buf_addc(out, name[a]) < 0)
					goto nomem;
				a++;
			}
		}
		if (buf_addc(out, '"') < 0)
			goto nomem;
	}
	if (buf_adds(out, " <") < 0 || buf_adds(out, addr) < 0 ||
	    buf_addc(out, '>') < 0)
		goto nomem;
	return 0;
nomem:
	truncate_to(out, start);
	return nospace(err, where);
}

int
mime_format_mailbox(struct buf *out, const char *name, const char *addr,
    struct herr *err)
{
	/* Size the first encoded-word to follow "Reply-To: ", the longest
	 * mailbox field herald writes. */
	return format_mailbox(out, name, addr, sizeof("Reply-To: ") - 1,
	    "mailbox", err);
}

void
mime_format_date(time_t t, char out[32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_year < 0 || tm.tm_year > 8099) {
		/* Outside what §3.3 can say in four digits: the epoch,
		 * rather than a malformed date. */
		t = 0;
		gmtime_r(&t, &tm);
	}
	snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    day_name[tm.tm_wday % 7], tm.tm_mday % 100,
	    month_name[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000,
	    tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
}

/* Build one mailbox value in `tmp` and write it as header `field`. */
static int
add_mailbox_header(struct buf *out, struct buf *tmp, const char *field,
    const char *name, const char *addr, struct herr *err)
{
	char where[HERR_WHERE_MAX];

	snprintf(where, sizeof where, "header '%s'", field);
	buf_reset(tmp);
	if (format_mailbox(tmp, name, addr, strlen(field) + 2, where, err) < 0)
		return -1;
	return fold_header(out, field, buf_str(tmp), tmp->len, where, err);
}

static int
check_message_id(const char *id, struct herr *err)
{
	return check_angle_addr(id, "Message-ID", "header 'Message-ID'", err);
}

/* FNV-1a, 64 bits: cheap, and only needs to differ between messages. */
static uint64_t
fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

int
mime_write_alternative(struct buf *out, const struct mime_message *m,
    struct herr *err)
{
	static const char part_text[] =
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
	static const char part_html[] =
	    "Content-Type: text/html; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
	struct buf tmp = BUF_INIT(MIME_VALUE_MAX);
	char date[32], boundary[32], ctype[80], where[HERR_WHERE_MAX];
	size_t start = out->len, i;

	if (check_message_id(m->message_id, err) < 0)
		goto fail;
	snprintf(boundary, sizeof boundary, "=_herald_%016llx",
	    (unsigned long long)fnv1a64(m->message_id));
	mime_format_date(m->date, date);
	if (mime_add_header(out, "Date", date, err) < 0 ||
	    add_mailbox_header(out, &tmp, "From", m->from_name, m->from_addr,
	    err) < 0 ||
	    add_mailbox_header(out, &tmp, "To", m->to_name, m->to_addr,
	    err) < 0)
		goto fail;
	if (m->reply_to_addr && add_mailbox_header(out, &tmp, "Reply-To",
	    m->reply_to_name, m->reply_to_addr, err) < 0)
		goto fail;
	buf_reset(&tmp);
	if (encode_unstructured(&tmp, sizeof("Subject: ") - 1,
	    m->subject ? m->subject : "", "header 'Subject'", err) < 0 ||
	    fold_header(out, "Subject", buf_str(&tmp), tmp.len,
	    "header 'Subject'", err) < 0)
		goto fail;
	buf_reset(&tmp);
	if (buf_addf(&tmp, "<%s>", m->message_id) < 0) {
		nospace(err, "header 'Message-ID'");
		goto fail;
	}
	if (fold_header(out, "Message-ID", buf_str(&tmp), tmp.len,
	    "header 'Message-ID'", err) < 0)
		goto fail;
	for (i = 0; i < m->n_extra; i++)
		if (mime_add_header(out, m->extra[i].name, m->extra[i].value,
		    err) < 0)
			goto fail;
	snprintf(ctype, sizeof ctype, "multipart/alternative; boundary=\"%s\"",
	    boundary);
	if (mime_add_header(out, "MIME-Version", "1.0", err) < 0 ||
	    mime_add_header(out, "Content-Type", ctype, err) < 0)
		goto fail;
	/* RFC 2046 §5.1.1: the CRLF before each boundary belongs to the
	 * boundary, so a body without a final newline decodes without one. */
	if (buf_addf(out, "\r\n--%s\r\n", boundary) < 0 ||
	    buf_add(out, part_text, sizeof part_text - 1) < 0 ||
	    mime_qp_encode(out, m->text ? m->text : "", m->text_len) < 0 ||
	    buf_addf(out, "\r\n--%s\r\n", boundary) < 0 ||
	    buf_add(out, part_html, sizeof part_html - 1) < 0 ||
	    mime_qp_encode(out, m->html ? m->html : "", m->html_len) < 0 ||
	    buf_addf(out, "\r\n--%s--\r\n", boundary) < 0) {
		snprintf(where, sizeof where, "message <%s>", m->message_id);
		nospace(err, where);
		goto fail;
	}
	buf_free(&tmp);
	return 0;
fail:
	truncate_to(out, start);
	buf_free(&tmp);
	return -1;
}
