/*
 * fuzz_address.c - libFuzzer target for address parsing (address_parse(),
 * address_parse_mailbox(); src/address.c) and for the header a parsed
 * mailbox becomes (mime_format_mailbox(), mime_add_header(); src/mime.c).
 *
 * Input: one string (cut at its first NUL, as C callers see it), given to
 * address_parse(), and to address_parse_mailbox() with a display-name
 * buffer of 256 bytes, of 8 bytes and none (NULL).  Addresses come from
 * CSV imports, sign-up forms, front matter and config files; mailboxes
 * from front matter (from:, reply_to:) and config.
 *
 * Broken promises of include/herald/address.h and mime.h abort():
 *   - on failure: EX_DATAERR, the address zeroed, the name "", and a
 *     message that is one line (no raw CR or LF, whatever the input);
 *   - on success: ascii is ASCII and at most ADDRESS_MAX bytes, with one '@',
 *     a local part of at most ADDRESS_LOCAL_MAX bytes; key is ascii
 *     lower-cased; domain is ascii's part after '@', lower-case; addr has
 *     the local part as given; ascii parses again to the same key, ascii
 *     and domain, and so does addr (the U-label form, as stored);
 *   - a mailbox's address passes the same checks; its display name ends
 *     within the buffer and is one mime_format_mailbox() takes (the parser
 *     refused controls, line breaks and bad UTF-8), and when
 *     mime_add_header() writes "From: <that>", the header has CRLF only at
 *     folds (each followed by a space or tab) and at its end, and no line
 *     longer than 998 octets.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/address.h"
#include "herald/buf.h"
#include "herald/herr.h"
#include "herald/mime.h"
#include "herald/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_address: broken promise: %s (%.300s)\n", what,
	        detail ? detail : "");
	abort();
}

static int
is_zero(const void *p, size_t n)
{
	const unsigned char *u = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (u[i])
			return 0;
	return 1;
}

static void
check_failure(const struct address *a, const struct herr *err, const char *what)
{
	if (err->code != EX_DATAERR)
		broken("failure without EX_DATAERR", what);
	if (!is_zero(a, sizeof *a))
		broken("failure left the address filled", what);
	if (strchr(err->msg, '\n') || strchr(err->msg, '\r'))
		broken("error message holds a line break", err->msg);
	if (err->msg[0] == '\0')
		broken("failure without a message", what);
}

static void
check_address(const struct address *a, const char *what)
{
	struct address b;
	struct herr err;
	const char *at;
	size_t i, n = strlen(a->ascii), local;

	if (n == 0 || n > ADDRESS_MAX)
		broken("ascii empty or too long", a->ascii);
	for (i = 0; i < n; i++)
		if ((unsigned char)a->ascii[i] >= 0x80 || (unsigned char)a->ascii[i] <= 0x20)
			broken("ascii holds a non-ASCII byte, a space or a control", a->ascii);
	if (!(at = strchr(a->ascii, '@')) || strchr(at + 1, '@'))
		broken("ascii does not hold exactly one '@'", a->ascii);
	local = (size_t)(at - a->ascii);
	if (local == 0 || local > ADDRESS_LOCAL_MAX)
		broken("local part empty or too long", a->ascii);
	if (strcmp(at + 1, a->domain))
		broken("domain is not ascii's part after '@'", a->ascii);
	for (i = 0; a->domain[i]; i++)
		if (isupper((unsigned char)a->domain[i]))
			broken("domain not lower-case", a->domain);
	for (i = 0; i <= n; i++)
		if (a->key[i] != (char)tolower((unsigned char)a->ascii[i]))
			broken("key is not ascii lower-cased", a->key);
	if (strncmp(a->addr, a->ascii, local + 1))
		broken("addr does not keep the local part as given", a->addr);

	herr_clear(&err);
	if (address_parse(a->ascii, &b, &err) < 0) {
		broken("ascii form does not parse again", err.msg);
	}
	if (strcmp(b.key, a->key) || strcmp(b.ascii, a->ascii) || strcmp(b.domain, a->domain))
		broken("ascii form parses to another address", a->ascii);
	herr_clear(&err);
	if (address_parse(a->addr, &b, &err) < 0)
		broken("addr (U-label form) does not parse again", err.msg);
	if (strcmp(b.key, a->key) || strcmp(b.addr, a->addr))
		broken("addr (U-label form) parses to another address", a->addr);
	(void)what;
}

/* The header a mailbox becomes (front matter from: -> From:). */
static void
check_header(const char *name, const struct address *a)
{
	struct buf mb = BUF_INIT(1u << 16), hdr = BUF_INIT(1u << 16);
	struct herr err;
	size_t i, start;

	herr_clear(&err);
	if (mime_format_mailbox(&mb, name, a->ascii, &err) < 0)
		broken("mime_format_mailbox refused a parsed mailbox", err.msg);
	herr_clear(&err);
	if (mime_add_header(&hdr, "From", buf_str(&mb), &err) == 0) {
		if (hdr.len < 2 || hdr.data[hdr.len - 2] != '\r' || hdr.data[hdr.len - 1] != '\n')
			broken("header does not end with CRLF", hdr.data);
		for (i = 0, start = 0; i < hdr.len; i++)
			if (hdr.data[i] == '\n') {
				if (i - start > 999) /* 998 octets and the CR */
					broken("header line longer than 998 octets", hdr.data);
				start = i + 1;
			}
		for (i = 0; i + 2 < hdr.len; i++) {
			if (hdr.data[i] == '\n' && (i == 0 || hdr.data[i - 1] != '\r'))
				broken("bare LF in a header", hdr.data);
			if (hdr.data[i] == '\r' && (hdr.data[i + 1] != '\n' ||
			                           (hdr.data[i + 2] != ' ' && hdr.data[i + 2] != '\t')))
				broken("line break in a header that is not a fold", hdr.data);
		}
	} else if (err.code != EX_DATAERR)
		broken("mime_add_header failed without EX_DATAERR", err.msg);
	buf_free(&mb);
	buf_free(&hdr);
}

static void
mailbox(const char *in, size_t name_size, int with_name)
{
	char name[256];
	struct address a;
	struct herr err;

	memset(name, 'X', sizeof name);
	herr_clear(&err);
	if (address_parse_mailbox(in, with_name ? name : NULL, name_size, &a, &err) < 0) {
		check_failure(&a, &err, "address_parse_mailbox");
		if (with_name && name[0] != '\0')
			broken("failure left a display name", in);
		return;
	}
	check_address(&a, "address_parse_mailbox");
	if (!with_name)
		return;
	if (memchr(name, '\0', name_size) == NULL)
		broken("display name not terminated within its buffer", in);
	check_header(name, &a);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct address a;
	struct herr err;
	char *in;

	if (!(in = malloc(size + 1)))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	herr_clear(&err);
	if (address_parse(in, &a, &err) < 0)
		check_failure(&a, &err, "address_parse");
	else
		check_address(&a, "address_parse");

	mailbox(in, 256, 1);
	mailbox(in, 8, 1);
	mailbox(in, 0, 0);
	free(in);
	return 0;
}
