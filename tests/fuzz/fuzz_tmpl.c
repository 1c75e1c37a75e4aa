/*
 * fuzz_tmpl.c - libFuzzer target for the merge-field template compiler
 * (tmpl_scan(), tmpl_compile(), tmpl_merge(), tmpl_escape_html();
 * src/tmpl.c).
 *
 * Input: the template, optionally followed by a NUL byte and subscriber
 * values separated by NUL bytes, in this order: name, email,
 * unsubscribe_url, view_url, attr.role, attr.org, attr.ÿ (a non-ASCII key).
 * A value not given is a fixed hostile default (markup, quotes, '&', a
 * non-ASCII name); with no NUL in the input the defaults are used.
 *
 * Each input is scanned, compiled, and when it compiles merged with those
 * values, with all-NULL values and with two one-character value sets, under
 * each escape (TMPL_RAW, TMPL_HTML, TMPL_URL).  Broken promises abort():
 *   - tmpl_scan() tokens lie inside the text, start with "{{", end with
 *     "}}", have a non-empty field name, positions from line 1 column 1;
 *   - compiling fails only with EX_DATAERR and no template, and succeeds
 *     when it does with one; every attr key tmpl_each_attr() reports is
 *     non-empty, without '|', '}' or spaces;
 *   - merging succeeds (the output buffer is large), is repeatable (the same
 *     values give the same bytes), and a template without fields merges to
 *     itself;
 *   - escaping holds: merged with every subscriber value "<" and with
 *     every one "x", TMPL_HTML and TMPL_URL outputs hold the same number of
 *     '<' (a subscriber's '<' is never copied as it is; what herald makes -
 *     the open pixel, the links, unsubscribe_url and view_url, which
 *     TMPL_URL copies as they are - is the same in both sets);
 *   - tmpl_escape_html() output holds none of < > " '.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"
#include "herald/herr.h"
#include "herald/tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (16u << 20)
#define N_VALUES 7

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_tmpl: broken promise: %s (%.200s)\n", what, detail ? detail : "");
	abort();
}

struct scan_ctx {
	const char *src;
	size_t      len;
	size_t      last_end;
};

static int
on_token(void *ctx, const struct tmpl_token *tok, const char *where, struct herr *err)
{
	struct scan_ctx *c = ctx;

	(void)where;
	(void)err;
	if (tok->start < c->last_end || tok->end <= tok->start || tok->end > c->len ||
	    tok->end - tok->start < 4)
		broken("token span outside the text or overlapping", "");
	if (memcmp(c->src + tok->start, "{{", 2) || memcmp(c->src + tok->end - 2, "}}", 2))
		broken("token not delimited by {{ }}", "");
	if (tok->field_len == 0 || tok->field < c->src + tok->start ||
	    tok->field + tok->field_len > c->src + tok->end)
		broken("field name empty or outside its token", "");
	if (tok->fallback && (tok->fallback < c->src + tok->start ||
	                      tok->fallback + tok->fallback_len > c->src + tok->end))
		broken("fallback outside its token", "");
	if (tok->line < 1 || tok->col < 1)
		broken("position before line 1 column 1", "");
	c->last_end = tok->end;
	return 0;
}

static void
on_attr(void *ctx, const char *key)
{
	(void)ctx;
	if (key == NULL || *key == '\0' || strpbrk(key, "|} "))
		broken("attribute key empty or with '|', '}' or a space", key);
}

static size_t
count_lt(const struct buf *b)
{
	size_t i, n = 0;

	for (i = 0; i < b->len; i++)
		n += b->data[i] == '<';
	return n;
}

/* Merge and check success and repeatability; the result stays in *out. */
static void
merge(const struct tmpl *t, const struct tmpl_vars *v, enum tmpl_escape esc, struct buf *out)
{
	struct buf again = BUF_INIT(OUT_MAX);

	if (tmpl_merge(t, v, esc, out) < 0)
		broken("merge failed", "");
	if (tmpl_merge(t, v, esc, &again) < 0)
		broken("second merge failed", "");
	if (again.len != out->len || (out->len && memcmp(again.data, out->data, out->len)))
		broken("merging twice gave different bytes", "");
	buf_free(&again);
}

static void
fill(struct tmpl_vars *v, struct tmpl_attr attrs[3], const char *const val[N_VALUES])
{
	static const char *const links[] = {
		"https://example.org/a?x=1&y=<2>",
		"https://click.example.org/c/AbC-_9/2",
		"mailto:news@example.org",
	};

	memset(v, 0, sizeof *v);
	v->name = val[0];
	v->email = val[1];
	v->unsubscribe_url = val[2];
	v->view_url = val[3];
	attrs[0].key = "role";
	attrs[0].value = val[4];
	attrs[1].key = "org";
	attrs[1].value = val[5];
	attrs[2].key = "\xc3\xbf";
	attrs[2].value = val[6];
	v->attrs = attrs;
	v->n_attrs = 3;
	v->open_pixel = "<img src=\"https://news.example.org/o/AbC.gif\" alt=\"\">";
	v->links = links;
	v->n_links = 3;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const defaults[N_VALUES] = {
		"Zo\xc3\xab <b>M\xc3\xbcller</b> & \"Co\" 'x'",
		"zoe+news@example.org",
		"https://news.example.org/u/AbCdEf?a=1&b=<2>",
		"https://news.example.org/archive/16",
		"Social worker, \"senior\"",
		"",
		"\xe2\x80\xae rtl & <script>",
	};
	/* unsubscribe_url and view_url are URLs herald makes: TMPL_URL copies
	 * them as they are (they are the link), so they stay the same. */
	static const char *const lt[N_VALUES] = {
		"<", "<", "https://news.example.org/u/AbC", "https://news.example.org/archive/1",
		"<", "<", "<",
	};
	static const char *const ex[N_VALUES] = {
		"x", "x", "https://news.example.org/u/AbC", "https://news.example.org/archive/1",
		"x", "x", "x",
	};
	static const enum tmpl_escape escs[3] = { TMPL_RAW, TMPL_HTML, TMPL_URL };
	const char *val[N_VALUES];
	struct tmpl_attr attrs[3];
	struct tmpl_vars v, none;
	struct scan_ctx sc;
	struct tmpl *t = NULL;
	struct herr err;
	char *copy;
	const char *src, *p, *end, *nul;
	size_t len, i;
	int rc, e;

	/* A copy of exactly `size` bytes plus a NUL for the values' strings. */
	if (!(copy = malloc(size + 1)))
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	src = copy;
	nul = memchr(copy, '\0', size);
	len = nul ? (size_t)(nul - copy) : size;
	for (i = 0; i < N_VALUES; i++)
		val[i] = defaults[i];
	if (nul) {
		p = nul + 1;
		end = copy + size;
		for (i = 0; i < N_VALUES && p <= end; i++) {
			val[i] = p;
			p += strlen(p) + 1;
		}
	}

	/* The tokenizer alone. */
	sc.src = src;
	sc.len = len;
	sc.last_end = 0;
	herr_clear(&err);
	rc = tmpl_scan(src, len, "fuzz.tmpl", 1, on_token, &sc, &err);
	if (rc < 0 && err.code != EX_DATAERR)
		broken("scan failed with a code other than EX_DATAERR", err.msg);

	/* HTML escaping of the raw bytes. */
	{
		struct buf b = BUF_INIT(OUT_MAX);

		if (tmpl_escape_html(&b, src, len) < 0)
			broken("tmpl_escape_html failed", "");
		if (b.len && (memchr(b.data, '<', b.len) || memchr(b.data, '>', b.len) ||
		              memchr(b.data, '"', b.len) || memchr(b.data, '\'', b.len)))
			broken("tmpl_escape_html left markup", "");
		buf_free(&b);
	}

	herr_clear(&err);
	rc = tmpl_compile(src, len, "fuzz.tmpl", 3, &t, &err);
	if (rc < 0) {
		if (t != NULL)
			broken("failed compile returned a template", "");
		if (err.code != EX_DATAERR)
			broken("compile failed with a code other than EX_DATAERR", err.msg);
		free(copy);
		return 0;
	}
	if (t == NULL)
		broken("compile succeeded without a template", "");
	tmpl_each_attr(t, on_attr, NULL);

	memset(&none, 0, sizeof none);
	for (e = 0; e < 3; e++) {
		struct buf b1 = BUF_INIT(OUT_MAX), b2 = BUF_INIT(OUT_MAX);
		struct buf b3 = BUF_INIT(OUT_MAX), b4 = BUF_INIT(OUT_MAX);

		fill(&v, attrs, val);
		merge(t, &v, escs[e], &b1);
		merge(t, &none, escs[e], &b2);
		if (tmpl_field_count(t) == 0 &&
		    (b1.len != len || (len && memcmp(b1.data, src, len)) ||
		     b2.len != len || (len && memcmp(b2.data, src, len))))
			broken("a template without fields did not merge to itself", "");
		fill(&v, attrs, lt);
		merge(t, &v, escs[e], &b3);
		fill(&v, attrs, ex);
		merge(t, &v, escs[e], &b4);
		if (escs[e] != TMPL_RAW && count_lt(&b3) != count_lt(&b4))
			broken(escs[e] == TMPL_HTML ? "a value's '<' survived TMPL_HTML"
			                            : "a value's '<' survived TMPL_URL", "");
		buf_free(&b1);
		buf_free(&b2);
		buf_free(&b3);
		buf_free(&b4);
	}
	tmpl_free(t);
	free(copy);
	return 0;
}
