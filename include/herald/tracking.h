/*
 * tracking.h - who is tracked, and how: the one home of the rule that
 * decides, for each copy of an issue, whether it carries the open pixel
 * and the click redirects, and whether those name the reader.
 *
 * Three settings meet, and the strictest wins:
 *   - the issue's own `tracking:` (front matter, default [web] tracking):
 *     off means no tracking of that issue at all;
 *   - [tracking] mode (config.h enum config_tracking), fixed on the issue
 *     when its send starts (issues.tracking_mode, tracking_issue_mode()):
 *       on         per person, as herald always did;
 *       consent    per person, only for subscribers whose attribute
 *                  tracking_consent is yes (a CSV column, the sign-up
 *                  form's checkbox, the preference centre through
 *                  subscriber_set_tracking_consent()); the others get
 *                  direct links and no pixel;
 *       anonymous  a pixel and redirects whose tokens name only the list
 *                  and the issue (TOKEN_OPEN_ANON, TOKEN_CLICK_ANON with
 *                  subscriber 0, the link's number in the URL): opens are
 *                  counted per issue and clicks per link, and no event is
 *                  linked to a person (events.subscriber_id NULL), so no
 *                  unique count can be made; a link with merge fields is
 *                  personal and goes direct;
 *       off        no pixel, no redirects;
 *   - the person's attribute tracking = no (message_tracking_refused()):
 *     no tracking of them in any mode, not even anonymous.
 * Previews, test sends and copies for nobody (subscriber 0) are never
 * tracked.
 */
#ifndef HERALD_TRACKING_H
#define HERALD_TRACKING_H

#include <sqlite3.h>

#include "herald/config.h"
#include "herald/herr.h"

/* What one copy carries. */
enum tracking_copy {
	TRACKING_NONE,       /* direct links, no pixel */
	TRACKING_PERSON,     /* tokens naming the reader */
	TRACKING_ANONYMOUS,  /* tokens naming only the issue */
};

/* "on", "consent", "anonymous", "off"; NULL for a value out of range. */
const char *tracking_mode_name(enum config_tracking mode);
/* The reverse; -1 when `s` is none of them. */
int tracking_mode_parse(const char *s);

/* Does the attributes JSON say tracking_consent yes ("yes", "y", "true",
 * "on", "1", any case)?  Anything else, or no such key, is no. */
int tracking_consented(const char *attributes_json);

/*
 * The rule above for one copy: the issue's tracking flag, its mode, and
 * the recipient (subscriber 0: a copy for nobody; untracked: a preview or
 * a test send; their attributes JSON or NULL).
 */
enum tracking_copy tracking_decide(int issue_tracking, enum config_tracking mode,
                                   long long subscriber_id, int untracked,
                                   const char *attributes_json);

/*
 * The mode issue `issue_id` is sent under: the stored one when its send
 * has one, else `cfg_mode` (or off when the issue has tracking off),
 * stored now in its own statement (an autocommit write, or part of the
 * caller's transaction).  Called by sendjob.c when a send starts or
 * resumes, before any copy is built.
 */
int tracking_issue_mode(sqlite3 *db, long long issue_id, enum config_tracking cfg_mode,
                        enum config_tracking *out, struct herr *err);

/* The stored mode of issue `issue_id`: 1 and *out when it has one, 0 when
 * its send has not started (or started before herald kept it), -1 on
 * error. */
int tracking_issue_mode_get(sqlite3 *db, long long issue_id, enum config_tracking *out,
                            struct herr *err);

#endif
