/*
 * test_csvimport.c - csvimport_read() (src/csvimport.c).
 *
 * Every test writes a CSV from a string to a tmpfile(), reads it, and
 * compares the exact sequence of handler calls (good rows with their
 * fields, bad rows and notes with their physical line numbers and reasons)
 * with the expected one.  Covered: examples/subscribers.csv, the admins'
 * messy spreadsheet export (its rows written out in the test, so it reads
 * no file), BOM, CRLF / mixed / CR-only line ends, a CRLF cut
 * by the read block, line numbers after quoted line breaks, quoted commas
 * and doubled quotes, header matching, every file-level error, every
 * bad-row reason, blank lines and empty rows, trimming notes, the size caps
 * and a row handler that stops the read; a header without the address
 * column (the header shown, the likely column suggested), the columns the
 * caller names (--email-column, --name-column) and the note about a likely
 * name column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"
#include "herald/csvimport.h"

#define MAX_EVENTS 1000

struct log {
	char *ev[MAX_EVENTS]; /* "LINE row|bad|note ...", in call order */
	size_t n;
	int stop_at;          /* row handler fails on this line, 0 = never */
};

static void
add(struct log *l, struct buf *b)
{
	assert_true(l->n < MAX_EVENTS);
	l->ev[l->n++] = buf_detach(b);
}

static int
on_row(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct log *l = ctx;
	struct buf b = BUF_INIT(1 << 20);
	size_t i;

	if (l->stop_at && row->line == (unsigned long)l->stop_at)
		return herr_set(err, EX_CANTCREAT, "db", "stop here");
	assert_int_equal(buf_addf(&b, "%lu row %s|%s", row->line, row->address.ascii,
	    row->name), 0);
	for (i = 0; i < row->n_attrs; i++)
		assert_int_equal(buf_addf(&b, "|%s=%s", row->attr_keys[i],
		    row->attr_values[i]), 0);
	add(l, &b);
	return 0;
}

static void
on_bad(void *ctx, unsigned long line, const char *reason)
{
	struct buf b = BUF_INIT(4096);

	assert_int_equal(buf_addf(&b, "%lu bad %s", line, reason), 0);
	add(ctx, &b);
}

static void
on_note(void *ctx, unsigned long line, const char *message)
{
	struct buf b = BUF_INIT(4096);

	assert_int_equal(buf_addf(&b, "%lu note %s", line, message), 0);
	add(ctx, &b);
}

/* Read `len` bytes of `csv` as "t.csv" into `l` with the columns `cols`
 * (NULL: csvimport_read); returns what the read returned. */
static int
run_cols(const char *csv, size_t len, const struct csvimport_columns *cols, struct log *l,
         struct herr *err)
{
	struct csvimport_handler h = { on_row, on_bad, on_note, l, 0 };
	FILE *fp = tmpfile();
	int rc;

	assert_non_null(fp);
	assert_int_equal(fwrite(csv, 1, len, fp), len);
	rewind(fp);
	herr_clear(err);
	rc = cols ? csvimport_read_columns(fp, "t.csv", cols, &h, err)
	          : csvimport_read(fp, "t.csv", &h, err);
	fclose(fp);
	return rc;
}

static int
run_n(const char *csv, size_t len, struct log *l, struct herr *err)
{
	return run_cols(csv, len, NULL, l, err);
}

static int
run(const char *csv, struct log *l, struct herr *err)
{
	return run_n(csv, strlen(csv), l, err);
}

/* The log must be exactly `expect` (NULL-terminated); frees it. */
static void
check_log(struct log *l, const char *const *expect)
{
	size_t i;

	for (i = 0; expect[i] && i < l->n; i++)
		assert_string_equal(l->ev[i], expect[i]);
	if (expect[i] || i != l->n)
		fail_msg("expected %zu events, got %zu (first extra: '%s')", i + (expect[i] ? 1 : 0),
		    l->n, i < l->n ? l->ev[i] : expect[i]);
	for (i = 0; i < l->n; i++)
		free(l->ev[i]);
	l->n = 0;
}

/* Read, expect success and exactly `expect`. */
static void
expect_ok(const char *csv, const char *const *expect)
{
	struct log l = { .n = 0 };
	struct herr err;

	if (run(csv, &l, &err) != 0)
		fail_msg("read failed: %s: %s", err.where, err.msg);
	check_log(&l, expect);
}

/* Read, expect a file error with `where` and `msg`, and `expect` before it. */
static void
expect_fail(const char *csv, const char *where, const char *msg, const char *const *expect)
{
	struct log l = { .n = 0 };
	struct herr err;

	assert_int_equal(run(csv, &l, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, where);
	assert_string_equal(err.msg, msg);
	check_log(&l, expect);
}

static const char *const none[] = { NULL };

static void
test_csvimport_read_sample(void **state)
{
	/* The rows of examples/subscribers.csv; lines 10-11 and 13-14 are one
	 * record each, so the numbers after them are physical lines. */
	static const char csv[] =
	    "email,name,organisation,role\n"
	    "ada.lovelace@example.org,Ada Lovelace,Lambeth Council,Social worker\n"
	    "grace@example.net,Grace Hopper,Hillingdon Council,Team manager\n"
	    "\"o'brien@example.com\",\"Seán O'Brien\",Sussex University,Researcher\n"
	    "zoë.müller@example.de,Zoë Müller,,Practitioner\n"
	    "\"jones@example.org\",\"Jones, Alex\",\"Weston-Super-Mare, North Somerset\","
	    "Principal social worker\n"
	    "not-an-email,Broken Row,Nowhere,None\n"
	    ",Missing Email,Nowhere,None\n"
	    "GRACE@EXAMPLE.NET,Grace Duplicate,Hillingdon Council,Team manager\n"
	    "\"multi@example.org\",\"Line\nBreak\",Lambeth Council,Social worker\n"
	    "trailing.space@example.org ,Trailing Space,Lambeth Council,Social worker\n"
	    "evil@example.org,\"Eve\nBcc: victim@example.com\",Attack,Header injection attempt\n";
	static const char *const expect[] = {
		"2 row ada.lovelace@example.org|Ada Lovelace|organisation=Lambeth Council"
		    "|role=Social worker",
		"3 row grace@example.net|Grace Hopper|organisation=Hillingdon Council"
		    "|role=Team manager",
		"4 row o'brien@example.com|Seán O'Brien|organisation=Sussex University"
		    "|role=Researcher",
		"5 bad invalid address 'zoë.müller@example.de': non-ASCII local part needs "
		    "SMTPUTF8, which herald does not send",
		"6 row jones@example.org|Jones, Alex"
		    "|organisation=Weston-Super-Mare, North Somerset|role=Principal social worker",
		"7 bad invalid address 'not-an-email': missing '@'",
		"8 bad missing address",
		"9 bad duplicate of line 3",
		"10 bad line break in field 'name'",
		"12 note surrounding whitespace removed from address 'trailing.space@example.org'",
		"12 row trailing.space@example.org|Trailing Space|organisation=Lambeth Council"
		    "|role=Social worker",
		"13 bad line break in field 'name'",
		NULL
	};

	(void)state;
	expect_ok(csv, expect);
}

static void
test_csvimport_read_bom_crlf(void **state)
{
	static const char *const expect[] = {
		"2 row a@x.org|A",
		"4 row b@x.org|B",
		NULL
	};

	(void)state;
	/* Excel's "CSV UTF-8": a BOM before the header, CRLF line ends. */
	expect_ok("\xef\xbb\xbf" "email,name\r\na@x.org,A\r\n\r\nb@x.org,B\r\n", expect);
}

static void
test_csvimport_read_mixed_line_ends(void **state)
{
	static const char *const expect[] = {
		"2 row a@x.org|A",
		"3 bad line break in field 'name'",
		"5 row c@x.org|C",
		"6 row d@x.org|D",
		"7 row e@x.org|E",
		NULL
	};

	(void)state;
	/* LF, CRLF, CRLF inside quotes (one line end), a lone CR (counted as
	 * a line end, as Python's universal newlines do), no final newline. */
	expect_ok("email,name\na@x.org,A\r\nb@x.org,\"B\r\nB\"\nc@x.org,C\rd@x.org,D\n"
	    "e@x.org,E", expect);
}

static void
test_csvimport_read_cr_only(void **state)
{
	static const char *const expect[] = {
		"2 row a@x.org|A",
		"4 bad missing address",
		NULL
	};

	(void)state;
	/* Classic Mac OS line ends. */
	expect_ok("email,name\ra@x.org,A\r\r,B\r", expect);
}

static void
test_csvimport_read_crlf_across_blocks(void **state)
{
	struct buf b = BUF_INIT(1 << 20);
	struct log l = { .n = 0 };
	struct herr err;
	unsigned long i, rows, pad;
	char want[64];

	(void)state;
	/* Move a CRLF (and the row after it) across every offset around the
	 * reader's 16 KiB block: line numbers and rows must not change. */
	for (pad = 0; pad < 24; pad++) {
		buf_reset(&b);
		assert_int_equal(buf_adds(&b, "email,name\r\n"), 0);
		for (i = 0; i < pad; i++)
			assert_int_equal(buf_addc(&b, '\r'), 0);
		for (rows = 0; b.len < 16384 + 64; rows++)
			assert_int_equal(buf_addf(&b, "u%lu@example.org,\"N\r\n%lu\"\r\n", rows,
			    rows), 0);
		assert_int_equal(run_n(buf_str(&b), b.len, &l, &err), 0);
		assert_int_equal(l.n, rows);
		for (i = 0; i < rows; i++) {
			snprintf(want, sizeof want, "%lu bad line break in field 'name'",
			    2 + pad + 2 * i);
			assert_string_equal(l.ev[i], want);
			free(l.ev[i]);
		}
		l.n = 0;
	}
	buf_free(&b);
}

static void
test_csvimport_read_quoting(void **state)
{
	static const char *const expect[] = {
		"2 row a@x.org|Smith, \"AJ\" Alex|note=he said \"\"hi\"\"",
		"3 row b@x.org||note=",
		"4 row c@x.org|O\"Brien|note=x",
		NULL
	};

	(void)state;
	/* Quoted commas and doubled quotes (RFC 4180 §2.6, §2.7), an empty
	 * quoted field, and a stray quote inside an unquoted field (kept). */
	expect_ok("email,name,note\n"
	    "\"a@x.org\",\"Smith, \"\"AJ\"\" Alex\",\"he said \"\"\"\"hi\"\"\"\"\"\n"
	    "b@x.org,\"\",\"\"\n"
	    "c@x.org,O\"Brien,x\n", expect);
}

static void
test_csvimport_read_header_matching(void **state)
{
	static const char *const expect[] = {
		"2 row a@x.org|Ada|Organisation=Lambeth|ROLE=Worker",
		NULL
	};
	static const char *const no_name[] = {
		"2 row a@x.org||team=x",
		NULL
	};

	(void)state;
	expect_ok("  EMAIL ,Name, Organisation ,\"ROLE\"\na@x.org,Ada,Lambeth,Worker\n", expect);
	/* Column order does not matter and `name` is optional. */
	expect_ok("team,Email\nx,a@x.org\n", no_name);
}

static void
test_csvimport_read_header_errors(void **state)
{
	char big[8192];
	size_t i;

	(void)state;
	expect_fail("name,organisation\nAda,Lambeth\n", "t.csv:1",
	    "no 'email' column; the header is: name, organisation; name the address "
	    "column with --email-column", none);
	expect_fail("email,Name,name\na@x.org,A,B\n", "t.csv:1",
	    "duplicate column 'name' in the header (columns 2 and 3)", none);
	expect_fail("Email,email\n", "t.csv:1",
	    "duplicate column 'email' in the header (columns 1 and 2)", none);
	expect_fail("email,,role\n", "t.csv:1", "column 2 of the header has no name", none);
	expect_fail("email,  \n", "t.csv:1", "column 2 of the header has no name", none);
	expect_fail("\n\nemail,\"na\nme\"\n", "t.csv:3",
	    "column 2 of the header contains a control character", none);
	expect_fail("email,n\xe9m\n", "t.csv:1", "column 2 of the header is not valid UTF-8",
	    none);
	expect_fail("", "t.csv", "no header row: the file is empty", none);
	expect_fail("\n \r\n\n", "t.csv", "no header row: the file is empty", none);

	/* 65 columns. */
	strcpy(big, "email");
	for (i = 1; i < 65; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big), ",c%zu", i);
	strcat(big, "\n");
	expect_fail(big, "t.csv:1", "the header has 65 columns, at most 64 are allowed", none);
	/* 64 is the cap, and it is allowed. */
	*strrchr(big, ',') = '\0';
	strcat(big, "\n");
	expect_ok(big, none);
}

static void
test_csvimport_read_unterminated_quote(void **state)
{
	static const char *const before[] = { "2 row a@x.org|A", NULL };

	(void)state;
	/* Rows before the problem were passed on: the caller discards them
	 * (see csvimport.h). */
	expect_fail("email,name\na@x.org,A\nb@x.org,\"B\nc@x.org,C\n", "t.csv:3",
	    "quoted field opened here is never closed", before);
	/* The line is where the quote opened, even when the record started
	 * earlier. */
	expect_fail("email,name\n\"b\n@x.org\",\"B\nc@x.org,C\n", "t.csv:3",
	    "quoted field opened here is never closed", none);
	expect_fail("\"email,name\n", "t.csv:1", "quoted field opened here is never closed",
	    none);
}

static void
test_csvimport_read_field_count(void **state)
{
	static const char *const expect[] = {
		"2 bad row has 1 field, header has 2",
		"3 bad row has 3 fields, header has 2",
		"4 row c@x.org|Jones",
		"5 bad row has 70 fields, header has 2",
		"6 row d@x.org|D",
		NULL
	};
	char csv[512];
	int i;

	(void)state;
	strcpy(csv, "email,name\na@x.org\nb@x.org,Jones, Alex\nc@x.org,Jones\ne@x.org");
	for (i = 1; i < 70; i++)
		strcat(csv, ",x");
	strcat(csv, "\nd@x.org,D\n");
	expect_ok(csv, expect);
}

static void
test_csvimport_read_invalid_utf8(void **state)
{
	static const char *const expect[] = {
		"2 bad not valid UTF-8",
		"3 row b@x.org|Björk",
		"4 bad not valid UTF-8",
		"5 bad not valid UTF-8",
		"6 row c@x.org|C",
		NULL
	};

	(void)state;
	/* Latin-1 ö, an overlong '/', a UTF-16 surrogate. */
	expect_ok("email,name\n"
	    "a@x.org,Bj\xf6rk\n"
	    "b@x.org,Bj\xc3\xb6rk\n"
	    "c@x.org,\xc0\xaf\n"
	    "d@x.org,\xed\xa0\x80\n"
	    "c@x.org,C\n", expect);
}

static void
test_csvimport_read_control_characters(void **state)
{
	static const char csv[] =
	    "email,name,note\n"
	    "a@x.org,A\x01" "B,x\n"
	    "b@x.org,B\tC,x\n"
	    "c@x.org,C,\x7f\n"
	    "d@x.org,D,\xc2\x85\n"          /* U+0085, a C1 control */
	    "e@x.org,E\0F,x\n"              /* a NUL byte */
	    "f@x.org,\"F\rG\",x\n"
	    "g@x.org,G,x\n";
	static const char *const expect[] = {
		"2 bad control character in field 'name'",
		"3 bad control character in field 'name'",
		"4 bad control character in field 'note'",
		"5 bad control character in field 'note'",
		"6 bad control character in field 'name'",
		"7 bad line break in field 'name'",
		"9 row g@x.org|G|note=x",
		NULL
	};
	struct log l = { .n = 0 };
	struct herr err;

	(void)state;
	assert_int_equal(run_n(csv, sizeof csv - 1, &l, &err), 0);
	check_log(&l, expect);
}

static void
test_csvimport_read_blank_lines(void **state)
{
	static const char *const expect[] = {
		"6 row a@x.org|A",
		"10 row b@x.org|B",
		NULL
	};

	(void)state;
	/* Blank lines, a line of blanks, and ",": an empty spreadsheet row. */
	expect_ok("\n\nemail,name\n\n  \t\na@x.org,A\n,\n \" \" , \n\nb@x.org,B\n\n", expect);
}

static void
test_csvimport_read_header_only(void **state)
{
	(void)state;
	expect_ok("email,name,organisation,role\n", none);
	expect_ok("email,name,organisation,role", none);
	expect_ok("email,name\r\n\r\n", none);
}

static void
test_csvimport_read_trimming(void **state)
{
	static const char *const expect[] = {
		"2 note surrounding whitespace removed from address 'a@x.org'",
		"2 row a@x.org|Ada Lovelace|role=Worker",
		"3 note surrounding whitespace removed from address 'b@x.org'",
		"3 row b@x.org|B|role=",
		"4 note surrounding whitespace removed from address 'c@x.org'",
		"4 row c@x.org|C|role=x",
		"5 row d@x.org|D|role=x",
		NULL
	};

	(void)state;
	/* Unquoted blanks; blanks inside quotes; a blank after the closing
	 * quote (libcsv must still see the comma); no note when the address
	 * was clean even if other fields were trimmed. */
	expect_ok("email,name,role\n"
	    " \ta@x.org  ,  Ada Lovelace , Worker\t\n"
	    "\"  b@x.org \",B,\n"
	    "\"c@x.org\" ,C,x\n"
	    "d@x.org, D ,x\n", expect);
}

static void
test_csvimport_read_field_size(void **state)
{
	struct buf b = BUF_INIT(1 << 20);
	struct log l = { .n = 0 };
	struct herr err;
	size_t i;

	(void)state;
	assert_int_equal(buf_adds(&b, "email,name\n"), 0);
	/* Line 2: exactly the cap, fine. */
	assert_int_equal(buf_adds(&b, "a@x.org,"), 0);
	for (i = 0; i < CSVIMPORT_FIELD_MAX; i++)
		assert_int_equal(buf_addc(&b, 'n'), 0);
	/* Line 3: one more byte. */
	assert_int_equal(buf_adds(&b, "\nb@x.org,"), 0);
	for (i = 0; i <= CSVIMPORT_FIELD_MAX; i++)
		assert_int_equal(buf_addc(&b, 'n'), 0);
	/* Lines 4-303: a quoted field of 300 lines, 30000 bytes, cut back
	 * inside libcsv while it grows. */
	assert_int_equal(buf_adds(&b, "\nc@x.org,\""), 0);
	for (i = 0; i < 300; i++)
		assert_int_equal(buf_addf(&b, "%099zu%s", i, i < 299 ? "\n" : ""), 0);
	/* Line 304: one 40000-byte line, longer than a read block. */
	assert_int_equal(buf_adds(&b, "\"\nd@x.org,"), 0);
	for (i = 0; i < 40000; i++)
		assert_int_equal(buf_addc(&b, 'n'), 0);
	assert_int_equal(buf_adds(&b, "\ne@x.org,E\n"), 0);

	assert_int_equal(run_n(buf_str(&b), b.len, &l, &err), 0);
	assert_int_equal(l.n, 5);
	assert_int_equal(strncmp(l.ev[0], "2 row a@x.org|nnnn", 18), 0);
	assert_int_equal(strlen(l.ev[0]), strlen("2 row a@x.org|") + CSVIMPORT_FIELD_MAX);
	{
		static const char *const rest[] = {
			"3 bad field 'name' is longer than 4096 bytes",
			"4 bad field 'name' is longer than 4096 bytes",
			"304 bad field 'name' is longer than 4096 bytes",
			"305 row e@x.org|E",
			NULL
		};

		free(l.ev[0]);
		memmove(l.ev, l.ev + 1, 4 * sizeof l.ev[0]);
		l.n = 4;
		check_log(&l, rest);
	}
	buf_free(&b);
}

static void
test_csvimport_read_huge_open_quote(void **state)
{
	struct buf b = BUF_INIT(1 << 22);
	struct log l = { .n = 0 };
	struct herr err;
	size_t i;

	(void)state;
	/* 2 MB inside a quote that never closes: still a clean file error. */
	assert_int_equal(buf_adds(&b, "email,name\na@x.org,\""), 0);
	for (i = 0; i < 20000; i++)
		assert_int_equal(buf_addf(&b, "%099zu\n", i), 0);
	assert_int_equal(run_n(buf_str(&b), b.len, &l, &err), -1);
	assert_string_equal(err.where, "t.csv:2");
	assert_string_equal(err.msg, "quoted field opened here is never closed");
	assert_int_equal(l.n, 0);
	buf_free(&b);
}

static void
test_csvimport_read_duplicates(void **state)
{
	static const char *const expect[] = {
		"2 row Grace@example.net|G",
		"3 bad duplicate of line 2",
		"4 bad duplicate of line 2",
		"5 row user@xn--bcher-kva.de|U",
		"6 bad duplicate of line 5",
		NULL
	};

	(void)state;
	/* Same key: case, and U-label vs A-label of one IDN domain. */
	expect_ok("email,name\nGrace@Example.net,G\ngrace@example.net,g\n"
	    " GRACE@EXAMPLE.NET ,g\nuser@bücher.de,U\nUSER@xn--bcher-kva.de,u\n", expect);
}

/* With defer_dups the row carries the whitespace note (row->note). */
static int
on_row_noted(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct buf b = BUF_INIT(4096);

	(void)err;
	assert_int_equal(buf_addf(&b, "%lu row %s note=%s", row->line, row->address.key,
	    row->note ? row->note : "-"), 0);
	add(ctx, &b);
	return 0;
}

static void
test_csvimport_read_defer_dups(void **state)
{
	/* The handler finds duplicates itself (subimport.c): every good row
	 * reaches it, none is "duplicate of line N", and the whitespace note
	 * comes with the row instead of through note(). */
	static const char *const expect[] = {
		"2 row grace@example.net note=-",
		"3 row grace@example.net note=surrounding whitespace removed from address "
		"'grace@example.net'",
		"4 bad invalid address 'x': missing '@'",
		NULL
	};
	struct log l = { .n = 0 };
	struct csvimport_handler h = { on_row_noted, on_bad, on_note, &l, 1 };
	const char *csv = "email\nGrace@Example.net\n grace@example.net \nx\n";
	FILE *fp = tmpfile();
	struct herr err;

	(void)state;
	assert_non_null(fp);
	assert_int_equal(fwrite(csv, 1, strlen(csv), fp), strlen(csv));
	rewind(fp);
	herr_clear(&err);
	assert_int_equal(csvimport_read(fp, "t.csv", &h, &err), 0);
	fclose(fp);
	check_log(&l, expect);
}

struct counts {
	unsigned long rows, bad, wrong;
};

static int
count_row(void *ctx, const struct csvimport_row *row, struct herr *err)
{
	struct counts *c = ctx;

	(void)err;
	c->rows++;
	if (row->line != c->rows + 1)
		c->wrong++;
	return 0;
}

static void
count_bad(void *ctx, unsigned long line, const char *reason)
{
	struct counts *c = ctx;
	char want[64];

	/* Line L (L > 20001) repeats line L - 20000. */
	snprintf(want, sizeof want, "duplicate of line %lu", line - 20000);
	c->bad++;
	if (strcmp(reason, want) != 0)
		c->wrong++;
}

static void
test_csvimport_read_many_rows(void **state)
{
	struct buf b = BUF_INIT(1 << 24);
	struct counts c = { 0, 0, 0 };
	struct csvimport_handler h = { count_row, count_bad, NULL, &c, 0 };
	struct herr err;
	FILE *fp;
	size_t i;

	(void)state;
	/* 20000 distinct rows and the same again in another case: the
	 * duplicate set grows through several resizes and finds every key. */
	assert_int_equal(buf_adds(&b, "email\n"), 0);
	for (i = 0; i < 40000; i++)
		assert_int_equal(buf_addf(&b, i < 20000 ? "u%zu@example.org\n" :
		    "U%zu@EXAMPLE.org\n", i % 20000), 0);
	fp = tmpfile();
	assert_non_null(fp);
	assert_int_equal(fwrite(b.data, 1, b.len, fp), b.len);
	rewind(fp);
	herr_clear(&err);
	assert_int_equal(csvimport_read(fp, "t.csv", &h, &err), 0);
	fclose(fp);
	assert_int_equal(c.rows, 20000);
	assert_int_equal(c.bad, 20000);
	assert_int_equal(c.wrong, 0);
	buf_free(&b);
}

/* Read with `email`/`name` columns, expect success and exactly `expect`. */
static void
expect_cols_ok(const char *csv, const char *email, const char *name,
               const char *const *expect)
{
	struct csvimport_columns cols = { email, name };
	struct log l = { .n = 0 };
	struct herr err;

	if (run_cols(csv, strlen(csv), &cols, &l, &err) != 0)
		fail_msg("read failed: %s: %s", err.where, err.msg);
	check_log(&l, expect);
}

/* Read with `email`/`name` columns, expect `code`, `where` and `msg`. */
static void
expect_cols_fail(const char *csv, const char *email, const char *name, int code,
                 const char *where, const char *msg)
{
	struct csvimport_columns cols = { email, name };
	struct log l = { .n = 0 };
	struct herr err;

	assert_int_equal(run_cols(csv, strlen(csv), &cols, &l, &err), -1);
	assert_int_equal(err.code, code);
	assert_string_equal(err.where, where);
	assert_string_equal(err.msg, msg);
	check_log(&l, none);
}

static void
test_csvimport_read_no_email_column_suggests(void **state)
{
	struct buf b = BUF_INIT(1 << 16);
	struct log l = { .n = 0 };
	struct herr err;
	size_t i;

	(void)state;
	/* Mailchimp's export: the header is shown and the column guessed. */
	expect_fail("Email Address,Full Name,Team\nada@example.org,Ada,Maths\n", "t.csv:1",
	    "no 'email' column; the header is: Email Address, Full Name, Team; "
	    "did you mean --email-column 'Email Address'?", none);
	/* Names from the list win over an earlier near miss, whatever the
	 * case and separators. */
	expect_fail("Name,emial,E-MAIL\n", "t.csv:1",
	    "no 'email' column; the header is: Name, emial, E-MAIL; "
	    "did you mean --email-column 'E-MAIL'?", none);
	expect_fail("mail,name\n", "t.csv:1",
	    "no 'email' column; the header is: mail, name; "
	    "did you mean --email-column 'mail'?", none);
	/* A typo of "email", then a header that contains it. */
	expect_fail("name,Emial\n", "t.csv:1",
	    "no 'email' column; the header is: name, Emial; "
	    "did you mean --email-column 'Emial'?", none);
	expect_fail("Name,Work E-mail (primary)\n", "t.csv:1",
	    "no 'email' column; the header is: Name, Work E-mail (primary); "
	    "did you mean --email-column 'Work E-mail (primary)'?", none);
	/* A postal address is not a guess for the mail address. */
	expect_fail("Name,Address\n", "t.csv:1",
	    "no 'email' column; the header is: Name, Address; "
	    "name the address column with --email-column", none);

	/* A long header is cut, whole names only, and the guess still fits. */
	for (i = 0; i < 63; i++)
		assert_int_equal(buf_addf(&b, "a rather long column name number %02zu,", i), 0);
	assert_int_equal(buf_adds(&b, "E-mail\n"), 0);
	assert_int_equal(run(b.data, &l, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "the header is: a rather long column name number 00, "));
	assert_non_null(strstr(err.msg, ", ...; did you mean --email-column 'E-mail'?"));
	assert_null(strstr(err.msg, "number 62"));
	assert_int_equal(l.n, 0);
	buf_free(&b);
}

static void
test_csvimport_read_named_columns(void **state)
{
	static const char *const csv =
	    "Email Address,Full Name,Team\n"
	    "ada@example.org,Ada Lovelace,Maths\n"
	    "grace@example.net,Grace Hopper,Navy\n";
	static const char *const both[] = {
		"2 row ada@example.org|Ada Lovelace|Team=Maths",
		"3 row grace@example.net|Grace Hopper|Team=Navy",
		NULL
	};
	static const char *const email_only[] = {
		"1 note no 'name' column, so 'Full Name' is kept as an attribute; "
		    "use --name-column 'Full Name' to take the names from it",
		"2 row ada@example.org||Full Name=Ada Lovelace|Team=Maths",
		"3 row grace@example.net||Full Name=Grace Hopper|Team=Navy",
		NULL
	};
	static const char *const plain_name[] = {
		"2 row a@x.org|A|email=old@x.org",
		NULL
	};

	(void)state;
	/* Matched regardless of case and blanks; neither becomes an attribute. */
	expect_cols_ok(csv, "Email Address", "Full Name", both);
	expect_cols_ok(csv, " email address ", "FULL NAME", both);
	/* Without --name-column the likely name column is named in a note. */
	expect_cols_ok(csv, "email address", NULL, email_only);
	/* With --email-column, a column called "email" is an attribute and
	 * "name" is still the name. */
	expect_cols_ok("Mail,name,email\na@x.org,A,old@x.org\n", "mail", NULL, plain_name);
	/* --name-column alone, with the default email column. */
	expect_cols_ok("email,Full Name\na@x.org,A\n", NULL, "full name",
	    (const char *const[]){ "2 row a@x.org|A", NULL });

	/* A named column the header lacks: the header and the closest name. */
	expect_cols_fail(csv, "Emai Address", NULL, EX_DATAERR, "t.csv:1",
	    "no column 'Emai Address' (--email-column) in the header; the header is: "
	    "Email Address, Full Name, Team; did you mean 'Email Address'?");
	expect_cols_fail(csv, "Mail", NULL, EX_DATAERR, "t.csv:1",
	    "no column 'Mail' (--email-column) in the header; the header is: "
	    "Email Address, Full Name, Team; did you mean 'Email Address'?");
	expect_cols_fail(csv, "Email Address", "Fullname", EX_DATAERR, "t.csv:1",
	    "no column 'Fullname' (--name-column) in the header; the header is: "
	    "Email Address, Full Name, Team; did you mean 'Full Name'?");
	expect_cols_fail(csv, "Email Address", "Surname", EX_DATAERR, "t.csv:1",
	    "no column 'Surname' (--name-column) in the header; the header is: "
	    "Email Address, Full Name, Team; did you mean 'Full Name'?");
	expect_cols_fail("x,y\n1,2\n", "Email", "Name", EX_DATAERR, "t.csv:1",
	    "no column 'Email' (--email-column) in the header; the header is: x, y");
	/* One column cannot be both. */
	expect_cols_fail(csv, "Email Address", "email address ", EX_USAGE, "",
	    "--email-column and --name-column name the same column 'email address '");
	expect_cols_fail(csv, NULL, "Email", EX_USAGE, "",
	    "--email-column and --name-column name the same column 'Email'");
}

static void
test_csvimport_read_row_handler_stops(void **state)
{
	static const char *const expect[] = { "2 row a@x.org|A", NULL };
	struct log l = { .n = 0, .stop_at = 3 };
	struct herr err;

	(void)state;
	assert_int_equal(run("email,name\na@x.org,A\nb@x.org,B\nc@x.org,C\n", &l, &err), -1);
	assert_int_equal(err.code, EX_CANTCREAT);
	assert_string_equal(err.where, "db");
	assert_string_equal(err.msg, "stop here");
	check_log(&l, expect);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csvimport_read_sample),
		cmocka_unit_test(test_csvimport_read_bom_crlf),
		cmocka_unit_test(test_csvimport_read_mixed_line_ends),
		cmocka_unit_test(test_csvimport_read_cr_only),
		cmocka_unit_test(test_csvimport_read_crlf_across_blocks),
		cmocka_unit_test(test_csvimport_read_quoting),
		cmocka_unit_test(test_csvimport_read_header_matching),
		cmocka_unit_test(test_csvimport_read_header_errors),
		cmocka_unit_test(test_csvimport_read_unterminated_quote),
		cmocka_unit_test(test_csvimport_read_field_count),
		cmocka_unit_test(test_csvimport_read_invalid_utf8),
		cmocka_unit_test(test_csvimport_read_control_characters),
		cmocka_unit_test(test_csvimport_read_blank_lines),
		cmocka_unit_test(test_csvimport_read_header_only),
		cmocka_unit_test(test_csvimport_read_trimming),
		cmocka_unit_test(test_csvimport_read_field_size),
		cmocka_unit_test(test_csvimport_read_huge_open_quote),
		cmocka_unit_test(test_csvimport_read_duplicates),
		cmocka_unit_test(test_csvimport_read_defer_dups),
		cmocka_unit_test(test_csvimport_read_many_rows),
		cmocka_unit_test(test_csvimport_read_row_handler_stops),
		cmocka_unit_test(test_csvimport_read_no_email_column_suggests),
		cmocka_unit_test(test_csvimport_read_named_columns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
