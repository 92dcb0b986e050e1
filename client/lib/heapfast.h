/* SPDX-License-Identifier: MIT */
/*
 * The fast paths of a named heap's blocks (heap.c; doc/architecture.md
 * "Named heaps"): a thread's cache of a heap, and the push of a heap's
 * small block freed by shma_free() (inlined in api.c's free_other(), so
 * shma_free() itself is the same machine code as before heaps).
 *
 * heap_caches[i] is this thread's cache of the heap of handle i
 * (&heap_tc_none for none, and always for i == HEAP_HANDLES); heap_slot_handle[s] is the handle
 * of the heap in registry slot s (an id's low 9 bits) this process has open,
 * else HEAP_HANDLES.  So a free finds its cache from the span's owner word
 * in two loads: no search, no lock, no system call.
 */
#ifndef SHMA_CLIENT_HEAPFAST_H
#define SHMA_CLIENT_HEAPFAST_H

#include "client.h"
#include "freecheck.h"
#include "sizeclass.h"

#include <string.h>

/* A page entry (struct page_entry: kind, cls, flags, span_start) read as a
 * word: its kind and flags, and those of a named heap's span of small
 * objects. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HEAP_ENTRY_MASK UINT64_C(0xffff00ff)
#define HEAP_SPAN_ENTRY ((uint64_t)PAGE_SPAN | (uint64_t)(SHMA_PAGE_REGION | SHMA_PAGE_HEAP) << 16)
#else
#error "heapfast.h reads a page entry as a little-endian word"
#endif

#define HEAP_HANDLES 64u
/* A thread's cache of one heap holds at most HEAP_TC_CAP objects of a class
 * (fewer of the big ones: HEAP_TC_BYTES' worth, at least 4). */
#define HEAP_TC_CAP 64u
#define HEAP_TC_BYTES ((uint64_t)64 << 10)

struct heap_tc {
	uint64_t id;           /* of the heap its objects are of */
	uint64_t owner;        /* its spans' owner word: SHMA_OWNER_REGION | HEAP | id */
	const uint64_t *live;  /* the heap's live word in 'M' (page 0) */
	uint32_t count[SIZECLASS_COUNT];
	uint64_t refs[SIZECLASS_COUNT][HEAP_TC_CAP];
};

extern __thread struct heap_tc *heap_caches[HEAP_HANDLES + 1]
	__attribute__((tls_model("initial-exec"))) SHMA_HIDDEN;
extern uint8_t heap_slot_handle[SHMA_HEAP_SLOTS] SHMA_HIDDEN;
/* From a page's entry in its arena's page map to its owner word in the same
 * arena's metadata (shm/layout.h: both arrays are indexed by the page in
 * the arena, in the arena's metadata): the owner words' offset less the
 * page map's.  0 until a heap is opened here, when the load it makes reads
 * a page entry (mapped, harmless) and no thread has a heap's cache to
 * match it. */
extern int64_t heap_owner_delta SHMA_HIDDEN;
/* heap_caches[]' entry where a thread has no cache (never NULL). */
extern struct heap_tc heap_tc_none SHMA_HIDDEN;
/* map_view.arena_size - 1, from the first heap opened (0 before, when no
 * thread has a heap's cache for a free to find). */
extern uint64_t heap_arena_mask SHMA_HIDDEN;
/* Per class, what a thread's cache of a heap holds at most. */
extern uint8_t heap_tc_caps[SIZECLASS_COUNT] SHMA_HIDDEN;

/* 1 if p was a named heap's small object of a heap this process has open,
 * judged as shma_free()'s fast path judges, and is now pushed on this
 * thread's cache of that heap; else 0 (nothing done).  For free_other()
 * only: p passed shma_free()'s bound (off < free_limit).  No look at the
 * live word: a destroyed heap's cache is dropped, never flushed, and its
 * pops look. */
static inline int heap_free_fast(void *p)
{
	uint64_t off = (uint64_t)((char *)p - map_view.base);
	const struct page_entry *pe = map_fast_entry(off);
	/* kind, class, flags and the span's first page in one load: a span of
	 * small objects of a named heap, or not ours to place here. */
	uint64_t ev;
	memcpy(&ev, pe, sizeof ev);
	if ((ev & HEAP_ENTRY_MASK) != HEAP_SPAN_ENTRY)
		return 0;
	unsigned cls = (uint32_t)(ev >> 8) & 0xff;
	/* The object-start test and the freed mark (check_fast_ok()); a byte
	 * that is no class has check_recip 0 and fails it.  x: p's offset in
	 * its span. */
	uint64_t x = (off & heap_arena_mask) - ((ev >> 32) << SHMA_PAGE_SHIFT);
	uint64_t c = check_recip[cls], key = check_key;
	if (!(x * c < c) || ((const uint64_t *)p)[CHECK_MARK_WORD] == key)
		return 0;
	/* The span's owner word: its first page's, beside its page entry. */
	const uint64_t *ow = (const uint64_t *)((const char *)pe + heap_owner_delta) -
			     (x >> SHMA_PAGE_SHIFT);
	uint64_t w = __atomic_load_n(ow, __ATOMIC_RELAXED);
	struct heap_tc *t = heap_caches[heap_slot_handle[w & (SHMA_HEAP_SLOTS - 1)]];
	if (t->owner != w)
		return 0;
	uint32_t n = t->count[cls];
	if (n >= heap_tc_caps[cls])
		return 0;
	((uint64_t *)p)[CHECK_MARK_WORD] = key; /* check_mark() */
	t->refs[cls][n] = off;
	t->count[cls] = n + 1;
	return 1;
}

#endif
