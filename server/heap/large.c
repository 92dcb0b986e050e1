/*
 * Large blocks: see large.h.
 */
#include "large.h"

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
	pm[run->start].flags = owner & SHMA_OWNER_REGION ? SHMA_PAGE_REGION : 0;
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
