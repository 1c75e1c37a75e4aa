/*
 * test_tmpl.c - merge fields (src/tmpl.c): the tokenizer's positions and
 * syntax errors, compile-time rejection of unknown fields, and merging with
 * fallbacks, attributes, first names and both escape modes.  Invariants (1)
 * and (4) of tmpl.c are covered by test_tmpl_compile_owns_copy and
 * test_tmpl_merge_cap_leaves_buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "herald/tmpl.h"

/* Compile src, merge it with v, return the result (static buffer). */
static const char *
merge(const char *src, const struct tmpl_vars *v, enum tmpl_escape esc)
{
	static char res[1024];
	struct buf out = BUF_INIT(4096);
	struct tmpl *t = NULL;
	struct herr err;

	herr_clear(&err);
	assert_int_equal(tmpl_compile(src, strlen(src), "t", 1, &t, &err), 0);
	assert_int_equal(tmpl_merge(t, v, esc, &out), 0);
	assert_true(out.len < sizeof res);
	memcpy(res, buf_str(&out), out.len + 1);
	buf_free(&out);
	tmpl_free(t);
	return res;
}

struct scan_log {
	struct tmpl_token tok[4];
	size_t            n;
};

static int
log_token(void *ctx, const struct tmpl_token *tok, const char *where,
    struct herr *err)
{
	struct scan_log *l = ctx;

	(void)where;
	(void)err;
	assert_true(l->n < 4);
	l->tok[l->n++] = *tok;
	return 0;
}

static void
test_tmpl_scan_positions(void **state)
{
	/* "héllo " is 6 characters but 7 bytes; "wörld ½ " 8 and 10. */
	const char *src = "h\xc3\xa9llo {{name}}\nw\xc3\xb6rld \xc2\xbd {{ email | x y }}!";
	struct scan_log l;
	struct herr err;

	(void)state;
	memset(&l, 0, sizeof l);
	assert_int_equal(tmpl_scan(src, strlen(src), "a.md", 10, log_token, &l,
	    &err), 0);
	assert_int_equal(l.n, 2);

	assert_int_equal(l.tok[0].line, 10);
	assert_int_equal(l.tok[0].col, 7);
	assert_int_equal(l.tok[0].start, 7);
	assert_int_equal(l.tok[0].end, 15);
	assert_int_equal(l.tok[0].field_len, 4);
	assert_memory_equal(l.tok[0].field, "name", 4);
	assert_null(l.tok[0].fallback);

	assert_int_equal(l.tok[1].line, 11);
	assert_int_equal(l.tok[1].col, 9);
	assert_int_equal(l.tok[1].start, 26);
	assert_memory_equal(src + l.tok[1].start, "{{", 2);
	assert_memory_equal(src + l.tok[1].end - 2, "}}", 2);
	assert_int_equal(src[l.tok[1].end], '!');
	assert_int_equal(l.tok[1].field_len, 5);
	assert_memory_equal(l.tok[1].field, "email", 5);
	assert_non_null(l.tok[1].fallback);
	assert_int_equal(l.tok[1].fallback_len, 3);
	assert_memory_equal(l.tok[1].fallback, "x y", 3);
}

static void
test_tmpl_scan_unterminated(void **state)
{
	const char *src = "ok\nab {{name\n}}";
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(tmpl_scan(src, strlen(src), "f.md", 1, NULL, NULL,
	    &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "f.md:2:4");
	assert_non_null(strstr(err.msg, "unterminated merge field '{{name'"));

	/* At the very end of the input too. */
	herr_clear(&err);
	assert_int_equal(tmpl_scan("x {{", 4, "f.md", 1, NULL, NULL, &err), -1);
	assert_string_equal(err.where, "f.md:1:3");
}

static void
test_tmpl_scan_empty_field(void **state)
{
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(tmpl_scan("x {{}}", 6, "f.md", 3, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "f.md:3:3");
	assert_string_equal(err.msg, "empty merge field '{{}}'");

	herr_clear(&err);
	assert_int_equal(tmpl_scan("{{  | you }}", 12, "f.md", 1, NULL, NULL,
	    &err), -1);
	assert_string_equal(err.msg, "empty merge field '{{  | you }}'");
}

static void
test_tmpl_compile_unknown_field(void **state)
{
	/* "Dear é " puts the token at character 8 of the file's line 23. */
	const char *src = "intro\nDear \xc3\xa9 {{nmae}},";
	struct tmpl *t = (struct tmpl *)1;
	struct herr err;

	(void)state;
	herr_clear(&err);
	assert_int_equal(tmpl_compile(src, strlen(src), "newsletter.md", 22, &t,
	    &err), -1);
	assert_null(t);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "newsletter.md:23:8");
	assert_string_equal(err.msg, "unknown merge field 'nmae' (known: name, "
	    "first_name, email, attr.KEY, unsubscribe_url, preferences_url, view_url, "
	    "open_pixel, lists)");

	/* attr. needs a key, and keys hold no spaces. */
	herr_clear(&err);
	assert_int_equal(tmpl_compile("{{attr.}}", 9, "t", 1, &t, &err), -1);
	assert_non_null(strstr(err.msg, "'attr.'"));
	herr_clear(&err);
	assert_int_equal(tmpl_compile("{{attr.a b}}", 12, "t", 1, &t, &err), -1);
	assert_non_null(strstr(err.msg, "'attr.a b'"));
}

static void
test_tmpl_merge_fallback(void **state)
{
	struct tmpl_vars none = { 0 }, empty = { 0 }, tom = { 0 };

	(void)state;
	empty.name = "";
	tom.name = "Tom";
	assert_string_equal(merge("Hi {{name|there}}!", &none, TMPL_RAW),
	    "Hi there!");
	assert_string_equal(merge("Hi {{name|there}}!", &empty, TMPL_RAW),
	    "Hi there!");
	assert_string_equal(merge("Hi {{name|there}}!", &tom, TMPL_RAW),
	    "Hi Tom!");
	/* Spaces around the field and the fallback are trimmed, not inside. */
	assert_string_equal(merge("Hi {{ name | dear reader }}!", &empty,
	    TMPL_RAW), "Hi dear reader!");
	assert_string_equal(merge("Hi {{ name | dear reader }}!", &tom,
	    TMPL_RAW), "Hi Tom!");
	/* No fallback: the field vanishes. */
	assert_string_equal(merge("Hi {{name}}!", &none, TMPL_RAW), "Hi !");
}

static void
test_tmpl_merge_escape(void **state)
{
	struct tmpl_vars v = { 0 }, none = { 0 };
	const char *src = "<p>{{name}} & {{name|x}}</p>";

	(void)state;
	v.name = "<b>Tom & 'Jerry'</b>";
	v.email = "\"q\"@example.org";
	/* Literal text is never escaped; values are in TMPL_HTML only. */
	assert_string_equal(merge(src, &v, TMPL_HTML),
	    "<p>&lt;b&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt; & "
	    "&lt;b&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;</p>");
	assert_string_equal(merge(src, &v, TMPL_RAW),
	    "<p><b>Tom & 'Jerry'</b> & <b>Tom & 'Jerry'</b></p>");
	assert_string_equal(merge("{{email}}", &v, TMPL_HTML),
	    "&quot;q&quot;@example.org");
	/* Fallbacks are escaped like values. */
	assert_string_equal(merge("Hi {{name|<you> & \"me\"}}", &none,
	    TMPL_HTML), "Hi &lt;you&gt; &amp; &quot;me&quot;");
	assert_string_equal(merge("Hi {{name|<you> & \"me\"}}", &none,
	    TMPL_RAW), "Hi <you> & \"me\"");
}

static void
test_tmpl_merge_attr(void **state)
{
	const struct tmpl_attr attrs[] = {
		{ "city", "Leeds" },
		{ "plan", "" },
		{ "cit", "wrong" },
	};
	struct tmpl_vars v = { 0 }, none = { 0 };
	const char *src = "{{attr.city|somewhere}}/{{attr.plan|free}}/"
	    "{{attr.tier}}/{{attr.tier|basic}}";

	(void)state;
	v.attrs = attrs;
	v.n_attrs = 3;
	assert_string_equal(merge(src, &v, TMPL_RAW),
	    "Leeds/free//basic");
	assert_string_equal(merge(src, &none, TMPL_RAW),
	    "somewhere/free//basic");
	/* Keys may hold punctuation other than '|' and '}'. */
	assert_string_equal(merge("{{attr.x-y.z}}", &none, TMPL_RAW), "");
}

static void
test_tmpl_merge_first_name(void **state)
{
	struct tmpl_vars v = { 0 };

	(void)state;
	v.name = "  Ada\tLovelace King";
	assert_string_equal(merge("{{first_name}}.", &v, TMPL_RAW), "Ada.");
	v.name = "Cher";
	assert_string_equal(merge("{{first_name}}.", &v, TMPL_RAW), "Cher.");
	v.name = "   ";
	assert_string_equal(merge("{{first_name|friend}}.", &v, TMPL_RAW),
	    "friend.");
	v.name = "\xc3\x89mile Zola";
	assert_string_equal(merge("{{first_name}}", &v, TMPL_HTML),
	    "\xc3\x89mile");
}

static void
test_tmpl_merge_email_unsubscribe(void **state)
{
	struct tmpl_vars v = { 0 };

	(void)state;
	v.email = "a@example.org";
	v.unsubscribe_url = "https://x.test/u?t=1&s=2";
	assert_string_equal(merge("<a href=\"{{unsubscribe_url}}\">{{email}}</a>",
	    &v, TMPL_HTML),
	    "<a href=\"https://x.test/u?t=1&amp;s=2\">a@example.org</a>");
	assert_string_equal(merge("{{unsubscribe_url}}", &v, TMPL_RAW),
	    "https://x.test/u?t=1&s=2");
}

static void
test_tmpl_compile_no_fields(void **state)
{
	const char *src = "Plain { text } with } braces {\nand lines\n";
	struct tmpl_vars v = { 0 };
	struct tmpl *t;
	struct herr err;

	(void)state;
	assert_int_equal(tmpl_compile(src, strlen(src), "t", 1, &t, &err), 0);
	assert_int_equal(tmpl_field_count(t), 0);
	tmpl_free(t);
	assert_string_equal(merge(src, &v, TMPL_HTML), src);
	assert_string_equal(merge("", &v, TMPL_HTML), "");
}

static void
test_tmpl_compile_owns_copy(void **state)
{
	char src[] = "Hi {{name|you}}, bye";
	struct tmpl_vars v = { 0 };
	struct buf out = BUF_INIT(256);
	struct tmpl *t;
	struct herr err;

	(void)state;
	assert_int_equal(tmpl_compile(src, strlen(src), "t", 1, &t, &err), 0);
	memset(src, 'X', strlen(src));
	assert_int_equal(tmpl_merge(t, &v, TMPL_RAW, &out), 0);
	assert_string_equal(buf_str(&out), "Hi you, bye");
	/* Merging appends. */
	v.name = "Al";
	assert_int_equal(tmpl_merge(t, &v, TMPL_RAW, &out), 0);
	assert_string_equal(buf_str(&out), "Hi you, byeHi Al, bye");
	buf_free(&out);
	tmpl_free(t);
}

static void
collect_key(void *ctx, const char *key)
{
	struct buf *b = ctx;

	assert_int_equal(buf_addf(b, "[%s]", key), 0);
}

static void
test_tmpl_each_attr(void **state)
{
	const char *src = "{{attr.b}} {{ attr.a | x }} {{name}} {{attr.b|y}}";
	struct buf keys = BUF_INIT(256);
	struct tmpl *t;
	struct herr err;

	(void)state;
	assert_int_equal(tmpl_compile(src, strlen(src), "t", 1, &t, &err), 0);
	assert_int_equal(tmpl_field_count(t), 4);
	tmpl_each_attr(t, collect_key, &keys);
	assert_string_equal(buf_str(&keys), "[b][a]");
	buf_free(&keys);
	tmpl_free(t);
}

static void
test_tmpl_merge_cap_leaves_buffer(void **state)
{
	struct tmpl_vars v = { 0 };
	struct buf out = BUF_INIT(12);
	struct tmpl *t;
	struct herr err;

	(void)state;
	v.name = "a very long name indeed";
	assert_int_equal(tmpl_compile("Hi {{name}}!", 12, "t", 1, &t, &err), 0);
	assert_int_equal(buf_adds(&out, "pre:"), 0);
	assert_int_equal(tmpl_merge(t, &v, TMPL_RAW, &out), -1);
	assert_int_equal(out.len, 4);
	assert_string_equal(buf_str(&out), "pre:");
	buf_free(&out);
	tmpl_free(t);
}

static void
test_tmpl_escape_html_all(void **state)
{
	struct buf out = BUF_INIT(256);

	(void)state;
	assert_int_equal(tmpl_escape_html(&out, "a&b<c>d\"e'f\xc3\xa9", 13), 0);
	assert_string_equal(buf_str(&out),
	    "a&amp;b&lt;c&gt;d&quot;e&#39;f\xc3\xa9");
	buf_free(&out);
}

static void
test_tmpl_merge_url_escaping(void **state)
{
	struct tmpl *t = NULL;
	struct herr err;
	struct buf out = BUF_INIT(4096);
	struct tmpl_vars v;
	const char *src = "https://example.org/s?n={{name}}&e={{email}}";

	(void)state;
	memset(&v, 0, sizeof v);
	v.name = "Zo\xc3\xab & <Jerry>";
	v.email = "a+b@example.org";
	assert_int_equal(tmpl_compile(src, strlen(src), "link", 1, &t, &err), 0);
	assert_int_equal(tmpl_merge(t, &v, TMPL_URL, &out), 0);
	/* the literal '&' and '?' of the link stay; the values cannot add any */
	assert_string_equal(out.data,
	    "https://example.org/s?n=Zo%C3%AB%20%26%20%3CJerry%3E&e=a%2Bb%40example.org");
	tmpl_free(t);
	t = NULL;

	/* a field that is a URL herald made is the link: copied as it is */
	out.len = 0;
	v.unsubscribe_url = "https://news.example.org/u/abc_DEF-1";
	src = "{{unsubscribe_url}}";
	assert_int_equal(tmpl_compile(src, strlen(src), "link", 1, &t, &err), 0);
	assert_int_equal(tmpl_merge(t, &v, TMPL_URL, &out), 0);
	assert_string_equal(out.data, "https://news.example.org/u/abc_DEF-1");
	tmpl_free(t);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tmpl_merge_url_escaping),
		cmocka_unit_test(test_tmpl_scan_positions),
		cmocka_unit_test(test_tmpl_scan_unterminated),
		cmocka_unit_test(test_tmpl_scan_empty_field),
		cmocka_unit_test(test_tmpl_compile_unknown_field),
		cmocka_unit_test(test_tmpl_merge_fallback),
		cmocka_unit_test(test_tmpl_merge_escape),
		cmocka_unit_test(test_tmpl_merge_attr),
		cmocka_unit_test(test_tmpl_merge_first_name),
		cmocka_unit_test(test_tmpl_merge_email_unsubscribe),
		cmocka_unit_test(test_tmpl_compile_no_fields),
		cmocka_unit_test(test_tmpl_compile_owns_copy),
		cmocka_unit_test(test_tmpl_each_attr),
		cmocka_unit_test(test_tmpl_merge_cap_leaves_buffer),
		cmocka_unit_test(test_tmpl_escape_html_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
