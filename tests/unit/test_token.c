/*
 * test_token.c - tokens in links (src/token.c).
 *
 * A token must survive a round trip with every field intact, and any change
 * - one character, truncation, extension, another secret, a non-canonical
 * spelling of the same bytes - must make token_verify() fail.  Also the
 * secret file: created 0600, never overwritten, refused when readable by
 * others or of the wrong size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "herald/token.h"

static struct token_key key_a, key_b;

static int
setup(void **state)
{
	(void)state;
	memset(key_a.secret, 0x11, sizeof key_a.secret);
	memset(key_b.secret, 0x11, sizeof key_b.secret);
	key_b.secret[31] ^= 1; /* one bit apart */
	return 0;
}

/* token_hmac() writes HMAC out over SHA-256 digests; OpenSSL's own HMAC()
 * is the reference, at lengths around SHA-256's 64-byte block and its
 * 55/56-byte padding edge. */
static void
test_token_hmac_is_hmac_sha256(void **state)
{
	static const size_t lens[] = { 0, 1, 31, 55, 56, 63, 64, 65, 119, 120, 128, 1000 };
	unsigned char data[1000], want[EVP_MAX_MD_SIZE], got[TOKEN_HMAC_LEN];
	unsigned int n = 0;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)(i * 131 + 7);
	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		assert_non_null(HMAC(EVP_sha256(), key_a.secret, TOKEN_SECRET_LEN, data, lens[i],
		                     want, &n));
		assert_int_equal(n, TOKEN_HMAC_LEN);
		assert_int_equal(token_hmac(&key_a, data, lens[i], got), 0);
		assert_memory_equal(got, want, TOKEN_HMAC_LEN);
		/* and the key is in it */
		assert_int_equal(token_hmac(&key_b, data, lens[i], got), 0);
		assert_memory_not_equal(got, want, TOKEN_HMAC_LEN);
	}
}

static void
test_token_round_trip(void **state)
{
	struct token t = { TOKEN_CLICK, 123456789ULL, 7, 42 }, out;
	char s[TOKEN_MAX];
	size_t i;

	(void)state;
	assert_int_equal(token_make(&key_a, &t, s), 0);
	for (i = 0; s[i]; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                       "0123456789-_", s[i]));
	assert_int_equal(token_verify(&key_a, s, strlen(s), &out), 0);
	assert_int_equal(out.kind, TOKEN_CLICK);
	assert_true(out.subscriber_id == 123456789ULL);
	assert_true(out.list_id == 7);
	assert_true(out.issue_id == 42);
}

static void
test_token_compact(void **state)
{
	struct token t = { TOKEN_UNSUBSCRIBE, 50000, 3, 120 };
	char s[TOKEN_MAX];

	(void)state;
	assert_int_equal(token_make(&key_a, &t, s), 0);
	/* 1 + 3 + 1 + 1 bytes of ids + 12 of MAC = 18 bytes -> 24 characters */
	assert_int_equal(strlen(s), 24);
}

static void
test_token_verify_rejects_any_changed_character(void **state)
{
	struct token t = { TOKEN_UNSUBSCRIBE, 99, 1, 5 }, out;
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char s[TOKEN_MAX], m[TOKEN_MAX];
	size_t i, j, n;

	(void)state;
	assert_int_equal(token_make(&key_a, &t, s), 0);
	n = strlen(s);
	for (i = 0; i < n; i++) {
		for (j = 0; alphabet[j]; j++) {
			if (alphabet[j] == s[i])
				continue;
			memcpy(m, s, n + 1);
			m[i] = alphabet[j];
			assert_int_equal(token_verify(&key_a, m, n, &out), -1);
		}
	}
}

static void
test_token_verify_rejects_truncated_and_extended(void **state)
{
	struct token t = { TOKEN_OPEN, 1, 2, 3 }, out;
	char s[TOKEN_MAX], m[TOKEN_MAX + 8];
	size_t n, i;

	(void)state;
	assert_int_equal(token_make(&key_a, &t, s), 0);
	n = strlen(s);
	for (i = 0; i < n; i++)
		assert_int_equal(token_verify(&key_a, s, i, &out), -1);
	snprintf(m, sizeof m, "%sA", s);
	assert_int_equal(token_verify(&key_a, m, n + 1, &out), -1);
	snprintf(m, sizeof m, "%sAA", s);
	assert_int_equal(token_verify(&key_a, m, n + 2, &out), -1);
	assert_int_equal(token_verify(&key_a, "", 0, &out), -1);
	assert_int_equal(token_verify(&key_a, "not a token!", 12, &out), -1);
}

static void
test_token_verify_rejects_other_secret(void **state)
{
	struct token t = { TOKEN_UNSUBSCRIBE, 99, 1, 5 }, out;
	char s[TOKEN_MAX];

	(void)state;
	assert_int_equal(token_make(&key_a, &t, s), 0);
	assert_int_equal(token_verify(&key_b, s, strlen(s), &out), -1);
}

static void
test_token_kinds_are_not_interchangeable(void **state)
{
	struct token a = { TOKEN_OPEN, 5, 6, 7 }, b = a, out;
	char sa[TOKEN_MAX], sb[TOKEN_MAX];

	(void)state;
	b.kind = TOKEN_UNSUBSCRIBE;
	assert_int_equal(token_make(&key_a, &a, sa), 0);
	assert_int_equal(token_make(&key_a, &b, sb), 0);
	assert_string_not_equal(sa, sb);
	assert_int_equal(token_verify(&key_a, sa, strlen(sa), &out), 0);
	assert_int_equal(out.kind, TOKEN_OPEN);
	assert_int_equal(token_verify(&key_a, sb, strlen(sb), &out), 0);
	assert_int_equal(out.kind, TOKEN_UNSUBSCRIBE);
}

static void
test_token_large_ids(void **state)
{
	struct token t = { TOKEN_BOUNCE, 0xFFFFFFFFFFFFFFFFULL, 0, 1ULL << 62 }, out;
	char s[TOKEN_MAX];

	(void)state;
	assert_int_equal(token_make(&key_a, &t, s), 0);
	assert_true(strlen(s) < TOKEN_MAX);
	assert_int_equal(token_verify(&key_a, s, strlen(s), &out), 0);
	assert_true(out.subscriber_id == 0xFFFFFFFFFFFFFFFFULL);
	assert_true(out.list_id == 0);
	assert_true(out.issue_id == 1ULL << 62);
}

static void
test_token_key_file(void **state)
{
	char dir[] = "/tmp/herald-token-XXXXXX", path[256];
	struct token_key k1, k2;
	struct herr err;
	struct stat st;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/secret", dir);
	assert_int_equal(token_key_load(path, &k1, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(token_key_create(path, &err), 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, TOKEN_SECRET_LEN);
	assert_int_equal(token_key_load(path, &k1, &err), 0);
	/* a second create keeps the existing secret */
	assert_int_equal(token_key_create(path, &err), 0);
	assert_int_equal(token_key_load(path, &k2, &err), 0);
	assert_memory_equal(k1.secret, k2.secret, TOKEN_SECRET_LEN);
	/* readable by others: refused */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(token_key_load(path, &k2, &err), -1);
	assert_int_equal(err.code, EX_CONFIG);
	assert_non_null(strstr(err.msg, "readable by others"));
	/* wrong size: refused */
	assert_int_equal(chmod(path, 0600), 0);
	assert_non_null(fp = fopen(path, "a"));
	fputc('x', fp);
	fclose(fp);
	assert_int_equal(token_key_load(path, &k2, &err), -1);
	assert_non_null(strstr(err.msg, "exactly 32 bytes"));
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_hmac_is_hmac_sha256),
		cmocka_unit_test(test_token_round_trip),
		cmocka_unit_test(test_token_compact),
		cmocka_unit_test(test_token_verify_rejects_any_changed_character),
		cmocka_unit_test(test_token_verify_rejects_truncated_and_extended),
		cmocka_unit_test(test_token_verify_rejects_other_secret),
		cmocka_unit_test(test_token_kinds_are_not_interchangeable),
		cmocka_unit_test(test_token_large_ids),
		cmocka_unit_test(test_token_key_file),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
