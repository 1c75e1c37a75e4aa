/*
 * segment.c - the segment language and saved segments (see segment.h).
 *
 * Owns the segments table (sql/007_segments.sql).  Called by
 * src/cmd/segment.c, src/cmd/sub.c and issue.c (an issue's segment or
 * where; segment_remove() asks issues whether one still needs it).  The
 * SQL it builds only reads:
 * subscribers, subscriptions, lists (names, at compile time), events,
 * deliveries and bounces.
 *
 * A hand-written lexer and a recursive-descent parser, one function per
 * grammar rule of segment.h, that append SQL text of this file's own to a
 * buffer as they go (there is no tree: each rule's SQL is complete when
 * the rule returns) and collect what the user wrote as parameters.
 *
 * Invariants (tests/unit/test_segment.c cites them):
 *   (1) Only string literals of this file and of the headers it uses
 *       (engagement.h, report.h), and numbers it formats itself
 *       (parameter numbers), reach the SQL text;
 *       every value, key, list id and time from the expression is a
 *       parameter ?N, N > SEGMENT_PARAM_BASE.
 *   (2) Every term's SQL is 0 or 1, never NULL: comparisons are wrapped
 *       in ifnull(..., 0), set tests use IN over non-NULL ids or EXISTS.
 *       So NOT is the exact complement, and `!=` is emitted as NOT of `=`
 *       (segment.h rules (1) and (2)).
 *   (3) An attribute's value is read in one way everywhere: the JSON
 *       string at PATH when it is one and not empty, else NULL (audience.h's
 *       "present": what a merge field would print); PATH is '$."KEY"'
 *       (bound), the key's characters ([A-Za-z0-9_.-]) need no escaping
 *       inside the quotes, and a dot in a key is part of it, not a step.
 */
#include "herald/segment.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "herald/audience.h"
#include "herald/buf.h"
#include "herald/db.h"
#include "herald/engagement.h"
#include "herald/issue.h"
#include "herald/report.h"
#include "herald/suggest.h"
#include "herald/suppress.h"
#include "herald/utf8.h"

#define SQL_MAX (1u << 20) /* the compiled SQL; 256 terms need far less */
#define SHOW_MAX 48        /* a token quoted in a message */

enum param_type { P_INT, P_REAL, P_TEXT };

struct seg_param {
	enum param_type type;
	long long       i;
	double          d;
	char           *t; /* owned */
};

struct segment {
	char             *sql;    /* owned */
	struct seg_param *params; /* ?(SEGMENT_PARAM_BASE + 1) is params[0] */
	size_t            n_params, cap_params;
	int               engagement; /* it has an `engaged` term */
};

enum tok_kind { T_END, T_WORD, T_STRING, T_OP, T_LPAREN, T_RPAREN, T_COMMA };

struct token {
	enum tok_kind kind;
	const char   *s;    /* where it starts in the expression */
	size_t        len;  /* bytes of it there (a string: with its quotes) */
	int           line, col;
	char         *str;  /* T_STRING: the value, unescaped; owned */
};

struct parser {
	sqlite3        *db;
	const char     *src;
	size_t          pos;       /* the next byte to lex */
	int             line, col; /* of src[pos] */
	const char     *where;
	int             line0, col0; /* where the expression starts in `where` */
	long long       now;
	struct token    tok;       /* the current token */
	struct buf      sql;
	struct segment *seg;
	int             depth, terms;
	int             cost;      /* of what was just parsed (enum cost) */
	struct herr    *err;
};

/*
 * What a term costs per subscriber row, roughly, so that an and/or chain
 * tries the cheap ones first: SQLite evaluates `a AND b` left to right and
 * stops at the first false, so `email ends_with ".gov.uk" and attr.role =
 * "x"` parses the JSON of one row in eight, the other way round of every
 * row.  Reordering is safe because every term is true or false (invariant
 * 2) and has no side effects.  A chain costs what its dearest part costs.
 */
enum cost {
	COST_COLUMN = 1, /* name, email: a column of the row */
	COST_SET,        /* engaged, received: a probe of a set built once */
	COST_INDEX,      /* list, subscribed_*, bounced_soft_within: index lookups */
	COST_JSON,       /* attribute text terms, exists: parse s.attributes */
	COST_JSON_CAST,  /* attribute number and date terms: ... and convert */
};

enum value_type { V_TEXT, V_NUM, V_DATE };

struct value {
	enum value_type type;
	char           *text; /* V_TEXT (owned), V_DATE ("YYYY-MM-DD", owned) */
	double          num;
	int             line, col;
};

/* A field being compared: SQL of its value and how to name it. */
struct field {
	char sql[160];  /* "s.name", or (3)'s expression with the path parameter */
	char label[SHOW_MAX + 8];
	int  is_attr;
};

static int
oom(struct herr *err)
{
	return herr_set(err, EX_OSERR, NULL, "out of memory");
}

/* An error at LINE:COL of the expression (EX_DATAERR). */
static int perr(struct parser *p, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
perr(struct parser *p, int line, int col, const char *fmt, ...)
{
	char where[HERR_WHERE_MAX], msg[HERR_MSG_MAX];
	va_list ap;

	/* in the caller's text: the first line of the expression starts at
	 * its col0, the others at column 1 */
	if (line == 1)
		col += p->col0 - 1;
	line += p->line0 - 1;
	snprintf(where, sizeof where, "%s:%d:%d", p->where, line, col);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return herr_set(p->err, EX_DATAERR, where, "%s", msg);
}

static int
perr_tok(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
perr_tok(struct parser *p, const char *fmt, ...)
{
	char msg[HERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return perr(p, p->tok.line, p->tok.col, "%s", msg);
}

static int
emit(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
emit(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vaddf(&p->sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return errno == E2BIG ? perr_tok(p, "the expression makes SQL that is too long")
		                      : oom(p->err);
	return 0;
}

/* --- parameters --------------------------------------------------------- */

/* Append a parameter; its number in the SQL (SEGMENT_PARAM_BASE + 1, + 2,
 * ...) or 0 when out of memory. */
static size_t
add_param(struct segment *seg, enum param_type type, long long i, double d, char *t)
{
	struct seg_param *np;

	if (seg->n_params == seg->cap_params) {
		size_t cap = seg->cap_params ? seg->cap_params * 2 : 16;

		if (!(np = realloc(seg->params, cap * sizeof *np)))
			return 0;
		seg->params = np;
		seg->cap_params = cap;
	}
	np = &seg->params[seg->n_params++];
	np->type = type;
	np->i = i;
	np->d = d;
	np->t = t;
	return SEGMENT_PARAM_BASE + seg->n_params;
}

static size_t
param_int(struct parser *p, long long v)
{
	size_t n = add_param(p->seg, P_INT, v, 0, NULL);

	if (!n)
		oom(p->err);
	return n;
}

/* Takes ownership of `t` (freed on failure too). */
static size_t
param_text(struct parser *p, char *t)
{
	size_t n = t ? add_param(p->seg, P_TEXT, 0, 0, t) : 0;

	if (!n) {
		free(t);
		oom(p->err);
	}
	return n;
}

static size_t
param_real(struct parser *p, double d)
{
	size_t n = add_param(p->seg, P_REAL, 0, d, NULL);

	if (!n)
		oom(p->err);
	return n;
}

/* --- lexer ---------------------------------------------------------------- */

static int
is_word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* Move over n bytes, keeping line and column (characters) right. */
static void
advance(struct parser *p, size_t n)
{
	while (n-- && p->src[p->pos]) {
		unsigned char c = (unsigned char)p->src[p->pos++];

		if (c == '\n') {
			p->line++;
			p->col = 1;
		} else if ((c & 0xc0) != 0x80) {
			p->col++;
		}
	}
}

/* The character at `s` fit to quote in a message. */
static const char *
show_char(const char *s, char out[16])
{
	size_t n = utf8_seq((const unsigned char *)s, strlen(s), NULL);
	char raw[8];

	if (!n)
		n = 1;
	memcpy(raw, s, n);
	raw[n] = '\0';
	herr_show(out, 16, raw);
	return out;
}

/* The current token's text fit to quote in a message. */
static const char *
show_tok(const struct token *t, char out[SHOW_MAX])
{
	char raw[SHOW_MAX * 2];
	size_t n = t->len < sizeof raw - 1 ? t->len : sizeof raw - 1;

	if (t->kind == T_END)
		return strcpy(out, "the end");
	memcpy(raw, t->s, n);
	raw[n] = '\0';
	herr_show(out, SHOW_MAX, raw);
	return out;
}

/* A double-quoted string at src[pos]; \" and \\ are its only escapes, and
 * it ends on its line. */
static int
lex_string(struct parser *p)
{
	struct buf b = BUF_INIT(SEGMENT_EXPR_MAX + 1);
	int line = p->line, col = p->col;

	advance(p, 1);
	for (;;) {
		char c = p->src[p->pos];

		if (c == '\0' || c == '\n' || c == '\r') {
			buf_free(&b);
			return perr(p, line, col, "unterminated string");
		}
		if (c == '"')
			break;
		if (c == '\\') {
			char e = p->src[p->pos + 1], shown[16];

			if (e != '"' && e != '\\') {
				int l = p->line, k = p->col;

				buf_free(&b);
				if (e == '\0' || e == '\n' || e == '\r')
					return perr(p, line, col, "unterminated string");
				return perr(p, l, k, "unknown escape '\\%s' in a string; the only escapes "
				            "are \\\" and \\\\", show_char(p->src + p->pos + 1, shown));
			}
			advance(p, 1);
			c = e;
		}
		if (buf_addc(&b, c) < 0) {
			buf_free(&b);
			return oom(p->err);
		}
		advance(p, 1);
	}
	advance(p, 1);
	if (!(p->tok.str = buf_detach(&b)))
		return oom(p->err);
	p->tok.kind = T_STRING;
	return 0;
}

/* Make the next token current. */
static int
next(struct parser *p)
{
	struct token *t = &p->tok;
	const char *s;
	char shown[16];

	free(t->str);
	t->str = NULL;
	while (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' || p->src[p->pos] == '\n' ||
	       p->src[p->pos] == '\r')
		advance(p, 1);
	s = p->src + p->pos;
	t->s = s;
	t->line = p->line;
	t->col = p->col;
	switch (*s) {
	case '\0':
		t->kind = T_END;
		t->len = 0;
		return 0;
	case '(':
	case ')':
	case ',':
		t->kind = *s == '(' ? T_LPAREN : *s == ')' ? T_RPAREN : T_COMMA;
		t->len = 1;
		advance(p, 1);
		return 0;
	case '"': {
		size_t start = p->pos;

		if (lex_string(p) < 0)
			return -1;
		t->len = p->pos - start;
		return 0;
	}
	case '\'':
		return perr(p, t->line, t->col, "strings are written in double quotes: \"...\"");
	case '=':
		if (s[1] == '=')
			return perr(p, t->line, t->col, "unknown operator '=='; did you mean '='?");
		t->len = 1;
		break;
	case '!':
		if (s[1] != '=')
			return perr(p, t->line, t->col, "unexpected '!'; write != or not");
		t->len = 2;
		break;
	case '<':
		if (s[1] == '>')
			return perr(p, t->line, t->col, "unknown operator '<>'; did you mean '!='?");
		t->len = s[1] == '=' ? 2 : 1;
		break;
	case '>':
		t->len = s[1] == '=' ? 2 : 1;
		break;
	default:
		if (!is_word_char((unsigned char)*s))
			return perr(p, t->line, t->col, "unexpected character '%s'",
			            show_char(s, shown));
		for (t->len = 0; is_word_char((unsigned char)s[t->len]); t->len++)
			;
		t->kind = T_WORD;
		advance(p, t->len);
		return 0;
	}
	t->kind = T_OP;
	advance(p, t->len);
	return 0;
}

/* Is the current token the word `w` (ASCII, any case)? */
static int
is_word(const struct parser *p, const char *w)
{
	return p->tok.kind == T_WORD && p->tok.len == strlen(w) &&
	       !strncasecmp(p->tok.s, w, p->tok.len);
}

/* The current word, copied (cut at `size`). */
static const char *
word_copy(const struct parser *p, char *out, size_t size)
{
	size_t n = p->tok.len < size - 1 ? p->tok.len : size - 1;

	memcpy(out, p->tok.s, n);
	out[n] = '\0';
	return out;
}

/* --- values --------------------------------------------------------------- */

static int
all_digits(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* -?[0-9]+(.[0-9]+)? */
static int
is_number(const char *s, size_t n)
{
	const char *dot;

	if (n && *s == '-') {
		s++;
		n--;
	}
	dot = memchr(s, '.', n);
	if (!dot)
		return all_digits(s, n);
	return all_digits(s, (size_t)(dot - s)) && all_digits(dot + 1, n - (size_t)(dot - s) - 1);
}

/* YYYY-MM-DD, a real calendar date; its local midnight into *t. */
static int
is_date(const char *s, size_t n, long long *t)
{
	char d[11];
	struct herr ignored;

	if (n != 10 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' ||
	    !all_digits(s + 8, 2))
		return 0;
	memcpy(d, s, 10);
	d[10] = '\0';
	return issue_parse_time(d, t, &ignored) == 0;
}

/* Move past a value just taken; on failure the value's text is freed, so
 * a failed parse_value() never leaves anything to free. */
static int
value_next(struct parser *p, struct value *v)
{
	if (next(p) == 0)
		return 0;
	free(v->text);
	v->text = NULL;
	return -1;
}

/* The current token as a value, then move on.  `after` names what came
 * before, for messages ("=", "(", ",").  The caller frees v->text after
 * a success only. */
static int
parse_value(struct parser *p, const char *after, struct value *v)
{
	char shown[SHOW_MAX];
	long long t;

	memset(v, 0, sizeof *v);
	v->line = p->tok.line;
	v->col = p->tok.col;
	if (p->tok.kind == T_STRING) {
		v->type = V_TEXT;
		v->text = p->tok.str;
		p->tok.str = NULL;
		return value_next(p, v);
	}
	if (p->tok.kind != T_WORD)
		return perr_tok(p, "expected a value after '%s'", after);
	if (is_date(p->tok.s, p->tok.len, &t)) {
		v->type = V_DATE;
		if (!(v->text = strndup(p->tok.s, 10)))
			return oom(p->err);
		return value_next(p, v);
	}
	if (is_number(p->tok.s, p->tok.len)) {
		char num[64];

		if (p->tok.len >= sizeof num)
			return perr_tok(p, "number '%s' is too long", show_tok(&p->tok, shown));
		word_copy(p, num, sizeof num);
		v->type = V_NUM;
		v->num = strtod(num, NULL);
		return next(p);
	}
	if (p->tok.len == 10 && p->tok.s[4] == '-' && p->tok.s[7] == '-')
		return perr_tok(p, "invalid date '%s'", show_tok(&p->tok, shown));
	return perr_tok(p, "expected a value after '%s', not '%s' (a \"quoted string\", a number "
	                "or a date YYYY-MM-DD)", after, show_tok(&p->tok, shown));
}

/* --- terms ---------------------------------------------------------------- */

static int
count_term(struct parser *p, int line, int col)
{
	if (++p->terms > SEGMENT_TERMS_MAX)
		return perr(p, line, col, "more than %d terms", SEGMENT_TERMS_MAX);
	return 0;
}

/* Rule (4) of segment.h: an attribute has no empty value to compare with. */
static int
check_not_empty(struct parser *p, const struct field *f, const struct value *v, int neg)
{
	if (!f->is_attr || v->type != V_TEXT || v->text[0])
		return 0;
	return perr(p, v->line, v->col, "an attribute is never empty; write '%sexists %s' for "
	            "subscribers %s one", neg ? "" : "not ", f->label, neg ? "with" : "without");
}

static int
check_text_field(struct parser *p, const struct field *f, const struct value *v)
{
	if (f->is_attr || v->type == V_TEXT)
		return 0;
	return perr(p, v->line, v->col, "%s compares only with a quoted string", f->label);
}

/* SQL of a comparison `f OP v` (OP not "!="), true or false (invariant 2). */
static int
emit_compare(struct parser *p, const struct field *f, const char *op, struct value *v)
{
	const char *x = f->sql;
	size_t n;

	switch (v->type) {
	case V_TEXT:
		if (!(n = param_text(p, v->text)))
			return -1;
		v->text = NULL;
		return emit(p, "ifnull(%s %s ?%zu COLLATE NOCASE, 0)", x, op, n);
	case V_DATE:
		if (!(n = param_text(p, v->text)))
			return -1;
		v->text = NULL;
		p->cost = COST_JSON_CAST;
		/* a date, or a date and a time: its first ten characters.  The
		 * subquery reads the value once for all the tests. */
		return emit(p, "ifnull((SELECT CASE WHEN substr(seg_v, 1, 10) GLOB "
		            "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' AND (length(seg_v) = 10 "
		            "OR substr(seg_v, 11, 1) IN ('T', ' ')) THEN substr(seg_v, 1, 10) END "
		            "FROM (SELECT %s AS seg_v)) %s ?%zu, 0)", x, op, n);
	case V_NUM:
		if (!(n = param_real(p, v->num)))
			return -1;
		p->cost = COST_JSON_CAST;
		/* a number: a digit; only digits, signs and dots; a sign only
		 * first; at most one dot */
		return emit(p, "ifnull((SELECT CASE WHEN seg_v GLOB '*[0-9]*' AND NOT seg_v GLOB "
		            "'*[^0-9.+-]*' AND NOT seg_v GLOB '?*[+-]*' AND NOT seg_v GLOB '*.*.*' "
		            "THEN CAST(seg_v AS REAL) END FROM (SELECT %s AS seg_v)) %s ?%zu, 0)",
		            x, op, n);
	}
	return -1;
}

/* field OP value */
static int
parse_relop(struct parser *p, const struct field *f)
{
	char op[3];
	struct value v;
	int neg, rc;

	memcpy(op, p->tok.s, p->tok.len);
	op[p->tok.len] = '\0';
	if (next(p) < 0 || parse_value(p, op, &v) < 0)
		return -1;
	neg = !strcmp(op, "!=");
	if ((rc = check_text_field(p, f, &v)) == 0 && (rc = check_not_empty(p, f, &v, neg)) == 0)
		rc = emit(p, "%s", neg ? "NOT " : "");
	if (rc == 0)
		rc = emit_compare(p, f, neg ? "=" : op, &v);
	free(v.text);
	return rc;
}

#define IN_MAX SEGMENT_TERMS_MAX

/* field [not] in ( value, ... ): text values in one IN, the others each an
 * equality; OR of those. */
static int
parse_in(struct parser *p, const struct field *f, int neg)
{
	struct value vals[IN_MAX];
	size_t n = 0, i, n_text = 0;
	int rc = -1, first = 1;
	const char *after = "(";

	if (next(p) < 0)
		return -1;
	if (p->tok.kind != T_LPAREN)
		return perr_tok(p, "expected '(' after 'in'");
	if (next(p) < 0)
		return -1;
	for (;;) {
		if (n == IN_MAX) {
			perr_tok(p, "more than %d terms", SEGMENT_TERMS_MAX);
			goto out;
		}
		if (n && count_term(p, p->tok.line, p->tok.col) < 0)
			goto out;
		if (parse_value(p, after, &vals[n]) < 0)
			goto out;
		n++;
		if (check_text_field(p, f, &vals[n - 1]) < 0 ||
		    check_not_empty(p, f, &vals[n - 1], neg) < 0)
			goto out;
		if (p->tok.kind == T_RPAREN)
			break;
		if (p->tok.kind != T_COMMA) {
			perr_tok(p, "expected ',' or ')' in the list after 'in'");
			goto out;
		}
		after = ",";
		if (next(p) < 0)
			goto out;
	}
	if (next(p) < 0)
		goto out;
	if (emit(p, "%s(", neg ? "NOT " : "") < 0)
		goto out;
	for (i = 0; i < n; i++)
		n_text += vals[i].type == V_TEXT;
	if (n_text) {
		if (emit(p, "ifnull(%s COLLATE NOCASE IN (", f->sql) < 0)
			goto out;
		for (i = 0; i < n; i++) {
			size_t k;

			if (vals[i].type != V_TEXT)
				continue;
			if (!(k = param_text(p, vals[i].text)))
				goto out;
			vals[i].text = NULL;
			if (emit(p, "%s?%zu", first ? "" : ", ", k) < 0)
				goto out;
			first = 0;
		}
		if (emit(p, "), 0)") < 0)
			goto out;
	}
	/* numbers and dates: one equality each, ORed after the text group */
	for (i = 0; i < n; i++) {
		if (vals[i].type == V_TEXT)
			continue;
		if (!first && emit(p, " OR ") < 0)
			goto out;
		if (emit_compare(p, f, "=", &vals[i]) < 0)
			goto out;
		first = 0;
	}
	rc = emit(p, ")");
out:
	for (i = 0; i < n; i++)
		free(vals[i].text);
	return rc;
}

/* field starts_with|ends_with "text" */
static int
parse_affix(struct parser *p, const struct field *f, int ends)
{
	struct buf pat = BUF_INIT(2 * SEGMENT_EXPR_MAX + 4);
	struct value v;
	const char *c;
	size_t k;
	int rc = -1;

	if (next(p) < 0)
		return -1;
	if (p->tok.kind != T_STRING)
		return perr_tok(p, "expected a quoted string after '%s'",
		                ends ? "ends_with" : "starts_with");
	if (parse_value(p, ends ? "ends_with" : "starts_with", &v) < 0)
		return -1;
	if (f->is_attr && !v.text[0]) {
		perr(p, v.line, v.col, "an attribute is never empty; write 'exists %s' for "
		     "subscribers with one", f->label);
		goto out;
	}
	/* LIKE's wildcards in the value are literal: escaped with '\' */
	if (ends && buf_addc(&pat, '%') < 0)
		goto nomem;
	for (c = v.text; *c; c++)
		if (((*c == '%' || *c == '_' || *c == '\\') && buf_addc(&pat, '\\') < 0) ||
		    buf_addc(&pat, *c) < 0)
			goto nomem;
	if (!ends && buf_addc(&pat, '%') < 0)
		goto nomem;
	if (!(k = param_text(p, buf_detach(&pat))))
		goto out;
	rc = emit(p, "ifnull(%s LIKE ?%zu ESCAPE '\\', 0)", f->sql, k);
	goto out;
nomem:
	oom(p->err);
out:
	buf_free(&pat);
	free(v.text);
	return rc;
}

static const char *const cmp_words[] = { "in", "not", "starts_with", "ends_with" };

static int
parse_cmp(struct parser *p, const struct field *f)
{
	char w[SHOW_MAX], shown[SHOW_MAX];
	const char *best;

	if (p->tok.kind == T_OP)
		return parse_relop(p, f);
	if (is_word(p, "in"))
		return parse_in(p, f, 0);
	if (is_word(p, "not")) {
		if (next(p) < 0)
			return -1;
		if (!is_word(p, "in"))
			return perr_tok(p, "expected 'in' after '%s not'", f->label);
		return parse_in(p, f, 1);
	}
	if (is_word(p, "starts_with"))
		return parse_affix(p, f, 0);
	if (is_word(p, "ends_with"))
		return parse_affix(p, f, 1);
	if (p->tok.kind != T_WORD)
		return perr_tok(p, "expected an operator after %s, not %s%s%s", f->label,
		                p->tok.kind == T_END ? "" : "'", show_tok(&p->tok, shown),
		                p->tok.kind == T_END ? "" : "'");
	word_copy(p, w, sizeof w);
	best = suggest_closest(w, cmp_words, sizeof cmp_words / sizeof cmp_words[0]);
	if (best)
		return perr_tok(p, "unknown attribute function '%s'; did you mean '%s'?",
		                show_tok(&p->tok, shown), best);
	return perr_tok(p, "unknown attribute function '%s'; use =, !=, <, <=, >, >=, in, not in, "
	                "starts_with or ends_with", show_tok(&p->tok, shown));
}

/* The current word is attr.KEY: fill `f` (a path parameter), move on. */
static int
parse_attr(struct parser *p, struct field *f)
{
	const char *key = p->tok.s + 5;
	size_t klen = p->tok.len - 5, n;
	char *path;

	if (!klen) {
		if (p->src[p->pos] && p->src[p->pos] != ' ' && p->src[p->pos] != '\t' &&
		    p->src[p->pos] != '\n' && p->src[p->pos] != '\r')
			return perr(p, p->line, p->col, "an attribute name in a segment is made of "
			            "letters, digits, '_', '.' and '-'");
		return perr(p, p->line, p->col, "expected an attribute name after 'attr.'");
	}
	if (klen > AUDIENCE_KEY_MAX)
		return perr_tok(p, "attribute name longer than %d characters", AUDIENCE_KEY_MAX);
	if (!(path = malloc(klen + 5)))
		return oom(p->err);
	snprintf(path, klen + 5, "$.\"%.*s\"", (int)klen, key);
	if (!(n = param_text(p, path)))
		return -1;
	snprintf(f->sql, sizeof f->sql, "CASE WHEN json_type(s.attributes, ?%zu) = 'text' THEN "
	         "NULLIF(json_extract(s.attributes, ?%zu), '') END", n, n);
	snprintf(f->label, sizeof f->label, "attr.%.*s", (int)(klen < SHOW_MAX ? klen : SHOW_MAX),
	         key);
	f->is_attr = 1;
	return next(p);
}

/* N followed by h, d or w: seconds into *secs, then move on. */
static int
parse_span(struct parser *p, const char *what, long long *secs)
{
	const char *s = p->tok.s;
	size_t n = p->tok.len;
	long long v = 0, unit;
	size_t i;

	if (p->tok.kind != T_WORD || n < 2 || n > 12 || !all_digits(s, n - 1))
		return perr_tok(p, "expected a span such as 30d, 12h or 2w after '%s'", what);
	switch (s[n - 1]) {
	case 'h': case 'H': unit = 3600; break;
	case 'd': case 'D': unit = 86400; break;
	case 'w': case 'W': unit = 7 * 86400; break;
	default:
		return perr_tok(p, "expected a span such as 30d, 12h or 2w after '%s'", what);
	}
	for (i = 0; i + 1 < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v < 1 || v > 100LL * 366 * 86400 / unit)
		return perr_tok(p, "a span must be from 1 hour to 100 years");
	*secs = v * unit;
	return next(p);
}

/* Binds [now - secs, now]: "BETWEEN :a AND :b" into out. */
static int
span_params(struct parser *p, long long secs, char *out, size_t size)
{
	size_t a, b;

	if (!(a = param_int(p, p->now - secs)) || !(b = param_int(p, p->now)))
		return -1;
	snprintf(out, size, "BETWEEN ?%zu AND ?%zu", a, b);
	return 0;
}

/* All names of a table's rows (lists, segments) for a did-you-mean: the
 * closest to `word` into `out`, "" when none is close. */
static void
closest_name(sqlite3 *db, const char *sql, const char *word, char *out, size_t size)
{
	sqlite3_stmt *st;
	char **names = NULL, **nn;
	const char *best;
	size_t n = 0, i;

	out[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW && n < 1000) {
		const char *s = (const char *)sqlite3_column_text(st, 0);

		if (!(nn = realloc(names, (n + 1) * sizeof *names)))
			break;
		names = nn;
		if (!(names[n] = strdup(s ? s : "")))
			break;
		n++;
	}
	sqlite3_finalize(st);
	if ((best = suggest_closest(word, (const char *const *)names, n)))
		snprintf(out, size, "%s", best);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* list NAME | list "NAME" */
static int
parse_list(struct parser *p)
{
	char name[SEGMENT_NAME_MAX * 4 + 1], near[SEGMENT_NAME_MAX + 1], shown[SHOW_MAX];
	int line = p->tok.line, col = p->tok.col, rc;
	long long id = 0;
	sqlite3_stmt *st;
	size_t k;

	if (p->tok.kind == T_STRING)
		snprintf(name, sizeof name, "%s", p->tok.str);
	else if (p->tok.kind == T_WORD)
		word_copy(p, name, sizeof name);
	else
		return perr_tok(p, "expected a list name after 'list'");
	if (db_prepare(p->db, &st, "SELECT id FROM lists WHERE name = ?1", p->err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(p->db, p->err, "find the list");
	herr_show(shown, sizeof shown, name);
	if (!id) {
		closest_name(p->db, "SELECT name FROM lists ORDER BY name", name, near, sizeof near);
		if (near[0])
			return perr(p, line, col, "no list named '%s'; did you mean '%s'?", shown, near);
		return perr(p, line, col, "no list named '%s'", shown);
	}
	if (!(k = param_int(p, id)) || next(p) < 0)
		return -1;
	return emit(p, "EXISTS (SELECT 1 FROM subscriptions x WHERE x.list_id = ?%zu "
	            "AND x.subscriber_id = s.id AND x.status = 'confirmed')", k);
}

static const char *const term_words[] = {
	"attr", "name", "email", "exists", "list", "engaged", "received",
	"bounced_soft_within", "subscribed_within", "subscribed_before", "not",
};

static int
unknown_term(struct parser *p)
{
	char w[SHOW_MAX], shown[SHOW_MAX];
	const char *best, *dot;

	word_copy(p, w, sizeof w);
	show_tok(&p->tok, shown);
	if ((dot = strchr(w, '.')) && dot > w) {
		char head[SHOW_MAX];

		snprintf(head, sizeof head, "%.*s", (int)(dot - w), w);
		if (suggest_distance(head, "attr") <= 1)
			return perr_tok(p, "unknown term '%s'; did you mean 'attr%s'?", shown, dot);
	}
	if ((best = suggest_closest(w, term_words, sizeof term_words / sizeof term_words[0])) &&
	    strcmp(best, "attr"))
		return perr_tok(p, "unknown term '%s'; did you mean '%s'?", shown, best);
	if (!dot && p->tok.s[0] != '-' && (p->tok.s[0] < '0' || p->tok.s[0] > '9'))
		return perr_tok(p, "unknown term '%s'; an attribute is written attr.%s", shown, shown);
	return perr_tok(p, "unknown term '%s'", shown);
}

static int
parse_term(struct parser *p)
{
	char shown[SHOW_MAX], frag[64];
	struct field f;
	long long secs;
	size_t k;

	if (p->tok.kind == T_END)
		return perr_tok(p, "the expression ends where a term was expected");
	if (p->tok.kind != T_WORD) {
		if (p->tok.kind == T_STRING)
			return perr_tok(p, "expected a term, not a string; compare a field with it, "
			                "e.g. attr.KEY = \"...\"");
		return perr_tok(p, "expected a term before '%s'", show_tok(&p->tok, shown));
	}
	if (count_term(p, p->tok.line, p->tok.col) < 0)
		return -1;
	memset(&f, 0, sizeof f);
	if (p->tok.len >= 5 && !strncasecmp(p->tok.s, "attr.", 5)) {
		p->cost = COST_JSON; /* number and date comparisons raise it */
		if (parse_attr(p, &f) < 0)
			return -1;
		return parse_cmp(p, &f);
	}
	if (is_word(p, "name") || is_word(p, "email")) {
		int name = is_word(p, "name");

		snprintf(f.sql, sizeof f.sql, "%s", name ? "s.name" : "s.email");
		snprintf(f.label, sizeof f.label, "%s", name ? "name" : "email");
		p->cost = COST_COLUMN;
		if (next(p) < 0)
			return -1;
		return parse_cmp(p, &f);
	}
	if (is_word(p, "exists")) {
		p->cost = COST_JSON;
		if (next(p) < 0)
			return -1;
		if (p->tok.kind != T_WORD || p->tok.len < 5 || strncasecmp(p->tok.s, "attr.", 5))
			return perr_tok(p, "expected attr.KEY after 'exists'");
		if (parse_attr(p, &f) < 0)
			return -1;
		return emit(p, "(%s IS NOT NULL)", f.sql);
	}
	if (is_word(p, "list")) {
		p->cost = COST_INDEX;
		if (next(p) < 0)
			return -1;
		return parse_list(p);
	}
	if (is_word(p, "engaged")) {
		p->cost = COST_SET;
		if (next(p) < 0 || parse_span(p, "engaged", &secs) < 0 ||
		    span_params(p, secs, frag, sizeof frag) < 0)
			return -1;
		/* engagement.h (1): a click or an open that is not report.h's
		 * machine open; the audience's sunset rule leaves an expression
		 * with this term alone (audience.h) */
		p->seg->engagement = 1;
		return emit(p, "s.id IN (SELECT e.subscriber_id FROM events e "
		            "WHERE e.subscriber_id IS NOT NULL AND e.at %s AND e.kind IN ('open', "
		            "'click') AND " ENGAGEMENT_SQL_ACT("e") ")", frag);
	}
	if (is_word(p, "received")) {
		p->cost = COST_SET;
		if (next(p) < 0 || parse_span(p, "received", &secs) < 0 ||
		    span_params(p, secs, frag, sizeof frag) < 0)
			return -1;
		return emit(p, "s.id IN (SELECT d.subscriber_id FROM deliveries d "
		            "WHERE d.status = 'sent' AND d.sent_at %s)", frag);
	}
	if (is_word(p, "bounced_soft_within")) {
		p->cost = COST_INDEX;
		if (next(p) < 0 || parse_span(p, "bounced_soft_within", &secs) < 0 ||
		    span_params(p, secs, frag, sizeof frag) < 0)
			return -1;
		return emit(p, "EXISTS (SELECT 1 FROM bounces b WHERE b.subscriber_id = s.id "
		            "AND b.class = 'soft' AND b.at %s)", frag);
	}
	if (is_word(p, "subscribed_within")) {
		p->cost = COST_INDEX;
		if (next(p) < 0 || parse_span(p, "subscribed_within", &secs) < 0 ||
		    span_params(p, secs, frag, sizeof frag) < 0)
			return -1;
		return emit(p, "EXISTS (SELECT 1 FROM subscriptions x WHERE x.subscriber_id = s.id "
		            "AND x.status = 'confirmed' AND coalesce(x.confirmed_at, x.created_at) %s)",
		            frag);
	}
	if (is_word(p, "subscribed_before")) {
		long long t;

		p->cost = COST_INDEX;
		if (next(p) < 0)
			return -1;
		if (p->tok.kind == T_WORD && is_date(p->tok.s, p->tok.len, &t)) {
			if (next(p) < 0)
				return -1;
		} else if (p->tok.kind == T_WORD && p->tok.len == 10 && p->tok.s[4] == '-') {
			return perr_tok(p, "invalid date '%s'", show_tok(&p->tok, shown));
		} else if (p->tok.kind == T_WORD && p->tok.len && p->tok.s[0] >= '0' &&
		           p->tok.s[0] <= '9') {
			if (parse_span(p, "subscribed_before", &secs) < 0)
				return -1;
			t = p->now - secs;
		} else {
			return perr_tok(p, "expected a date YYYY-MM-DD or a span such as 30d after "
			                "'subscribed_before'");
		}
		if (!(k = param_int(p, t)))
			return -1;
		return emit(p, "EXISTS (SELECT 1 FROM subscriptions x WHERE x.subscriber_id = s.id "
		            "AND x.status = 'confirmed' AND coalesce(x.confirmed_at, x.created_at) "
		            "< ?%zu)", k);
	}
	if (is_word(p, "attr"))
		return perr(p, p->line, p->col, "expected '.' and an attribute name after 'attr'");
	if (is_word(p, "and") || is_word(p, "or") || is_word(p, "in") ||
	    is_word(p, "starts_with") || is_word(p, "ends_with"))
		return perr_tok(p, "expected a term before '%s'", show_tok(&p->tok, shown));
	return unknown_term(p);
}

/* --- the grammar's upper rules ------------------------------------------- */

static int parse_or(struct parser *p);

static int
parse_unary(struct parser *p)
{
	int rc;

	if (is_word(p, "not") || p->tok.kind == T_LPAREN) {
		int paren = p->tok.kind == T_LPAREN, line = p->tok.line, col = p->tok.col;

		if (++p->depth > SEGMENT_DEPTH_MAX)
			return perr_tok(p, "nested deeper than %d levels of '(' and 'not'",
			                SEGMENT_DEPTH_MAX);
		if (next(p) < 0)
			return -1;
		if (!paren) {
			if (emit(p, "NOT ") < 0 || parse_unary(p) < 0)
				return -1;
		} else {
			if (emit(p, "(") < 0 || parse_or(p) < 0)
				return -1;
			if (p->tok.kind != T_RPAREN) {
				char shown[SHOW_MAX];

				return perr_tok(p, "expected ')' to close the '(' at %d:%d, not %s%s%s",
				                line, col, p->tok.kind == T_END ? "" : "'",
				                show_tok(&p->tok, shown), p->tok.kind == T_END ? "" : "'");
			}
			if (next(p) < 0 || emit(p, ")") < 0)
				return -1;
		}
		p->depth--;
		return 0;
	}
	rc = parse_term(p);
	return rc;
}

/*
 * An and/or chain: each operand's SQL is made in a buffer of its own, then
 * they are joined cheapest first (enum cost; stable, so equal costs keep
 * the order written).
 */
struct part {
	char *sql;
	int   cost;
};

static int
parse_chain(struct parser *p, int is_or)
{
	struct part *parts = NULL, *np;
	size_t n = 0, cap = 0, i, j;
	struct buf outer = p->sql;
	int rc = -1, cost = 0, swapped = 0;

	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			if (!(np = realloc(parts, cap * sizeof *parts))) {
				oom(p->err);
				goto out;
			}
			parts = np;
		}
		buf_init(&p->sql, SQL_MAX);
		swapped = 1;
		p->cost = 0;
		if ((is_or ? parse_chain(p, 0) : parse_unary(p)) < 0)
			goto out;
		parts[n].sql = buf_detach(&p->sql);
		buf_free(&p->sql);
		if (!parts[n].sql) {
			oom(p->err);
			goto out;
		}
		parts[n++].cost = p->cost;
		if (!is_word(p, is_or ? "or" : "and"))
			break;
		if (next(p) < 0)
			goto out;
	}
	for (i = 1; i < n; i++) {
		struct part t = parts[i];

		for (j = i; j > 0 && parts[j - 1].cost > t.cost; j--)
			parts[j] = parts[j - 1];
		parts[j] = t;
	}
	p->sql = outer;
	swapped = 0;
	if (emit(p, "(") < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (parts[i].cost > cost)
			cost = parts[i].cost;
		if (emit(p, "%s%s", i ? (is_or ? " OR " : " AND ") : "", parts[i].sql) < 0)
			goto out;
	}
	if (emit(p, ")") < 0)
		goto out;
	p->cost = cost;
	rc = 0;
out:
	if (swapped) { /* failed while an operand's buffer was current */
		buf_free(&p->sql);
		p->sql = outer;
	}
	for (i = 0; i < n; i++)
		free(parts[i].sql);
	free(parts);
	return rc;
}

static int
parse_or(struct parser *p)
{
	return parse_chain(p, 1);
}

/* --- the compiled segment ------------------------------------------------- */

void
segment_free(struct segment *seg)
{
	size_t i;

	if (!seg)
		return;
	for (i = 0; i < seg->n_params; i++)
		free(seg->params[i].t);
	free(seg->params);
	free(seg->sql);
	free(seg);
}

/* The line and column of byte offset `off` of `s`. */
static void
position_of(const char *s, size_t off, int *line, int *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off && s[i]; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)s[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

int
segment_compile(sqlite3 *db, const char *expr, const char *where, long long now,
                struct segment **out, struct herr *err)
{
	return segment_compile_at(db, expr, where, 1, 1, now, out, err);
}

int
segment_compile_at(sqlite3 *db, const char *expr, const char *where, int line, int col,
                   long long now, struct segment **out, struct herr *err)
{
	struct parser p;
	size_t len = strlen(expr), bad;
	int rc = -1;

	*out = NULL;
	memset(&p, 0, sizeof p);
	p.db = db;
	p.src = expr;
	p.line = p.col = 1;
	p.where = where ? where : "segment";
	p.line0 = line > 0 ? line : 1;
	p.col0 = col > 0 ? col : 1;
	p.now = now;
	p.err = err;
	buf_init(&p.sql, SQL_MAX);
	if (len > SEGMENT_EXPR_MAX)
		return herr_set(err, EX_DATAERR, p.where, "the expression is %zu bytes; the limit is %d",
		                len, SEGMENT_EXPR_MAX);
	if ((bad = utf8_invalid_at((const unsigned char *)expr, len)) < len) {
		int bad_line, bad_col;

		position_of(expr, bad, &bad_line, &bad_col);
		return perr(&p, bad_line, bad_col, "not valid UTF-8");
	}
	if (!(p.seg = calloc(1, sizeof *p.seg)))
		return oom(err);
	if (next(&p) < 0)
		goto out;
	if (p.tok.kind == T_END) {
		perr(&p, p.tok.line, p.tok.col, "empty expression");
		goto out;
	}
	if (parse_or(&p) < 0)
		goto out;
	if (p.tok.kind != T_END) {
		char shown[SHOW_MAX];

		if (p.tok.kind == T_RPAREN)
			perr_tok(&p, "unmatched ')'");
		else
			perr_tok(&p, "expected 'and' or 'or' before '%s'", show_tok(&p.tok, shown));
		goto out;
	}
	if (!(p.seg->sql = buf_detach(&p.sql))) {
		oom(err);
		goto out;
	}
	*out = p.seg;
	p.seg = NULL;
	rc = 0;
out:
	free(p.tok.str);
	buf_free(&p.sql);
	segment_free(p.seg);
	return rc;
}

const char *
segment_sql(const struct segment *seg)
{
	return seg->sql;
}

int
segment_targets_engagement(const struct segment *seg)
{
	return seg && seg->engagement;
}

size_t
segment_n_params(const struct segment *seg)
{
	return seg->n_params;
}

int
segment_bind(const struct segment *seg, sqlite3_stmt *st, struct herr *err)
{
	size_t i;

	for (i = 0; i < seg->n_params; i++) {
		const struct seg_param *sp = &seg->params[i];
		int idx = SEGMENT_PARAM_BASE + (int)i + 1, rc;
		char name[32];

		snprintf(name, sizeof name, "?%d", idx);
		if (idx > sqlite3_bind_parameter_count(st))
			return herr_set(err, EX_SOFTWARE, NULL,
			                "the statement lacks the segment's parameter %s", name);
		switch (sp->type) {
		case P_INT: rc = sqlite3_bind_int64(st, idx, sp->i); break;
		case P_REAL: rc = sqlite3_bind_double(st, idx, sp->d); break;
		default: rc = sqlite3_bind_text(st, idx, sp->t, -1, SQLITE_TRANSIENT); break;
		}
		if (rc != SQLITE_OK)
			return herr_set(err, rc == SQLITE_NOMEM ? EX_OSERR : EX_SOFTWARE, NULL,
			                "bind %s: %s", name, sqlite3_errstr(rc));
	}
	return 0;
}

/* SELECT cols FROM (the population of list_id) WHERE (segment), bound. */
static int
prepare_matching(sqlite3 *db, const struct segment *seg, long long list_id, const char *cols,
                 const char *tail, sqlite3_stmt **st, struct herr *err)
{
	struct buf sql = BUF_INIT(SQL_MAX + 4096);
	int rc;

	/* The segment first: the suppression lookups then run only for the
	 * subscribers it matched. */
	if (list_id)
		rc = buf_addf(&sql, "SELECT %s FROM " AUDIENCE_SQL_FROM " WHERE %s AND "
		              AUDIENCE_SQL_WHERE("?1") "%s", cols, seg->sql, tail);
	else
		rc = buf_addf(&sql, "SELECT %s FROM subscribers s WHERE s.status = 'active' AND %s "
		              "AND " SUPPRESS_SQL_NOT("s.email_key") "%s", cols, seg->sql, tail);
	if (rc < 0) {
		buf_free(&sql);
		return oom(err);
	}
	rc = db_prepare(db, st, buf_str(&sql), err);
	buf_free(&sql);
	if (rc < 0)
		return -1;
	if (list_id)
		sqlite3_bind_int64(*st, 1, list_id);
	if (segment_bind(seg, *st, err) < 0) {
		sqlite3_finalize(*st);
		*st = NULL;
		return -1;
	}
	return 0;
}

int
segment_count(sqlite3 *db, const struct segment *seg, long long list_id, long long *n,
              struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	if (prepare_matching(db, seg, list_id, "count(*)", "", &st, err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "count the segment");
	return 0;
}

int
segment_each(sqlite3 *db, const struct segment *seg, long long list_id,
             int (*fn)(void *ctx, const struct segment_row *r), void *ctx, struct herr *err)
{
	sqlite3_stmt *st;
	struct segment_row r;
	int rc;

	if (prepare_matching(db, seg, list_id, "s.id, s.email, s.name, s.attributes, s.created_at",
	                     " ORDER BY s.id", &st, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.id = sqlite3_column_int64(st, 0);
		r.email = (const char *)sqlite3_column_text(st, 1);
		r.name = (const char *)sqlite3_column_text(st, 2);
		r.attributes = (const char *)sqlite3_column_text(st, 3);
		r.created_at = sqlite3_column_int64(st, 4);
		if (!r.email || !r.name || !r.attributes) {
			sqlite3_finalize(st);
			return oom(err);
		}
		if (fn(ctx, &r) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list the segment");
	return 0;
}

/* --- saved segments ------------------------------------------------------- */

int
segment_name_check(const char *name, struct herr *err)
{
	size_t n = strlen(name), i;
	char shown[SHOW_MAX];

	herr_show(shown, sizeof shown, name);
	if (n < 1 || n > SEGMENT_NAME_MAX)
		return herr_set(err, EX_DATAERR, NULL,
		                "invalid segment name '%s': must be 1 to %d characters", shown,
		                SEGMENT_NAME_MAX);
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return herr_set(err, EX_DATAERR, NULL, "invalid segment name '%s': use only "
			                "a-z, 0-9, '.', '_' and '-'", shown);
	}
	return 0;
}

static int
not_found(sqlite3 *db, const char *name, struct herr *err)
{
	char near[SEGMENT_NAME_MAX + 1], shown[SHOW_MAX];

	herr_show(shown, sizeof shown, name);
	closest_name(db, "SELECT name FROM segments ORDER BY name", name, near, sizeof near);
	if (near[0])
		return herr_set(err, EX_NOINPUT, NULL, "no segment named '%s'; did you mean '%s'?",
		                shown, near);
	return herr_set(err, EX_NOINPUT, NULL, "no segment named '%s'", shown);
}

int
segment_save(sqlite3 *db, const char *name, const char *expr, const char *description,
             int replace, int *replaced, struct herr *err)
{
	char where[HERR_WHERE_MAX];
	struct segment *seg;
	sqlite3_stmt *st;
	int rc, exists;
	long long now = db_now();

	if (replaced)
		*replaced = 0;
	if (!description)
		description = "";
	if (segment_name_check(name, err) < 0)
		return -1;
	if (strlen(description) > SEGMENT_DESC_MAX)
		return herr_set(err, EX_DATAERR, NULL, "the description is longer than %d bytes",
		                SEGMENT_DESC_MAX);
	if (utf8_invalid_at((const unsigned char *)description, strlen(description)) <
	    strlen(description))
		return herr_set(err, EX_DATAERR, NULL, "the description is not valid UTF-8");
	snprintf(where, sizeof where, "segment %s", name);
	if (segment_compile(db, expr, where, now, &seg, err) < 0)
		return -1;
	segment_free(seg);

	if (db_prepare(db, &st, "SELECT 1 FROM segments WHERE name = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find the segment");
	exists = rc == SQLITE_ROW;
	if (exists && !replace)
		return herr_set(err, EX_DATAERR, NULL,
		                "a segment named '%s' already exists (--force replaces it)", name);
	if (db_prepare(db, &st,
	               "INSERT INTO segments (name, expr, description, created_at, updated_at) "
	               "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET "
	               "expr = excluded.expr, description = excluded.description, "
	               "updated_at = excluded.updated_at", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, expr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, description, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "save the segment");
	if (replaced)
		*replaced = exists;
	return 0;
}

static void
row_to_def(sqlite3_stmt *st, struct segment_def *d)
{
	const char *t;

	t = (const char *)sqlite3_column_text(st, 0);
	snprintf(d->name, sizeof d->name, "%s", t ? t : "");
	t = (const char *)sqlite3_column_text(st, 1);
	snprintf(d->expr, sizeof d->expr, "%s", t ? t : "");
	t = (const char *)sqlite3_column_text(st, 2);
	snprintf(d->description, sizeof d->description, "%s", t ? t : "");
	d->created_at = sqlite3_column_int64(st, 3);
	d->updated_at = sqlite3_column_int64(st, 4);
}

#define DEF_COLUMNS "SELECT name, expr, description, created_at, updated_at FROM segments "

int
segment_get(sqlite3 *db, const char *name, struct segment_def *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, DEF_COLUMNS "WHERE name = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		row_to_def(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return not_found(db, name, err);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "find the segment");
	return 0;
}

int
segment_each_saved(sqlite3 *db, int (*fn)(void *ctx, const struct segment_def *d), void *ctx,
                   struct herr *err)
{
	struct segment_def *d = malloc(sizeof *d);
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (!d)
		return oom(err);
	if (db_prepare(db, &st, DEF_COLUMNS "ORDER BY name", err) < 0) {
		free(d);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_def(st, d);
		if (fn(ctx, d) < 0) {
			ret = -1;
			break;
		}
	}
	sqlite3_finalize(st);
	free(d);
	if (!ret && rc != SQLITE_DONE)
		return db_error(db, err, "list segments");
	return ret;
}

int
segment_remove(sqlite3 *db, const char *name, struct herr *err)
{
	sqlite3_stmt *st;
	long long issue_id = 0;
	int rc;

	/* An issue whose send has not started takes its audience through the
	 * segment at the start (issue.h): removing it would stop that send. */
	if (db_prepare(db, &st, "SELECT id FROM issues WHERE segment = ?1 AND started_at IS NULL "
	               "ORDER BY id LIMIT 1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		issue_id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find issues of the segment");
	if (issue_id)
		return herr_set(err, EX_DATAERR, NULL,
		                "segment '%s' chooses the audience of issue %lld, not sent yet; "
		                "change or remove that issue first", name, issue_id);
	if (db_prepare(db, &st, "DELETE FROM segments WHERE name = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "remove the segment");
	if (!sqlite3_changes(db))
		return not_found(db, name, err);
	return 0;
}

int
segment_compile_saved(sqlite3 *db, const char *name, long long now, struct segment **out,
                      struct herr *err)
{
	struct segment_def *d = malloc(sizeof *d);
	char where[HERR_WHERE_MAX];
	int rc;

	*out = NULL;
	if (!d)
		return oom(err);
	if (segment_get(db, name, d, err) < 0) {
		free(d);
		return -1;
	}
	snprintf(where, sizeof where, "segment %s", d->name);
	rc = segment_compile(db, d->expr, where, now, out, err);
	free(d);
	return rc;
}
