/*
 * dkim.c - DKIM signatures on outgoing mail (see dkim.h).
 *
 * Owns the signer (at most one RSA and one Ed25519 key, loaded once and then
 * shared read-only by the build threads), relaxed/relaxed canonicalization,
 * the DKIM-Signature header field, key generation and the DNS record.
 * Called by message.c for every message, by cmd/dkim.c and cmd/config.c.
 *
 * RFCs:
 *   RFC 6376  DKIM: §3.4.2 relaxed header and §3.4.4 relaxed body
 *             canonicalization, §3.5 the tags, §3.7 what is hashed, §5.4.2
 *             repeated fields signed from the bottom up, §8.15 over-signing.
 *             Only relaxed/relaxed is written; l= is never used.
 *   RFC 8301  RSA keys under 1024 bits are refused, 2048 recommended.
 *   RFC 8463  Ed25519-SHA256: PureEdDSA over the SHA-256 of the data (§3);
 *             the DNS key is the raw 32-byte public key (§4.2).
 *   RFC 7489  §3.1.1 relaxed alignment, answered by dmarc.c.
 *
 * Invariants:
 *   (1) What is hashed for the DKIM-Signature field is the relaxed canonical
 *       form of the exact bytes written into the message, up to and
 *       including "b=".  Whatever the folding, a verifier that empties the
 *       b= value (§3.7) hashes the same bytes.
 *   (2) Body and headers are canonicalized straight into SHA-256 without a
 *       copy: the canonicalizers emit spans of the input (and the odd " " or
 *       CRLF) to a sink.  dkim_canon_body_relaxed() and
 *       dkim_canon_header_relaxed() run the same code into a buffer, so the
 *       tests of those functions test what is hashed.
 *   (3) The signer is immutable after dkim_signer_add_key(); dkim_sign()
 *       keeps all per-message state on its own stack or in its own OpenSSL
 *       contexts, so build threads sign concurrently without locks.
 *   (4) Each header name herald signs is listed in h= once more than it
 *       occurs ("over-signing"): a field added after signing, above or
 *       below, is picked up by the verifier and breaks the signature.
 */
#include "herald/dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/dmarc.h"

#define DKIM_LINE    78   /* RFC 5322 §2.1.1: lines SHOULD NOT exceed 78 */
#define FIELDS_MAX   128  /* header fields of one message */
#define HNAMES_MAX   128  /* names in one h= */
#define OUT_MAX      8192 /* both DKIM-Signature fields together */
#define TAGS_MAX     2048 /* dkim_sign()'s tag list, before bh= */
#define SIG_MAX      1024 /* signature bytes: RSA-8192 */
#define RSA_BITS_MAX 8192
#define KEYGEN_BITS_MAX 4096 /* larger keys do not fit DNS comfortably */

/* The fields herald signs, in h= order (dkim.h). */
static const char *const signed_names[] = {
	"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
	"reply-to", "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id",
	"auto-submitted",
};

struct dkim_key {
	EVP_PKEY *pkey;     /* NULL: no key of this algorithm */
	char domain[256];   /* d=, validated LDH */
	char selector[256]; /* s=, validated LDH */
};

struct dkim_signer {
	EVP_MD *sha256;      /* fetched once, not per message (OpenSSL 3 fetches are costly) */
	struct dkim_key key[2]; /* indexed by enum dkim_alg: RSA first */
	long expiry;         /* x= is t= plus this; 0: no x= */
};

/* Where canonical bytes go: a SHA-256 context or a buffer (invariant 2). */
struct sink {
	int  (*add)(void *arg, const char *p, size_t n);
	void  *arg;
};

/* A bounded writer on caller storage that folds lines (dkim_sign's fields
 * are built on the stack: no allocation per message). */
struct fold {
	char  *p;
	size_t len;
	size_t cap;
	size_t col;  /* octets on the current line */
	int    full; /* an append did not fit */
};

struct field {
	const char *p;   /* "Name: value", folded, without its CRLF */
	size_t      len;
	size_t      nlen; /* name length, WSP before the colon trimmed */
};

struct msgview {
	struct field f[FIELDS_MAX];
	size_t       n;
	const char  *body;
	size_t       body_len;
};

struct hname {
	const char *p;
	size_t      len;
};

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static const char *
alg_name(enum dkim_alg alg)
{
	return alg == DKIM_RSA_SHA256 ? "RSA" : "Ed25519";
}

static int
sink_md(void *arg, const char *p, size_t n)
{
	return EVP_DigestUpdate(arg, p, n) == 1 ? 0 : -1;
}

static int
sink_buf(void *arg, const char *p, size_t n)
{
	return buf_add(arg, p, n);
}

static int
emit(const struct sink *sk, const char *p, size_t n)
{
	return n ? sk->add(sk->arg, p, n) : 0;
}

/* Record an OpenSSL failure with the library's reason, and leave this
 * thread's error queue empty for the next message. */
static int
crypto_err(struct herr *err, int code, const char *where, const char *what)
{
	char reason[160];
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, reason, sizeof reason);
	ERR_clear_error();
	return herr_set(err, code, where, "%s%s%s", what, e ? ": " : "", e ? reason : "");
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define LOWS  0x7f7f7f7f7f7f7f7fULL

/* High bit of each byte of v that is zero, exactly (no borrow between
 * bytes, unlike the shorter haszero() trick). */
static uint64_t
zero_bytes(uint64_t v)
{
	return ~(((v & LOWS) + LOWS) | v | LOWS);
}

/*
 * How many of the 8 bytes at p (9 must be readable) canonicalization keeps
 * as they are, with no look at them one by one: the count up to the first
 * TAB, or SP followed by a byte below 0x21 (SP, TAB, CR, ...).  Only those
 * can start a change (a WSP run to squeeze or a line's trailing WSP to
 * drop); quoted-printable has a SP every few bytes, so looking for SP alone
 * would stop all the time.  Byte order matters for the count; elsewhere
 * than on little-endian machines it goes byte by byte.
 */
static size_t
quiet_bytes(const char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	uint64_t x, y, lt, hit;

	memcpy(&x, p, 8);
	memcpy(&y, p + 1, 8);         /* each byte's successor */
	lt = ~(((y & LOWS) + (0x80 - 0x21) * ONES) | y) & HIGHS; /* successor < 0x21 */
	hit = zero_bytes(x ^ (0x09 * ONES)) | (zero_bytes(x ^ (0x20 * ONES)) & lt);
	return hit ? (size_t)__builtin_ctzll(hit) / 8 : 8;
#else
	size_t i;

	for (i = 0; i < 8; i++)
		if (p[i] == '\t' || (p[i] == ' ' && (unsigned char)p[i + 1] < 0x21))
			break;
	return i;
#endif
}

/*
 * Relaxed body canonicalization (§3.4.4) into `sk`.  The end of the
 * canonical body is found first, walking back over blanks and CRLFs, so that
 * trailing empty (or all-blank) lines are never emitted and need no
 * look-ahead.  Then one pass forward, 8 bytes at a step (quiet_bytes()), emits
 * runs of unchanged input: a single SP inside a line is kept as it is, which
 * is all a quoted-printable body ever has, so such a body goes to the hash
 * in one piece plus the final CRLF.
 * A final line without CRLF is a line like the others: its trailing WSP goes
 * too, then CRLF is added.  (python3-dkim keeps one SP there; mime.c never
 * writes a body without a final CRLF.)  An empty body stays empty: unlike
 * simple (§3.4.3), relaxed adds a CRLF only to a non-empty body (§3.4.4).
 */
static int
canon_body(const char *b, size_t len, const struct sink *sk)
{
	size_t e = len, i, j, k, span;
	int line_end;

	for (;;) {
		while (e > 0 && is_wsp(b[e - 1]))
			e--;
		if (e >= 2 && b[e - 2] == '\r' && b[e - 1] == '\n')
			e -= 2;
		else
			break;
	}
	if (e == 0)
		return 0;
	span = i = 0;
	while (i < e) {
		if (i + 9 <= e && (k = quiet_bytes(b + i)) > 0) {
			i += k;
			continue;
		}
		if (!is_wsp(b[i])) {
			i++;
			continue;
		}
		for (j = i + 1; j < e && is_wsp(b[j]); j++)
			;
		line_end = j == e || (b[j] == '\r' && j + 1 < len && b[j + 1] == '\n');
		if (!line_end && j - i == 1 && b[i] == ' ') {
			i = j;
			continue;
		}
		if (emit(sk, b + span, i - span) < 0 || (!line_end && emit(sk, " ", 1) < 0))
			return -1;
		span = i = j;
	}
	if (emit(sk, b + span, e - span) < 0 || emit(sk, "\r\n", 2) < 0)
		return -1;
	return 0;
}

/* Length of the folding white space (WSP and CRLF pairs) at f[i]; *wsp says
 * whether it holds any WSP (a bare CRLF unfolds to nothing). */
static size_t
fws_span(const char *f, size_t i, size_t end, int *wsp)
{
	size_t j = i;

	*wsp = 0;
	for (;;) {
		if (j < end && is_wsp(f[j])) {
			*wsp = 1;
			j++;
		} else if (j + 1 < end && f[j] == '\r' && f[j + 1] == '\n')
			j += 2;
		else
			return j - i;
	}
}

/*
 * Relaxed header canonicalization (§3.4.2) of one field into `sk`: name in
 * lower case, no WSP around the colon, value unfolded, WSP runs as one SP,
 * none at either end; then CRLF when `crlf` (not for the DKIM-Signature
 * field itself, §3.7).
 */
static int
canon_header(const char *f, size_t len, int crlf, const struct sink *sk)
{
	const char *colon = memchr(f, ':', len);
	char low[64];
	size_t nlen, i, k, c, end, span;
	int wsp;

	if (!colon || colon == f) {
		errno = EINVAL;
		return -1;
	}
	nlen = (size_t)(colon - f);
	while (nlen > 0 && is_wsp(f[nlen - 1]))
		nlen--;
	for (i = 0; i < nlen; i += c) {
		c = nlen - i < sizeof low ? nlen - i : sizeof low;
		for (k = 0; k < c; k++)
			low[k] = (f[i + k] >= 'A' && f[i + k] <= 'Z') ? (char)(f[i + k] + 32) : f[i + k];
		if (emit(sk, low, c) < 0)
			return -1;
	}
	if (emit(sk, ":", 1) < 0)
		return -1;
	i = (size_t)(colon - f) + 1;
	end = len;
	for (;;) {
		if (end > i && is_wsp(f[end - 1]))
			end--;
		else if (end >= i + 2 && f[end - 2] == '\r' && f[end - 1] == '\n')
			end -= 2;
		else
			break;
	}
	i += fws_span(f, i, end, &wsp);
	span = i;
	while (i < end) {
		if ((unsigned char)f[i] > ' ') {
			i++;
			continue;
		}
		k = fws_span(f, i, end, &wsp);
		if (k == 0 || (k == 1 && f[i] == ' ')) {
			i++; /* a control character, or a lone SP: kept as it is */
			continue;
		}
		if (emit(sk, f + span, i - span) < 0 || (wsp && emit(sk, " ", 1) < 0))
			return -1;
		span = i = i + k;
	}
	if (emit(sk, f + span, end - span) < 0 || (crlf && emit(sk, "\r\n", 2) < 0))
		return -1;
	return 0;
}

int
dkim_canon_body_relaxed(const char *body, size_t len, struct buf *out)
{
	struct sink sk = { sink_buf, out };

	return canon_body(body, len, &sk);
}

int
dkim_canon_header_relaxed(const char *field, size_t len, struct buf *out)
{
	struct sink sk = { sink_buf, out };

	return canon_header(field, len, 1, &sk);
}

/* The first CRLF in p[0..n), or NULL.  (memmem is a GNU extension.) */
static const char *
find_crlf(const char *p, size_t n)
{
	const char *cr, *end = p + n;

	while ((cr = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (cr + 1 < end && cr[1] == '\n')
			return cr;
		p = cr + 1;
	}
	return NULL;
}

/* The first CRLF CRLF in p[0..n), or NULL. */
static const char *
find_blank_line(const char *p, size_t n)
{
	const char *c, *end = p + n;

	while ((c = find_crlf(p, (size_t)(end - p))) != NULL) {
		if (end - c >= 4 && c[2] == '\r' && c[3] == '\n')
			return c;
		p = c + 2;
	}
	return NULL;
}

/*
 * Split `msg` into header fields and body.  The header block ends at the
 * first empty line; a message without one is all header (RFC 5322 allows
 * that) with an empty body.
 */
static int
parse_message(const char *msg, size_t len, struct msgview *v, struct herr *err)
{
	const char *sep, *nl, *colon;
	size_t pos = 0, hend, start, next;

	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n') {
		hend = 0;
		v->body = msg + 2;
	} else if ((sep = find_blank_line(msg, len)) != NULL) {
		hend = (size_t)(sep - msg) + 2;
		v->body = sep + 4;
	} else {
		hend = len;
		v->body = msg + len;
	}
	v->body_len = len - (size_t)(v->body - msg);
	v->n = 0;
	while (pos < hend) {
		if (is_wsp(msg[pos]))
			return herr_set(err, EX_SOFTWARE, NULL,
			                "message header starts with a continuation line");
		start = pos;
		for (;;) { /* to the CRLF not followed by WSP */
			nl = find_crlf(msg + pos, hend - pos);
			if (!nl) {
				pos = next = hend;
				break;
			}
			pos = (size_t)(nl - msg);
			next = pos + 2;
			if (next < hend && is_wsp(msg[next])) {
				pos = next;
				continue;
			}
			break;
		}
		if (v->n == FIELDS_MAX)
			return herr_set(err, EX_SOFTWARE, NULL, "message has more than %d header fields",
			                FIELDS_MAX);
		colon = memchr(msg + start, ':', pos - start);
		if (!colon || colon == msg + start)
			return herr_set(err, EX_SOFTWARE, NULL, "message has a header field without a name");
		v->f[v->n].p = msg + start;
		v->f[v->n].len = pos - start;
		v->f[v->n].nlen = (size_t)(colon - (msg + start));
		while (v->f[v->n].nlen > 0 && is_wsp(msg[start + v->f[v->n].nlen - 1]))
			v->f[v->n].nlen--;
		v->n++;
		pos = next;
	}
	return 0;
}

static int
field_is(const struct field *f, const char *name, size_t len)
{
	return f->nlen == len && strncasecmp(f->p, name, len) == 0;
}

/* Hash the fields named in h=, in h= order; for a repeated name the last
 * unused instance first (§5.4.2).  A name with no instance left adds
 * nothing (that is what over-signing relies on). */
static int
hash_headers(const struct msgview *v, const struct hname *h, size_t nh, EVP_MD_CTX *md)
{
	unsigned char used[FIELDS_MAX];
	struct sink sk = { sink_md, md };
	size_t k, i;

	memset(used, 0, sizeof used);
	for (k = 0; k < nh; k++)
		for (i = v->n; i-- > 0;)
			if (!used[i] && field_is(&v->f[i], h[k].p, h[k].len)) {
				used[i] = 1;
				if (canon_header(v->f[i].p, v->f[i].len, 1, &sk) < 0)
					return -1;
				break;
			}
	return 0;
}

static int
body_hash(const struct dkim_signer *s, EVP_MD_CTX *md, const struct msgview *v,
          char bh[45])
{
	struct sink sk = { sink_md, md };
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;

	if (EVP_DigestInit_ex2(md, s->sha256, NULL) != 1 ||
	    canon_body(v->body, v->body_len, &sk) < 0 || EVP_DigestFinal_ex(md, d, &dl) != 1 ||
	    dl != 32)
		return -1;
	EVP_EncodeBlock((unsigned char *)bh, d, 32);
	return 0;
}

static int
fws_char(char c)
{
	return is_wsp(c) || c == '\r' || c == '\n';
}

/*
 * Find h= in a tag list: its names into `h`, and where its value lies
 * (folding may go after any ':' in there, §3.5: FWS is allowed around the
 * colons of h=).  Returns the number of names, 0 when there is no h=, -1
 * for an empty name or too many.
 */
static int
parse_h(const char *tags, struct hname *h, size_t *hs, size_t *he)
{
	size_t len = strlen(tags), i = 0, e, n, a, b, c;

	while (i < len) {
		for (e = i; e < len && tags[e] != ';'; e++)
			;
		for (a = i; a < e && fws_char(tags[a]); a++)
			;
		for (b = a; b < e && tags[b] != '=' && !fws_char(tags[b]); b++)
			;
		if (b - a == 1 && tags[a] == 'h') {
			while (b < e && tags[b] != '=')
				b++;
			if (b == e)
				return -1;
			*hs = b + 1;
			*he = e;
			n = 0;
			for (a = b + 1; a <= e; a = c + 1) {
				for (c = a; c < e && tags[c] != ':'; c++)
					;
				for (b = a; b < c && fws_char(tags[b]); b++)
					;
				a = c;
				while (a > b && fws_char(tags[a - 1]))
					a--;
				if (a == b || n == HNAMES_MAX)
					return -1;
				h[n].p = tags + b;
				h[n].len = a - b;
				n++;
			}
			return (int)n;
		}
		i = e + 1;
	}
	return 0;
}

static void
fold_raw(struct fold *f, const char *s, size_t n)
{
	if (f->full || n > f->cap - f->len) {
		f->full = 1;
		return;
	}
	memcpy(f->p + f->len, s, n);
	f->len += n;
	f->col += n;
}

static void
fold_break(struct fold *f)
{
	fold_raw(f, "\r\n\t", 3);
	f->col = 1;
}

/* A word, after a SP when `space`, on a new line if it would pass column 78
 * (a word longer than a line still gets a line of its own). */
static void
fold_word(struct fold *f, const char *s, size_t n, int space)
{
	if (f->col > 1 && f->col + (space ? 1 : 0) + n > DKIM_LINE)
		fold_break(f);
	else if (space)
		fold_raw(f, " ", 1);
	fold_raw(f, s, n);
}

/* The caller's tag list, re-spaced: every run of FWS becomes one SP or a
 * fold, and inside the h= value [hs, he) a fold may also follow a ':'. */
static void
fold_tags(struct fold *f, const char *tags, size_t hs, size_t he)
{
	size_t n = strlen(tags), i = 0, w, k;
	int space;

	while (i < n) {
		if (fws_char(tags[i])) {
			i++;
			continue;
		}
		for (w = i; w < n && !fws_char(tags[w]); w++)
			;
		for (space = 1; i < w; space = 0, i = k) {
			for (k = i; k < w;)
				if (tags[k++] == ':' && k - 1 >= hs && k - 1 < he)
					break;
			fold_word(f, tags + i, k - i, space);
		}
	}
}

static int
sign_digest(const struct dkim_signer *s, enum dkim_alg alg, EVP_MD_CTX *scratch,
            const unsigned char digest[32], unsigned char *sig, size_t *siglen)
{
	EVP_PKEY *pk = s->key[alg].pkey;
	EVP_PKEY_CTX *pc;
	int ok;

	if (alg == DKIM_RSA_SHA256) {
		/* RSASSA-PKCS1-v1_5 with SHA-256 over the digest already made:
		 * the same signature EVP_DigestSign() gives for the data (the
		 * RFC 8463 RSA vector in the tests checks it), but the header
		 * hash is computed once for both keys. */
		pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		ok = pc && EVP_PKEY_sign_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, s->sha256) == 1 &&
		     EVP_PKEY_sign(pc, sig, siglen, digest, 32) == 1;
		EVP_PKEY_CTX_free(pc);
		return ok ? 0 : -1;
	}
	/* RFC 8463 §3: PureEdDSA (no prehash mode, md NULL) over the 32-byte
	 * SHA-256 of the data, not over the data itself. */
	EVP_MD_CTX_reset(scratch);
	ok = EVP_DigestSignInit_ex(scratch, NULL, NULL, NULL, NULL, pk, NULL) == 1 &&
	     EVP_DigestSign(scratch, sig, siglen, digest, 32) == 1;
	return ok ? 0 : -1;
}

/*
 * Append one folded DKIM-Signature field to `f`.  `hdr` holds the hash of
 * the signed header fields; it is finished here and then reused for the
 * Ed25519 signature.
 */
static int
sign_field(const struct dkim_signer *s, enum dkim_alg alg, EVP_MD_CTX *hdr, const char *tags,
           size_t hs, size_t he, const char *bh, struct fold *f, struct herr *err)
{
	struct sink sk = { sink_md, hdr };
	unsigned char digest[EVP_MAX_MD_SIZE], sig[SIG_MAX];
	char word[64], b64[(SIG_MAX + 2) / 3 * 4 + 1];
	size_t start = f->len, siglen = sizeof sig, n, i, c;
	unsigned int dl = 0;
	int wl;

	f->col = 0;
	fold_raw(f, "DKIM-Signature:", 15);
	fold_tags(f, tags, hs, he);
	fold_raw(f, ";", 1);
	wl = snprintf(word, sizeof word, "bh=%s;", bh);
	fold_word(f, word, (size_t)wl, 1);
	/* keep a few characters of the value beside "b=" */
	if (f->col + 3 + 8 > DKIM_LINE) {
		fold_break(f);
		fold_raw(f, "b=", 2);
	} else
		fold_word(f, "b=", 2, 1);
	if (f->full)
		return herr_set(err, EX_SOFTWARE, NULL, "DKIM-Signature field longer than %d bytes",
		                OUT_MAX);
	/* invariant (1) */
	if (canon_header(f->p + start, f->len - start, 0, &sk) < 0 ||
	    EVP_DigestFinal_ex(hdr, digest, &dl) != 1 || dl != 32)
		return crypto_err(err, EX_SOFTWARE, NULL, "cannot hash the header fields");
	if (sign_digest(s, alg, hdr, digest, sig, &siglen) < 0)
		return crypto_err(err, EX_SOFTWARE, s->key[alg].selector, "cannot sign the message");
	n = (size_t)EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	/* whitespace inside b= is ignored by verifiers (§3.5): fold anywhere */
	for (i = 0; i < n; i += c) {
		if (f->col >= DKIM_LINE)
			fold_break(f);
		c = DKIM_LINE - f->col < n - i ? DKIM_LINE - f->col : n - i;
		fold_raw(f, b64 + i, c);
	}
	fold_raw(f, "\r\n", 2);
	if (f->full)
		return herr_set(err, EX_SOFTWARE, NULL, "DKIM-Signature field longer than %d bytes",
		                OUT_MAX);
	return 0;
}

int
dkim_sign_with(const struct dkim_signer *s, enum dkim_alg alg, const char *msg, size_t len,
               const char *tags, struct buf *field, struct herr *err)
{
	struct msgview v;
	struct hname h[HNAMES_MAX];
	struct fold f;
	char out[OUT_MAX], bh[45];
	EVP_MD_CTX *md;
	size_t hs = 0, he = 0;
	int nh, rc;

	if ((alg != DKIM_RSA_SHA256 && alg != DKIM_ED25519_SHA256) || !s->key[alg].pkey)
		return herr_set(err, EX_SOFTWARE, NULL, "no %s key to sign with", alg_name(alg));
	if ((nh = parse_h(tags, h, &hs, &he)) <= 0)
		return herr_set(err, EX_SOFTWARE, NULL, "DKIM tag list without a valid h=");
	if (parse_message(msg, len, &v, err) < 0)
		return -1;
	if (!(md = EVP_MD_CTX_new()) || body_hash(s, md, &v, bh) < 0 ||
	    EVP_DigestInit_ex2(md, s->sha256, NULL) != 1 || hash_headers(&v, h, (size_t)nh, md) < 0) {
		EVP_MD_CTX_free(md);
		return crypto_err(err, EX_SOFTWARE, NULL, "cannot hash the message");
	}
	f = (struct fold){ out, 0, sizeof out, 0, 0 };
	rc = sign_field(s, alg, md, tags, hs, he, bh, &f, err);
	EVP_MD_CTX_free(md);
	if (rc < 0)
		return -1;
	if (buf_add(field, f.p, f.len) < 0)
		return herr_set(err, errno == ENOMEM ? EX_OSERR : EX_SOFTWARE, NULL,
		                "no room for the DKIM-Signature field");
	return 0;
}

/* The h= names of dkim_sign(): each of signed_names[] once per field of
 * that name in the message, plus once more (invariant 4). */
static int
signed_list(const struct msgview *v, struct hname *h, size_t *nh)
{
	size_t k, i, count, len;

	*nh = 0;
	for (k = 0; k < sizeof signed_names / sizeof signed_names[0]; k++) {
		len = strlen(signed_names[k]);
		for (count = 0, i = 0; i < v->n; i++)
			count += (size_t)field_is(&v->f[i], signed_names[k], len);
		for (i = 0; i <= count; i++) {
			if (*nh == HNAMES_MAX)
				return -1;
			h[*nh].p = signed_names[k];
			h[(*nh)++].len = len;
		}
	}
	return 0;
}

/* dkim_sign()'s tags up to h=, in the order v a c d s t [x] h; [*hs, *he)
 * is the h= value. */
static int
build_tags(const struct dkim_signer *s, enum dkim_alg alg, const struct hname *h, size_t nh,
           long long now, struct fold *t, size_t *hs, size_t *he)
{
	const struct dkim_key *k = &s->key[alg];
	char num[96];
	size_t i;
	int n;

	fold_raw(t, "v=1; a=", 7);
	fold_raw(t, alg == DKIM_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256",
	         alg == DKIM_RSA_SHA256 ? 10 : 14);
	fold_raw(t, "; c=relaxed/relaxed; d=", 23);
	fold_raw(t, k->domain, strlen(k->domain));
	fold_raw(t, "; s=", 4);
	fold_raw(t, k->selector, strlen(k->selector));
	if (s->expiry > 0)
		n = snprintf(num, sizeof num, "; t=%lld; x=%lld; h=", now, now + s->expiry);
	else
		n = snprintf(num, sizeof num, "; t=%lld; h=", now);
	fold_raw(t, num, (size_t)n);
	*hs = t->len;
	for (i = 0; i < nh; i++) {
		if (i)
			fold_raw(t, ":", 1);
		fold_raw(t, h[i].p, h[i].len);
	}
	*he = t->len;
	fold_raw(t, "", 1); /* the NUL */
	return t->full ? -1 : 0;
}

int
dkim_sign(const struct dkim_signer *s, struct buf *msg, long long now, struct herr *err)
{
	struct msgview v;
	struct hname h[HNAMES_MAX];
	struct fold f, t;
	char out[OUT_MAX], tags[TAGS_MAX], bh[45];
	EVP_MD_CTX *hdr = NULL, *copy = NULL;
	size_t i, nh, hs, he;
	int alg, ret = -1, has_from = 0;

	if (!s->key[DKIM_RSA_SHA256].pkey && !s->key[DKIM_ED25519_SHA256].pkey)
		return herr_set(err, EX_SOFTWARE, NULL, "DKIM signer has no key");
	if (parse_message(msg->data ? msg->data : "", msg->len, &v, err) < 0)
		return -1;
	for (i = 0; i < v.n; i++)
		has_from |= field_is(&v.f[i], "from", 4);
	if (!has_from) /* RFC 6376 §5.4: From MUST be signed */
		return herr_set(err, EX_SOFTWARE, NULL, "message has no From field to sign");
	if (signed_list(&v, h, &nh) < 0)
		return herr_set(err, EX_SOFTWARE, NULL, "too many header fields to sign");
	/* Body and header fields are hashed once for both keys: the first
	 * key signs from a copy of the header hash, the last from the
	 * original. */
	if (!(hdr = EVP_MD_CTX_new()) || body_hash(s, hdr, &v, bh) < 0 ||
	    EVP_DigestInit_ex2(hdr, s->sha256, NULL) != 1 || hash_headers(&v, h, nh, hdr) < 0 ||
	    (s->key[DKIM_RSA_SHA256].pkey && s->key[DKIM_ED25519_SHA256].pkey &&
	     (!(copy = EVP_MD_CTX_new()) || EVP_MD_CTX_copy_ex(copy, hdr) != 1))) {
		crypto_err(err, EX_SOFTWARE, NULL, "cannot hash the message");
		goto done;
	}
	f = (struct fold){ out, 0, sizeof out, 0, 0 };
	for (alg = DKIM_RSA_SHA256; alg <= DKIM_ED25519_SHA256; alg++) {
		if (!s->key[alg].pkey)
			continue;
		t = (struct fold){ tags, 0, sizeof tags, 0, 0 };
		if (build_tags(s, (enum dkim_alg)alg, h, nh, now, &t, &hs, &he) < 0) {
			herr_set(err, EX_SOFTWARE, NULL, "too many header fields to sign");
			goto done;
		}
		if (sign_field(s, (enum dkim_alg)alg, copy && alg == DKIM_RSA_SHA256 ? copy : hdr,
		               tags, hs, he, bh, &f, err) < 0)
			goto done;
	}
	/* both fields at the top, RSA first, in one move */
	if (buf_reserve(msg, f.len) < 0) {
		herr_set(err, errno == ENOMEM ? EX_OSERR : EX_SOFTWARE, NULL, "%s",
		         errno == ENOMEM ? "out of memory" : "message too large once signed");
		goto done;
	}
	memmove(msg->data + f.len, msg->data, msg->len + 1);
	memcpy(msg->data, f.p, f.len);
	msg->len += f.len;
	ret = 0;
done:
	EVP_MD_CTX_free(copy);
	EVP_MD_CTX_free(hdr);
	return ret;
}

int
dkim_signer_new(struct dkim_signer **out, struct herr *err)
{
	struct dkim_signer *s;

	*out = NULL;
	if (!(s = calloc(1, sizeof *s)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	if (!(s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		free(s);
		return crypto_err(err, EX_SOFTWARE, NULL, "cannot fetch SHA-256");
	}
	*out = s;
	return 0;
}

void
dkim_signer_free(struct dkim_signer *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < 2; i++)
		EVP_PKEY_free(s->key[i].pkey);
	EVP_MD_free(s->sha256);
	free(s);
}

void
dkim_signer_set_expiry(struct dkim_signer *s, long seconds)
{
	s->expiry = seconds > 0 ? seconds : 0;
}

/* Dot-separated LDH labels (RFC 1035 §2.3.1, RFC 5890 A-labels included):
 * letters, digits and '-', not at either end of a label, 1-63 octets each. */
static int
ldh_name(const char *s, size_t max, int min_labels)
{
	size_t i, n = strlen(s), lab = 0;
	int labels = 1;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			labels++;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
		if (s[i] == '-' && lab == 0)
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && s[n - 1] != '-' && labels >= min_labels;
}

/* Passphrase callback: a key with a passphrase is refused, never prompted
 * for (a module must not read the terminal). */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)u = 1;
	return -1;
}

/*
 * Read the private key at `path` for `alg` and check it: the file is only
 * for its owner, it holds an unencrypted private key of that algorithm, and
 * an RSA key has 1024 to 8192 bits.  `warning`: see dkim.h.
 */
static int
load_key(enum dkim_alg alg, const char *path, EVP_PKEY **out, char *warning,
         struct herr *err)
{
	struct stat st;
	EVP_PKEY *pk;
	FILE *fp;
	int fd, asked = 0, bits;
	const char *type;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return herr_set(err, EX_CONFIG, path, "cannot read private key: %s", strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return herr_set(err, EX_CONFIG, path, "private key is not a regular file");
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return herr_set(err, EX_CONFIG, path,
		                "private key is %s by others (mode %04o); chmod 600 it",
		                st.st_mode & (S_IRGRP | S_IROTH) ? "readable" : "accessible",
		                (unsigned)(st.st_mode & 07777));
	}
	if (!(fp = fdopen(fd, "r"))) {
		close(fd);
		return herr_set(err, EX_OSERR, path, "cannot read private key: %s", strerror(errno));
	}
	pk = PEM_read_PrivateKey(fp, NULL, no_passphrase, &asked);
	fclose(fp);
	ERR_clear_error();
	if (!pk)
		return herr_set(err, EX_CONFIG, path, "%s",
		                asked ? "private key has a passphrase; herald needs it without one "
		                        "(openssl pkey -in KEY -out NEW)"
		                      : "no PEM private key in the file");
	if (!EVP_PKEY_is_a(pk, alg == DKIM_RSA_SHA256 ? "RSA" : "ED25519")) {
		type = EVP_PKEY_get0_type_name(pk);
		EVP_PKEY_free(pk);
		return herr_set(err, EX_CONFIG, path, "not an %s private key (it is %s)",
		                alg_name(alg), type ? type : "of another type");
	}
	if (alg == DKIM_RSA_SHA256) {
		bits = EVP_PKEY_get_bits(pk);
		if (bits < DKIM_RSA_BITS_MIN || bits > RSA_BITS_MAX) {
			EVP_PKEY_free(pk);
			return herr_set(err, EX_CONFIG, path,
			                "RSA key is %d bits; DKIM needs %d to %d (RFC 8301: "
			                "verifiers ignore keys under %d bits)", bits,
			                DKIM_RSA_BITS_MIN, RSA_BITS_MAX, DKIM_RSA_BITS_MIN);
		}
		if (bits < DKIM_RSA_BITS_WANTED && warning)
			snprintf(warning, 256, "RSA key is %d bits; use %d (RFC 8301)", bits,
			         DKIM_RSA_BITS_WANTED);
	}
	*out = pk;
	return 0;
}

int
dkim_signer_add_key(struct dkim_signer *s, enum dkim_alg alg, const char *domain,
                    const char *selector, const char *pem_path, char *warning,
                    struct herr *err)
{
	struct dkim_key *k;
	EVP_MD_CTX *scratch;
	unsigned char zero[32] = { 0 }, sig[SIG_MAX];
	size_t siglen = sizeof sig;
	EVP_PKEY *pk;
	int ok;

	if (warning)
		warning[0] = '\0';
	if (alg != DKIM_RSA_SHA256 && alg != DKIM_ED25519_SHA256)
		return herr_set(err, EX_SOFTWARE, NULL, "unknown DKIM algorithm %d", (int)alg);
	k = &s->key[alg];
	if (k->pkey)
		return herr_set(err, EX_CONFIG, pem_path, "a second %s key; herald signs with one",
		                alg_name(alg));
	if (!domain || !ldh_name(domain, 253, 2))
		return herr_set(err, EX_CONFIG, NULL,
		                "DKIM domain '%s' is not an ASCII domain name (letters, digits, "
		                "'-' and dots)", domain ? domain : "");
	if (!selector || !ldh_name(selector, 253, 1) ||
	    strlen(selector) + strlen("._domainkey.") + strlen(domain) > 253)
		return herr_set(err, EX_CONFIG, NULL,
		                "DKIM selector '%s' must be letters, digits, '-' and dots, and "
		                "fit in a DNS name with the domain", selector ? selector : "");
	if (load_key(alg, pem_path, &pk, warning, err) < 0)
		return -1;
	/* one signature now, so a key OpenSSL cannot use fails in `config
	 * check` rather than in the middle of a send */
	k->pkey = pk;
	scratch = EVP_MD_CTX_new();
	ok = scratch && sign_digest(s, alg, scratch, zero, sig, &siglen) == 0;
	EVP_MD_CTX_free(scratch);
	if (!ok) {
		k->pkey = NULL;
		EVP_PKEY_free(pk);
		return crypto_err(err, EX_CONFIG, pem_path, "cannot sign with this key");
	}
	snprintf(k->domain, sizeof k->domain, "%s", domain);
	snprintf(k->selector, sizeof k->selector, "%s", selector);
	return 0;
}

/* The TXT value for the public half of `pk` (RFC 6376 §3.6.1, RFC 8463
 * §4.2). */
static int
dns_txt(enum dkim_alg alg, EVP_PKEY *pk, struct buf *txt, struct herr *err)
{
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof raw;
	char *b64;
	int n, rc;

	if (alg == DKIM_ED25519_SHA256) {
		char b[45];

		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1 || rawlen != 32)
			return crypto_err(err, EX_SOFTWARE, NULL, "cannot get the Ed25519 public key");
		EVP_EncodeBlock((unsigned char *)b, raw, 32);
		rc = buf_addf(txt, "v=DKIM1; k=ed25519; p=%s", b);
	} else {
		/* p= is the DER SubjectPublicKeyInfo, which every verifier takes */
		if ((n = i2d_PUBKEY(pk, &der)) <= 0)
			return crypto_err(err, EX_SOFTWARE, NULL, "cannot encode the RSA public key");
		if (!(b64 = malloc((size_t)(n + 2) / 3 * 4 + 1))) {
			OPENSSL_free(der);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		EVP_EncodeBlock((unsigned char *)b64, der, n);
		rc = buf_addf(txt, "v=DKIM1; k=rsa; p=%s", b64);
		free(b64);
		OPENSSL_free(der);
	}
	if (rc < 0)
		return herr_set(err, errno == ENOMEM ? EX_OSERR : EX_SOFTWARE, NULL,
		                "no room for the DNS record");
	return 0;
}

int
dkim_dns_record(enum dkim_alg alg, const char *pem_path, struct buf *txt, struct herr *err)
{
	EVP_PKEY *pk;
	int rc;

	if (load_key(alg, pem_path, &pk, NULL, err) < 0)
		return -1;
	rc = dns_txt(alg, pk, txt, err);
	EVP_PKEY_free(pk);
	return rc;
}

int
dkim_keygen(enum dkim_alg alg, int bits, const char *out_path, struct buf *txt,
            struct herr *err)
{
	EVP_PKEY *pk;
	FILE *fp;
	size_t mark = txt->len;
	int fd, ok, e;

	if (alg == DKIM_RSA_SHA256) {
		if (bits == 0)
			bits = DKIM_RSA_BITS_WANTED;
		if (bits < DKIM_RSA_BITS_MIN || bits > KEYGEN_BITS_MAX)
			return herr_set(err, EX_USAGE, NULL, "an RSA key for DKIM has %d to %d bits, not %d",
			                DKIM_RSA_BITS_MIN, KEYGEN_BITS_MAX, bits);
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	} else if (alg == DKIM_ED25519_SHA256)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		return herr_set(err, EX_SOFTWARE, NULL, "unknown DKIM algorithm %d", (int)alg);
	if (!pk)
		return crypto_err(err, EX_SOFTWARE, NULL, "cannot generate a key");
	/* the record first: a failure then leaves no key file behind */
	if (dns_txt(alg, pk, txt, err) < 0) {
		EVP_PKEY_free(pk);
		return -1;
	}
	/* O_EXCL: never overwrite a key (it may be the one in DNS), and never
	 * follow a symlink planted at the path */
	fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(fp = fdopen(fd, "w"))) {
		e = errno;
		if (fd >= 0) {
			close(fd);
			unlink(out_path);
		}
		EVP_PKEY_free(pk);
		txt->len = mark;
		if (txt->data)
			txt->data[mark] = '\0';
		if (e == EEXIST)
			return herr_set(err, EX_CANTCREAT, out_path,
			                "file exists; not overwriting it with a new key");
		return herr_set(err, EX_CANTCREAT, out_path, "cannot create private key: %s",
		                strerror(e));
	}
	/* PKCS#8 ("BEGIN PRIVATE KEY") for both algorithms */
	ok = PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL) == 1;
	ok = fflush(fp) == 0 && ok;
	ok = fsync(fileno(fp)) == 0 && ok;
	e = errno;
	ok = fclose(fp) == 0 && ok;
	EVP_PKEY_free(pk);
	ERR_clear_error();
	if (!ok) {
		unlink(out_path);
		txt->len = mark;
		if (txt->data)
			txt->data[mark] = '\0';
		return herr_set(err, EX_IOERR, out_path, "cannot write private key: %s", strerror(e));
	}
	return 0;
}

int
dkim_aligned(const char *d, const char *from_domain)
{
	/* relaxed alignment is DMARC's rule: one home for it, dmarc.c */
	return dmarc_aligned(d, from_domain, 'r');
}
