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

/* An object of class cls from the calling thread's bin, counted as a
 * malloc of size bytes; NULL when that takes more than a pop (no cache
 * yet, a bin at its low mark).  The one pop of the library: shma_malloc()
 * (api.c) and fast_malloc() both take it. */
static inline void *fast_pop(unsigned cls, size_t size)
{
	struct tcache *t = tcache_self;
	if (unlikely(t == NULL))
		return NULL;
	struct control_slot *s = t->slot;
	uint32_t *count = &s->bins[cls].count;
	const struct tcache_hot *h = &t->hot[cls];
	uint32_t n = *count;
	/* low < n <= room in one compare (reach is room - low), as
	 * the daemon can write the count: a count past the bin's reserved refs
	 * goes to the slow path, which says so (distrust_bin()); and so does a
	 * top ref of 0 or past the heap's range (the daemon can write the refs
	 * too: a ref's class is checked where it enters the bin, xfer.c, call.c). */
	if (unlikely(n - h->low - 1 >= h->reach))
		return NULL;
	uint64_t ref = h->stack[n - 1];
	if (unlikely(ref - 1 >= map_view.pop_limit)) /* 0 is no object's ref */
		return NULL;
	*count = n - 1;
	void *p = map_ptr(ref);
	if (p == NULL)
		__builtin_unreachable(); /* base + a ref: so the caller's test of NULL goes */
	s->class_mallocs[cls]++;
	s->class_requested[cls] += size;
	return p;
}

/* Pushes the object at ref of class cls on the calling thread's bin: 1,
 * or 0 (nothing done) with no cache or a full bin.  The one push of the
 * library, as fast_pop() is its pop. */
static inline int fast_push(size_t cls, uint64_t ref)
{
	struct tcache *t = tcache_self;
	if (unlikely(t == NULL))
		return 0;
	uint32_t *count = &t->slot->bins[cls].count;
	const struct tcache_hot *h = &t->hot[cls];
	uint32_t n = *count;
	if (unlikely(n >= h->room))
		return 0;
	tcache_push(count, h->stack, n, ref);
	return 1;
}

/* A block of size bytes from the calling thread's bin, its freed mark
 * cleared and counted as shma_malloc counts; NULL when that takes more
 * than a pop (a large size, debug mode, not connected, no cache yet, a bin
 * at its low mark). */
static inline void *fast_malloc(size_t size)
{
	if (unlikely(size >= map_view.malloc_limit))
		return NULL;
	void *p = fast_pop(sizeclass_of(size), size);
	return likely(p != NULL) ? check_clear(p) : NULL;
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
	/* Marked before the push, as shma_free() does; unmarked again when
	 * the bin is full (the slow path marks it itself). */
	check_mark(p);
	if (likely(fast_push(e.cls, off)))
		return 1;
	check_clear(p);
	return 0;
}

#endif
