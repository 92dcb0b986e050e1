/* SPDX-License-Identifier: MIT */
/*
 * The large blocks a client keeps for reuse (client/lib/largecache.c: the
 * entries of its control block's header), given back by the daemon once
 * they sat there for the decay: a client decays its own only when it next
 * allocates or frees a large block, so one that went idle after a burst
 * would hold up to 64 MiB of the heap's pages for as long as it lives.
 *
 * The daemon watches each entry on its decay timer; an entry that held the
 * same ref for the decay is taken with a compare-and-swap of the ref to 0
 * (the client takes its entries the same way, so one of the two has it),
 * and freed as a FreeLarge would free it -- if it is a live large block of
 * that client, which is all the daemon believes of an entry.
 *
 * Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_KEPT_H
#define SHMA_SERVER_KEPT_H

#include <stdint.h>

struct daemon;

/* On the decay timer: the blocks every client kept for the decay go back.
 * How many did. */
unsigned daemon_kept_decay(struct daemon *d, uint64_t now_ms);

#endif
