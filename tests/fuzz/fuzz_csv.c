/*
 * fuzz_csv.c - libFuzzer target for the subscriber CSV import
 * (csvimport_read_columns(), src/csvimport.c).
 *
 * Input: one option byte, then the file.  The option byte chooses
 *   bits 0-1  the columns: default (email, name); --email-column
 *             "E-mail Address"; --email-column Email --name-column
 *             "Full Name"; --name-column email (a usage error);
 *   bit 2     the row handler stops the read at the third good row
 *             (the caller's "database failed" path);
 *   bit 3     one more byte, K, follows the option byte, and the file
 *             starts with as many blank lines (LF) as make its byte K the
 *             last one of the first 16 KiB block: csvimport.c reads 16 KiB
 *             blocks, so small inputs reach its block-boundary code (a CRLF
 *             cut in two, a quote open across blocks) too.
 * The file is read from fmemopen(); no database is involved (the import
 * command stores the rows; this module only parses and checks them).
 *
 * Besides "no crash, no leak, no UB" (ASan, UBSan), the promises of
 * include/herald/csvimport.h and invariant (4) of src/csvimport.c are
 * checked, and a broken one is an abort():
 *   - every field handed to the row handler (name, attribute keys and
 *     values) is valid UTF-8 without C0/DEL/C1 controls, at most
 *     CSVIMPORT_FIELD_MAX bytes, with no surrounding spaces or tabs;
 *   - the address is one address_parse() accepts again with the same key,
 *     and no key is passed twice (duplicates are bad rows);
 *   - at most CSVIMPORT_COLUMNS_MAX - 1 attributes;
 *   - good and bad rows come with strictly increasing line numbers >= 1;
 *   - messages (bad-row reasons, notes, the error) are one line;
 *   - -1 comes with an error code; no callback after the handler stopped.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/address.h"
#include "herald/csvimport.h"
#include "herald/herr.h"
#include "herald/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CSV_BLOCK 16384 /* csvimport.c's read size */

struct state {
	int           stop_at_third;
	int           stopped;
	unsigned      good;
	unsigned long last_line; /* of the last good or bad row */
	char        **keys;      /* the keys of the good rows, to spot a duplicate */
	size_t        n_keys, cap_keys;
};

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_csv: broken promise: %s (%.200s)\n", what, detail ? detail : "");
	abort();
}

static void
check_one_line(const char *s, const char *what)
{
	if (s == NULL)
		broken("NULL message", what);
	if (strchr(s, '\n') || strchr(s, '\r'))
		broken("message is more than one line", what);
}

/* Invariant (4) of csvimport.c, the size cap and the trimming. */
static void
check_field(const char *s, const char *what)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned long cp;
	size_t n, i, k;

	if (s == NULL)
		broken("NULL field", what);
	n = strlen(s);
	if (n > CSVIMPORT_FIELD_MAX)
		broken("field longer than CSVIMPORT_FIELD_MAX", what);
	if (n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		broken("field not trimmed", s);
	for (i = 0; i < n; i += k) {
		if ((k = utf8_seq(u + i, n - i, &cp)) == 0)
			broken("field is not UTF-8", what);
		if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
			broken("control character in a field", what);
	}
}

static void
line_order(struct state *st, unsigned long line)
{
	if (line == 0 || line <= st->last_line)
		broken("row line numbers not increasing", "");
	st->last_line = line;
}

static int
on_row(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct state *st = ctx;
	struct address again;
	struct herr e2;
	char **grown;
	size_t i;

	if (st->stopped)
		broken("row handler called after it stopped the read", "");
	line_order(st, row->line);
	herr_clear(&e2);
	if (address_parse(row->address.ascii, &again, &e2) < 0)
		broken("good row's address does not parse again", row->address.ascii);
	if (strcmp(again.key, row->address.key) != 0)
		broken("good row's address has another key when parsed again", row->address.key);
	for (i = 0; i < st->n_keys; i++)
		if (!strcmp(st->keys[i], row->address.key))
			broken("duplicate address passed as a good row", row->address.key);
	check_field(row->name, "name");
	if (row->n_attrs >= CSVIMPORT_COLUMNS_MAX)
		broken("too many attributes", "");
	if (row->n_attrs > 0 && (row->attr_keys == NULL || row->attr_values == NULL))
		broken("attributes missing", "");
	for (i = 0; i < row->n_attrs; i++) {
		check_field(row->attr_keys[i], "attribute key");
		if (row->attr_keys[i][0] == '\0')
			broken("empty attribute key", "");
		check_field(row->attr_values[i], "attribute value");
	}
	if (st->n_keys == st->cap_keys) {
		st->cap_keys = st->cap_keys ? 2 * st->cap_keys : 16;
		if (!(grown = realloc(st->keys, st->cap_keys * sizeof *grown)))
			abort();
		st->keys = grown;
	}
	if (!(st->keys[st->n_keys] = strdup(row->address.key)))
		abort();
	st->n_keys++;
	if (st->stop_at_third && ++st->good == 3) {
		st->stopped = 1;
		return herr_set(err, EX_CANTCREAT, "db", "stop here");
	}
	return 0;
}

static void
on_bad(void *ctx, unsigned long line, const char *reason)
{
	struct state *st = ctx;

	if (st->stopped)
		broken("bad-row handler called after the read stopped", "");
	line_order(st, line);
	check_one_line(reason, "bad-row reason");
}

static void
on_note(void *ctx, unsigned long line, const char *message)
{
	struct state *st = ctx;

	if (st->stopped)
		broken("note handler called after the read stopped", "");
	if (line == 0)
		broken("note without a line", message);
	check_one_line(message, "note");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct csvimport_columns choices[4] = {
		{ NULL, NULL },
		{ "E-mail Address", NULL },
		{ "Email", "Full Name" },
		{ NULL, "email" },
	};
	struct state st;
	struct csvimport_handler h = { on_row, on_bad, on_note, NULL, 0 };
	struct herr err;
	unsigned char opt;
	char *file;
	size_t pad = 0, n, i;
	FILE *fp;
	int rc;

	if (size < 1)
		return 0;
	opt = data[0];
	data++;
	size--;
	if (opt & 8) {
		if (size < 1)
			return 0;
		pad = CSV_BLOCK - 1 - data[0];
		data++;
		size--;
	}
	n = pad + size;
	/* An empty file is an empty stream: glibc's fmemopen() takes size 0. */
	if (!(file = malloc(n ? n : 1)))
		return 0;
	memset(file, '\n', pad);
	if (size)
		memcpy(file + pad, data, size);
	if (!(fp = fmemopen(file, n, "r"))) {
		free(file);
		return 0;
	}

	memset(&st, 0, sizeof st);
	st.stop_at_third = (opt & 4) != 0;
	h.ctx = &st;
	herr_clear(&err);
	rc = csvimport_read_columns(fp, "fuzz.csv", (opt & 3) ? &choices[opt & 3] : NULL, &h,
	                            &err);
	if (rc < 0) {
		if (err.code == 0)
			broken("-1 without an error code", "");
		check_one_line(err.msg, "error message");
		check_one_line(err.where, "error place");
	} else {
		if (rc != 0)
			broken("neither 0 nor -1", "");
		if (st.stopped)
			broken("0 although the row handler stopped the read", "");
		if ((opt & 3) == 3)
			broken("0 although both columns are 'email'", "");
	}
	fclose(fp);
	free(file);
	for (i = 0; i < st.n_keys; i++)
		free(st.keys[i]);
	free(st.keys);
	return 0;
}
