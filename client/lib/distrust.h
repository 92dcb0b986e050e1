/* SPDX-License-Identifier: MIT */
/*
 * What the library checks of memory a broken daemon could change under it
 * (distrust.c; doc/architecture.md, "A broken daemon"): a bin's count and
 * refs in the control block, refs that enter a bin from the transfer cache
 * or the uid's area, a page map entry a free believes.
 */
#ifndef SHMA_DISTRUST_H
#define SHMA_DISTRUST_H

#include "client.h"

/* What was found wrong, each said once a process on stderr. */
enum distrust_kind {
	DISTRUST_COUNT,   /* a bin's count past its reserved refs */
	DISTRUST_BIN_REF, /* a ref in a bin past the heap's range */
	DISTRUST_XFER_REF, /* a ref in a transfer entry that is no object of its class */
	DISTRUST_PAGE_MAP, /* a page map entry whose span does not hold the page */
	DISTRUST_KINDS
};

/* Counts one of kind (and says it the first time); distrust_seen() reads
 * the count (the tests). */
SHMA_HIDDEN void distrust_note(enum distrust_kind kind);
SHMA_HIDDEN uint64_t distrust_seen(enum distrust_kind kind);

/* Bin cls of t (its slot of t's block) as the fast path refused it: a count
 * past the bin's room is set to 0 (what it held is lost: leaked, never
 * handed out), refs on top past the heap's range are dropped.  Returns the
 * count left. */
SHMA_HIDDEN uint32_t distrust_bin(struct tcache *t, unsigned cls);

/* 1 if ref is the start of an object of class cls by the read-only page
 * map (the check of a refill's refs, call.c, and of every ref that enters a
 * bin from a transfer entry, xfer.c). */
SHMA_HIDDEN int distrust_ref_ok(uint64_t ref, unsigned cls);

/* On a reconnection: 1 unless segment 'M' as this Hello passed it is shorter
 * than what we map of it ('p': backing_same_heap()).  A segment cut short
 * would SIGBUS the process at its next touch past the cut. */
SHMA_HIDDEN int distrust_segments_whole(void);
/* 1 if fd is a file of len bytes at least (or fstat cannot tell). */
SHMA_HIDDEN int distrust_size_ok(int fd, uint64_t len);

#endif
