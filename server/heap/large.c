/* SPDX-License-Identifier: MIT */
/*
 * Large blocks: see large.h.  First a block's truth in one arena's page map
 * (large_*()), then the heap's large blocks (heap_*_large(), heap.h): a run
 * of one arena's pages, or a jumbo block of whole fresh arenas, with the
 * counters they move.
 */
#include "large.h"
#include "clock.h"
#include "heap_internal.h"
#include "ref.h"
#include "seg.h"

#include <errno.h>
#include <stddef.h>

void large_make(struct arena *a, struct page_run *run, uint64_t owner)
{
	struct page_entry *pm = a->page_map;
	*layout_owner(a->meta, a->g, run->start) = owner;
	for (uint32_t p = run->start + 1; p < run->start + run->npages; p++) {
		pm[p].cls = 0;
		pm[p].span_start = run->start;
		__atomic_store_n(&pm[p].kind, PAGE_LARGE_CONT, __ATOMIC_RELEASE);
	}
	pm[run->start].cls = 0;
	pm[run->start].flags = layout_owner_flags(owner);
	pm[run->start].span_start = run->npages;
	__atomic_store_n(&pm[run->start].kind, PAGE_LARGE, __ATOMIC_RELEASE);
	a->large_of_page[run->start] = run;
}

void large_unmake(struct arena *a, struct page_run *run)
{
	struct page_entry *pm = a->page_map;
	__atomic_store_n(&pm[run->start].kind, PAGE_FREE, __ATOMIC_RELEASE);
	pm[run->start].span_start = 0;
	pm[run->start].flags = 0;
	for (uint32_t p = run->start + 1; p < run->start + run->npages; p++) {
		__atomic_store_n(&pm[p].kind, PAGE_FREE, __ATOMIC_RELEASE);
		pm[p].span_start = 0;
	}
	a->large_of_page[run->start] = NULL;
	*layout_owner(a->meta, a->g, run->start) = 0;
}

uint64_t large_owner(const struct arena *a, uint32_t p)
{
	return *layout_owner(a->meta, a->g, p);
}

struct page_run *large_at(const struct arena *a, uint64_t off)
{
	uint64_t page = off >> SHMA_PAGE_SHIFT;
	if (page >= a->g->npages || (off & (SHMA_PAGE_SIZE - 1)) != 0 ||
	    a->page_map[page].kind != PAGE_LARGE)
		return NULL;
	return a->large_of_page[page];
}

struct page_run *large_containing(const struct arena *a, uint64_t off)
{
	uint64_t page = off >> SHMA_PAGE_SHIFT;
	if (page >= a->g->npages)
		return NULL;
	const struct page_entry *pe = &a->page_map[page];
	if (pe->kind == PAGE_LARGE_CONT && pe->span_start < a->g->npages)
		page = pe->span_start;
	if (a->page_map[page].kind != PAGE_LARGE)
		return NULL;
	struct page_run *r = a->large_of_page[page];
	/* A block running on into later arenas: every byte of this arena from
	 * its first page on is in it. */
	return r != NULL && off < ((uint64_t)r->start + r->npages) << SHMA_PAGE_SHIFT ? r : NULL;
}

uint32_t large_whole(const struct arena *a, uint32_t p)
{
	const struct page_entry *pm = a->page_map;
	uint32_t n = pm[p].span_start;
	if (pm[p].kind != PAGE_LARGE || n == 0)
		return 0;
	uint32_t here = n > a->g->npages - p ? a->g->npages - p : n;
	for (uint32_t q = p + 1; q < p + here; q++)
		if (pm[q].kind != PAGE_LARGE_CONT || pm[q].span_start != p)
			return 0;
	return n;
}

/* ---- the heap's large blocks ---- */

static void large_counted(struct heap *h, uint64_t got)
{
	h->large_count++;
	h->large_bytes += got;
	h->in_use += got;
	if (h->in_use > h->peak)
		h->peak = h->in_use;
}


/* Writes the page map of a block of npages pages from page meta_pages of
 * arena first into the arenas after it (see PAGE_JUMBO), last arena first;
 * with kind PAGE_FREE, writes them back (metadata page numbers to
 * PAGE_META). */
static void jumbo_tail_map(struct heap *h, uint32_t first, uint64_t npages, int make)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages;
	uint64_t left = npages - (per - meta);
	uint32_t k = (uint32_t)((left + per - 1) / per);
	for (uint32_t j = k; j >= 1; j--) {
		struct arena *a = h->arenas[first + j];
		uint64_t covered = left - (uint64_t)(j - 1) * per;
		if (covered > per)
			covered = per;
		for (uint32_t p = 0; p < covered; p++) {
			struct page_entry *pe = &a->page_map[p];
			pe->cls = 0;
			pe->span_start = make ? PAGE_JUMBO : p < meta ? p : 0;
			__atomic_store_n(&pe->kind,
					 make ? PAGE_LARGE_CONT : p < meta ? PAGE_META : PAGE_FREE,
					 __ATOMIC_RELEASE);
		}
	}
}

/* The arenas after the first that a block of npages pages from page
 * meta_pages of an arena runs into. */
static uint32_t jumbo_more(const struct heap *h, uint64_t npages)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages;
	if (npages <= per - meta)
		return 0;
	return (uint32_t)((npages - (per - meta) + per - 1) / per);
}

/* A block larger than an arena's free pages: fresh arenas at the end of the
 * heap, whole, the block from the first one's first free page on. */
static int alloc_jumbo(struct heap *h, uint64_t npages, uint64_t owner, uint64_t *ref)
{
	int lazy = heap_owner_lazy(owner);
	uint32_t per = h->g.npages, meta = h->g.meta_pages, k = 1 + jumbo_more(h, npages);
	if (npages > UINT32_MAX - 1 || k > h->max_arenas - h->narenas)
		return -ENOMEM;
	uint32_t first = h->narenas;
	for (uint32_t j = 0; j < k; j++) {
		int rc = heap_add_arena(h);
		if (rc < 0)
			return rc; /* the arenas made stay, empty */
	}
	uint64_t start = h->arenas[first]->ref_base + arena_page_offset(meta);
	int rc = lazy ? 0 : heap_reserve(h, start, npages << SHMA_PAGE_SHIFT);
	if (rc < 0)
		return rc;
	for (uint32_t j = 0; j < k; j++) {
		struct page_run *r;
		rc = pageheap_claim(h->ph, first + j, meta, per - meta, &r);
		if (rc < 0) {
			for (uint32_t i = 0; i < j; i++) {
				struct arena *b = h->arenas[first + i];
				pageheap_free(h->ph, b->large_of_page[meta], monotonic_ms());
				b->large_of_page[meta] = NULL;
			}
			seg_punch(h->pages_fd, start, npages << SHMA_PAGE_SHIFT);
			return rc;
		}
		if (!lazy)
			pageheap_mark_backed(h->ph, first + j, meta, per - meta);
		h->arenas[first + j]->large_of_page[meta] = r;
	}
	/* The later arenas first, then the first one's pages, its first page
	 * last (recovery.c). */
	jumbo_tail_map(h, first, npages, 1);
	struct arena *a = h->arenas[first];
	struct page_run *r0 = a->large_of_page[meta];
	*layout_owner(a->meta, a->g, meta) = owner;
	for (uint32_t p = meta + 1; p < per; p++) {
		a->page_map[p].cls = 0;
		a->page_map[p].span_start = meta;
		__atomic_store_n(&a->page_map[p].kind, PAGE_LARGE_CONT, __ATOMIC_RELEASE);
	}
	a->page_map[meta].cls = 0;
	a->page_map[meta].flags = layout_owner_flags(owner);
	a->page_map[meta].span_start = (uint32_t)npages;
	__atomic_store_n(&a->page_map[meta].kind, PAGE_LARGE, __ATOMIC_RELEASE);
	(void)r0;
	*ref = start;
	return 0;
}

static void free_jumbo(struct heap *h, struct arena *a, uint64_t npages)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages, k = 1 + jumbo_more(h, npages);
	uint64_t start = a->ref_base + arena_page_offset(meta);
	__atomic_store_n(&a->page_map[meta].kind, PAGE_FREE, __ATOMIC_RELEASE);
	a->page_map[meta].span_start = 0;
	a->page_map[meta].flags = 0;
	*layout_owner(a->meta, a->g, meta) = 0;
	for (uint32_t p = meta + 1; p < per; p++) {
		__atomic_store_n(&a->page_map[p].kind, PAGE_FREE, __ATOMIC_RELEASE);
		a->page_map[p].span_start = 0;
	}
	jumbo_tail_map(h, a->id, npages, 0);
	uint64_t now = monotonic_ms();
	for (uint32_t j = 0; j < k; j++) {
		struct arena *b = h->arenas[a->id + j];
		struct page_run *r = b->large_of_page[meta];
		b->large_of_page[meta] = NULL;
		if (r != NULL)
			pageheap_free(h->ph, r, now);
	}
	if (seg_punch(h->pages_fd, start, npages << SHMA_PAGE_SHIFT) == 0)
		for (uint32_t j = 0; j < k; j++)
			h->returned += arena_page_offset(
				pageheap_unback(h->ph, a->id + j, meta, per - meta));
}

/* heap_alloc_large() with the owner word as it is kept (a region's: lazy). */
static int alloc_large(struct heap *h, uint64_t size, uint64_t owner, uint64_t *ref,
		       uint64_t *got)
{
	if (size == 0)
		return -EINVAL;
	if (size > h->range)
		return -ENOMEM;
	uint64_t npages = (size + SHMA_PAGE_SIZE - 1) >> SHMA_PAGE_SHIFT;
	if (npages > h->g.npages - h->g.meta_pages) {
		int rc = alloc_jumbo(h, npages, owner, ref);
		if (rc < 0)
			return rc;
		*got = npages << SHMA_PAGE_SHIFT;
		large_counted(h, *got);
		return 0;
	}
	struct page_run *r;
	int rc = heap_alloc_pages(h, (uint32_t)npages, heap_owner_lazy(owner), &r);
	if (rc < 0)
		return rc;
	struct arena *a = h->arenas[r->region];
	large_make(a, r, owner);
	*ref = a->ref_base + arena_page_offset(r->start);
	*got = arena_page_offset(r->npages);
	large_counted(h, *got);
	return 0;
}

int heap_alloc_large(struct heap *h, struct heap_region *rg, uint64_t size, uint64_t owner,
		     uint64_t *ref, uint64_t *got)
{
	if (rg == NULL)
		return alloc_large(h, size, owner & ~SHMA_OWNER_REGION, ref, got);
	owner = rg->id | SHMA_OWNER_REGION;
	int rc = alloc_large(h, size, owner, ref, got);
	if (rc == 0 && heap_region_note_large(h, owner, *ref, *got, 1) != 0) {
		heap_free_large(h, *ref, NULL);
		rc = -ENOMEM;
	}
	return rc;
}

int heap_free_large(struct heap *h, uint64_t ref, uint64_t *size)
{
	struct arena *a = heap_arena_of(h, ref);
	if (a != NULL && a->quarantined != NULL)
		return -EUCLEAN;
	struct page_run *r = a ? large_at(a, ref_arena_offset(ref, h->arena_shift)) : NULL;
	if (r == NULL)
		return -EINVAL;
	uint32_t len = a->page_map[r->start].span_start;
	uint64_t owner = large_owner(a, r->start);
	if (len > r->npages) {
		uint64_t bytes = (uint64_t)len << SHMA_PAGE_SHIFT;
		heap_region_note_large(h, owner, ref, bytes, 0);
		free_jumbo(h, a, len);
		h->large_count--;
		h->large_bytes -= bytes;
		h->in_use -= bytes;
		if (size != NULL)
			*size = bytes;
		return 0;
	}
	uint64_t sz = arena_page_offset(r->npages);
	uint32_t region = r->region, start = r->start, npages = r->npages;
	heap_region_note_large(h, owner, ref, sz, 0);
	large_unmake(a, r);
	if (heap_owner_lazy(owner))
		heap_settle_lazy(h, region, start, npages);
	pageheap_free(h->ph, r, monotonic_ms());
	if (sz >= HEAP_PUNCH_AT &&
	    seg_punch(h->pages_fd, heap_pages_offset(h, region, start), sz) == 0)
		h->returned += arena_page_offset(pageheap_unback(h->ph, region, start, npages));
	h->large_count--;
	h->large_bytes -= sz;
	h->in_use -= sz;
	if (size != NULL)
		*size = sz;
	return 0;
}

uint64_t heap_large_owner(const struct heap *h, uint64_t ref)
{
	struct arena *a = heap_arena_of(h, ref);
	struct page_run *r = a ? large_at(a, ref_arena_offset(ref, h->arena_shift)) : NULL;
	return r != NULL ? large_owner(a, r->start) & ~SHMA_OWNER_REGION : 0;
}

uint64_t heap_large_size(const struct heap *h, uint64_t ref, uint64_t *start)
{
	struct arena *a = heap_arena_of(h, ref);
	if (a == NULL)
		return 0;
	uint64_t off = ref_arena_offset(ref, h->arena_shift);
	/* A page of a block that began in an earlier arena: go back to it. */
	while (a->page_map[off >> SHMA_PAGE_SHIFT].kind == PAGE_LARGE_CONT &&
	       a->page_map[off >> SHMA_PAGE_SHIFT].span_start == PAGE_JUMBO && a->id > 0) {
		a = h->arenas[a->id - 1];
		off = arena_page_offset(h->g.npages - 1);
	}
	struct page_run *r = large_containing(a, off);
	if (r == NULL)
		return 0;
	uint64_t len = a->page_map[r->start].span_start;
	uint64_t first = a->ref_base + arena_page_offset(r->start);
	if (ref >= first + (len << SHMA_PAGE_SHIFT))
		return 0;
	if (start != NULL)
		*start = first;
	return len << SHMA_PAGE_SHIFT;
}

