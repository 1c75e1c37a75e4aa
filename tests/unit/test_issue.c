/*
 * test_issue.c - issues (src/issue.c): reading FILE.md, creating an issue
 * from it, checking its merge fields against the audience, and the issue
 * state machine, on a fresh migrated database and temporary directory per
 * test.
 *
 * Covers, from issue.h:
 *   - issue_source_read(): every front matter key (allow_missing as a list
 *     and as a scalar; lists as a flow list, a block list and a scalar,
 *     segment and where with the file's line and column of the value), the errors naming file:line (unknown key with "did
 *     you mean", repeated key, line break or control character in a value
 *     (C1 controls too), a value over 998 bytes, a list or
 *     mapping for a scalar key, bad booleans and line_breaks, a YAML syntax
 *     error, unclosed front matter), NUL bytes, non-regular, missing and
 *     too large files, a UTF-8 BOM, CRLF files and body_line;
 *   - issue_create(): the stored subject, sender, reply-to, HTML and text
 *     parts (merge fields kept, line_breaks, allow_html), links and
 *     allow_missing JSON, tracking from front matter or config, overrides,
 *     several lists in order with a where (counted, snapshotted once per
 *     person), and its refusals and warnings;
 *   - issue_check_fields() and invariant (4): fields some recipients lack
 *     are warnings with counts, a field none has is refused (at schedule
 *     and at the start of a send) unless it has a fallback or is in
 *     allow_missing;
 *   - every edge of the state table with the function named there, and the
 *     refused ones: (1) sending only together with the snapshot, in one
 *     transaction (deliveries rows exist exactly when the send started);
 *     (2) sent only when no delivery is pending, sending or deferred;
 *     (3) sent -> sending only through issue_retry_failed() with failed
 *     rows; (5) sent, cancelled, paused and sending issues never start;
 *     and a restarted send never takes a second snapshot;
 *   - issue_remove(), issue_parse_time(), issue_next_due().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tempdb.h"

#include "herald/config.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/subscriber.h"

#define MAX_FILES 16

struct fixture {
	char      dir[64];
	char      files[MAX_FILES][128];
	int       n_files;
	char      path[TEMPDB_PATH_MAX];
	sqlite3  *db;
	struct config cfg;
	int       have_cfg;
	long long list_id;
	long long ada, bob, cat, dan;
};

/* What warn callbacks heard. */
struct warned {
	int  n;
	char all[8192];
};

static void
warn_cb(void *ctx, const char *msg)
{
	struct warned *w = ctx;
	size_t len = strlen(w->all);

	w->n++;
	snprintf(w->all + len, sizeof w->all - len, "%s\n", msg);
}

static const char *
write_file(struct fixture *f, const char *name, const char *text, size_t len)
{
	FILE *fp;
	char *p, full[sizeof f->files[0]];

	assert_true(f->n_files < MAX_FILES);
	p = f->files[f->n_files++];
	snprintf(full, sizeof full, "%s/%s", f->dir, name);
	memcpy(p, full, sizeof full);
	fp = fopen(p, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	fclose(fp);
	return p;
}

#define WRITE(f, name, lit) write_file((f), (name), (lit), sizeof(lit) - 1)

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static long long
count(struct fixture *f, const char *sql)
{
	sqlite3_stmt *st;
	long long n = -1;

	if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(f->db));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static long long
add_sub(struct fixture *f, const char *addr, const char *name, const char *key,
        const char *value, int unconfirmed)
{
	struct tmpl_attr attr = { key, value };
	struct signup_req r;
	struct signup_result res;
	struct address a;
	struct herr err;
	struct list l;

	assert_int_equal(address_parse(addr, &a, &err), 0);
	assert_int_equal(list_get_by_id(f->db, f->list_id, &l, &err), 0);
	memset(&r, 0, sizeof r);
	r.addr = &a;
	r.name = name;
	r.attrs = key ? &attr : NULL;
	r.n_attrs = key ? 1 : 0;
	r.unconfirmed = unconfirmed;
	r.source = SIGNUP_ADMIN;
	if (subscriber_signup(f->db, &l, &r, &res, &err) < 0)
		fail_msg("%s: %s", addr, err.msg);
	return res.subscriber_id;
}

#define CONF \
	"[database]\npath = herald.db\n" \
	"[smtp]\nurl = smtp://127.0.0.1:2525\nstarttls = never\n" \
	"[sender]\nfrom = The News Team <news@example.org>\n" \
	"reply_to = Desk <desk@example.org>\npostal_address = 1 Example Street\n" \
	"[web]\nbase_url = https://news.example.org\ntracking = yes\n"

/*
 * A config, and list 'news' (title "The News") whose audience is ada
 * (organization Lambeth), bob (organization Leeds) and cat (no name, no
 * attributes); dan, unconfirmed, has a region and is not in it.  List
 * 'other' is empty.
 */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct herr err;
	const char *conf;
	long long other;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/herald-issue-XXXXXX");
	if (!mkdtemp(f->dir) || tempdb_open(f->path, "issue", &f->db) < 0)
		return -1;
	*state = f;
	conf = WRITE(f, "herald.conf", CONF);
	f->have_cfg = 1;
	if (config_load(conf, &f->cfg, &err) < 0)
		fail_msg("config: %s", err.msg);
	if (list_create(f->db, "news", "The News", 0, 0, &f->list_id, &err) < 0 ||
	    list_create(f->db, "other", "", 0, 0, &other, &err) < 0)
		return -1;
	f->ada = add_sub(f, "ada@example.org", "Ada Lovelace", "organization", "Lambeth", 0);
	f->bob = add_sub(f, "bob@example.org", "Bob", "organization", "Leeds", 0);
	f->cat = add_sub(f, "cat@example.org", NULL, NULL, NULL, 0);
	f->dan = add_sub(f, "dan@example.org", "Dan", "region", "North", 1);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	if (f->have_cfg)
		config_free(&f->cfg);
	for (i = 0; i < f->n_files; i++)
		unlink(f->files[i]);
	rmdir(f->dir);
	tempdb_remove(f->path, f->db);
	free(f);
	return 0;
}

/* ---- issue_source_read ---------------------------------------------------- */

static void
test_issue_source_read_front_matter_keys(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	const char *p = WRITE(f, "full.md",
		"---\n"
		"subject: \"Issue no.16 for {{first_name|friend}}\"\n"
		"preheader: 47 local authorities\n"
		"from: \"The Editors <editors@example.org>\"\n"
		"reply_to: replies@example.org\n"
		"list: news\n"
		"allow_html: true\n"
		"tracking: no\n"
		"line_breaks: commonmark\n"
		"allow_missing: [organization, attr.region, first_name]\n"
		"---\n"
		"# Hello\n");

	herr_clear(&err);
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_string_equal(src.path, p);
	assert_string_equal(src.subject, "Issue no.16 for {{first_name|friend}}");
	assert_string_equal(src.preheader, "47 local authorities");
	assert_string_equal(src.from, "The Editors <editors@example.org>");
	assert_string_equal(src.reply_to, "replies@example.org");
	assert_int_equal(src.n_lists, 1);
	assert_string_equal(src.lists[0], "news");
	assert_int_equal(src.allow_html, 1);
	assert_int_equal(src.tracking, 0);
	assert_int_equal(src.hard_breaks, 0);
	assert_int_equal(src.n_allow_missing, 3);
	assert_string_equal(src.allow_missing[0], "attr.organization");
	assert_string_equal(src.allow_missing[1], "attr.region");
	assert_string_equal(src.allow_missing[2], "first_name");
	assert_int_equal(src.body_line, 12);
	assert_string_equal(src.text + src.body_off, "# Hello\n");
	assert_int_equal(src.len, strlen(src.text));
	issue_source_free(&src);
}

static void
test_issue_source_read_defaults_without_front_matter(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	const char *p = WRITE(f, "plain.md", "# Just a body\n\n--- not front matter\n");

	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_null(src.subject);
	assert_null(src.preheader);
	assert_null(src.from);
	assert_null(src.reply_to);
	assert_int_equal(src.n_lists, 0);
	assert_int_equal(src.allow_html, 0);
	assert_int_equal(src.tracking, -1);      /* the config decides */
	assert_int_equal(src.hard_breaks, 1);    /* line_breaks: keep */
	assert_int_equal(src.n_allow_missing, 0);
	assert_int_equal(src.body_off, 0);
	assert_int_equal(src.body_line, 1);
	issue_source_free(&src);
}

static void
test_issue_source_read_booleans_and_scalar_allow_missing(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	const char *p = WRITE(f, "scalar.md",
		"---\n"
		"allow_html: No\n"
		"tracking: TRUE\n"
		"line_breaks: keep\n"
		"allow_missing: organization, name ,first_name\n"
		"...\n"
		"Body\n");

	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.allow_html, 0);
	assert_int_equal(src.tracking, 1);
	assert_int_equal(src.hard_breaks, 1);
	assert_int_equal(src.n_allow_missing, 3);
	assert_string_equal(src.allow_missing[0], "attr.organization");
	assert_string_equal(src.allow_missing[1], "name");
	assert_string_equal(src.allow_missing[2], "first_name");
	assert_int_equal(src.body_line, 7);
	assert_string_equal(src.text + src.body_off, "Body\n");
	issue_source_free(&src);
}

/* Read `text`; expect EX_DATAERR at "FILE:line" with `needle` in the message. */
static void
expect_error_at(struct fixture *f, const char *name, const char *text, size_t len,
                int line, const char *needle)
{
	struct issue_source src;
	struct herr err;
	char want[300];
	const char *p = write_file(f, name, text, len);

	herr_clear(&err);
	assert_int_equal(issue_source_read(p, &src, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	if (line > 0) {
		snprintf(want, sizeof want, "%s:%d", p, line);
		assert_string_equal(err.where, want);
	} else
		assert_string_equal(err.where, p);
	if (!strstr(err.msg, needle))
		fail_msg("%s: '%s' not in '%s'", name, needle, err.msg);
	/* the message itself never carries a raw line break */
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\r'));
	issue_source_free(&src);
}

#define EXPECT_AT(f, name, lit, line, needle) \
	expect_error_at((f), (name), (lit), sizeof(lit) - 1, (line), (needle))

static void
test_issue_source_read_unknown_key_suggests(void **state)
{
	struct fixture *f = *state;

	EXPECT_AT(f, "typo.md", "---\nsubject: S\nsubjcet: T\n---\n", 3,
	          "unknown key 'subjcet'; did you mean 'subject'?");
	EXPECT_AT(f, "typo2.md", "---\nlist: news\n\nalow_html: true\n---\n", 4,
	          "did you mean 'allow_html'?");
	/* nothing near: the known keys, without a guess */
	EXPECT_AT(f, "far.md", "---\nxyzzyplugh: 1\n---\n", 2, "known: subject, preheader");
}

static void
test_issue_source_read_repeated_key(void **state)
{
	struct fixture *f = *state;

	EXPECT_AT(f, "twice.md", "---\nsubject: a\nlist: news\nsubject: b\n---\n", 4,
	          "'subject' is given twice");
	EXPECT_AT(f, "twice2.md", "---\nallow_missing: [a]\nallow_missing: [b]\n---\n", 3,
	          "'allow_missing' is given twice");
}

static void
test_issue_source_read_refuses_line_breaks_and_controls(void **state)
{
	struct fixture *f = *state;

	/* YAML escapes and block scalars are how a line break gets in */
	EXPECT_AT(f, "lf.md", "---\nlist: news\nsubject: \"a\\nBcc: x@example.org\"\n---\n", 3,
	          "'subject' contains a line break");
	EXPECT_AT(f, "cr.md", "---\nfrom: \"a\\rb <a@example.org>\"\n---\n", 2,
	          "'from' contains a line break");
	EXPECT_AT(f, "block.md", "---\nsubject: |\n  one\n  two\nlist: news\n---\n", 2,
	          "'subject' contains a line break");
	EXPECT_AT(f, "ctl.md", "---\nsubject: \"a\\x01b\"\n---\n", 2,
	          "'subject' contains a control character (0x01)");
	EXPECT_AT(f, "tab.md", "---\npreheader: \"a\\tb\"\n---\n", 2,
	          "'preheader' contains a control character (0x09)");
	EXPECT_AT(f, "del.md", "---\nreply_to: \"a\\x7fb@example.org\"\n---\n", 2,
	          "control character (0x7f)");
	EXPECT_AT(f, "item.md", "---\nallow_missing:\n  - ok\n  - \"a\\nb\"\n---\n", 4,
	          "'allow_missing' contains a line break");
	/* a header line's worth at most: 998 bytes, not 999 */
	{
		char text[1100];
		struct issue_source src;
		struct herr err;
		const char *p;
		int n;

		n = snprintf(text, sizeof text, "---\nlist: news\nsubject: %0998d\n---\n", 7);
		p = write_file(f, "998.md", text, (size_t)n);
		assert_int_equal(issue_source_read(p, &src, &err), 0);
		assert_int_equal(strlen(src.subject), 998);
		issue_source_free(&src);
		n = snprintf(text, sizeof text, "---\nlist: news\nsubject: %0999d\n---\n", 7);
		expect_error_at(f, "999.md", text, (size_t)n, 3, "'subject' is longer than 998 bytes");
	}
}

/*
 * C1 controls (U+0080..U+009F) are control characters too: the Subject
 * encoder (mime.h) refuses them, so the check at `issue new` must, as
 * subscriber_check_text() does for names and as issue_create() does for a
 * --subject override.  YAML's escapes are how they get in (libyaml refuses
 * them written raw).
 * (Once a bug: only C0 and DEL were refused, so "\x9b" or "\N" (U+0085
 * NEL) passed `issue new` and every recipient's message failed to build.)
 */
static void
test_issue_source_read_refuses_c1_controls(void **state)
{
	struct fixture *f = *state;

	EXPECT_AT(f, "c1.md", "---\nlist: news\nsubject: \"a\\x9bb\"\n---\n", 3,
	          "'subject' contains a control character");
	EXPECT_AT(f, "nel.md", "---\nsubject: \"a\\Nb\"\n---\n", 2, "'subject' contains");
	EXPECT_AT(f, "c1from.md", "---\nfrom: \"Eds\\u0085 <e@example.org>\"\n---\n", 2,
	          "'from' contains");
}

static void
test_issue_source_read_refuses_lists_mappings_and_bad_values(void **state)
{
	struct fixture *f = *state;

	EXPECT_AT(f, "seq.md", "---\nsubject: [a, b]\n---\n", 2,
	          "'subject' must be a single value, not a list");
	EXPECT_AT(f, "map.md", "---\nlist: news\nsubject:\n  a: b\n---\n", 4,
	          "'subject' must be a single value, not a mapping");
	EXPECT_AT(f, "bool.md", "---\nallow_html: maybe\n---\n", 2,
	          "allow_html must be true or false, not 'maybe'");
	EXPECT_AT(f, "breaks.md", "---\nline_breaks: wrap\n---\n", 2,
	          "line_breaks must be 'keep'");
	EXPECT_AT(f, "missing.md", "---\nallow_missing: \"org name\"\n---\n", 2,
	          "allow_missing wants field names");
	EXPECT_AT(f, "top.md", "---\n- subject\n---\n", 2, "front matter");
	/* a YAML syntax error is placed too */
	EXPECT_AT(f, "syntax.md", "---\nlist: news\nsubject: a: b\n---\nbody\n", 3,
	          "front matter: mapping values are not allowed");
}

static void
test_issue_source_read_unclosed_front_matter(void **state)
{
	struct fixture *f = *state;

	EXPECT_AT(f, "open.md", "---\nsubject: S\nlist: news\n\n# Body\n", 1,
	          "never closed with '---'");
	EXPECT_AT(f, "open2.md", "---", 1, "never closed");
}

static void
test_issue_source_read_refuses_nul_byte(void **state)
{
	struct fixture *f = *state;

	EXPECT_AT(f, "nul.md", "---\nsubject: S\n---\nbo\0dy\n", 0, "NUL byte");
}

static void
test_issue_source_read_refuses_non_regular_and_missing_files(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	char missing[128];

	herr_clear(&err);
	assert_int_equal(issue_source_read(f->dir, &src, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_string_equal(err.where, f->dir);
	assert_non_null(strstr(err.msg, "not a regular file"));
	issue_source_free(&src);
	herr_clear(&err);
	assert_int_equal(issue_source_read("/dev/null", &src, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_non_null(strstr(err.msg, "not a regular file"));
	issue_source_free(&src);
	snprintf(missing, sizeof missing, "%s/missing.md", f->dir);
	herr_clear(&err);
	assert_int_equal(issue_source_read(missing, &src, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_non_null(strstr(err.msg, "cannot open"));
	issue_source_free(&src);
}

static void
test_issue_source_read_refuses_too_large(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	const char *p = WRITE(f, "big.md", "");
	char *text;

	assert_int_equal(truncate(p, (off_t)ISSUE_FILE_MAX + 1), 0);
	herr_clear(&err);
	assert_int_equal(issue_source_read(p, &src, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "larger than"));
	assert_null(src.text);
	issue_source_free(&src);
	/* exactly the cap is read */
	text = malloc(ISSUE_FILE_MAX);
	assert_non_null(text);
	memset(text, 'a', ISSUE_FILE_MAX);
	text[ISSUE_FILE_MAX - 1] = '\n';
	p = write_file(f, "cap.md", text, ISSUE_FILE_MAX);
	free(text);
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.len, ISSUE_FILE_MAX);
	issue_source_free(&src);
}

static void
test_issue_source_read_bom_and_crlf(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	const char *p;

	/* a BOM before the front matter */
	p = WRITE(f, "bom.md", "\xef\xbb\xbf---\nsubject: S\nlist: news\n---\nBody\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_string_equal(src.subject, "S");
	assert_int_equal(src.n_lists, 1);
	assert_string_equal(src.lists[0], "news");
	assert_int_equal(src.body_line, 5);
	assert_string_equal(src.text + src.body_off, "Body\n");
	issue_source_free(&src);
	/* a BOM without front matter is not part of the body */
	p = WRITE(f, "bom2.md", "\xef\xbb\xbf# Title\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.body_off, 3);
	assert_int_equal(src.body_line, 1);
	assert_null(src.subject);
	issue_source_free(&src);
	/* CRLF line ends: no CR in the values, lines counted the same */
	p = WRITE(f, "crlf.md", "---\r\nsubject: S\r\nlist: news\r\n---\r\nBody\r\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_string_equal(src.subject, "S");
	assert_int_equal(src.n_lists, 1);
	assert_string_equal(src.lists[0], "news");
	assert_int_equal(src.body_line, 5);
	assert_string_equal(src.text + src.body_off, "Body\r\n");
	issue_source_free(&src);
	/* and errors in a CRLF file name the right line */
	EXPECT_AT(f, "crlf2.md", "---\r\nlist: news\r\nsubjet: S\r\n---\r\n", 3,
	          "did you mean 'subject'?");
}

/* lists:, segment:, where: and their lines and columns (issue.h). */
static void
test_issue_source_read_audience_keys(void **state)
{
	struct fixture *f = *state;
	struct issue_source src;
	struct herr err;
	const char *p;

	herr_clear(&err);
	p = WRITE(f, "aud.md", "---\nsubject: S\nlists: [news, other]\n"
	                       "where: attr.x = \"y\" and name != \"\"\n---\nB\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.n_lists, 2);
	assert_string_equal(src.lists[0], "news");
	assert_string_equal(src.lists[1], "other");
	assert_int_equal(src.lists_line, 3);
	assert_string_equal(src.where, "attr.x = \"y\" and name != \"\"");
	assert_int_equal(src.where_line, 4);
	assert_int_equal(src.where_col, 8);
	assert_null(src.segment);
	issue_source_free(&src);
	/* a block list, a scalar with commas; a segment */
	p = WRITE(f, "aud2.md", "---\nlists:\n  - news\n  - other\nsegment: sw-leads\n---\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.n_lists, 2);
	assert_string_equal(src.segment, "sw-leads");
	assert_int_equal(src.segment_line, 5);
	issue_source_free(&src);
	p = WRITE(f, "aud3.md", "---\nlists: news, other\n---\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.n_lists, 2);
	issue_source_free(&src);
	/* quoted as written: the column after the quote; escaped or folded:
	 * no column in the file (0) */
	p = WRITE(f, "q1.md", "---\nwhere: 'attr.x = \"y\"'\n---\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.where_col, 9);
	issue_source_free(&src);
	p = WRITE(f, "q2.md", "---\nwhere: \"attr.x = \\\"y\\\"\"\n---\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_string_equal(src.where, "attr.x = \"y\"");
	assert_int_equal(src.where_col, 0);
	issue_source_free(&src);
	p = WRITE(f, "q3.md", "---\nwhere: attr.x = \"y\"\n  and name != \"\"\n---\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_string_equal(src.where, "attr.x = \"y\" and name != \"\"");
	assert_int_equal(src.where_line, 2);
	assert_int_equal(src.where_col, 0);
	issue_source_free(&src);
	/* non-ASCII before the expression: columns count characters */
	p = WRITE(f, "q4.md", "---\nwhere:   name = \"Zo\xc3\xab\"\n---\n");
	assert_int_equal(issue_source_read(p, &src, &err), 0);
	assert_int_equal(src.where_col, 10);
	issue_source_free(&src);

	EXPECT_AT(f, "both1.md", "---\nlist: news\nlists: [other]\n---\n", 3,
	          "give 'list' or 'lists', not both");
	EXPECT_AT(f, "both2.md", "---\nwhere: name = \"\"\nsegment: x\n---\n", 3,
	          "give 'where' or 'segment', not both");
	EXPECT_AT(f, "dup.md", "---\nlists: [news, other, news]\n---\n", 2,
	          "list 'news' is given twice");
	EXPECT_AT(f, "badname.md", "---\nlists: [News]\n---\n", 2, "'News' is not a list name");
	EXPECT_AT(f, "wmap.md", "---\nwhere: {a: b}\n---\n", 2, "not a mapping");
	EXPECT_AT(f, "slist.md", "---\nsegment: [a, b]\n---\n", 2, "not a list");
}

/* ---- issue_create ---------------------------------------------------------- */

static long long
create(struct fixture *f, const char *path, const struct issue_overrides *ov,
       struct warned *w, struct herr *err)
{
	struct issue_source src;
	long long id = 0;
	int rc;

	herr_clear(err);
	if (issue_source_read(path, &src, err) < 0) {
		issue_source_free(&src);
		return -1;
	}
	rc = issue_create(f->db, &f->cfg, &src, ov, &id, w ? warn_cb : NULL, w, err);
	issue_source_free(&src);
	return rc < 0 ? -1 : id;
}

static void
test_issue_create_stores_rendered_issue(void **state)
{
	struct fixture *f = *state;
	struct issue is;
	struct warned w = { 0 };
	struct herr err;
	long long id;
	const char *p = WRITE(f, "news.md",
		"---\n"
		"subject: \"News for {{first_name|friend}}\"\n"
		"preheader: What is in it\n"
		"list: news\n"
		"allow_missing: organization\n"
		"---\n"
		"Hello {{name|there}},\n"
		"read [the report](https://example.org/report?a=1&b=2) and\n"
		"[it again](https://example.org/report?a=1&b=2), then\n"
		"[the other one](https://example.org/other).\n");

	id = create(f, p, NULL, &w, &err);
	if (id < 0)
		fail_msg("create: %s: %s", err.where, err.msg);
	assert_int_equal(issue_get(f->db, id, &is, &err), 0);
	assert_string_equal(is.status, "draft");
	assert_int_equal(is.list_id, f->list_id);
	assert_string_equal(is.list_name, "news");
	assert_string_equal(is.subject, "News for {{first_name|friend}}");
	assert_string_equal(is.preheader, "What is in it");
	/* sender and reply-to from the config */
	assert_string_equal(is.from_name, "The News Team");
	assert_string_equal(is.from_addr, "news@example.org");
	assert_string_equal(is.reply_to, "Desk <desk@example.org>");
	assert_string_equal(is.source_path, p);
	/* the Markdown without its front matter */
	assert_int_equal(strncmp(is.markdown, "Hello {{name|there}},\n", 22), 0);
	/* merge fields kept for the send; the layout around the body */
	assert_non_null(strstr(is.html, "Hello {{name|there}},"));
	assert_non_null(strstr(is.html, "href=\"https://example.org/report?a=1&amp;b=2\""));
	assert_non_null(strstr(is.html, "<br />"));          /* line_breaks: keep */
	assert_non_null(strstr(is.html, "1 Example Street"));
	assert_non_null(strstr(is.html, "What is in it"));
	assert_non_null(strstr(is.text, "Hello {{name|there}},\n"));
	assert_non_null(strstr(is.text, "[1] https://example.org/report?a=1&b=2\n"
	                                "[2] https://example.org/other\n"));
	assert_null(strstr(is.text, "[3]"));                /* the same URL, one number */
	/* the reader's lists, merged per recipient (message.h) */
	assert_non_null(strstr(is.text, "subscribed to\n{{lists}}."));
	assert_string_equal(is.links,
	                    "[\"https://example.org/report?a=1&b=2\",\"https://example.org/other\"]");
	assert_string_equal(is.allow_missing, "[\"attr.organization\"]");
	assert_int_equal(is.allow_html, 0);
	assert_int_equal(is.tracking, 1);                  /* [web] tracking = yes */
	assert_true(is.created_at > 0);
	assert_int_equal(is.send_at, 0);
	assert_int_equal(is.started_at, 0);
	/* {{first_name}} has a fallback, {{name}} too: nothing to warn about */
	assert_int_equal(w.n, 0);
	issue_clear(&is);
}

static void
test_issue_create_front_matter_overrides_config(void **state)
{
	struct fixture *f = *state;
	struct issue is;
	struct herr err;
	long long id;
	const char *p = WRITE(f, "own.md",
		"---\n"
		"subject: Own sender\n"
		"from: \"The Editors <Editors@Example.ORG>\"\n"
		"reply_to: replies@example.org\n"
		"list: news\n"
		"tracking: false\n"
		"allow_html: true\n"
		"line_breaks: commonmark\n"
		"---\n"
		"one\n"
		"two <b>bold</b>\n");

	id = create(f, p, NULL, NULL, &err);
	if (id < 0)
		fail_msg("create: %s", err.msg);
	assert_int_equal(issue_get(f->db, id, &is, &err), 0);
	assert_string_equal(is.from_name, "The Editors");
	assert_string_equal(is.from_addr, "Editors@example.org");
	assert_string_equal(is.reply_to, "replies@example.org");
	assert_int_equal(is.tracking, 0);
	assert_int_equal(is.allow_html, 1);
	assert_non_null(strstr(is.html, "<b>bold</b>"));
	assert_non_null(strstr(is.html, "one\ntwo"));      /* commonmark: joined */
	assert_null(strstr(is.html, "<br />"));
	assert_null(strstr(is.text, "<b>"));                /* never in the text part */
	assert_string_equal(is.links, "[]");
	assert_string_equal(is.allow_missing, "[]");
	issue_clear(&is);
}

static void
test_issue_create_overrides_list_and_subject(void **state)
{
	struct fixture *f = *state;
	const char *other[] = { "other" };
	struct issue_overrides ov = { other, 1, "From the command line" };
	struct issue is;
	struct herr err;
	long long id;
	const char *p = WRITE(f, "ov.md", "---\nsubject: From the file\nlist: news\n---\nBody\n");

	id = create(f, p, &ov, NULL, &err);
	assert_true(id > 0);
	assert_int_equal(issue_get(f->db, id, &is, &err), 0);
	assert_string_equal(is.list_name, "other");
	assert_string_equal(is.subject, "From the command line");
	issue_clear(&is);
	/* the override is checked like the front matter */
	ov.subject = "Hi\r\nBcc: x@example.org";
	assert_int_equal(create(f, p, &ov, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	ov.subject = "Hi\xc2\x85there";
	assert_int_equal(create(f, p, &ov, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(count(f, "SELECT count(*) FROM issues"), 1);
}

static void
test_issue_create_refusals_store_nothing(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	const char *p;

	p = WRITE(f, "nolist.md", "---\nsubject: S\n---\nBody\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_non_null(strstr(err.msg, "no list"));
	p = WRITE(f, "badlist.md", "---\nsubject: S\nlist: nope\n---\nBody\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	p = WRITE(f, "nosubject.md", "---\nlist: news\n---\nBody\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "no subject"));
	p = WRITE(f, "badfrom.md", "---\nsubject: S\nlist: news\nfrom: \"Eds <not-an-address>\"\n"
	              "---\nBody\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "front matter 'from'"));
	/* an unknown merge field, placed at its line in the file */
	p = WRITE(f, "field.md", "---\nsubject: S\nlist: news\n---\nHello\n\nDear {{nmae}},\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	{
		char want[200];

		snprintf(want, sizeof want, "%s:7:", p);
		if (!strstr(err.where, want) && !strstr(err.msg, want))
			fail_msg("'%s' not in '%s' / '%s'", want, err.where, err.msg);
	}
	assert_non_null(strstr(err.msg, "nmae"));
	p = WRITE(f, "subjfield.md", "---\nsubject: \"Hi {{frist_name}}\"\nlist: news\n---\nB\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(count(f, "SELECT count(*) FROM issues"), 0);
}

static void
test_issue_create_warns(void **state)
{
	struct fixture *f = *state;
	struct warned w = { 0 };
	struct herr err;
	long long id;
	const char *p = WRITE(f, "warn.md",
		"---\nsubject: S\nlist: news\n---\n"
		"Some <b>raw</b> HTML, a [short link](https://bit.ly/abc) and\n"
		"![](https://example.org/chart.png)\n");

	id = create(f, p, NULL, &w, &err);
	assert_true(id > 0);
	assert_int_equal(w.n, 3);
	assert_non_null(strstr(w.all, "raw HTML in the issue was left out"));
	assert_non_null(strstr(w.all, "URL shortener bit.ly"));
	assert_non_null(strstr(w.all, "no alt text"));
	/* still created, without the raw HTML */
	assert_int_equal(count(f, "SELECT count(*) FROM issues WHERE html LIKE "
	                          "'%<!-- raw HTML omitted -->%' AND html NOT LIKE '%<b>raw%'"), 1);
}

/* ---- issue_check_fields and invariant (4) ---------------------------------- */

/* Check an issue of list 'news' made of these parts. */
static int
check(struct fixture *f, const char *subject, const char *body, const char *allow,
      int refuse, struct warned *w, struct herr *err)
{
	struct issue is;
	char s[256], pre[8] = "", html[512], text[512], al[128], empty[1] = "";

	memset(&is, 0, sizeof is);
	snprintf(s, sizeof s, "%s", subject);
	snprintf(html, sizeof html, "<p>%s</p>", body);
	snprintf(text, sizeof text, "%s\n", body);
	snprintf(al, sizeof al, "%s", allow ? allow : "[]");
	is.id = 42;
	is.list_id = f->list_id;
	snprintf(is.list_name, sizeof is.list_name, "news");
	is.subject = s;
	is.preheader = pre;
	is.html = html;
	is.text = text;
	is.links = empty;
	is.allow_missing = al;
	memset(w, 0, sizeof *w);
	herr_clear(err);
	return issue_check_fields(f->db, &is, refuse, warn_cb, w, err);
}

static void
test_issue_check_fields_warns_with_counts(void **state)
{
	struct fixture *f = *state;
	struct warned w;
	struct herr err;
	int refuse;

	for (refuse = 0; refuse < 2; refuse++) {
		/* cat has neither: 1 of the 3 recipients (dan is not one) */
		assert_int_equal(check(f, "News", "Dear {{name}} at {{attr.organization}}", NULL,
		                       refuse, &w, &err), 0);
		assert_int_equal(w.n, 2);
		assert_non_null(strstr(w.all, "{{name}} has no fallback: 1 of 3 recipients of "
		                              "list 'news' have no name"));
		assert_non_null(strstr(w.all, "{{attr.organization}} has no fallback: 1 of 3 "
		                              "recipients of list 'news' have no 'organization'"));
		/* each field once, wherever it is used */
		assert_int_equal(check(f, "Hi {{first_name}}", "{{first_name}} {{first_name}}", NULL,
		                       refuse, &w, &err), 0);
		assert_int_equal(w.n, 1);
		assert_non_null(strstr(w.all, "{{first_name}} has no fallback: 1 of 3"));
	}
	/* a fallback, or allow_missing, silences it */
	assert_int_equal(check(f, "News", "Dear {{name|reader}} at {{attr.organization|home}}",
	                       NULL, 1, &w, &err), 0);
	assert_int_equal(w.n, 0);
	assert_int_equal(check(f, "News", "Dear {{name}} at {{attr.organization}}",
	                       "[\"name\",\"attr.organization\"]", 1, &w, &err), 0);
	assert_int_equal(w.n, 0);
	/* no warn callback: still fine */
	herr_clear(&err);
	{
		struct issue is;
		char s[] = "S", e[] = "", html[] = "{{attr.organization}}", al[] = "[]";

		memset(&is, 0, sizeof is);
		is.list_id = f->list_id;
		is.subject = s;
		is.preheader = e;
		is.html = html;
		is.text = e;
		is.links = e;
		is.allow_missing = al;
		assert_int_equal(issue_check_fields(f->db, &is, 1, NULL, NULL, &err), 0);
	}
}

static void
test_issue_check_fields_refuses_field_nobody_has(void **state)
{
	struct fixture *f = *state;
	struct warned w;
	struct herr err;

	/* misspelt: refused at schedule and send, naming the closest key */
	assert_int_equal(check(f, "News", "At {{attr.organisation}}", NULL, 1, &w, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_string_equal(err.where, "issue 42");
	assert_non_null(strstr(err.msg, "none of the 3 recipients of list 'news' has "
	                                "'organisation'"));
	assert_non_null(strstr(err.msg, "did you mean {{attr.organization}}? 2 have it"));
	assert_non_null(strstr(err.msg, "allow_missing: [organisation]"));
	/* at issue new it is a warning that says so */
	assert_int_equal(check(f, "News", "At {{attr.organisation}}", NULL, 0, &w, &err), 0);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.all, "herald will not send this issue until then"));
	/* only the audience counts: dan (unconfirmed) has a region */
	assert_int_equal(check(f, "{{attr.region}}", "x", NULL, 1, &w, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_non_null(strstr(err.msg, "none of the 3 recipients"));
	assert_null(strstr(err.msg, "did you mean"));
	/* allowed to be missing, or with a fallback: fine */
	assert_int_equal(check(f, "{{attr.region}}", "x", "[\"attr.region\"]", 1, &w, &err), 0);
	assert_int_equal(check(f, "{{attr.region|}}", "{{attr.region|somewhere}}", NULL, 1, &w,
	                       &err), 0);
	assert_int_equal(w.n, 0);
}

static void
test_issue_check_fields_web_copy_note(void **state)
{
	struct fixture *f = *state;
	struct warned w;
	struct herr err;

	/* everyone has an organization: no gap, but a bare attribute is fine */
	exec_ok(f->db, "UPDATE subscribers SET name = 'Cat', attributes = "
	               "'{\"organization\":\"Hull\"}' WHERE email = 'cat@example.org'");
	assert_int_equal(check(f, "News", "{{attr.organization}}", NULL, 0, &w, &err), 0);
	assert_int_equal(w.n, 0);
	/* a bare name is noted for the web copy at issue new only */
	assert_int_equal(check(f, "News", "Dear {{name}}", NULL, 0, &w, &err), 0);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.all, "the web copy has no reader's name"));
	assert_int_equal(check(f, "News", "Dear {{name}}", NULL, 1, &w, &err), 0);
	assert_int_equal(w.n, 0);
	/* an empty list refuses nothing */
	exec_ok(f->db, "UPDATE subscriptions SET status = 'unsubscribed'");
	assert_int_equal(check(f, "News", "{{attr.nobody}}", NULL, 1, &w, &err), 0);
}

/* ---- the state machine ------------------------------------------------------ */

static long long
plain_issue(struct fixture *f, const char *name, const char *body)
{
	char text[512];
	struct herr err;
	long long id;
	const char *p;
	int n;

	n = snprintf(text, sizeof text, "---\nsubject: Issue\nlist: news\n---\n%s\n", body);
	p = write_file(f, name, text, (size_t)n);
	id = create(f, p, NULL, NULL, &err);
	if (id < 0)
		fail_msg("create: %s", err.msg);
	return id;
}

static struct issue *
get(struct fixture *f, long long id, struct issue *is)
{
	struct herr err;

	issue_clear(is);
	assert_int_equal(issue_get(f->db, id, is, &err), 0);
	return is;
}

static long long
deliveries(struct fixture *f, long long id, const char *status)
{
	char sql[200];

	if (status)
		snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE issue_id = %lld "
		         "AND status = '%s'", id, status);
	else
		snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE issue_id = %lld",
		         id);
	return count(f, sql);
}

/* Start the send of `id` (draft or scheduled); the number of recipients. */
static long long
start(struct fixture *f, long long id)
{
	struct issue is = { 0 };
	struct herr err;
	long long n = -1;

	get(f, id, &is);
	if (issue_start_send(f->db, &is, NULL, NULL, &n, &err) < 0)
		fail_msg("start: %s", err.msg);
	issue_clear(&is);
	return n;
}

static int
mid(void *ctx, long long sub, char *out, size_t n)
{
	(void)ctx;
	snprintf(out, n, "mid.%lld@example.org", sub);
	return 0;
}

enum outcome { O_SENT, O_DEFERRED, O_BOUNCED, O_FAILED, O_LEAVE };

/* Claim every due row of the issue at `now` and give it the outcome
 * `out(email)`; O_LEAVE leaves it claimed (sending). */
static void
drive(struct fixture *f, long long id, long long now, enum outcome (*out)(const char *))
{
	struct ledger *l;
	struct ledger_row row;
	struct smtp_result r;
	struct herr err;

	assert_int_equal(ledger_open(f->db, id, &l, &err), 0);
	while (ledger_claim(l, now, mid, NULL, &row, &err) == 1) {
		enum outcome o = out(row.email);

		memset(&r, 0, sizeof r);
		switch (o) {
		case O_SENT:
			r.outcome = SMTP_SENT;
			r.code = 250;
			strcpy(r.reply, "250 2.0.0 Ok");
			break;
		case O_DEFERRED:
			r.outcome = SMTP_DEFERRED;
			r.code = 451;
			strcpy(r.reply, "451 4.7.1 later");
			break;
		case O_BOUNCED:
			r.outcome = SMTP_REJECTED;
			r.stage = SMTP_STAGE_RCPT;
			r.code = 550;
			strcpy(r.reply, "550 5.1.1 no such user");
			break;
		default:
			break;
		}
		if (o == O_FAILED)
			assert_int_equal(ledger_fail(l, row.subscriber_id, "bad data", now, &err), 0);
		else if (o != O_LEAVE)
			assert_int_equal(ledger_mark(l, row.subscriber_id, row.attempts, &r, "smtp",
			                             now, &err), 0);
		ledger_row_clear(&row);
	}
	ledger_close(l);
}

static enum outcome all_sent(const char *e) { (void)e; return O_SENT; }
static enum outcome all_leave(const char *e) { (void)e; return O_LEAVE; }

/* ada sent, bob failed, cat bounced */
static enum outcome
mixed(const char *e)
{
	return e[0] == 'a' ? O_SENT : e[0] == 'b' ? O_FAILED : O_BOUNCED;
}

/* ada sent, bob deferred, cat left in flight */
static enum outcome
unfinished(const char *e)
{
	return e[0] == 'a' ? O_SENT : e[0] == 'b' ? O_DEFERRED : O_LEAVE;
}

/* Expect `rc` to be a refusal with `code`, the issue still in `status`. */
static void
refused(struct fixture *f, long long id, int rc, const struct herr *err, int code,
        const char *status)
{
	struct issue is = { 0 };

	assert_int_equal(rc, -1);
	assert_int_equal(err->code, code);
	assert_string_equal(get(f, id, &is)->status, status);
	if (code == EX_DATAERR && strstr(err->msg, "cannot "))
		assert_non_null(strstr(err->msg, status));   /* "... it is sent" */
	issue_clear(&is);
}

static void
test_issue_schedule_edges(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	long long id = plain_issue(f, "s.md", "Hi {{name|there}}");

	/* draft -> scheduled, and again with another time */
	assert_int_equal(issue_schedule(f->db, id, 5000, NULL, NULL, &err), 0);
	assert_string_equal(get(f, id, &is)->status, "scheduled");
	assert_int_equal(is.send_at, 5000);
	assert_int_equal(issue_schedule(f->db, id, 6000, NULL, NULL, &err), 0);
	assert_int_equal(get(f, id, &is)->send_at, 6000);
	/* paused -> scheduled */
	assert_int_equal(issue_pause(f->db, id, &err), 0);
	assert_string_equal(get(f, id, &is)->status, "paused");
	assert_int_equal(issue_schedule(f->db, id, 7000, NULL, NULL, &err), 0);
	assert_string_equal(get(f, id, &is)->status, "scheduled");
	assert_int_equal(is.send_at, 7000);
	/* cancelled -> scheduled */
	assert_int_equal(issue_cancel(f->db, id, &err), 0);
	assert_string_equal(get(f, id, &is)->status, "cancelled");
	assert_int_equal(issue_schedule(f->db, id, 8000, NULL, NULL, &err), 0);
	assert_string_equal(get(f, id, &is)->status, "scheduled");
	assert_int_equal(deliveries(f, id, NULL), 0);
	issue_clear(&is);
	/* unknown issue */
	herr_clear(&err);
	assert_int_equal(issue_schedule(f->db, id + 100, 1, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
}

static void
test_issue_schedule_refuses_sending_and_sent(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	int finished;
	long long id = plain_issue(f, "s.md", "Hi");

	assert_int_equal(start(f, id), 3);
	herr_clear(&err);
	refused(f, id, issue_schedule(f->db, id, 5000, NULL, NULL, &err), &err, EX_DATAERR,
	        "sending");
	drive(f, id, 1000, all_sent);
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 1);
	herr_clear(&err);
	refused(f, id, issue_schedule(f->db, id, 5000, NULL, NULL, &err), &err, EX_DATAERR, "sent");
	assert_int_equal(deliveries(f, id, "sent"), 3);
}

static void
test_issue_schedule_checks_fields(void **state)
{
	struct fixture *f = *state;
	struct warned w = { 0 };
	struct herr err;
	long long id = plain_issue(f, "s.md", "At {{attr.organisation}} and {{attr.organization}}");

	/* (4): a field nobody has is refused, the issue stays a draft */
	herr_clear(&err);
	refused(f, id, issue_schedule(f->db, id, 5000, warn_cb, &w, &err), &err, EX_DATAERR,
	        "draft");
	assert_non_null(strstr(err.msg, "organisation"));
	/* with the gap fixed, the warnings about the rest still come */
	exec_ok(f->db, "UPDATE issues SET html = replace(html, 'organisation', 'organization'), "
	               "text = replace(text, 'organisation', 'organization')");
	memset(&w, 0, sizeof w);
	assert_int_equal(issue_schedule(f->db, id, 5000, warn_cb, &w, &err), 0);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.all, "1 of 3 recipients"));
}

/* Several lists and a where: stored in order, counted and snapshotted
 * as the audience; a wrong expression or list stores nothing. */
static void
test_issue_create_lists_and_where(void **state)
{
	struct fixture *f = *state;
	const char *both[] = { "other", "news" };
	struct issue_overrides ov = { both, 2, NULL };
	struct issue is;
	struct herr err;
	long long id, n, before;
	char sql[200];
	const char *p;

	/* cat (no name) and dan (unconfirmed) aside; Bob is also on other */
	exec_ok(f->db, "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at) "
	               "SELECT l.id, s.id, 'confirmed', 0 FROM lists l, subscribers s "
	               "WHERE l.name = 'other' AND s.email IN ('bob@example.org', 'dan@example.org')");
	p = WRITE(f, "lw.md", "---\nsubject: S\nlists: [news, other]\nwhere: name != \"\"\n---\n"
	                      "Hi {{name}}\n");
	id = create(f, p, NULL, NULL, &err);
	assert_true(id > 0);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM issue_lists il JOIN lists l ON "
	         "l.id = il.list_id WHERE il.issue_id = %lld AND ((l.name = 'news' AND "
	         "il.position = 0) OR (l.name = 'other' AND il.position = 1))", id);
	assert_int_equal(count(f, sql), 2);
	assert_int_equal(issue_get(f->db, id, &is, &err), 0);
	assert_int_equal(is.n_lists, 2);
	assert_true(is.list_ids[0] == is.list_id && is.list_id == f->list_id);
	assert_string_equal(is.list_name, "news");
	assert_string_equal(is.list_names, "news, other");
	assert_string_equal(is.where, "name != \"\"");
	assert_null(is.segment);
	/* ada, bob (once), and dan through other: cat has no name */
	assert_int_equal(issue_audience_count(f->db, &is, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(issue_start_send(f->db, &is, NULL, NULL, &n, &err), 0);
	assert_int_equal(n, 3);
	issue_clear(&is);
	assert_int_equal(deliveries(f, id, "pending"), 3);

	/* --list replaces the front matter's, in its order */
	id = create(f, p, &ov, NULL, &err);
	assert_true(id > 0);
	assert_int_equal(issue_get(f->db, id, &is, &err), 0);
	assert_string_equal(is.list_name, "other");
	assert_string_equal(is.list_names, "other, news");
	issue_clear(&is);

	/* refusals store nothing, and say where */
	before = count(f, "SELECT count(*) FROM issues");
	p = WRITE(f, "bad.md", "---\nsubject: S\nlists: [news]\nwhere: name !== \"\"\n---\nHi\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	snprintf(sql, sizeof sql, "%s:4:15", p); /* the second = */
	assert_string_equal(err.where, sql);
	p = WRITE(f, "nol.md", "---\nsubject: S\nlists: [news, nosuch]\n---\nHi\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	snprintf(sql, sizeof sql, "%s:3", p);
	assert_string_equal(err.where, sql);
	p = WRITE(f, "nos.md", "---\nsubject: S\nlist: news\nsegment: nosuch\n---\nHi\n");
	assert_int_equal(create(f, p, NULL, NULL, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	snprintf(sql, sizeof sql, "%s:4", p);
	assert_string_equal(err.where, sql);
	assert_int_equal(count(f, "SELECT count(*) FROM issues"), before);
	assert_int_equal(count(f, "SELECT count(*) FROM issue_lists"), before + 2);
}

/* (1): draft -> sending with the snapshot; scheduled -> sending too. */
static void
test_issue_start_send_takes_snapshot(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	long long a = plain_issue(f, "a.md", "Hi"), b = plain_issue(f, "b.md", "Hi");
	char sql[200];

	db_set_now(100000);
	assert_int_equal(deliveries(f, a, NULL), 0);
	assert_int_equal(start(f, a), 3);
	assert_string_equal(get(f, a, &is)->status, "sending");
	assert_true(is.started_at >= 100000);
	assert_int_equal(deliveries(f, a, NULL), 3);
	assert_int_equal(deliveries(f, a, "pending"), 3);
	/* the audience only: dan is unconfirmed */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE subscriber_id = %lld",
	         f->dan);
	assert_int_equal(count(f, sql), 0);

	assert_int_equal(issue_schedule(f->db, b, 1, NULL, NULL, &err), 0);
	assert_int_equal(start(f, b), 3);
	assert_string_equal(get(f, b, &is)->status, "sending");
	assert_int_equal(deliveries(f, b, NULL), 3);
	issue_clear(&is);
	db_set_now(0);
}

/* (1): when the snapshot fails, the issue does not move either. */
static void
test_issue_start_send_rolls_back_with_snapshot(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	long long n = -1, id = plain_issue(f, "s.md", "Hi");

	exec_ok(f->db, "CREATE TEMP TRIGGER no_rows BEFORE INSERT ON main.deliveries "
	               "BEGIN SELECT RAISE(ABORT, 'snapshot failed'); END");
	get(f, id, &is);
	herr_clear(&err);
	assert_int_equal(issue_start_send(f->db, &is, NULL, NULL, &n, &err), -1);
	assert_int_not_equal(err.code, 0);
	assert_string_equal(get(f, id, &is)->status, "draft");
	assert_int_equal(is.started_at, 0);
	assert_int_equal(deliveries(f, id, NULL), 0);
	exec_ok(f->db, "DROP TRIGGER temp.no_rows");
	/* and it starts once the snapshot can be taken */
	assert_int_equal(issue_start_send(f->db, &is, NULL, NULL, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(get(f, id, &is)->status, "sending");
	issue_clear(&is);
}

/* (4) at the start of a send. */
static void
test_issue_start_send_checks_fields(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	long long n = -1, id = plain_issue(f, "s.md", "Dear {{attr.organisation}}");

	get(f, id, &is);
	herr_clear(&err);
	refused(f, id, issue_start_send(f->db, &is, NULL, NULL, &n, &err), &err, EX_DATAERR,
	        "draft");
	assert_int_equal(deliveries(f, id, NULL), 0);
	issue_clear(&is);
}

/* (5): only a draft or a scheduled issue starts. */
static void
test_issue_start_send_refuses_other_states(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	long long n, cancelled = plain_issue(f, "c.md", "Hi"), paused = plain_issue(f, "p.md", "Hi"),
	          sent = plain_issue(f, "s.md", "Hi"), sending = plain_issue(f, "g.md", "Hi");
	int finished;

	assert_int_equal(issue_cancel(f->db, cancelled, &err), 0);
	assert_int_equal(issue_schedule(f->db, paused, 1, NULL, NULL, &err), 0);
	assert_int_equal(issue_pause(f->db, paused, &err), 0);
	assert_int_equal(start(f, sent), 3);
	drive(f, sent, 1000, all_sent);
	assert_int_equal(issue_finish(f->db, sent, &finished, &err), 0);
	assert_int_equal(finished, 1);
	assert_int_equal(start(f, sending), 3);

	get(f, cancelled, &is);
	herr_clear(&err);
	refused(f, cancelled, issue_start_send(f->db, &is, NULL, NULL, &n, &err), &err,
	        EX_TEMPFAIL, "cancelled");
	assert_int_equal(deliveries(f, cancelled, NULL), 0);
	get(f, paused, &is);
	herr_clear(&err);
	refused(f, paused, issue_start_send(f->db, &is, NULL, NULL, &n, &err), &err, EX_TEMPFAIL,
	        "paused");
	assert_int_equal(deliveries(f, paused, NULL), 0);
	get(f, sent, &is);
	herr_clear(&err);
	refused(f, sent, issue_start_send(f->db, &is, NULL, NULL, &n, &err), &err, EX_TEMPFAIL,
	        "sent");
	assert_int_equal(deliveries(f, sent, "sent"), 3);
	get(f, sending, &is);
	herr_clear(&err);
	refused(f, sending, issue_start_send(f->db, &is, NULL, NULL, &n, &err), &err, EX_TEMPFAIL,
	        "sending");
	assert_int_equal(deliveries(f, sending, NULL), 3);
	issue_clear(&is);
}

static void
test_issue_pause_and_resume_both_ways(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	char now[16];
	long long a = plain_issue(f, "a.md", "Hi"), b = plain_issue(f, "b.md", "Hi");

	/* scheduled -> paused -> scheduled (its send had not started) */
	assert_int_equal(issue_schedule(f->db, a, 5000, NULL, NULL, &err), 0);
	assert_int_equal(issue_pause(f->db, a, &err), 0);
	assert_string_equal(get(f, a, &is)->status, "paused");
	assert_int_equal(issue_resume(f->db, a, now, &err), 0);
	assert_string_equal(now, "scheduled");
	assert_string_equal(get(f, a, &is)->status, "scheduled");
	assert_int_equal(is.send_at, 5000);
	/* sending -> paused -> sending */
	assert_int_equal(start(f, b), 3);
	assert_int_equal(issue_pause(f->db, b, &err), 0);
	assert_string_equal(get(f, b, &is)->status, "paused");
	assert_int_equal(deliveries(f, b, "pending"), 3);
	assert_int_equal(issue_resume(f->db, b, now, &err), 0);
	assert_string_equal(now, "sending");
	assert_string_equal(get(f, b, &is)->status, "sending");
	assert_int_equal(deliveries(f, b, NULL), 3);
	issue_clear(&is);
	/* refused: pausing a draft or a paused issue, resuming what is not paused */
	a = plain_issue(f, "c.md", "Hi");
	herr_clear(&err);
	refused(f, a, issue_pause(f->db, a, &err), &err, EX_DATAERR, "draft");
	herr_clear(&err);
	refused(f, a, issue_resume(f->db, a, now, &err), &err, EX_DATAERR, "draft");
	herr_clear(&err);
	refused(f, b, issue_resume(f->db, b, now, &err), &err, EX_DATAERR, "sending");
	assert_int_equal(issue_pause(f->db, b, &err), 0);
	herr_clear(&err);
	refused(f, b, issue_pause(f->db, b, &err), &err, EX_DATAERR, "paused");
}

static void
test_issue_cancel_edges(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	int finished;
	long long draft = plain_issue(f, "d.md", "Hi"), sched = plain_issue(f, "s.md", "Hi"),
	          paused = plain_issue(f, "p.md", "Hi"), sending = plain_issue(f, "g.md", "Hi"),
	          sent = plain_issue(f, "t.md", "Hi");

	assert_int_equal(issue_schedule(f->db, sched, 1, NULL, NULL, &err), 0);
	assert_int_equal(issue_schedule(f->db, paused, 1, NULL, NULL, &err), 0);
	assert_int_equal(issue_pause(f->db, paused, &err), 0);
	assert_int_equal(start(f, sending), 3);
	assert_int_equal(start(f, sent), 3);
	drive(f, sending, 1000, mixed);   /* one sent, one failed, one bounced */
	drive(f, sent, 1000, all_sent);
	assert_int_equal(issue_finish(f->db, sent, &finished, &err), 0);

	db_set_now(200000);
	assert_int_equal(issue_cancel(f->db, draft, &err), 0);
	assert_string_equal(get(f, draft, &is)->status, "cancelled");
	assert_int_equal(is.finished_at, 200000);
	assert_int_equal(issue_cancel(f->db, sched, &err), 0);
	assert_string_equal(get(f, sched, &is)->status, "cancelled");
	assert_int_equal(issue_cancel(f->db, paused, &err), 0);
	assert_string_equal(get(f, paused, &is)->status, "cancelled");
	assert_int_equal(issue_cancel(f->db, sending, &err), 0);
	assert_string_equal(get(f, sending, &is)->status, "cancelled");
	/* its ledger rows stay as they are */
	assert_int_equal(deliveries(f, sending, "sent"), 1);
	assert_int_equal(deliveries(f, sending, "failed"), 1);
	assert_int_equal(deliveries(f, sending, "bounced"), 1);
	issue_clear(&is);
	herr_clear(&err);
	refused(f, sent, issue_cancel(f->db, sent, &err), &err, EX_DATAERR, "sent");
	herr_clear(&err);
	refused(f, draft, issue_cancel(f->db, draft, &err), &err, EX_DATAERR, "cancelled");
	db_set_now(0);
}

/* (2) */
static void
test_issue_finish_only_when_nothing_left(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	int finished = -1;
	long long id = plain_issue(f, "s.md", "Hi"), draft = plain_issue(f, "d.md", "Hi");

	/* a draft never becomes sent */
	assert_int_equal(issue_finish(f->db, draft, &finished, &err), 0);
	assert_int_equal(finished, 0);
	assert_string_equal(get(f, draft, &is)->status, "draft");

	assert_int_equal(start(f, id), 3);
	/* all pending */
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 0);
	/* sent, deferred, in flight */
	drive(f, id, 1000, unfinished);
	assert_int_equal(deliveries(f, id, "sending"), 1);
	assert_int_equal(deliveries(f, id, "deferred"), 1);
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 0);
	/* the one in flight comes back and is sent: the deferred one is left */
	{
		long long n;

		assert_int_equal(ledger_recover(f->db, id, &n, &err), 0);
		assert_int_equal(n, 1);
	}
	drive(f, id, 1001, all_sent);
	assert_int_equal(deliveries(f, id, "deferred"), 1);
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 0);
	assert_string_equal(get(f, id, &is)->status, "sending");
	/* the deferred one, due later, fails for good: nothing is left */
	drive(f, id, 1000 + 24 * 3600, mixed);
	assert_int_equal(deliveries(f, id, "deferred") + deliveries(f, id, "pending") +
	                 deliveries(f, id, "sending"), 0);
	db_set_now(300000);
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 1);
	assert_string_equal(get(f, id, &is)->status, "sent");
	assert_int_equal(is.finished_at, 300000);
	/* once */
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 0);
	issue_clear(&is);
	db_set_now(0);
}

/* (3) */
static void
test_issue_retry_failed_reopens_sent_only_with_failed_rows(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	int finished;
	long long n = -1, id = plain_issue(f, "s.md", "Hi"), clean = plain_issue(f, "c.md", "Hi");

	assert_int_equal(start(f, id), 3);
	assert_int_equal(start(f, clean), 3);
	drive(f, id, 1000, mixed);
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 1);
	assert_int_equal(issue_retry_failed(f->db, id, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(get(f, id, &is)->status, "sending");
	assert_int_equal(is.finished_at, 0);
	assert_int_equal(deliveries(f, id, "pending"), 1);
	assert_int_equal(deliveries(f, id, "bounced"), 1);   /* bounced ones stay */
	assert_int_equal(deliveries(f, id, "sent"), 1);
	/* sent again; nothing failed any more: a retry changes nothing */
	drive(f, id, 2000, all_sent);
	assert_int_equal(issue_finish(f->db, id, &finished, &err), 0);
	assert_int_equal(finished, 1);
	assert_int_equal(issue_retry_failed(f->db, id, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_string_equal(get(f, id, &is)->status, "sent");
	/* a sent issue without failures at all stays sent */
	drive(f, clean, 1000, all_sent);
	assert_int_equal(issue_finish(f->db, clean, &finished, &err), 0);
	assert_int_equal(issue_retry_failed(f->db, clean, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_string_equal(get(f, clean, &is)->status, "sent");
	assert_true(is.finished_at > 0);
	issue_clear(&is);
	/* nothing to retry in a draft or a cancelled issue */
	id = plain_issue(f, "d.md", "Hi");
	herr_clear(&err);
	refused(f, id, issue_retry_failed(f->db, id, &n, &err), &err, EX_DATAERR, "draft");
	assert_non_null(strstr(err.msg, "is draft: nothing to retry"));
	assert_int_equal(issue_cancel(f->db, id, &err), 0);
	herr_clear(&err);
	refused(f, id, issue_retry_failed(f->db, id, &n, &err), &err, EX_DATAERR, "cancelled");
}

/*
 * Ledger invariant (3) and issue invariant (1), through the issue's edges:
 * an issue whose send started, was paused and is scheduled again (paused
 * -> scheduled is an edge of the table, and so is cancelled -> scheduled)
 * must not take a second snapshot when it starts again: someone who
 * subscribed after the first one is never added.
 * (Once a bug: issue_start_send() took a second snapshot of such an
 * issue and overwrote started_at.)
 */
static void
test_issue_schedule_after_start_never_adds_later_subscribers(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id = plain_issue(f, "s.md", "Hi"), late;
	char sql[200];

	assert_int_equal(start(f, id), 3);
	drive(f, id, 1000, all_leave);
	assert_int_equal(issue_pause(f->db, id, &err), 0);
	late = add_sub(f, "late@example.org", "Late", NULL, NULL, 0);
	assert_int_equal(issue_schedule(f->db, id, 1, NULL, NULL, &err), 0);
	{
		struct issue is = { 0 };
		long long n = -1;

		get(f, id, &is);
		(void)issue_start_send(f->db, &is, NULL, NULL, &n, &err);
		issue_clear(&is);
	}
	snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE subscriber_id = %lld",
	         late);
	assert_int_equal(count(f, sql), 0);
	assert_int_equal(deliveries(f, id, NULL), 3);
}

/* ---- the rest of issue.c ------------------------------------------------------ */

static void
test_issue_remove_keeps_history_unless_forced(void **state)
{
	struct fixture *f = *state;
	struct issue is = { 0 };
	struct herr err;
	long long draft = plain_issue(f, "d.md", "Hi"), sending = plain_issue(f, "s.md", "Hi");

	assert_int_equal(start(f, sending), 3);
	herr_clear(&err);
	assert_int_equal(issue_remove(f->db, sending, 0, &err), -1);
	assert_int_equal(err.code, EX_DATAERR);
	assert_int_equal(deliveries(f, sending, NULL), 3);
	assert_int_equal(issue_remove(f->db, draft, 0, &err), 0);
	herr_clear(&err);
	assert_int_equal(issue_get(f->db, draft, &is, &err), -1);
	assert_int_equal(err.code, EX_NOINPUT);
	assert_int_equal(issue_remove(f->db, sending, 1, &err), 0);
	assert_int_equal(deliveries(f, sending, NULL), 0);   /* its ledger with it */
}

static void
test_issue_parse_time_formats(void **state)
{
	struct herr err;
	long long t = 0;

	(void)state;
	assert_int_equal(issue_parse_time("2026-12-01T09:00Z", &t, &err), 0);
	assert_int_equal(t, 1796115600LL);
	assert_int_equal(issue_parse_time("2026-12-01T09:00:30+01:00", &t, &err), 0);
	assert_int_equal(t, 1796115600LL - 3600 + 30);
	assert_int_equal(issue_parse_time("2026-12-01 09:00-00:30", &t, &err), 0);
	assert_int_equal(t, 1796115600LL + 1800);
	herr_clear(&err);
	assert_int_equal(issue_parse_time("2026-02-30T09:00Z", &t, &err), -1);
	assert_int_equal(err.code, EX_USAGE);
	assert_int_equal(issue_parse_time("2026-12-01T24:00Z", &t, &err), -1);
	assert_int_equal(issue_parse_time("2026-12-01T09:00Zjunk", &t, &err), -1);
	assert_int_equal(issue_parse_time("tomorrow", &t, &err), -1);
}

static void
test_issue_next_due_finds_due_work(void **state)
{
	struct fixture *f = *state;
	struct herr err;
	long long id = -1, a = plain_issue(f, "a.md", "Hi"), b = plain_issue(f, "b.md", "Hi");

	assert_int_equal(issue_next_due(f->db, 0, 1000, &id, &err), 0);
	assert_int_equal(id, 0);                          /* drafts are not due */
	assert_int_equal(issue_schedule(f->db, a, 5000, NULL, NULL, &err), 0);
	assert_int_equal(issue_next_due(f->db, 0, 4999, &id, &err), 0);
	assert_int_equal(id, 0);
	assert_int_equal(issue_next_due(f->db, 0, 5000, &id, &err), 0);
	assert_int_equal(id, a);
	assert_int_equal(start(f, b), 3);
	assert_int_equal(issue_next_due(f->db, a, 1000, &id, &err), 0);
	assert_int_equal(id, b);
	assert_int_equal(issue_pause(f->db, b, &err), 0);
	assert_int_equal(issue_next_due(f->db, a, 1000, &id, &err), 0);
	assert_int_equal(id, 0);                          /* paused is not due */
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_issue_source_read_front_matter_keys),
		T(test_issue_source_read_defaults_without_front_matter),
		T(test_issue_source_read_booleans_and_scalar_allow_missing),
		T(test_issue_source_read_unknown_key_suggests),
		T(test_issue_source_read_repeated_key),
		T(test_issue_source_read_refuses_line_breaks_and_controls),
		T(test_issue_source_read_refuses_c1_controls),
		T(test_issue_source_read_refuses_lists_mappings_and_bad_values),
		T(test_issue_source_read_unclosed_front_matter),
		T(test_issue_source_read_refuses_nul_byte),
		T(test_issue_source_read_refuses_non_regular_and_missing_files),
		T(test_issue_source_read_refuses_too_large),
		T(test_issue_source_read_bom_and_crlf),
		T(test_issue_source_read_audience_keys),
		T(test_issue_create_stores_rendered_issue),
		T(test_issue_create_front_matter_overrides_config),
		T(test_issue_create_overrides_list_and_subject),
		T(test_issue_create_refusals_store_nothing),
		T(test_issue_create_lists_and_where),
		T(test_issue_create_warns),
		T(test_issue_check_fields_warns_with_counts),
		T(test_issue_check_fields_refuses_field_nobody_has),
		T(test_issue_check_fields_web_copy_note),
		T(test_issue_schedule_edges),
		T(test_issue_schedule_refuses_sending_and_sent),
		T(test_issue_schedule_checks_fields),
		T(test_issue_start_send_takes_snapshot),
		T(test_issue_start_send_rolls_back_with_snapshot),
		T(test_issue_start_send_checks_fields),
		T(test_issue_start_send_refuses_other_states),
		T(test_issue_pause_and_resume_both_ways),
		T(test_issue_cancel_edges),
		T(test_issue_finish_only_when_nothing_left),
		T(test_issue_retry_failed_reopens_sent_only_with_failed_rows),
		T(test_issue_schedule_after_start_never_adds_later_subscribers),
		T(test_issue_remove_keeps_history_unless_forced),
		cmocka_unit_test(test_issue_parse_time_formats),
		T(test_issue_next_due_finds_due_work),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
