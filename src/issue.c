/*
 * issue.c - reading issue files, rendering them once, and the issues table.
 *
 * Owns the issues and issue_lists tables (sql/001, sql/009): an issue and
 * the definition of its audience (its lists, its segment or where), which
 * issue_audience() turns into audience.h's terms when it is needed.
 *
 * Front matter is YAML, parsed with libyaml's event API: only a flat mapping
 * of scalar keys to scalar values (and flat lists for allow_missing and
 * lists) is accepted, which is all an issue needs and keeps anchors, tags
 * and nesting out of a file that ends up in headers.
 */
#include "herald/issue.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <yaml.h>

#include "herald/address.h"
#include "herald/audience.h"
#include "herald/db.h"
#include "herald/embedded.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/render.h"
#include "herald/segment.h"
#include "herald/subjecttest.h"
#include "herald/subscriber.h"
#include "herald/suggest.h"
#include "herald/tmpl.h"

#define FRONT_MATTER_VALUE_MAX 998

static int
where_line(char *buf, size_t size, const char *path, unsigned long line)
{
	snprintf(buf, size, "%s:%lu", path, line);
	return 0;
}

static int
read_file(const char *path, size_t max, char **out, size_t *len, struct herr *err)
{
	FILE *fp;
	struct stat st;
	char *s;
	size_t n;

	*out = NULL;
	if (!(fp = fopen(path, "rb")))
		return herr_set(err, errno == ENOENT ? EX_NOINPUT : EX_IOERR, path,
		                "cannot open: %s", strerror(errno));
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(fp);
		return herr_set(err, EX_NOINPUT, path, "not a regular file");
	}
	if ((size_t)st.st_size > max) {
		fclose(fp);
		return herr_set(err, EX_DATAERR, path, "file is larger than %zu bytes", max);
	}
	if (!(s = malloc((size_t)st.st_size + 1))) {
		fclose(fp);
		return herr_set(err, EX_OSERR, path, "out of memory");
	}
	n = fread(s, 1, (size_t)st.st_size, fp);
	if (ferror(fp)) {
		fclose(fp);
		free(s);
		return herr_set(err, EX_IOERR, path, "read error");
	}
	fclose(fp);
	s[n] = '\0';
	*out = s;
	*len = n;
	return 0;
}

/* A front-matter key: where its value goes and the line it came from. */
struct fm_key {
	const char *name;
	size_t      offset;
};

#define FM(f) offsetof(struct issue_source, f)
static const struct fm_key fm_keys[] = {
	{ "subject",    FM(subject) },
	{ "preheader",  FM(preheader) },
	{ "from",       FM(from) },
	{ "reply_to",   FM(reply_to) },
	{ "list",       0 },
	{ "lists",      0 },
	{ "segment",    FM(segment) },
	{ "where",      FM(where) },
	{ "allow_html", 0 },
	{ "tracking",   0 },
	{ "line_breaks", 0 },
	{ "allow_missing", 0 },
	{ "subject_variants", 0 },
	{ "test_share", 0 },
	{ "test_wait", 0 },
};
#define N_FM_KEYS (sizeof fm_keys / sizeof fm_keys[0])
#undef FM

static int
check_value(const char *path, unsigned long line, const char *key, const char *v,
            struct herr *err)
{
	char where[HERR_WHERE_MAX], what[80];

	where_line(where, sizeof where, path, line);
	if (strpbrk(v, "\r\n"))
		return herr_set(err, EX_DATAERR, where,
		                "'%s' contains a line break; header values must be one line", key);
	/* the rest as for every text that reaches a header: C0, DEL and the
	 * C1 controls (a YAML "\x9b" escape would pass a byte check) */
	snprintf(what, sizeof what, "'%s'", key);
	if (subscriber_check_text(what, v, FRONT_MATTER_VALUE_MAX, err) < 0) {
		if (err)
			snprintf(err->where, sizeof err->where, "%s", where);
		return -1;
	}
	return 0;
}

/* A field name for allow_missing: "organization" and "attr.organization"
 * both mean the attribute; "name" and "first_name" are themselves. */
static int
fm_add_missing(struct issue_source *src, const char *v, const char *where, struct herr *err)
{
	char item[AUDIENCE_KEY_MAX + 8], **nv;
	const char *p = v, *e;
	size_t n;

	/* a scalar may list several: "organization, region" */
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		for (e = p; *e && *e != ','; e++)
			;
		n = (size_t)(e - p);
		while (n && p[n - 1] == ' ')
			n--;
		if (!n || memchr(p, ' ', n) || memchr(p, '|', n) || memchr(p, '}', n) ||
		    memchr(p, '{', n))
			return herr_set(err, EX_DATAERR, where,
			                "front matter: allow_missing wants field names such as "
			                "'organization' or 'attr.organization', not '%.*s'",
			                (int)(n > 60 ? 60 : n), p);
		if (n >= AUDIENCE_KEY_MAX)
			return herr_set(err, EX_DATAERR, where,
			                "front matter: allow_missing: field name too long");
		if ((n == 4 && !memcmp(p, "name", 4)) || (n == 10 && !memcmp(p, "first_name", 10)) ||
		    (n > 5 && !memcmp(p, "attr.", 5)))
			snprintf(item, sizeof item, "%.*s", (int)n, p);
		else
			snprintf(item, sizeof item, "attr.%.*s", (int)n, p);
		if (!(nv = realloc(src->allow_missing, (src->n_allow_missing + 1) * sizeof *nv)))
			return herr_set(err, EX_OSERR, where, "out of memory");
		src->allow_missing = nv;
		if (!(nv[src->n_allow_missing] = strdup(item)))
			return herr_set(err, EX_OSERR, where, "out of memory");
		src->n_allow_missing++;
		p = e;
	}
	return 0;
}

/* One subject of subject_variants: (check_value() has checked it as a
 * header value); the count, repeats and merge fields are checked at
 * issue_create(). */
static int
fm_add_variant(struct issue_source *src, const char *v, const char *where, struct herr *err)
{
	char **nv;

	if (src->n_variants == SUBJECTTEST_VARIANTS_MAX)
		return herr_set(err, EX_DATAERR, where,
		                "front matter: subject_variants: more than %d subjects",
		                SUBJECTTEST_VARIANTS_MAX);
	if (!(nv = realloc(src->variants, (src->n_variants + 1) * sizeof *nv)))
		return herr_set(err, EX_OSERR, where, "out of memory");
	src->variants = nv;
	if (!(nv[src->n_variants] = strdup(v)))
		return herr_set(err, EX_OSERR, where, "out of memory");
	src->n_variants++;
	return 0;
}

/* List names for list: or lists: ("newsletter", "newsletter, research" or
 * one item of a YAML list), each checked by list.h's rule here and looked
 * up at issue_create(). */
static int
fm_add_list(struct issue_source *src, const char *v, const char *where, struct herr *err)
{
	char name[66], **nv;
	const char *p = v, *e;
	size_t n, i;

	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		for (e = p; *e && *e != ',' && *e != ' '; e++)
			;
		n = (size_t)(e - p);
		snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), p);
		if (n >= sizeof name - 1 || list_name_check(name, err) < 0)
			return herr_set(err, EX_DATAERR, where,
			                "front matter: '%.*s' is not a list name (1-64 of a-z 0-9 . _ -)",
			                (int)(n > 60 ? 60 : n), p);
		for (i = 0; i < src->n_lists; i++)
			if (!strcmp(src->lists[i], name))
				return herr_set(err, EX_DATAERR, where,
				                "front matter: list '%s' is given twice", name);
		if (src->n_lists == AUDIENCE_LISTS_MAX)
			return herr_set(err, EX_DATAERR, where,
			                "front matter: more than %d lists", AUDIENCE_LISTS_MAX);
		if (!(nv = realloc(src->lists, (src->n_lists + 1) * sizeof *nv)))
			return herr_set(err, EX_OSERR, where, "out of memory");
		src->lists = nv;
		if (!(nv[src->n_lists] = strdup(name)))
			return herr_set(err, EX_OSERR, where, "out of memory");
		src->n_lists++;
		p = e;
	}
	return 0;
}

/*
 * Where the value of `where:` starts in the file, so a segment error can
 * name the file's column: the scalar's line and column as libyaml marks
 * them, kept only when the file holds the value as written there on one
 * line (plain, or quoted with no escape changing it); libyaml counts
 * columns in characters, as segment.h does.
 */
static void
fm_where_position(struct issue_source *src, const char *fm, size_t fm_len, unsigned first_line,
                  const yaml_event_t *ev)
{
	const char *p = fm, *end = fm + fm_len, *v = (const char *)ev->data.scalar.value;
	size_t i, vlen = strlen(v);
	int quoted;

	src->where_line = first_line + (unsigned)ev->start_mark.line;
	src->where_col = 0;
	if (ev->start_mark.line != ev->end_mark.line)
		return;
	for (i = 0; i < ev->start_mark.line && p < end; i++) {
		p = memchr(p, '\n', (size_t)(end - p));
		p = p ? p + 1 : end;
	}
	for (i = 0; i < ev->start_mark.column && p < end && *p != '\n'; i++)
		for (p++; p < end && ((unsigned char)*p & 0xc0) == 0x80; p++)
			;
	quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
	         ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	if (i != ev->start_mark.column ||
	    (!quoted && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE))
		return;
	if (quoted && (p >= end || (*p != '\'' && *p != '"')))
		return;
	if (quoted)
		p++;
	if ((size_t)(end - p) < vlen || memcmp(p, v, vlen) || (quoted && (p + vlen >= end ||
	    p[vlen] != p[-1])))
		return;
	src->where_col = (int)ev->start_mark.column + 1 + quoted;
}

/* Keys that exclude each other: list and lists, segment and where. */
static int
fm_excludes(const char *a, const char *b)
{
	static const char *const pairs[][2] = { { "list", "lists" }, { "segment", "where" } };
	size_t i;

	for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
		if ((!strcmp(a, pairs[i][0]) && !strcmp(b, pairs[i][1])) ||
		    (!strcmp(a, pairs[i][1]) && !strcmp(b, pairs[i][0])))
			return 1;
	return 0;
}

/* Key fm_keys[k] is being given: not twice, and not with one it excludes. */
static int
fm_claim(int *seen, int k, const char *where, struct herr *err)
{
	size_t i;

	if (seen[k])
		return herr_set(err, EX_DATAERR, where, "front matter: '%s' is given twice",
		                fm_keys[k].name);
	for (i = 0; i < N_FM_KEYS; i++)
		if (seen[i] && fm_excludes(fm_keys[i].name, fm_keys[k].name))
			return herr_set(err, EX_DATAERR, where,
			                "front matter: give '%s' or '%s', not both", fm_keys[i].name,
			                fm_keys[k].name);
	seen[k] = 1;
	return 0;
}

/* Store the scalar value of front-matter key fm_keys[i]. */
static int
fm_set(struct issue_source *src, size_t i, const char *v, const char *where,
       struct herr *err)
{
	const char *key = fm_keys[i].name;

	if (!strcmp(key, "allow_html") || !strcmp(key, "tracking")) {
		int *flag = !strcmp(key, "tracking") ? &src->tracking : &src->allow_html;

		if (!strcasecmp(v, "true") || !strcasecmp(v, "yes"))
			*flag = 1;
		else if (!strcasecmp(v, "false") || !strcasecmp(v, "no"))
			*flag = 0;
		else
			return herr_set(err, EX_DATAERR, where,
			                "front matter: %s must be true or false, not '%s'", key, v);
	} else if (!strcmp(key, "line_breaks")) {
		if (!strcasecmp(v, "keep"))
			src->hard_breaks = 1;
		else if (!strcasecmp(v, "commonmark"))
			src->hard_breaks = 0;
		else
			return herr_set(err, EX_DATAERR, where,
			                "front matter: line_breaks must be 'keep' (each line break "
			                "stays one) or 'commonmark' (lines of a paragraph join), "
			                "not '%s'", v);
	} else if (!strcmp(key, "allow_missing")) {
		return fm_add_missing(src, v, where, err);
	} else if (!strcmp(key, "subject_variants")) {
		return fm_add_variant(src, v, where, err);
	} else if (!strcmp(key, "test_share")) {
		if ((src->test_share = subjecttest_parse_share(v)) < 0)
			return herr_set(err, EX_DATAERR, where,
			                "front matter: test_share must be a share of the audience "
			                "from 1%% to %d%%, such as 20%%, not '%s'",
			                SUBJECTTEST_SHARE_MAX, v);
	} else if (!strcmp(key, "test_wait")) {
		if ((src->test_wait = subjecttest_parse_wait(v)) < 0)
			return herr_set(err, EX_DATAERR, where,
			                "front matter: test_wait must be a span from 1m to 7d, such "
			                "as 30m, 4h or 1d, not '%s'", v);
	} else if (!strcmp(key, "list") || !strcmp(key, "lists")) {
		return fm_add_list(src, v, where, err);
	} else {
		char **field = (char **)((char *)src + fm_keys[i].offset);

		if (!(*field = strdup(v)))
			return herr_set(err, EX_OSERR, where, "out of memory");
	}
	return 0;
}

/* Index of front-matter key `key` in fm_keys, or -1 with an error that
 * lists the known keys and the closest one. */
static int
fm_find(const char *key, const char *where, struct herr *err)
{
	const char *names[N_FM_KEYS], *near;
	char known[256];
	size_t i, k = 0;

	for (i = 0; i < N_FM_KEYS; i++) {
		if (!strcmp(fm_keys[i].name, key))
			return (int)i;
		names[i] = fm_keys[i].name;
		k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "",
		                      names[i]);
	}
	near = suggest_closest(key, names, N_FM_KEYS);
	if (near)
		herr_set(err, EX_DATAERR, where,
		         "front matter: unknown key '%s'; did you mean '%s'? (known: %s)", key,
		         near, known);
	else
		herr_set(err, EX_DATAERR, where, "front matter: unknown key '%s' (known: %s)", key,
		         known);
	return -1;
}

static int
parse_front_matter(struct issue_source *src, const char *fm, size_t fm_len,
                   unsigned first_line, struct herr *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	char where[HERR_WHERE_MAX], *key = NULL;
	unsigned long key_line = 0, line;
	/* 0 before the mapping, 1 in it, 2 after it, 3 in allow_missing's or
	 * lists' list (key k) */
	int state = 0, done = 0, ret = -1, seen[N_FM_KEYS] = { 0 }, k = -1;

	if (!yaml_parser_initialize(&parser))
		return herr_set(err, EX_OSERR, src->path, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)fm, fm_len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			where_line(where, sizeof where, src->path,
			           first_line + (unsigned long)parser.problem_mark.line);
			herr_set(err, EX_DATAERR, where, "front matter: %s%s%s",
			         parser.problem ? parser.problem : "syntax error",
			         parser.context ? " " : "", parser.context ? parser.context : "");
			goto out;
		}
		line = first_line + (unsigned long)ev.start_mark.line;
		where_line(where, sizeof where, src->path, line);
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_MAPPING_START_EVENT:
			if (state != 0) {
				herr_set(err, EX_DATAERR, where,
				         "front matter: '%s' must be a single value, not a mapping",
				         key ? key : "?");
				goto fail_ev;
			}
			state = 1;
			break;
		case YAML_MAPPING_END_EVENT:
			state = 2;
			break;
		case YAML_SEQUENCE_START_EVENT:
			/* only allow_missing, lists and subject_variants take a
			 * list: [organization, region] */
			if (state != 1 || !key || (strcmp(key, "allow_missing") && strcmp(key, "lists") &&
			                           strcmp(key, "subject_variants"))) {
				herr_set(err, EX_DATAERR, where,
				         "front matter: '%s' must be a single value, not a list",
				         key ? key : "?");
				goto fail_ev;
			}
			if ((k = fm_find(key, where, err)) < 0 || fm_claim(seen, k, where, err) < 0)
				goto fail_ev;
			if (!strcmp(key, "lists"))
				src->lists_line = line;
			else if (!strcmp(key, "subject_variants"))
				src->variants_line = line;
			state = 3;
			break;
		case YAML_SEQUENCE_END_EVENT:
			state = 1;
			free(key);
			key = NULL;
			break;
		case YAML_SCALAR_EVENT:
			if (state == 3) {
				if (check_value(src->path, line, key,
				                (const char *)ev.data.scalar.value, err) < 0 ||
				    fm_set(src, (size_t)k, (const char *)ev.data.scalar.value, where,
				           err) < 0)
					goto fail_ev;
				break;
			}
			if (state != 1) {
				herr_set(err, EX_DATAERR, where,
				         "front matter must be 'key: value' lines");
				goto fail_ev;
			}
			if (!key) {
				key = strdup((const char *)ev.data.scalar.value);
				key_line = line;
				if (!key) {
					herr_set(err, EX_OSERR, where, "out of memory");
					goto fail_ev;
				}
				break;
			}
			where_line(where, sizeof where, src->path, key_line);
			if ((k = fm_find(key, where, err)) < 0 || fm_claim(seen, k, where, err) < 0)
				goto fail_ev;
			/* where: never reaches a header, may be longer than one and
			 * span lines; segment_compile() checks it */
			if ((strcmp(key, "where") &&
			     check_value(src->path, key_line, key,
			                 (const char *)ev.data.scalar.value, err) < 0) ||
			    fm_set(src, (size_t)k, (const char *)ev.data.scalar.value, where, err) < 0)
				goto fail_ev;
			if (!strcmp(key, "list") || !strcmp(key, "lists"))
				src->lists_line = (unsigned)key_line;
			else if (!strcmp(key, "segment"))
				src->segment_line = (unsigned)key_line;
			else if (!strcmp(key, "subject_variants"))
				src->variants_line = (unsigned)key_line;
			else if (!strcmp(key, "where"))
				fm_where_position(src, fm, fm_len, first_line, &ev);
			free(key);
			key = NULL;
			break;
		default:
			herr_set(err, EX_DATAERR, where,
			         "front matter: '%s' must be a single value", key ? key : "?");
			goto fail_ev;
		}
		yaml_event_delete(&ev);
	}
	ret = 0;
	goto out;
fail_ev:
	yaml_event_delete(&ev);
out:
	free(key);
	yaml_parser_delete(&parser);
	return ret;
}

/* Length of the line starting at p (without its LF / CRLF). */
static size_t
line_len(const char *p, const char *end)
{
	const char *q = memchr(p, '\n', (size_t)(end - p));
	size_t n = q ? (size_t)(q - p) : (size_t)(end - p);

	if (n && p[n - 1] == '\r')
		n--;
	return n;
}

int
issue_source_read(const char *path, struct issue_source *src, struct herr *err)
{
	const char *p, *end, *fm;
	unsigned line;
	size_t n;

	memset(src, 0, sizeof *src);
	src->tracking = -1;
	src->hard_breaks = 1;
	src->test_share = -1;
	src->test_wait = -1;
	if (!(src->path = strdup(path)))
		return herr_set(err, EX_OSERR, path, "out of memory");
	if (read_file(path, ISSUE_FILE_MAX, &src->text, &src->len, err) < 0)
		return -1;
	if (memchr(src->text, '\0', src->len))
		return herr_set(err, EX_DATAERR, path, "file contains a NUL byte; is it text?");
	p = src->text;
	end = src->text + src->len;
	if (src->len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3;
	src->body_off = (size_t)(p - src->text);
	src->body_line = 1;
	n = line_len(p, end);
	if (n == 3 && !memcmp(p, "---", 3)) {
		/* Front matter: up to the next "---" or "..." line. */
		p = memchr(p, '\n', (size_t)(end - p));
		p = p ? p + 1 : end;
		fm = p;
		line = 2;
		for (;;) {
			if (p >= end) {
				char where[HERR_WHERE_MAX];

				where_line(where, sizeof where, path, 1);
				return herr_set(err, EX_DATAERR, where,
				                "front matter opened here is never closed with '---'");
			}
			n = line_len(p, end);
			if (n == 3 && (!memcmp(p, "---", 3) || !memcmp(p, "...", 3)))
				break;
			p = memchr(p, '\n', (size_t)(end - p));
			p = p ? p + 1 : end;
			line++;
		}
		if (parse_front_matter(src, fm, (size_t)(p - fm), 2, err) < 0)
			return -1;
		p = memchr(p, '\n', (size_t)(end - p));
		p = p ? p + 1 : end;
		src->body_off = (size_t)(p - src->text);
		src->body_line = line + 1;
	}
	return 0;
}

void
issue_source_free(struct issue_source *src)
{
	free(src->path);
	free(src->text);
	free(src->subject);
	free(src->preheader);
	free(src->from);
	free(src->reply_to);
	while (src->n_lists)
		free(src->lists[--src->n_lists]);
	free(src->lists);
	free(src->segment);
	free(src->where);
	while (src->n_allow_missing)
		free(src->allow_missing[--src->n_allow_missing]);
	free(src->allow_missing);
	while (src->n_variants)
		free(src->variants[--src->n_variants]);
	free(src->variants);
	memset(src, 0, sizeof *src);
}

void
issue_clear(struct issue *is)
{
	free(is->subject);
	free(is->preheader);
	free(is->from_name);
	free(is->from_addr);
	free(is->reply_to);
	free(is->source_path);
	free(is->markdown);
	free(is->html);
	free(is->text);
	free(is->links);
	free(is->allow_missing);
	free(is->list_names);
	free(is->segment);
	free(is->where);
	memset(is, 0, sizeof *is);
}

int
issue_load_template(const struct config *cfg, int html, char **out, size_t *len,
                    const char **where_out, struct herr *err)
{
	const char *path = html ? cfg->html_template : cfg->text_template;
	const struct embedded_file *f;

	if (path) {
		*where_out = path;
		return read_file(path, 1u << 20, out, len, err);
	}
	f = embedded_template(html ? "newsletter.html" : "newsletter.txt");
	*where_out = html ? "templates/newsletter.html" : "templates/newsletter.txt";
	if (!f)
		return herr_set(err, EX_SOFTWARE, *where_out, "built-in template is missing");
	if (!(*out = malloc(f->len + 1)))
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	memcpy(*out, f->data, f->len);
	(*out)[f->len] = '\0';
	*len = f->len;
	return 0;
}

/*
 * What spam filters and readers hold against a newsletter, said at `issue
 * new` while it can still be fixed: images without alt text (blind readers,
 * and clients that block images, see nothing) and links through URL
 * shorteners (filters treat them as hiding the destination).
 */
static void
check_content(const struct render_doc *doc, void (*warn)(void *ctx, const char *msg),
              void *ctx)
{
	static const char *shorteners[] = { "bit.ly", "t.co", "tinyurl.com", "goo.gl", "ow.ly",
	                                    "is.gd", "buff.ly", "rebrand.ly", "cutt.ly",
	                                    "shorturl.at", "tiny.cc", "lnkd.in", "rb.gy",
	                                    "t.ly", NULL };
	const char *host, **sh;
	char msg[600];
	size_t i, n;

	if (strstr(doc->html, "alt=\"\""))
		warn(ctx, "an image has no alt text: write ![what it shows](url)");
	for (i = 0; i < doc->n_links; i++) {
		host = strstr(doc->links[i], "://");
		if (!host)
			continue;
		host += 3;
		n = strcspn(host, "/:?#");
		for (sh = shorteners; *sh; sh++)
			if (strlen(*sh) == n && !strncasecmp(host, *sh, n)) {
				snprintf(msg, sizeof msg, "link %zu goes through the URL shortener %s; "
				         "spam filters distrust them: link to the page itself",
				         i + 1, *sh);
				warn(ctx, msg);
			}
	}
}

/* ---- merge fields against the audience --------------------------------- */

#define FIELDS_MAX 64

/* The reader's fields an issue uses without a fallback, each once. */
struct bare_fields {
	char   name[FIELDS_MAX][AUDIENCE_KEY_MAX + 8];
	size_t n;
};

static int
collect_bare(void *ctx, const struct tmpl_token *tok, const char *where, struct herr *err)
{
	struct bare_fields *b = ctx;
	size_t i;

	(void)where;
	(void)err;
	if (tok->fallback)
		return 0;
	if (!((tok->field_len == 4 && !memcmp(tok->field, "name", 4)) ||
	      (tok->field_len == 10 && !memcmp(tok->field, "first_name", 10)) ||
	      (tok->field_len > 5 && !memcmp(tok->field, "attr.", 5))))
		return 0;
	if (tok->field_len >= sizeof b->name[0])
		return 0;
	for (i = 0; i < b->n; i++)
		if (strlen(b->name[i]) == tok->field_len &&
		    !memcmp(b->name[i], tok->field, tok->field_len))
			return 0;
	if (b->n < FIELDS_MAX) {
		memcpy(b->name[b->n], tok->field, tok->field_len);
		b->name[b->n++][tok->field_len] = '\0';
	}
	return 0;
}

/* Is `field` in the issue's allow_missing JSON array? */
static int
field_allowed(const char *allow_json, const char *field)
{
	json_t *a = json_loads(allow_json && *allow_json ? allow_json : "[]", 0, NULL), *v;
	size_t i;
	int found = 0;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), field))
			found = 1;
	json_decref(a);
	return found;
}

/* ---- the audience -------------------------------------------------------- */

int
issue_audience(sqlite3 *db, const struct issue *is, long long now, struct audience *a,
               struct herr *err)
{
	char where[HERR_WHERE_MAX];
	size_t i;

	memset(a, 0, sizeof *a);
	/* an issue made up in memory (tests) has only list_id */
	if (!is->n_lists && audience_add_list(a, is->list_id, err) < 0)
		return -1;
	for (i = 0; i < is->n_lists; i++)
		if (audience_add_list(a, is->list_ids[i], err) < 0)
			return -1;
	if (is->segment && is->segment[0]) {
		if (segment_compile_saved(db, is->segment, now, &a->seg, err) < 0)
			goto fail;
	} else if (is->where && is->where[0]) {
		snprintf(where, sizeof where, "issue %lld where", is->id);
		if (segment_compile(db, is->where, where, now, &a->seg, err) < 0)
			goto fail;
	}
	return 0;
fail:
	herr_wrap(err, "the audience of issue %lld", is->id);
	audience_clear(a);
	return -1;
}

int
issue_audience_count(sqlite3 *db, const struct issue *is, long long *n, struct herr *err)
{
	struct audience a;
	int rc;

	*n = 0;
	if (issue_audience(db, is, db_now(), &a, err) < 0)
		return -1;
	rc = audience_count(db, &a, n, err);
	audience_clear(&a);
	return rc;
}

int
issue_audience_each(sqlite3 *db, const struct issue *is,
                    int (*fn)(void *ctx, const struct audience_row *r), void *ctx,
                    struct herr *err)
{
	struct audience a;
	int rc;

	if (issue_audience(db, is, db_now(), &a, err) < 0)
		return -1;
	rc = audience_each(db, &a, fn, ctx, err);
	audience_clear(&a);
	return rc;
}

/* "list 'news'", "lists 'news', 'research'", and the filter: whom the
 * counts of the merge-field messages are of. */
static void
audience_phrase(const struct issue *is, char *out, size_t size)
{
	const char *names = is->list_names && is->list_names[0] ? is->list_names : is->list_name;
	size_t k;

	if (is->n_lists > 1)
		k = (size_t)snprintf(out, size, "lists %s", names);
	else
		k = (size_t)snprintf(out, size, "list '%s'", names);
	if (k >= size)
		return;
	if (is->segment && is->segment[0])
		snprintf(out + k, size - k, " in segment '%s'", is->segment);
	else if (is->where && is->where[0])
		snprintf(out + k, size - k, " matching its where:");
}

static int check_fields(sqlite3 *db, const struct issue *is, const struct audience *a,
                        int refuse, void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                        struct herr *err);

int
issue_check_fields(sqlite3 *db, const struct issue *is, int refuse,
                   void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                   struct herr *err)
{
	struct audience a;
	int rc;

	if (issue_audience(db, is, db_now(), &a, err) < 0)
		return -1;
	rc = check_fields(db, is, &a, refuse, warn, warn_ctx, err);
	audience_clear(&a);
	return rc;
}

static int
check_fields(sqlite3 *db, const struct issue *is, const struct audience *a, int refuse,
             void (*warn)(void *ctx, const char *msg), void *warn_ctx, struct herr *err)
{
	const char *parts[4 + SUBJECTTEST_VARIANTS_MAX] = { is->subject, is->preheader, is->html,
	                                                    is->text };
	struct bare_fields *bare = calloc(1, sizeof *bare);
	struct subjecttest test;
	struct audience_gap gaps[FIELDS_MAX];
	char msg[1200], hint[400], whom[400];
	long long total;
	size_t i, n = 0;
	int ret = -1;

	memset(&test, 0, sizeof test);
	if (!bare)
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	/* a subject test's variants reach their recipients too */
	if (is->id && subjecttest_load(db, is->id, &test, err) < 0)
		goto out;
	for (i = 0; i < test.n; i++)
		parts[4 + i] = test.v[i].subject;
	for (i = 0; i < 4 + test.n; i++)
		if (parts[i] && tmpl_scan(parts[i], strlen(parts[i]), "issue", 1, collect_bare, bare,
		                          err) < 0)
			goto out;
	for (i = 0; i < bare->n; i++)
		if (!field_allowed(is->allow_missing, bare->name[i]))
			gaps[n++].field = bare->name[i];
	if (!n) {
		ret = 0;
		goto out;
	}
	if (audience_field_gaps(db, a, gaps, n, &total, err) < 0)
		goto out;
	audience_phrase(is, whom, sizeof whom);
	for (i = 0; i < n; i++) {
		const char *f = gaps[i].field;
		int attr = f[0] == 'a';
		char what[AUDIENCE_KEY_MAX + 8];

		if (attr)
			snprintf(what, sizeof what, "'%s'", f + 5);
		else
			snprintf(what, sizeof what, "a name");

		if (!total || !gaps[i].missing) {
			if (!attr && warn && !refuse) {
				/* the web copy is for nobody in particular; said
				 * once, at issue new */
				snprintf(msg, sizeof msg, "{{%s}} has no fallback: the web copy has no "
				         "reader's name and shows nothing there; write {{%s|there}} to "
				         "choose what it says", f, f);
				warn(warn_ctx, msg);
			}
			continue;
		}
		hint[0] = '\0';
		if (gaps[i].suggest[0])
			snprintf(hint, sizeof hint, " (did you mean {{attr.%s}}? %lld %s it)",
			         gaps[i].suggest, gaps[i].suggest_have,
			         gaps[i].suggest_have == 1 ? "has" : "have");
		if (gaps[i].missing < total) {
			if (!warn)
				continue;
			snprintf(msg, sizeof msg, "{{%s}} has no fallback: %lld of %lld recipients of "
			         "%s have no %s and will see nothing there; write "
			         "{{%s|...}} to choose what they see", f, gaps[i].missing, total,
			         whom, attr ? what : "name", f);
			warn(warn_ctx, msg);
			continue;
		}
		snprintf(msg, sizeof msg, "{{%s}} has no fallback and none of the %lld recipients "
		         "of %s has %s%s; give it one ({{%s|...}}) or add "
		         "'allow_missing: [%s]' to the front matter and run 'herald issue new' "
		         "again", f, total, whom, what, hint, f, attr ? f + 5 : f);
		if (refuse) {
			char where[32];

			snprintf(where, sizeof where, "issue %lld", is->id);
			herr_set(err, EX_DATAERR, where, "%s", msg);
			goto out;
		}
		if (warn) {
			snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
			         "; herald will not send this issue until then");
			warn(warn_ctx, msg);
		}
	}
	ret = 0;
out:
	subjecttest_clear(&test);
	free(bare);
	return ret;
}

/* Compile to check merge fields, then throw the compiled form away: what is
 * stored is text; sending compiles it again once per send. */
static int
validate_fields(const char *text, size_t len, const char *where, unsigned first_line,
                struct herr *err)
{
	struct tmpl *t = NULL;

	if (tmpl_compile(text, len, where, first_line, &t, err) < 0)
		return -1;
	tmpl_free(t);
	return 0;
}

/* A compact JSON array of strings (malloc'd), or NULL when out of memory. */
static char *
json_strings(char *const *v, size_t n)
{
	json_t *a = json_array();
	char *s;
	size_t i;

	if (!a)
		return NULL;
	for (i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/* The lists the issue goes to: --list (repeated) or the front matter's,
 * each found, none twice.  *first gets the first (issues.list_id). */
static int
resolve_lists(sqlite3 *db, const struct issue_source *src, const struct issue_overrides *ov,
              struct list *first, long long ids[AUDIENCE_LISTS_MAX], size_t *n,
              struct herr *err)
{
	const char *const *names = (const char *const *)src->lists;
	char where[HERR_WHERE_MAX];
	struct list l;
	size_t i, j;

	*n = src->n_lists;
	snprintf(where, sizeof where, "%s:%u", src->path, src->lists_line);
	if (ov && ov->n_lists) {
		names = ov->lists;
		*n = ov->n_lists;
		snprintf(where, sizeof where, "--list");
	}
	if (!*n)
		return herr_set(err, EX_USAGE, src->path,
		                "no list: give 'list:' or 'lists:' in the front matter or --list NAME");
	if (*n > AUDIENCE_LISTS_MAX)
		return herr_set(err, EX_USAGE, where, "more than %d lists", AUDIENCE_LISTS_MAX);
	for (i = 0; i < *n; i++) {
		if (list_get(db, names[i], &l, err) < 0) {
			if (!err->where[0])
				snprintf(err->where, sizeof err->where, "%s", where);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (ids[j] == l.id)
				return herr_set(err, EX_USAGE, where, "list '%s' is given twice", l.name);
		ids[i] = l.id;
		if (!i)
			*first = l;
	}
	return 0;
}

/* segment: or where: compiles now, or the issue is not made; the compiled
 * form is thrown away, as the send compiles it again when it starts. */
static int
check_filter(sqlite3 *db, const struct issue_source *src, struct herr *err)
{
	struct segment *seg = NULL;
	char where[HERR_WHERE_MAX];
	int rc = 0;

	if (src->segment) {
		rc = segment_compile_saved(db, src->segment, db_now(), &seg, err);
		if (rc < 0 && !err->where[0])
			snprintf(err->where, sizeof err->where, "%s:%u", src->path, src->segment_line);
	} else if (src->where && src->where_col) {
		rc = segment_compile_at(db, src->where, src->path, (int)src->where_line,
		                        src->where_col, db_now(), &seg, err);
	} else if (src->where) {
		/* folded or escaped: the column is the expression's own */
		snprintf(where, sizeof where, "%s:%u: where", src->path, src->where_line);
		rc = segment_compile(db, src->where, where, db_now(), &seg, err);
	}
	segment_free(seg);
	return rc;
}

/* subject_variants: 2 to SUBJECTTEST_VARIANTS_MAX different, non-empty
 * subjects whose merge fields compile (the header checks were made as
 * they were read); test_share and test_wait only with them. */
static int
check_variants(const struct issue_source *src, struct herr *err)
{
	char where[HERR_WHERE_MAX];
	size_t i, j;

	snprintf(where, sizeof where, "%s:%u", src->path, src->variants_line);
	if (!src->n_variants) {
		if (src->test_share >= 0 || src->test_wait >= 0)
			return herr_set(err, EX_DATAERR, src->path,
			                "front matter: test_share and test_wait belong to a subject "
			                "test: give 'subject_variants: [\"...\", \"...\"]' too");
		return 0;
	}
	if (src->n_variants < 2)
		return herr_set(err, EX_DATAERR, where,
		                "front matter: subject_variants wants 2 to %d subjects to test, "
		                "not one (a single subject is 'subject:')",
		                SUBJECTTEST_VARIANTS_MAX);
	for (i = 0; i < src->n_variants; i++) {
		if (!src->variants[i][0])
			return herr_set(err, EX_DATAERR, where,
			                "front matter: subject variant %zu is empty", i + 1);
		for (j = 0; j < i; j++)
			if (!strcmp(src->variants[i], src->variants[j]))
				return herr_set(err, EX_DATAERR, where,
				                "front matter: subject variants %zu and %zu are the "
				                "same; a test needs different subjects", j + 1, i + 1);
		if (validate_fields(src->variants[i], strlen(src->variants[i]), where, 0, err) < 0)
			return -1;
	}
	return 0;
}

int
issue_create_for_list(sqlite3 *db, const struct config *cfg, const char *path,
                      const char *list_name,
                      int (*check)(const struct issue_source *src, const char *list_name,
                                   struct herr *err),
                      void (*warn)(void *ctx, const char *msg), void *warn_ctx, long long *id,
                      struct herr *err)
{
	struct issue_source src;
	struct issue_overrides ov;
	const char *lists[1] = { list_name };
	int rc;

	*id = 0;
	memset(&src, 0, sizeof src);
	if (issue_source_read(path, &src, err) < 0 || check(&src, list_name, err) < 0) {
		issue_source_free(&src);
		return -1;
	}
	memset(&ov, 0, sizeof ov);
	ov.lists = lists;
	ov.n_lists = 1;
	rc = issue_create(db, cfg, &src, &ov, id, warn, warn_ctx, err);
	issue_source_free(&src);
	return rc;
}

int
issue_create(sqlite3 *db, const struct config *cfg, const struct issue_source *src,
             const struct issue_overrides *ov, long long *id_out,
             void (*warn)(void *ctx, const char *msg), void *warn_ctx, struct herr *err)
{
	const char *subject = ov && ov->subject ? ov->subject : src->subject;
	const char *html_where, *text_where;
	char from_name[256], reply_name[256], reply_to[600] = "", *html_tpl = NULL,
	     *text_tpl = NULL, *links = NULL, *allow = NULL;
	size_t html_tpl_len, text_tpl_len;
	struct address from, reply;
	struct render_doc doc = { 0 };
	struct render_opts ropts = { src->allow_html, src->hard_breaks };
	struct render_page_vars pv;
	struct buf html = BUF_INIT(16u << 20), text = BUF_INIT(16u << 20);
	struct list l;
	long long list_ids[AUDIENCE_LISTS_MAX];
	size_t n_lists, i;
	sqlite3_stmt *st = NULL;
	int rc, ret = -1, in_tx = 0;

	if (resolve_lists(db, src, ov, &l, list_ids, &n_lists, err) < 0 ||
	    check_filter(db, src, err) < 0 || check_variants(src, err) < 0)
		return -1;
	/* a subject test needs no subject: the first variant names the
	 * issue in listings and the archive */
	if ((!subject || !*subject) && src->n_variants)
		subject = src->variants[0];
	if (!subject || !*subject)
		return herr_set(err, EX_DATAERR, src->path,
		                "no subject: give 'subject:' in the front matter or --subject TEXT");
	if (ov && ov->subject && subscriber_check_text("subject", ov->subject, 998, err) < 0)
		return -1;
	if (src->from) {
		if (address_parse_mailbox(src->from, from_name, sizeof from_name, &from, err) < 0)
			return herr_wrap(err, "%s: front matter 'from'", src->path);
	} else {
		snprintf(from_name, sizeof from_name, "%s", cfg->from_name);
		from = cfg->from;
	}
	if (src->reply_to) {
		if (address_parse_mailbox(src->reply_to, reply_name, sizeof reply_name, &reply,
		                          err) < 0)
			return herr_wrap(err, "%s: front matter 'reply_to'", src->path);
		snprintf(reply_to, sizeof reply_to, "%s", src->reply_to);
	} else if (cfg->sender_reply_to)
		snprintf(reply_to, sizeof reply_to, "%s", cfg->sender_reply_to);

	/* Merge fields are checked in the source first, so an unknown one is
	 * reported at its own line and column in FILE.md. */
	if (validate_fields(subject, strlen(subject), src->path, 0, err) < 0 ||
	    (src->preheader &&
	     validate_fields(src->preheader, strlen(src->preheader), src->path, 0, err) < 0) ||
	    validate_fields(src->text + src->body_off, src->len - src->body_off, src->path,
	                    src->body_line, err) < 0)
		return -1;
	if (render_markdown(src->text + src->body_off, src->len - src->body_off, src->path,
	                    src->body_line, &ropts, &doc, err) < 0)
		return -1;
	if (!src->allow_html && warn &&
	    (strstr(doc.html, "<!-- raw HTML omitted -->")))
		warn(warn_ctx, "raw HTML in the issue was left out; set 'allow_html: true' "
		     "in the front matter to keep it");
	if (warn)
		check_content(&doc, warn, warn_ctx);

	if (issue_load_template(cfg, 1, &html_tpl, &html_tpl_len, &html_where, err) < 0 ||
	    issue_load_template(cfg, 0, &text_tpl, &text_tpl_len, &text_where, err) < 0)
		goto out;
	memset(&pv, 0, sizeof pv);
	pv.subject = subject;
	pv.preheader = src->preheader ? src->preheader : "";
	pv.list_name = l.name;
	pv.list_title = l.title[0] ? l.title : l.name;
	pv.sender_name = from_name[0] ? from_name : from.addr;
	pv.postal_address = cfg->postal_address ? cfg->postal_address : "";
	pv.lang = cfg->lang;
	if (render_page(html_tpl, html_tpl_len, html_where, 1, &pv, doc.html, &html, err) < 0 ||
	    render_page(text_tpl, text_tpl_len, text_where, 0, &pv, doc.text, &text, err) < 0)
		goto out;
	if (validate_fields(html.data, html.len, html_where, 1, err) < 0 ||
	    validate_fields(text.data, text.len, text_where, 1, err) < 0)
		goto out;
	if (!(links = json_strings(doc.links, doc.n_links)) ||
	    !(allow = json_strings(src->allow_missing, src->n_allow_missing))) {
		herr_set(err, EX_OSERR, NULL, "out of memory");
		goto out;
	}

	/* the issue and its lists together (the trigger of sql/009 adds the
	 * first, list_id, at position 0) */
	if (db_begin(db, err) < 0)
		goto out;
	in_tx = 1;
	if (db_prepare(db, &st,
	               "INSERT INTO issues (list_id, subject, preheader, from_name, from_addr, "
	               "reply_to, source_path, markdown, html, text, links, allow_html, status, "
	               "created_at, tracking, allow_missing, segment, audience_where) VALUES (?1, "
	               "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'draft', ?13, ?14, ?15, ?16, "
	               "?17)", err) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, l.id);
	sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, src->preheader ? src->preheader : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, from_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, from.addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, reply_to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, src->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, src->text + src->body_off, (int)(src->len - src->body_off),
	                  SQLITE_STATIC);
	sqlite3_bind_text(st, 9, html.data, (int)html.len, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, text.data, (int)text.len, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, links, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 12, src->allow_html);
	sqlite3_bind_int64(st, 13, db_now());
	sqlite3_bind_int(st, 14, src->tracking >= 0 ? src->tracking : cfg->tracking);
	sqlite3_bind_text(st, 15, allow, -1, SQLITE_STATIC);
	if (src->segment)
		sqlite3_bind_text(st, 16, src->segment, -1, SQLITE_STATIC);
	if (src->where)
		sqlite3_bind_text(st, 17, src->where, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "insert issue");
		goto out;
	}
	*id_out = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	st = NULL;
	if (n_lists > 1 &&
	    db_prepare(db, &st, "INSERT INTO issue_lists (issue_id, list_id, position) "
	               "VALUES (?1, ?2, ?3)", err) < 0)
		goto out;
	for (i = 1; i < n_lists; i++) {
		sqlite3_bind_int64(st, 1, *id_out);
		sqlite3_bind_int64(st, 2, list_ids[i]);
		sqlite3_bind_int64(st, 3, (long long)i);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			db_error(db, err, "insert the issue's lists");
			goto out;
		}
	}
	if (src->n_variants &&
	    subjecttest_create(db, *id_out, (const char *const *)src->variants, src->n_variants,
	                       src->test_share >= 0 ? src->test_share : SUBJECTTEST_SHARE_DEFAULT,
	                       src->test_wait >= 0 ? src->test_wait : SUBJECTTEST_WAIT_DEFAULT,
	                       err) < 0)
		goto out;
	in_tx = 0;
	if (db_commit(db, err) < 0)
		goto out;
	/* Said now, while the file is open in the author's editor; refused
	 * only at schedule and send, since subscribers may still be imported. */
	if (warn) {
		struct issue is;

		if (issue_get(db, *id_out, &is, err) < 0)
			goto out;
		rc = issue_check_fields(db, &is, 0, warn, warn_ctx, err);
		issue_clear(&is);
		if (rc < 0)
			goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	if (in_tx)
		db_rollback(db);
	free(allow);
	free(links);
	free(html_tpl);
	free(text_tpl);
	buf_free(&html);
	buf_free(&text);
	render_doc_free(&doc);
	return ret;
}

#define ISSUE_COLUMNS \
	"SELECT i.id, i.list_id, l.name, i.subject, i.preheader, i.from_name, i.from_addr, " \
	"i.reply_to, i.source_path, i.markdown, i.html, i.text, i.links, i.allow_html, " \
	"i.status, ifnull(i.send_at, 0), i.created_at, ifnull(i.started_at, 0), " \
	"ifnull(i.finished_at, 0), i.tracking, i.allow_missing, i.segment, i.audience_where, " \
	"(SELECT group_concat(list_id, ' ') FROM (SELECT il.list_id FROM issue_lists il " \
	" WHERE il.issue_id = i.id ORDER BY il.position)), " \
	"(SELECT group_concat(name, ', ') FROM (SELECT ll.name FROM issue_lists il " \
	" JOIN lists ll ON ll.id = il.list_id WHERE il.issue_id = i.id ORDER BY il.position)) " \
	"FROM issues i JOIN lists l ON l.id = i.list_id "

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return strdup(s ? s : "");
}

static int
row_to_issue(sqlite3_stmt *st, struct issue *is, int full)
{
	memset(is, 0, sizeof *is);
	is->id = sqlite3_column_int64(st, 0);
	is->list_id = sqlite3_column_int64(st, 1);
	snprintf(is->list_name, sizeof is->list_name, "%s",
	         (const char *)sqlite3_column_text(st, 2));
	is->subject = col_dup(st, 3);
	is->preheader = col_dup(st, 4);
	is->from_name = col_dup(st, 5);
	is->from_addr = col_dup(st, 6);
	is->reply_to = col_dup(st, 7);
	is->source_path = col_dup(st, 8);
	if (full) {
		is->markdown = col_dup(st, 9);
		is->html = col_dup(st, 10);
		is->text = col_dup(st, 11);
		is->links = col_dup(st, 12);
	}
	is->allow_html = sqlite3_column_int(st, 13);
	snprintf(is->status, sizeof is->status, "%s", (const char *)sqlite3_column_text(st, 14));
	is->send_at = sqlite3_column_int64(st, 15);
	is->created_at = sqlite3_column_int64(st, 16);
	is->started_at = sqlite3_column_int64(st, 17);
	is->finished_at = sqlite3_column_int64(st, 18);
	is->tracking = sqlite3_column_int(st, 19);
	is->allow_missing = col_dup(st, 20);
	is->list_names = col_dup(st, 24);
	if (sqlite3_column_type(st, 21) != SQLITE_NULL && !(is->segment = col_dup(st, 21)))
		return -1;
	if (sqlite3_column_type(st, 22) != SQLITE_NULL && !(is->where = col_dup(st, 22)))
		return -1;
	{
		const char *p = (const char *)sqlite3_column_text(st, 23);
		char *e;

		/* "3 5 9": issue_lists in position order; position 0 is list_id */
		while (p && *p && is->n_lists < AUDIENCE_LISTS_MAX) {
			is->list_ids[is->n_lists++] = strtoll(p, &e, 10);
			p = *e ? e + 1 : e;
		}
	}
	if (!is->subject || !is->preheader || !is->from_name || !is->from_addr ||
	    !is->reply_to || !is->source_path || !is->allow_missing || !is->list_names ||
	    (full && (!is->markdown || !is->html || !is->text || !is->links)))
		return -1;
	return 0;
}

int
issue_get(sqlite3 *db, long long id, struct issue *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st, ISSUE_COLUMNS "WHERE i.id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && row_to_issue(st, out, 1) < 0) {
		sqlite3_finalize(st);
		issue_clear(out);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no issue with id %lld", id);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read issue");
	return 0;
}

int
issue_each(sqlite3 *db, int (*fn)(void *ctx, const struct issue *is), void *ctx,
           struct herr *err)
{
	sqlite3_stmt *st;
	struct issue is;
	int rc, ret = 0;

	if (db_prepare(db, &st, ISSUE_COLUMNS "ORDER BY i.id", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_to_issue(st, &is, 0) < 0) {
			issue_clear(&is);
			ret = herr_set(err, EX_OSERR, NULL, "out of memory");
			break;
		}
		rc = fn(ctx, &is);
		issue_clear(&is);
		if (rc < 0) {
			ret = -1;
			break;
		}
	}
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		return db_error(db, err, "list issues");
	return ret;
}

/* Move an issue between states with one guarded UPDATE (the WHERE names
 * the states it may leave) so two processes cannot both win a transition. */
static int
transition(sqlite3 *db, long long id, const char *sql, long long at, const char *what,
           struct herr *err)
{
	struct issue is;
	long long changes;

	if (db_run2(db, sql, id, at, &changes, what, err) < 0)
		return -1;
	if (changes == 1)
		return 0;
	if (issue_get(db, id, &is, err) < 0)
		return -1;
	herr_set(err, EX_DATAERR, NULL, "cannot %s issue %lld: it is %s", what, id, is.status);
	issue_clear(&is);
	return -1;
}

/* A welcome issue (welcome.h) has no snapshot to take: its rows come one
 * by one from welcome_enqueue().  Scheduling or starting it would mail the
 * whole list at once, so both are refused. */
static int
refuse_welcome(sqlite3 *db, long long id, const char *what, struct herr *err)
{
	sqlite3_stmt *st;
	int rc, welcome = 0;

	if (db_prepare(db, &st, "SELECT kind = 'welcome' FROM issues WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		welcome = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read issue kind");
	if (welcome)
		return herr_set(err, EX_DATAERR, NULL,
		                "cannot %s issue %lld: it is sent to each subscriber by itself (a "
		                "list's welcome mail or a sequence step)", what, id);
	return 0;
}

int
issue_schedule(sqlite3 *db, long long id, long long at,
               void (*warn)(void *ctx, const char *msg), void *warn_ctx, struct herr *err)
{
	struct issue is;
	int rc = 0;

	if (refuse_welcome(db, id, "schedule", err) < 0)
		return -1;
	if (issue_get(db, id, &is, err) < 0)
		return -1;
	/* before its send has started, the audience is still to be taken:
	 * check it has what the merge fields need */
	if (!is.started_at)
		rc = issue_check_fields(db, &is, 1, warn, warn_ctx, err);
	issue_clear(&is);
	if (rc < 0)
		return -1;
	return transition(db, id,
	                  "UPDATE issues SET status = 'scheduled', send_at = ?2 WHERE id = ?1 "
	                  "AND status IN ('draft', 'scheduled', 'paused', 'cancelled')",
	                  at, "schedule", err);
}

int
issue_cancel(sqlite3 *db, long long id, struct herr *err)
{
	return transition(db, id,
	                  "UPDATE issues SET status = 'cancelled', finished_at = ?2 WHERE id = ?1 "
	                  "AND status IN ('draft', 'scheduled', 'sending', 'paused')",
	                  db_now(), "cancel", err);
}

int
issue_pause(sqlite3 *db, long long id, struct herr *err)
{
	return transition(db, id,
	                  "UPDATE issues SET status = 'paused' WHERE id = ?1 AND ?2 IS NOT NULL "
	                  "AND status IN ('sending', 'scheduled')", db_now(), "pause", err);
}

int
issue_resume(sqlite3 *db, long long id, char *now_status, struct herr *err)
{
	struct issue is;

	if (transition(db, id,
	               "UPDATE issues SET status = CASE WHEN started_at IS NOT NULL THEN "
	               "'sending' ELSE 'scheduled' END WHERE id = ?1 AND ?2 IS NOT NULL "
	               "AND status = 'paused'", db_now(), "resume", err) < 0)
		return -1;
	if (issue_get(db, id, &is, err) < 0)
		return -1;
	snprintf(now_status, 16, "%s", is.status);
	issue_clear(&is);
	return 0;
}

int
issue_retry_failed(sqlite3 *db, long long id, long long *n, struct herr *err)
{
	struct issue is;
	int rc;

	if (issue_get(db, id, &is, err) < 0)
		return -1;
	rc = !strcmp(is.status, "cancelled") || !strcmp(is.status, "draft");
	if (rc)
		herr_set(err, EX_DATAERR, NULL, "issue %lld is %s: nothing to retry", id, is.status);
	issue_clear(&is);
	if (rc)
		return -1;
	if (db_begin(db, err) < 0)
		return -1;
	if (ledger_retry_failed(db, id, n, err) < 0)
		goto fail;
	/* (3): sent -> sending, only with rows put back */
	if (*n && db_run2(db, "UPDATE issues SET status = 'sending', finished_at = NULL "
	                  "WHERE id = ?1 AND status = 'sent'", id, 0, NULL, "reopen issue",
	                  err) < 0)
		goto fail;
	return db_commit(db, err);
fail:
	db_rollback(db);
	return -1;
}

int
issue_start_send(sqlite3 *db, const struct issue *start,
                 void (*warn)(void *ctx, const char *msg), void *warn_ctx, long long *n,
                 struct herr *err)
{
	long long id = start->id, changes, tested;
	struct audience a;
	struct issue is;
	int started;

	if (refuse_welcome(db, id, "start sending", err) < 0)
		return -1;
	/* The audience as of now, taken once: (4) checks the one the
	 * snapshot takes.  The check comes before the write lock is taken: it
	 * reads the whole audience.  An issue whose send had started has its
	 * snapshot and needs neither (below). */
	memset(&a, 0, sizeof a);
	if (!start->started_at &&
	    (issue_audience(db, start, db_now(), &a, err) < 0 ||
	     check_fields(db, start, &a, 1, warn, warn_ctx, err) < 0)) {
		audience_clear(&a);
		return -1;
	}
	if (db_begin(db, err) < 0) {
		audience_clear(&a);
		return -1;
	}
	/* an issue rescheduled after its send had started (paused or
	 * cancelled, then `issue schedule`) has its snapshot: it goes on with
	 * it, never adding who subscribed since (ledger.h (3)) */
	if (issue_get(db, id, &is, err) < 0)
		goto fail;
	started = is.started_at != 0;
	issue_clear(&is);
	if (db_run2(db, "UPDATE issues SET status = 'sending', started_at = coalesce(started_at, ?2) "
	           "WHERE id = ?1 AND status IN ('draft', 'scheduled')", id, db_now(), &changes,
	           "start send", err) < 0)
		goto fail;
	if (changes != 1) {
		/* (5): only a draft or a scheduled issue starts */
		if (issue_get(db, id, &is, err) == 0) {
			herr_set(err, EX_TEMPFAIL, NULL, "issue %lld changed state meanwhile: it is %s",
			         id, is.status);
			issue_clear(&is);
		}
		goto fail;
	}
	/* (1): the snapshot in the same transaction, and a subject test's
	 * split of it (subjecttest.h (1)) */
	*n = 0;
	if (!started && (ledger_snapshot(db, id, &a, n, err) < 0 ||
	                 subjecttest_assign(db, id, &tested, err) < 0))
		goto fail;
	/* what the audience was, and whom the sunset left out, for stats */
	if (!started && audience_record(db, id, &a, start->segment, start->where, err) < 0)
		goto fail;
	audience_clear(&a);
	return db_commit(db, err);
fail:
	audience_clear(&a);
	db_rollback(db);
	return -1;
}

int
issue_finish(sqlite3 *db, long long id, int *finished, struct herr *err)
{
	long long changes = 0;
	int rc;

	/* (2) */
	rc = db_run2(db, "UPDATE issues SET status = 'sent', finished_at = ?2 "
	              "WHERE id = ?1 AND status = 'sending' AND NOT EXISTS (SELECT 1 FROM "
	              "deliveries WHERE issue_id = ?1 AND status IN ('pending', 'sending', "
	              "'deferred'))", id, db_now(), &changes, "finish send", err);
	*finished = changes == 1;
	return rc;
}

int
issue_next_due(sqlite3 *db, long long after_id, long long now, long long *id,
               struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*id = 0;
	/* a subject test's holdout (variant 0) is no work before its winner
	 * is recorded (ledger.h (7)), nor is it "nothing left" to mark sent */
	if (db_prepare(db, &st,
	               "SELECT i.id FROM issues i WHERE i.id > ?1 AND ("
	               " (i.status = 'scheduled' AND i.send_at <= ?2) OR"
	               " (i.status = 'sending' AND ("
	               "   EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = i.id AND"
	               "           d.status IN ('pending', 'sending') AND"
	               "           (d.variant IS NOT 0 OR i.test_winner IS NOT NULL))"
	               "   OR EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = i.id AND"
	               "           d.status = 'deferred' AND d.next_attempt_at <= ?2)"
	               "   OR NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.issue_id = i.id AND"
	               "           d.status IN ('deferred', 'pending')))))"
	               " ORDER BY i.id LIMIT 1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "find due issues");
	return 0;
}

int
issue_remove(sqlite3 *db, long long id, int force, struct herr *err)
{
	struct issue is;
	sqlite3_stmt *st;
	int rc;

	if (issue_get(db, id, &is, err) < 0)
		return -1;
	if (!force && (!strcmp(is.status, "sending") || !strcmp(is.status, "sent") ||
	               !strcmp(is.status, "paused"))) {
		herr_set(err, EX_DATAERR, NULL,
		         "issue %lld is %s; its delivery history would be lost (use --force)",
		         id, is.status);
		issue_clear(&is);
		return -1;
	}
	issue_clear(&is);
	if (db_prepare(db, &st, "DELETE FROM issues WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "remove issue");
	return 0;
}

int
issue_parse_time(const char *s, long long *out, struct herr *err)
{
	struct tm tm;
	const char *p;
	int off_sign = 0, off_h = 0, off_m = 0, has_off = 0, n = 0;
	time_t t;

	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		goto bad;
	p = s + n;
	if (*p == 'T' || *p == ' ') {
		n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) != 2 || n != 5)
			goto bad;
		p += 1 + n;
		if (*p == ':') {
			n = 0;
			if (sscanf(p + 1, "%2d%n", &tm.tm_sec, &n) != 1 || n != 2)
				goto bad;
			p += 1 + n;
		}
	}
	if (*p == 'Z') {
		has_off = 1;
		p++;
	} else if (*p == '+' || *p == '-') {
		off_sign = *p == '-' ? -1 : 1;
		n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &off_h, &off_m, &n) != 2 || n != 5)
			goto bad;
		has_off = 1;
		p += 1 + n;
	}
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || off_h > 23 || off_m > 59)
		goto bad;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	{
		/* mktime() and timegm() quietly turn 30 February into 2 March;
		 * a date that does not survive a round trip does not exist. */
		struct tm check = tm;
		time_t probe = timegm(&check);

		if (probe == (time_t)-1 || check.tm_mday != tm.tm_mday ||
		    check.tm_mon != tm.tm_mon || check.tm_year != tm.tm_year)
			goto bad;
	}
	if (has_off) {
		t = timegm(&tm);
		t -= off_sign * (off_h * 3600 + off_m * 60);
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	if (t == (time_t)-1)
		goto bad;
	*out = (long long)t;
	return 0;
bad:
	return herr_set(err, EX_USAGE, NULL,
	                "invalid time '%s': use ISO 8601, e.g. 2026-12-01T09:00 or "
	                "2026-12-01T09:00:00+01:00", s);
}

int
issue_welcome_start(sqlite3 *db, long long id, struct herr *err)
{
	/* (6): a draft just made from the welcome file, never sent */
	return transition(db, id,
	                  "UPDATE issues SET kind = 'welcome', status = 'sending', started_at = ?2 "
	                  "WHERE id = ?1 AND status = 'draft' AND kind = 'campaign' AND NOT EXISTS "
	                  "(SELECT 1 FROM deliveries WHERE issue_id = ?1)",
	                  db_now(), "make a welcome mail of", err);
}

int
issue_welcome_reopen(sqlite3 *db, long long id, struct herr *err)
{
	/* (6): only a sent welcome moves; sending, paused and cancelled stay */
	return db_run2(db, "UPDATE issues SET status = 'sending', finished_at = NULL "
	               "WHERE id = ?1 AND kind = 'welcome' AND status = 'sent'",
	               id, 0, NULL, "reopen welcome mail", err);
}
