/*
 * fuzz_issue.c - libFuzzer target for reading an issue: front matter and
 * Markdown (issue_source_read(), src/issue.c; render_markdown() and
 * render_page(), src/render.c; tmpl_compile(), src/tmpl.c), the steps
 * `herald issue new` takes before it touches the database.
 *
 * Input: the whole FILE.md.  issue_source_read() takes a path, so each
 * input is written to a temporary file (in /dev/shm when there is one, else
 * $TMPDIR or /tmp), removed again as soon as it was read.
 * Then, as issue_create() does: the merge fields of the subject, the
 * preheader and the body are compiled; the body is rendered with
 * allow_html off and hard line breaks on, and with allow_html on and hard
 * line breaks off; each result is put in the built-in layouts
 * (templates/newsletter.html and .txt, as embedded) with render_page(),
 * the pages compiled, and merged for one subscriber.
 *
 * Broken promises abort():
 *   - issue_source_read(): -1 with an error code; on 0 the text is the
 *     input, NUL-terminated, the body starts inside it, and every front
 *     matter value is at most 998 bytes with no control character or line
 *     break (header injection), but `where:`, which never reaches a header
 *     and is checked by segment_compile() at issue_create();
 *   - render_markdown(): on -1 an error code and `out` all NULL; on 0
 *     html and text set, text "" or ending in a single LF, links[0..n_links)
 *     non-empty, and a "Links:" section in the text when there are links;
 *   - render_page(): fails only with EX_DATAERR;
 *   - when the merge fields of the subject, the preheader and the body
 *     compiled, the rendered pages compile too and merge (RAW for the text,
 *     HTML for the HTML page); without allow_html the merged HTML page
 *     holds no "<script" (any case): nothing in the Markdown, a merge
 *     field's fallback included, becomes a script element.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "herald/address.h"
#include "herald/buf.h"
#include "herald/embedded.h"
#include "herald/herr.h"
#include "herald/issue.h"
#include "herald/render.h"
#include "herald/tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAGE_MAX (16u << 20)

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_issue: broken promise: %s (%.200s)\n", what, detail ? detail : "");
	abort();
}

/* One-time init: where the inputs are written (tmpfs when there is one). */
static const char *
tmp_dir(void)
{
	static const char *dir;
	struct stat st;

	if (!dir) {
		dir = getenv("TMPDIR");
		if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		    access("/dev/shm", W_OK) == 0)
			dir = "/dev/shm";
		else if (!dir || !*dir)
			dir = "/tmp";
	}
	return dir;
}

/* issue_source_read() of the input: written to a new temporary file that
 * is removed as soon as it was read, so nothing outlives the input. */
static int
read_input(const uint8_t *data, size_t size, struct issue_source *src, struct herr *err)
{
	char path[512];
	FILE *fp;
	int fd, rc;

	snprintf(path, sizeof path, "%s/herald-fuzz-issue-XXXXXX", tmp_dir());
	if ((fd = mkstemp(path)) < 0 || !(fp = fdopen(fd, "wb"))) {
		perror("fuzz_issue: temporary file");
		abort();
	}
	if ((size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
		perror("fuzz_issue: writing the input");
		abort();
	}
	rc = issue_source_read(path, src, err);
	unlink(path);
	return rc;
}

static void
check_value(const char *v, const char *key)
{
	const unsigned char *p;

	if (v == NULL)
		return;
	if (strlen(v) > 998)
		broken("front matter value longer than 998 bytes", key);
	for (p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			broken("control character or line break in a front matter value", key);
}

/* Compile (and free) `text`; 0 when its merge fields are good. */
static int
fields_ok(const char *text, size_t len)
{
	struct tmpl *t = NULL;
	struct herr err;

	herr_clear(&err);
	if (tmpl_compile(text, len, "fuzz.md", 1, &t, &err) < 0) {
		if (t != NULL || err.code == 0)
			broken("failed compile with a template or without a code", err.msg);
		return -1;
	}
	tmpl_free(t);
	return 0;
}

/* "<script" in any case. */
static int
has_script(const char *s, size_t n)
{
	static const char want[] = "<script";
	size_t i, j;

	for (i = 0; i + sizeof want - 1 <= n; i++) {
		for (j = 0; j < sizeof want - 1; j++)
			if (tolower((unsigned char)s[i + j]) != want[j])
				break;
		if (j == sizeof want - 1)
			return 1;
	}
	return 0;
}

static void
merge_page(const struct buf *page, enum tmpl_escape esc, const struct render_doc *doc,
           int no_html)
{
	static const struct tmpl_attr attrs[] = {
		{ "organization", "Lambeth <Council> & \"Co\"" },
		{ "role", "Social worker" },
	};
	struct tmpl_vars v;
	struct tmpl *t = NULL;
	struct buf out = BUF_INIT(PAGE_MAX);
	struct herr err;

	herr_clear(&err);
	if (tmpl_compile(page->data, page->len, "page", 1, &t, &err) < 0) {
		broken("a rendered page of a body whose fields compiled does not compile",
		       err.msg);
	}
	memset(&v, 0, sizeof v);
	v.name = "Zo\xc3\xab M\xc3\xbcller <zoe>";
	v.email = "zoe@example.org";
	v.unsubscribe_url = "https://news.example.org/u/AbCdEf";
	v.view_url = "https://news.example.org/archive/16";
	v.open_pixel = "<img src=\"https://news.example.org/o/AbC.gif\" alt=\"\">";
	v.attrs = attrs;
	v.n_attrs = 2;
	v.links = (const char *const *)doc->links;
	v.n_links = doc->n_links;
	if (tmpl_merge(t, &v, esc, &out) < 0)
		broken("merging a rendered page failed", "");
	if (no_html && has_script(out.data, out.len))
		broken("a script element in the HTML page without allow_html", "");
	buf_free(&out);
	tmpl_free(t);
}

static void
render(const struct issue_source *src, const struct render_opts *ro, int body_fields_ok,
       const char *sender)
{
	static const char *const names[2] = { "newsletter.txt", "newsletter.html" };
	struct render_doc doc;
	struct render_page_vars pv;
	struct herr err;
	size_t i, n;
	int html;

	memset(&doc, 0xa5, sizeof doc);
	herr_clear(&err);
	if (render_markdown(src->text + src->body_off, src->len - src->body_off, src->path,
	                    src->body_line, ro, &doc, &err) < 0) {
		if (err.code == 0)
			broken("render failed without a code", "");
		if (doc.html || doc.text || doc.links || doc.n_links)
			broken("render failed but left output", "");
		return;
	}
	if (!doc.html || !doc.text || (doc.n_links && !doc.links))
		broken("render succeeded without html, text or links", "");
	n = strlen(doc.text);
	if (n > 0 && doc.text[n - 1] != '\n')
		broken("text part does not end with a LF", "");
	if (n > 1 && doc.text[n - 2] == '\n')
		broken("text part does not end with a single LF", "");
	for (i = 0; i < doc.n_links; i++)
		if (!doc.links[i] || !*doc.links[i])
			broken("empty link", "");
	if (doc.n_links && !strstr(doc.text, "Links:"))
		broken("links without a Links: section", "");

	memset(&pv, 0, sizeof pv);
	pv.subject = src->subject ? src->subject : "";
	pv.preheader = src->preheader ? src->preheader : "";
	pv.list_name = src->n_lists ? src->lists[0] : "newsletter";
	pv.list_title = "What Works <Centre> & Co";
	pv.sender_name = sender;
	pv.postal_address = "1 Street\nLondon & <Town>";
	pv.lang = NULL;
	for (html = 0; html < 2; html++) {
		const struct embedded_file *f = embedded_template(names[html]);
		struct buf page = BUF_INIT(PAGE_MAX);

		if (!f)
			broken("built-in template missing", names[html]);
		herr_clear(&err);
		if (render_page(f->data, f->len, names[html], html, &pv, html ? doc.html : doc.text,
		                &page, &err) < 0) {
			if (err.code != EX_DATAERR)
				broken("render_page failed without EX_DATAERR", err.msg);
		} else if (body_fields_ok)
			merge_page(&page, html ? TMPL_HTML : TMPL_RAW, &doc, html && !ro->allow_html);
		buf_free(&page);
	}
	render_doc_free(&doc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct render_opts opts[2] = { { 0, 1 }, { 1, 0 } };
	struct issue_source src;
	struct herr err;
	struct address from;
	char sender[sizeof from.addr] = "";
	int ok;
	size_t i;

	herr_clear(&err);
	if (read_input(data, size, &src, &err) < 0) {
		if (err.code == 0)
			broken("-1 without an error code", "");
		issue_source_free(&src);
		return 0;
	}
	if (src.len != size || memcmp(src.text, data, size) || src.text[src.len] != '\0')
		broken("text is not the file", "");
	if (src.body_off > src.len || src.body_line < 1)
		broken("body outside the text", "");
	check_value(src.subject, "subject");
	check_value(src.preheader, "preheader");
	check_value(src.from, "from");
	check_value(src.reply_to, "reply_to");
	for (i = 0; i < src.n_lists; i++)
		check_value(src.lists[i], "lists");
	check_value(src.segment, "segment");
	for (i = 0; i < src.n_allow_missing; i++)
		check_value(src.allow_missing[i], "allow_missing");

	/* issue_create(): the sender, then the merge fields in the source. */
	if (src.from) {
		herr_clear(&err);
		if (address_parse_mailbox(src.from, sender, sizeof sender, &from, &err) < 0)
			sender[0] = '\0';
		else if (!sender[0])
			snprintf(sender, sizeof sender, "%s", from.addr);
	}
	ok = (!src.subject || fields_ok(src.subject, strlen(src.subject)) == 0) &&
	     (!src.preheader || fields_ok(src.preheader, strlen(src.preheader)) == 0);
	ok = fields_ok(src.text + src.body_off, src.len - src.body_off) == 0 && ok;
	for (i = 0; i < 2; i++)
		render(&src, &opts[i], ok, sender[0] ? sender : "News <Team>");
	issue_source_free(&src);
	return 0;
}
