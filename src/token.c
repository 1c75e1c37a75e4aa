/*
 * token.c - minting and checking tokens (layout in token.h).
 */
#include "herald/token.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_VERSION 1
#define PAYLOAD_MAX   (1 + 3 * 10)

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t
put_varint(unsigned char *p, unsigned long long v)
{
	size_t n = 0;

	do {
		p[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

/* Returns bytes read, or 0 for a malformed or non-minimal varint. */
static size_t
get_varint(const unsigned char *p, size_t len, unsigned long long *v)
{
	size_t n = 0;
	unsigned shift = 0;

	*v = 0;
	while (n < len && n < 10) {
		*v |= (unsigned long long)(p[n] & 0x7f) << shift;
		if (!(p[n++] & 0x80))
			/* a trailing zero byte would give a second spelling of the
			 * same number; refuse it so every token has one form */
			return (n > 1 && p[n - 1] == 0) ? 0 : n;
		shift += 7;
	}
	return 0;
}

size_t
token_b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;
	unsigned v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned)in[i] << 16;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int
b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '-') return 62;
	if (c == '_') return 63;
	return -1;
}

/* Strict decoding: unused low bits of the last character must be zero, so
 * that no two strings decode to the same token. Returns length or -1. */
static long
b64url_decode(const char *s, size_t len, unsigned char *out, size_t out_size)
{
	size_t i, o = 0;
	unsigned acc = 0;
	int bits = 0, v;

	if (len % 4 == 1)
		return -1;
	for (i = 0; i < len; i++) {
		if ((v = b64url_value(s[i])) < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= out_size)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (long)o;
}

/*
 * HMAC-SHA256 (RFC 2104) written out over EVP digests with SHA-256 fetched
 * once: OpenSSL 3's one-shot HMAC() fetches the MAC and the digest on every
 * call, which made it a tenth of a send's CPU (a token for every link of
 * every message).  test_token checks the result against HMAC().
 */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

int
token_hmac(const struct token_key *k, const void *p, size_t len,
           unsigned char out[TOKEN_HMAC_LEN])
{
	unsigned char pad[64], inner[32];   /* SHA-256's block and digest */
	unsigned int n = 0;
	EVP_MD_CTX *ctx;
	int ok;
	size_t i;

	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256 || !(ctx = EVP_MD_CTX_new()))
		return -1;
	/* the key (shorter than a block) padded with zeros, xor ipad */
	memset(pad, 0x36, sizeof pad);
	for (i = 0; i < TOKEN_SECRET_LEN; i++)
		pad[i] ^= k->secret[i];
	ok = EVP_DigestInit_ex(ctx, sha256, NULL) && EVP_DigestUpdate(ctx, pad, sizeof pad) &&
	     EVP_DigestUpdate(ctx, p, len) && EVP_DigestFinal_ex(ctx, inner, &n) && n == 32;
	memset(pad, 0x5c, sizeof pad);
	for (i = 0; i < TOKEN_SECRET_LEN; i++)
		pad[i] ^= k->secret[i];
	ok = ok && EVP_DigestInit_ex(ctx, sha256, NULL) && EVP_DigestUpdate(ctx, pad, sizeof pad) &&
	     EVP_DigestUpdate(ctx, inner, sizeof inner) && EVP_DigestFinal_ex(ctx, out, &n) &&
	     n == TOKEN_HMAC_LEN;
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(pad, sizeof pad);
	return ok ? 0 : -1;
}

static int
mac(const struct token_key *k, const unsigned char *p, size_t len,
    unsigned char out[TOKEN_MAC_LEN])
{
	unsigned char full[TOKEN_HMAC_LEN];

	if (token_hmac(k, p, len, full) < 0)
		return -1;
	memcpy(out, full, TOKEN_MAC_LEN);
	return 0;
}

int
token_make(const struct token_key *k, const struct token *t, char out[TOKEN_MAX])
{
	unsigned char raw[PAYLOAD_MAX + TOKEN_MAC_LEN];
	size_t n = 0;

	raw[n++] = (unsigned char)(TOKEN_VERSION << 4 | (t->kind & 0x0f));
	n += put_varint(raw + n, t->subscriber_id);
	n += put_varint(raw + n, t->list_id);
	n += put_varint(raw + n, t->issue_id);
	if (mac(k, raw, n, raw + n) < 0)
		return -1;
	token_b64url_encode(raw, n + TOKEN_MAC_LEN, out);
	return 0;
}

int
token_verify(const struct token_key *k, const char *s, size_t len, struct token *out)
{
	unsigned char raw[PAYLOAD_MAX + TOKEN_MAC_LEN], want[TOKEN_MAC_LEN];
	long n;
	size_t pos = 1, used;
	unsigned long long ids[3];
	int i;

	if (len == 0 || len >= TOKEN_MAX)
		return -1;
	n = b64url_decode(s, len, raw, sizeof raw);
	if (n < 1 + 3 + TOKEN_MAC_LEN)
		return -1;
	if ((raw[0] >> 4) != TOKEN_VERSION)
		return -1;
	for (i = 0; i < 3; i++) {
		used = get_varint(raw + pos, (size_t)n - TOKEN_MAC_LEN - pos, &ids[i]);
		if (!used)
			return -1;
		pos += used;
	}
	if (pos + TOKEN_MAC_LEN != (size_t)n)
		return -1;
	if (mac(k, raw, pos, want) < 0)
		return -1;
	if (CRYPTO_memcmp(want, raw + pos, TOKEN_MAC_LEN) != 0)
		return -1;
	out->kind = (enum token_kind)(raw[0] & 0x0f);
	out->subscriber_id = ids[0];
	out->list_id = ids[1];
	out->issue_id = ids[2];
	return 0;
}

int
token_key_load(const char *path, struct token_key *k, struct herr *err)
{
	struct stat st;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return herr_set(err, errno == ENOENT ? EX_NOINPUT : EX_CONFIG, path,
		                "cannot read token secret: %s%s", strerror(errno),
		                errno == ENOENT ? " (run 'herald init')" : "");
	if (fstat(fd, &st) < 0 || st.st_size != TOKEN_SECRET_LEN) {
		close(fd);
		return herr_set(err, EX_CONFIG, path, "token secret must be exactly %d bytes",
		                TOKEN_SECRET_LEN);
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return herr_set(err, EX_CONFIG, path,
		                "token secret is readable by others; chmod 600 it");
	}
	n = read(fd, k->secret, TOKEN_SECRET_LEN);
	close(fd);
	if (n != TOKEN_SECRET_LEN)
		return herr_set(err, EX_IOERR, path, "short read of token secret");
	return 0;
}

int
token_key_create(const char *path, struct herr *err)
{
	unsigned char secret[TOKEN_SECRET_LEN];
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		return herr_set(err, EX_CANTCREAT, path, "cannot create token secret: %s",
		                strerror(errno));
	}
	if (RAND_bytes(secret, sizeof secret) != 1 ||
	    write(fd, secret, sizeof secret) != (ssize_t)sizeof secret || fsync(fd) < 0) {
		OPENSSL_cleanse(secret, sizeof secret);
		close(fd);
		unlink(path);
		return herr_set(err, EX_IOERR, path, "cannot write token secret");
	}
	OPENSSL_cleanse(secret, sizeof secret);
	close(fd);
	return 1;
}
