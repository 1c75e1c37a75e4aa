/*
 * audience.c - the rule of who an issue's audience is, as SQL, and counting
 * and listing it and the merge fields it lacks (see audience.h).
 *
 * Reads subscribers, subscriptions, suppressions and lists; writes nothing.
 * Called by issue.c (counts, checks), ledger.c (the snapshot) and, through
 * issue.c, by `herald issue show|schedule|audience`.
 *
 * The rule is written from the subscriber's side (FROM subscribers s, the
 * lists in a subquery) so a person on several of the lists is one row
 * without a DISTINCT or GROUP BY: an IN subquery is a set.  The list ids
 * are one bound JSON array, read with json_each, so any number of lists is
 * one parameter and never SQL text.
 *
 * The sunset rule (audience.h, engagement.h (3)) is one more exclusion at
 * the end, after the suppression lookups: its set is built once per
 * statement.  audience_count_unengaged() turns it round (the rule without
 * it, and in the set), so the number stats shows as `skipped: unengaged`
 * is exactly who the snapshot left out for it.  The span is a process
 * setting (audience_set_sunset()) rather than a field each caller fills:
 * every audience of a process follows one config, and a caller that
 * forgot the field would mail the unengaged.
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
#include "herald/engagement.h"
#include "herald/suggest.h"

#define ATTR_PREFIX "attr."

/* What the merge prints for an attribute: only strings (message.c). */
#define ATTR_PRESENT(P) \
	"EXISTS (SELECT 1 FROM json_each(s.attributes) WHERE key = " P \
	" AND type = 'text' AND value <> '')"

/* the rule and the SQL around it; a compiled segment is at most 1 MiB */
#define SQL_MAX ((1u << 20) + (64u << 10))

/* [audience] sunset_after: set once by the CLI before any audience is
 * evaluated (cmd_setup()); 0 is off. */
static long long sunset_after;

/* What rule_sql() writes: the audience, or who the sunset takes out of it. */
enum rule_mode { RULE_AUDIENCE, RULE_UNENGAGED };

#define P_FROM "?99" /* AUDIENCE_PARAM_SUNSET */
#define P_NOW  "?100"

void
audience_set_sunset(long long secs)
{
	sunset_after = secs > 0 ? secs : 0;
}

long long
audience_sunset(void)
{
	return sunset_after;
}

int
audience_sunset_applies(const struct audience *a)
{
	return sunset_after > 0 && !segment_targets_engagement(a->seg);
}

int
audience_add_list(struct audience *a, long long list_id, struct herr *err)
{
	size_t i;

	for (i = 0; i < a->n_lists; i++)
		if (a->list_ids[i] == list_id)
			return 0;
	if (a->n_lists == AUDIENCE_LISTS_MAX)
		return herr_set(err, EX_DATAERR, NULL, "more than %d lists", AUDIENCE_LISTS_MAX);
	a->list_ids[a->n_lists++] = list_id;
	return 0;
}

void
audience_clear(struct audience *a)
{
	segment_free(a->seg);
	memset(a, 0, sizeof *a);
}

static int
rule_sql(const struct audience *a, enum rule_mode mode, struct buf *sql)
{
	/* Cheapest first, as segment.c orders its terms: a column, the lists
	 * (index lookups), the segment, then the suppression lookups only for
	 * those left, and the sunset's set last. */
	if (buf_adds(sql, "(s.status = 'active' AND s.id IN (SELECT sub.subscriber_id "
	             "FROM subscriptions sub WHERE sub.list_id IN (SELECT value FROM "
	             "json_each(?1)) AND sub.status = 'confirmed')") < 0)
		return -1;
	if (a->seg && buf_addf(sql, " AND %s", segment_sql(a->seg)) < 0)
		return -1;
	if (buf_adds(sql, " AND " SUPPRESS_SQL_NOT("s.email_key")) < 0)
		return -1;
	if (mode == RULE_UNENGAGED)
		return buf_adds(sql, audience_sunset_applies(a)
		                ? " AND " ENGAGEMENT_SQL_SUNSET(P_FROM, P_NOW) ")" : " AND 0)");
	if (audience_sunset_applies(a))
		return buf_adds(sql, " AND NOT " ENGAGEMENT_SQL_SUNSET(P_FROM, P_NOW) ")");
	return buf_adds(sql, ")");
}

int
audience_sql(const struct audience *a, struct buf *sql)
{
	return rule_sql(a, RULE_AUDIENCE, sql);
}

int
audience_bind(const struct audience *a, sqlite3_stmt *st, struct herr *err)
{
	char ids[AUDIENCE_LISTS_MAX * 22 + 3];
	size_t i, k = 0;

	ids[k++] = '[';
	for (i = 0; i < a->n_lists; i++)
		k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%lld", i ? "," : "",
		                      a->list_ids[i]);
	snprintf(ids + k, sizeof ids - k, "]");
	if (sqlite3_bind_text(st, 1, ids, -1, SQLITE_TRANSIENT) != SQLITE_OK)
		return herr_set(err, EX_OSERR, NULL, "bind the audience's lists: out of memory");
	if (audience_sunset_applies(a)) {
		long long now = db_now();

		if (sqlite3_bind_int64(st, AUDIENCE_PARAM_SUNSET, now - sunset_after) != SQLITE_OK ||
		    sqlite3_bind_int64(st, AUDIENCE_PARAM_SUNSET + 1, now) != SQLITE_OK)
			return herr_set(err, EX_SOFTWARE, NULL, "the statement lacks the sunset's "
			                "parameters");
	}
	if (a->seg)
		return segment_bind(a->seg, st, err);
	return 0;
}

/* Prepare "HEAD WHERE (rule)TAIL" and bind the rule; HEAD names
 * subscribers as `s`. */
static int
prepare_mode(sqlite3 *db, const struct audience *a, enum rule_mode mode, const char *head,
             const char *tail, sqlite3_stmt **st, struct herr *err)
{
	struct buf sql = BUF_INIT(SQL_MAX);
	int rc;

	*st = NULL;
	if (buf_addf(&sql, "%s WHERE ", head) < 0 ||
	    rule_sql(a, mode, &sql) < 0 || buf_adds(&sql, tail) < 0) {
		buf_free(&sql);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	rc = db_prepare(db, st, buf_str(&sql), err);
	buf_free(&sql);
	if (rc < 0)
		return -1;
	if (audience_bind(a, *st, err) < 0) {
		sqlite3_finalize(*st);
		*st = NULL;
		return -1;
	}
	return 0;
}

static int
prepare(sqlite3 *db, const struct audience *a, const char *head, const char *tail,
        sqlite3_stmt **st, struct herr *err)
{
	return prepare_mode(db, a, RULE_AUDIENCE, head, tail, st, err);
}

static int
count_mode(sqlite3 *db, const struct audience *a, enum rule_mode mode, long long *n,
           struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	if (prepare_mode(db, a, mode, "SELECT count(*) FROM subscribers s", "", &st, err) < 0)
		return -1;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "count the audience");
	return 0;
}

int
audience_count(sqlite3 *db, const struct audience *a, long long *n, struct herr *err)
{
	return count_mode(db, a, RULE_AUDIENCE, n, err);
}

int
audience_count_unengaged(sqlite3 *db, const struct audience *a, long long *n,
                         struct herr *err)
{
	*n = 0;
	if (!audience_sunset_applies(a))
		return 0;
	return count_mode(db, a, RULE_UNENGAGED, n, err);
}

int
audience_record(sqlite3 *db, long long issue_id, const struct audience *a, const char *segment,
                const char *where, struct herr *err)
{
	sqlite3_stmt *st;
	long long unengaged;
	char ids[AUDIENCE_LISTS_MAX * 22 + 3];
	size_t i, k = 0;
	int rc;

	if (audience_count_unengaged(db, a, &unengaged, err) < 0)
		return -1;
	ids[k++] = '[';
	for (i = 0; i < a->n_lists; i++)
		k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%lld", i ? "," : "",
		                      a->list_ids[i]);
	snprintf(ids + k, sizeof ids - k, "]");
	/* the names in the audience's order; the saved segment's expression
	 * as it is now (it may be edited or removed later) */
	if (db_prepare(db, &st,
	               "INSERT INTO send_audiences (issue_id, lists, segment, expr, sunset_after, "
	               "sunset_skipped, unengaged, at) VALUES (?1, (SELECT json_group_array(name) "
	               "FROM (SELECT l.name FROM json_each(?2) j JOIN lists l ON l.id = j.value "
	               "ORDER BY j.key)), ?3, coalesce((SELECT expr FROM segments WHERE name = ?3), "
	               "?4), ?5, ?6, ?7, ?8) ON CONFLICT (issue_id) DO NOTHING", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_text(st, 2, ids, -1, SQLITE_TRANSIENT);
	if (segment && segment[0])
		sqlite3_bind_text(st, 3, segment, -1, SQLITE_STATIC);
	else if (where && where[0])
		sqlite3_bind_text(st, 4, where, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, audience_sunset_applies(a) ? sunset_after : 0);
	sqlite3_bind_int(st, 6, sunset_after > 0 && !audience_sunset_applies(a));
	sqlite3_bind_int64(st, 7, unengaged);
	sqlite3_bind_int64(st, 8, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "record the audience");
	return 0;
}

int
audience_sent_get(sqlite3 *db, long long issue_id, struct audience_sent *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if (db_prepare(db, &st, "SELECT lists, ifnull(segment, ''), ifnull(expr, ''), "
	               "sunset_after, sunset_skipped, unengaged, at FROM send_audiences "
	               "WHERE issue_id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->found = 1;
		snprintf(out->lists, sizeof out->lists, "%s",
		         (const char *)sqlite3_column_text(st, 0));
		snprintf(out->segment, sizeof out->segment, "%s",
		         (const char *)sqlite3_column_text(st, 1));
		snprintf(out->expr, sizeof out->expr, "%s", (const char *)sqlite3_column_text(st, 2));
		out->sunset_after = sqlite3_column_int64(st, 3);
		out->sunset_skipped = sqlite3_column_int(st, 4);
		out->unengaged = sqlite3_column_int64(st, 5);
		out->at = sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read the audience of a send");
	return 0;
}

int
audience_each(sqlite3 *db, const struct audience *a,
              int (*fn)(void *ctx, const struct audience_row *r), void *ctx, struct herr *err)
{
	sqlite3_stmt *st;
	struct audience_row r;
	int rc;

	/* the lists they are reached through, in the audience's order (the
	 * key of json_each is the position in the array) */
	if (prepare(db, a,
	            "SELECT s.id, s.email, s.name, (SELECT group_concat(name, ',') FROM "
	            "(SELECT l.name FROM json_each(?1) j JOIN lists l ON l.id = j.value "
	            "JOIN subscriptions sub ON sub.list_id = l.id AND sub.subscriber_id = s.id "
	            "WHERE sub.status = 'confirmed' ORDER BY j.key)) FROM subscribers s",
	            " ORDER BY s.id", &st, err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.id = sqlite3_column_int64(st, 0);
		r.email = (const char *)sqlite3_column_text(st, 1);
		r.name = (const char *)sqlite3_column_text(st, 2);
		r.lists = (const char *)sqlite3_column_text(st, 3);
		if (!r.email || !r.name || !r.lists) {
			sqlite3_finalize(st);
			return herr_set(err, EX_OSERR, NULL, "out of memory");
		}
		if (fn(ctx, &r) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list the audience");
	return 0;
}

static int
is_attr(const char *field)
{
	return !strncmp(field, ATTR_PREFIX, strlen(ATTR_PREFIX));
}

/* The distinct attribute keys the audience has (non-empty strings), and how
 * many recipients have each; the best match for each attr.KEY gap. */
static int
suggest_keys(sqlite3 *db, const struct audience *a, struct audience_gap *gaps, size_t n,
             struct herr *err)
{
	sqlite3_stmt *st;
	char **keys = NULL;
	long long *have = NULL;
	size_t nk = 0, cap = 0, i, j;
	int rc, ret = -1;

	if (prepare(db, a, "SELECT a.key, count(*) FROM subscribers s, json_each(s.attributes) a",
	            " AND a.type = 'text' AND a.value <> '' GROUP BY a.key "
	            "ORDER BY count(*) DESC, a.key LIMIT 200", &st, err) < 0)
		return -1;
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
audience_field_gaps(sqlite3 *db, const struct audience *a, struct audience_gap *gaps, size_t n,
                    long long *total, struct herr *err)
{
	struct buf sql = BUF_INIT(64u << 10);
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc, ret = -1, any_attr = 0;

	*total = 0;
	/* the keys are ?2 .. ?(n + 1), below the sunset's parameters */
	if (n + 1 >= AUDIENCE_PARAM_SUNSET)
		return herr_set(err, EX_SOFTWARE, NULL, "%zu merge fields to count; at most %d", n,
		                AUDIENCE_PARAM_SUNSET - 2);
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
	if (buf_adds(&sql, " FROM subscribers s") < 0)
		goto oom;
	if (prepare(db, a, buf_str(&sql), "", &st, err) < 0)
		goto out;
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
	if (any_attr && *total && suggest_keys(db, a, gaps, n, err) < 0)
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
