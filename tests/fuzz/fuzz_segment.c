/*
 * fuzz_segment.c - libFuzzer target for the segment language compiler
 * (segment_compile(), segment_bind(), segment_count(); src/segment.c).
 *
 * Input: one expression (cut at the first NUL byte).  A one-time set-up
 * makes an in-memory database with two lists (news, other) and a few
 * subscribers with attributes, events, deliveries and a bounce, so that
 * every term has rows to look at.  Broken promises abort():
 *   - compiling fails only with EX_DATAERR (or EX_OSERR) and no segment,
 *     and the error's place is "fuzz" or "fuzz:LINE:COL" with LINE and COL
 *     at least 1 and LINE no more than the input's lines;
 *   - what compiles is SQL that SQLite prepares, binds and runs over the
 *     fixture (segment_count), with and without a list;
 *   - every term is two-valued (segment.c invariant 2): the expression and
 *     `not (expression)` split the active subscribers exactly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/db.h"
#include "herald/herr.h"
#include "herald/segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1750000000LL
#define IN_MAX (2 * SEGMENT_EXPR_MAX)

static sqlite3 *db;

static void
broken(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_segment: broken promise: %s (%.300s)\n", what, detail ? detail : "");
	abort();
}

static void
setup(void)
{
	struct herr err;

	if (db_open(":memory:", DB_OPEN_CREATE, 1000, &db, &err) < 0)
		broken("cannot open the database", err.msg);
	if (db_exec(db,
	    "INSERT INTO lists (id, name, created_at) VALUES (1, 'news', 0), (2, 'other', 0);"
	    "INSERT INTO subscribers (id, email, email_key, name, attributes, status, created_at, "
	    "updated_at) VALUES "
	    "(1, 'a@x.org', 'a@x.org', 'Ada', '{\"role\":\"Social worker\",\"age\":\"42\","
	    "\"joined\":\"2024-03-01\",\"a.b\":\"x\"}', 'active', 0, 0),"
	    "(2, 'b@y.gov.uk', 'b@y.gov.uk', '', '{\"role\":\"\",\"age\":\"unknown\",\"n\":7}',"
	    " 'active', 0, 0),"
	    "(3, 'c@x.org', 'c@x.org', 'Zoë', '{}', 'active', 0, 0),"
	    "(4, 'd@x.org', 'd@x.org', 'Blk', '{\"role\":\"x\"}', 'blocklisted', 0, 0);"
	    "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at, confirmed_at) "
	    "VALUES (1, 1, 'confirmed', 1749000000, 1749000100), (1, 2, 'unconfirmed', 0, NULL),"
	    "(2, 3, 'confirmed', 1700000000, NULL), (1, 4, 'confirmed', 0, 0);"
	    "INSERT INTO issues (id, list_id, subject, from_addr, markdown, html, text, created_at)"
	    " VALUES (1, 1, 's', 'f@x.org', '', '', '', 0);"
	    "INSERT INTO deliveries (issue_id, subscriber_id, status, created_at, updated_at, "
	    "sent_at) VALUES (1, 1, 'sent', 0, 0, 1749900000), (1, 3, 'sent', 0, 0, 1749900000);"
	    "INSERT INTO events (kind, issue_id, subscriber_id, at, detail) VALUES "
	    "('open', 1, 1, 1749900001, '{}'), ('click', 1, 3, 1749950000, '{}'),"
	    "('open', 1, NULL, 1749950000, '{}');"
	    "INSERT INTO bounces (subscriber_id, recipient, source, class, reason, at) VALUES "
	    "(2, 'b@y.gov.uk', 'dsn', 'soft', 'mailboxfull', 1749990000);", &err) < 0)
		broken("cannot fill the database", err.msg);
}

static void
check_where(const char *where, const char *text)
{
	const char *p = where;
	long line, col, lines = 1;
	char *end;

	for (; *text; text++)
		lines += *text == '\n';
	if (strncmp(p, "fuzz", 4))
		broken("error place is not 'fuzz...'", where);
	p += 4;
	if (!*p)
		return;
	if (*p++ != ':')
		broken("error place is not fuzz:LINE:COL", where);
	line = strtol(p, &end, 10);
	if (*end != ':')
		broken("error place is not fuzz:LINE:COL", where);
	col = strtol(end + 1, &end, 10);
	if (*end || line < 1 || col < 1 || line > lines)
		broken("error line or column out of range", where);
}

static long long
count(const struct segment *seg, long long list_id, const char *text)
{
	struct herr err;
	long long n = -1;

	herr_clear(&err);
	if (segment_count(db, seg, list_id, &n, &err) < 0)
		broken("a compiled segment does not run", err.msg);
	(void)text;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *neg;
	struct segment *seg = (struct segment *)1, *nseg = NULL;
	struct herr err;
	size_t n;
	int rc;

	if (!db)
		setup();
	if (size > IN_MAX)
		size = IN_MAX;
	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	n = strlen(text);
	herr_clear(&err);
	rc = segment_compile(db, text, "fuzz", NOW, &seg, &err);
	if (rc < 0) {
		if (seg)
			broken("failed compile left a segment", text);
		if (err.code != EX_DATAERR && err.code != EX_OSERR)
			broken("compile failed with an unexpected code", err.msg);
		check_where(err.where, text);
		free(text);
		return 0;
	}
	if (!seg || !segment_sql(seg))
		broken("compile succeeded without a segment", text);
	if (n > SEGMENT_EXPR_MAX)
		broken("an expression over the length limit compiled", text);
	{
		long long all = count(seg, 0, text), news = count(seg, 1, text), not_all;

		if (all < 0 || all > 3 || news < 0 || news > 1 || news > all)
			broken("counts out of range", text);
		/* the negation: when it fits the limits, it splits the 3 active */
		if ((neg = malloc(n + 8))) {
			snprintf(neg, n + 8, "not (%s)", text);
			if (segment_compile(db, neg, "fuzz", NOW, &nseg, &err) == 0) {
				not_all = count(nseg, 0, neg);
				if (all + not_all != 3)
					broken("an expression and its negation do not split the audience",
					       text);
				segment_free(nseg);
			}
			free(neg);
		}
	}
	segment_free(seg);
	free(text);
	return 0;
}
