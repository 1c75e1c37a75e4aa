/*
 * csvimport.c - reading subscriber CSV files as spreadsheets export them.
 *
 * Owns the step from a file an admin brings to a stream of validated rows
 * (see csvimport.h); the caller (the import command) stores them.  libcsv
 * does the RFC 4180 parsing; this file adds line numbers, the header
 * mapping, per-row checks and the memory caps.
 *
 * RFCs: RFC 4180 (CSV; §2.6 line breaks and §2.7 doubled quotes inside
 * quoted fields), RFC 3629 §4 (well-formed UTF-8).
 *
 * How it reads:
 *   (1) The file is read in blocks and fed to libcsv one physical line at a
 *       time (a line ends at LF, CRLF or a lone CR, as Python's universal
 *       newlines count them), so the callbacks always know the current line.
 *       getline() is not used: one line of a hostile file could be a
 *       gigabyte long.  A record starts on the first line that has
 *       something other than blanks and line ends while no record is open.
 *   (2) libcsv has no context pointer for its space function, so a
 *       thread-local counter records whether libcsv skipped blanks around
 *       the field just ended; that is how "trailing.space@x.org ," gets its
 *       note although libcsv has already trimmed it.  libcsv's own trimming
 *       is kept because it is what makes '"a@x.org" ,' (a blank after the
 *       closing quote) parse: without it libcsv treats the rest of the file
 *       as the inside of the quoted field.
 *   (3) Memory is constant per row: at most CSVIMPORT_COLUMNS_MAX fields of
 *       CSVIMPORT_FIELD_MAX bytes are kept, and a field still growing past
 *       the cap inside libcsv (a quote never closed, a huge line) is cut
 *       back between two calls to csv_parse() by resetting the public
 *       entry_pos/spaces members of struct csv_parser; the row is then
 *       reported as too long.  Only the set of keys seen, for duplicates,
 *       grows with the file, and not even that when the handler finds the
 *       duplicates itself (csvimport.h: `defer_dups`).
 *   (4) A field never reaches the caller with a control character, a line
 *       break or invalid UTF-8 in it: such rows are bad rows, so nothing
 *       from the file can inject a header into a message later.
 *   (5) A header without the address column is the usual first stumble
 *       ("Email Address" from Mailchimp, "E-mail" from Outlook): the error
 *       lists the header and guesses the column, first by a list of names
 *       spreadsheets and mailing tools use, then by suggest_closest()
 *       against "email", then by a header that contains "email".
 */
#include "herald/csvimport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <csv.h>

#include "herald/buf.h"
#include "herald/suggest.h"
#include "herald/utf8.h"

#define BLOCK  16384
#define NO_COL ((size_t)-1)

static const char default_email[] = "email";

struct seen_slot {
	char          *key;  /* struct address key; NULL when the slot is free */
	unsigned long  line; /* where the address was first seen */
};

/* Open addressing, linear probing, at most 70% full. */
struct seen {
	struct seen_slot *slot;
	size_t            cap;  /* a power of two, or 0 */
	size_t            n;
};

struct reader {
	const char                     *path;
	const struct csvimport_handler *h;
	const char                     *want_email; /* header name of the address column */
	const char                     *want_name;  /* ... of the name column */
	int                             named_name; /* want_name came from the caller */
	struct herr                    *err;
	struct csv_parser               csv;
	int            stop;         /* an error is set in err: feed no more */
	unsigned long  line;         /* physical line being fed */
	int            pending_cr;   /* the last block ended in CR */
	int            in_record;    /* a record has started and not ended */
	unsigned long  rec_line;     /* line where the open record started */
	unsigned long  field_line;   /* line where the field being parsed started */
	unsigned long  blanks_mark;  /* `blanks` when the last field ended */

	/* The record being collected; offsets because fields.data moves. */
	struct buf     fields;
	size_t         off[CSVIMPORT_COLUMNS_MAX];
	size_t         len[CSVIMPORT_COLUMNS_MAX];
	int            spaced[CSVIMPORT_COLUMNS_MAX]; /* blanks were trimmed */
	size_t         nfields;      /* fields seen, may exceed the cap */
	size_t         too_long;     /* 1 + first field over the cap, or 0 */
	size_t         overflow;     /* 1 + field cut back inside libcsv, or 0 */

	/* The header. */
	int            have_header;
	size_t         ncols;
	char          *col[CSVIMPORT_COLUMNS_MAX]; /* names, trimmed, owned */
	size_t         email_col;
	size_t         name_col;     /* NO_COL when there is none */
	size_t         n_attrs;
	size_t         attr_col[CSVIMPORT_COLUMNS_MAX];
	const char    *attr_key[CSVIMPORT_COLUMNS_MAX];
	const char    *attr_val[CSVIMPORT_COLUMNS_MAX];

	struct seen    seen;
	struct address addr;
};

/* See (2) above. */
static _Thread_local unsigned long blanks;

static void	file_error(struct reader *, int, unsigned long, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static void	bad(struct reader *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static int
is_blank(unsigned char c)
{
	if (c == ' ' || c == '\t') {
		blanks++;
		return 1;
	}
	return 0;
}

/* FNV-1a: the keys come from the admin's own file, not from an attacker
 * who could aim for collisions. */
static uint64_t
hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct seen_slot *
seen_find(const struct seen *t, const char *key)
{
	size_t i;

	if (!t->cap)
		return NULL;
	for (i = hash(key) & (t->cap - 1); t->slot[i].key; i = (i + 1) & (t->cap - 1))
		if (!strcmp(t->slot[i].key, key))
			return &t->slot[i];
	return NULL;
}

static int
seen_add(struct seen *t, const char *key, unsigned long line)
{
	struct seen_slot *old = t->slot, *ns;
	size_t i, j, cap;

	if ((t->n + 1) * 10 > t->cap * 7) {
		cap = t->cap ? t->cap * 2 : 1024;
		if (!(ns = calloc(cap, sizeof *ns)))
			return -1;
		for (i = 0; i < t->cap; i++) {
			if (!old[i].key)
				continue;
			for (j = hash(old[i].key) & (cap - 1); ns[j].key; j = (j + 1) & (cap - 1))
				;
			ns[j] = old[i];
		}
		free(old);
		t->slot = ns;
		t->cap = cap;
	}
	for (i = hash(key) & (t->cap - 1); t->slot[i].key; i = (i + 1) & (t->cap - 1))
		;
	if (!(t->slot[i].key = strdup(key)))
		return -1;
	t->slot[i].line = line;
	t->n++;
	return 0;
}

static void
seen_free(struct seen *t)
{
	size_t i;

	for (i = 0; i < t->cap; i++)
		free(t->slot[i].key);
	free(t->slot);
	t->slot = NULL;
	t->cap = t->n = 0;
}

/* A file-level problem: "path:line" (or "path" for line 0) in `where`. */
static void
file_error(struct reader *r, int code, unsigned long line, const char *fmt, ...)
{
	char where[HERR_WHERE_MAX], msg[HERR_MSG_MAX];
	va_list ap;

	if (line)
		snprintf(where, sizeof where, "%s:%lu", r->path, line);
	else
		snprintf(where, sizeof where, "%s", r->path);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	herr_set(r->err, code, where, "%s", msg);
	r->stop = 1;
}

/* The open record is a bad row: tell the handler. */
static void
bad(struct reader *r, const char *fmt, ...)
{
	char reason[HERR_MSG_MAX];
	va_list ap;

	if (!r->h->bad)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	r->h->bad(r->h->ctx, r->rec_line, reason);
}

static void
out_of_memory(struct reader *r)
{
	file_error(r, EX_OSERR, r->rec_line, "out of memory");
}

enum field_problem { FIELD_OK, FIELD_NOT_UTF8, FIELD_LINE_BREAK, FIELD_CONTROL };

/*
 * What is wrong with a field, if anything.  C0 controls (tab included: it
 * would survive into a header), DEL and the C1 controls U+0080-U+009F (the
 * mark of text decoded twice) are refused; CR and LF get their own reason
 * because "line break" is what a user sees in the spreadsheet cell.
 */
static enum field_problem
check_field(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	enum field_problem worst = FIELD_OK;
	size_t i = 0, k;

	while (i < n) {
		if ((k = utf8_seq(u + i, n - i, NULL)) == 0)
			return FIELD_NOT_UTF8;
		if (u[i] == '\r' || u[i] == '\n') {
			if (worst == FIELD_OK || worst == FIELD_CONTROL)
				worst = FIELD_LINE_BREAK;
		} else if (u[i] < 0x20 || u[i] == 0x7f || (u[i] == 0xc2 && u[i + 1] < 0xa0)) {
			if (worst == FIELD_OK)
				worst = FIELD_CONTROL;
		}
		i += k;
	}
	return worst;
}

static char *
field(struct reader *r, size_t i)
{
	return r->fields.data + r->off[i];
}

/* Trim ASCII blanks from stored field i, in place. */
static void
trim(struct reader *r, size_t i)
{
	char *s = field(r, i);
	size_t a = 0, n = r->len[i];

	while (a < n && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (a || n != r->len[i])
		r->spaced[i] = 1;
	s[n] = '\0';
	r->off[i] += a;
	r->len[i] = n - a;
}

static void
on_field(void *s, size_t len, void *data)
{
	struct reader *r = data;
	size_t i = r->nfields++;
	int spaced = blanks != r->blanks_mark;

	r->blanks_mark = blanks;
	/* The next field starts right after the comma, on this line. */
	r->field_line = r->line;
	if (r->stop)
		return;
	if (len > CSVIMPORT_FIELD_MAX || r->overflow == i + 1) {
		if (!r->too_long)
			r->too_long = i + 1;
		len = 0;
	}
	if (i >= CSVIMPORT_COLUMNS_MAX)
		return;
	r->off[i] = r->fields.len;
	r->len[i] = len;
	r->spaced[i] = spaced;
	if (buf_add(&r->fields, s, len) < 0 || buf_addc(&r->fields, '\0') < 0)
		out_of_memory(r);
}

/* Lower case, and '-' and ' ' as '_', as suggest.c compares. */
static unsigned char
fold(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	return c == '-' || c == ' ' ? '_' : c;
}

/* Does `s`, folded, contain `folded` (lower case, '_' for separators)? */
static int
contains_folded(const char *s, const char *folded)
{
	size_t i, n = strlen(folded);

	for (; *s; s++) {
		for (i = 0; i < n && s[i] &&
		            fold((unsigned char)s[i]) == (unsigned char)folded[i]; i++)
			;
		if (i == n)
			return 1;
	}
	return 0;
}

/* `s` without the blanks around it: its start, and its length in *n. */
static const char *
unblank(const char *s, size_t *n)
{
	while (*s == ' ' || *s == '\t')
		s++;
	*n = strlen(s);
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
		(*n)--;
	return s;
}

/* Do two column names match, as the header is matched: case and the
 * blanks around them do not matter. */
static int
is_column(const char *a, const char *b)
{
	size_t na, nb;

	a = unblank(a, &na);
	b = unblank(b, &nb);
	return na == nb && !strncasecmp(a, b, na);
}

/* The header cell that likely holds `what` (see (5)), or NULL.  `names`
 * are compared with case and '-', '_', ' ' folded; `contains` (folded) is
 * the last resort, NULL for none. */
static const char *
likely_column(const struct reader *r, const char *what, const char *const *names,
              size_t n_names, const char *contains)
{
	const char *best;
	size_t i, j;

	for (j = 0; j < n_names; j++)
		for (i = 0; i < r->ncols; i++)
			if (suggest_distance(r->col[i], names[j]) == 0 &&
			    strlen(r->col[i]) == strlen(names[j]))
				return r->col[i];
	if ((best = suggest_closest(what, (const char *const *)r->col, r->ncols)))
		return best;
	for (i = 0; contains && i < r->ncols; i++)
		if (contains_folded(r->col[i], contains))
			return r->col[i];
	return NULL;
}

static const char *
likely_email_column(const struct reader *r)
{
	static const char *const names[] = {
		"email address", "e-mail address", "e-mail", "emailaddress", "e-mailaddress",
		"email addr", "mail", "mail address", "mailaddress", "email id", "e-mail-adresse",
		"courriel", "correo",
	};
	const char *c = likely_column(r, "email", names, sizeof names / sizeof names[0],
	                              "email");

	return c ? c : likely_column(r, "email", NULL, 0, "e_mail");
}

static const char *
likely_name_column(const struct reader *r)
{
	static const char *const names[] = {
		"full name", "fullname", "display name", "contact name", "subscriber name",
		"your name", "recipient name", "name",
	};

	return likely_column(r, "name", names, sizeof names / sizeof names[0], NULL);
}

/* "; the header is: A, B, C" into `out`, whole names only, ending in "..."
 * when they do not all fit: a message must keep room for what follows. */
static void
header_list(const struct reader *r, char *out, size_t size)
{
	size_t i, len;

	len = (size_t)snprintf(out, size, "; the header is: ");
	for (i = 0; i < r->ncols && len < size; i++) {
		if (len + strlen(r->col[i]) + 2 + 5 >= size) {
			snprintf(out + len, size - len, "%s...", i ? ", " : "");
			return;
		}
		len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "", r->col[i]);
	}
}

/* A column the caller named is not in the header; `guess` is what to
 * suggest when no header name is close to `want` (may be NULL). */
static void
no_such_column(struct reader *r, const char *want, const char *option, const char *guess)
{
	char list[320], shown[128];
	const char *best = suggest_closest(want, (const char *const *)r->col, r->ncols);

	if (!best)
		best = guess;
	/* `want` comes from the command line, not from the checked header */
	herr_show(shown, sizeof shown, want);
	header_list(r, list, sizeof list);
	file_error(r, EX_DATAERR, r->rec_line, "no column '%s' (%s) in the header%s%s%s%s",
	    shown, option, list, best ? "; did you mean '" : "", best ? best : "",
	    best ? "'?" : "");
}

/* Which columns hold the address and the name, once the header is read. */
static void
pick_columns(struct reader *r)
{
	const char *guess;
	char list[320];
	size_t i;

	for (i = 0; i < r->ncols; i++)
		if (r->email_col == NO_COL && is_column(r->col[i], r->want_email))
			r->email_col = i;
		else if (r->name_col == NO_COL && is_column(r->col[i], r->want_name))
			r->name_col = i;
	if (r->email_col == NO_COL && r->want_email != default_email) {
		no_such_column(r, r->want_email, "--email-column", likely_email_column(r));
		return;
	}
	if (r->email_col == NO_COL) {
		header_list(r, list, sizeof list);
		if ((guess = likely_email_column(r)))
			file_error(r, EX_DATAERR, r->rec_line,
			    "no 'email' column%s; did you mean --email-column '%s'?", list, guess);
		else
			file_error(r, EX_DATAERR, r->rec_line,
			    "no 'email' column%s; name the address column with --email-column",
			    list);
		return;
	}
	if (r->name_col == NO_COL && r->named_name) {
		no_such_column(r, r->want_name, "--name-column", likely_name_column(r));
		return;
	}
	if (r->name_col == NO_COL && r->h->note && (guess = likely_name_column(r)) &&
	    guess != r->col[r->email_col]) {
		char msg[HERR_MSG_MAX];

		snprintf(msg, sizeof msg, "no 'name' column, so '%s' is kept as an attribute; "
		    "use --name-column '%s' to take the names from it", guess, guess);
		r->h->note(r->h->ctx, r->rec_line, msg);
	}
}

static void
do_header(struct reader *r)
{
	size_t i, j;
	const char *s;

	if (r->nfields > CSVIMPORT_COLUMNS_MAX) {
		file_error(r, EX_DATAERR, r->rec_line,
		    "the header has %zu columns, at most %d are allowed", r->nfields,
		    CSVIMPORT_COLUMNS_MAX);
		return;
	}
	r->email_col = r->name_col = NO_COL;
	for (i = 0; i < r->nfields; i++) {
		trim(r, i);
		s = field(r, i);
		if (r->too_long == i + 1) {
			file_error(r, EX_DATAERR, r->rec_line,
			    "column %zu of the header is longer than %d bytes", i + 1,
			    CSVIMPORT_FIELD_MAX);
			return;
		}
		switch (check_field(s, r->len[i])) {
		case FIELD_OK:
			break;
		case FIELD_NOT_UTF8:
			file_error(r, EX_DATAERR, r->rec_line,
			    "column %zu of the header is not valid UTF-8", i + 1);
			return;
		case FIELD_LINE_BREAK:
		case FIELD_CONTROL:
			file_error(r, EX_DATAERR, r->rec_line,
			    "column %zu of the header contains a control character", i + 1);
			return;
		}
		if (!*s) {
			file_error(r, EX_DATAERR, r->rec_line,
			    "column %zu of the header has no name", i + 1);
			return;
		}
		for (j = 0; j < i; j++)
			if (!strcasecmp(r->col[j], s)) {
				file_error(r, EX_DATAERR, r->rec_line,
				    "duplicate column '%s' in the header (columns %zu and %zu)", s,
				    j + 1, i + 1);
				return;
			}
		if (!(r->col[i] = strdup(s))) {
			out_of_memory(r);
			return;
		}
		r->ncols = i + 1;
	}
	pick_columns(r);
	if (r->stop)
		return;
	for (i = 0; i < r->ncols; i++)
		if (i != r->email_col && i != r->name_col) {
			r->attr_col[r->n_attrs] = i;
			r->attr_key[r->n_attrs++] = r->col[i];
		}
	r->have_header = 1;
}

static void
do_row(struct reader *r)
{
	struct csvimport_row row;
	struct seen_slot *dup;
	struct herr e;
	char note[HERR_MSG_MAX];
	size_t i, stored = r->nfields;
	int empty = 1;

	if (stored > CSVIMPORT_COLUMNS_MAX) {
		stored = CSVIMPORT_COLUMNS_MAX;
		empty = 0;
	}
	if (r->too_long)
		empty = 0;
	for (i = 0; i < stored; i++) {
		trim(r, i);
		if (r->len[i])
			empty = 0;
	}
	/* ",,," is how spreadsheets export an empty row: a blank line. */
	if (empty)
		return;
	if (r->nfields != r->ncols) {
		bad(r, "row has %zu field%s, header has %zu", r->nfields,
		    r->nfields == 1 ? "" : "s", r->ncols);
		return;
	}
	if (r->too_long) {
		bad(r, "field '%s' is longer than %d bytes", r->col[r->too_long - 1],
		    CSVIMPORT_FIELD_MAX);
		return;
	}
	for (i = 0; i < r->nfields; i++) {
		switch (check_field(field(r, i), r->len[i])) {
		case FIELD_OK:
			continue;
		case FIELD_NOT_UTF8:
			bad(r, "not valid UTF-8");
			return;
		case FIELD_LINE_BREAK:
			bad(r, "line break in field '%s'", r->col[i]);
			return;
		case FIELD_CONTROL:
			bad(r, "control character in field '%s'", r->col[i]);
			return;
		}
	}
	if (!r->len[r->email_col]) {
		bad(r, "missing address");
		return;
	}
	herr_clear(&e);
	if (address_parse(field(r, r->email_col), &r->addr, &e) < 0) {
		bad(r, "%s", e.msg);
		return;
	}
	if (r->h->defer_dups)
		;
	else if ((dup = seen_find(&r->seen, r->addr.key)) != NULL) {
		bad(r, "duplicate of line %lu", dup->line);
		return;
	} else if (seen_add(&r->seen, r->addr.key, r->rec_line) < 0) {
		out_of_memory(r);
		return;
	}
	row.note = NULL;
	if (r->spaced[r->email_col]) {
		snprintf(note, sizeof note, "surrounding whitespace removed from address '%s'",
		    field(r, r->email_col));
		if (r->h->defer_dups)
			row.note = note;
		else if (r->h->note)
			r->h->note(r->h->ctx, r->rec_line, note);
	}
	for (i = 0; i < r->n_attrs; i++)
		r->attr_val[i] = field(r, r->attr_col[i]);
	row.line = r->rec_line;
	row.address = r->addr;
	row.name = r->name_col == NO_COL ? "" : field(r, r->name_col);
	row.n_attrs = r->n_attrs;
	row.attr_keys = r->attr_key;
	row.attr_values = r->attr_val;
	if (r->h->row(r->h->ctx, &row, r->err) < 0) {
		if (!r->err->code) {
			char where[HERR_WHERE_MAX];

			snprintf(where, sizeof where, "%s:%lu", r->path, r->rec_line);
			herr_set(r->err, EX_SOFTWARE, where, "the row handler failed");
		}
		r->stop = 1;
	}
}

static void
on_record(int c, void *data)
{
	struct reader *r = data;

	(void)c;
	if (!r->stop) {
		if (r->have_header)
			do_row(r);
		else
			do_header(r);
	}
	buf_reset(&r->fields);
	r->nfields = r->too_long = r->overflow = 0;
	r->in_record = 0;
}

/* Feed bytes of one physical line (all of it or a block's worth). */
static int
feed(struct reader *r, const char *p, size_t n)
{
	struct csv_parser *c = &r->csv;
	size_t i;

	if (!r->in_record)
		for (i = 0; i < n; i++)
			if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
				r->in_record = 1;
				r->rec_line = r->field_line = r->line;
				r->blanks_mark = blanks;
				break;
			}
	if (csv_parse(c, p, n, on_field, on_record, r) != n && !r->stop)
		out_of_memory(r);
	/* See (3) above.  Keeping the last byte and no pending blanks keeps
	 * libcsv's invariants (entry_pos >= spaces, + 1 after a quote). */
	if (!r->stop && c->entry_pos > CSVIMPORT_FIELD_MAX + 1) {
		c->entry_buf[0] = c->entry_buf[c->entry_pos - 1];
		c->entry_pos = 1;
		c->spaces = 0;
		r->overflow = r->nfields + 1;
	}
	return r->stop ? -1 : 0;
}

/* Split a block into physical lines, see (1). */
static int
feed_block(struct reader *r, const char *p, size_t n)
{
	size_t i;
	int eol;

	while (n > 0) {
		if (r->pending_cr) {
			r->pending_cr = 0;
			if (p[0] == '\n') {
				/* The LF of a CRLF cut by the block: same line end. */
				if (feed(r, p, 1) < 0)
					return -1;
				p++;
				n--;
				continue;
			}
		}
		for (i = 0; i < n && p[i] != '\n' && p[i] != '\r'; i++)
			;
		eol = i < n;
		if (eol) {
			if (p[i] == '\r') {
				if (i + 1 == n)
					r->pending_cr = 1;
				else if (p[i + 1] == '\n')
					i++;
			}
			i++;
		}
		if (feed(r, p, i) < 0)
			return -1;
		if (eol)
			r->line++;
		p += i;
		n -= i;
	}
	return 0;
}

static void
reader_free(struct reader *r)
{
	size_t i;

	csv_free(&r->csv);
	buf_free(&r->fields);
	for (i = 0; i < CSVIMPORT_COLUMNS_MAX; i++)
		free(r->col[i]);
	seen_free(&r->seen);
}

int
csvimport_read(FILE *fp, const char *path, const struct csvimport_handler *h,
               struct herr *err)
{
	return csvimport_read_columns(fp, path, NULL, h, err);
}

int
csvimport_read_columns(FILE *fp, const char *path, const struct csvimport_columns *cols,
                       const struct csvimport_handler *h, struct herr *err)
{
	struct reader *r;
	char *block;
	size_t n;
	int first = 1, rc = -1;

	if (cols && cols->name &&
	    is_column(cols->email ? cols->email : default_email, cols->name)) {
		char shown[128];

		herr_show(shown, sizeof shown, cols->name);
		return herr_set(err, EX_USAGE, NULL,
		                "--email-column and --name-column name the same column '%s'",
		                shown);
	}

	r = calloc(1, sizeof *r);
	block = malloc(BLOCK);
	if (!r || !block || csv_init(&r->csv, CSV_APPEND_NULL) != 0) {
		free(r);
		free(block);
		return herr_set(err, EX_OSERR, path, "out of memory");
	}
	csv_set_space_func(&r->csv, is_blank);
	r->path = path ? path : "-";
	r->h = h;
	r->want_email = cols && cols->email ? cols->email : default_email;
	r->want_name = cols && cols->name ? cols->name : "name";
	r->named_name = cols && cols->name;
	r->err = err;
	r->line = 1;
	buf_init(&r->fields, CSVIMPORT_COLUMNS_MAX * (CSVIMPORT_FIELD_MAX + 1));

	while ((n = fread(block, 1, BLOCK, fp)) > 0) {
		char *p = block;

		/* A UTF-8 BOM, as Excel's "CSV UTF-8" writes. */
		if (first && n >= 3 && !memcmp(p, "\xef\xbb\xbf", 3)) {
			p += 3;
			n -= 3;
		}
		first = 0;
		if (feed_block(r, p, n) < 0)
			goto out;
	}
	if (ferror(fp)) {
		herr_set(err, EX_IOERR, r->path, "cannot read '%s': %s", r->path, strerror(errno));
		goto out;
	}
	/* CSV_STRICT only now: strict parsing would refuse '"a"b' and 'O"Brien'
	 * mid-file, but at the end it is what makes csv_fini() report a quote
	 * left open (libcsv ignores CSV_STRICT_FINI without it). */
	csv_set_opts(&r->csv, CSV_APPEND_NULL | CSV_STRICT | CSV_STRICT_FINI);
	if (csv_fini(&r->csv, on_field, on_record, r) != 0) {
		file_error(r, EX_DATAERR, r->field_line,
		    "quoted field opened here is never closed");
		goto out;
	}
	if (r->stop)
		goto out;
	if (!r->have_header) {
		file_error(r, EX_DATAERR, 0, "no header row: the file is empty");
		goto out;
	}
	rc = 0;
out:
	reader_free(r);
	free(r);
	free(block);
	return rc;
}
