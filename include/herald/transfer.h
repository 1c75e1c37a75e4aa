/*
 * transfer.h - SMTP connections that send side by side: one thread each.
 *
 * Why a thread each: smtp.c's session waits on its relay (libcurl's
 * connect phase, then each transaction's replies), and against a relay
 * that takes 100 ms to accept a message (content scanning, a remote
 * datacentre) one connection must not hold up the others.  (libcurl's
 * multi interface was no way out: in libcurl 7.88 its SMTP code waits for
 * the reply to the final "." in a blocking loop, smtp_block_statemach,
 * stalling every transfer of the multi handle.)  So each connection gets a
 * thread running smtp_send() on its own session, kept open between
 * messages; the threads block on the network, never on each other.
 * tests/integration/test_run_faults.py measures this (a relay slow after
 * the dot).
 *
 * Each slot has a short queue, so that its thread has the next message at
 * hand instead of waiting for the send loop to assign one: handing messages
 * over one at a time cost two context switches per message, most of
 * herald's CPU in bench/send.sh.  A slot runs the queued items in order, one
 * at a time; the items not yet started can be taken back (transfer_recall)
 * when a send stops.  Finished items are collected by the send loop; when
 * one finishes the pool calls `notify`, which wakes the loop.
 *
 * A slot does not start its next message until the send loop has
 * acknowledged the previous one (transfer_ack), that is, committed its
 * result to the ledger.  So at any instant each connection has at most one
 * message whose fate the ledger does not know, and a crash can cause at
 * most one duplicate per connection (ledger.h invariant (5)).
 */
#ifndef HERALD_TRANSFER_H
#define HERALD_TRANSFER_H

#include <stddef.h>

#include "herald/config.h"
#include "herald/herr.h"
#include "herald/smtp.h"

struct transfer_slot;

/* One message to send; embedded in the caller's job. */
struct transfer_item {
	const char           *from, *rcpt; /* envelope */
	const char           *msg;         /* the bytes, CRLF */
	size_t                len;
	struct transfer_slot *slot;        /* OUT: the slot that ran it */
	struct smtp_result    result;      /* OUT */
	struct transfer_item *next;        /* the pool's link while queued or done */
};

struct transfer_pool;

/* A pool whose finished transfers are announced through notify(ctx). */
int transfer_pool_new(void (*notify)(void *ctx), void *ctx, struct transfer_pool **out,
                      struct herr *err);
/* Stop every slot's thread (waiting for transfers under way; items still
 * queued are dropped - recall them first) and free all. */
void transfer_pool_free(struct transfer_pool *p);

/* Add a slot (a connection and its thread) for `relay`. */
int transfer_slot_new(struct transfer_pool *p, const struct config_relay *relay,
                      struct transfer_slot **out, struct herr *err);

/* Queue an item on a slot.  Its strings must stay valid until it comes
 * back from transfer_collect() or transfer_recall(). */
void transfer_push(struct transfer_slot *s, struct transfer_item *it);
/* Items queued on the slot and not yet started, as a list. */
struct transfer_item *transfer_recall(struct transfer_slot *s);
/* Items queued or running on the slot. */
int transfer_load(const struct transfer_slot *s);

/* Every item finished since the last call, as a list in finishing order. */
struct transfer_item *transfer_collect(struct transfer_pool *p);
/* The results of these slots' finished items are safely recorded: each may
 * start its next message.  `slots` may repeat a slot (once per item). */
void transfer_ack(struct transfer_pool *p, struct transfer_slot *const *slots, size_t n);

const struct config_relay *transfer_relay(const struct transfer_slot *s);
/* Connections the slot has opened so far. */
long transfer_connects(const struct transfer_slot *s);

#endif
