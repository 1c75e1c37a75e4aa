/*
 * test_mime.c - the MIME writer (src/mime.c).
 *
 * Covers quoted-printable against the RFC 2045 §6.7 rules and by decoding
 * back random and UTF-8 text, RFC 2047 encoded-words in Subject and display
 * names, header folding and the 998-octet limit, refusal of CR/LF injection
 * (invariant (3) of mime.c), appending nothing on failure (invariant (2)),
 * date formatting, and the structure of a whole multipart/alternative
 * message (invariants (1) and (4)).
 *
 * Expected encoded forms were produced by mime.c and checked by decoding
 * them with Python 3.11's email package (email.policy.default: str() of the
 * Subject, Address.display_name of To) and binascii.a2b_qp / b2a_qp; the
 * results are hard-coded here, the test does not need Python.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "herald/mime.h"

/*
 * Helpers: a small quoted-printable decoder, an RFC 2047 decoder for
 * unstructured text, and line checks.
 */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode quoted-printable as RFC 2045 §6.7 says; upper-case hex only, as
 * the encoder must write it (rule 1).  Fails the test on a bad escape. */
static void
qp_decode(struct buf *out, const char *s, size_t n)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] != '=') {
			assert_int_equal(buf_addc(out, s[i]), 0);
			continue;
		}
		assert_true(i + 2 < n);
		if (s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
			continue;
		}
		hi = hexval(s[i + 1]);
		lo = hexval(s[i + 2]);
		assert_true(hi >= 0 && lo >= 0);
		assert_int_equal(buf_addc(out, (char)(hi << 4 | lo)), 0);
		i += 2;
	}
}

/* The input with every LF not preceded by CR turned into CRLF: what the
 * decoded quoted-printable must equal. */
static void
crlf_normalise(struct buf *out, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			assert_int_equal(buf_addc(out, '\r'), 0);
		assert_int_equal(buf_addc(out, s[i]), 0);
	}
}

static int
b64val(char c)
{
	const char *d =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = strchr(d, c);

	return c && p ? (int)(p - d) : -1;
}

/* Decode one encoded-word s[0..n) into out (NULL: only recognise it);
 * 0 if it is one, -1 if not. */
static int
ew_decode_word(struct buf *out, const char *s, size_t n)
{
	size_t i;
	uint32_t v = 0;
	int bits = 0, d;

	if (n < 12 || memcmp(s, "=?UTF-8?", 8) != 0 ||
	    (s[8] != 'B' && s[8] != 'Q') || s[9] != '?' ||
	    s[n - 2] != '?' || s[n - 1] != '=')
		return -1;
	assert_true(n <= 75); /* RFC 2047 §2 */
	if (!out)
		return 0;
	for (i = 10; i < n - 2; i++) {
		if (s[8] == 'Q') {
			if (s[i] == '_')
				buf_addc(out, ' ');
			else if (s[i] == '=') {
				assert_true(hexval(s[i + 1]) >= 0 &&
				    hexval(s[i + 2]) >= 0);
				buf_addc(out, (char)(hexval(s[i + 1]) << 4 |
				    hexval(s[i + 2])));
				i += 2;
			} else {
				assert_true(s[i] > ' ' && s[i] < 127 &&
				    s[i] != '?');
				buf_addc(out, s[i]);
			}
			continue;
		}
		if (s[i] == '=')
			break;
		d = b64val(s[i]);
		assert_true(d >= 0);
		v = v << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_addc(out, (char)(v >> bits & 0xff));
		}
	}
	return 0;
}

/* Decode an unfolded unstructured value: whitespace between two adjacent
 * encoded-words is dropped (RFC 2047 §6.2), all other text kept. */
static void
ew_decode_text(struct buf *out, const char *s)
{
	size_t i = 0, a, ws;
	int prev_ew = 0;

	while (s[i]) {
		for (ws = i; s[i] == ' ' || s[i] == '\t'; i++)
			;
		for (a = i; s[i] && s[i] != ' ' && s[i] != '\t'; i++)
			;
		if (i > a && ew_decode_word(NULL, s + a, i - a) == 0) {
			if (!prev_ew)
				buf_add(out, s + ws, a - ws);
			ew_decode_word(out, s + a, i - a);
			prev_ew = 1;
		} else {
			buf_add(out, s + ws, i - ws);
			prev_ew = 0;
		}
	}
}

/* Remove every CRLF that is followed by SP or TAB (RFC 5322 §2.2.3). */
static char *
unfold(const char *s)
{
	char *r = malloc(strlen(s) + 1), *p = r;

	assert_non_null(r);
	for (; *s; s++) {
		if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t')) {
			s++;
			continue;
		}
		*p++ = *s;
	}
	*p = '\0';
	return r;
}

/* Every line of s[0..n) ends with CRLF, is 7-bit, has no bare CR or LF and
 * is at most `max` octets; returns the number of lines. */
static size_t
check_lines(const char *s, size_t n, size_t max)
{
	size_t i, col = 0, lines = 0;

	for (i = 0; i < n; i++) {
		assert_true((unsigned char)s[i] < 128);
		assert_true(s[i] != '\0');
		if (s[i] == '\r') {
			assert_true(i + 1 < n && s[i + 1] == '\n');
			assert_true(col <= max);
			col = 0;
			lines++;
			i++;
			continue;
		}
		assert_true(s[i] != '\n');
		col++;
	}
	assert_int_equal(col, 0);
	return lines;
}

/* The same check for quoted-printable, whose output need not end in CRLF;
 * also no line ends in SP/TAB and none starts with '.' or "From ". */
static void
check_qp_lines(const char *s, size_t n)
{
	size_t i, a;

	for (a = 0; a <= n; a = i + 2) {
		for (i = a; i < n && s[i] != '\r'; i++) {
			assert_true(s[i] != '\n');
			assert_true(s[i] == '\t' ||
			    (s[i] >= ' ' && s[i] < 127));
		}
		assert_true(i == n || (i + 1 < n && s[i + 1] == '\n'));
		assert_true(i - a <= MIME_QP_WIDTH);
		if (i > a) {
			assert_true(s[i - 1] != ' ' && s[i - 1] != '\t');
			assert_true(s[a] != '.');
			assert_false(i - a >= 5 && memcmp(s + a, "From ", 5) == 0);
		}
		if (i == n)
			break;
	}
	for (i = 0; i + 1 < n; i++)
		assert_false(s[i] == '=' && s[i + 1] == '_');
}

static void
qp_is(const char *in, size_t n, const char *want)
{
	struct buf b = BUF_INIT(1 << 20);

	assert_int_equal(mime_qp_encode(&b, in, n), 0);
	assert_string_equal(buf_str(&b), want);
	check_qp_lines(b.data ? b.data : "", b.len);
	buf_free(&b);
}

/*
 * Quoted-printable.
 */

static void
test_mime_qp_encode_soft_break_at_76(void **state)
{
	char in[200], want[300];

	(void)state;
	/* 76 characters fit a line when nothing follows on it (rule 5
	 * counts the '=' only when there is one). */
	memset(in, 'x', 76);
	in[76] = '\0';
	qp_is(in, 76, in);
	/* 77: 75 characters and the soft break, then the rest; the same as
	 * Python's email.quoprimime.body_encode. */
	memset(in, 'x', 77);
	memset(want, 'x', 75);
	memcpy(want + 75, "=\r\nxx", 6);
	qp_is(in, 77, want);
	/* 76 followed by a hard break still fits. */
	memset(in, 'x', 76);
	memcpy(in + 76, "\nab", 3);
	memset(want, 'x', 76);
	memcpy(want + 76, "\r\nab", 5);
	qp_is(in, 79, want);
}

static void
test_mime_qp_encode_no_split_escape(void **state)
{
	char in[100], want[120];

	(void)state;
	/* 74 + "=C3" would be 77: the escape moves whole to the next line. */
	memset(in, 'a', 74);
	memcpy(in + 74, "\xc3\xa9", 3);
	memset(want, 'a', 74);
	memcpy(want + 74, "=\r\n=C3=A9", 10);
	qp_is(in, 76, want);
	/* 73 + "=E9" is exactly 76 at the end of the text: allowed. */
	memset(in, '0', 73);
	memcpy(in + 73, "=", 2);
	memset(want, '0', 73);
	memcpy(want + 73, "=3D", 4);
	qp_is(in, 74, want);
}

static void
test_mime_qp_encode_equals(void **state)
{
	(void)state;
	qp_is("a=b ==", 6, "a=3Db =3D=3D");
}

static void
test_mime_qp_encode_trailing_whitespace(void **state)
{
	(void)state;
	/* Rule 3: SP/TAB before a hard break, or at the end of the text
	 * (the writer's CRLF follows it), is escaped; inside a line not. */
	qp_is("a b \nc\t\r\nd \t", 12, "a b=20\r\nc=09\r\nd =09");
	qp_is("  \n", 3, " =20\r\n");
}

static void
test_mime_qp_encode_utf8(void **state)
{
	const char *in = "Zo\xc3\xab \xe2\x80\x93 \xe2\x80\x9cquoted\xe2\x80\x9d";

	(void)state;
	/* "Zoë – “quoted”"; binascii.b2a_qp gives the same. */
	qp_is(in, strlen(in), "Zo=C3=AB =E2=80=93 =E2=80=9Cquoted=E2=80=9D");
}

static void
test_mime_qp_encode_line_ends(void **state)
{
	(void)state;
	/* LF and CRLF both become CRLF; a lone CR is data, =0D; no CRLF is
	 * added after text that has none. */
	qp_is("a\nb\r\nc\rd", 8, "a\r\nb\r\nc=0Dd");
	qp_is("\r\r\n", 3, "=0D\r\n");
	qp_is("end\n", 4, "end\r\n");
}

static void
test_mime_qp_encode_dot_and_from(void **state)
{
	char in[100], want[120];

	(void)state;
	qp_is(".\nFrom me\nFromage\nx.From y", 26,
	    "=2E\r\n=46rom me\r\nFromage\r\nx.From y");
	/* Also at the start of a line made by a soft break. */
	memset(in, 'a', 75);
	memcpy(in + 75, ".b", 2);
	memset(want, 'a', 75);
	memcpy(want + 75, "=\r\n=2Eb", 8);
	qp_is(in, 77, want);
	memset(in, 'a', 75);
	memcpy(in + 75, "From x", 6);
	memset(want, 'a', 75);
	memcpy(want + 75, "=\r\n=46rom x", 12);
	qp_is(in, 81, want);
}

static void
test_mime_qp_encode_empty_and_cap(void **state)
{
	struct buf b = BUF_INIT(16);

	(void)state;
	assert_int_equal(mime_qp_encode(&b, "", 0), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_adds(&b, "keep"), 0);
	/* Needs far more than the 12 bytes left: fails, "keep" stays. */
	assert_int_equal(mime_qp_encode(&b, "\xff\xff\xff\xff\xff\xff", 6), -1);
	assert_string_equal(buf_str(&b), "keep");
	assert_int_equal(b.len, 4);
	buf_free(&b);
}

/* Deterministic pseudo-random numbers (xorshift64). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

static void
test_mime_qp_encode_round_trip(void **state)
{
	static const char *const pieces[] = {
		"a", "b", "Z", " ", " ", "\t", "\n", "\r\n", "\r", "=", ".",
		"From ", "F", "\xc3\xa9", "\xe2\x80\x93", "\xf0\x9f\x8e\x89",
		"_", "?", "=_", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	struct buf in = BUF_INIT(1 << 16), enc = BUF_INIT(1 << 18);
	struct buf dec = BUF_INIT(1 << 16), want = BUF_INIT(1 << 16);
	const char *p;
	int iter, k, count;

	(void)state;
	for (iter = 0; iter < 2000; iter++) {
		buf_reset(&in);
		count = (int)(rng() % 80);
		for (k = 0; k < count; k++) {
			if (rng() % 8 == 0) {
				/* any byte, NUL included */
				assert_int_equal(buf_addc(&in,
				    (char)(rng() & 0xff)), 0);
				continue;
			}
			p = pieces[rng() % (sizeof pieces / sizeof *pieces)];
			assert_int_equal(buf_adds(&in, p), 0);
		}
		buf_reset(&enc);
		buf_reset(&dec);
		buf_reset(&want);
		assert_int_equal(mime_qp_encode(&enc, buf_str(&in), in.len), 0);
		check_qp_lines(buf_str(&enc), enc.len);
		qp_decode(&dec, buf_str(&enc), enc.len);
		crlf_normalise(&want, buf_str(&in), in.len);
		assert_int_equal(dec.len, want.len);
		assert_memory_equal(buf_str(&dec), buf_str(&want), want.len);
	}
	buf_free(&in);
	buf_free(&enc);
	buf_free(&dec);
	buf_free(&want);
}

/*
 * RFC 2047: unstructured text.
 */

static void
subject_is(const char *in, const char *want)
{
	struct buf b = BUF_INIT(1 << 16);
	struct herr err;

	herr_clear(&err);
	assert_int_equal(mime_encode_unstructured(&b, 9, in, &err), 0);
	assert_string_equal(buf_str(&b), want);
	buf_free(&b);
}

static void
test_mime_encode_unstructured_ascii(void **state)
{
	(void)state;
	subject_is("Hello, world: issue #3 (draft)", "Hello, world: issue #3 (draft)");
	subject_is("", "");
}

static void
test_mime_encode_unstructured_newsletter(void **state)
{
	(void)state;
	/* Only the word with the en dash is encoded; Python decodes it back
	 * to "What Works Centre e-newsletter no.16 – 28th March 2019". */
	subject_is("What Works Centre e-newsletter no.16 \xe2\x80\x93 28th March 2019",
	    "What Works Centre e-newsletter no.16 =?UTF-8?B?4oCT?= 28th March 2019");
	/* The run spans from the first to the last non-ASCII word, spaces
	 * inside it encoded ("Café and crème", Q shorter on a tie). */
	subject_is("Caf\xc3\xa9 and cr\xc3\xa8me",
	    "=?UTF-8?Q?Caf=C3=A9_and_cr=C3=A8me?=");
	subject_is("Hello Zo\xc3\xab M\xc3\xbcller, how are you",
	    "Hello =?UTF-8?B?Wm/DqyBNw7xsbGVyLA==?= how are you");
}

static void
test_mime_encode_unstructured_q_specials(void **state)
{
	(void)state;
	/* '?', '=' and '_' are escaped in Q, ':' and ',' need not be in
	 * text (RFC 2047 §4.2); checked with Python's email package. */
	subject_is("Caf\xc3\xa9: what is the price? x_y = 5 pounds, caf\xc3\xa9",
	    "=?UTF-8?Q?Caf=C3=A9:_what_is_the_price=3F_x=5Fy_=3D_5_pounds,_caf?= "
	    "=?UTF-8?Q?=C3=A9?=");
}

static void
test_mime_encode_unstructured_lookalike(void **state)
{
	(void)state;
	/* A typed "=?...?=" must not be decoded by the reader. */
	subject_is("Try =?utf-8?q?hi?= now",
	    "Try =?UTF-8?B?PT91dGYtOD9xP2hpPz0=?= now");
}

static void
test_mime_encode_unstructured_long(void **state)
{
	/* 200 characters of Greek, "Ελληνικά νέα από την ομάδα μας — "
	 * repeated; Python decodes the folded header back to it. */
	static const char subj[] =
	    "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac "
	    "\xce\xbd\xce\xad\xce\xb1 \xce\xb1\xcf\x80\xcf\x8c \xcf\x84\xce\xb7"
	    "\xce\xbd \xce\xbf\xce\xbc\xce\xac\xce\xb4\xce\xb1 \xce\xbc\xce\xb1"
	    "\xcf\x82 \xe2\x80\x94 ";
	static const char want[] =
	    "Subject: =?UTF-8?B?zpXOu867zrfOvc65zrrOrCDOvc6tzrEgzrHPgM+MIM+EzrfOvSDOv868?=\r\n"
	    " =?UTF-8?B?zqzOtM6xIM68zrHPgiDigJQgzpXOu867zrfOvc65zrrOrCDOvc6tzrEgzrE=?=\r\n"
	    " =?UTF-8?B?z4DPjCDPhM63zr0gzr/OvM6szrTOsSDOvM6xz4Ig4oCUIM6VzrvOu863zr0=?=\r\n"
	    " =?UTF-8?B?zrnOus6sIM69zq3OsSDOsc+Az4wgz4TOt869IM6/zrzOrM60zrEgzrzOsc+C?=\r\n"
	    " =?UTF-8?B?IOKAlCDOlc67zrvOt869zrnOus6sIM69zq3OsSDOsc+Az4wgz4TOt869IM6/?=\r\n"
	    " =?UTF-8?B?zrzOrM60zrEgzrzOsc+CIOKAlCDOlc67zrvOt869zrnOus6sIM69zq3OsSA=?=\r\n"
	    " =?UTF-8?B?zrHPgM+MIM+EzrfOvSDOv868zqzOtM6xIM68zrHPgiDigJQgzpXOu867zrc=?=\r\n"
	    " =?UTF-8?B?zr3Ouc66zqwgzr3Orc6xIM6xz4DPjCDPhM63zr0gzr/OvM6szrTOsSDOvM6x?=\r\n"
	    " =?UTF-8?B?z4Ig4oCUIM6Vzrs=?=\r\n";
	struct buf in = BUF_INIT(4096), v = BUF_INIT(4096), h = BUF_INIT(4096);
	struct buf dec = BUF_INIT(4096);
	struct herr err;
	char *flat;
	size_t chars = 0, i;

	(void)state;
	herr_clear(&err);
	while (in.len < 420)
		assert_int_equal(buf_adds(&in, subj), 0);
	/* Cut at 200 characters and drop the trailing space, as Python's
	 * s[:200].strip() did. */
	for (i = 0; i < in.len && chars < 200; i++)
		if (((unsigned char)in.data[i] & 0xc0) != 0x80)
			chars++;
	while (i < in.len && ((unsigned char)in.data[i] & 0xc0) == 0x80)
		i++;
	while (in.data[i - 1] == ' ')
		i--;
	in.len = i;
	in.data[i] = '\0';
	assert_int_equal(mime_encode_unstructured(&v, 9, buf_str(&in), &err), 0);
	assert_int_equal(mime_add_header(&h, "Subject", buf_str(&v), &err), 0);
	assert_string_equal(buf_str(&h), want);
	assert_true(check_lines(h.data, h.len, MIME_FOLD_WIDTH) == 9);
	/* Decodes back with the in-test RFC 2047 decoder, which also checks
	 * each word is at most 75 characters. */
	flat = unfold(buf_str(&h));
	flat[strlen(flat) - 2] = '\0';
	ew_decode_text(&dec, flat + strlen("Subject: "));
	assert_string_equal(buf_str(&dec), buf_str(&in));
	free(flat);
	buf_free(&in);
	buf_free(&v);
	buf_free(&h);
	buf_free(&dec);
}

static void
test_mime_encode_unstructured_round_trip(void **state)
{
	static const char *const subjects[] = {
		"\xf0\x9f\x8e\x89 party \xf0\x9f\x8e\x89",
		"plain start \xce\xb6\xce\xb6\xce\xb6 middle \xce\xb6 end words",
		"tab\there \xc3\xa9",
		"a_b=c?d Zo\xc3\xab_=?",
		"Ung\xc3\xbcltig? Nein. Sch\xc3\xb6n: ja, sch\xc3\xb6n und "
		    "sch\xc3\xb6ner und am sch\xc3\xb6nsten \xe2\x80\x94 "
		    "so lang, dass es mehrere W\xc3\xb6rter braucht, "
		    "bitte sehr \xe2\x80\x94 danke",
	};
	struct buf v = BUF_INIT(4096), h = BUF_INIT(4096), dec = BUF_INIT(4096);
	struct herr err;
	char *flat;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof subjects / sizeof *subjects; i++) {
		buf_reset(&v);
		buf_reset(&h);
		buf_reset(&dec);
		assert_int_equal(mime_encode_unstructured(&v, 9, subjects[i],
		    &err), 0);
		assert_int_equal(mime_add_header(&h, "Subject", buf_str(&v),
		    &err), 0);
		check_lines(h.data, h.len, MIME_FOLD_WIDTH);
		flat = unfold(buf_str(&h));
		flat[strlen(flat) - 2] = '\0';
		ew_decode_text(&dec, flat + 9);
		assert_string_equal(buf_str(&dec), subjects[i]);
		free(flat);
	}
	buf_free(&v);
	buf_free(&h);
	buf_free(&dec);
}

static void
test_mime_encode_unstructured_invalid(void **state)
{
	static const char *const bad[] = {
		"Eve\r\nBcc: victim@example.com",
		"line\nbreak",
		"bare\rCR",
		"esc \x1b[31m",
		"del \x7f",
		"C1 \xc2\x85 next line",
		"overlong \xc0\xaf",
		"overlong \xe0\x80\xaf",
		"overlong \xf0\x80\x80\xaf",
		"surrogate \xed\xa0\x80",
		"too big \xf4\x90\x80\x80",
		"bad lead \xf8\x88\x80\x80\x80",
		"stray \x80",
		"truncated \xe2\x80",
	};
	struct buf b = BUF_INIT(1024);
	struct herr err;
	size_t i;

	(void)state;
	assert_int_equal(buf_adds(&b, "Subject: "), 0);
	for (i = 0; i < sizeof bad / sizeof *bad; i++) {
		herr_clear(&err);
		assert_int_equal(mime_encode_unstructured(&b, 9, bad[i], &err),
		    -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(buf_str(&b), "Subject: ");
	}
	/* The largest and smallest valid code points of each length pass. */
	assert_int_equal(mime_encode_unstructured(&b, 9,
	    "\xc2\xa0\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
	    "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", &err), 0);
	buf_free(&b);
}

/*
 * Mailboxes.
 */

static void
mailbox_is(const char *name, const char *addr, const char *want)
{
	struct buf b = BUF_INIT(4096);
	struct herr err;

	herr_clear(&err);
	assert_int_equal(mime_format_mailbox(&b, name, addr, &err), 0);
	assert_string_equal(buf_str(&b), want);
	buf_free(&b);
}

static void
test_mime_format_mailbox_vectors(void **state)
{
	(void)state;
	/* Each decodes with Python's headerregistry to the name given. */
	mailbox_is("Zo\xc3\xab M\xc3\xbcller", "zoe@example.com",
	    "=?UTF-8?B?Wm/DqyBNw7xsbGVy?= <zoe@example.com>");
	mailbox_is("Se\xc3\xa1n O'Brien", "s@example.com",
	    "=?UTF-8?Q?Se=C3=A1n_O=27Brien?= <s@example.com>");
	mailbox_is("Jos\xc3\xa9 Maria Alvarez y Gonzalez", "a@example.com",
	    "=?UTF-8?Q?Jos=C3=A9_Maria_Alvarez_y_Gonzalez?= <a@example.com>");
	/* Phrase rules (RFC 2047 §5 (3)): '_', '=', '?' and '(' escaped. */
	mailbox_is("Zo\xc3\xab_Smith=Jones? and friends", "a@e.com",
	    "=?UTF-8?Q?Zo=C3=AB=5FSmith=3DJones=3F_and_friends?= <a@e.com>");
	/* ' is atext: bare; ',' and '.' are not: quoted. */
	mailbox_is("O'Brien", "ob@example.com", "O'Brien <ob@example.com>");
	mailbox_is("Jones, Alex", "alex@example.com",
	    "\"Jones, Alex\" <alex@example.com>");
	mailbox_is("Dr. Who", "who@example.com", "\"Dr. Who\" <who@example.com>");
	mailbox_is("a \"b\" \\c", "a@example.com",
	    "\"a \\\"b\\\" \\\\c\" <a@example.com>");
	/* Could be read as an encoded-word: encoded itself. */
	mailbox_is("=?utf-8?q?evil?=", "a@example.com",
	    "=?UTF-8?B?PT91dGYtOD9xP2V2aWw/PQ==?= <a@example.com>");
	/* No name, an empty or blank one, and trimming. */
	mailbox_is(NULL, "a@example.com", "a@example.com");
	mailbox_is("", "a@example.com", "a@example.com");
	mailbox_is(" \t ", "a@example.com", "a@example.com");
	mailbox_is("  Ann Lee ", "ann@example.com", "Ann Lee <ann@example.com>");
}

static void
test_mime_format_mailbox_refused(void **state)
{
	static const char *const names[] = {
		"Eve\r\nBcc: victim@example.com", "Eve\nBcc: x@y", "Eve\r",
		"nul\x01", "bad \xc3", "C1 \xc2\x9f",
	};
	static const char *const addrs[] = {
		"", "no-at-sign", "a b@example.com", "a@example.com>",
		"<a@example.com", "z\xc3\xb6" "e@example.com",
		"a@example.com\r\nBcc: victim@example.com",
	};
	struct buf b = BUF_INIT(1024);
	struct herr err;
	size_t i;

	(void)state;
	assert_int_equal(buf_adds(&b, "To: "), 0);
	for (i = 0; i < sizeof names / sizeof *names; i++) {
		herr_clear(&err);
		assert_int_equal(mime_format_mailbox(&b, names[i],
		    "a@example.com", &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(buf_str(&b), "To: ");
	}
	for (i = 0; i < sizeof addrs / sizeof *addrs; i++) {
		herr_clear(&err);
		assert_int_equal(mime_format_mailbox(&b, "Ann", addrs[i], &err),
		    -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(buf_str(&b), "To: ");
	}
	assert_int_equal(mime_format_mailbox(&b, "Ann", NULL, &err), -1);
	buf_free(&b);
}

static void
test_mime_format_mailbox_long_name(void **state)
{
	struct buf v = BUF_INIT(8192), h = BUF_INIT(8192);
	struct buf name = BUF_INIT(1024), dec = BUF_INIT(1024);
	struct herr err;
	char *flat, *lt;
	int i;

	(void)state;
	for (i = 0; i < 80; i++)
		assert_int_equal(buf_adds(&name, "\xce\xa9"), 0); /* Ω */
	assert_int_equal(mime_format_mailbox(&v, buf_str(&name),
	    "omega@example.com", &err), 0);
	assert_int_equal(mime_add_header(&h, "To", buf_str(&v), &err), 0);
	/* Several words, each line within 78, split between characters:
	 * the words decode and join back to the name (RFC 2047 §6.2). */
	assert_true(check_lines(h.data, h.len, MIME_FOLD_WIDTH) >= 3);
	flat = unfold(buf_str(&h));
	lt = strstr(flat, " <omega@example.com>\r\n");
	assert_non_null(lt);
	*lt = '\0';
	ew_decode_text(&dec, flat + 4);
	assert_string_equal(buf_str(&dec), buf_str(&name));
	free(flat);
	buf_free(&v);
	buf_free(&h);
	buf_free(&name);
	buf_free(&dec);
}

/*
 * Header fields and folding.
 */

static void
test_mime_add_header_short(void **state)
{
	struct buf b = BUF_INIT(1024);
	struct herr err;

	(void)state;
	assert_int_equal(mime_add_header(&b, "List-Id",
	    "Example news <news.example.org>", &err), 0);
	assert_string_equal(buf_str(&b),
	    "List-Id: Example news <news.example.org>\r\n");
	buf_free(&b);
}

static void
test_mime_add_header_fold_long(void **state)
{
	struct buf v = BUF_INIT(1024), b = BUF_INIT(2048);
	struct herr err;
	char *flat;
	int i;

	(void)state;
	/* 300 characters: URLs separated by ", " (RFC 2369 list). */
	for (i = 0; v.len < 300; i++)
		assert_int_equal(buf_addf(&v, "%s<https://example.org/u/%02d"
		    "abcdefghijklmnopqrstuvwxyz>", i ? ", " : "", i), 0);
	v.len = 300;
	v.data[300] = '\0';
	assert_int_equal(mime_add_header(&b, "List-Unsubscribe", buf_str(&v),
	    &err), 0);
	assert_true(check_lines(b.data, b.len, MIME_FOLD_WIDTH) > 3);
	/* Folds only before whitespace that was there: unfolding gives the
	 * field back. */
	flat = unfold(buf_str(&b));
	assert_int_equal(strncmp(flat, "List-Unsubscribe: ", 18), 0);
	assert_int_equal(strncmp(flat + 18, buf_str(&v), 300), 0);
	assert_string_equal(flat + 318, "\r\n");
	free(flat);
	/* The first fold is after the first URL's comma. */
	assert_non_null(strstr(buf_str(&b), "abcdefghijklmnopqrstuvwxyz>,\r\n <"));
	buf_free(&v);
	buf_free(&b);
}

static void
test_mime_add_header_unfoldable(void **state)
{
	char value[1201];
	struct buf b = BUF_INIT(4096);
	struct herr err;

	(void)state;
	memset(value, 'u', 1200);
	value[1200] = '\0';
	assert_int_equal(buf_adds(&b, "X: y\r\n"), 0);
	herr_clear(&err);
	assert_int_equal(mime_add_header(&b, "X-Long", value, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "header 'X-Long'");
	assert_string_equal(buf_str(&b), "X: y\r\n");
	/* Exactly 998 octets on the line is still allowed, 999 not. */
	value[998 - 8] = '\0';
	assert_int_equal(mime_add_header(&b, "X-Long", value, &err), 0);
	assert_int_equal(b.len, 6 + 998 + 2);
	value[998 - 8] = 'u';
	value[999 - 8] = '\0';
	assert_int_equal(mime_add_header(&b, "X-Long", value, &err), -1);
	/* A long word after a short one goes on its own line. */
	buf_reset(&b);
	value[900] = '\0';
	memcpy(value, "a ", 2);
	assert_int_equal(mime_add_header(&b, "X-Long", value, &err), 0);
	assert_int_equal(strncmp(buf_str(&b), "X-Long: a\r\n uuu", 15), 0);
	check_lines(b.data, b.len, MIME_LINE_MAX);
	buf_free(&b);
}

static void
test_mime_add_header_injection(void **state)
{
	static const char *const values[] = {
		"Eve\r\nBcc: victim@example.com", "a\nb", "a\rb", "a\x01",
		"a\x7f", "caf\xc3\xa9", "x\r\n y",
	};
	static const char *const names[] = {
		"", "Bad:Name", "Bad Name", "Bad\r\nName", "Sub\xc3\xa9ject",
	};
	struct buf b = BUF_INIT(1024);
	struct herr err;
	size_t i;

	(void)state;
	assert_int_equal(buf_adds(&b, "Keep: me\r\n"), 0);
	for (i = 0; i < sizeof values / sizeof *values; i++) {
		herr_clear(&err);
		assert_int_equal(mime_add_header(&b, "Subject", values[i], &err),
		    -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(err.where, "header 'Subject'");
		assert_string_equal(buf_str(&b), "Keep: me\r\n");
	}
	for (i = 0; i < sizeof names / sizeof *names; i++) {
		herr_clear(&err);
		assert_int_equal(mime_add_header(&b, names[i], "v", &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(buf_str(&b), "Keep: me\r\n");
	}
	/* TAB is allowed. */
	assert_int_equal(mime_add_header(&b, "X-Tab", "a\tb", &err), 0);
	buf_free(&b);
}

/*
 * Dates.
 */

static void
test_mime_format_date_vectors(void **state)
{
	char d[32];

	(void)state;
	/* Python: email.utils.format_datetime(datetime.fromtimestamp(t,
	 * timezone.utc)) with "+0000". */
	mime_format_date(1553763900, d);
	assert_string_equal(d, "Thu, 28 Mar 2019 09:05:00 +0000");
	mime_format_date(0, d);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	mime_format_date(951782400 + 86399, d);
	assert_string_equal(d, "Tue, 29 Feb 2000 23:59:59 +0000");
	mime_format_date(4102444800, d);
	assert_string_equal(d, "Fri, 01 Jan 2100 00:00:00 +0000");
}

/*
 * Whole messages.
 */

static const char msg_text[] =
    "Hello Zo\xc3\xab \xe2\x80\x93 \xe2\x80\x9cquoted\xe2\x80\x9d\n"
    ".leading dot\nFrom here\ntrailing space \n"
    "a long line a long line a long line a long line a long line a long "
    "line a long line a long line\n= equals =\nno newline at end";
static const char msg_html[] =
    "<!doctype html>\n<html><body><p>Zo\xc3\xab \xe2\x80\x93 "
    "\xe2\x80\x9cquoted\xe2\x80\x9d</p>\r\n<p>--=_herald_ not a boundary"
    "</p></body></html>\n";

static void
fill_message(struct mime_message *m, const struct mime_field *extra,
    size_t n_extra)
{
	memset(m, 0, sizeof *m);
	m->from_name = "Herald Newsletter \xe2\x80\x93 Zo\xc3\xab";
	m->from_addr = "news@example.org";
	m->to_name = "Se\xc3\xa1n O'Brien, Jr.";
	m->to_addr = "sean@example.com";
	m->reply_to_name = "Editors";
	m->reply_to_addr = "editors@example.org";
	m->subject = "What Works Centre e-newsletter no.16 \xe2\x80\x93 "
	    "28th March 2019";
	m->date = 1553763900;
	m->message_id = "abc.123@news.example.org";
	m->extra = extra;
	m->n_extra = n_extra;
	m->text = msg_text;
	m->text_len = sizeof msg_text - 1;
	m->html = msg_html;
	m->html_len = sizeof msg_html - 1;
}

/* Decode the part body that follows `headers` up to the next delimiter
 * and compare it with `want` (line ends normalised). */
static void
check_part(const char *msg, const char *headers, const char *delim,
    const char *want, size_t want_len)
{
	struct buf dec = BUF_INIT(1 << 16), norm = BUF_INIT(1 << 16);
	const char *body, *end;

	body = strstr(msg, headers);
	assert_non_null(body);
	body += strlen(headers);
	end = strstr(body, delim);
	assert_non_null(end);
	qp_decode(&dec, body, (size_t)(end - body));
	crlf_normalise(&norm, want, want_len);
	assert_int_equal(dec.len, norm.len);
	assert_memory_equal(buf_str(&dec), buf_str(&norm), norm.len);
	buf_free(&dec);
	buf_free(&norm);
}

static size_t
count(const char *s, const char *needle)
{
	size_t n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s++;
	}
	return n;
}

static void
test_mime_write_alternative_structure(void **state)
{
	/* Header lines as Python's email package parsed them without
	 * defects; the boundary is FNV-1a 64 of the Message-ID, computed in
	 * Python. */
	static const char want_head[] =
	    "Date: Thu, 28 Mar 2019 09:05:00 +0000\r\n"
	    "From: =?UTF-8?Q?Herald_Newsletter_=E2=80=93_Zo=C3=AB?= <news@example.org>\r\n"
	    "To: =?UTF-8?B?U2XDoW4gTydCcmllbiwgSnIu?= <sean@example.com>\r\n"
	    "Reply-To: Editors <editors@example.org>\r\n"
	    "Subject: What Works Centre e-newsletter no.16 =?UTF-8?B?4oCT?= 28th March 2019\r\n"
	    "Message-ID: <abc.123@news.example.org>\r\n"
	    "List-Id: Example news <news.example.org>\r\n"
	    "List-Unsubscribe: <https://example.org/u/abcdefghijklmnopqrstuvwxyz0123456789>,\r\n"
	    " <mailto:unsub+abcdefghijklmnopqrstuvwxyz@example.org?subject=unsubscribe>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=\"=_herald_95fca7a680ef06bc\"\r\n"
	    "\r\n"
	    "--=_herald_95fca7a680ef06bc\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n";
	static const struct mime_field extra[] = {
		{ "List-Id", "Example news <news.example.org>" },
		{ "List-Unsubscribe", "<https://example.org/u/"
		    "abcdefghijklmnopqrstuvwxyz0123456789>, <mailto:unsub+"
		    "abcdefghijklmnopqrstuvwxyz@example.org?subject=unsubscribe>" },
	};
	const char *delim = "\r\n--=_herald_95fca7a680ef06bc";
	struct mime_message m;
	struct buf b = BUF_INIT(1 << 20), again = BUF_INIT(1 << 20);
	struct herr err;
	const char *s, *text, *html, *close;

	(void)state;
	fill_message(&m, extra, 2);
	herr_clear(&err);
	assert_int_equal(buf_adds(&b, "Return-Path: <x@y>\r\n"), 0);
	assert_int_equal(mime_write_alternative(&b, &m, &err), 0);
	s = buf_str(&b) + 20;
	check_lines(s, strlen(s), MIME_LINE_MAX);
	assert_int_equal(strncmp(s, want_head, sizeof want_head - 1), 0);
	/* Parts in order: text, html, then the close delimiter at the end. */
	text = strstr(s, "Content-Type: text/plain");
	html = strstr(s, "\r\n--=_herald_95fca7a680ef06bc\r\n"
	    "Content-Type: text/html; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	close = strstr(s, "\r\n--=_herald_95fca7a680ef06bc--\r\n");
	assert_true(text && html && close && text < html && html < close);
	assert_string_equal(close, "\r\n--=_herald_95fca7a680ef06bc--\r\n");
	check_part(s, "quoted-printable\r\n\r\n", delim, msg_text,
	    sizeof msg_text - 1);
	check_part(html, "quoted-printable\r\n\r\n", delim, msg_html,
	    sizeof msg_html - 1);
	/* The boundary appears only in Content-Type and the three delimiter
	 * lines, never in a body (invariant (4)). */
	assert_int_equal(count(s, "=_herald_95fca7a680ef06bc"), 4);
	assert_non_null(strstr(s, "--=3D_herald_ not a boundary"));
	/* Same input, same bytes. */
	assert_int_equal(mime_write_alternative(&again, &m, &err), 0);
	assert_string_equal(buf_str(&again), s);
	buf_free(&b);
	buf_free(&again);
}

static void
test_mime_write_alternative_no_reply_to(void **state)
{
	struct mime_message m;
	struct buf b = BUF_INIT(1 << 20);
	struct herr err;

	(void)state;
	fill_message(&m, NULL, 0);
	m.reply_to_addr = NULL;
	m.to_name = NULL;
	m.text_len = 0;
	assert_int_equal(mime_write_alternative(&b, &m, &err), 0);
	assert_null(strstr(buf_str(&b), "Reply-To:"));
	assert_non_null(strstr(buf_str(&b), "\r\nTo: sean@example.com\r\n"
	    "Subject: "));
	/* An empty text part: its headers, a blank line, the delimiter. */
	assert_non_null(strstr(buf_str(&b), "quoted-printable\r\n\r\n\r\n"
	    "--=_herald_"));
	check_lines(b.data, b.len, MIME_LINE_MAX);
	buf_free(&b);
}

static void
write_refused(struct mime_message *m, const char *where)
{
	struct buf b = BUF_INIT(1 << 20);
	struct herr err;

	assert_int_equal(buf_adds(&b, "Keep\r\n"), 0);
	herr_clear(&err);
	assert_int_equal(mime_write_alternative(&b, m, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, where);
	assert_string_equal(buf_str(&b), "Keep\r\n");
	buf_free(&b);
}

static void
test_mime_write_alternative_refused(void **state)
{
	static const struct mime_field bad_extra[] = {
		{ "List-Id", "ok <x.example.org>" },
		{ "List-Unsubscribe", "<https://x>\r\nBcc: victim@example.com" },
	};
	struct mime_message m;

	(void)state;
	fill_message(&m, NULL, 0);
	m.subject = "Eve\r\nBcc: victim@example.com";
	write_refused(&m, "header 'Subject'");
	fill_message(&m, NULL, 0);
	m.to_name = "Eve\r\nBcc: victim@example.com";
	write_refused(&m, "header 'To'");
	fill_message(&m, NULL, 0);
	m.from_name = "Bad \xed\xa0\x80";
	write_refused(&m, "header 'From'");
	fill_message(&m, NULL, 0);
	m.reply_to_addr = "no-at-sign";
	write_refused(&m, "header 'Reply-To'");
	fill_message(&m, bad_extra, 2);
	write_refused(&m, "header 'List-Unsubscribe'");
	fill_message(&m, NULL, 0);
	m.message_id = "a b@example.org";
	write_refused(&m, "header 'Message-ID'");
	m.message_id = "<a@example.org>";
	write_refused(&m, "header 'Message-ID'");
	m.message_id = "no-at-sign";
	write_refused(&m, "header 'Message-ID'");
	m.message_id = NULL;
	write_refused(&m, "header 'Message-ID'");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mime_qp_encode_soft_break_at_76),
		cmocka_unit_test(test_mime_qp_encode_no_split_escape),
		cmocka_unit_test(test_mime_qp_encode_equals),
		cmocka_unit_test(test_mime_qp_encode_trailing_whitespace),
		cmocka_unit_test(test_mime_qp_encode_utf8),
		cmocka_unit_test(test_mime_qp_encode_line_ends),
		cmocka_unit_test(test_mime_qp_encode_dot_and_from),
		cmocka_unit_test(test_mime_qp_encode_empty_and_cap),
		cmocka_unit_test(test_mime_qp_encode_round_trip),
		cmocka_unit_test(test_mime_encode_unstructured_ascii),
		cmocka_unit_test(test_mime_encode_unstructured_newsletter),
		cmocka_unit_test(test_mime_encode_unstructured_q_specials),
		cmocka_unit_test(test_mime_encode_unstructured_lookalike),
		cmocka_unit_test(test_mime_encode_unstructured_long),
		cmocka_unit_test(test_mime_encode_unstructured_round_trip),
		cmocka_unit_test(test_mime_encode_unstructured_invalid),
		cmocka_unit_test(test_mime_format_mailbox_vectors),
		cmocka_unit_test(test_mime_format_mailbox_refused),
		cmocka_unit_test(test_mime_format_mailbox_long_name),
		cmocka_unit_test(test_mime_add_header_short),
		cmocka_unit_test(test_mime_add_header_fold_long),
		cmocka_unit_test(test_mime_add_header_unfoldable),
		cmocka_unit_test(test_mime_add_header_injection),
		cmocka_unit_test(test_mime_format_date_vectors),
		cmocka_unit_test(test_mime_write_alternative_structure),
		cmocka_unit_test(test_mime_write_alternative_no_reply_to),
		cmocka_unit_test(test_mime_write_alternative_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
