/* SPDX-License-Identifier: MIT */
/*
 * Bad frees: caught before they reach a cache or the daemon.
 *
 * A free of a pointer into a block, of a block already free, or of a pointer
 * the heap does not own would put a ref in a cache that the next malloc
 * hands out while the block is live somewhere: in a shared heap, in another
 * process too.  glibc stops the program on each ("free(): invalid pointer",
 * "double free detected"); so do we, by default.  SHMALLOC_CHECK says what
 * happens once one is found:
 *   abort (default)  one line on stderr naming the pointer and what is
 *                    wrong, then abort()
 *   warn             the line, then the free does nothing and the program
 *                    goes on
 *   0                no line; the free still does nothing
 *
 * What the fast path pays (check_fast_ok(), check_mark()):
 *   - the object-start test: the page map entry already read gives the
 *     span's first page, so the offset in the span is a mask and a
 *     subtraction, and "is it a multiple of the class size" is one multiply
 *     and a compare (a per-class reciprocal, check_recip[]);
 *   - the freed mark: word 1 of every block freed into a cache holds
 *     check_key (one per instance, from the heap header), and malloc clears
 *     it when it hands the block out; a free that finds the mark there is
 *     the slow path's to judge.  The mark is a hint only: a program may
 *     have written anything there.  It is believed only when the block is
 *     found where freed blocks are (a bin of this process or of another
 *     process of the instance, a large-block cache) or the daemon's bitmap
 *     says it is not out; a mark found but not confirmed refuses the free
 *     without abort (a block lost at worst, never one handed out twice).
 * Everything else (large blocks, pointers out of the heap, confirmation)
 * runs on the slow path, check_free().
 */
#ifndef SHMA_CLIENT_FREECHECK_H
#define SHMA_CLIENT_FREECHECK_H

#include "client.h"

/* Word 1 of a block: where the freed mark goes (word 0 is where programs
 * keep their own free-list links, and a block is at least 16 bytes). */
#define CHECK_MARK_WORD 1

/* The freed mark of this instance: 0 until freecheck.c has read the heap
 * header (every free then finds "the mark" on a cleared block and goes to
 * the slow path, which sets it). */
extern uint64_t check_key SHMA_HIDDEN;
/* Per class, ceil(2^64 / size): x is a multiple of size (x < 2^32) iff
 * x * check_recip[cls] < check_recip[cls] (Lemire, Kaser and Kurz, "Faster
 * remainder by direct computation", 2019).  0 for a byte that is no class,
 * and 0 until set: such a free takes the slow path (which sets them), so
 * the fast path needs no test of the class of its own. */
extern uint64_t check_recip[256] SHMA_HIDDEN;
/* Per class, the bytes of its span (0 for a byte that is no class, and
 * until set): a page entry whose span_start puts p outside its class's span
 * (a broken daemon's page map) fails the fast test, and the slow path
 * refuses it (judge_small()). */
extern uint32_t check_span[256] SHMA_HIDDEN;

/* The fast path's test of a free of p (offset off, page entry e of a span):
 * 1 if e.cls is a class, p an object's start, and p carries no freed mark.
 * 0 sends it to check_free(). */
static inline int check_fast_ok(const void *p, uint64_t off, struct page_entry e)
{
	/* The arena's start from the shift map_fast_entry() made already. */
	uint64_t arena = off >> map_view.arena_shift << map_view.arena_shift;
	uint64_t x = off - arena - ((uint64_t)e.span_start << SHMA_PAGE_SHIFT);
	uint64_t c = check_recip[e.cls];
	return x < check_span[e.cls] && x * c < c && ((const uint64_t *)p)[CHECK_MARK_WORD] != check_key;
}

/* Marks p freed: before its ref goes into a cache. */
static inline void check_mark(void *p)
{
	((uint64_t *)p)[CHECK_MARK_WORD] = check_key;
}

/* A block about to be handed to the program: its mark cleared. */
static inline void *check_clear(void *p)
{
	((uint64_t *)p)[CHECK_MARK_WORD] = 0;
	return p;
}

/* The same for p that may be NULL.  Returns p. */
static inline void *check_fresh(void *p)
{
	return p != NULL ? check_clear(p) : p;
}

enum {
	CHECK_READ_MARK = 1,  /* look at the freed mark (memory the tools let us read) */
	CHECK_WRITE_MARK = 2, /* mark the block freed if the free may go on */
};

/* The slow path's verdict on a free of p (not NULL) by what (for the
 * message: "free", "realloc"): 1 if it may go on, 0 if it must do nothing.
 * A bad free is reported and, in abort mode, never returns. */
SHMA_HIDDEN int check_free(void *p, const char *what, int flags);

#endif
