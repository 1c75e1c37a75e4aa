/*
 * sequence.h - sequences: a series of issues, each sent a set time after
 * each subscriber's own start (an onboarding series), or before or after
 * a date of theirs (a renewal reminder), by the same `herald run`.
 *
 * A sequence follows one list, optionally narrowed by a saved segment or
 * a where: expression (sql/024_sequences.sql).  Each step is an ordinary
 * issue of kind 'welcome', the per-subscriber kind (issue.h (6)): read and
 * rendered once from FILE.md, going to that list alone, with no snapshot;
 * its deliveries rows are added one at a time by sequence_enqueue_due()
 * through ledger_add(), and sendjob.c sends them like any other (ledger,
 * MIME, DKIM, tracking, footer, unsubscribe, relay limits).
 *
 * Enrolment, one row per subscriber and sequence, ever:
 *
 *              enrol() / sequence_create(--include-existing)
 *   (nothing) ---------------------------------------------------> active
 *   active --- sequence_enqueue_due(): a step falls due ----------> active (passed moves)
 *   active --- sequence_enqueue_due(): no longer in the audience --> left
 *
 * Who enters: whoever becomes confirmed on the list after the sequence
 * was created (their start: the subscription's created_at for
 * `--start-from joined`, its confirmed_at for `confirmed`, the date in
 * attribute KEY for `attr.KEY`; a subscriber whose attribute is missing
 * or is not a date waits, and enters when it is set; so does one not yet
 * in the segment, entering when they come into it); with
 * `--include-existing` also those already confirmed, each starting now,
 * or at their own start with `--backfill`.  Enrolment happens at each
 * `herald run` (enrol() in sequence_enqueue_due()), not at sign-up.
 *
 * When a step is due, for one enrolment (sequence_due_at()):
 *   due = start + delay, moved forward to the next HH:MM local time in the
 *   subscriber's zone when the step has --at-local (attribute `timezone`,
 *   an IANA name; missing or unknown: [sequences] timezone, default UTC;
 *   an unknown name is counted in sequence_run.bad_zones and `run` warns).
 *
 * The rules (tests/unit/test_sequence.c and test_sequence.py cite them):
 *   (1) exactly once: a step's deliveries row is added in the transaction
 *       that moves the enrolment's `passed` past the step, and a step is
 *       considered only while its delay is greater than `passed`; the
 *       deliveries primary key (issue, subscriber) backs it up.  Sending
 *       is the ledger's (ledger.h (2), (5)): a SIGKILL loses no one and
 *       repeats only messages that were in flight;
 *   (2) at most one step per enrolment per pass: when several are due at
 *       once (after --backfill, a pause, or a cron outage), only the
 *       latest goes and the earlier ones are passed over;
 *   (3) leaving: when a step falls due and the subscriber is no longer in
 *       the audience (unsubscribed, not active - hard bounce, complaint,
 *       blocklist -, suppressed, or no longer matching the segment), the
 *       enrolment becomes `left` and gets nothing more, ever;
 *   (4) a step added later reaches only those who had not passed its
 *       point when it was added: a due time earlier than the step's
 *       created_at by more than SEQUENCE_GRACE (the time it takes to add a
 *       sequence's steps one after another) is passed over - except for a
 *       --backfill enrolment still before its first step, which takes the
 *       steps as the sequence has them (so pause a backfilled sequence
 *       while adding its steps, or add them before the next run); likewise
 *       a newcomer (not --backfill) is not sent steps whose point lies more
 *       than SEQUENCE_GRACE before they entered (a date attribute already
 *       past);
 *   (5) a paused sequence adds no deliveries and holds its step issues
 *       paused: everyone keeps their place (`passed`); at resume, rule (2)
 *       gives each at most one step at once, and the relays' limits pace
 *       the rest (sendjob.h);
 *   (6) `herald run` shares the relays between campaigns and sequence
 *       steps: when both have rows due, they take turns of RUN_SLICE
 *       seconds (src/cmd/run.c), so each gets at least about half of the
 *       rate; when one is idle, the other gets all of it.
 */
#ifndef HERALD_SEQUENCE_H
#define HERALD_SEQUENCE_H

#include <sqlite3.h>
#include <stddef.h>

#include "herald/config.h"
#include "herald/herr.h"

#define SEQUENCE_GRACE     3600     /* seconds: rule (4) */
#define SEQUENCE_NAME_MAX  64
#define SEQUENCE_EXPR_MAX  2048
#define SEQUENCE_STEPS_MAX 100
#define SEQUENCE_ZONE_MAX  64

/* What `sequence create` asks for. */
struct sequence_new {
	const char *name;
	const char *list_name;
	const char *segment;         /* a saved segment's name, or NULL */
	const char *where;           /* an expression, or NULL (not both) */
	const char *start_from;      /* "joined" (NULL too), "confirmed", "attr.KEY" */
	int         include_existing;
	int         backfill;        /* with include_existing: their own start */
};

struct sequence_def {
	long long id;
	char      name[SEQUENCE_NAME_MAX];
	long long list_id;
	char      list_name[SEQUENCE_NAME_MAX];
	char      segment[SEQUENCE_NAME_MAX];  /* "" for none */
	char      where[SEQUENCE_EXPR_MAX];    /* "" for none */
	char      start_from[SEQUENCE_NAME_MAX + 8];
	char      status[8];                   /* active, paused */
	long long created_at;
};

struct sequence_step {
	long long issue_id;
	long long delay;       /* seconds after the start; may be negative */
	int       at_local;    /* minutes after local midnight, -1 for none */
	long long created_at;
	char      subject[200];
	char      status[16];  /* the issue's */
};

/* Where everyone is, and what each step did (sequence stats). */
struct sequence_step_stats {
	struct sequence_step step;
	long long sent, queued, failed;   /* deliveries: sent; pending+sending+deferred; rest */
	long long opens, clicks, unsubscribes; /* unique, as `herald stats` counts them */
	long long at_step;                /* active enrolments whose place is this step: the
	                                     last one given to them or passed over */
};

struct sequence_stats {
	long long enrolled, active, waiting;  /* waiting: active, before the first step */
	long long left;                       /* by rule (3) */
	struct sequence_step_stats *steps;    /* owned; n_steps, in delay order */
	size_t n_steps;
};

/* What one sequence_enqueue_due() did. */
struct sequence_run {
	long long enrolled;   /* new enrolments */
	long long queued;     /* deliveries added */
	long long passed;     /* steps passed over (rules (2), (4)) */
	long long left;       /* enrolments that left (rule (3)) */
	long long bad_zones;  /* subscribers whose timezone attribute is unknown */
	char      warning[HERR_MSG_MAX + SEQUENCE_NAME_MAX + 16]; /* a sequence that
	                           could not be worked on, "" if none */
};

/* "0d", "3d", "2w", "12h", "30m", "-14d": seconds.  EX_USAGE otherwise. */
int sequence_parse_delay(const char *s, long long *out, struct herr *err);
/* "09:00" -> 540 minutes.  EX_USAGE otherwise. */
int sequence_parse_at_local(const char *s, int *minutes, struct herr *err);
/* "3d", "-14d", "14d" (for 2w), "12h", "30m": how `show` spells a delay. */
void sequence_format_delay(long long delay, char *out, size_t n);

/* 1 when `zone` names a zone of the tz database (TZDIR or
 * /usr/share/zoneinfo), "UTC" always. */
int sequence_zone_valid(const char *zone);

/*
 * When a step of delay `delay` falls due for a start of `start`: start +
 * delay, or with at_local >= 0 the first moment at or after it when the
 * clock in `zone` (a valid zone, sequence_zone_valid()) shows at_local
 * minutes past midnight.  Sets TZ to `zone` (and calls tzset()), and
 * leaves it so for the next call: sequence_local_reset() puts back the
 * process's own.  Call it only while no other thread reads the local time
 * (herald's senders are not running then).
 */
long long sequence_due_at(long long start, long long delay, int at_local, const char *zone);
void sequence_local_reset(void);

/* Create a sequence (and enrol existing subscribers when asked).  The
 * segment or expression must compile now (EX_DATAERR, EX_NOINPUT), the
 * list exist (EX_NOINPUT), the name be free (EX_DATAERR). *id may be NULL. */
int sequence_create(sqlite3 *db, const struct sequence_new *n, long long *id,
                    long long *enrolled, struct herr *err);

/* Add a step: FILE.md read and rendered as `issue new` does, for the
 * sequence's list alone (the front matter may not name lists, a segment, a
 * where: or subject variants: EX_DATAERR); delay unique in the sequence.
 * `warn` hears what `issue new` would say (may be NULL). */
int sequence_add_step(sqlite3 *db, const struct config *cfg, const char *name,
                      const char *path, long long delay, int at_local,
                      void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                      long long *issue_id, struct herr *err);

/* EX_NOINPUT when there is no such sequence. */
int sequence_get(sqlite3 *db, const char *name, struct sequence_def *out, struct herr *err);
int sequence_each(sqlite3 *db, int (*fn)(void *ctx, const struct sequence_def *d), void *ctx,
                  struct herr *err);
/* The steps of sequence `id` in delay order; *out is malloc'd (free()). */
int sequence_steps(sqlite3 *db, long long id, struct sequence_step **out, size_t *n,
                   struct herr *err);

/* Rule (5).  Pausing a paused sequence or resuming an active one is not
 * an error. */
int sequence_pause(sqlite3 *db, const char *name, struct herr *err);
int sequence_resume(sqlite3 *db, const char *name, struct herr *err);
/* Remove the sequence and its enrolments; its step issues are cancelled
 * (those already sent stay, with their figures). */
int sequence_remove(sqlite3 *db, const char *name, struct herr *err);

/* Fill *out; sequence_stats_clear() frees it. */
int sequence_stats(sqlite3 *db, const char *name, struct sequence_stats *out,
                   struct herr *err);
void sequence_stats_clear(struct sequence_stats *s);

/*
 * The work of `herald run` before it sends: for every active sequence,
 * enrol newcomers, then add a deliveries row for each enrolment whose next
 * step is due at `now` (rules (1)-(4)), in transactions of a thousand
 * enrolments (each subscriber's row and move in the same one).  A
 * sequence whose segment no longer compiles is skipped and named in
 * rep->warning; -1 only on a database error.  The caller holds the send
 * lock (lock.h).
 */
int sequence_enqueue_due(sqlite3 *db, const struct config *cfg, long long now,
                         struct sequence_run *rep, struct herr *err);

/* 1 in *is_step when issue `issue_id` is a step of some sequence. */
int sequence_is_step(sqlite3 *db, long long issue_id, int *is_step, struct herr *err);

#endif
