/*
 * fuzz_bounce.c - libFuzzer target for bounce_parse() (src/bounce.c).
 *
 * Feeds any bytes to bounce_parse() as one returned message and checks the
 * promises of include/herald/bounce.h and the invariants of src/bounce.c,
 * beyond "no crash" (which ASan and UBSan watch):
 *   - -1 comes with an error code, and no report;
 *   - 0 comes with a report whose strings are never NULL, are valid UTF-8
 *     (invariant (4)), whose diagnostics are one line, whose reason and
 *     shape are set, whose digest is 64 hex digits, and with at most 1000
 *     recipients (invariant (3)); every recipient's why line is set,
 *     terminated, one line of printable ASCII, and names its reason;
 *   - a hang is a timeout (run.sh gives -timeout=10).
 * A broken promise calls abort(), which libFuzzer reports as a crash and
 * saves the input.  The input is not NUL-terminated, so a read past `len`
 * is caught too.
 *
 * Seeds: tests/fuzz/corpus/bounce/, replayed by ctest (fuzz.replay.bounce);
 * timed runs: tests/fuzz/run.sh bounce SECONDS (see tests/fuzz/README.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/bounce.h"
#include "herald/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
broken(const char *what, const char *field)
{
	fprintf(stderr, "fuzz_bounce: broken promise: %s (%s)\n", what, field);
	abort();
}

static void
check_text(const char *s, const char *field, int one_line)
{
	size_t n;

	if (s == NULL)
		broken("NULL string", field);
	n = strlen(s);
	if (utf8_invalid_at((const unsigned char *)s, n) != n)
		broken("not UTF-8", field);
	if (one_line && (memchr(s, '\n', n) != NULL || memchr(s, '\r', n) != NULL))
		broken("more than one line", field);
}

static void
check_report(const struct bounce_report *r)
{
	size_t i;

	check_text(r->message_id, "message_id", 0);
	check_text(r->from, "from", 0);
	check_text(r->subject, "subject", 0);
	check_text(r->envelope_to, "envelope_to", 0);
	check_text(r->orig_message_id, "orig_message_id", 0);
	check_text(r->orig_to, "orig_to", 0);
	check_text(r->orig_from, "orig_from", 0);
	if (r->shape == NULL || *r->shape == '\0')
		broken("no shape", "shape");
	if (strlen(r->sha256) != 64 || strspn(r->sha256, "0123456789abcdef") != 64)
		broken("not a hex SHA-256", "sha256");
	if (r->n_recipients > 1000)
		broken("more than 1000 recipients", "n_recipients");
	if (r->n_recipients > 0 && r->recipients == NULL)
		broken("recipients missing", "recipients");
	for (i = 0; i < r->n_recipients; i++) {
		const struct bounce_recipient *b = &r->recipients[i];

		check_text(b->recipient, "recipient", 1);
		check_text(b->diagnostic, "diagnostic", 1);
		check_text(b->remote_mta, "remote_mta", 0);
		check_text(b->action, "action", 0);
		check_text(b->feedback_type, "feedback_type", 0);
		if (memchr(b->status, '\0', sizeof b->status) == NULL)
			broken("status not terminated", "status");
		if (b->reason == NULL || *b->reason == '\0')
			broken("no reason", "reason");
		if (b->cls < BOUNCE_HARD || b->cls > BOUNCE_DELIVERED)
			broken("class out of range", "cls");
		if (bounce_class_name(b->cls) == NULL)
			broken("class without a name", "cls");
		if (memchr(b->why, '\0', sizeof b->why) == NULL || b->why[0] == '\0')
			broken("why not set or not terminated", "why");
		for (const char *w = b->why; *w; w++)
			if ((unsigned char)*w < 0x20 || (unsigned char)*w > 0x7e)
				broken("why not printable ASCII", "why");
		if (strlen(b->why) + 1 < sizeof b->why && strstr(b->why, b->reason) == NULL)
			broken("why does not name the reason", "why");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounce_report *r = NULL;
	struct herr err;

	herr_clear(&err);
	if (bounce_parse((const char *)data, size, NULL, &r, &err) == 0) {
		if (r == NULL)
			broken("0 without a report", "out");
		check_report(r);
		bounce_report_free(r);
	} else {
		if (r != NULL)
			broken("-1 with a report", "out");
		if (err.code == 0)
			broken("-1 without an error code", "err");
	}
	return 0;
}
