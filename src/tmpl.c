/*
 * tmpl.c - merge fields: the {{...}} tokenizer, the compiler and the merger.
 *
 * Owns the merge-field syntax described in tmpl.h and the table of fields a
 * subscriber template may use.  render.c calls tmpl_scan() to protect fields
 * from cmark and to fill page-level fields; the send path compiles each
 * rendered part once per issue and calls tmpl_merge() once per recipient.
 *
 * Invariants:
 *  (1) a compiled template owns a private copy of its source, and every
 *      segment points into that copy, so the caller's text may go away;
 *  (2) a template is a flat array of segments, each "literal text, then at
 *      most one field", so tmpl_merge() never looks at the source again and
 *      allocates nothing except when the output buffer has to grow;
 *  (3) literal text is copied as it is in both escape modes: the HTML part
 *      is already HTML, and only values and fallbacks come from outside;
 *  (4) on failure tmpl_merge() leaves `out` as it found it.
 */
#include "herald/tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "attr." followed by a key: matched by prefix, not by the table. */
#define ATTR_PREFIX     "attr."
#define ATTR_PREFIX_LEN (sizeof ATTR_PREFIX - 1)
/* "link." followed by a number from 1 */
#define LINK_PREFIX     "link."
#define LINK_PREFIX_LEN (sizeof LINK_PREFIX - 1)

/* The fields a subscriber template may use, in the order messages list them. */
static const struct {
	const char      *name;
	enum tmpl_field  field;
} tmpl_fields[] = {
	{ "name",            TMPL_FIELD_NAME },
	{ "first_name",      TMPL_FIELD_FIRST_NAME },
	{ "email",           TMPL_FIELD_EMAIL },
	{ "attr.KEY",        TMPL_FIELD_ATTR },   /* matched by ATTR_PREFIX */
	{ "unsubscribe_url", TMPL_FIELD_UNSUBSCRIBE_URL },
	{ "preferences_url", TMPL_FIELD_PREFERENCES_URL },
	{ "view_url",        TMPL_FIELD_VIEW_URL },
	{ "open_pixel",      TMPL_FIELD_OPEN_PIXEL },
	{ "link.N",          TMPL_FIELD_LINK },   /* matched by LINK_PREFIX */
	{ "lists",           TMPL_FIELD_LISTS },
};
#define N_FIELDS (sizeof tmpl_fields / sizeof tmpl_fields[0])

/* Literal text, then at most one field (invariant 2). */
struct tmpl_seg {
	const char *lit;      /* into tmpl.text */
	size_t      lit_len;
	int         field;    /* enum tmpl_field, or -1 for literal only */
	size_t      key;      /* TMPL_FIELD_ATTR: index into tmpl.keys;
	                         TMPL_FIELD_LINK: the link number N (1-based) */
	const char *fb;       /* fallback, into tmpl.text; NULL when none */
	size_t      fb_len;
};

struct tmpl {
	char            *text;     /* own copy of the source (invariant 1) */
	struct tmpl_seg *segs;
	size_t           n_segs, cap_segs;
	size_t           n_fields; /* segments with a field */
	size_t           lit_len;  /* literal bytes: the least output size */
	char           **keys;     /* distinct attr keys, NUL-terminated */
	size_t           n_keys, cap_keys;
};

static int
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	    c == '\f';
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && is_space((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_space((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* "file:line:col", or "line:col" without a file name. */
static void
format_where(char *dst, size_t size, const char *where, unsigned line,
    unsigned col)
{
	if (where && *where)
		snprintf(dst, size, "%s:%u:%u", where, line, col);
	else
		snprintf(dst, size, "%u:%u", line, col);
}

/* Bytes to quote from s[0..n) in a message: at most max, cut on a character
 * boundary so the message stays valid UTF-8. */
static int
quote_len(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return (int)n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return (int)n;
}

int
tmpl_scan(const char *src, size_t len, const char *where, unsigned first_line,
    tmpl_token_fn fn, void *ctx, struct herr *err)
{
	char at[HERR_WHERE_MAX];
	struct tmpl_token tok;
	unsigned line = first_line ? first_line : 1, col = 1;
	size_t i = 0, j, eol;
	const char *bar;

	while (i < len) {
		unsigned char c = (unsigned char)src[i];

		if (c == '\n') {
			line++;
			col = 1;
			i++;
			continue;
		}
		if (c != '{' || i + 1 >= len || src[i + 1] != '{') {
			/* Columns count characters: skip continuation bytes. */
			if ((c & 0xC0) != 0x80)
				col++;
			i++;
			continue;
		}
		/* A "{{": its "}}" must be on the same line. */
		for (eol = i + 2; eol < len && src[eol] != '\n'; eol++)
			;
		for (j = i + 2; j + 1 < eol; j++)
			if (src[j] == '}' && src[j + 1] == '}')
				break;
		if (j + 1 >= eol) {
			format_where(at, sizeof at, where, line, col);
			return herr_set(err, EX_DATAERR, at,
			    "unterminated merge field '%.*s': "
			    "no '}}' on its line",
			    quote_len(src + i, eol - i, 40), src + i);
		}
		memset(&tok, 0, sizeof tok);
		tok.start = i;
		tok.end = j + 2;
		tok.line = line;
		tok.col = col;
		tok.field = src + i + 2;
		tok.field_len = j - (i + 2);
		bar = memchr(tok.field, '|', tok.field_len);
		if (bar) {
			tok.fallback = bar + 1;
			tok.fallback_len = (size_t)(src + j - tok.fallback);
			tok.field_len = (size_t)(bar - tok.field);
			trim(&tok.fallback, &tok.fallback_len);
		}
		trim(&tok.field, &tok.field_len);
		if (tok.field_len == 0) {
			format_where(at, sizeof at, where, line, col);
			return herr_set(err, EX_DATAERR, at,
			    "empty merge field '%.*s'",
			    quote_len(src + i, tok.end - i, 40), src + i);
		}
		if (fn && fn(ctx, &tok, where, err) < 0)
			return -1;
		for (; i < tok.end; i++)
			if (((unsigned char)src[i] & 0xC0) != 0x80)
				col++;
	}
	return 0;
}

static int
valid_attr_key(const char *k, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (k[i] == '|' || k[i] == '}' || is_space((unsigned char)k[i]))
			return 0;
	return 1;
}

/* The index of attr key k in t->keys, adding it when new; -1 on ENOMEM. */
static int
intern_key(struct tmpl *t, const char *k, size_t n, size_t *idx)
{
	char **nk;
	size_t i;

	for (i = 0; i < t->n_keys; i++)
		if (strlen(t->keys[i]) == n && memcmp(t->keys[i], k, n) == 0) {
			*idx = i;
			return 0;
		}
	if (t->n_keys == t->cap_keys) {
		size_t cap = t->cap_keys ? t->cap_keys * 2 : 4;

		if (!(nk = realloc(t->keys, cap * sizeof *nk)))
			return -1;
		t->keys = nk;
		t->cap_keys = cap;
	}
	if (!(t->keys[t->n_keys] = strndup(k, n)))
		return -1;
	*idx = t->n_keys++;
	return 0;
}

static struct tmpl_seg *
add_seg(struct tmpl *t)
{
	struct tmpl_seg *ns;

	if (t->n_segs == t->cap_segs) {
		size_t cap = t->cap_segs ? t->cap_segs * 2 : 16;

		if (!(ns = realloc(t->segs, cap * sizeof *ns)))
			return NULL;
		t->segs = ns;
		t->cap_segs = cap;
	}
	ns = &t->segs[t->n_segs++];
	memset(ns, 0, sizeof *ns);
	ns->field = -1;
	return ns;
}

struct compile_ctx {
	struct tmpl *t;
	size_t       pos; /* end of the last token: start of pending literal */
};

static int
compile_token(void *vctx, const struct tmpl_token *tok, const char *where,
    struct herr *err)
{
	struct compile_ctx *c = vctx;
	struct tmpl *t = c->t;
	struct tmpl_seg *s;
	char at[HERR_WHERE_MAX], known[160];
	size_t i, n = 0, link_n = 0;
	int field = -1;

	for (i = 0; i < N_FIELDS; i++) {
		if (tmpl_fields[i].field == TMPL_FIELD_ATTR ||
		    tmpl_fields[i].field == TMPL_FIELD_LINK)
			continue;
		if (strlen(tmpl_fields[i].name) == tok->field_len &&
		    !memcmp(tmpl_fields[i].name, tok->field, tok->field_len)) {
			field = (int)tmpl_fields[i].field;
			break;
		}
	}
	if (field < 0 && tok->field_len > ATTR_PREFIX_LEN &&
	    memcmp(tok->field, ATTR_PREFIX, ATTR_PREFIX_LEN) == 0 &&
	    valid_attr_key(tok->field + ATTR_PREFIX_LEN,
	    tok->field_len - ATTR_PREFIX_LEN))
		field = TMPL_FIELD_ATTR;
	if (field < 0 && tok->field_len > LINK_PREFIX_LEN &&
	    tok->field_len <= LINK_PREFIX_LEN + 6 &&
	    memcmp(tok->field, LINK_PREFIX, LINK_PREFIX_LEN) == 0 &&
	    tok->field[LINK_PREFIX_LEN] >= '1' && tok->field[LINK_PREFIX_LEN] <= '9') {
		size_t k;

		for (k = LINK_PREFIX_LEN, link_n = 0; k < tok->field_len; k++) {
			if (tok->field[k] < '0' || tok->field[k] > '9')
				break;
			link_n = link_n * 10 + (size_t)(tok->field[k] - '0');
		}
		if (k == tok->field_len)
			field = TMPL_FIELD_LINK;
	}
	if (field < 0) {
		known[0] = '\0';
		for (i = 0; i < N_FIELDS; i++)
			if (tmpl_fields[i].field != TMPL_FIELD_LINK) /* not for authors */
				n += (size_t)snprintf(known + n, sizeof known - n,
				    "%s%s", i ? ", " : "", tmpl_fields[i].name);
		format_where(at, sizeof at, where, tok->line, tok->col);
		return herr_set(err, EX_DATAERR, at,
		    "unknown merge field '%.*s' (known: %s)",
		    quote_len(tok->field, tok->field_len, 60), tok->field,
		    known);
	}

	if (!(s = add_seg(t)))
		goto nomem;
	s->lit = t->text + c->pos;
	s->lit_len = tok->start - c->pos;
	s->field = field;
	if (field == TMPL_FIELD_ATTR &&
	    intern_key(t, tok->field + ATTR_PREFIX_LEN,
	    tok->field_len - ATTR_PREFIX_LEN, &s->key) < 0)
		goto nomem;
	if (field == TMPL_FIELD_LINK)
		s->key = link_n;
	s->fb = tok->fallback;
	s->fb_len = tok->fallback_len;
	t->lit_len += s->lit_len;
	t->n_fields++;
	c->pos = tok->end;
	return 0;
nomem:
	format_where(at, sizeof at, where, tok->line, tok->col);
	return herr_set(err, EX_OSERR, at, "out of memory compiling template");
}

int
tmpl_compile(const char *src, size_t len, const char *where,
    unsigned first_line, struct tmpl **out, struct herr *err)
{
	struct compile_ctx c;
	struct tmpl_seg *s;
	struct tmpl *t;

	*out = NULL;
	if (!(t = calloc(1, sizeof *t)) || !(t->text = malloc(len + 1))) {
		free(t);
		return herr_set(err, EX_OSERR, where,
		    "out of memory compiling template");
	}
	if (len)
		memcpy(t->text, src, len);
	t->text[len] = '\0';

	/* Scan the private copy so token pointers land in it (invariant 1). */
	c.t = t;
	c.pos = 0;
	if (tmpl_scan(t->text, len, where, first_line, compile_token, &c,
	    err) < 0) {
		tmpl_free(t);
		return -1;
	}
	if (c.pos < len) {
		if (!(s = add_seg(t))) {
			tmpl_free(t);
			return herr_set(err, EX_OSERR, where,
			    "out of memory compiling template");
		}
		s->lit = t->text + c.pos;
		s->lit_len = len - c.pos;
		t->lit_len += s->lit_len;
	}
	*out = t;
	return 0;
}

void
tmpl_free(struct tmpl *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_keys; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->segs);
	free(t->text);
	free(t);
}

size_t
tmpl_field_count(const struct tmpl *t)
{
	return t ? t->n_fields : 0;
}

void
tmpl_each_attr(const struct tmpl *t, void (*fn)(void *ctx, const char *key),
    void *ctx)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_keys; i++)
		fn(ctx, t->keys[i]);
}

int
tmpl_escape_html(struct buf *out, const char *s, size_t len)
{
	const char *rep;
	size_t i, run = 0;

	/* Copy runs of harmless bytes in one go: most values have none. */
	for (i = 0; i < len; i++) {
		switch (s[i]) {
		case '&':  rep = "&amp;";  break;
		case '<':  rep = "&lt;";   break;
		case '>':  rep = "&gt;";   break;
		case '"':  rep = "&quot;"; break;
		case '\'': rep = "&#39;";  break;
		default:   continue;
		}
		if (i > run && buf_add(out, s + run, i - run) < 0)
			return -1;
		if (buf_adds(out, rep) < 0)
			return -1;
		run = i + 1;
	}
	if (len > run)
		return buf_add(out, s + run, len - run);
	return 0;
}

/* The first whitespace-separated word of name. */
static const char *
first_word(const char *name, size_t *len)
{
	size_t n = 0;

	while (is_space((unsigned char)*name))
		name++;
	while (name[n] && !is_space((unsigned char)name[n]))
		n++;
	*len = n;
	return name;
}

static const char *
attr_value(const struct tmpl_vars *v, const char *key)
{
	size_t i;

	for (i = 0; i < v->n_attrs; i++)
		if (v->attrs[i].key && strcmp(v->attrs[i].key, key) == 0)
			return v->attrs[i].value;
	return NULL;
}

/* RFC 3986 §2.3 unreserved characters stay; every other byte is %XX, so a
 * name such as "Tom & Jerry" cannot add a parameter to a link. */
/* Fields whose value is itself a URL herald made: in a link they are the
 * link, so TMPL_URL copies them as they are ([Unsubscribe]({{unsubscribe_url}})). */
static int
field_is_url(int field)
{
	return field == TMPL_FIELD_UNSUBSCRIBE_URL || field == TMPL_FIELD_VIEW_URL ||
	       field == TMPL_FIELD_LINK || field == TMPL_FIELD_PREFERENCES_URL;
}

static int
escape_url(struct buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			if (buf_addc(out, (char)c) < 0)
				return -1;
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			if (buf_add(out, e, 3) < 0)
				return -1;
		}
	}
	return 0;
}

int
tmpl_merge(const struct tmpl *t, const struct tmpl_vars *v,
    enum tmpl_escape esc, struct buf *out)
{
	const struct tmpl_seg *s;
	const char *val;
	size_t i, vlen, start = out->len, want;
	int rc;

	/* One reservation for the literal text and typical values, never
	 * more than the cap allows; any growth past it is buf_add's job. */
	want = t->lit_len + t->n_fields * 32;
	if (want > out->max - out->len)
		want = out->max - out->len;
	if (buf_reserve(out, want) < 0)
		goto fail;
	/* buf_reserve() may allocate without terminating; keep buf.h's
	 * promise of a NUL-terminated buffer even when nothing is added. */
	out->data[out->len] = '\0';

	for (i = 0; i < t->n_segs; i++) {
		s = &t->segs[i];
		if (s->lit_len && buf_add(out, s->lit, s->lit_len) < 0)
			goto fail;
		if (s->field < 0)
			continue;
		val = NULL;
		vlen = 0;
		switch ((enum tmpl_field)s->field) {
		case TMPL_FIELD_NAME:
			val = v->name;
			break;
		case TMPL_FIELD_FIRST_NAME:
			if (v->name)
				val = first_word(v->name, &vlen);
			break;
		case TMPL_FIELD_EMAIL:
			val = v->email;
			break;
		case TMPL_FIELD_ATTR:
			val = attr_value(v, t->keys[s->key]);
			break;
		case TMPL_FIELD_UNSUBSCRIBE_URL:
			val = v->unsubscribe_url;
			break;
		case TMPL_FIELD_VIEW_URL:
			val = v->view_url;
			break;
		case TMPL_FIELD_PREFERENCES_URL:
			val = v->preferences_url;
			break;
		case TMPL_FIELD_OPEN_PIXEL:
			/* herald's own markup: copied, never escaped */
			if (v->open_pixel && buf_adds(out, v->open_pixel) < 0)
				goto fail;
			continue;
		case TMPL_FIELD_LINK:
			if (v->links && s->key >= 1 && s->key <= v->n_links)
				val = v->links[s->key - 1];
			break;
		case TMPL_FIELD_LISTS:
			val = v->lists;
			break;
		}
		if (val && s->field != TMPL_FIELD_FIRST_NAME)
			vlen = strlen(val);
		if (vlen == 0) {
			/* Empty or absent: the fallback, or nothing. */
			val = s->fb;
			vlen = s->fb_len;
		}
		if (vlen == 0)
			continue;
		if (esc == TMPL_HTML)
			rc = tmpl_escape_html(out, val, vlen);
		else if (esc == TMPL_URL && !field_is_url(s->field))
			rc = escape_url(out, val, vlen);
		else
			rc = buf_add(out, val, vlen);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	/* Invariant 4: drop the partial merge. */
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -1;
}
