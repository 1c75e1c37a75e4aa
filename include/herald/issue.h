/*
 * issue.h - newsletter issues: reading FILE.md, rendering it once, storing it.
 *
 * An issue file is Markdown with optional YAML front matter between two
 * "---" lines at the very top:
 *
 *   ---
 *   subject: "What Works Centre e-newsletter no.16"
 *   preheader: "47 local authorities, ..."
 *   from: "What Works Centre <news@example.org>"
 *   reply_to: "wwccsc@example.org"
 *   lists: [newsletter, research]
 *   where: attr.role = "social worker" and attr.region in ("Leeds", "Bristol")
 *   allow_html: false
 *   tracking: true
 *   line_breaks: keep
 *   allow_missing: [organization]
 *   subject_variants: ["No.16: 47 councils", "What 47 councils learnt"]
 *   test_share: 20%
 *   test_wait: 4h
 *   ---
 *
 * line_breaks: `keep` (the default) makes every line break inside a
 * paragraph a line break in the mail, as people who write newsletters
 * expect of a sign-off ("Thanks for reading,\nThe team"); `commonmark`
 * joins the lines of a paragraph, as CommonMark does, for sources wrapped
 * by an editor.  allow_missing names merge fields (attributes, or name /
 * first_name) that may be blank for every recipient: without it, a send
 * is refused when no recipient has a field used without a fallback.
 *
 * The audience (audience.h): `lists:` names one or more lists (a flow or
 * block list, or one name; `list: NAME` is the one-list spelling, and a
 * repeated --list replaces both); the issue goes to everyone confirmed on
 * any of them, each person once.  `segment: NAME` (a saved segment) or
 * `where: EXPR` (segment.h's language), not both, narrows that.  Both are
 * kept as written and compiled again when the send starts, so the audience
 * is the one of that moment; the ledger's snapshot (ledger.h (3)) is what
 * it stays afterwards.  An expression that does not compile, an unknown
 * list or segment, a list given twice or more than AUDIENCE_LISTS_MAX
 * lists is an error at `issue new` that creates nothing; a `where:` error
 * names FILE:LINE:COL of the file when the value is written on one line
 * (plain, or quoted without escapes), else FILE:LINE and the column in the
 * expression.
 *
 * A subject test (subjecttest.h): `subject_variants:` lists 2 to 5
 * subjects, each checked as `subject:` is (one line, no control
 * characters, at most 998 bytes, known merge fields), none twice;
 * `test_share:` (1%-50%, default 20%) of the audience gets them, split at
 * random but reproducibly, and after `test_wait:` (1m-7d, default 4h) from
 * the end of those sends the rest gets the winner.  `subject:` may then be
 * left out: the first variant names the issue.
 *
 * Keys are single scalars (allow_missing, lists and subject_variants may
 * be lists); an
 * unknown or repeated key, a missing subject or list, a control character
 * or line break in any value (header injection) or an unknown merge field
 * is an error at `issue new` naming file:line.
 * Rendering happens here, once: the stored HTML and text parts already hold
 * the layout, and only the merge fields are left for each subscriber.
 *
 * Issue states.  The main line, and every move with the function that
 * makes it (all in issue.c; each is one guarded UPDATE naming the states it
 * may leave, so two processes cannot both win the same move):
 *
 *          issue_schedule()          issue_start_send()          issue_finish()
 *   draft -----------------> scheduled ------------------> sending --------------> sent
 *     |                                                     ^  ^                    |
 *     +---------------- issue_start_send() (herald send) ---+  +-- issue_retry_failed()
 *
 *   from                              to         by
 *   draft, scheduled                  sending    issue_start_send()    (1) (4)
 *   draft, scheduled, paused,         scheduled  issue_schedule()      (4)
 *     cancelled
 *   scheduled, sending                paused     issue_pause()
 *   paused (its send had started)     sending    issue_resume()
 *   paused (not started)              scheduled  issue_resume()
 *   draft, scheduled, paused,         cancelled  issue_cancel()
 *     sending
 *   sending                           sent       issue_finish()        (2)
 *   sent                              sending    issue_retry_failed()  (3)
 *   draft (just made, kind campaign)  sending    issue_welcome_start() (6)
 *   sent (kind welcome)               sending    issue_welcome_reopen() (6)
 *
 * Invariants (tests cite them by number):
 *   (1) an issue enters `sending` from draft or scheduled only together
 *       with its recipients' snapshot, in one transaction
 *       (issue_start_send(), ledger.h (3));
 *   (2) an issue becomes `sent` only when none of its deliveries is
 *       pending, sending or deferred (issue_finish(), ledger.h (4));
 *   (3) a sent issue goes back to `sending` only through
 *       issue_retry_failed(), and only when failed rows were put back;
 *   (4) before an issue's send starts, its merge fields are checked against
 *       its audience (issue_check_fields()) at schedule and at the start;
 *       the audience the start checks is the one it snapshots;
 *   (5) sent and cancelled issues are never sent; a paused one only after
 *       issue_resume().
 *   (6) a welcome issue (kind 'welcome', welcome.h) has no snapshot: it
 *       enters `sending` when made, its rows are added one by one by
 *       welcome_enqueue() (ledger.h (8)), which reopens it from `sent`;
 *       issue_schedule() and issue_start_send() refuse it (EX_DATAERR).
 *       A sequence's step is an issue of the same kind (sequence.h): its
 *       rows come from sequence_enqueue_due(), which reopens it likewise.
 */
#ifndef HERALD_ISSUE_H
#define HERALD_ISSUE_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/audience.h"
#include "herald/config.h"
#include "herald/herr.h"

#define ISSUE_FILE_MAX (4u << 20) /* Markdown source cap: 4 MiB */

struct issue_source {
	char    *path;
	char    *text;       /* the whole file, NUL-terminated */
	size_t   len;
	size_t   body_off;   /* where the Markdown after the front matter starts */
	unsigned body_line;  /* its line number in the file */
	char    *subject, *preheader, *from, *reply_to; /* NULL when absent */
	char   **lists;      /* list: or lists:, in order (n_lists of them) */
	size_t   n_lists;
	unsigned lists_line; /* the line of that key, for errors */
	char    *segment;    /* segment: NAME, or NULL */
	unsigned segment_line;
	char    *where;      /* where: EXPR, or NULL */
	unsigned where_line; /* the line its value starts on */
	int      where_col;  /* its first column there when the value is the file's
	                        text as written (plain, or quoted without escapes,
	                        on one line); 0 otherwise */
	int      allow_html;
	int      tracking;   /* -1: not given (the config decides) */
	int      hard_breaks; /* line_breaks: keep (1, the default) | commonmark (0) */
	char   **allow_missing; /* allow_missing: field names, "attr.KEY" or "name" */
	size_t   n_allow_missing;
	char   **variants;   /* subject_variants:, in order (n_variants of them) */
	size_t   n_variants;
	unsigned variants_line;
	int      test_share; /* percent; -1: not given */
	long     test_wait;  /* seconds; -1: not given */
};

/* Read and check FILE.md (front matter syntax, UTF-8, sizes).  Frees
 * nothing on failure that the caller must not free: always call
 * issue_source_free(). */
int issue_source_read(const char *path, struct issue_source *src, struct herr *err);
void issue_source_free(struct issue_source *src);

/* Everything an issue row holds. */
struct issue {
	long long id, list_id;   /* list_id: the first of its lists */
	char      list_name[65];
	long long list_ids[AUDIENCE_LISTS_MAX]; /* its lists in order; [0] is list_id */
	size_t    n_lists;       /* 0 in an issue not read from the database: list_id alone */
	char     *list_names;    /* "newsletter, research"; NULL: list_name alone */
	char     *segment;       /* saved segment narrowing the audience, or NULL */
	char     *where;         /* inline expression narrowing it, or NULL */
	char     *subject, *preheader, *from_name, *from_addr, *reply_to;
	char     *source_path, *markdown, *html, *text, *links; /* links: JSON array */
	char     *allow_missing; /* JSON array of field names (front matter) */
	int       allow_html;
	int       tracking;      /* open pixel and click redirects */
	char      status[16];    /* draft scheduled sending paused sent cancelled */
	long long send_at, created_at, started_at, finished_at; /* 0 when unset */
};
void issue_clear(struct issue *is);

/* Overrides from the command line; NULL fields (no lists) keep the front
 * matter. */
struct issue_overrides {
	const char *const *lists; /* --list, repeated: n_lists names */
	size_t             n_lists;
	const char        *subject;
};

/*
 * Create an issue from `src`: resolve the list, sender and reply-to (front
 * matter, else config), render both parts with the configured layout
 * templates, validate every merge field, and insert it as a draft.
 * `warn(ctx, msg)` receives notes that do not stop creation (e.g. raw HTML
 * dropped); may be NULL.
 */
int issue_create(sqlite3 *db, const struct config *cfg, const struct issue_source *src,
                 const struct issue_overrides *ov, long long *id_out,
                 void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                 struct herr *err);

/*
 * Read FILE.md (`path`) and create a draft of it for list `list_name`
 * alone, as `issue new` would, after `check(src, list_name, err)` has
 * accepted its front matter (a per-subscriber mail's rules: welcome.c,
 * sequence.c).  The caller then makes the draft what it is in its own
 * transaction, and removes it (issue_remove()) should that fail.
 */
int issue_create_for_list(sqlite3 *db, const struct config *cfg, const char *path,
                          const char *list_name,
                          int (*check)(const struct issue_source *src, const char *list_name,
                                       struct herr *err),
                          void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                          long long *id, struct herr *err);

int issue_get(sqlite3 *db, long long id, struct issue *out, struct herr *err);

/*
 * The audience of issue `is` as of `now` (audience.h): its lists and its
 * segment or where compiled now.  Fills *a; audience_clear() it.  Fails
 * when the filter no longer compiles: EX_NOINPUT when its saved segment
 * was removed, EX_DATAERR when the expression names a list that is gone
 * (where "issue ID where:LINE:COL" or "segment NAME:LINE:COL").
 */
int issue_audience(sqlite3 *db, const struct issue *is, long long now, struct audience *a,
                   struct herr *err);

/* How many the audience of `is` is now (issue_audience + audience_count):
 * what `issue show` and `issue schedule` say it would go to. */
int issue_audience_count(sqlite3 *db, const struct issue *is, long long *n,
                         struct herr *err);

/* Call fn for each person of the audience of `is` now, in send order
 * (audience_each). */
int issue_audience_each(sqlite3 *db, const struct issue *is,
                        int (*fn)(void *ctx, const struct audience_row *r), void *ctx,
                        struct herr *err);

/*
 * The reader's merge fields ({{name}}, {{first_name}}, {{attr.KEY}}) that
 * issue `is` uses without a fallback, checked against its audience
 * (audience.h): `warn` hears of each field some recipients lack, with how
 * many, and of a bare name in the web copy.  A field that no recipient has
 * (a misspelt attribute) fails with EX_DATAERR when `refuse` is set (issue
 * schedule, the start of a send), naming the closest attribute they do
 * have; otherwise it is a warning (issue new).  Fields in the issue's
 * allow_missing are not checked.  `warn` may be NULL.
 */
int issue_check_fields(sqlite3 *db, const struct issue *is, int refuse,
                       void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                       struct herr *err);
int issue_each(sqlite3 *db, int (*fn)(void *ctx, const struct issue *is), void *ctx,
               struct herr *err);

/* Delete an issue and its ledger.  Refused (EX_DATAERR) while it is
 * sending or once it was sent, unless `force`. */
int issue_remove(sqlite3 *db, long long id, int force, struct herr *err);

/* draft|scheduled|paused|cancelled -> scheduled with send_at = at.  An
 * issue whose send has not started is checked first with
 * issue_check_fields() (refusing; `warn` hears the rest, may be NULL). */
int issue_schedule(sqlite3 *db, long long id, long long at,
                   void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                   struct herr *err);
/* anything but sent -> cancelled; pending ledger rows stay as they are. */
int issue_cancel(sqlite3 *db, long long id, struct herr *err);

/* sending|scheduled -> paused.  A running send notices within a second. */
int issue_pause(sqlite3 *db, long long id, struct herr *err);
/* paused -> sending when its send had started, else -> scheduled. Sets
 * *now_status to the new status ("sending"/"scheduled", 16 bytes). */
int issue_resume(sqlite3 *db, long long id, char *now_status, struct herr *err);
/* (1), (4): draft|scheduled -> sending with the snapshot of its audience,
 * in one transaction, after issue_check_fields() (refusing with
 * EX_DATAERR; `warn` hears the rest and may be NULL); *n: recipients.
 * EX_TEMPFAIL when the issue changed state meanwhile. */
int issue_start_send(sqlite3 *db, const struct issue *is,
                     void (*warn)(void *ctx, const char *msg), void *warn_ctx, long long *n,
                     struct herr *err);
/* (2): sending -> sent when nothing is left to do; *finished says whether
 * it moved. */
int issue_finish(sqlite3 *db, long long id, int *finished, struct herr *err);
/* (3): failed deliveries of the issue back to pending (ledger_retry_failed;
 * bounced ones stay); a sent issue with failed rows goes back to sending,
 * in the same transaction.  *n: how many. */
int issue_retry_failed(sqlite3 *db, long long id, long long *n, struct herr *err);

/* (6): the draft `id`, just made from a welcome file, becomes its list's
 * welcome issue: kind 'welcome', `sending` with no rows yet.  In the
 * caller's transaction (welcome_set()). */
int issue_welcome_start(sqlite3 *db, long long id, struct herr *err);
/* (6): a welcome issue that is `sent` goes back to `sending` (a row was
 * just added); any other issue or state is left alone.  In the caller's
 * transaction (welcome_enqueue()). */
int issue_welcome_reopen(sqlite3 *db, long long id, struct herr *err);

/* The next issue after `after_id` that `herald run` should work on now:
 * scheduled and due, or sending with rows pending, in flight, or deferred
 * and due (or nothing left, to be marked sent).  A subject test's holdout
 * is not pending work before its winner is recorded (ledger.h (7)).  0
 * when none. */
int issue_next_due(sqlite3 *db, long long after_id, long long now, long long *id,
                   struct herr *err);

/* Parse an ISO 8601 time ("2026-12-01T09:00", with optional seconds and
 * "Z" or "+hh:mm"; without an offset it is local time) to Unix seconds. */
int issue_parse_time(const char *s, long long *out, struct herr *err);

/* Load a layout template: the configured file or the built-in one.
 * *out is malloc'd and NUL-terminated; *where_out names it for messages. */
int issue_load_template(const struct config *cfg, int html, char **out, size_t *len,
                        const char **where_out, struct herr *err);

#endif
