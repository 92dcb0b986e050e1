/* SPDX-License-Identifier: MIT */
/*
 * Where the heap lives (--backing, --huge-pages): the daemon's side of
 * shm/seg.h's backings.  backing_setup() sets the backing before anything
 * is created, decides what --huge-pages can get on this system (one log
 * line when it falls back), and under systemd hands every memfd to the
 * unit's file-descriptor store and takes back, at a restart, those an
 * earlier run stored.  backing_hello_fds() says what goes with a Hello.
 */
#ifndef SHMA_SERVER_BACKING_H
#define SHMA_SERVER_BACKING_H

#include "options.h"

struct daemon;

/* Before the heap is opened.  0, or -1 after a log line (the daemon exits). */
int backing_setup(struct options *o);

/* HEAP_HUGE_* for heap_config.huge, as backing_setup() decided. */
unsigned backing_huge_mode(void);

/* How many descriptors the service manager passed that were ours (stored
 * segments), after the sockets: activation.c takes the sockets alone. */
unsigned backing_stored_fds(void);

/* After the heap is open: what its pages segment really is (a recovered heap
 * keeps the pages it was made with, whatever --huge-pages says now). */
void backing_heap_opened(struct daemon *d);

/* Fills pass[] with what a Hello reply carries: the control block's
 * descriptor, then the heap's pages and read-only metadata, then the uid's
 * transfer area (server/uidarea.h) when area_fd >= 0.  Their count. */
#define BACKING_HELLO_FDS 4
unsigned backing_hello_fds(const struct daemon *d, int ctl_fd, int area_fd,
			   int pass[BACKING_HELLO_FDS]);

#endif
