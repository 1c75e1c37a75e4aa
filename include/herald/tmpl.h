/*
 * tmpl.h - merge fields: compiled once per issue, merged per subscriber.
 *
 * Syntax: {{field}} or {{field|fallback}}, spaces allowed inside the braces
 * around the field name ({{ name | there }} keeps the fallback "there" with
 * surrounding spaces trimmed).  Every "{{" starts a field: a "{{" that is not
 * closed by "}}" on the same line is an error, so is an empty or unknown field.
 *
 * Subscriber fields (merged per recipient):
 *   name             the subscriber's name
 *   first_name       the first whitespace-separated word of the name
 *   email            the address as given
 *   attr.KEY         the subscriber attribute KEY (from CSV columns or --attr);
 *                    KEY is any run of characters but '|', '}' and spaces
 *   unsubscribe_url  the subscriber's one-click unsubscribe page
 *   preferences_url  the subscriber's preference centre ("manage your
 *                    subscription", /p/TOKEN)
 *   view_url         the web copy ("view in browser")
 *   open_pixel       the open-tracking image tag, or nothing when tracking
 *                    is off; inserted as it is, never escaped (it is HTML
 *                    herald makes, holding no subscriber data but a token)
 *   link.N           the Nth link, direct or through the click
 *                    redirect; message.c puts these in place of the links
 *                    it found, templates do not write them
 *   lists            the titles of the lists this reader is on,
 *                    "Newsletter and Research": why they get the mail (the
 *                    footer); for a copy for nobody in particular, the
 *                    issue's first list
 * An empty or absent value (NULL, "", a missing attribute) is replaced by
 * the fallback when one is given, and by nothing otherwise.
 *
 * Compilation turns the text into a flat array of literal spans and field
 * references, so merging a 20 KB issue for one subscriber is a single pass of
 * memcpy() and value lookups with no parsing (see bench/).  Values and
 * fallbacks are HTML-escaped when merging with TMPL_HTML and copied as they
 * are with TMPL_RAW; literal text is always copied as it is.
 *
 * tmpl_scan() is the shared tokenizer; render.c uses it to fill page-level
 * fields ({{issue.content}}, {{issue.subject}}, ...) in the layout templates
 * before what remains is compiled here.
 */
#ifndef HERALD_TMPL_H
#define HERALD_TMPL_H

#include <stddef.h>

#include "herald/buf.h"
#include "herald/herr.h"

enum tmpl_escape {
	TMPL_RAW,  /* values copied as they are: text part, Subject */
	TMPL_HTML, /* values and fallbacks HTML-escaped: HTML part */
	TMPL_URL,  /* values and fallbacks percent-encoded (RFC 3986 §2.1, all
	              but unreserved characters): a merge field inside a link;
	              except the fields that are URLs herald made
	              (unsubscribe_url, preferences_url, view_url, link.N),
	              copied as they are:
	              in a link they are the link */
};

/* The fields a compiled template may refer to. */
enum tmpl_field {
	TMPL_FIELD_NAME,
	TMPL_FIELD_FIRST_NAME,
	TMPL_FIELD_EMAIL,
	TMPL_FIELD_ATTR,
	TMPL_FIELD_UNSUBSCRIBE_URL,
	TMPL_FIELD_VIEW_URL,
	TMPL_FIELD_OPEN_PIXEL,
	TMPL_FIELD_LINK,
	TMPL_FIELD_LISTS,
	TMPL_FIELD_PREFERENCES_URL,
};

/* One "{{...}}" found by tmpl_scan(). Pointers point into the scanned text. */
struct tmpl_token {
	size_t      start, end;   /* byte span of the whole token, "{{" to "}}" */
	const char *field;        /* field name, trimmed; not NUL-terminated */
	size_t      field_len;
	const char *fallback;     /* after '|', trimmed; NULL when no '|' */
	size_t      fallback_len;
	unsigned    line, col;    /* 1-based position of "{{", col in characters */
};

/*
 * Call `fn` for each token of `src` in order.  `where` (a file name) and
 * `first_line` (the line number of src's first line in that file) place the
 * tokens in messages, e.g. "newsletter.md:23:10".  Stops at the first
 * callback returning -1.  Returns 0, or -1 with EX_DATAERR for a "{{" that
 * is not closed on its line or has an empty field name.
 */
typedef int (*tmpl_token_fn)(void *ctx, const struct tmpl_token *tok,
                             const char *where, struct herr *err);
int tmpl_scan(const char *src, size_t len, const char *where, unsigned first_line,
              tmpl_token_fn fn, void *ctx, struct herr *err);

struct tmpl; /* opaque: a compiled template */

/*
 * Compile `src`.  On success *out owns a new template (tmpl_free it); the
 * template keeps its own copy of `src`.  Unknown fields fail with
 * EX_DATAERR at "where:line:col", naming the field and listing the known
 * ones; *out is then NULL.
 */
int tmpl_compile(const char *src, size_t len, const char *where,
                 unsigned first_line, struct tmpl **out, struct herr *err);
void tmpl_free(struct tmpl *t);

/* How many field references the template holds (0 for plain text). */
size_t tmpl_field_count(const struct tmpl *t);

/* Call fn(ctx, key) for each distinct attr.KEY the template uses, in order
 * of first use (so the caller loads only the attributes it needs). */
void tmpl_each_attr(const struct tmpl *t, void (*fn)(void *ctx, const char *key),
                    void *ctx);

struct tmpl_attr {
	const char *key;
	const char *value;
};

/* One subscriber's values.  NULL strings count as empty. */
struct tmpl_vars {
	const char *name;
	const char *email;
	const char *unsubscribe_url;
	const struct tmpl_attr *attrs; /* looked up by exact key */
	size_t      n_attrs;
	const char *view_url;
	const char *open_pixel;
	const char *const *links;     /* links[i] is {{link.<i+1>}} */
	size_t      n_links;
	const char *lists;            /* {{lists}} */
	const char *preferences_url;  /* {{preferences_url}} */
};

/*
 * Append the template merged with `v` to `out`.  Returns 0, or -1 when the
 * buffer's cap is reached or memory runs out (errno E2BIG or ENOMEM), in
 * which case `out` is left as it was.  Allocates nothing but buffer growth.
 */
int tmpl_merge(const struct tmpl *t, const struct tmpl_vars *v,
               enum tmpl_escape esc, struct buf *out);

/* Append `len` bytes of `s` HTML-escaped (& < > " ') to `out`. */
int tmpl_escape_html(struct buf *out, const char *s, size_t len);

#endif
