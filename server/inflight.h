/* SPDX-License-Identifier: MIT */
/*
 * Refills in flight: what the daemon handed out that a client has not yet
 * taken into its caches.
 *
 * A thread asks for a refill ahead of need and collects the answer later.
 * If its process dies in between, the objects of that refill are out of the
 * daemon's hands yet in no cache the daemon can walk -- lost, a whole batch a
 * class.  So the daemon remembers, per client, thread slot and class, the
 * last refill it sent (a thread has at most one out per class); the client
 * writes the id of each refill it collected into the bin's `collected` word
 * of its control block, after the objects are in the bin and before any can
 * be handed to the program.  When the client's control block is settled
 * (its process gone, a goodbye, a re-adoption after a lost connection), every
 * refill not marked collected is taken back.  Large blocks likewise: the
 * client writes the id of each AllocLarge answer into its control block's
 * header as soon as it has read it, so an unmarked one never reached anyone
 * and is freed.  A refill marked collected is
 * forgotten; so is one that a newer refill of the same slot and class
 * replaces, since the thread collected it before asking again.
 *
 * Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_INFLIGHT_H
#define SHMA_SERVER_INFLIGHT_H

#include <stdint.h>

#include "heap.h"
#include "layout.h"

struct inflight_set;

/* Remembers refill req_id of (slot, cls) for client_id, replacing the last
 * one of that slot and class.  Memory trouble only loses the record. */
void inflight_note(struct inflight_set **set, uint32_t slot, uint32_t cls, uint64_t req_id,
		   const struct heap_batch *b);

/* Remembers large block ref handed out by AllocLarge req_id: a client has
 * one AllocLarge out at a time, so this replaces the last one. */
void inflight_note_large(struct inflight_set **set, uint64_t req_id, uint64_t ref);

/* Takes back every refill of the set that ctl (may be NULL: none collected)
 * does not mark collected, frees the set and sets *set to NULL.  Returns the
 * objects taken back.  Objects already free (taken back from a cache walk
 * first) are skipped. */
uint64_t inflight_settle(struct inflight_set **set, struct heap *h,
			 struct control_block *ctl);

/* Forgets the set without taking anything back. */
void inflight_forget(struct inflight_set **set);

#endif
