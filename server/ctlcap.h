/* SPDX-License-Identifier: MIT */
/*
 * A client's control block is a tmpfs segment it holds read-write: it
 * reserves its own slots' refs, and it can as well fallocate or write every
 * page of the 6.8 GiB block, taking /dev/shm from everyone.  What 64
 * threads' caches take (CTLCAP_FREE, 27 MiB) is free; past that, a block
 * may hold --client-max-memory more (with no cap, no bound: such a process
 * may as well take the heap).  A block over both is emptied --
 * its pages punched out, its caches lost to it (the objects in them stay
 * allocated: a leak bounded by the cap) -- and said once.
 *
 * Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_CTLCAP_H
#define SHMA_SERVER_CTLCAP_H

#include <stdint.h>

struct daemon;

/* Checks every connected client's block (one fstat each); returns how many
 * were emptied.  Called on the decay timer. */
unsigned ctlcap_check(struct daemon *d);

/* Puts the pages segment's size back if a client cut or grew it (heap.h:
 * heap_pages_heal()) and says so; 1 if it did.  Called on the decay timer
 * and at each Hello (one fstat), so that a new client maps a whole heap. */
int ctlcap_heal_pages(struct daemon *d);

#endif
