/* SPDX-License-Identifier: MIT */
/*
 * The transfer cache: per process and size class, whole batches of free
 * blocks waiting in the control block for the next thread whose bin runs
 * low (shm/layout.h has the layout and the commit rules; xfer.c the moves).
 *
 * xfer_alloc() and xfer_free() take no lock and make no system call on
 * their common path: they are tried first by the thread caches' slow paths
 * (tcache.c), before the connection's lock and a round trip.
 */
#ifndef SHMA_XFER_H
#define SHMA_XFER_H

#include <stdint.h>

/* The calling thread's bin cls is low (its slow path): a batch of the
 * class from the transfer cache into the bin, and one object of it popped.
 * NULL when there is none for this thread (no cache, a refill of its own
 * on the way, nothing waiting, or no room for the batch): the caller goes
 * on to the daemon.  Takes no lock. */
void *xfer_alloc(unsigned cls);

/* The calling thread's bin cls is full (its slow path): the top half of the
 * bin into an empty entry of the transfer cache and ref pushed.  1 if done,
 * 0 if the caller must do it as before (flush to the daemon): no cache,
 * a single-threaded process, a refill of its own on the way, every entry
 * taken or the process's budget spent.  Takes no lock but the first time
 * a class is used in the control block (to reserve its entries). */
int xfer_free(unsigned cls, uint64_t ref);

/* With the connection's lock held and the connection current: every full
 * entry of the current control block goes back to the daemon in Flushes
 * (shma_disconnect). */
void xfer_flush_all(void);

/* With the connection's lock held, right after the Hello reply's control
 * block is mapped: the uid's transfer area the reply brought (its
 * descriptor, or -1 for none), now the place this block's threads put the
 * batches no sibling takes and find those other processes of the uid put.
 * The descriptor is closed.  0, or -errno (the area is not used). */
int xfer_uid_attach(int fd);

#endif
