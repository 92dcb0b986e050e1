/* SPDX-License-Identifier: MIT */
/*
 * The page heap: runs of free pages in the arenas, by size.
 *
 * Each arena is a region of pages; the page heap knows only page numbers, it
 * makes no system call and writes no shared memory (the heap does both).  A
 * free run is kept in a free list by its size (exact lists up to 255 pages,
 * then one list per power of two) and tagged at its first and last page in a
 * private array per region, so that a run given back coalesces with free
 * neighbours on both sides in constant time.
 *
 * A run handed out is a struct page_run the caller holds until it gives the
 * run back: the struct travels with the pages, so giving back never
 * allocates and cannot fail.
 *
 * Decay: runs given back are dirty, and queue in the order they were given
 * back.  pageheap_decay_next() pops the ones idle long enough for the heap to
 * punch; it counts the pages of each that were backed (pageheap_mark_backed()
 * after a reservation), so that the bytes returned to the OS are exact.
 */
#ifndef SHMA_SERVER_PAGEHEAP_H
#define SHMA_SERVER_PAGEHEAP_H

#include <stdint.h>

struct page_run {
	uint32_t region, start, npages;
	/* Private to the page heap. */
	uint8_t free, dirty;
	uint64_t freed_ms;
	struct page_run *bin_prev, *bin_next;
	struct page_run *age_prev, *age_next;
	struct page_run *reg_prev, *reg_next;
};

/* A run that decay chose: punch [start, start + npages) of region. */
struct pageheap_decayed {
	uint32_t region, start, npages;
	uint32_t backed_pages; /* of those, pages that held backing store */
};

struct pageheap;

/* 0 and *out, or -ENOMEM. */
int pageheap_create(struct pageheap **out);

/* Frees every free run and region.  Runs handed out are the holder's to
 * release with pageheap_forget(). */
void pageheap_destroy(struct pageheap *ph);

/* Adds region id (ids are added in order 0, 1, ...) of npages pages, the
 * first first_free of which are never free (metadata).  The rest is one clean
 * free run.  0 or -ENOMEM. */
int pageheap_add_region(struct pageheap *ph, uint32_t id, uint32_t npages,
			uint32_t first_free);

/* A run of exactly npages pages from any region, in *out.  0, or -ENOMEM when
 * no free run is large enough (or memory for the struct ran out). */
int pageheap_alloc(struct pageheap *ph, uint32_t npages, struct page_run **out);

/* Recovery: takes exactly [start, start + npages) of region, which must lie
 * inside one free run, in *out (the rest of that run stays free).  0,
 * -EINVAL if those pages are not all free, or -ENOMEM.  Work is in the free
 * runs of the region looked at before the one that holds them (one, when
 * spans are claimed in page order). */
int pageheap_claim(struct pageheap *ph, uint32_t region, uint32_t start, uint32_t npages,
		   struct page_run **out);

/* Gives a run back at time now_ms; it coalesces with free neighbours and may
 * be freed, so the caller forgets it. */
void pageheap_free(struct pageheap *ph, struct page_run *r, uint64_t now_ms);

/* Frees the struct of a run handed out, without giving its pages back (for
 * teardown). */
void pageheap_forget(struct page_run *r);

/* Records that [start, start + npages) of region, pages of a run handed
 * out, holds backing store. */
void pageheap_mark_backed(struct pageheap *ph, uint32_t region, uint32_t start,
			  uint32_t npages);

/* How many pages of [start, start + npages) of region hold backing store. */
uint32_t pageheap_backed(const struct pageheap *ph, uint32_t region, uint32_t start,
			 uint32_t npages);

/* Records that [start, start + npages) of region, free pages, holds none any
 * more (it was punched); returns how many of them did. */
uint32_t pageheap_unback(struct pageheap *ph, uint32_t region, uint32_t start,
			 uint32_t npages);

/* Pops the oldest dirty run given back at least decay_ms before now_ms into
 * *d, marks it clean and its pages unbacked.  1 if there was one, else 0. */
int pageheap_decay_next(struct pageheap *ph, uint64_t now_ms, uint64_t decay_ms,
			struct pageheap_decayed *d);

/* Free pages that still hold backing store (reserved, not yet punched), in
 * every region: kept as runs come and go, so the heap can bound them. */
uint64_t pageheap_free_backed(const struct pageheap *ph);

/* Free pages and the largest free run (pages) of one region, or of all when
 * region is UINT32_MAX.  Work is in the number of free runs. */
void pageheap_stats(const struct pageheap *ph, uint32_t region, uint64_t *free_pages,
		    uint64_t *largest_run);

#endif
