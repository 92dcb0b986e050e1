/* SPDX-License-Identifier: MIT */
/*
 * The fast paths of malloc and free as functions that say whether they
 * could serve, for the preload library (preload.c): its malloc and free try
 * them first, with nothing around them -- no errno saved, no re-entry flag
 * set, no ownership test beyond the one range compare against free_limit
 * (a bootstrap block, a C library block, NULL and a heap block of an arena
 * not seen yet all fail it) -- and only when they say no go the whole way
 * (the wrapper's slow path, then shma_malloc/shma_free).  They are
 * shma_malloc's and shma_free's fast paths (api.c) step for step: the same
 * bounds, the same page-entry test, the same freed mark, the same push and
 * pop; neither system call nor lock, nor anything that could call malloc.
 */
#ifndef SHMA_FAST_H
#define SHMA_FAST_H

#include "client.h"
#include "freecheck.h"
#include "sizeclass.h"

/* A block of size bytes from the calling thread's bin, its freed mark
 * cleared and counted as shma_malloc counts; NULL when that takes more
 * than a pop (a large size, debug mode, not connected, no cache yet, a bin
 * at its low mark). */
static inline void *fast_malloc(size_t size)
{
	if (unlikely(size >= map_view.malloc_limit))
		return NULL;
	unsigned cls = sizeclass_of(size);
	struct tcache *t = tcache_self;
	if (unlikely(t == NULL))
		return NULL;
	struct control_slot *s = t->slot;
	uint32_t *count = &s->bins[cls].count;
	const struct tcache_hot *h = &t->hot[cls];
	uint32_t n = *count;
	if (unlikely(n <= h->low))
		return NULL;
	void *p = tcache_pop(count, h->stack, n);
	s->class_mallocs[cls]++;
	s->class_requested[cls] += size;
	return check_clear(p);
}

/* Frees p onto the calling thread's bin: 1, or 0 (nothing done) when that
 * takes more than a push -- p not a small object of this process's kind in
 * an arena seen made (or NULL, or not the heap's), debug mode, a freed mark
 * or a start that is no object's (the slow path judges), no cache, a full
 * bin.  free_limit is read first, with acquire, as shma_free() does. */
static inline int fast_free(void *p)
{
	uint64_t limit = __atomic_load_n(&map_view.free_limit, __ATOMIC_ACQUIRE);
	uint64_t off = (uint64_t)((char *)p - map_view.base);
	if (unlikely(off >= limit))
		return 0;
	struct page_entry e = *map_fast_entry(off);
	if (unlikely(MAP_ENTRY_UNCACHED(e) || !check_fast_ok(p, off, e)))
		return 0;
	struct tcache *t = tcache_self;
	if (unlikely(t == NULL))
		return 0;
	uint32_t *count = &t->slot->bins[e.cls].count;
	const struct tcache_hot *h = &t->hot[e.cls];
	uint32_t n = *count;
	if (unlikely(n >= h->room))
		return 0;
	check_mark(p);
	tcache_push(count, h->stack, n, off);
	return 1;
}

#endif
