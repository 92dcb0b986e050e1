/* SPDX-License-Identifier: MIT */
/*
 * Reads of memory a client can take away: its control block is a tmpfs
 * segment it holds read-write (it reserves its own slots through the
 * descriptor), so it can ftruncate it under the daemon, and a named tmpfs
 * segment cannot be sealed (only a memfd can).  A read past the new end
 * would be a SIGBUS that kills the daemon and every client with it.
 *
 * So every control-block mapping is registered here; a SIGBUS inside one
 * replaces the mapping from the faulting page to its end with anonymous
 * memory (zeros, private to the daemon, no memory until written) and the
 * read goes on: the daemon sees an empty tail -- no slots, no refs -- and
 * says so when it lets the block go.  A SIGBUS anywhere else is what it
 * was: fatal.
 *
 * And a read of a bin's refs is bounded by what exists: guard_resident()
 * says whether every page of a range is there (mincore()), so that the
 * daemon never allocates tmpfs pages a client never reserved by reading its
 * holes (see control.c).
 *
 * Layer: session (no libuv).  The daemon is single-threaded: the registry is
 * changed only by the thread that takes the faults.
 */
#ifndef SHMA_SERVER_GUARD_H
#define SHMA_SERVER_GUARD_H

#include <stddef.h>
#include <stdint.h>

struct control_block;

/* Registers [base, base + len) (installs the handler the first time);
 * 0 or -ENOMEM. */
int guard_add(void *base, size_t len);
/* Forgets the mapping at base (before it is unmapped). */
void guard_remove(const void *base);
/* 1 if a read of the mapping at base faulted (it was truncated) since it
 * was registered. */
int guard_broken(const void *base);
/* Faults taken in all, since the start. */
unsigned long guard_faults(void);
/* 1 if every byte of [p, p + len) of the mapping at base is backed by a
 * page of the segment -- in memory or swapped out: reading it allocates no
 * tmpfs page -- 0 if a hole is in it or it lies past the segment's end.
 * fd, the segment's descriptor, tells a swapped-out page from a hole;
 * without it (-1) a swapped-out page counts as a hole.  A page reserved
 * (fallocate) but never written counts as a hole too: tmpfs says so to
 * mincore() and SEEK_DATA alike -- refs a bin's count covers were written. */
int guard_reserved(int fd, const void *base, const void *p, size_t len);

/* How many slots of cb the daemon may read without making a page: the
 * client's slots_taken, but past the slots the daemon reserved only as far
 * as the client reserved their headers (up to the first page that is not
 * there, as guard_reserved() says).  layout_slots_readable() makes the pages
 * it finds missing instead -- 29 MiB for a block that claims every slot. */
uint32_t guard_slots_readable(int fd, const struct control_block *cb);

#endif
