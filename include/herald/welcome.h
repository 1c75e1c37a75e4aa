/*
 * welcome.h - a list's welcome mail: which issue it is, who gets it, and
 * sending what is due of it.
 *
 * A list may have one welcome issue (`herald list set NAME --welcome
 * FILE.md`): an issue row of kind 'welcome' (sql/015_welcome.sql), read
 * and rendered from FILE.md as `issue new` does (issue.h), going to that
 * list alone.  It never has a snapshot.  Instead each subscription that
 * becomes confirmed adds one pending deliveries row to it, in the same
 * transaction as the confirmation (welcome_enqueue(), called by
 * subscriber.c), and the send engine (sendjob.h) sends those rows like a
 * campaign's: the ledger, DKIM, tracking, suppression and relay limits.
 * `herald run` finds them through issue_next_due(); `herald serve` through
 * welcome_send_due().
 *
 * The enqueue rule (tests/unit/test_welcome.c cites it by number):
 *   (1) a delivery is added only when a subscription becomes confirmed:
 *       at once for a single opt-in sign-up or an admin's `sub add`,
 *       after the reader's confirmation for a double opt-in list;
 *   (2) an import adds none, unless it was asked to (`sub import
 *       --welcome`: signup_req.welcome);
 *   (3) at most one welcome per subscriber per list, ever: the welcomes
 *       row (primary key list x subscriber) is written with the delivery,
 *       so a second confirmation, a resubscribe, or a new welcome file
 *       for the list adds nothing;
 *   (4) nothing is added while the list has no welcome issue, or its
 *       welcome issue was cancelled (`issue cancel`): and no welcomes row
 *       either, so nothing is promised;
 *   (5) subscribers who were confirmed before the list had a welcome
 *       issue never get it: only confirmations after `list set --welcome`.
 * Exactly once across crashes is the ledger's: the row is claimed before
 * any byte goes (ledger.h (2)) and recovered with its Message-ID (5).
 */
#ifndef HERALD_WELCOME_H
#define HERALD_WELCOME_H

#include <signal.h>
#include <sqlite3.h>

#include "herald/config.h"
#include "herald/herr.h"
#include "herald/ledger.h"

/*
 * Make FILE.md (`path`) the welcome issue of list `list_name`: read and
 * render it as `issue new` does, for that list alone, and attach it (an
 * earlier welcome issue is detached and keeps its history; who already
 * got a welcome of this list does not get this one, rule (3)).  The front
 * matter may not name other lists, a segment, a where: filter or subject
 * variants (EX_DATAERR).  `warn` hears what `issue new` would say (may be
 * NULL).  *issue_id: the new issue.
 */
int welcome_set(sqlite3 *db, const struct config *cfg, const char *list_name,
                const char *path, void (*warn)(void *ctx, const char *msg), void *warn_ctx,
                long long *issue_id, struct herr *err);

/* `list set --no-welcome`: the list has no welcome issue from now on.
 * Rows already queued still go.  EX_NOINPUT when there is no such list. */
int welcome_clear(sqlite3 *db, const char *list_name, struct herr *err);

/* Rules (1)-(5): subscriber `subscriber_id` has just become confirmed on
 * list `list_id`; queue the list's welcome for them if it is due.  Inside
 * the caller's transaction, the one that confirms.  *queued: 1 when a
 * delivery was added (may be NULL). */
int welcome_enqueue(sqlite3 *db, long long list_id, long long subscriber_id, int *queued,
                    struct herr *err);

/* What `list show` says about a list's welcome. */
struct welcome_info {
	long long issue_id;          /* 0: the list has no welcome issue */
	char      subject[1000];
	char      status[16];        /* the issue's: sending, sent, paused, cancelled */
	struct ledger_counts counts; /* its deliveries by state */
};

int welcome_get(sqlite3 *db, long long list_id, struct welcome_info *out, struct herr *err);

/* The next welcome issue after `after_id` with rows to send now (pending,
 * or deferred and due); 0 when none. */
int welcome_next_due(sqlite3 *db, long long after_id, long long now, long long *id,
                     struct herr *err);

struct welcome_run {
	long long issues;    /* welcome issues sent from */
	long long attempted; /* messages the relays answered */
	long long sent;      /* of which accepted */
	int       busy;      /* the send lock was held by another process */
	int       end;       /* the last send's enum sendjob_end (SENDJOB_WINDOW:
	                        wait before the next tick) */
};

/*
 * `herald serve`'s tick: when a welcome issue has rows due, take the send
 * lock (lock.h) and send them through sendjob_run(), issue by issue; when
 * `herald run` or `send` holds the lock, do nothing (rep->busy: they send
 * welcomes too, issue_next_due()).  Cheap when nothing is due: one query,
 * no lock.  `stop` is sendjob_opts.stop.  -1 on a database or relay error
 * (the rows stay pending for the next tick).
 */
int welcome_send_due(sqlite3 *db, const struct config *cfg, volatile sig_atomic_t *stop,
                     struct welcome_run *rep, struct herr *err);

#endif
