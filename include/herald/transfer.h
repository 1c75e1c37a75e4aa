/*
 * transfer.h - SMTP connections that send side by side: one thread each.
 *
 * Why not libcurl's multi interface: in libcurl 7.88 (Debian 12) the SMTP
 * code waits for the reply to the final "." inside smtp_done() with a
 * blocking loop (smtp_block_statemach), which stalls every other transfer
 * of the multi handle.  Against a relay that takes 100 ms to accept a
 * message (content scanning, a remote datacentre) eight connections would
 * then send no faster than one.  So each connection gets a thread running
 * curl_easy_perform() on its own easy handle, which keeps its connection
 * open between messages; the threads block on the network, never on each
 * other.  tests/integration/test_run_faults.py measures this (a relay
 * slow after the dot).
 *
 * The main thread owns the slots' jobs: it starts a transfer on an idle
 * slot, and collects finished ones; a slot's thread only touches the slot
 * between those two moments.  When a transfer finishes the pool calls
 * `notify`, which wakes the send loop.
 */
#ifndef HERALD_TRANSFER_H
#define HERALD_TRANSFER_H

#include <stddef.h>

#include "herald/config.h"
#include "herald/herr.h"
#include "herald/smtp.h"

struct transfer_pool;
struct transfer_slot;

/* A pool whose finished transfers are announced through notify(ctx). */
int transfer_pool_new(void (*notify)(void *ctx), void *ctx, struct transfer_pool **out,
                      struct herr *err);
/* Stop every slot's thread (waiting for transfers under way) and free all. */
void transfer_pool_free(struct transfer_pool *p);

/* Add a slot (a connection and its thread) for `relay`. */
int transfer_slot_new(struct transfer_pool *p, const struct config_relay *relay,
                      struct transfer_slot **out, struct herr *err);

/* Start sending on an idle slot.  The strings and message must stay valid
 * until the slot comes back from transfer_collect(). */
void transfer_start(struct transfer_slot *s, const char *mail_from, const char *rcpt,
                    const char *msg, size_t len, void *user);

/* The slots whose transfer finished since the last call, linked through
 * transfer_next(); NULL when none. */
struct transfer_slot *transfer_collect(struct transfer_pool *p);
struct transfer_slot *transfer_next(const struct transfer_slot *s);

const struct smtp_result *transfer_result(const struct transfer_slot *s);
void *transfer_user(const struct transfer_slot *s);
const struct config_relay *transfer_relay(const struct transfer_slot *s);
/* Connections the slot has opened so far. */
long transfer_connects(const struct transfer_slot *s);

#endif
