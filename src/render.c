/*
 * render.c - an issue's Markdown turned into its HTML and plain-text parts,
 * and the layout templates filled with them.
 *
 * Owns the placeholder protocol that keeps merge fields away from cmark, the
 * plain-text renderer (a walk over cmark's tree, see render.h for the rules)
 * and the page-level fields {{issue.*}}, {{list.*}}, {{sender.*}}.  Called
 * once per issue by the send path; tmpl.c then merges each part per
 * subscriber.
 *
 * Invariants:
 *  (1) the input is strict UTF-8 without NUL bytes before cmark sees it, so
 *      an error names the line and column and cmark never substitutes
 *      U+FFFD behind the author's back;
 *  (2) every {{...}} token of the source is replaced by a placeholder word
 *      "Zhrld<nonce>Z<index>Z" made only of ASCII letters and digits.  Such a
 *      word is never escaped, percent-encoded, split or smartened by cmark,
 *      wherever it stands (text, emphasis, link destination, code).  The
 *      nonce is random and the source is checked not to contain
 *      "Zhrld<nonce>Z", so every placeholder found in cmark's output is ours
 *      and maps back to the token text verbatim;
 *  (3) identical token texts share one placeholder, so a field used as a
 *      link reference label still matches its definition;
 *  (4) text wrapping measures a placeholder as its token text, in code
 *      points, and never breaks inside it (it holds no spaces);
 *  (5) a link's number is the position of its URL (after placeholder
 *      restoration) in render_doc.links, so the same URL always gets the
 *      same [N].
 */
#include "herald/render.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <cmark.h>

#include "herald/tmpl.h"
#include "herald/utf8.h"

/* No single rendered part may grow past this; an issue is a few dozen KB. */
#define RENDER_MAX_OUTPUT ((size_t)64 << 20)
/* Nested lists and quotes never squeeze the text narrower than this. */
#define RENDER_MIN_WIDTH 20

#define PH_HEAD  "Zhrld"
#define PH_NONCE 8

struct ph_tok {
	const char *text;  /* token text in the caller's source, "{{" to "}}" */
	size_t      len;
	size_t      width; /* code points, for wrapping (invariant 4) */
};

/* The placeholders of one render_markdown() call (invariants 2 and 3). */
struct ph {
	/* "Zhrld<nonce>Z"; a placeholder adds "<index>Z" */
	char           prefix[sizeof PH_HEAD + PH_NONCE + 1];
	size_t         prefix_len;
	struct ph_tok *tok;
	size_t         n, cap;
};

struct links {
	char  **v;
	size_t  n, cap;
};

/* State of the plain-text walk. */
struct trender {
	struct buf        out;       /* the text part */
	struct buf        pfx;       /* prefix of every line at this depth */
	struct buf        first;     /* prefix of the next line only */
	int               has_first; /* `first` is pending */
	int               blank;     /* a blank line is due before the next */
	size_t            blank_pfx; /* ... drawn with pfx[0..blank_pfx) */
	size_t            lines;     /* lines written so far */
	struct buf        inl;       /* inline text of the current block */
	struct buf        line;      /* scratch: one output line */
	const struct ph  *ph;
	struct links     *links;
	int               allow_html;
	int               hard_breaks; /* a soft break is a new line */
	int               failed;    /* a buffer append failed */
};

static size_t
utf8_width(const char *s, size_t n)
{
	size_t i, w = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

/*
 * Invariant 1.  The well-formed sequences of Unicode 15, table 3-7: no
 * overlong forms, no surrogates, nothing above U+10FFFF.  A bad sequence is
 * reported at its first byte.
 */
static int
check_utf8(const char *s, size_t n, const char *where, unsigned first_line,
    struct herr *err)
{
	char at[HERR_WHERE_MAX];
	unsigned line = first_line ? first_line : 1, col = 1;
	size_t i = 0, k;
	unsigned char c;

	while (i < n) {
		c = (unsigned char)s[i];
		if (c == '\n') {
			line++;
			col = 1;
			i++;
			continue;
		}
		if (c == 0) {
			snprintf(at, sizeof at, "%s:%u:%u", where ? where : "-",
			    line, col);
			return herr_set(err, EX_DATAERR, at,
			    "NUL byte in input");
		}
		if (!(k = utf8_seq((const unsigned char *)s + i, n - i, NULL)))
			goto bad;
		i += k;
		col++;
	}
	return 0;
bad:
	snprintf(at, sizeof at, "%s:%u:%u", where ? where : "-", line, col);
	return herr_set(err, EX_DATAERR, at,
	    "invalid UTF-8 sequence at byte 0x%02X", (unsigned)s[i] & 0xFF);
}

/* ---- placeholders ---------------------------------------------------- */

/* memmem(3) is a GNU extension, not POSIX. */
static const char *
find(const char *h, size_t hn, const char *needle, size_t nn)
{
	const char *p, *end = h + hn;

	if (nn == 0 || hn < nn)
		return NULL;
	for (p = h; (p = memchr(p, needle[0], (size_t)(end - p) - nn + 1));
	    p++) {
		if (memcmp(p, needle, nn) == 0)
			return p;
		if ((size_t)(end - p) - nn == 0)
			break;
	}
	return NULL;
}

static void
ph_free(struct ph *ph)
{
	free(ph->tok);
}

/* Pick a nonce whose prefix does not occur in the source (invariant 2).
 * Random so that a source cannot spell a placeholder with entities either. */
static void
ph_choose(struct ph *ph, const char *md, size_t len)
{
	static uint64_t counter;
	uint64_t seed = 0, x;
	int i;

	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) !=
	    (ssize_t)sizeof seed)
		seed = 0x9E3779B97F4A7C15ULL * ++counter;
	for (;;) {
		x = seed;
		memcpy(ph->prefix, PH_HEAD, sizeof PH_HEAD - 1);
		for (i = 0; i < PH_NONCE; i++) {
			ph->prefix[sizeof PH_HEAD - 1 + i] =
			    (char)('a' + x % 26);
			x /= 26;
		}
		ph->prefix[sizeof PH_HEAD - 1 + PH_NONCE] = 'Z';
		ph->prefix[sizeof PH_HEAD + PH_NONCE] = '\0';
		ph->prefix_len = sizeof PH_HEAD + PH_NONCE;
		if (!find(md, len, ph->prefix, ph->prefix_len))
			return;
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
	}
}

/* Index of the token text, added when new (invariant 3); -1 on ENOMEM. */
static long
ph_intern(struct ph *ph, const char *text, size_t len)
{
	struct ph_tok *nt;
	size_t i;

	for (i = 0; i < ph->n; i++)
		if (ph->tok[i].len == len &&
		    memcmp(ph->tok[i].text, text, len) == 0)
			return (long)i;
	if (ph->n == ph->cap) {
		size_t cap = ph->cap ? ph->cap * 2 : 8;

		if (!(nt = realloc(ph->tok, cap * sizeof *nt)))
			return -1;
		ph->tok = nt;
		ph->cap = cap;
	}
	ph->tok[ph->n].text = text;
	ph->tok[ph->n].len = len;
	ph->tok[ph->n].width = utf8_width(text, len);
	return (long)ph->n++;
}

/* If s[0..n) starts with a placeholder, its length and token; else 0. */
static size_t
ph_match(const struct ph *ph, const char *s, size_t n,
    const struct ph_tok **tok)
{
	size_t i, idx = 0;

	if (ph->n == 0 || n < ph->prefix_len + 2 ||
	    memcmp(s, ph->prefix, ph->prefix_len) != 0)
		return 0;
	for (i = ph->prefix_len; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		idx = idx * 10 + (size_t)(s[i] - '0');
		if (idx >= ph->n)
			return 0;
	}
	if (i == ph->prefix_len || i >= n || s[i] != 'Z')
		return 0;
	*tok = &ph->tok[idx];
	return i + 1;
}

/*
 * Copy text cmark wrote (no placeholder in it) to out.  Invariant (2)'s
 * other half: cmark must not make a merge field either, and it would
 * from "{\{name}}", "&#123;&#123;name}}" or "&lbrace;{name}}".  So a '{'
 * that would start "{{" (followed by '{', or by a placeholder, which
 * restores to "{{") is written so that it no longer can: "&#123;" in HTML,
 * which a reader sees as "{", and '{' with U+2060 WORD JOINER (invisible)
 * in the text part.
 */
static int
lit_add(const struct ph *ph, const char *s, size_t n, const char *next, size_t next_n,
        int html, struct buf *out)
{
	size_t i, from = 0;
	int brace;

	for (i = 0; i < n; i++) {
		if (s[i] != '{')
			continue;
		if (i + 1 < n)
			brace = s[i + 1] == '{';
		else
			brace = next_n && (next[0] == '{' || (ph->n && next_n >= ph->prefix_len &&
			                                     !memcmp(next, ph->prefix, ph->prefix_len)));
		if (!brace)
			continue;
		if (buf_add(out, s + from, i - from) < 0 ||
		    buf_adds(out, html ? "&#123;" : "{\xe2\x81\xa0") < 0)
			return -1;
		from = i + 1;
	}
	return buf_add(out, s + from, n - from);
}

/* Append s[0..n) to out with every placeholder turned back into its token
 * and cmark's own text neutralised (lit_add); `html` for the HTML part. */
static int
ph_restore(const struct ph *ph, const char *s, size_t n, int html, struct buf *out)
{
	const struct ph_tok *tok;
	const char *p;
	size_t i = 0, m;

	while (i < n) {
		p = NULL;
		if (ph->n)
			p = find(s + i, n - i, ph->prefix, ph->prefix_len);
		if (!p)
			return lit_add(ph, s + i, n - i, "", 0, html, out);
		if (lit_add(ph, s + i, (size_t)(p - (s + i)), p, n - (size_t)(p - s), html, out) < 0)
			return -1;
		i = (size_t)(p - s);
		if ((m = ph_match(ph, s + i, n - i, &tok)) > 0) {
			if (buf_add(out, tok->text, tok->len) < 0)
				return -1;
			i += m;
		} else {
			if (lit_add(ph, s + i, 1, s + i + 1, n - i - 1, html, out) < 0)
				return -1;
			i++;
		}
	}
	return 0;
}

/* Width in code points of s[0..n) once placeholders are restored. */
static size_t
ph_width(const struct ph *ph, const char *s, size_t n)
{
	const struct ph_tok *tok;
	size_t i = 0, w = 0, m;

	while (i < n) {
		if (s[i] == PH_HEAD[0] &&
		    (m = ph_match(ph, s + i, n - i, &tok)) > 0) {
			w += tok->width;
			i += m;
			continue;
		}
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
		i++;
	}
	return w;
}

struct pre_ctx {
	const char *md;
	size_t      pos;  /* end of the last token */
	struct buf *dst;  /* the source cmark will see */
	struct ph  *ph;
};

static int
pre_token(void *vctx, const struct tmpl_token *tok, const char *where,
    struct herr *err)
{
	struct pre_ctx *c = vctx;
	long idx;

	idx = ph_intern(c->ph, c->md + tok->start, tok->end - tok->start);
	if (idx < 0 ||
	    buf_add(c->dst, c->md + c->pos, tok->start - c->pos) < 0 ||
	    buf_add(c->dst, c->ph->prefix, c->ph->prefix_len) < 0 ||
	    buf_addf(c->dst, "%ldZ", idx) < 0)
		return herr_set(err, EX_OSERR, where,
		    "out of memory rendering");
	c->pos = tok->end;
	return 0;
}

/* ---- links ----------------------------------------------------------- */

static void
links_free(struct links *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/*
 * cmark's safe mode blanks javascript:, vbscript:, file: and data: (except
 * a few image types) URLs in the HTML; the text part must not list what the
 * HTML part dropped.
 */
static int
url_is_safe(const char *u)
{
	static const char *const ok_data[] = {
		"data:image/png", "data:image/gif", "data:image/jpeg",
		"data:image/webp",
	};
	size_t i;

	if (!strncasecmp(u, "javascript:", 11) ||
	    !strncasecmp(u, "vbscript:", 9) || !strncasecmp(u, "file:", 5))
		return 0;
	if (strncasecmp(u, "data:", 5) != 0)
		return 1;
	for (i = 0; i < sizeof ok_data / sizeof ok_data[0]; i++)
		if (!strncasecmp(u, ok_data[i], strlen(ok_data[i])))
			return 1;
	return 0;
}

/* The [N] of url (invariant 5), 0 when it gets none, -1 on ENOMEM. */
static long
link_number(struct trender *r, const char *url)
{
	struct buf b = BUF_INIT(RENDER_MAX_OUTPUT);
	char **nv;
	size_t i;

	if (!url || !*url || (!r->allow_html && !url_is_safe(url)))
		return 0;
	if (ph_restore(r->ph, url, strlen(url), 0, &b) < 0) {
		buf_free(&b);
		return -1;
	}
	for (i = 0; i < r->links->n; i++)
		if (strcmp(r->links->v[i], buf_str(&b)) == 0) {
			buf_free(&b);
			return (long)i + 1;
		}
	if (r->links->n == r->links->cap) {
		size_t cap = r->links->cap ? r->links->cap * 2 : 8;

		if (!(nv = realloc(r->links->v, cap * sizeof *nv))) {
			buf_free(&b);
			return -1;
		}
		r->links->v = nv;
		r->links->cap = cap;
	}
	if (!(r->links->v[r->links->n] = buf_detach(&b)))
		return -1;
	return (long)++r->links->n;
}

/* ---- plain text ------------------------------------------------------ */

static void
t_add(struct trender *r, struct buf *b, const void *p, size_t n)
{
	if (buf_add(b, p, n) < 0)
		r->failed = 1;
}

static void
t_adds(struct trender *r, struct buf *b, const char *s)
{
	t_add(r, b, s, strlen(s));
}

/* Write a prefix without its trailing spaces (for lines with no text). */
static void
t_add_pfx_trimmed(struct trender *r, const char *p, size_t n)
{
	while (n > 0 && p[n - 1] == ' ')
		n--;
	t_add(r, &r->out, p, n);
}

/* Emit one line of (restored) text under the current prefixes. */
static void
t_emit(struct trender *r, const char *text, size_t n)
{
	const struct buf *p = r->has_first ? &r->first : &r->pfx;

	if (r->blank) {
		t_add_pfx_trimmed(r, buf_str(&r->pfx), r->blank_pfx);
		t_add(r, &r->out, "\n", 1);
		r->lines++;
		r->blank = 0;
	}
	if (n == 0)
		t_add_pfx_trimmed(r, buf_str(p), p->len);
	else {
		t_add(r, &r->out, buf_str(p), p->len);
		t_add(r, &r->out, text, n);
	}
	t_add(r, &r->out, "\n", 1);
	r->has_first = 0;
	r->lines++;
}

static size_t
t_width(const struct trender *r)
{
	size_t used = utf8_width(buf_str(&r->pfx), r->pfx.len);

	if (used + RENDER_MIN_WIDTH > RENDER_TEXT_WIDTH)
		return RENDER_MIN_WIDTH;
	return RENDER_TEXT_WIDTH - used;
}

/*
 * Greedy fill of s[0..n) into lines of at most t_width() code points:
 * spaces and tabs separate words (a run of them becomes one space), '\n' is
 * a hard break, and a word wider than the line stands alone, unsplit.
 * Returns the width of the widest line.
 */
static size_t
t_wrap(struct trender *r, const char *s, size_t n)
{
	size_t width = t_width(r), i = 0, j, w, lw = 0, maxw = 0;
	int have = 0;

	buf_reset(&r->line);
	while (i <= n) {
		if (i == n || s[i] == '\n') {
			if (have || i < n) {
				t_emit(r, buf_str(&r->line), r->line.len);
				if (lw > maxw)
					maxw = lw;
			}
			buf_reset(&r->line);
			lw = 0;
			have = 0;
			i++;
			continue;
		}
		if (s[i] == ' ' || s[i] == '\t') {
			i++;
			continue;
		}
		for (j = i; j < n && s[j] != ' ' && s[j] != '\t' &&
		    s[j] != '\n'; j++)
			;
		w = ph_width(r->ph, s + i, j - i);
		if (have && lw + 1 + w > width) {
			t_emit(r, buf_str(&r->line), r->line.len);
			if (lw > maxw)
				maxw = lw;
			buf_reset(&r->line);
			lw = 0;
			have = 0;
		}
		if (have) {
			t_add(r, &r->line, " ", 1);
			lw++;
		}
		if (ph_restore(r->ph, s + i, j - i, 0, &r->line) < 0)
			r->failed = 1;
		lw += w;
		have = 1;
		i = j;
	}
	return maxw;
}

/* Backticks around a code span: one more than its longest run, as
 * CommonMark needs to read it back. */
static void
t_code_span(struct trender *r, const char *lit)
{
	size_t run = 0, longest = 0, i, n = strlen(lit);
	int pad;

	for (i = 0; i < n; i++) {
		run = lit[i] == '`' ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	pad = n > 0 && (lit[0] == '`' || lit[n - 1] == '`');
	for (i = 0; i <= longest; i++)
		t_add(r, &r->inl, "`", 1);
	if (pad)
		t_add(r, &r->inl, " ", 1);
	t_add(r, &r->inl, lit, n);
	if (pad)
		t_add(r, &r->inl, " ", 1);
	for (i = 0; i <= longest; i++)
		t_add(r, &r->inl, "`", 1);
}

static void t_inlines(struct trender *, cmark_node *);

static void
t_link_mark(struct trender *r, cmark_node *node)
{
	long n = link_number(r, cmark_node_get_url(node));

	if (n < 0)
		r->failed = 1;
	else if (n > 0 && buf_addf(&r->inl, " [%ld]", n) < 0)
		r->failed = 1;
}

static void
t_inline(struct trender *r, cmark_node *node)
{
	const char *lit;

	switch (cmark_node_get_type(node)) {
	case CMARK_NODE_TEXT:
		if ((lit = cmark_node_get_literal(node)))
			t_adds(r, &r->inl, lit);
		break;
	case CMARK_NODE_SOFTBREAK:
		t_add(r, &r->inl, r->hard_breaks ? "\n" : " ", 1);
		break;
	case CMARK_NODE_LINEBREAK:
		t_add(r, &r->inl, "\n", 1);
		break;
	case CMARK_NODE_CODE:
		if ((lit = cmark_node_get_literal(node)))
			t_code_span(r, lit);
		break;
	case CMARK_NODE_HTML_INLINE:
		break; /* never in the text part */
	case CMARK_NODE_LINK:
		t_inlines(r, node);
		t_link_mark(r, node);
		break;
	case CMARK_NODE_IMAGE:
		t_add(r, &r->inl, "[", 1);
		t_inlines(r, node);
		t_add(r, &r->inl, "]", 1);
		t_link_mark(r, node);
		break;
	default: /* emphasis, strong, custom: their text, unmarked */
		t_inlines(r, node);
		break;
	}
}

static void
t_inlines(struct trender *r, cmark_node *parent)
{
	cmark_node *c;

	for (c = cmark_node_first_child(parent); c; c = cmark_node_next(c))
		t_inline(r, c);
}

static void t_block(struct trender *, cmark_node *);

/* Render the block children of parent, a blank line between two that
 * produced output unless the list is tight. */
static void
t_children(struct trender *r, cmark_node *parent, int tight)
{
	cmark_node *c;
	size_t before;
	int any = 0, sep;

	for (c = cmark_node_first_child(parent); c; c = cmark_node_next(c)) {
		/* Only a separator set here may be withdrawn here: an outer
		 * one still pending must survive a child with no output. */
		if ((sep = any && !tight)) {
			r->blank = 1;
			r->blank_pfx = r->pfx.len;
		}
		before = r->lines;
		t_block(r, c);
		if (r->lines != before)
			any = 1;
		else if (sep)
			r->blank = 0;
	}
}

/* Start a container: `mark` goes on its first line, `cont` (same width)
 * on the others.  Returns the saved prefix length for t_leave(). */
static size_t
t_enter(struct trender *r, const char *mark, const char *cont)
{
	size_t saved = r->pfx.len;

	if (!r->has_first) {
		buf_reset(&r->first);
		t_add(r, &r->first, buf_str(&r->pfx), r->pfx.len);
	}
	t_adds(r, &r->first, mark);
	r->has_first = 1;
	t_adds(r, &r->pfx, cont);
	return saved;
}

static void
t_leave(struct trender *r, size_t saved)
{
	if (r->has_first) /* an empty item or quote still shows its marker */
		t_emit(r, "", 0);
	r->pfx.len = saved;
	if (r->pfx.data)
		r->pfx.data[saved] = '\0';
}

static void
t_list(struct trender *r, cmark_node *list)
{
	char mark[32], cont[32];
	int ordered = cmark_node_get_list_type(list) == CMARK_ORDERED_LIST;
	int tight = cmark_node_get_list_tight(list);
	long n = cmark_node_get_list_start(list);
	cmark_node *item;
	size_t saved, before;
	int any = 0;

	for (item = cmark_node_first_child(list); item;
	    item = cmark_node_next(item), n++) {
		if (ordered)
			snprintf(mark, sizeof mark, "%ld. ", n);
		else
			snprintf(mark, sizeof mark, "- ");
		memset(cont, ' ', strlen(mark));
		cont[strlen(mark)] = '\0';
		if (any && !tight) {
			r->blank = 1;
			r->blank_pfx = r->pfx.len;
		}
		before = r->lines;
		saved = t_enter(r, mark, cont);
		t_children(r, item, tight);
		t_leave(r, saved);
		if (r->lines != before)
			any = 1;
	}
}

static void
t_code_block(struct trender *r, cmark_node *node)
{
	const char *lit = cmark_node_get_literal(node), *nl, *end;
	size_t n;

	if (!lit)
		return;
	/* a fenced block's trailing blank lines are not code: the blank line
	 * between blocks is t_children()'s */
	end = lit + strlen(lit);
	while (end > lit && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' ||
	                     end[-1] == '\t'))
		end--;
	while (end > lit && *end && *end != '\n')
		end++; /* keep the last line's own trailing spaces */
	while (lit < end) {
		nl = memchr(lit, '\n', (size_t)(end - lit));
		n = nl ? (size_t)(nl - lit) : (size_t)(end - lit);
		if (n > 0 && lit[n - 1] == '\r')
			n--;
		buf_reset(&r->line);
		if (n > 0) {
			t_add(r, &r->line, "    ", 4);
			if (ph_restore(r->ph, lit, n, 0, &r->line) < 0)
				r->failed = 1;
		}
		t_emit(r, buf_str(&r->line), r->line.len);
		if (!nl)
			break;
		lit = nl + 1;
	}
}

static void
t_heading(struct trender *r, cmark_node *node)
{
	size_t w, width = t_width(r);

	buf_reset(&r->inl);
	t_inlines(r, node);
	w = t_wrap(r, buf_str(&r->inl), r->inl.len);
	if (w == 0)
		return;
	if (w > width)
		w = width;
	buf_reset(&r->line);
	while (w-- > 0)
		t_add(r, &r->line,
		    cmark_node_get_heading_level(node) == 1 ? "=" : "-", 1);
	t_emit(r, buf_str(&r->line), r->line.len);
}

static void
t_block(struct trender *r, cmark_node *node)
{
	size_t saved;

	switch (cmark_node_get_type(node)) {
	case CMARK_NODE_DOCUMENT:
		t_children(r, node, 0);
		break;
	case CMARK_NODE_PARAGRAPH:
		buf_reset(&r->inl);
		t_inlines(r, node);
		t_wrap(r, buf_str(&r->inl), r->inl.len);
		break;
	case CMARK_NODE_HEADING:
		t_heading(r, node);
		break;
	case CMARK_NODE_LIST:
		t_list(r, node);
		break;
	case CMARK_NODE_BLOCK_QUOTE:
		saved = t_enter(r, "> ", "> ");
		t_children(r, node, 0);
		t_leave(r, saved);
		break;
	case CMARK_NODE_CODE_BLOCK:
		t_code_block(r, node);
		break;
	case CMARK_NODE_THEMATIC_BREAK:
		t_emit(r, "----", 4);
		break;
	case CMARK_NODE_HTML_BLOCK:
		break; /* never in the text part */
	default: /* custom blocks and items reached directly */
		t_children(r, node, 0);
		break;
	}
}

static int
render_text(cmark_node *doc, const struct ph *ph, struct links *links,
    const struct render_opts *opts, char **out)
{
	struct trender r;
	size_t i;
	int rc = -1;

	memset(&r, 0, sizeof r);
	buf_init(&r.out, RENDER_MAX_OUTPUT);
	buf_init(&r.pfx, RENDER_MAX_OUTPUT);
	buf_init(&r.first, RENDER_MAX_OUTPUT);
	buf_init(&r.inl, RENDER_MAX_OUTPUT);
	buf_init(&r.line, RENDER_MAX_OUTPUT);
	r.ph = ph;
	r.links = links;
	r.allow_html = opts && opts->allow_html;
	r.hard_breaks = opts && opts->hard_breaks;

	t_block(&r, doc);
	if (links->n > 0) {
		if (r.out.len > 0)
			t_add(&r, &r.out, "\n", 1);
		t_adds(&r, &r.out, "Links:\n");
		for (i = 0; i < links->n; i++)
			if (buf_addf(&r.out, "[%zu] %s\n", i + 1,
			    links->v[i]) < 0)
				r.failed = 1;
	}
	if (!r.failed && (*out = buf_detach(&r.out)))
		rc = 0;
	buf_free(&r.out);
	buf_free(&r.pfx);
	buf_free(&r.first);
	buf_free(&r.inl);
	buf_free(&r.line);
	return rc;
}

/* ---- HTML ------------------------------------------------------------ */

int
render_markdown(const char *md, size_t len, const char *where,
    unsigned first_line, const struct render_opts *opts,
    struct render_doc *out, struct herr *err)
{
	struct buf src = BUF_INIT(RENDER_MAX_OUTPUT);
	struct buf html = BUF_INIT(RENDER_MAX_OUTPUT);
	struct links links = { NULL, 0, 0 };
	struct pre_ctx pre;
	struct ph ph;
	cmark_node *doc = NULL;
	char *raw = NULL, *text = NULL;
	int allow_html = opts && opts->allow_html;
	int rc = -1;

	memset(out, 0, sizeof *out);
	memset(&ph, 0, sizeof ph);
	if (check_utf8(md, len, where, first_line, err) < 0)
		return -1;

	/* Invariant 2: fields become placeholder words before cmark. */
	ph_choose(&ph, md, len);
	pre.md = md;
	pre.pos = 0;
	pre.dst = &src;
	pre.ph = &ph;
	if (tmpl_scan(md, len, where, first_line, pre_token, &pre, err) < 0)
		goto done;
	if (buf_add(&src, md + pre.pos, len - pre.pos) < 0) {
		herr_set(err, EX_OSERR, where, "out of memory rendering");
		goto done;
	}

	doc = cmark_parse_document(buf_str(&src), src.len, CMARK_OPT_SMART);
	if (!doc) {
		herr_set(err, EX_OSERR, where,
		    "out of memory parsing Markdown");
		goto done;
	}
	/* Without CMARK_OPT_UNSAFE cmark writes "<!-- raw HTML omitted -->"
	 * for raw HTML, which issue.c looks for to warn the author. */
	raw = cmark_render_html(doc, (allow_html ? CMARK_OPT_UNSAFE : 0) |
	    (opts && opts->hard_breaks ? CMARK_OPT_HARDBREAKS : 0));
	if (!raw || ph_restore(&ph, raw, strlen(raw), 1, &html) < 0 ||
	    render_text(doc, &ph, &links, opts, &text) < 0) {
		herr_set(err, errno == E2BIG ? EX_DATAERR : EX_OSERR, where,
		    errno == E2BIG ? "rendered issue too large" :
		    "out of memory rendering");
		goto done;
	}
	if (!(out->html = buf_detach(&html))) {
		herr_set(err, EX_OSERR, where, "out of memory rendering");
		goto done;
	}
	out->text = text;
	text = NULL;
	out->links = links.v;
	out->n_links = links.n;
	links.v = NULL;
	links.n = 0;
	rc = 0;
done:
	if (raw)
		cmark_get_default_mem_allocator()->free(raw);
	if (doc)
		cmark_node_free(doc);
	free(text);
	links_free(&links);
	buf_free(&src);
	buf_free(&html);
	ph_free(&ph);
	if (rc < 0)
		render_doc_free(out);
	return rc;
}

void
render_doc_free(struct render_doc *doc)
{
	size_t i;

	if (!doc)
		return;
	free(doc->html);
	free(doc->text);
	for (i = 0; i < doc->n_links; i++)
		free(doc->links[i]);
	free(doc->links);
	memset(doc, 0, sizeof *doc);
}

/* ---- layout templates ------------------------------------------------ */

enum page_field {
	PAGE_CONTENT,
	PAGE_SUBJECT,
	PAGE_PREHEADER,
	PAGE_LANG,
	PAGE_LIST_NAME,
	PAGE_LIST_TITLE,
	PAGE_SENDER_NAME,
	PAGE_POSTAL_ADDRESS,
};

static const struct {
	const char      *name;
	enum page_field  field;
} page_fields[] = {
	{ "issue.content",          PAGE_CONTENT },
	{ "issue.subject",          PAGE_SUBJECT },
	{ "issue.preheader",        PAGE_PREHEADER },
	{ "issue.lang",             PAGE_LANG },
	{ "list.name",              PAGE_LIST_NAME },
	{ "list.title",             PAGE_LIST_TITLE },
	{ "sender.name",            PAGE_SENDER_NAME },
	{ "sender.postal_address",  PAGE_POSTAL_ADDRESS },
};
#define N_PAGE_FIELDS (sizeof page_fields / sizeof page_fields[0])

#define PAGE_MAX_CONTENT 8

struct page_ctx {
	const char                    *tpl;
	size_t                         pos;     /* end of the last token */
	int                            html;
	const struct render_page_vars *v;
	const char                    *content;
	struct buf                    *out;
	/* where {{issue.content}} went in `out`: the text part's own lines,
	 * already wrapped, which the footer wrap leaves alone */
	size_t                         content_at[PAGE_MAX_CONTENT][2];
	size_t                         n_content;
};

/* Every append failure in render_page(): the cap, or memory. */
static int
page_fail(struct herr *err, const char *where)
{
	if (errno == E2BIG)
		return herr_set(err, EX_DATAERR, where,
		    "rendered page too large");
	return herr_set(err, EX_OSERR, where, "out of memory rendering page");
}

/* Copying a value: merge fields in it are kept, the text around them is
 * escaped for HTML, and line breaks become <br> when asked. */
struct value_ctx {
	const char *s;
	size_t      pos;
	int         html, br;
	struct buf *out;
};

static int
value_text(struct value_ctx *c, const char *s, size_t n)
{
	const char *nl;

	if (!c->html)
		return buf_add(c->out, s, n);
	while (c->br && (nl = memchr(s, '\n', n))) {
		if (tmpl_escape_html(c->out, s, (size_t)(nl - s)) < 0 ||
		    buf_adds(c->out, "<br>\n") < 0)
			return -1;
		n -= (size_t)(nl - s) + 1;
		s = nl + 1;
	}
	return tmpl_escape_html(c->out, s, n);
}

static int
value_token(void *vctx, const struct tmpl_token *tok, const char *where,
    struct herr *err)
{
	struct value_ctx *c = vctx;

	if (value_text(c, c->s + c->pos, tok->start - c->pos) < 0 ||
	    buf_add(c->out, c->s + tok->start, tok->end - tok->start) < 0)
		return page_fail(err, where);
	c->pos = tok->end;
	return 0;
}

static int
page_value(struct page_ctx *c, enum page_field f, const char *s,
    const struct tmpl_token *tok, struct herr *err)
{
	struct value_ctx vc;
	const char *name = page_fields[f].name; /* table is in enum order */
	size_t n;
	int rc;

	if (!s)
		s = "";
	if (!*s && tok->fallback) {
		/* {{list.title|Our news}}: the fallback, as it is written. */
		if (c->html)
			rc = tmpl_escape_html(c->out, tok->fallback,
			    tok->fallback_len);
		else
			rc = buf_add(c->out, tok->fallback, tok->fallback_len);
		return rc < 0 ? page_fail(err, name) : 0;
	}
	if (f == PAGE_CONTENT) { /* already HTML, or the finished text part */
		size_t at = c->out->len;

		if (buf_adds(c->out, s) < 0)
			return page_fail(err, name);
		/* an empty body is no span: page_wrap() would stand still on it */
		if (c->out->len > at && c->n_content < PAGE_MAX_CONTENT) {
			c->content_at[c->n_content][0] = at;
			c->content_at[c->n_content++][1] = c->out->len;
		}
		return 0;
	}
	n = strlen(s);
	vc.s = s;
	vc.pos = 0;
	vc.html = c->html;
	vc.br = f == PAGE_POSTAL_ADDRESS;
	vc.out = c->out;
	if (tmpl_scan(s, n, name, 1, value_token, &vc, err) < 0)
		return -1;
	if (value_text(&vc, s + vc.pos, n - vc.pos) < 0)
		return page_fail(err, name);
	return 0;
}

static int
page_token(void *vctx, const struct tmpl_token *tok, const char *where,
    struct herr *err)
{
	static const char *const scopes[] = { "issue.", "list.", "sender." };
	struct page_ctx *c = vctx;
	const struct render_page_vars *v = c->v;
	char at[HERR_WHERE_MAX], known[256];
	const char *val = NULL;
	size_t i, k = 0;
	int f = -1, scoped = 0;

	if (buf_add(c->out, c->tpl + c->pos, tok->start - c->pos) < 0)
		return page_fail(err, where);
	c->pos = tok->end;
	for (i = 0; i < sizeof scopes / sizeof scopes[0]; i++)
		if (tok->field_len > strlen(scopes[i]) &&
		    !memcmp(tok->field, scopes[i], strlen(scopes[i])))
			scoped = 1;
	if (!scoped) /* a subscriber field: tmpl_compile()'s business */
		return buf_add(c->out, c->tpl + tok->start,
		    tok->end - tok->start) < 0 ? page_fail(err, where) : 0;

	for (i = 0; i < N_PAGE_FIELDS; i++)
		if (strlen(page_fields[i].name) == tok->field_len &&
		    !memcmp(page_fields[i].name, tok->field, tok->field_len))
			f = (int)page_fields[i].field;
	if (f < 0) {
		known[0] = '\0';
		for (i = 0; i < N_PAGE_FIELDS; i++)
			k += (size_t)snprintf(known + k, sizeof known - k,
			    "%s%s", i ? ", " : "", page_fields[i].name);
		snprintf(at, sizeof at, "%s:%u:%u", where ? where : "-",
		    tok->line, tok->col);
		return herr_set(err, EX_DATAERR, at,
		    "unknown page field '%.*s' (known: %s)",
		    (int)(tok->field_len > 60 ? 60 : tok->field_len),
		    tok->field, known);
	}
	switch ((enum page_field)f) {
	case PAGE_CONTENT:        val = c->content; break;
	case PAGE_SUBJECT:        val = v->subject; break;
	case PAGE_PREHEADER:      val = v->preheader; break;
	case PAGE_LANG:           val = v->lang ? v->lang : "en"; break;
	case PAGE_LIST_NAME:      val = v->list_name; break;
	case PAGE_LIST_TITLE:
		val = v->list_title && *v->list_title ? v->list_title :
		    v->list_name;
		break;
	case PAGE_SENDER_NAME:    val = v->sender_name; break;
	case PAGE_POSTAL_ADDRESS: val = v->postal_address; break;
	}
	return page_value(c, (enum page_field)f, val, tok, err);
}

/* End of the word starting at s[i]: the next space, except inside a
 * merge field ("{{ name | there }}" is one word). */
static size_t
page_word_end(const char *s, size_t n, size_t i)
{
	const char *close;

	while (i < n && s[i] != ' ') {
		if (i + 1 < n && s[i] == '{' && s[i + 1] == '{' &&
		    (close = find(s + i, n - i, "}}", 2))) {
			i = (size_t)(close - s) + 2;
			continue;
		}
		i++;
	}
	return i;
}

/*
 * Append one line of the text layout, s[0..n) without its LF, to out,
 * wrapped at RENDER_TEXT_WIDTH like the body: greedy at spaces, a word
 * wider than the line on its own line, never inside a merge field.  A line
 * that fits is copied as it is (the "-- " signature separator keeps its
 * space, RFC 3676 4.3).
 */
static int
page_wrap_line(struct buf *out, const char *s, size_t n)
{
	size_t i = 0, j, w, lw = 0;
	int have = 0;

	if (utf8_width(s, n) <= RENDER_TEXT_WIDTH)
		return buf_add(out, s, n);
	while (i < n) {
		if (s[i] == ' ') {
			i++;
			continue;
		}
		j = page_word_end(s, n, i);
		w = utf8_width(s + i, j - i);
		if (have && lw + 1 + w > RENDER_TEXT_WIDTH) {
			if (buf_addc(out, '\n') < 0)
				return -1;
			lw = 0;
			have = 0;
		}
		if (have) {
			if (buf_addc(out, ' ') < 0)
				return -1;
			lw++;
		}
		if (buf_add(out, s + i, j - i) < 0)
			return -1;
		lw += w;
		have = 1;
		i = j;
	}
	return 0;
}

/* Wrap the lines of page[0..n) that lie outside the content spans. */
static int
page_wrap(const struct page_ctx *c, const char *page, size_t n, struct buf *out)
{
	size_t pos = 0, k, end, stop;
	const char *nl;

	while (pos < n) {
		for (k = 0; k < c->n_content; k++)
			if (pos == c->content_at[k][0])
				break;
		if (k < c->n_content) {
			end = c->content_at[k][1];
			if (buf_add(out, page + pos, end - pos) < 0)
				return -1;
			pos = end;
			continue;
		}
		/* up to the end of the line or the next content span */
		stop = n;
		for (k = 0; k < c->n_content; k++)
			if (c->content_at[k][0] > pos && c->content_at[k][0] < stop)
				stop = c->content_at[k][0];
		nl = memchr(page + pos, '\n', stop - pos);
		end = nl ? (size_t)(nl - page) : stop;
		if (page_wrap_line(out, page + pos, end - pos) < 0 ||
		    (nl && buf_addc(out, '\n') < 0))
			return -1;
		pos = nl ? end + 1 : end;
	}
	return 0;
}

int
render_page(const char *tpl, size_t tpl_len, const char *tpl_where, int html,
    const struct render_page_vars *v, const char *content, struct buf *out,
    struct herr *err)
{
	struct page_ctx c;
	struct buf page = BUF_INIT(RENDER_MAX_OUTPUT);
	int rc = -1;

	memset(&c, 0, sizeof c);
	c.tpl = tpl;
	c.html = html;
	c.v = v;
	c.content = content;
	/* The text layout is filled apart and then wrapped, so a long list
	 * title or postal address in the footer keeps to 72 columns. */
	c.out = html ? out : &page;
	if (tmpl_scan(tpl, tpl_len, tpl_where, 1, page_token, &c, err) < 0)
		goto done;
	if (buf_add(c.out, tpl + c.pos, tpl_len - c.pos) < 0 ||
	    (!html && page_wrap(&c, buf_str(&page), page.len, out) < 0)) {
		page_fail(err, tpl_where);
		goto done;
	}
	rc = 0;
done:
	buf_free(&page);
	return rc;
}
