/* SPDX-License-Identifier: MIT */
/*
 * The uids' transfer areas (uidarea.c; shm/layout.h: struct uid_area):
 * one segment per uid with clients, where the batches of one process's full
 * bins wait for another's empty bins without the daemon.  Made when the
 * uid's first library client says Hello, passed with its Hello reply (and
 * every later one of that uid's), drained back into the heap when the uid's
 * last member's control block is settled.  Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_UIDAREA_H
#define SHMA_SERVER_UIDAREA_H

#include <stdint.h>

struct daemon;
struct client;
struct control_block;

/* At Hello, once c has its control block (and its region, if any): makes c
 * a member of its uid's area (made now if the uid has none) and writes its
 * member index in the block.  Not for a region client or an observer, whose
 * blocks must not move to other processes; without memory for the area c
 * is served as before. */
void uidarea_join(struct daemon *d, struct client *c);

/* The descriptor of c's uid's area if c is a member of it, else -1 (the
 * Hello reply passes it beside the control block's). */
int uidarea_fd(const struct daemon *d, const struct client *c);

/* Client id's control block cb is being reclaimed (its process is gone):
 * every batch it had half put in or half taken out of its uid's area --
 * words naming its member index -- is taken back once (from the entry if
 * its bin's count says the bin does not hold it; the bin walk takes the
 * others) and the entry emptied.  Returns the objects taken back; refs
 * that are not objects of the class that are out are counted in *refused. */
uint64_t uidarea_reclaim(struct daemon *d, uint64_t id, struct control_block *cb, int fd,
			 uint32_t nslots, uint64_t *refused);

/* Client id's control block is gone: its member index is free again, and if
 * it was its uid's last member the area's full entries go back to the heap
 * and the area goes.  cb: its block if still mapped (NULL if not). */
void uidarea_leave(struct daemon *d, uint64_t id, const struct control_block *cb);

/* Client id's connection ended (its block may live on as an orphan): it no
 * longer counts as a taker, and the area's full entries go back to the
 * heap (its half moves stay for uidarea_reclaim()). */
void uidarea_disconnected(struct daemon *d, uint64_t id, const struct control_block *cb);

/* Bytes of the objects waiting in every area's full entries (stats'
 * cached_bytes: out of the heap, in nobody's use). */
uint64_t uidarea_cached_bytes(const struct daemon *d);

/* On the decay timer: full entries that held the same batch for the decay
 * time (at least a second) go back to the heap, so that a batch nobody of
 * the uid takes does not hold its pages while a member stays connected.
 * Returns the objects taken back. */
uint64_t uidarea_decay(struct daemon *d, uint64_t now_ms);

/* At exit: every area's full entries back to the heap, the areas gone. */
void uidarea_close(struct daemon *d);

#endif
