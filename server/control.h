/* SPDX-License-Identifier: MIT */
/*
 * Control blocks (control.c): each client's thread caches in a segment of
 * its own, made (or taken from the spares made ahead) at Hello, kept as an
 * orphan while its process lives after its connection ended, re-adopted by
 * that process's next connection, and taken back (its caches reclaimed, its
 * region ended) once the process is gone.  Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_CONTROL_H
#define SHMA_SERVER_CONTROL_H

#include <stdint.h>

struct daemon;
struct client;
struct control_block;

/* Gives client c a new control block and its id (c->id): a spare if one is
 * ready, else one made now (segment 'c<id>'; ids move past those whose
 * blocks still exist); 0 or -errno. */
int daemon_control_create(struct daemon *d, struct client *c);

/* 1 while spare control blocks should be made: fewer than
 * DAEMON_CONTROL_SPARES, and Hellos came lately (or we just started). */
int daemon_control_spares_wanted(const struct daemon *d);

/* Fills a new block's first batches (shm/layout.h: layout_prefilled()) in
 * its transfer cache, from c's region if it has one, before the Hello reply:
 * the client's first malloc of those classes needs no refill. */
void daemon_control_prefill(struct daemon *d, struct client *c);

/* The bytes of the objects in cb's transfer cache (full entries), read
 * while the client runs: the client's word, for stats only. */
uint64_t daemon_control_xfer_bytes(const struct control_block *cb);

/* Takes back every object the caches of cb (client id's; fd its segment)
 * hold -- its process is gone, no word moves under us -- believing no
 * count or ref it did not check (cachewalk.c); returns how many. */
uint64_t daemon_control_reclaim(struct daemon *d, struct control_block *cb, int fd, uint64_t id);

/* 1 if the batch of a word caught between a bin of cb and an entry
 * (PUTTING, TAKING: shm/layout.h; a transfer cache's or a uid area's) is
 * the bin's, by the count of the bin the word names; anything else is the
 * entry's.  nslots: the slots the daemon reads. */
int daemon_control_batch_in_bin(const struct control_block *cb, uint32_t nslots, unsigned cls,
				uint64_t w, uint32_t n);

/* Off the Hello's path (the loop calls it a moment after a Hello took one):
 * makes one spare if they are wanted -- a whole block, reserved, its client
 * id taken, no pid yet.  Returns daemon_control_spares_wanted() after. */
int daemon_control_spare_make(struct daemon *d);

/* On the decay timer: with no Hello since the last call, the spares go (their
 * memory back to the OS); the next Hello makes its own and wants them again. */
void daemon_control_spares_trim(struct daemon *d);

/* c's connection ended.  If its process is gone, takes back what its caches
 * hold, ends its region (heap_region_end(): everything it still held) and
 * removes the control block; else keeps the block as an orphan
 * until the process is gone (daemon_control_sweep()) or re-adopts it
 * (reclaim 1: it lost its connection) -- after a goodbye (reclaim 0) it may
 * not.  Returns the objects taken back now. */
uint64_t daemon_control_release(struct daemon *d, struct client *c, int reclaim);

/* Gives c the orphaned control block id, if c's process (SO_PEERCRED pid)
 * is the one it belongs to: 0, -ENOENT (no such orphan) or -EPERM. */
int daemon_control_adopt(struct daemon *d, struct client *c, uint64_t id);

/* Takes back the caches of orphans whose process is gone, and ends their
 * regions; bounded by their cached objects and their regions' spans and
 * blocks.  Returns the objects taken back. */
uint64_t daemon_control_sweep(struct daemon *d);

/* At start, after the heap is open: the control blocks an earlier daemon
 * left become orphans (the dead ones' caches taken back at once) and client
 * ids start past theirs.  0 or -errno. */
int daemon_control_recover(struct daemon *d);

/* At exit: forgets the orphans; with unlink, removes their segments.  The
 * spares are removed either way: they are nobody's. */
void daemon_control_close(struct daemon *d, int unlink);

#endif
