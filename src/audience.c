/*
 * audience.c - counting an issue's audience and the merge fields it lacks
 * (see audience.h).
 *
 * The counts are one aggregate query: a SUM per field over the audience, so
 * a list of a million costs one scan however many fields the issue uses.
 * Attribute keys are bound as parameters and looked up with json_each
 * rather than spliced into a JSON path: a key is whatever a CSV header
 * said, quotes and dots included, and never becomes SQL or path syntax.
 */
#include "herald/audience.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/buf.h"
#include "herald/db.h"
#include "herald/suggest.h"

#define ATTR_PREFIX "attr."

/* What the merge prints for an attribute: only strings (message.c). */
#define ATTR_PRESENT(P) \
	"EXISTS (SELECT 1 FROM json_each(s.attributes) WHERE key = " P \
	" AND type = 'text' AND value <> '')"

static int
is_attr(const char *field)
{
	return !strncmp(field, ATTR_PREFIX, strlen(ATTR_PREFIX));
}

/* The distinct attribute keys the audience has (non-empty strings), and how
 * many recipients have each; the best match for each attr.KEY gap. */
static int
suggest_keys(sqlite3 *db, long long list_id, struct audience_gap *gaps, size_t n,
             struct herr *err)
{
	sqlite3_stmt *st;
	char **keys = NULL;
	long long *have = NULL;
	size_t nk = 0, cap = 0, i, j;
	int rc, ret = -1;

	if (db_prepare(db, &st,
	               "SELECT a.key, count(*) FROM " AUDIENCE_SQL_FROM ", "
	               "json_each(s.attributes) a WHERE " AUDIENCE_SQL_WHERE("?1")
	               " AND a.type = 'text' AND a.value <> '' GROUP BY a.key "
	               "ORDER BY count(*) DESC, a.key LIMIT 200", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, list_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		if (nk == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nkeys = realloc(keys, ncap * sizeof *keys);
			long long *nhave;

			if (!nkeys)
				goto oom;
			keys = nkeys;
			if (!(nhave = realloc(have, ncap * sizeof *have)))
				goto oom;
			have = nhave;
			cap = ncap;
		}
		if (!(keys[nk] = strdup(k ? k : "")))
			goto oom;
		have[nk++] = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE) {
		db_error(db, err, "count attributes");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *key = gaps[i].field + strlen(ATTR_PREFIX), *best;

		if (!is_attr(gaps[i].field) || !gaps[i].missing)
			continue;
		/* leave the key itself out: we look for what was meant */
		for (j = 0; j < nk; j++)
			if (!strcmp(keys[j], key)) {
				char *t = keys[j];

				keys[j] = NULL;
				best = suggest_closest(key, (const char *const *)keys, nk);
				keys[j] = t;
				goto found;
			}
		best = suggest_closest(key, (const char *const *)keys, nk);
found:
		if (best) {
			snprintf(gaps[i].suggest, sizeof gaps[i].suggest, "%s", best);
			for (j = 0; j < nk; j++)
				if (keys[j] == best)
					gaps[i].suggest_have = have[j];
		}
	}
	ret = 0;
	goto out;
oom:
	herr_set(err, EX_OSERR, NULL, "out of memory");
out:
	sqlite3_finalize(st);
	for (i = 0; i < nk; i++)
		free(keys[i]);
	free(keys);
	free(have);
	return ret;
}

int
audience_field_gaps(sqlite3 *db, long long list_id, struct audience_gap *gaps, size_t n,
                    long long *total, struct herr *err)
{
	struct buf sql = BUF_INIT(64u << 10);
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc, ret = -1, any_attr = 0;

	*total = 0;
	if (buf_adds(&sql, "SELECT count(*)") < 0)
		goto oom;
	for (i = 0; i < n; i++) {
		gaps[i].missing = 0;
		gaps[i].suggest[0] = '\0';
		gaps[i].suggest_have = 0;
		if (is_attr(gaps[i].field)) {
			any_attr = 1;
			if (buf_addf(&sql, ", sum(NOT " ATTR_PRESENT("?%zu") ")", i + 2) < 0)
				goto oom;
		} else if (buf_adds(&sql, ", sum(trim(s.name) = '')") < 0)
			goto oom;
	}
	if (buf_adds(&sql, " FROM " AUDIENCE_SQL_FROM " WHERE " AUDIENCE_SQL_WHERE("?1")) < 0)
		goto oom;
	if (db_prepare(db, &st, buf_str(&sql), err) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, list_id);
	for (i = 0; i < n; i++)
		if (is_attr(gaps[i].field))
			sqlite3_bind_text(st, (int)i + 2, gaps[i].field + strlen(ATTR_PREFIX), -1,
			                  SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		db_error(db, err, "count the audience");
		goto out;
	}
	*total = sqlite3_column_int64(st, 0);
	for (i = 0; i < n; i++)
		gaps[i].missing = sqlite3_column_int64(st, (int)i + 1);
	if (any_attr && *total && suggest_keys(db, list_id, gaps, n, err) < 0)
		goto out;
	ret = 0;
	goto out;
oom:
	herr_set(err, EX_OSERR, NULL, "out of memory");
out:
	sqlite3_finalize(st);
	buf_free(&sql);
	return ret;
}
