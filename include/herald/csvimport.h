/*
 * csvimport.h - reading subscriber CSV files as spreadsheets export them.
 *
 * Parsing is libcsv's; this module adds what makes a file from Excel,
 * LibreOffice or Google Sheets "just work" and what makes a bad row a clear
 * message instead of a half-import:
 *   - UTF-8 with or without a BOM, LF or CRLF (or mixed) line ends, quoted
 *     fields with commas, doubled quotes and line breaks inside;
 *   - a header row, matched case-insensitively and with surrounding spaces
 *     ignored: `email` is required, `name` optional, every other column is an
 *     attribute kept under its header name as written (trimmed); duplicate or
 *     empty header names are a file error;
 *   - every row is checked and a bad one is reported with the physical line
 *     number where it starts and a reason, then skipped:
 *       invalid address / missing address / duplicate of line N (same address
 *       ignoring case) / not valid UTF-8 / control character or line break in
 *       a field / wrong number of fields;
 *     blank lines are skipped silently;
 *   - unquoted surrounding whitespace is trimmed; when that changes the address
 *     a note (not an error) is passed to the caller.
 * A file-level problem (unreadable, no header, no email column, a quoted field
 * still open at end of file) fails the whole read: nothing is passed on as
 * good, so the caller imports nothing.
 */
#ifndef HERALD_CSVIMPORT_H
#define HERALD_CSVIMPORT_H

#include <stdio.h>

#include "herald/address.h"
#include "herald/herr.h"

/* Caps that keep a hostile file from taking memory without bound. */
#define CSVIMPORT_FIELD_MAX   4096  /* bytes in one field */
#define CSVIMPORT_COLUMNS_MAX 64

struct csvimport_row {
	unsigned long line;          /* physical line where the row starts (1 = header) */
	struct address address;      /* validated */
	const char *name;            /* "" when no name column or empty */
	size_t n_attrs;
	const char *const *attr_keys;   /* header names of the attribute columns */
	const char *const *attr_values; /* this row's values, "" when empty */
};

struct csvimport_handler {
	/* A good row.  Return 0 to go on, -1 to stop the read (the error you set
	 * in `err` is returned by csvimport_read). */
	int (*row)(void *ctx, const struct csvimport_row *row, struct herr *err);
	/* A bad row, skipped: e.g. line 7, "invalid address 'x': missing '@'". */
	void (*bad)(void *ctx, unsigned long line, const char *reason);
	/* Something worth telling that does not reject the row. May be NULL. */
	void (*note)(void *ctx, unsigned long line, const char *message);
	void *ctx;
};

/*
 * Read the CSV from `fp`; `path` is used only in messages.  Calls the
 * handler for each data row in file order.  Returns 0 when the file was read
 * to the end (even if some rows were bad), or -1 with EX_DATAERR and where =
 * "path:line" for a file-level problem, EX_IOERR for a read error, or the
 * error the row callback set.
 */
int csvimport_read(FILE *fp, const char *path, const struct csvimport_handler *h,
                   struct herr *err);

#endif
