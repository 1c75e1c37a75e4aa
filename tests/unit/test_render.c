/*
 * test_render.c - Markdown to HTML and plain text (src/render.c), and the
 * layout templates.  Covers render.c's invariants: (1) strict UTF-8 with
 * line:col errors, (2)-(3) merge fields surviving cmark verbatim, (4) wrap
 * widths measured on the token text, (5) link numbering; then the text
 * rules of render.h one by one, render_page() escaping and errors, the
 * default templates and the real sample issue.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/render.h"
#include "herald/tmpl.h"

#ifndef HERALD_SOURCE_DIR
#define HERALD_SOURCE_DIR "."
#endif

static void
render_ok(const char *md, int allow_html, struct render_doc *doc)
{
	struct render_opts opts = { allow_html, 0 };
	struct herr err;

	herr_clear(&err);
	if (render_markdown(md, strlen(md), "t.md", 1, &opts, doc, &err) < 0)
		fail_msg("render_markdown: %s: %s", err.where, err.msg);
	assert_non_null(doc->html);
	assert_non_null(doc->text);
}

/* The text part of md. */
static char *
text_of(const char *md)
{
	struct render_doc doc;
	char *t;

	render_ok(md, 0, &doc);
	t = strdup(doc.text);
	assert_non_null(t);
	render_doc_free(&doc);
	return t;
}

static size_t
code_points(const char *s, size_t n)
{
	size_t i, w = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

/* Every line at most 72 code points, except lines that are one word. */
static void
assert_lines_fit(const char *text)
{
	const char *p = text, *nl;
	size_t n;

	for (; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		n = (size_t)(nl - p);
		if (code_points(p, n) > RENDER_TEXT_WIDTH &&
		    memchr(p, ' ', n) != NULL)
			fail_msg("line longer than 72: '%.*s'", (int)n, p);
	}
}

/* A file of the repository (templates/, examples/): missing is a failure,
 * never a skip - the tests below would otherwise pass on nothing. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f)
		fail_msg("cannot open %s, which is part of the repository", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return s;
}

static void
test_render_markdown_heading_underline(void **state)
{
	/* 7 and 8 characters, 14 and 11 bytes: underlines count characters. */
	char *t = text_of("# \xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9\n\n"
	    "## \xc3\x87" "a va? \xc2\xbd\n\n### Third\n");

	(void)state;
	assert_string_equal(t,
	    "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9\n"
	    "=======\n"
	    "\n"
	    "\xc3\x87" "a va? \xc2\xbd\n"
	    "--------\n"
	    "\n"
	    "Third\n"
	    "-----\n");
	free(t);
}

static void
test_render_markdown_wrap_code_points(void **state)
{
	/* Eight 7-character words and one of 8: exactly 72 code points (144
	 * bytes) on the first line; the next word must go to line two. */
	const char *w7 = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
	char md[600], line1[512], want[600];
	char *t;
	int i;

	(void)state;
	line1[0] = '\0';
	for (i = 0; i < 8; i++) {
		strcat(line1, w7);
		strcat(line1, " ");
	}
	strcat(line1, w7);
	strcat(line1, "\xc3\xa9");
	assert_int_equal(code_points(line1, strlen(line1)), 72);
	snprintf(md, sizeof md, "%s x\n", line1);
	snprintf(want, sizeof want, "%s\nx\n", line1);
	t = text_of(md);
	assert_string_equal(t, want);
	free(t);
}

static void
test_render_markdown_wrap_long_word(void **state)
{
	/* A 100-character URL (not a link: CommonMark has no bare autolinks)
	 * stands alone on its line, unsplit. */
	char url[101], md[256], want[256];
	char *t;

	(void)state;
	memcpy(url, "https://example.org/", 20);
	memset(url + 20, 'a', 80);
	url[100] = '\0';
	snprintf(md, sizeof md, "Read %s today.\n", url);
	snprintf(want, sizeof want, "Read\n%s\ntoday.\n", url);
	t = text_of(md);
	assert_string_equal(t, want);
	free(t);

	/* Words are never split and no line passes 72. */
	t = text_of("The quick brown fox jumps over the lazy dog and keeps "
	    "running far beyond the hills and the rivers until night falls "
	    "over the quiet town and its old stone bridge.\n");
	/* Expected lines from Python's textwrap.wrap(s, 72): 72, 70, 17. */
	assert_string_equal(t,
	    "The quick brown fox jumps over the lazy dog and keeps running far beyond\n"
	    "the hills and the rivers until night falls over the quiet town and its\n"
	    "old stone bridge.\n");
	assert_lines_fit(t);
	free(t);
}

static void
test_render_markdown_wrap_merge_field(void **state)
{
	char md[256], want[256];
	char *t;

	(void)state;
	/* Measured as its 24 characters: 50 + 1 + 24 > 72, so it wraps, and
	 * its inner spaces never break it. */
	snprintf(md, sizeof md, "%.50s {{ name | dear reader }}\n",
	    "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	snprintf(want, sizeof want, "%.50s\n{{ name | dear reader }}\n",
	    "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	t = text_of(md);
	assert_string_equal(t, want);
	free(t);

	/* Measured as its 8 characters: 60 + 1 + 8 fits. */
	snprintf(md, sizeof md, "%.60s {{name}}\n",
	    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
	t = text_of(md);
	assert_string_equal(t, md);
	free(t);
}

static void
test_render_markdown_ordered_start(void **state)
{
	char *t = text_of("7. seven\n8. eight\n9. nine\n");

	(void)state;
	assert_string_equal(t, "7. seven\n8. eight\n9. nine\n");
	free(t);
}

static void
test_render_markdown_nested_list(void **state)
{
	char *t = text_of(
	    "1. First item text that is long enough to need wrapping onto a "
	    "second line ok\n"
	    "   - nested bullet\n"
	    "     - deeper\n"
	    "2. Second\n"
	    "\n"
	    "Loose:\n"
	    "\n"
	    "- a\n"
	    "\n"
	    "- b\n"
	    "\n"
	    "  second paragraph\n");

	(void)state;
	assert_string_equal(t,
	    "1. First item text that is long enough to need wrapping onto a second\n"
	    "   line ok\n"
	    "   - nested bullet\n"
	    "     - deeper\n"
	    "2. Second\n"
	    "\n"
	    "Loose:\n"
	    "\n"
	    "- a\n"
	    "\n"
	    "- b\n"
	    "\n"
	    "  second paragraph\n");
	free(t);
}

static void
test_render_markdown_inline_marks(void **state)
{
	char *t = text_of("Some *emphasis*, __strong__ and `code *as is*`\n"
	    "here.  \nHard break, soft\nbreak.\n\n***\n\nEnd\n");

	(void)state;
	assert_string_equal(t,
	    "Some emphasis, strong and `code *as is*` here.\n"
	    "Hard break, soft break.\n"
	    "\n"
	    "----\n"
	    "\n"
	    "End\n");
	free(t);
}

static void
test_render_markdown_links(void **state)
{
	struct render_doc doc;

	(void)state;
	render_ok("[a](https://x.test/1) [b](https://x.test/2) "
	    "[c](https://x.test/1) <https://x.test/3> <me@example.org> "
	    "![pic](https://x.test/p.png)\n", 0, &doc);
	assert_string_equal(doc.text,
	    "a [1] b [2] c [1] https://x.test/3 [3] me@example.org [4] [pic] [5]\n"
	    "\n"
	    "Links:\n"
	    "[1] https://x.test/1\n"
	    "[2] https://x.test/2\n"
	    "[3] https://x.test/3\n"
	    "[4] mailto:me@example.org\n"
	    "[5] https://x.test/p.png\n");
	assert_int_equal(doc.n_links, 5);
	assert_string_equal(doc.links[0], "https://x.test/1");
	assert_string_equal(doc.links[3], "mailto:me@example.org");
	assert_string_equal(doc.links[4], "https://x.test/p.png");
	assert_non_null(strstr(doc.html,
	    "<img src=\"https://x.test/p.png\" alt=\"pic\" />"));
	render_doc_free(&doc);

	/* No links, no Links section. */
	render_ok("plain\n", 0, &doc);
	assert_string_equal(doc.text, "plain\n");
	assert_int_equal(doc.n_links, 0);
	render_doc_free(&doc);
}

static void
test_render_markdown_code_block(void **state)
{
	char md[256], want[256], lng[91];
	char *t;

	(void)state;
	memset(lng, 'w', 90);
	lng[90] = '\0';
	snprintf(md, sizeof md, "Run:\n\n```sh\nherald send\n  --dry-run %s\n\n"
	    "done\n```\n", lng);
	snprintf(want, sizeof want, "Run:\n\n    herald send\n      --dry-run %s\n"
	    "\n    done\n", lng);
	t = text_of(md);
	assert_string_equal(t, want);
	free(t);
}

static void
test_render_markdown_block_quote(void **state)
{
	char *t = text_of("> The quick brown fox jumps over the lazy dog and "
	    "keeps running far beyond the hills and the rivers until night\n"
	    ">\n> > nested\n\nafter\n");

	(void)state;
	/* The width inside "> " is 70. */
	assert_string_equal(t,
	    "> The quick brown fox jumps over the lazy dog and keeps running far\n"
	    "> beyond the hills and the rivers until night\n"
	    ">\n"
	    "> > nested\n"
	    "\n"
	    "after\n");
	free(t);
}

static void
test_render_markdown_smart_punctuation(void **state)
{
	struct render_doc doc;

	(void)state;
	render_ok("\"Hello,\" she said -- it's 'fine' --- ok...\n", 0, &doc);
	/* U+201C/D quotes, U+2013 en dash, U+2019, U+2018, U+2014, U+2026. */
	assert_string_equal(doc.html,
	    "<p>\xe2\x80\x9cHello,\xe2\x80\x9d she said \xe2\x80\x93 "
	    "it\xe2\x80\x99s \xe2\x80\x98" "fine\xe2\x80\x99 \xe2\x80\x94 "
	    "ok\xe2\x80\xa6</p>\n");
	assert_string_equal(doc.text,
	    "\xe2\x80\x9cHello,\xe2\x80\x9d she said \xe2\x80\x93 "
	    "it\xe2\x80\x99s \xe2\x80\x98" "fine\xe2\x80\x99 \xe2\x80\x94 "
	    "ok\xe2\x80\xa6\n");
	render_doc_free(&doc);
}

static void
test_render_markdown_raw_html(void **state)
{
	const char *md = "<div class=\"box\">boxed</div>\n\n"
	    "A <b>bold</b> word. [x](javascript:alert(1))\n";
	struct render_doc doc;

	(void)state;
	render_ok(md, 0, &doc);
	assert_null(strstr(doc.html, "<div"));
	assert_null(strstr(doc.html, "<b>"));
	assert_null(strstr(doc.html, "javascript"));
	/* cmark's marker, which issue.c relies on to warn the author. */
	assert_non_null(strstr(doc.html, "<!-- raw HTML omitted -->"));
	assert_non_null(strstr(doc.html, "<p>A <!-- raw HTML omitted -->bold"));
	/* The dropped URL is not offered in the text part either. */
	assert_string_equal(doc.text, "A bold word. x\n");
	assert_int_equal(doc.n_links, 0);
	render_doc_free(&doc);

	render_ok(md, 1, &doc);
	assert_non_null(strstr(doc.html, "<div class=\"box\">boxed</div>"));
	assert_non_null(strstr(doc.html, "A <b>bold</b> word."));
	assert_null(strstr(doc.html, "raw HTML omitted"));
	/* Raw HTML never reaches the text part. */
	assert_string_equal(doc.text,
	    "A bold word. x [1]\n\nLinks:\n[1] javascript:alert(1)\n");
	render_doc_free(&doc);
}

static void
test_render_markdown_merge_fields(void **state)
{
	struct render_doc doc;

	(void)state;
	render_ok("Hi *{{ name | you }}*, [manage {{email}}]"
	    "(https://x.test/u?e={{email}}&l={{attr.list}}) `{{name}}`\n\n"
	    "[ref][{{attr.k}}] {{name}}'s\n\n[{{attr.k}}]: https://x.test/{{attr.k}}\n",
	    0, &doc);
	assert_non_null(strstr(doc.html, "<em>{{ name | you }}</em>"));
	assert_non_null(strstr(doc.html,
	    "<a href=\"https://x.test/u?e={{email}}&amp;l={{attr.list}}\">"
	    "manage {{email}}</a>"));
	assert_non_null(strstr(doc.html, "<code>{{name}}</code>"));
	/* A field as a reference label still finds its definition. */
	assert_non_null(strstr(doc.html,
	    "<a href=\"https://x.test/{{attr.k}}\">ref</a> {{name}}\xe2\x80\x99s"));
	assert_string_equal(doc.text,
	    "Hi {{ name | you }}, manage {{email}} [1] `{{name}}`\n"
	    "\n"
	    "ref [2] {{name}}\xe2\x80\x99s\n"
	    "\n"
	    "Links:\n"
	    "[1] https://x.test/u?e={{email}}&l={{attr.list}}\n"
	    "[2] https://x.test/{{attr.k}}\n");
	assert_int_equal(doc.n_links, 2);
	assert_string_equal(doc.links[0],
	    "https://x.test/u?e={{email}}&l={{attr.list}}");
	render_doc_free(&doc);
}

static void
test_render_markdown_invalid_utf8(void **state)
{
	static const struct {
		const char *md;
		size_t      len;
		const char *where;
	} bad[] = {
		/* Lines counted from first_line 5; columns in characters. */
		{ "ok\n\xc3\xa9t\xc3\xa9 \xe9t\xe9\n", 13, "n.md:6:5" },
		{ "\xc0\xaf", 2, "n.md:5:1" },            /* overlong '/' */
		{ "a\xed\xa0\x80", 4, "n.md:5:2" },       /* surrogate */
		{ "ab\xf4\x90\x80\x80", 6, "n.md:5:3" },  /* > U+10FFFF */
		{ "\n\nabc\xe2\x82", 7, "n.md:7:4" },     /* cut short */
		{ "x\x80", 2, "n.md:5:2" },               /* lone continuation */
	};
	struct render_opts opts = { 0 };
	struct render_doc doc;
	struct herr err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		herr_clear(&err);
		assert_int_equal(render_markdown(bad[i].md, bad[i].len, "n.md", 5,
		    &opts, &doc, &err), -1);
		assert_int_equal(err.code, EX_DATAERR);
		assert_string_equal(err.where, bad[i].where);
		assert_non_null(strstr(err.msg, "invalid UTF-8"));
		assert_null(doc.html);
	}
	herr_clear(&err);
	assert_int_equal(render_markdown("a\n\xc3\xa9\0b", 6, "n.md", 5, &opts,
	    &doc, &err), -1);
	assert_string_equal(err.where, "n.md:6:2");
	assert_string_equal(err.msg, "NUL byte in input");

	/* The largest code point and a 4-byte emoji are fine. */
	render_ok("\xf4\x8f\xbf\xbf \xf0\x9f\x98\x80\n", 0, &doc);
	render_doc_free(&doc);
}

static void
test_render_markdown_field_syntax(void **state)
{
	struct render_opts opts = { 0 };
	struct render_doc doc;
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(render_markdown("# T\n\nHi {{name\n", 14, "n.md", 8,
	    &opts, &doc, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "n.md:10:4");
	/* Unknown names are left to tmpl_compile(). */
	render_ok("{{nmae}}\n", 0, &doc);
	assert_string_equal(doc.text, "{{nmae}}\n");
	render_doc_free(&doc);
}

static void
test_render_page_escaping(void **state)
{
	const char *tpl = "<title>{{issue.subject}}</title>\n"
	    "{{issue.content}}\n"
	    "<p>{{list.title}} {{ list.name }} {{sender.name}}</p>\n"
	    "<p>{{sender.postal_address}}</p>\n"
	    "<a href=\"{{unsubscribe_url}}\">{{ name | you }}</a>"
	    "{{issue.preheader|none}}";
	struct render_page_vars v = { 0 };
	struct buf out = BUF_INIT(4096);
	struct herr err;

	(void)state;
	v.subject = "News & views for {{name|<you>}} <3";
	v.list_name = "a&b";
	v.sender_name = "O'Brien";
	v.postal_address = "1 Main St\n<Leeds>";
	assert_int_equal(render_page(tpl, strlen(tpl), "page.html", 1, &v,
	    "<p>Body & {{name}}</p>", &out, &err), 0);
	assert_string_equal(buf_str(&out),
	    "<title>News &amp; views for {{name|<you>}} &lt;3</title>\n"
	    "<p>Body & {{name}}</p>\n"
	    "<p>a&amp;b a&amp;b O&#39;Brien</p>\n"
	    "<p>1 Main St<br>\n&lt;Leeds&gt;</p>\n"
	    "<a href=\"{{unsubscribe_url}}\">{{ name | you }}</a>none");

	/* The text layout takes values as they are. */
	buf_reset(&out);
	v.list_title = "The List";
	assert_int_equal(render_page("{{issue.subject}}|{{list.title}}|"
	    "{{sender.postal_address}}|{{issue.content}}", 76, "page.txt", 0, &v,
	    "Body\n", &out, &err), 0);
	assert_string_equal(buf_str(&out),
	    "News & views for {{name|<you>}} <3|The List|1 Main St\n<Leeds>|Body\n");
	buf_free(&out);
}

static void
test_render_page_unknown_field(void **state)
{
	const char *tpl = "<html>\n  <p>\xc3\xa9 {{issue.foo}}</p>";
	struct render_page_vars v = { 0 };
	struct buf out = BUF_INIT(4096);
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(render_page(tpl, strlen(tpl), "layout.html", 1, &v,
	    "", &out, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "layout.html:2:8");
	assert_non_null(strstr(err.msg, "unknown page field 'issue.foo'"));

	/* A bad merge field inside a value is reported against the value. */
	herr_clear(&err);
	v.subject = "Hi {{name";
	assert_int_equal(render_page("{{issue.subject}}", 17, "layout.html", 1,
	    &v, "", &out, &err), -1);
	assert_string_equal(err.where, "issue.subject:1:4");
	buf_free(&out);
}

/* The shipped layouts: only known fields, and the required footer. */
static void
test_render_page_default_templates(void **state)
{
	struct render_page_vars v = { 0 };
	struct tmpl_vars sub = { 0 };
	struct buf page = BUF_INIT(1 << 20), mail = BUF_INIT(1 << 20);
	struct tmpl *t;
	struct herr err;
	size_t len;
	char *tpl;

	(void)state;
	tpl = read_file(HERALD_SOURCE_DIR "/templates/newsletter.html", &len);
	v.subject = "Issue 16 for {{name}}";
	v.preheader = "In short";
	v.list_name = "news";
	v.postal_address = "1 Main St\nLeeds";
	sub.name = "Tom & Jerry";
	sub.unsubscribe_url = "https://x.test/u/abc";
	sub.preferences_url = "https://x.test/p/def";
	sub.view_url = "https://x.test/archive/16";
	sub.open_pixel = "<img src=\"https://x.test/o/t.gif\">";
	sub.lists = "News & Views and Research"; /* the reader's lists (message.c) */
	herr_clear(&err);
	assert_int_equal(render_page(tpl, len, "newsletter.html", 1, &v,
	    "<p>Body</p>", &page, &err), 0);
	free(tpl);
	assert_int_equal(tmpl_compile(page.data, page.len, "newsletter.html", 1,
	    &t, &err), 0);
	assert_int_equal(tmpl_merge(t, &sub, TMPL_HTML, &mail), 0);
	tmpl_free(t);
	assert_non_null(strstr(mail.data, "<html lang=\"en\""));
	assert_non_null(strstr(mail.data,
	    "<title>Issue 16 for Tom &amp; Jerry</title>"));
	assert_non_null(strstr(mail.data, "<p>Body</p>"));
	assert_non_null(strstr(mail.data, "In short</div>"));
	assert_non_null(strstr(mail.data, "subscribed to News &amp; Views and Research."));
	assert_non_null(strstr(mail.data, "1 Main St<br>\nLeeds"));
	assert_non_null(strstr(mail.data,
	    "<a href=\"https://x.test/u/abc\""));
	/* the preference centre beside the unsubscribe link */
	assert_non_null(strstr(mail.data, "<a href=\"https://x.test/p/def\""));
	assert_non_null(strstr(mail.data, "<a href=\"https://x.test/archive/16\""));
	/* the pixel is herald's markup: inserted as it is, not escaped */
	assert_non_null(strstr(mail.data, "<img src=\"https://x.test/o/t.gif\">\n</body>"));
	assert_null(strstr(mail.data, "{{"));

	buf_reset(&page);
	buf_reset(&mail);
	tpl = read_file(HERALD_SOURCE_DIR "/templates/newsletter.txt", &len);
	assert_non_null(tpl);
	assert_int_equal(render_page(tpl, len, "newsletter.txt", 0, &v,
	    "Body\n", &page, &err), 0);
	free(tpl);
	assert_int_equal(tmpl_compile(page.data, page.len, "newsletter.txt", 1,
	    &t, &err), 0);
	assert_int_equal(tmpl_merge(t, &sub, TMPL_RAW, &mail), 0);
	tmpl_free(t);
	assert_string_equal(mail.data,
	    "Body\n"
	    "\n"
	    "-- \n"
	    "You are receiving this because you subscribed to\n"
	    "News & Views and Research.\n"
	    "1 Main St\n"
	    "Leeds\n"
	    "\n"
	    "View in your browser:\n"
	    "https://x.test/archive/16\n"
	    "\n"
	    "Unsubscribe:\n"
	    "https://x.test/u/abc\n"
	    "\n"
	    "Manage your subscription:\n"
	    "https://x.test/p/def\n");
	buf_free(&page);
	buf_free(&mail);
}

/* examples/newsletter-16.md, the issue the project was built for. */
static void
test_render_markdown_sample_issue(void **state)
{
	static const char *const urls[] = {
		"https://example.org/programmes/hhp",
		"https://example.org/programmes/hhp/call-for-partners",
		"https://example.org/research/protocols",
		"https://example.org/blog/why-we-publish-protocols",
		"https://example.org/evidence-store/pcit",
		"https://example.org/media/world-social-work-day-2019",
		"mailto:wwccsc@example.org",
	};
	struct render_opts opts = { 0 };
	struct render_doc doc;
	struct herr err;
	const char *body, *p;
	char want[128];
	unsigned line = 1;
	size_t len, i, j;
	char *md;

	(void)state;
	md = read_file(HERALD_SOURCE_DIR "/examples/newsletter-16.md", &len);
	/* Front matter: from the first "---" line to the next. */
	assert_memory_equal(md, "---\n", 4);
	p = strstr(md + 4, "\n---\n");
	assert_non_null(p);
	body = p + 5;
	for (p = md; p < body; p++)
		if (*p == '\n')
			line++;
	herr_clear(&err);
	if (render_markdown(body, len - (size_t)(body - md), "newsletter-16.md",
	    line, &opts, &doc, &err) < 0)
		fail_msg("%s: %s", err.where, err.msg);

	assert_int_equal(doc.n_links, 7);
	for (i = 0; i < 7; i++) {
		for (j = 0; j < doc.n_links; j++)
			if (strcmp(doc.links[j], urls[i]) == 0)
				break;
		if (j == doc.n_links)
			fail_msg("link '%s' missing", urls[i]);
		snprintf(want, sizeof want, "\n[%zu] %s\n", j + 1, urls[i]);
		assert_non_null(strstr(doc.text, want));
	}
	assert_lines_fit(doc.text);
	assert_non_null(strstr(doc.text, "Dear {{name}}, for me"));
	assert_non_null(strstr(doc.html, "Dear {{name}}, for me"));
	assert_int_equal(doc.text[strlen(doc.text) - 1], '\n');
	assert_true(doc.text[strlen(doc.text) - 2] != '\n');
	render_doc_free(&doc);
	free(md);
}

/* line_breaks: keep (render_opts.hard_breaks): a sign-off's two lines stay
 * two lines in both parts; strict CommonMark joins them. */
static void
test_render_markdown_hard_breaks(void **state)
{
	static const char md[] = "Thanks for reading,\nThe What Works team\n";
	struct render_opts keep = { 0, 1 }, strict = { 0, 0 };
	struct render_doc doc;
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(render_markdown(md, strlen(md), "t.md", 1, &keep, &doc, &err), 0);
	assert_non_null(strstr(doc.html, "Thanks for reading,<br />\nThe What Works team"));
	assert_string_equal(doc.text, "Thanks for reading,\nThe What Works team\n");
	render_doc_free(&doc);

	assert_int_equal(render_markdown(md, strlen(md), "t.md", 1, &strict, &doc, &err), 0);
	assert_null(strstr(doc.html, "<br"));
	assert_string_equal(doc.text, "Thanks for reading, The What Works team\n");
	render_doc_free(&doc);
}

/* Kept line breaks still wrap each line at 72, and a list item's second
 * line stays under the item's text. */
static void
test_render_markdown_hard_breaks_wrap(void **state)
{
	static const char md[] =
	    "- first line of an item\n  second line of the same item, which is long "
	    "enough that it has to wrap somewhere past the width\n";
	struct render_opts keep = { 0, 1 };
	struct render_doc doc;
	struct herr err;
	const char *p, *nl;

	(void)state;
	herr_clear(&err);
	assert_int_equal(render_markdown(md, strlen(md), "t.md", 1, &keep, &doc, &err), 0);
	assert_non_null(strstr(doc.text, "- first line of an item\n  second line"));
	assert_true(doc.text[0] == '-');
	for (p = doc.text; (nl = strchr(p, '\n')); p = nl + 1)
		assert_true(code_points(p, (size_t)(nl - p)) <= 72);
	render_doc_free(&doc);
}

/* The text layout's footer wraps at 72 like the body: a long list title
 * and postal address line break at spaces, the body (already wrapped, its
 * code blocks not to be touched) is left as it is, and the "-- "
 * separator keeps its space. */
static void
test_render_page_text_footer_wraps(void **state)
{
	static const char code[] = "    a_code_line_that_is_wider_than_seventy_two_columns_and_must_"
	                           "stay_on_one_line()\n";
	struct render_page_vars v = { 0 };
	struct buf page = BUF_INIT(1 << 20);
	struct herr err;
	const char *p, *nl;
	size_t len;
	char *tpl;

	(void)state;
	tpl = read_file(HERALD_SOURCE_DIR "/templates/newsletter.txt", &len);
	assert_non_null(tpl);
	v.list_name = "news";
	v.list_title = "What Works Centre for Children's Social Care e-newsletter and updates";
	v.postal_address = "What Works Centre for Children's Social Care, 1 Example Street, "
	                   "London EC1A 1AA, United Kingdom";
	herr_clear(&err);
	assert_int_equal(render_page(tpl, len, "newsletter.txt", 0, &v, code, &page, &err), 0);
	free(tpl);
	assert_true(!strncmp(page.data, code, strlen(code)));
	assert_non_null(strstr(page.data, "\n-- \n"));
	/* the reader's lists are merged per recipient, on a line of their own */
	assert_non_null(strstr(page.data, "You are receiving this because you subscribed to\n"
	                                  "{{lists}}.\n"));
	assert_non_null(strstr(page.data, "1 Example Street,"));
	for (p = page.data + strlen(code); (nl = strchr(p, '\n')); p = nl + 1)
		assert_true(code_points(p, (size_t)(nl - p)) <= 72);
	buf_free(&page);
}

/* Found by tests/fuzz/fuzz_issue.c: Markdown could make a merge field the
 * source did not have ("{\\{x}}", "&#123;&#123;x}}"), an empty body hung
 * the text layout, and a code block's trailing blank lines reached the
 * text part. */
static void
test_render_markdown_fuzz_findings(void **state)
{
	static const char *const made[] = { "a {\\{nmae}} b\n", "a &#123;&#123;nmae}} b\n",
	                                    "a &lbrace;{nmae}} b\n", "a {\\{{name}} b\n" };
	struct render_opts opts = { 0, 1 };
	struct render_page_vars v = { 0 };
	struct buf page = BUF_INIT(1 << 20);
	struct render_doc doc;
	struct tmpl *t;
	struct herr err;
	size_t i, len;
	char *tpl;

	(void)state;
	for (i = 0; i < sizeof made / sizeof made[0]; i++) {
		herr_clear(&err);
		assert_int_equal(render_markdown(made[i], strlen(made[i]), "t.md", 1, &opts, &doc,
		                                 &err), 0);
		/* no merge field in either part but the one the source wrote */
		assert_int_equal(tmpl_compile(doc.html, strlen(doc.html), "html", 1, &t, &err), 0);
		assert_int_equal(tmpl_field_count(t), strstr(made[i], "{{name}}") ? 1 : 0);
		tmpl_free(t);
		assert_int_equal(tmpl_compile(doc.text, strlen(doc.text), "text", 1, &t, &err), 0);
		assert_int_equal(tmpl_field_count(t), strstr(made[i], "{{name}}") ? 1 : 0);
		tmpl_free(t);
		assert_null(strstr(doc.html, "{{nmae"));
		render_doc_free(&doc);
	}
	/* an empty body through the text layout comes back */
	tpl = read_file(HERALD_SOURCE_DIR "/templates/newsletter.txt", &len);
	assert_non_null(tpl);
	v.list_name = "news";
	assert_int_equal(render_page(tpl, len, "newsletter.txt", 0, &v, "", &page, &err), 0);
	assert_non_null(strstr(page.data, "\n-- \n"));
	free(tpl);
	buf_free(&page);
	/* a fenced block ends with its last line */
	herr_clear(&err);
	{
		static const char code[] = "```\ncode\n\n\n```\n";

		assert_int_equal(render_markdown(code, strlen(code), "t.md", 1, &opts, &doc, &err),
		                 0);
	}
	assert_string_equal(doc.text, "    code\n");
	render_doc_free(&doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_markdown_heading_underline),
		cmocka_unit_test(test_render_markdown_wrap_code_points),
		cmocka_unit_test(test_render_markdown_wrap_long_word),
		cmocka_unit_test(test_render_markdown_wrap_merge_field),
		cmocka_unit_test(test_render_markdown_ordered_start),
		cmocka_unit_test(test_render_markdown_nested_list),
		cmocka_unit_test(test_render_markdown_inline_marks),
		cmocka_unit_test(test_render_markdown_links),
		cmocka_unit_test(test_render_markdown_code_block),
		cmocka_unit_test(test_render_markdown_block_quote),
		cmocka_unit_test(test_render_markdown_smart_punctuation),
		cmocka_unit_test(test_render_markdown_raw_html),
		cmocka_unit_test(test_render_markdown_merge_fields),
		cmocka_unit_test(test_render_markdown_invalid_utf8),
		cmocka_unit_test(test_render_markdown_field_syntax),
		cmocka_unit_test(test_render_page_escaping),
		cmocka_unit_test(test_render_page_unknown_field),
		cmocka_unit_test(test_render_page_default_templates),
		cmocka_unit_test(test_render_markdown_sample_issue),
		cmocka_unit_test(test_render_markdown_hard_breaks),
		cmocka_unit_test(test_render_markdown_hard_breaks_wrap),
		cmocka_unit_test(test_render_page_text_footer_wraps),
		cmocka_unit_test(test_render_markdown_fuzz_findings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
