/*
 * csvimport.h - reading subscriber CSV files as spreadsheets export them.
 *
 * Parsing is libcsv's; this module adds what makes a file from Excel,
 * LibreOffice or Google Sheets "just work" and what makes a bad row a clear
 * message instead of a half-import:
 *   - UTF-8 with or without a BOM, LF, CRLF or lone CR (or mixed) line ends,
 *     quoted fields with commas, doubled quotes and line breaks inside;
 *     line numbers count physical lines (a line break inside a quoted field
 *     moves every later row down), as an editor shows them;
 *   - a header row, matched case-insensitively and with surrounding spaces
 *     ignored: `email` is required, `name` optional, every other column is an
 *     attribute kept under its header name as written (trimmed); duplicate or
 *     empty header names are a file error; the caller may name other columns
 *     for the address and the name (struct csvimport_columns, the import
 *     command's --email-column and --name-column);
 *   - when the address column is missing, the error shows the header and the
 *     column that likely holds the addresses ("Email Address", "E-mail",
 *     a near miss of "email", ...); when the name column is, a likely one
 *     ("Full Name", ...) is named in a note;
 *   - every row is checked and a bad one is reported with the physical line
 *     number where it starts and a reason, then skipped:
 *       invalid address / missing address / duplicate of line N (same address
 *       ignoring case) / not valid UTF-8 / control character or line break in
 *       a field (C0, DEL and C1 controls, tab included) / wrong number of
 *       fields / a field longer than CSVIMPORT_FIELD_MAX;
 *     the first problem found is the one reported;
 *     blank lines, lines of blanks and rows whose fields are all empty
 *     (",,,", how spreadsheets export an empty row) are skipped silently;
 *   - surrounding spaces and tabs are trimmed from every field, quoted or
 *     not; when the address had some, a note (not an error) is passed to
 *     the caller for the good row.
 * A file-level problem (unreadable, no header, no email column or no column
 * the caller named, an empty, duplicate or over-long header name, more than
 * CSVIMPORT_COLUMNS_MAX columns, a quoted field still open at end of file)
 * fails the whole read.
 * Rows are streamed, so good rows before the problem may already have been
 * passed to the handler: the caller must import nothing when the read fails
 * (run the import in one transaction and roll it back on -1).
 *
 * Memory is bounded per row whatever the file holds; only the set of
 * addresses seen (for duplicates) grows with the number of rows, unless the
 * handler finds the duplicates itself (`defer_dups` below).
 */
#ifndef HERALD_CSVIMPORT_H
#define HERALD_CSVIMPORT_H

#include <stdio.h>

#include "herald/address.h"
#include "herald/herr.h"

/* Caps that keep a hostile file from taking memory without bound. */
#define CSVIMPORT_FIELD_MAX   4096  /* bytes in one field */
#define CSVIMPORT_COLUMNS_MAX 64

/* Everything here, strings included, is valid only during the row call. */
struct csvimport_row {
	unsigned long line;          /* physical line where the row starts (1 = header) */
	struct address address;      /* validated */
	const char *name;            /* "" when no name column or empty */
	size_t n_attrs;
	const char *const *attr_keys;   /* header names of the attribute columns */
	const char *const *attr_values; /* this row's values, "" when empty */
	const char *note;            /* with `defer_dups`: the note csvimport would
	                                have given for this row (surrounding
	                                whitespace removed), for the handler to
	                                give if the row is no duplicate; else NULL */
};

struct csvimport_handler {
	/* A good row.  Return 0 to go on, -1 to stop the read (the error you set
	 * in `err` is returned by csvimport_read). */
	int (*row)(void *ctx, const struct csvimport_row *row, struct herr *err);
	/* A bad row, skipped: e.g. line 7, "invalid address 'x': missing '@'".
	 * `line` is where the row starts.  May be NULL. */
	void (*bad)(void *ctx, unsigned long line, const char *reason);
	/* Something worth telling that does not reject the row. May be NULL. */
	void (*note)(void *ctx, unsigned long line, const char *message);
	void *ctx;
	/* Nonzero: the handler finds duplicates itself, after the read (the
	 * import sorts its rows by key, subimport.c), so a file of any size
	 * costs no memory here.  csvimport then keeps no set of addresses,
	 * reports no "duplicate of line N", and hands the whitespace note to
	 * the handler in row->note instead of giving it (a duplicate gets
	 * none).  Zero: a set in memory, about 80 bytes a row. */
	int defer_dups;
};

/*
 * Which header columns hold the address and the name, matched like the
 * header (case-insensitively, surrounding blanks ignored).  A NULL member
 * means the default: "email" (required) and "name" (used when present).
 * A column named here that the header lacks is a file error; the columns
 * taken are not attributes.  Messages call them --email-column and
 * --name-column, as the import command spells them.
 */
struct csvimport_columns {
	const char *email;
	const char *name;
};

/*
 * Read the CSV from `fp` (any stream: it is read once, never seeked);
 * `path` is used only in messages.  Calls the handler for each data row in
 * file order.  Returns 0 when the file was read to the end (even if some
 * rows were bad), or -1 with:
 *   EX_DATAERR, where = "path:line", for a file-level problem, e.g.
 *     "quoted field opened here is never closed" (the line where the quote
 *     opened), "no 'email' column; the header is: Email Address, Full Name;
 *     did you mean --email-column 'Email Address'?", "no column 'Mail'
 *     (--email-column) in the header; the header is: ..."; where = "path"
 *     for "no header row: the file is empty";
 *   EX_IOERR, where = "path", for a read error; EX_OSERR when out of memory;
 *   or the error the row callback set (EX_SOFTWARE if it set none).
 * The handler is not called again after an error.  Not reentrant from the
 * handler's callbacks.  csvimport_read() is csvimport_read_columns() with
 * the default columns (`cols` NULL).
 */
int csvimport_read(FILE *fp, const char *path, const struct csvimport_handler *h,
                   struct herr *err);
int csvimport_read_columns(FILE *fp, const char *path, const struct csvimport_columns *cols,
                           const struct csvimport_handler *h, struct herr *err);

#endif
