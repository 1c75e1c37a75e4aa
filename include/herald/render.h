/*
 * render.h - an issue's Markdown turned into its HTML and plain-text parts.
 *
 * Runs once per issue, not per subscriber.  The output still holds the merge
 * fields ({{name}}, ...) exactly as written in the source; tmpl.h compiles
 * and merges them per subscriber.
 *
 * Markdown: CommonMark via cmark, smart punctuation on, raw HTML omitted
 * unless the issue allows it, single line breaks kept when asked (the
 * issue default, see issue.h's line_breaks).  Merge fields are swapped for placeholder
 * words before cmark sees the text and swapped back afterwards, so Markdown
 * syntax can neither mangle nor create them (a field in a link destination
 * survives cmark's URL escaping).
 *
 * Plain text: made by walking cmark's tree, not by stripping the Markdown:
 *   - a level-1 heading is underlined with '=', other levels with '-';
 *   - paragraphs wrapped at 72 columns (counted in characters, not bytes;
 *     a word longer than the width stands on its own line, never split);
 *   - bullet lists as "- ", ordered lists as "1. " with their start number,
 *     nested lists indented, continuation lines aligned under the text;
 *   - emphasis and strong unmarked; code spans as they are, backticks
 *     included; code blocks indented by four spaces and not wrapped; block
 *     quotes prefixed "> " (the width shrinks to fit); a thematic break is
 *     "----"; one blank line between blocks, none inside tight lists;
 *   - a link is its text followed by " [N]"; an image is its alt text in
 *     brackets followed by " [N]"; autolinks are numbered too (an address
 *     as "mailto:..."); after the body a blank line, then a "Links:" section
 *     lists "[N] URL" for each distinct URL in order of first appearance
 *     (the same URL always gets the same N); no section without links;
 *   - raw HTML never reaches the text part, even when allowed;
 *   - a merge field counts as the characters of its token when wrapping and
 *     is never broken, whatever spaces it holds.
 * Without allow_html, cmark's safe mode puts "<!-- raw HTML omitted -->"
 * in the HTML part for each piece of raw HTML, and links with javascript:,
 * vbscript:, file: or non-image data: URLs lose their destination there;
 * the text part gives those links no number either.
 */
#ifndef HERALD_RENDER_H
#define HERALD_RENDER_H

#include <stddef.h>

#include "herald/buf.h"
#include "herald/herr.h"

#define RENDER_TEXT_WIDTH 72

struct render_opts {
	int allow_html;  /* keep raw HTML blocks and inline HTML (cmark UNSAFE) */
	int hard_breaks; /* a line break inside a paragraph stays a line break
	                    (cmark HARDBREAKS; <br> in HTML, a new line in text) */
};

struct render_doc {
	char   *html;    /* HTML fragment for the body, NUL-terminated */
	char   *text;    /* plain text body, LF line ends, ends with the Links section */
	char  **links;   /* distinct link and image URLs, first appearance order */
	size_t  n_links; /* links[i] is "[i+1]" in the text */
};

/*
 * Render `len` bytes of Markdown.  `where` and `first_line` place errors
 * ("newsletter.md:12:5: ...") when the body does not start the file (front
 * matter).  Fails with EX_DATAERR for invalid UTF-8 (at the line and
 * character column where the bad sequence starts), NUL bytes, and for
 * merge-field syntax errors; unknown field names are left to
 * tmpl_compile().  On success the caller owns `out` and frees it with
 * render_doc_free(); on failure `out` is left empty (all NULL).  The text
 * part ends with a single LF ("" for an empty document).
 */
int render_markdown(const char *md, size_t len, const char *where,
                    unsigned first_line, const struct render_opts *opts,
                    struct render_doc *out, struct herr *err);
void render_doc_free(struct render_doc *doc);

/* What the layout templates can say about the issue, the list and sender. */
struct render_page_vars {
	const char *subject;        /* may hold merge fields, kept as they are */
	const char *preheader;      /* may hold merge fields; "" for none */
	const char *list_name;
	const char *list_title;     /* human name of the list; falls back to list_name */
	const char *sender_name;    /* From display name */
	const char *postal_address; /* [sender] postal_address */
	const char *lang;           /* {{issue.lang}}, <html lang>; NULL: "en" */
};

/*
 * Fill a layout template: page-level fields {{issue.content}},
 * {{issue.subject}}, {{issue.preheader}}, {{issue.lang}}, {{list.name}},
 * {{list.title}}, {{sender.name}}, {{sender.postal_address}} are replaced
 * (an empty value takes the token's fallback, {{list.title|News}}); every
 * other {{...}} token is copied unchanged for tmpl_compile().  For the HTML
 * layout (`html` non-zero) values are HTML-escaped except issue.content,
 * which is the rendered HTML fragment, literal text around merge fields
 * inside a value is escaped while the fields themselves are kept, and the
 * line breaks of postal_address become "<br>".  An unknown issue.*, list.*
 * or sender.* field fails with EX_DATAERR at "template:line:col"; a bad
 * merge field inside a value fails at "issue.subject:1:col" and the like.
 * Appends to `out`; on failure `out` may hold part of the page.
 */
int render_page(const char *tpl, size_t tpl_len, const char *tpl_where, int html,
                const struct render_page_vars *v, const char *content,
                struct buf *out, struct herr *err);

#endif
