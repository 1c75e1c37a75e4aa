/*
 * tracking.c - the tracking rule of tracking.h, and issues.tracking_mode.
 *
 * Owns the column issues.tracking_mode (sql/017_tracking_retention.sql):
 * written once by tracking_issue_mode() when a send starts, read by
 * message building (through sendjob.c) and by report.c.  message.c asks
 * tracking_decide() for each copy; webtrack.c accepts the anonymous token
 * kinds this rule hands out.
 */
#include "herald/tracking.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "herald/db.h"
#include "herald/message.h"

static const char *const names[] = { "on", "consent", "anonymous", "off" };

const char *
tracking_mode_name(enum config_tracking mode)
{
	return (unsigned)mode < sizeof names / sizeof names[0] ? names[mode] : NULL;
}

int
tracking_mode_parse(const char *s)
{
	size_t i;

	for (i = 0; s && i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(s, names[i]))
			return (int)i;
	return -1;
}

int
tracking_consented(const char *json)
{
	json_t *o, *v;
	const char *s;
	int yes = 0;

	if (!json || !strstr(json, "tracking_consent"))
		return 0; /* the common case, without parsing */
	if (!(o = json_loads(json, 0, NULL)))
		return 0;
	v = json_object_get(o, "tracking_consent");
	if (json_is_string(v)) {
		s = json_string_value(v);
		yes = !strcasecmp(s, "yes") || !strcasecmp(s, "y") || !strcasecmp(s, "true") ||
		      !strcasecmp(s, "on") || !strcmp(s, "1");
	} else if (json_is_true(v))
		yes = 1;
	json_decref(o);
	return yes;
}

enum tracking_copy
tracking_decide(int issue_tracking, enum config_tracking mode, long long subscriber_id,
                int untracked, const char *attrs)
{
	if (!issue_tracking || !subscriber_id || untracked || mode == CONFIG_TRACKING_OFF)
		return TRACKING_NONE;
	/* the person's own "no" beats every mode, anonymous included */
	if (message_tracking_refused(attrs))
		return TRACKING_NONE;
	switch (mode) {
	case CONFIG_TRACKING_ON:
		return TRACKING_PERSON;
	case CONFIG_TRACKING_CONSENT:
		return tracking_consented(attrs) ? TRACKING_PERSON : TRACKING_NONE;
	case CONFIG_TRACKING_ANONYMOUS:
		return TRACKING_ANONYMOUS;
	case CONFIG_TRACKING_OFF:
		break;
	}
	return TRACKING_NONE;
}

int
tracking_issue_mode_get(sqlite3 *db, long long issue_id, enum config_tracking *out,
                        struct herr *err)
{
	sqlite3_stmt *st;
	int rc, found = 0, m;

	if (db_prepare(db, &st, "SELECT tracking_mode FROM issues WHERE id = ?1", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL &&
	    (m = tracking_mode_parse((const char *)sqlite3_column_text(st, 0))) >= 0) {
		*out = (enum config_tracking)m;
		found = 1;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return herr_set(err, EX_NOINPUT, NULL, "no issue %lld", issue_id);
	if (rc != SQLITE_ROW)
		return db_error(db, err, "read tracking mode");
	return found;
}

int
tracking_issue_mode(sqlite3 *db, long long issue_id, enum config_tracking cfg_mode,
                    enum config_tracking *out, struct herr *err)
{
	sqlite3_stmt *st;
	int rc;

	/* once: a resumed send keeps the mode its first copies went under */
	if (db_prepare(db, &st, "UPDATE issues SET tracking_mode = CASE WHEN tracking = 0 "
	               "THEN 'off' ELSE ?2 END WHERE id = ?1 AND tracking_mode IS NULL", err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, issue_id);
	sqlite3_bind_text(st, 2, tracking_mode_name(cfg_mode), -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_error(db, err, "store tracking mode");
	rc = tracking_issue_mode_get(db, issue_id, out, err);
	if (rc == 0)
		return herr_set(err, EX_SOFTWARE, NULL, "issue %lld has no tracking mode", issue_id);
	return rc < 0 ? -1 : 0;
}
