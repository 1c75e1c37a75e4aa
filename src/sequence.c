/*
 * sequence.c - sequences: steps sent on each subscriber's own clock (see
 * sequence.h for the enrolment states and rules (1)-(6)).
 *
 * Owns the tables sequences, sequence_steps and sequence_enrolments
 * (sql/024_sequences.sql).  A step's issue is issue.c's (issue_create(),
 * issue_welcome_start(), issue_welcome_reopen(), pause, resume, cancel),
 * its rows the ledger's (ledger_add()), who may be mailed audience.c's
 * (audience_sql()), and sending sendjob.c's.  Called by src/cmd/sequence.c
 * (the verbs) and src/cmd/run.c (sequence_enqueue_due() before the sends).
 */
#include "herald/sequence.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald/audience.h"
#include "herald/buf.h"
#include "herald/db.h"
#include "herald/issue.h"
#include "herald/ledger.h"
#include "herald/list.h"
#include "herald/report.h"
#include "herald/segment.h"

#define SQL_MAX (64u << 10)
#define ENQUEUE_BATCH 1000 /* enrolments moved per transaction */

/* --- pure helpers: delays, local times, zones --- */

int
sequence_parse_delay(const char *s, long long *out, struct herr *err)
{
	const char *p = s;
	long long n = 0, unit;
	int neg = 0, digits = 0;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	for (; isdigit((unsigned char)*p) && digits < 6; p++, digits++)
		n = n * 10 + (*p - '0');
	switch (*p) {
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: unit = 0; break;
	}
	if (!digits || !unit || p[1])
		return herr_set(err, EX_USAGE, NULL,
		                "invalid delay '%s': a number and m, h, d or w, e.g. 0d, 3d, 2w "
		                "or -14d", s);
	*out = (neg ? -n : n) * unit;
	return 0;
}

int
sequence_parse_at_local(const char *s, int *minutes, struct herr *err)
{
	if (strlen(s) == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
	    s[2] == ':' && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4])) {
		int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');

		if (h < 24 && m < 60) {
			*minutes = h * 60 + m;
			return 0;
		}
	}
	return herr_set(err, EX_USAGE, NULL, "invalid time of day '%s': use HH:MM, e.g. 09:00", s);
}

void
sequence_format_delay(long long delay, char *out, size_t n)
{
	long long a = delay < 0 ? -delay : delay;
	const char *sign = delay < 0 ? "-" : "";

	if (a % 86400 == 0)
		snprintf(out, n, "%s%lldd", sign, a / 86400);
	else if (a % 3600 == 0)
		snprintf(out, n, "%s%lldh", sign, a / 3600);
	else
		snprintf(out, n, "%s%lldm", sign, a / 60);
}

int
sequence_zone_valid(const char *zone)
{
	const char *dir = getenv("TZDIR"), *p;
	char path[512];

	if (!zone || !*zone || strlen(zone) >= SEQUENCE_ZONE_MAX)
		return 0;
	if (!strcmp(zone, "UTC"))
		return 1;
	/* a name, never a path out of the database nor a POSIX TZ rule */
	if (zone[0] == '/' || zone[0] == '.' || strstr(zone, ".."))
		return 0;
	for (p = zone; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
			return 0;
	snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", zone);
	return access(path, R_OK) == 0;
}

/* Point the C library's local time at `zone` (NULL: back to what the
 * process had).  Only when it changes: glibc reads the zone file again at
 * each change of TZ, and a pass computes a due time per subscriber.  -1
 * when the environment cannot be changed (out of memory). */
static int
use_zone(const char *zone)
{
	static int saved, had;
	static char old[256], cur[SEQUENCE_ZONE_MAX + 1];
	const char *o;
	int rc;

	if (!saved) {
		if ((o = getenv("TZ")) && strlen(o) < sizeof old) {
			snprintf(old, sizeof old, "%s", o);
			had = 1;
		}
		saved = 1;
	}
	if (zone && !strcmp(cur, zone))
		return 0;
	cur[0] = '\0';
	if (zone)
		rc = setenv("TZ", zone, 1);
	else if (had)
		rc = setenv("TZ", old, 1);
	else
		rc = unsetenv("TZ");
	tzset();
	if (rc == 0 && zone)
		snprintf(cur, sizeof cur, "%s", zone);
	return rc;
}

void
sequence_local_reset(void)
{
	use_zone(NULL);
}

long long
sequence_due_at(long long start, long long delay, int at_local, const char *zone)
{
	long long base = start + delay, t = base;
	time_t tt = (time_t)base;
	struct tm tm;
	int day;

	if (at_local < 0)
		return base;
	/* no zone to be had (out of memory): the point itself, not a
	 * time in a zone nobody asked for */
	if (use_zone(zone) < 0 || !localtime_r(&tt, &tm))
		return base;
	/* that local day at HH:MM, else the next day's; mktime() settles a
	 * time that a DST change skips or repeats (tm_isdst = -1) */
	for (day = 0; day < 3; day++) {
		struct tm x = tm;

		x.tm_mday += day;
		x.tm_hour = at_local / 60;
		x.tm_min = at_local % 60;
		x.tm_sec = 0;
		x.tm_isdst = -1;
		t = (long long)mktime(&x);
		if (t == -1) {
			t = base;
			break;
		}
		if (t >= base)
			break;
	}
	return t;
}

/* --- reading --- */

static void
copy_col(sqlite3_stmt *st, int col, char *out, size_t n)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	snprintf(out, n, "%s", s ? (const char *)s : "");
}

#define DEF_COLS "s.id, s.name, s.list_id, l.name, s.segment, s.where_expr, " \
	"s.start_from, s.status, s.created_at FROM sequences s JOIN lists l ON l.id = s.list_id"

static void
read_def(sqlite3_stmt *st, struct sequence_def *d)
{
	memset(d, 0, sizeof *d);
	d->id = sqlite3_column_int64(st, 0);
	copy_col(st, 1, d->name, sizeof d->name);
	d->list_id = sqlite3_column_int64(st, 2);
	copy_col(st, 3, d->list_name, sizeof d->list_name);
	copy_col(st, 4, d->segment, sizeof d->segment);
	copy_col(st, 5, d->where, sizeof d->where);
	copy_col(st, 6, d->start_from, sizeof d->start_from);
	copy_col(st, 7, d->status, sizeof d->status);
	d->created_at = sqlite3_column_int64(st, 8);
}

int
sequence_get(sqlite3 *db, const char *name, struct sequence_def *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT " DEF_COLS " WHERE s.name = ?1", err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		read_def(st, out);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no sequence '%s'", name);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read sequence");
	return 0;
}

int
sequence_each(sqlite3 *db, int (*fn)(void *ctx, const struct sequence_def *d), void *ctx,
              struct herr *err)
{
	struct sequence_def d;
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, "SELECT " DEF_COLS " ORDER BY s.name", err) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_def(st, &d);
		if (fn(ctx, &d) < 0) {
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "list sequences");
	return 0;
}

int
sequence_steps(sqlite3 *db, long long id, struct sequence_step **out, size_t *n,
               struct herr *err)
{
	struct sequence_step *v = NULL, *nv;
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (db_prepare(db, &st, "SELECT t.issue_id, t.delay, ifnull(t.at_local, -1), "
	               "t.created_at, i.subject, i.status FROM sequence_steps t JOIN issues i "
	               "ON i.id = t.issue_id WHERE t.sequence_id = ?1 ORDER BY t.delay", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			if (!(nv = realloc(v, cap * sizeof *v))) {
				sqlite3_finalize(st);
				free(v);
				return herr_set(err, EX_OSERR, NULL, "out of memory");
			}
			v = nv;
		}
		memset(&v[*n], 0, sizeof v[*n]);
		v[*n].issue_id = sqlite3_column_int64(st, 0);
		v[*n].delay = sqlite3_column_int64(st, 1);
		v[*n].at_local = sqlite3_column_int(st, 2);
		v[*n].created_at = sqlite3_column_int64(st, 3);
		copy_col(st, 4, v[*n].subject, sizeof v[*n].subject);
		copy_col(st, 5, v[*n].status, sizeof v[*n].status);
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		*n = 0;
		return db_error(db, err, "read sequence steps");
	}
	*out = v;
	return 0;
}

int
sequence_is_step(sqlite3 *db, long long issue_id, int *is_step, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	*is_step = 0;
	if (db_prepare(db, &st, "SELECT 1 FROM sequence_steps WHERE issue_id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(db, err, "read sequence step");
	*is_step = rc == SQLITE_ROW;
	return 0;
}

/* --- the audience: the list and the segment, compiled at `now` --- */

static int
build_audience(sqlite3 *db, const struct sequence_def *d, long long now, struct audience *a,
               struct herr *err)
{
	struct segment *seg = NULL;
	char where[SEQUENCE_NAME_MAX + 16];

	memset(a, 0, sizeof *a);
	if (audience_add_list(a, d->list_id, err) < 0)
		return -1;
	snprintf(where, sizeof where, "sequence %s", d->name);
	if (d->segment[0] && segment_compile_saved(db, d->segment, now, &seg, err) < 0)
		return -1;
	if (d->where[0] && segment_compile(db, d->where, where, now, &seg, err) < 0)
		return -1;
	a->seg = seg;
	return 0;
}

/* SQL for a subscription's start, by start_from ("?3": the attribute's
 * JSON path), and for when the subscriber came. */
static const char *
start_sql(const char *start_from)
{
	if (!strcmp(start_from, "confirmed"))
		return "ifnull(sub.confirmed_at, sub.created_at)";
	if (!strcmp(start_from, "joined"))
		return "sub.created_at";
	/* a date (midnight UTC) or a date and time; anything else is NULL */
	return "CAST(strftime('%s', json_extract(s.attributes, ?3)) AS INTEGER)";
}

#define CAME_SQL "(CASE WHEN ?4 = 'joined' THEN sub.created_at " \
	"ELSE ifnull(sub.confirmed_at, sub.created_at) END)"

static void
attr_path(const char *start_from, char *out, size_t n)
{
	/* attr.KEY -> $."KEY" (keys are checked at create: no quotes) */
	snprintf(out, n, "$.\"%s\"", strncmp(start_from, "attr.", 5) ? "" : start_from + 5);
}

/*
 * Enrol into sequence `d` those in its audience `a` (the list, and the
 * segment if any): with `existing` 0, those who came at or after it was
 * created (enrolled_at: when they came); with 1, everyone in it now
 * (enrolled_at now; start now, or their own with `backfill`).  Never
 * twice (the primary key).  A newcomer who comes into the segment later
 * is enrolled then, with their own start.
 */
static int
enrol(sqlite3 *db, const struct sequence_def *d, const struct audience *a, int existing,
      int backfill, long long now, long long *n, struct herr *err)
{
	struct buf sql = BUF_INIT(SQL_MAX);
	char path[SEQUENCE_NAME_MAX + 8];
	const char *start = start_sql(d->start_from);
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	/* ?2 sequence, ?3 attribute path, ?4 start_from, ?5 backfill, ?6
	 * list, ?7 now or the sequence's creation; ?1 and ?99 up: audience.h */
	if (buf_addf(&sql, "INSERT INTO sequence_enrolments (sequence_id, subscriber_id, "
	             "start_at, enrolled_at, backfill) SELECT ?2, sub.subscriber_id, %s, %s, ?5 "
	             "FROM subscriptions sub JOIN subscribers s ON s.id = sub.subscriber_id "
	             "WHERE sub.list_id = ?6 AND %s IS NOT NULL AND ",
	             existing && !backfill ? "?7" : start, existing ? "?7" : CAME_SQL, start) < 0 ||
	    (!existing && buf_adds(&sql, CAME_SQL " >= ?7 AND NOT EXISTS (SELECT 1 FROM "
	                           "sequence_enrolments e WHERE e.sequence_id = ?2 AND "
	                           "e.subscriber_id = sub.subscriber_id) AND ") < 0) ||
	    audience_sql(a, &sql) < 0 || buf_adds(&sql, " ON CONFLICT DO NOTHING") < 0) {
		herr_set(err, EX_SOFTWARE, NULL, "sequence query too long");
		goto out;
	}
	if (db_prepare(db, &st, buf_str(&sql), err) < 0 || audience_bind(a, st, err) < 0)
		goto out;
	attr_path(d->start_from, path, sizeof path);
	/* an index the statement does not use is a slot left unread: harmless */
	sqlite3_bind_int64(st, 2, d->id);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, d->start_from, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, backfill);
	sqlite3_bind_int64(st, 6, d->list_id);
	sqlite3_bind_int64(st, 7, existing ? now : d->created_at);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "enrol subscribers");
		goto out;
	}
	*n = sqlite3_changes(db);
	ret = 0;
out:
	sqlite3_finalize(st);
	buf_free(&sql);
	return ret;
}

/* --- making and changing sequences --- */

static int
check_start_from(const char *s, struct herr *err)
{
	const char *p;

	if (!strcmp(s, "joined") || !strcmp(s, "confirmed"))
		return 0;
	if (!strncmp(s, "attr.", 5) && s[5] && strlen(s) < SEQUENCE_NAME_MAX) {
		for (p = s + 5; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
				break;
		if (!*p)
			return 0;
	}
	return herr_set(err, EX_USAGE, NULL,
	                "invalid --start-from '%s': joined, confirmed or attr.DATE_FIELD", s);
}

int
sequence_create(sqlite3 *db, const struct sequence_new *n, long long *id, long long *enrolled,
                struct herr *err)
{
	struct sequence_def d;
	struct audience a;
	struct list l;
	sqlite3_stmt *st;
	long long now = db_now(), k = 0;
	int rc;

	if (id)
		*id = 0;
	if (enrolled)
		*enrolled = 0;
	if (segment_name_check(n->name, err) < 0)
		return herr_wrap(err, "sequence name");
	if (n->segment && n->where)
		return herr_set(err, EX_USAGE, NULL, "give --segment or --where, not both");
	if (n->backfill && !n->include_existing)
		return herr_set(err, EX_USAGE, NULL, "--backfill goes with --include-existing");
	if (check_start_from(n->start_from ? n->start_from : "joined", err) < 0 ||
	    list_get(db, n->list_name, &l, err) < 0)
		return -1;
	memset(&d, 0, sizeof d);
	snprintf(d.name, sizeof d.name, "%s", n->name);
	d.list_id = l.id;
	snprintf(d.segment, sizeof d.segment, "%s", n->segment ? n->segment : "");
	if (n->where && strlen(n->where) >= sizeof d.where)
		return herr_set(err, EX_USAGE, NULL, "--where is longer than %zu bytes",
		                sizeof d.where - 1);
	snprintf(d.where, sizeof d.where, "%s", n->where ? n->where : "");
	snprintf(d.start_from, sizeof d.start_from, "%s", n->start_from ? n->start_from : "joined");
	d.created_at = now;
	/* the filter must compile now; it is compiled again at each use */
	if (build_audience(db, &d, now, &a, err) < 0 || db_begin(db, err) < 0) {
		audience_clear(&a);
		return -1;
	}
	if (db_prepare(db, &st, "INSERT INTO sequences (name, list_id, segment, where_expr, "
	               "start_from, created_at) VALUES (?1, ?2, nullif(?3, ''), nullif(?4, ''), "
	               "?5, ?6)", err) < 0)
		goto fail;
	sqlite3_bind_text(st, 1, d.name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, d.list_id);
	sqlite3_bind_text(st, 3, d.segment, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, d.where, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, d.start_from, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT) {
		herr_set(err, EX_DATAERR, NULL, "a sequence named '%s' exists already", d.name);
		goto fail;
	}
	if (rc != SQLITE_DONE) {
		db_error(db, err, "create sequence");
		goto fail;
	}
	d.id = sqlite3_last_insert_rowid(db);
	if (n->include_existing && enrol(db, &d, &a, 1, n->backfill, now, &k, err) < 0)
		goto fail;
	if (db_commit(db, err) < 0)
		goto fail;
	audience_clear(&a);
	if (id)
		*id = d.id;
	if (enrolled)
		*enrolled = k;
	return 0;
fail:
	db_rollback(db);
	audience_clear(&a);
	return -1;
}

/* A step goes to the sequence's list, to whom the sequence says: the
 * front matter may not say otherwise. */
static int
check_step_source(const struct issue_source *src, const char *list_name, struct herr *err)
{
	char where[HERR_WHERE_MAX];
	unsigned line = src->n_lists ? src->lists_line : src->segment ? src->segment_line :
	                src->where ? src->where_line : src->variants_line;

	(void)list_name;
	if (!src->n_lists && !src->segment && !src->where && !src->n_variants)
		return 0;
	snprintf(where, sizeof where, "%s:%u", src->path, line);
	return herr_set(err, EX_DATAERR, where,
	                "a sequence step goes to the sequence's list and segment, with one "
	                "subject; leave 'lists:', 'segment:', 'where:' and 'subject_variants:' out");
}

int
sequence_add_step(sqlite3 *db, const struct config *cfg, const char *name, const char *path,
                  long long delay, int at_local, void (*warn)(void *ctx, const char *msg),
                  void *warn_ctx, long long *issue_id, struct herr *err)
{
	struct sequence_def d;
	sqlite3_stmt *st;
	long long id = 0;
	int rc;

	*issue_id = 0;
	if (sequence_get(db, name, &d, err) < 0 ||
	    issue_create_for_list(db, cfg, path, d.list_name, check_step_source, warn, warn_ctx,
	                          &id, err) < 0)
		return -1;
	/* issue_create() commits its draft; making it a step is the second
	 * transaction, and the draft goes again should that fail (as
	 * welcome_set() does) */
	if (db_begin(db, err) < 0)
		goto fail;
	if (issue_welcome_start(db, id, err) < 0 ||
	    (!strcmp(d.status, "paused") && issue_pause(db, id, err) < 0) ||
	    db_prepare(db, &st, "INSERT INTO sequence_steps (sequence_id, issue_id, delay, "
	               "at_local, created_at) VALUES (?1, ?2, ?3, ?4, ?5)", err) < 0) {
		db_rollback(db);
		goto fail;
	}
	sqlite3_bind_int64(st, 1, d.id);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, delay);
	if (at_local >= 0)
		sqlite3_bind_int(st, 4, at_local);
	sqlite3_bind_int64(st, 5, db_now());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		char t[32];

		sequence_format_delay(delay, t, sizeof t);
		if (rc == SQLITE_CONSTRAINT)
			herr_set(err, EX_DATAERR, NULL, "sequence '%s' has a step at %s already",
			         name, t);
		else
			db_error(db, err, "add sequence step");
		db_rollback(db);
		goto fail;
	}
	if (db_commit(db, err) < 0)
		goto fail;
	*issue_id = id;
	return 0;
fail:
	issue_remove(db, id, 1, NULL);
	return -1;
}

/* Move every step issue of `d` whose status is `from` (NULL: any not
 * yet sent or cancelled) with `move`. */
static int
steps_each_issue(sqlite3 *db, const struct sequence_def *d, const char *from,
                 int (*move)(sqlite3 *db, long long id, struct herr *err), struct herr *err)
{
	struct sequence_step *v;
	size_t n, i;
	int pick;

	if (sequence_steps(db, d->id, &v, &n, err) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		pick = from ? !strcmp(v[i].status, from) :
		              strcmp(v[i].status, "sent") && strcmp(v[i].status, "cancelled");
		if (pick && move(db, v[i].issue_id, err) < 0) {
			free(v);
			return -1;
		}
	}
	free(v);
	return 0;
}

static int
resume_issue(sqlite3 *db, long long id, struct herr *err)
{
	char status[16];

	return issue_resume(db, id, status, err);
}

static int
set_status(sqlite3 *db, const char *name, const char *status, const char *issue_from,
           int (*move)(sqlite3 *db, long long id, struct herr *err), struct herr *err)
{
	struct sequence_def d;
	sqlite3_stmt *st;
	int rc;

	if (sequence_get(db, name, &d, err) < 0 || db_begin(db, err) < 0)
		return -1;
	if (db_prepare(db, &st, "UPDATE sequences SET status = ?2 WHERE id = ?1", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, d.id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "change sequence");
		goto fail;
	}
	if ((move && steps_each_issue(db, &d, issue_from, move, err) < 0) || db_commit(db, err) < 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

int
sequence_pause(sqlite3 *db, const char *name, struct herr *err)
{
	/* (5): the steps' queued rows wait too */
	return set_status(db, name, "paused", "sending", issue_pause, err);
}

int
sequence_resume(sqlite3 *db, const char *name, struct herr *err)
{
	return set_status(db, name, "active", "paused", resume_issue, err);
}

int
sequence_remove(sqlite3 *db, const char *name, struct herr *err)
{
	struct sequence_def d;

	if (sequence_get(db, name, &d, err) < 0 || db_begin(db, err) < 0)
		return -1;
	/* the issues stay, with their figures; what was queued does not go */
	if (steps_each_issue(db, &d, NULL, issue_cancel, err) < 0)
		goto fail;
	if (db_run2(db, "DELETE FROM sequences WHERE id = ?1", d.id, 0, NULL, "remove sequence",
	            err) < 0 ||
	    db_commit(db, err) < 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

/* --- stats --- */

void
sequence_stats_clear(struct sequence_stats *s)
{
	free(s->steps);
	memset(s, 0, sizeof *s);
}

int
sequence_stats(sqlite3 *db, const char *name, struct sequence_stats *out, struct herr *err)
{
	struct sequence_def d;
	struct sequence_step *v = NULL;
	sqlite3_stmt *st;
	size_t n = 0, i;
	int rc;

	memset(out, 0, sizeof *out);
	if (sequence_get(db, name, &d, err) < 0 || sequence_steps(db, d.id, &v, &n, err) < 0)
		return -1;
	if (n && !(out->steps = calloc(n, sizeof *out->steps))) {
		free(v);
		return herr_set(err, EX_OSERR, NULL, "out of memory");
	}
	out->n_steps = n;
	for (i = 0; i < n; i++) {
		struct sequence_step_stats *s = &out->steps[i];
		struct report r;

		s->step = v[i];
		if (report_compute(db, v[i].issue_id, &r, err) < 0)
			goto fail;
		s->sent = r.deliveries.sent;
		s->queued = r.deliveries.pending + r.deliveries.sending + r.deliveries.deferred;
		s->failed = r.deliveries.bounced + r.deliveries.failed + r.deliveries.skipped;
		s->opens = r.opens.unique;
		s->clicks = r.clicks.unique;
		s->unsubscribes = r.unsubscribes;
		report_clear(&r);
	}
	free(v);
	v = NULL;
	if (db_prepare(db, &st, "SELECT state, passed, count(*) FROM sequence_enrolments "
	               "WHERE sequence_id = ?1 GROUP BY state, passed", err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, d.id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		long long k = sqlite3_column_int64(st, 2), passed = sqlite3_column_int64(st, 1);
		int active = !strcmp((const char *)sqlite3_column_text(st, 0), "active");

		out->enrolled += k;
		if (!active) {
			out->left += k;
			continue;
		}
		out->active += k;
		if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
			out->waiting += k;
			continue;
		}
		/* the step they last reached: the greatest delay <= passed */
		for (i = n; i-- > 0;)
			if (out->steps[i].step.delay <= passed) {
				out->steps[i].at_step += k;
				break;
			}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_error(db, err, "count enrolments");
		goto fail;
	}
	return 0;
fail:
	free(v);
	sequence_stats_clear(out);
	return -1;
}

/* --- the run: who is due --- */

struct candidate {
	long long subscriber_id, start_at, enrolled_at, passed;
	int       backfill, has_passed, member;
	char      why[16];                /* when not a member: rule (3) */
	char      zone[SEQUENCE_ZONE_MAX]; /* "" for the default */
};

/* Every active enrolment of `d` that may have a step due at `now`: its
 * next step's point has come (a send window can only move it later, which
 * pick_step() decides).  The range ?3 and ?5 lets the index narrow first. */
static int
load_candidates(sqlite3 *db, const struct sequence_def *d, const struct audience *a,
                const struct sequence_step *steps, size_t n_steps, long long now,
                struct candidate **out, size_t *n_out, struct herr *err)
{
	struct buf sql = BUF_INIT(SQL_MAX);
	struct candidate *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	size_t cap = 0, n = 0;
	int rc, ret = -1;

	*out = NULL;
	*n_out = 0;
	/* ?2 sequence, ?3 earliest delay, ?4 now, ?5 latest delay, ?6 list; ?1 and
	 * ?99 and up are the audience's (audience.h) */
	if (buf_adds(&sql, "SELECT e.subscriber_id, e.start_at, e.enrolled_at, e.backfill, "
	             "e.passed, ifnull(json_extract(s.attributes, '$.timezone'), ''), "
	             "ifnull(sub.status, 'unsubscribed'), s.status, ") < 0 ||
	    audience_sql(a, &sql) < 0 ||
	    buf_adds(&sql, " FROM sequence_enrolments e JOIN subscribers s ON s.id = "
	             "e.subscriber_id LEFT JOIN subscriptions sub ON sub.subscriber_id = "
	             "e.subscriber_id AND sub.list_id = ?6 WHERE "
	             "e.sequence_id = ?2 AND e.state = 'active' AND e.start_at + ?3 <= ?4 "
	             "AND (e.passed IS NULL OR e.passed < ?5) AND e.start_at + (SELECT "
	             "min(t.delay) FROM sequence_steps t WHERE t.sequence_id = ?2 AND "
	             "(e.passed IS NULL OR t.delay > e.passed)) <= ?4") < 0) {
		herr_set(err, EX_SOFTWARE, NULL, "sequence query too long");
		goto out;
	}
	if (db_prepare(db, &st, buf_str(&sql), err) < 0 || audience_bind(a, st, err) < 0)
		goto out;
	sqlite3_bind_int64(st, 2, d->id);
	sqlite3_bind_int64(st, 3, steps[0].delay);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, steps[n_steps - 1].delay);
	sqlite3_bind_int64(st, 6, d->list_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct candidate *c;
		const char *sub_status = (const char *)sqlite3_column_text(st, 6);
		const char *s_status = (const char *)sqlite3_column_text(st, 7);

		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if (!(nv = realloc(v, cap * sizeof *v))) {
				herr_set(err, EX_OSERR, NULL, "out of memory");
				goto out;
			}
			v = nv;
		}
		c = &v[n++];
		memset(c, 0, sizeof *c);
		c->subscriber_id = sqlite3_column_int64(st, 0);
		c->start_at = sqlite3_column_int64(st, 1);
		c->enrolled_at = sqlite3_column_int64(st, 2);
		c->backfill = sqlite3_column_int(st, 3);
		c->has_passed = sqlite3_column_type(st, 4) != SQLITE_NULL;
		c->passed = sqlite3_column_int64(st, 4);
		copy_col(st, 5, c->zone, sizeof c->zone);
		c->member = sqlite3_column_int(st, 8);
		snprintf(c->why, sizeof c->why, "%s",
		         strcmp(sub_status, "confirmed") ? "unsubscribed" :
		         strcmp(s_status, "active") ? s_status : "audience");
	}
	if (rc != SQLITE_DONE) {
		db_error(db, err, "find due sequence steps");
		goto out;
	}
	*out = v;
	*n_out = n;
	v = NULL;
	ret = 0;
out:
	sqlite3_finalize(st);
	buf_free(&sql);
	free(v);
	return ret;
}

static int
update_enrolment(sqlite3 *db, long long seq_id, long long sub_id, long long passed,
                 const char *left_reason, long long now, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	if (db_prepare(db, &st, left_reason ?
	               "UPDATE sequence_enrolments SET state = 'left', left_at = ?4, "
	               "left_reason = ?5 WHERE sequence_id = ?1 AND subscriber_id = ?2" :
	               "UPDATE sequence_enrolments SET passed = ?3 WHERE sequence_id = ?1 AND "
	               "subscriber_id = ?2 AND (passed IS NULL OR passed < ?3)", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, seq_id);
	sqlite3_bind_int64(st, 2, sub_id);
	if (left_reason) {
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_text(st, 5, left_reason, -1, SQLITE_STATIC);
	} else
		sqlite3_bind_int64(st, 3, passed);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "move enrolment");
	return 0;
}

/*
 * Rules (2) and (4) for one enrolment: of its steps not yet passed whose
 * due time has come, *take is the latest it may be sent (-1: none) and
 * *pass_to the delay `passed` moves to (*any 0: nothing is due yet).
 */
static void
pick_step(const struct candidate *c, const struct sequence_step *steps, size_t n_steps,
          const char *zone, long long now, long *take, long long *pass_to, int *any)
{
	size_t k;

	*take = -1;
	*any = 0;
	for (k = 0; k < n_steps; k++) {
		const struct sequence_step *s = &steps[k];
		long long due;

		if (c->has_passed && s->delay <= c->passed)
			continue;
		if (c->start_at + s->delay > now)
			break; /* due >= start + delay, and delays ascend */
		due = sequence_due_at(c->start_at, s->delay, s->at_local, zone);
		if (due > now)
			continue;
		*any = 1;
		*pass_to = s->delay;
		/* (4): added after its point had passed; a backfilled enrolment
		 * still before its first step takes the steps as they are */
		if (due + SEQUENCE_GRACE < s->created_at && (c->has_passed || !c->backfill))
			continue;
		if (!c->backfill && due + SEQUENCE_GRACE < c->enrolled_at)
			continue; /* (4): its point was before they came */
		*take = (long)k;
	}
}

static int
enqueue_one(sqlite3 *db, const struct config *cfg, const struct sequence_def *d, long long now,
            struct sequence_run *rep, struct herr *err)
{
	struct sequence_step *steps = NULL;
	struct candidate *cand = NULL;
	struct audience a;
	struct herr cerr;
	size_t n_steps = 0, n_cand = 0, i;
	long long k = 0;
	int ret = -1, need_zone = 0;

	memset(&a, 0, sizeof a);
	if (sequence_steps(db, d->id, &steps, &n_steps, err) < 0)
		return -1;
	herr_clear(&cerr);
	if (build_audience(db, d, now, &a, &cerr) < 0) {
		/* a removed segment stops this sequence, not the run */
		snprintf(rep->warning, sizeof rep->warning, "sequence %s: %s", d->name, cerr.msg);
		free(steps);
		audience_clear(&a);
		return 0;
	}
	for (i = 0; i < n_steps; i++)
		need_zone |= steps[i].at_local >= 0;
	if (db_begin(db, err) < 0)
		goto out;
	if (enrol(db, d, &a, 0, 0, now, &k, err) < 0)
		goto fail;
	rep->enrolled += k;
	if (n_steps && load_candidates(db, d, &a, steps, n_steps, now, &cand, &n_cand, err) < 0)
		goto fail;
	for (i = 0; i < n_cand; i++) {
		struct candidate *c = &cand[i];
		const char *zone = cfg->sequence_timezone;
		long long pass_to = 0;
		long take;
		int any, added = 0;

		/* a commit every so many: a sign-up through `herald serve`
		 * waits for one batch, not for the whole list.  Each
		 * subscriber's row and `passed` still share one (rule (1)). */
		if (i && i % ENQUEUE_BATCH == 0 && (db_commit(db, err) < 0 || db_begin(db, err) < 0))
			goto fail;
		if (need_zone && c->zone[0]) {
			if (sequence_zone_valid(c->zone))
				zone = c->zone;
			else
				rep->bad_zones++;
		}
		pick_step(c, steps, n_steps, zone, now, &take, &pass_to, &any);
		if (!any)
			continue;
		if (take >= 0 && !c->member) {
			/* (3) */
			if (update_enrolment(db, d->id, c->subscriber_id, 0, c->why, now, err) < 0)
				goto fail;
			rep->left++;
			continue;
		}
		/* a step whose issue was cancelled (`issue cancel`) goes to
		 * nobody: passed over like one added too late */
		if (take >= 0 && !strcmp(steps[take].status, "cancelled"))
			take = -1;
		/* (1): the row and the move of `passed`, in one transaction */
		if (take >= 0 &&
		    (ledger_add(db, steps[take].issue_id, c->subscriber_id, &added, err) < 0 ||
		     issue_welcome_reopen(db, steps[take].issue_id, err) < 0))
			goto fail;
		if (update_enrolment(db, d->id, c->subscriber_id, pass_to, NULL, now, err) < 0)
			goto fail;
		rep->queued += added;
		if (take < 0)
			rep->passed++;
	}
	if (db_commit(db, err) < 0)
		goto fail;
	ret = 0;
	goto out;
fail:
	db_rollback(db);
out:
	audience_clear(&a);
	free(cand);
	free(steps);
	return ret;
}

struct active_ctx {
	struct sequence_def *v;
	size_t n, cap;
};

static int
collect_active(void *ctx, const struct sequence_def *d)
{
	struct active_ctx *c = ctx;
	struct sequence_def *nv;

	if (strcmp(d->status, "active"))
		return 0; /* (5) */
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		if (!(nv = realloc(c->v, c->cap * sizeof *nv)))
			return -1;
		c->v = nv;
	}
	c->v[c->n++] = *d;
	return 0;
}

int
sequence_enqueue_due(sqlite3 *db, const struct config *cfg, long long now,
                     struct sequence_run *rep, struct herr *err)
{
	struct active_ctx c = { NULL, 0, 0 };
	size_t i;
	int ret = 0;

	memset(rep, 0, sizeof *rep);
	if (sequence_each(db, collect_active, &c, err) < 0) {
		free(c.v);
		if (!err->code)
			herr_set(err, EX_OSERR, NULL, "out of memory");
		return -1;
	}
	for (i = 0; i < c.n && ret == 0; i++)
		ret = enqueue_one(db, cfg, &c.v[i], now, rep, err);
	sequence_local_reset();
	free(c.v);
	return ret;
}
