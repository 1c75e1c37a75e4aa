/*
 * test_dkim.c - DKIM signing (src/dkim.c).
 *
 * Canonicalization against RFC 6376 §3.4.5's example and the edge cases of
 * the body (empty, no final CRLF, trailing empty lines); exact signatures
 * against RFC 8463 Appendix A (Ed25519 and RSA are both deterministic, so
 * b= must match the RFC byte for byte); round trips through a small
 * verifier written here on OpenSSL's EVP_DigestVerify (with the public key
 * taken from the DNS record dkim_keygen() printed), including over-signing
 * and tampering; the key file checks, key generation, and DMARC alignment.
 * Independent verification by python3-dkim is in
 * tests/integration/test_dkim.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "herald/buf.h"
#include "herald/dkim.h"

static char tmpdir[64];
static char rsa_path[128], ed_path[128];
static struct buf rsa_txt = BUF_INIT(8192), ed_txt = BUF_INIT(8192);
static EVP_PKEY *rsa_pub, *ed_pub;

/* ---- helpers ---------------------------------------------------------- */

static const char *
tmp(const char *name)
{
	static char p[4][160];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, name);
	return p[i];
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
write_key(const char *path, EVP_PKEY *pk)
{
	FILE *fp;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(fp);
}

/* Base64, whitespace ignored; returns the decoded length or -1. */
static int
unbase64(const char *in, unsigned char *out, size_t size)
{
	char clean[2048];
	unsigned char raw[1536];
	size_t n = 0, i;
	int len, pad = 0;

	for (i = 0; in[i]; i++)
		if (!strchr(" \t\r\n", in[i]) && n < sizeof clean - 1)
			clean[n++] = in[i];
	clean[n] = '\0';
	if (n % 4 || n / 4 * 3 > sizeof raw)
		return -1;
	if (n && clean[n - 1] == '=')
		pad++;
	if (n > 1 && clean[n - 2] == '=')
		pad++;
	len = EVP_DecodeBlock(raw, (unsigned char *)clean, (int)n);
	if (len < 0 || (size_t)(len - pad) > size)
		return -1;
	memcpy(out, raw, (size_t)(len - pad));
	return len - pad;
}

/* The public key in a DKIM TXT record "v=DKIM1; k=...; p=...". */
static EVP_PKEY *
pub_from_txt(const char *txt)
{
	unsigned char der[1024];
	const unsigned char *p = der;
	const char *v = strstr(txt, "p=");
	int n;

	assert_non_null(v);
	n = unbase64(v + 2, der, sizeof der);
	assert_true(n > 0);
	if (strstr(txt, "k=ed25519")) {
		assert_int_equal(n, 32);
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32);
	}
	return d2i_PUBKEY(NULL, &p, n);
}

/* The value of tag `name` in a DKIM-Signature field (folding removed,
 * whitespace around the value trimmed), or "" when absent. */
static const char *
tag(const char *field, const char *name)
{
	static char val[2048];
	char unf[4096], *t, *save = NULL, *eq, *e;
	size_t i, n = 0;
	const char *colon = strchr(field, ':');

	for (i = 0; colon[1 + i] && n < sizeof unf - 1; i++)
		if (colon[1 + i] != '\r' && colon[1 + i] != '\n')
			unf[n++] = colon[1 + i];
	unf[n] = '\0';
	for (t = strtok_r(unf, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		if (!(eq = strchr(t, '=')))
			continue;
		*eq = '\0';
		for (e = eq; e > t && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		if (strcmp(t, name))
			continue;
		t = eq + 1;
		while (*t == ' ' || *t == '\t')
			t++;
		for (e = t + strlen(t); e > t && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		snprintf(val, sizeof val, "%s", t);
		return val;
	}
	return "";
}

/* `s` without any whitespace. */
static const char *
squeeze(const char *s)
{
	static char out[4096];
	size_t n = 0;

	for (; *s && n < sizeof out - 1; s++)
		if (!strchr(" \t\r\n", *s))
			out[n++] = *s;
	out[n] = '\0';
	return out;
}

struct hf {
	const char *p;
	size_t len; /* without the CRLF */
};

/* Header fields of `msg`; returns their number, sets *body. */
static size_t
fields(const char *msg, struct hf *f, size_t max, const char **body)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg, *e;
	size_t n = 0;

	assert_non_null(end);
	*body = end + 4;
	while (p < end + 2) {
		e = p;
		do
			e = strstr(e, "\r\n") + 2;
		while (*e == ' ' || *e == '\t');
		assert_true(n < max);
		f[n].p = p;
		f[n++].len = (size_t)(e - 2 - p);
		p = e;
	}
	return n;
}

static int
name_is(const struct hf *f, const char *name, size_t len)
{
	return f->len > len && f->p[len] == ':' && !strncasecmp(f->p, name, len);
}

/*
 * A verifier of its own, as RFC 6376 §6.1.3 describes it, for relaxed/
 * relaxed: returns 1 when DKIM-Signature number `nth` (0 at the top) of
 * `msg` verifies with `pub`, 0 when not.  Canonicalization comes from the
 * module (tested above against the RFC), everything else is here.
 */
static int
verify(const char *msg, int nth, EVP_PKEY *pub)
{
	struct hf f[64];
	const char *body, *h, *b, *alg;
	char field[4096], names[2048], *nm, *save = NULL, *bpos;
	unsigned char sig[1024], hash[32], bh[32];
	unsigned char used[64] = { 0 };
	struct buf data = BUF_INIT(1 << 20), cb = BUF_INIT(1 << 22);
	size_t n, i, k, len;
	int siglen, ok, seen = -1;
	EVP_MD_CTX *md;
	unsigned int hl;

	n = fields(msg, f, 64, &body);
	for (i = 0; i < n; i++)
		if (name_is(&f[i], "DKIM-Signature", 14) && ++seen == nth)
			break;
	assert_true(i < n);
	assert_true(f[i].len < sizeof field);
	memcpy(field, f[i].p, f[i].len);
	field[f[i].len] = '\0';
	alg = strcmp(tag(field, "a"), "ed25519-sha256") ? "rsa" : "ed";
	assert_string_equal(tag(field, "c"), "relaxed/relaxed");
	assert_string_equal(tag(field, "v"), "1");
	/* bh= */
	assert_int_equal(dkim_canon_body_relaxed(body, strlen(body), &cb), 0);
	EVP_Digest(cb.data ? cb.data : "", cb.len, hash, &hl, EVP_sha256(), NULL);
	buf_free(&cb);
	if (unbase64(tag(field, "bh"), bh, sizeof bh) != 32 || memcmp(bh, hash, 32))
		return 0;
	b = tag(field, "b");
	siglen = unbase64(b, sig, sizeof sig);
	assert_true(siglen > 0);
	/* the signed fields, bottom-up for repeated names (§5.4.2) */
	h = tag(field, "h");
	snprintf(names, sizeof names, "%s", h);
	for (nm = strtok_r(names, ":", &save); nm; nm = strtok_r(NULL, ":", &save)) {
		nm = (char *)squeeze(nm);
		len = strlen(nm);
		for (k = n; k-- > 0;)
			if (!used[k] && name_is(&f[k], nm, len)) {
				used[k] = 1;
				assert_int_equal(dkim_canon_header_relaxed(f[k].p, f[k].len, &data), 0);
				break;
			}
	}
	/* the signature field with b= emptied (§3.7), no final CRLF */
	for (bpos = field; (bpos = strstr(bpos, "b=")) != NULL; bpos++)
		if (bpos > field && strchr("; \t\n", bpos[-1])) {
			char *e = bpos + 2;
			while (*e && *e != ';')
				e++;
			memmove(bpos + 2, e, strlen(e) + 1);
			break;
		}
	assert_non_null(bpos);
	assert_int_equal(dkim_canon_header_relaxed(field, strlen(field), &data), 0);
	data.len -= 2;
	md = EVP_MD_CTX_new();
	if (!strcmp(alg, "rsa")) {
		ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
		     EVP_DigestVerify(md, sig, (size_t)siglen, (unsigned char *)data.data,
		                      data.len) == 1;
	} else {
		/* RFC 8463 §3: Ed25519 over the SHA-256 of the data */
		EVP_Digest(data.data, data.len, hash, &hl, EVP_sha256(), NULL);
		ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) == 1 &&
		     EVP_DigestVerify(md, sig, (size_t)siglen, hash, 32) == 1;
	}
	EVP_MD_CTX_free(md);
	buf_free(&data);
	return ok;
}

/* The DKIM-Signature field number `nth` of `msg`, unfolded text. */
static const char *
sig_field(const char *msg, int nth)
{
	static char out[4096];
	struct hf f[64];
	const char *body;
	size_t n, i;
	int seen = -1;

	n = fields(msg, f, 64, &body);
	for (i = 0; i < n; i++)
		if (name_is(&f[i], "DKIM-Signature", 14) && ++seen == nth) {
			snprintf(out, sizeof out, "%.*s", (int)f[i].len, f[i].p);
			return out;
		}
	return NULL;
}

static struct dkim_signer *
signer(int rsa, int ed)
{
	struct dkim_signer *s;
	struct herr err;

	assert_int_equal(dkim_signer_new(&s, &err), 0);
	if (rsa)
		assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "herald2026",
		                                     rsa_path, NULL, &err), 0);
	if (ed)
		assert_int_equal(dkim_signer_add_key(s, DKIM_ED25519_SHA256, "example.org",
		                                     "herald2026e", ed_path, NULL, &err), 0);
	return s;
}

/* A message as mime.c writes one (shortened). */
static const char herald_msg[] =
	"Date: Thu, 26 Nov 2026 11:30:23 +0000\r\n"
	"From: What Works Centre <news@example.org>\r\n"
	"To: Reader <reader@example.net>\r\n"
	"Reply-To: wwccsc@example.org\r\n"
	"Subject: What Works Centre e-newsletter no.16 =?UTF-8?B?4oCT?= 28th March\r\n"
	"Message-ID: <1.5.8a9d296d@example.org>\r\n"
	"List-Id: \"What Works Centre e-newsletter\" <newsletter.example.org>\r\n"
	"List-Unsubscribe: <https://news.example.org/u/EQUBAdtfqwLYHFAU_m-bOA>,\r\n"
	" <mailto:unsubscribe+EQUBAdtfqwLYHFAU_m-bOA@example.org>\r\n"
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/alternative;\r\n"
	" boundary=\"=_herald_a5f5d337fd6056ce\"\r\n"
	"\r\n"
	"--=_herald_a5f5d337fd6056ce\r\n"
	"Content-Type: text/plain; charset=UTF-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"It=E2=80=99s been a busy month here at the What Works Centre, and it feels =\r\n"
	"like we  have\tbuilt some momentum.   \r\n"
	"\r\n"
	"--=_herald_a5f5d337fd6056ce--\r\n"
	"\r\n"
	" \r\n";

static const char herald_h[] =
	"from:from:to:to:subject:subject:date:date:message-id:message-id:mime-version:"
	"mime-version:content-type:content-type:reply-to:reply-to:list-id:list-id:"
	"list-unsubscribe:list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post:"
	"feedback-id:auto-submitted";

static char *
signed_copy(const struct dkim_signer *s, const char *msg)
{
	struct buf b = BUF_INIT(1 << 20);
	struct herr err;

	assert_int_equal(buf_adds(&b, msg), 0);
	assert_int_equal(dkim_sign(s, &b, 1764156623LL, &err), 0);
	return buf_detach(&b);
}

/* `msg` with the first `from` replaced by `to`. */
static char *
replaced(const char *msg, const char *from, const char *to)
{
	const char *p = strstr(msg, from);
	char *out;

	assert_non_null(p);
	out = malloc(strlen(msg) + strlen(to) + 1);
	assert_non_null(out);
	sprintf(out, "%.*s%s%s", (int)(p - msg), msg, to, p + strlen(from));
	return out;
}

static int
setup(void **state)
{
	struct herr err;

	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_dkim.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(rsa_path, sizeof rsa_path, "%s/rsa.pem", tmpdir);
	snprintf(ed_path, sizeof ed_path, "%s/ed.pem", tmpdir);
	if (dkim_keygen(DKIM_RSA_SHA256, 0, rsa_path, &rsa_txt, &err) < 0 ||
	    dkim_keygen(DKIM_ED25519_SHA256, 0, ed_path, &ed_txt, &err) < 0)
		return -1;
	rsa_pub = pub_from_txt(buf_str(&rsa_txt));
	ed_pub = pub_from_txt(buf_str(&ed_txt));
	return rsa_pub && ed_pub ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[200];

	(void)state;
	EVP_PKEY_free(rsa_pub);
	EVP_PKEY_free(ed_pub);
	buf_free(&rsa_txt);
	buf_free(&ed_txt);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- canonicalization ------------------------------------------------- */

static void
check_body(const char *in, size_t len, const char *want)
{
	struct buf b = BUF_INIT(1 << 16);

	assert_int_equal(dkim_canon_body_relaxed(in, len, &b), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(buf_str(&b), want, b.len);
	buf_free(&b);
}

static void
check_header(const char *in, const char *want)
{
	struct buf b = BUF_INIT(1 << 16);

	assert_int_equal(dkim_canon_header_relaxed(in, strlen(in), &b), 0);
	assert_string_equal(buf_str(&b), want);
	buf_free(&b);
}

/* RFC 6376 §3.4.5, relaxed header canonicalization. */
static void
test_canon_header_rfc6376_example(void **state)
{
	(void)state;
	check_header("A: X", "a:X\r\n");
	check_header("B : Y\t\r\n\tZ  ", "b:Y Z\r\n");
}

static void
test_canon_header_folding_and_blanks(void **state)
{
	struct buf b = BUF_INIT(64);

	(void)state;
	check_header("Subject:   hello  \t world \t", "subject:hello world\r\n");
	check_header("List-Unsubscribe: <https://x/u/T>,\r\n <mailto:u+T@x>",
	             "list-unsubscribe:<https://x/u/T>, <mailto:u+T@x>\r\n");
	check_header("Content-Type: a;\r\n\tb=c", "content-type:a; b=c\r\n");
	check_header("X-Empty:", "x-empty:\r\n");
	check_header("X-Empty:  \r\n ", "x-empty:\r\n");
	check_header("MESSAGE-ID:<a@b>", "message-id:<a@b>\r\n");
	assert_int_equal(dkim_canon_header_relaxed("no colon", 8, &b), -1);
	buf_free(&b);
}

/* RFC 6376 §3.4.5, relaxed body canonicalization. */
static void
test_canon_body_rfc6376_example(void **state)
{
	static const char body[] = " C \r\nD \t E\r\n\r\n\r\n";

	(void)state;
	check_body(body, sizeof body - 1, " C\r\nD E\r\n");
}

/* Relaxed leaves an empty body empty (no CRLF, unlike simple); a body of
 * blank lines is empty too. */
static void
test_canon_body_empty(void **state)
{
	(void)state;
	check_body("", 0, "");
	check_body("\r\n", 2, "");
	check_body("\r\n\r\n\r\n", 6, "");
	check_body(" \r\n\t\r\n  ", 8, "");
}

static void
test_canon_body_no_final_crlf(void **state)
{
	(void)state;
	check_body("abc", 3, "abc\r\n");
	check_body("a  b\t", 5, "a b\r\n");
	check_body("x\r\ny", 4, "x\r\ny\r\n");
}

static void
test_canon_body_trailing_empty_lines(void **state)
{
	static const char body[] = "abc\r\n\r\n \r\n\t\r\n\r\n";
	static const char inner[] = "a\r\n\r\n \r\nb  \r\n";

	(void)state;
	check_body(body, sizeof body - 1, "abc\r\n");
	/* empty lines inside the body stay; a blank one becomes empty */
	check_body(inner, sizeof inner - 1, "a\r\n\r\n\r\nb\r\n");
}

/* A quoted-printable body (single spaces, no trailing blanks) is hashed as
 * it is; the body hash of a message equals SHA-256 of the canonical bytes. */
static void
test_canon_body_quoted_printable_unchanged(void **state)
{
	static const char qp[] =
		"It=E2=80=99s been a busy month here at the What Works Centre, and it =\r\n"
		"feels like we=E2=80=99ve built some good momentum as we head into the=\r\n"
		"=20\r\n"
		"\r\n"
		"new financial year.\r\n";

	(void)state;
	check_body(qp, sizeof qp - 1, qp);
}

/* ---- RFC 8463 Appendix A: exact signatures ---------------------------- */

/* A.1: the Ed25519 private key (seed) and the RSA private key */
static const char rfc8463_ed_seed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
static const char rfc8463_rsa_pem[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
	"Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
	"KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
	"AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
	"6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
	"zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
	"6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
	"uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
	"WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
	"WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
	"licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
	"o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
	"uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
	"-----END RSA PRIVATE KEY-----\n";

/* A.3: the message as signed ("A blank line follows the 'Joe.' line") */
static const char rfc8463_msg[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n"
	"\r\n";

static const char rfc8463_bh[] = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=";

static struct dkim_signer *
rfc8463_signer(void)
{
	unsigned char seed[48];
	struct dkim_signer *s;
	struct buf txt = BUF_INIT(4096);
	EVP_PKEY *pk;
	char warning[256];
	struct herr err;

	assert_int_equal(unbase64(rfc8463_ed_seed, seed, sizeof seed), 32);
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	assert_non_null(pk);
	write_key(tmp("rfc8463-ed.pem"), pk);
	EVP_PKEY_free(pk);
	write_file(tmp("rfc8463-rsa.pem"), rfc8463_rsa_pem, 0600);
	assert_int_equal(dkim_signer_new(&s, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_ED25519_SHA256, "football.example.com",
	                                     "brisbane", tmp("rfc8463-ed.pem"), warning, &err), 0);
	assert_string_equal(warning, "");
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "football.example.com", "test",
	                                     tmp("rfc8463-rsa.pem"), warning, &err), 0);
	assert_string_equal(warning, "RSA key is 1024 bits; use 2048 (RFC 8301)");
	/* A.2: the DNS records */
	assert_int_equal(dkim_dns_record(DKIM_ED25519_SHA256, tmp("rfc8463-ed.pem"), &txt, &err), 0);
	assert_string_equal(buf_str(&txt),
	                    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	buf_reset(&txt);
	assert_int_equal(dkim_dns_record(DKIM_RSA_SHA256, tmp("rfc8463-rsa.pem"), &txt, &err), 0);
	assert_string_equal(buf_str(&txt),
	                    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
	                    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
	                    "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
	                    "Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
	buf_free(&txt);
	return s;
}

static void
test_dkim_sign_with_rfc8463_ed25519(void **state)
{
	struct dkim_signer *s;
	struct buf field = BUF_INIT(8192);
	struct herr err;

	(void)state;
	s = rfc8463_signer();
	assert_int_equal(dkim_sign_with(s, DKIM_ED25519_SHA256, rfc8463_msg, sizeof rfc8463_msg - 1,
	                                "v=1; a=ed25519-sha256; c=relaxed/relaxed; "
	                                "d=football.example.com; i=@football.example.com; "
	                                "q=dns/txt; s=brisbane; t=1528637909; h=from : to : "
	                                "subject : date : message-id : from : subject : date",
	                                &field, &err), 0);
	assert_string_equal(tag(buf_str(&field), "bh"), rfc8463_bh);
	assert_string_equal(squeeze(tag(buf_str(&field), "b")),
	                    "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
	                    "Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
	buf_free(&field);
	dkim_signer_free(s);
}

static void
test_dkim_sign_with_rfc8463_rsa(void **state)
{
	struct dkim_signer *s;
	struct buf field = BUF_INIT(8192);
	struct herr err;

	(void)state;
	s = rfc8463_signer();
	assert_int_equal(dkim_sign_with(s, DKIM_RSA_SHA256, rfc8463_msg, sizeof rfc8463_msg - 1,
	                                "v=1; a=rsa-sha256; c=relaxed/relaxed; "
	                                "d=football.example.com; i=@football.example.com; "
	                                "q=dns/txt; s=test; t=1528637909; h=from : to : subject : "
	                                "date : message-id : from : subject : date",
	                                &field, &err), 0);
	assert_string_equal(tag(buf_str(&field), "bh"), rfc8463_bh);
	assert_string_equal(squeeze(tag(buf_str(&field), "b")),
	                    "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3"
	                    "DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz"
	                    "dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=");
	buf_free(&field);
	dkim_signer_free(s);
}

/*
 * Repeated fields are signed from the bottom up (§5.4.2) and an h= name
 * with no instance left adds nothing.  Expected values made by Debian's
 * python3-dkim (dkimpy 1.1.4, an independent implementation), signing this
 * message with the RFC 8463 Ed25519 key:
 *   dkim.sign(msg, b'brisbane', b'football.example.com', seed_b64,
 *             signature_algorithm=b'ed25519-sha256',
 *             canonicalize=(b'relaxed', b'relaxed'), include_headers=[b'from',
 *             b'to', b'to', b'x-seq', b'x-seq', b'subject', b'to'])
 * and taking its tags as they came out (t= fixed at the time of signing).
 */
static void
test_dkim_sign_with_repeated_fields_python_vector(void **state)
{
	static const char msg[] =
		"X-Seq: first\r\n"
		"From: Joe <joe@football.example.com>\r\n"
		"To: x@example.net\r\n"
		"X-Seq: second,\r\n\t folded\r\n"
		"To:   Y\t Z  <y@example.net>  \r\n"
		"Subject: two\r\n"
		"\r\n"
		"body  text \r\n\tmore\r\n\r\n";
	struct dkim_signer *s;
	struct buf field = BUF_INIT(8192);
	struct herr err;

	(void)state;
	s = rfc8463_signer();
	assert_int_equal(dkim_sign_with(s, DKIM_ED25519_SHA256, msg, sizeof msg - 1,
	                                "v=1; a=ed25519-sha256; c=relaxed/relaxed; "
	                                "d=football.example.com; i=@football.example.com; "
	                                "q=dns/txt; s=brisbane; t=1795699097; h=from : to : to : "
	                                "x-seq : x-seq : subject : to",
	                                &field, &err), 0);
	assert_string_equal(tag(buf_str(&field), "bh"),
	                    "XUkMcz8xPHw9JaP1yoewNLOXcQpWTQyI9lYFWmawq3U=");
	assert_string_equal(squeeze(tag(buf_str(&field), "b")),
	                    "RST2VCzH4zUNq2vGdeT9mSJ+eVVNhzf+85lEThdY5p8Wg9AhVTg5/owFSTLG1SxUnopWZ"
	                    "KyFlTMUd49YtIbkDA==");
	buf_free(&field);
	dkim_signer_free(s);
}

/* ---- dkim_sign round trips -------------------------------------------- */

static void
test_dkim_sign_round_trip_dual(void **state)
{
	static const char top[] =
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;\r\n"
		"\ts=herald2026; t=1764156623; h=";
	struct dkim_signer *s = signer(1, 1);
	char *m, *t;
	const char *f0, *f1;
	unsigned char want[32], got[32];
	struct buf cb = BUF_INIT(1 << 16);
	unsigned int hl;

	(void)state;
	m = signed_copy(s, herald_msg);
	/* RSA at the very top, the Ed25519 one next, then the message */
	assert_true(!strncmp(m, top, sizeof top - 1));
	f0 = sig_field(m, 0);
	assert_non_null(strstr(f0, "a=rsa-sha256"));
	f1 = sig_field(m, 1);
	assert_non_null(f1);
	assert_non_null(strstr(f1, "a=ed25519-sha256"));
	assert_non_null(strstr(f1, "s=herald2026e;"));
	assert_null(sig_field(m, 2));
	assert_non_null(strstr(m, "\r\nDate: Thu, 26 Nov 2026"));
	assert_string_equal(strstr(m, "Date: Thu, 26 Nov 2026"), herald_msg);
	/* over-signed h=, the same for both */
	assert_string_equal(squeeze(tag(sig_field(m, 0), "h")), herald_h);
	assert_string_equal(squeeze(tag(sig_field(m, 1), "h")), herald_h);
	assert_string_equal(tag(sig_field(m, 0), "t"), "1764156623");
	assert_string_equal(tag(sig_field(m, 0), "x"), "");
	/* bh= is the SHA-256 of the canonical body */
	assert_int_equal(dkim_canon_body_relaxed(strstr(herald_msg, "\r\n\r\n") + 4,
	                                         strlen(strstr(herald_msg, "\r\n\r\n") + 4), &cb), 0);
	EVP_Digest(cb.data, cb.len, want, &hl, EVP_sha256(), NULL);
	assert_int_equal(unbase64(tag(sig_field(m, 0), "bh"), got, sizeof got), 32);
	assert_memory_equal(got, want, 32);
	assert_string_equal(tag(sig_field(m, 0), "bh"), tag(sig_field(m, 1), "bh"));
	buf_free(&cb);

	assert_int_equal(verify(m, 0, rsa_pub), 1);
	assert_int_equal(verify(m, 1, ed_pub), 1);
	assert_int_equal(verify(m, 0, ed_pub), 0); /* wrong key */

	/* one body byte changed */
	t = replaced(m, "busy month", "busy Month");
	assert_int_equal(verify(t, 0, rsa_pub), 0);
	assert_int_equal(verify(t, 1, ed_pub), 0);
	free(t);
	/* one header value changed */
	t = replaced(m, "no.16", "no.17");
	assert_int_equal(verify(t, 0, rsa_pub), 0);
	assert_int_equal(verify(t, 1, ed_pub), 0);
	free(t);
	/* a second From added below the first: over-signing catches it */
	t = replaced(m, "\r\nTo: ", "\r\nFrom: evil@example.com\r\nTo: ");
	assert_int_equal(verify(t, 0, rsa_pub), 0);
	assert_int_equal(verify(t, 1, ed_pub), 0);
	free(t);
	/* a field the message did not have, named in h=, added later */
	t = replaced(m, "\r\nMIME-Version", "\r\nAuto-Submitted: no\r\nMIME-Version");
	assert_int_equal(verify(t, 0, rsa_pub), 0);
	free(t);
	/* control: a field not in h= may be added (a relay's Received) */
	t = replaced(m, "\r\nDate: ", "\r\nReceived: from relay by mx; Thu, 26 Nov 2026\r\nDate: ");
	assert_int_equal(verify(t, 0, rsa_pub), 1);
	assert_int_equal(verify(t, 1, ed_pub), 1);
	free(t);
	/* and relaxed canonicalization tolerates refolding by a relay */
	t = replaced(m, "Subject: What Works Centre", "Subject: What Works\r\n\t Centre");
	assert_int_equal(verify(t, 0, rsa_pub), 1);
	free(t);
	free(m);
	dkim_signer_free(s);
}

static void
test_dkim_sign_round_trip_single_key(void **state)
{
	struct dkim_signer *s;
	char *m;

	(void)state;
	s = signer(1, 0);
	m = signed_copy(s, herald_msg);
	assert_int_equal(verify(m, 0, rsa_pub), 1);
	assert_null(sig_field(m, 1));
	free(m);
	dkim_signer_free(s);
	s = signer(0, 1);
	m = signed_copy(s, herald_msg);
	assert_int_equal(verify(m, 0, ed_pub), 1);
	assert_null(sig_field(m, 1));
	free(m);
	dkim_signer_free(s);
}

/* Lines of the DKIM-Signature fields stay within 78 characters and every
 * continuation starts with WSP; the tags come in the documented order. */
static void
test_dkim_sign_folding_and_tag_order(void **state)
{
	struct dkim_signer *s = signer(1, 1);
	char *m;
	const char *p, *e, *end, *f;
	const char *order[] = { "v=", "a=", "c=", "d=", "s=", "t=", "x=", "h=", "bh=", "b=" };
	size_t i;
	int k;

	(void)state;
	dkim_signer_set_expiry(s, 7 * 86400);
	m = signed_copy(s, herald_msg);
	end = strstr(m, "Date: ");
	for (p = m; p < end; p = e + 2) {
		e = strstr(p, "\r\n");
		assert_true(e - p <= 78);
		assert_true(p == m || *p == '\t' || !strncmp(p, "DKIM-Signature: ", 16));
	}
	for (k = 0; k < 2; k++) {
		f = squeeze(sig_field(m, k));
		for (i = 1; i < sizeof order / sizeof order[0]; i++) {
			char a[8], b[8];

			snprintf(a, sizeof a, ";%s", order[i - 1]);
			snprintf(b, sizeof b, ";%s", order[i]);
			if (i == 1)
				assert_non_null(strstr(f, "DKIM-Signature:v=1;a="));
			else
				assert_true(strstr(f, a) < strstr(f, b));
		}
		assert_string_equal(tag(sig_field(m, k), "x"), "1764761423"); /* t + 7 days */
	}
	assert_int_equal(verify(m, 0, rsa_pub), 1);
	assert_int_equal(verify(m, 1, ed_pub), 1);
	free(m);
	dkim_signer_free(s);
}

/* An empty body hashes as nothing: bh= is SHA-256(""). */
static void
test_dkim_sign_empty_body(void **state)
{
	struct dkim_signer *s = signer(1, 0);
	char *m;

	(void)state;
	m = signed_copy(s, "From: a@example.org\r\nSubject: x\r\n\r\n");
	assert_string_equal(tag(sig_field(m, 0), "bh"),
	                    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	assert_string_equal(squeeze(tag(sig_field(m, 0), "h")),
	                    "from:from:to:subject:subject:date:message-id:mime-version:"
	                    "content-type:reply-to:list-id:list-unsubscribe:"
	                    "list-unsubscribe-post:feedback-id:auto-submitted");
	assert_int_equal(verify(m, 0, rsa_pub), 1);
	free(m);
	dkim_signer_free(s);
}

static void
test_dkim_sign_refuses_message_without_from(void **state)
{
	struct dkim_signer *s = signer(1, 1);
	struct buf b = BUF_INIT(1 << 16);
	struct herr err;
	static const char msg[] = "To: a@example.org\r\nSubject: x\r\n\r\nbody\r\n";

	(void)state;
	assert_int_equal(buf_adds(&b, msg), 0);
	assert_int_equal(dkim_sign(s, &b, 1, &err), -1);
	assert_int_equal(err.code, EX_SOFTWARE);
	assert_non_null(strstr(err.msg, "From"));
	assert_string_equal(buf_str(&b), msg);
	buf_free(&b);
	dkim_signer_free(s);
}

/* ---- keys ------------------------------------------------------------- */

static void
test_dkim_signer_add_key_refuses_readable_key(void **state)
{
	struct dkim_signer *s;
	struct herr err;
	char *pem;
	FILE *fp;
	long n;

	(void)state;
	fp = fopen(rsa_path, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	pem = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(pem, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	write_file(tmp("open.pem"), pem, 0644);
	free(pem);
	assert_int_equal(dkim_signer_new(&s, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s",
	                                     tmp("open.pem"), NULL, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_string_equal(err.where, tmp("open.pem"));
	assert_non_null(strstr(err.msg, "readable by others"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	chmod(tmp("open.pem"), 0600);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s",
	                                     tmp("open.pem"), NULL, &err), 0);
	dkim_signer_free(s);
}

static void
test_dkim_signer_add_key_rsa_sizes(void **state)
{
	struct dkim_signer *s;
	struct buf txt = BUF_INIT(4096);
	char warning[256];
	struct herr err;
	EVP_PKEY *pk;

	(void)state;
	assert_int_equal(dkim_keygen(DKIM_RSA_SHA256, 1024, tmp("rsa1024.pem"), &txt, &err), 0);
	assert_int_equal(dkim_signer_new(&s, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s",
	                                     tmp("rsa1024.pem"), warning, &err), 0);
	assert_string_equal(warning, "RSA key is 1024 bits; use 2048 (RFC 8301)");
	dkim_signer_free(s);

	assert_int_equal(dkim_signer_new(&s, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s", rsa_path,
	                                     warning, &err), 0);
	assert_string_equal(warning, "");
	dkim_signer_free(s);

	pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	assert_non_null(pk);
	write_key(tmp("rsa512.pem"), pk);
	EVP_PKEY_free(pk);
	assert_int_equal(dkim_signer_new(&s, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s",
	                                     tmp("rsa512.pem"), warning, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, "512 bits"));
	dkim_signer_free(s);
	/* keygen refuses to make such a key at all */
	assert_int_equal(dkim_keygen(DKIM_RSA_SHA256, 512, tmp("never.pem"), &txt, &err), -1);
	assert_int_equal(access(tmp("never.pem"), F_OK), -1);
	buf_free(&txt);
}

static void
test_dkim_signer_add_key_wrong_type_or_file(void **state)
{
	struct dkim_signer *s;
	struct herr err;

	(void)state;
	assert_int_equal(dkim_signer_new(&s, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s", ed_path,
	                                     NULL, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, "not an RSA private key"));
	assert_int_equal(dkim_signer_add_key(s, DKIM_ED25519_SHA256, "example.org", "s", rsa_path,
	                                     NULL, &err), -1);
	assert_non_null(strstr(err.msg, "not an Ed25519 private key"));
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s",
	                                     tmp("missing.pem"), NULL, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_string_equal(err.where, tmp("missing.pem"));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
	write_file(tmp("junk.pem"), "not a key\n", 0600);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s",
	                                     tmp("junk.pem"), NULL, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	/* one key per algorithm */
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "s", rsa_path,
	                                     NULL, &err), 0);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org", "t", rsa_path,
	                                     NULL, &err), -1);
	dkim_signer_free(s);
}

static void
test_dkim_signer_add_key_checks_names(void **state)
{
	static const char *bad_domains[] = { "", "example", "exa mple.org", "-x.example.org",
	                                     "x-.example.org", "a..b.org", "example.org.",
	                                     "ex_ample.org", "bücher.example", "a\r\nb.org" };
	static const char *bad_selectors[] = { "", "s_1", "s;x", "-s", "s.", "s 1" };
	struct dkim_signer *s;
	struct herr err;
	size_t i;

	(void)state;
	assert_int_equal(dkim_signer_new(&s, &err), 0);
	for (i = 0; i < sizeof bad_domains / sizeof bad_domains[0]; i++) {
		assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, bad_domains[i], "s",
		                                     rsa_path, NULL, &err), -1);
		assert_int_equal(err.code, EX_CONFIG);
	}
	for (i = 0; i < sizeof bad_selectors / sizeof bad_selectors[0]; i++)
		assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "example.org",
		                                     bad_selectors[i], rsa_path, NULL, &err), -1);
	assert_int_equal(dkim_signer_add_key(s, DKIM_RSA_SHA256, "xn--bcher-kva.example",
	                                     "2026.herald-1", rsa_path, NULL, &err), 0);
	dkim_signer_free(s);
}

static void
test_dkim_keygen_mode_and_no_overwrite(void **state)
{
	struct buf txt = BUF_INIT(4096), again = BUF_INIT(4096);
	struct stat st;
	struct herr err;

	(void)state;
	assert_int_equal(stat(rsa_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(ed_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* a second keygen to the same path leaves the key alone */
	assert_int_equal(dkim_keygen(DKIM_ED25519_SHA256, 0, ed_path, &txt, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	assert_string_equal(err.where, ed_path);
	assert_int_equal(txt.len, 0);
	assert_int_equal(dkim_dns_record(DKIM_ED25519_SHA256, ed_path, &again, &err), 0);
	assert_string_equal(buf_str(&again), buf_str(&ed_txt));
	assert_int_equal(dkim_keygen(DKIM_RSA_SHA256, 0, tmp("nodir/k.pem"), &txt, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	buf_free(&txt);
	buf_free(&again);
}

/* The TXT record parses and its p= is the public half of the key written. */
static void
check_record(enum dkim_alg alg, const char *path, const char *txt, const char *k)
{
	char want[64];
	EVP_PKEY *priv, *pub;
	struct buf again = BUF_INIT(4096);
	struct herr err;
	FILE *fp;

	snprintf(want, sizeof want, "v=DKIM1; k=%s; p=", k);
	assert_true(!strncmp(txt, want, strlen(want)));
	assert_null(strpbrk(txt + strlen(want), " ;\"\r\n"));
	pub = pub_from_txt(txt);
	assert_non_null(pub);
	fp = fopen(path, "r");
	assert_non_null(fp);
	priv = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(priv);
	assert_int_equal(EVP_PKEY_eq(pub, priv), 1);
	assert_int_equal(dkim_dns_record(alg, path, &again, &err), 0);
	assert_string_equal(buf_str(&again), txt);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	buf_free(&again);
}

static void
test_dkim_keygen_record_matches_key(void **state)
{
	FILE *fp;
	char line[64];

	(void)state;
	check_record(DKIM_RSA_SHA256, rsa_path, buf_str(&rsa_txt), "rsa");
	check_record(DKIM_ED25519_SHA256, ed_path, buf_str(&ed_txt), "ed25519");
	assert_int_equal(EVP_PKEY_get_bits(rsa_pub), 2048);
	/* PKCS#8 PEM */
	fp = fopen(ed_path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(line, sizeof line, fp));
	fclose(fp);
	assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n");
}

/* ---- alignment -------------------------------------------------------- */

static void
test_dkim_aligned(void **state)
{
	(void)state;
	assert_int_equal(dkim_aligned("news.example.org", "example.org"), 1);
	assert_int_equal(dkim_aligned("example.org", "news.example.org"), 1);
	assert_int_equal(dkim_aligned("EXAMPLE.org", "example.ORG"), 1);
	assert_int_equal(dkim_aligned("example.org", "example.net"), 0);
	assert_int_equal(dkim_aligned("a.example.co.uk", "b.example.co.uk"), 1);
	assert_int_equal(dkim_aligned("example.co.uk", "other.co.uk"), 0);
	assert_int_equal(dkim_aligned("co.uk", "example.co.uk"), 0);
	assert_int_equal(dkim_aligned(NULL, "example.org"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canon_header_rfc6376_example),
		cmocka_unit_test(test_canon_header_folding_and_blanks),
		cmocka_unit_test(test_canon_body_rfc6376_example),
		cmocka_unit_test(test_canon_body_empty),
		cmocka_unit_test(test_canon_body_no_final_crlf),
		cmocka_unit_test(test_canon_body_trailing_empty_lines),
		cmocka_unit_test(test_canon_body_quoted_printable_unchanged),
		cmocka_unit_test(test_dkim_sign_with_rfc8463_ed25519),
		cmocka_unit_test(test_dkim_sign_with_rfc8463_rsa),
		cmocka_unit_test(test_dkim_sign_with_repeated_fields_python_vector),
		cmocka_unit_test(test_dkim_sign_round_trip_dual),
		cmocka_unit_test(test_dkim_sign_round_trip_single_key),
		cmocka_unit_test(test_dkim_sign_folding_and_tag_order),
		cmocka_unit_test(test_dkim_sign_empty_body),
		cmocka_unit_test(test_dkim_sign_refuses_message_without_from),
		cmocka_unit_test(test_dkim_signer_add_key_refuses_readable_key),
		cmocka_unit_test(test_dkim_signer_add_key_rsa_sizes),
		cmocka_unit_test(test_dkim_signer_add_key_wrong_type_or_file),
		cmocka_unit_test(test_dkim_signer_add_key_checks_names),
		cmocka_unit_test(test_dkim_keygen_mode_and_no_overwrite),
		cmocka_unit_test(test_dkim_keygen_record_matches_key),
		cmocka_unit_test(test_dkim_aligned),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
