/*
 * buildpool.h - worker threads that build (and later sign) messages while
 * the main thread talks to the relays.
 *
 * Building a copy - merging fields, writing MIME, and with DKIM signing it,
 * which costs about a millisecond of CPU - must not happen on the thread
 * that drives the network, or the send runs at the speed of one core.  The
 * main thread submits jobs (a claimed ledger row) and collects finished
 * ones; the threads only read the shared message context, which is
 * immutable while the pool runs.  With zero threads, jobs are built inline
 * at submit time (for small sends and tests).
 */
#ifndef HERALD_BUILDPOOL_H
#define HERALD_BUILDPOOL_H

#include "herald/buf.h"
#include "herald/herr.h"
#include "herald/ledger.h"
#include "herald/message.h"
#include "herald/transfer.h"

struct build_job {
	struct ledger_row  row;     /* the recipient (owned) */
	long long          now;     /* Date of the message */
	struct buf         msg;     /* OUT: the message bytes */
	struct message_out mo;      /* OUT: Message-ID, envelope recipient */
	int                failed;  /* OUT: could not be built; see err */
	struct herr        err;
	int                relay;   /* for the caller: the relay and connection */
	int                slot;    /*   it was handed to */
	struct transfer_item xfer;  /* for the caller: the transfer */
	struct build_job  *next;    /* queue link, the pool's and the caller's */
};

struct buildpool;

/* Start `threads` threads (0: build inline).  notify(notify_ctx), if not
 * NULL, is called (from a worker) each time a job is finished.  EX_OSERR
 * on failure. */
int buildpool_new(int threads, const struct message_ctx *ctx,
                  void (*notify)(void *ctx), void *notify_ctx, struct buildpool **out,
                  struct herr *err);
/* Stop the threads (after finishing the jobs they hold) and free the pool;
 * jobs still queued are returned through buildpool_collect() first. */
void buildpool_free(struct buildpool *p);

/* Hand a job over; the pool owns it until it comes back from collect. */
void buildpool_submit(struct buildpool *p, struct build_job *job);
/* Take every finished job (a linked list in submission order per thread,
 * or NULL).  If `wait` and none is ready but some are pending, block until
 * one is. */
struct build_job *buildpool_collect(struct buildpool *p, int wait);
/* Jobs submitted and not yet collected. */
int buildpool_pending(const struct buildpool *p);

#endif
