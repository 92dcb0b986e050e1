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
 * And its address space: each block is a 6.8 GiB mapping in the daemon, so
 * 1024 orphans of one user (--uid-max-orphans) took 7 TiB of it, and 18
 * such users all of it (issue 21 case 7).  An orphan's block is therefore
 * not mapped: ctlcap_unmap() when it becomes one, ctlcap_map() again for
 * the moment it is re-adopted or its caches are taken back.
 *
 * And its name: c<id>, with ids counted up, let an outsider squat the names
 * after the last id (140 000 of them refused the first Hello, and each try
 * of 65 536 names stalled the loop 300 ms: issue 21 case 12).  A taken name
 * makes the ids jump by a random 1..2^32 (ctlcap_id_jump()), a name nobody
 * can squat ahead of; a Hello tries 16.
 *
 * Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_CTLCAP_H
#define SHMA_SERVER_CTLCAP_H

#include <stdint.h>

struct daemon;
struct control_block;

/* Checks every connected client's block (one fstat each); returns how many
 * were emptied.  Called on the decay timer. */
unsigned ctlcap_check(struct daemon *d);

/* Puts the pages segment's size back if a client cut or grew it (heap.h:
 * heap_pages_heal()) and says so; 1 if it did.  Called on the decay timer
 * and at each Hello (one fstat), so that a new client maps a whole heap. */
int ctlcap_heal_pages(struct daemon *d);

/* Unmaps a control block the daemon mapped (and guarded); NULL: nothing. */
void ctlcap_unmap(struct control_block *cb);
/* Maps control block id of d's instance again, guarded (guard.h), from its
 * name: the block, or NULL (said in the log) if it is not there, not ours or
 * not of a control block's size. */
struct control_block *ctlcap_map(struct daemon *d, uint64_t id);

/* How far the next client id jumps past one whose control block name was
 * taken: 1 to 2^32, at random (getrandom). */
uint64_t ctlcap_id_jump(void);

#endif
