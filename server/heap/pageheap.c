/* SPDX-License-Identifier: MIT */
/*
 * The page heap: see pageheap.h.
 *
 * Invariants: a free run is in exactly one bin, in its region's list, and
 * tagged at its first and last page; a tag is NULL or names a free run that
 * begins or ends there.  A dirty run is in the age queue, oldest first.
 * free_backed counts the backed pages of free runs: added as a run becomes
 * free, taken off as pages leave the free runs or are unbacked.
 */
#include "pageheap.h"
#include "list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_BINS 256 /* bins 1..255: runs of exactly that many pages */
#define NBINS (EXACT_BINS + 24) /* then one per power of two, 2^8 .. 2^31 */
#define FIT_SCAN 32    /* runs looked at in a power-of-two bin for a fit */

struct region {
	uint32_t npages;
	struct page_run **tag;  /* by page: the free run beginning or ending here */
	uint64_t *backed;       /* bit per page: holds backing store */
	struct page_run *runs;  /* free runs of this region */
};

struct pageheap {
	struct region *regions;
	uint32_t nregions, cap;
	struct page_run *bins[NBINS];
	uint64_t nonempty[(NBINS + 63) / 64];
	struct page_run *age_head, *age_tail;
	uint64_t free_backed; /* pages of free runs that hold backing store */
};

static unsigned bin_of(uint32_t npages)
{
	if (npages < EXACT_BINS)
		return npages;
	return EXACT_BINS + (31u - (unsigned)__builtin_clz(npages)) - 8u;
}

/* The first non-empty bin at or after b, or NBINS. */
static unsigned next_bin(const struct pageheap *ph, unsigned b)
{
	while (b < NBINS) {
		uint64_t w = ph->nonempty[b / 64] & (~UINT64_C(0) << (b % 64));
		if (w != 0)
			return b / 64 * 64 + (unsigned)__builtin_ctzll(w);
		b = (b / 64 + 1) * 64;
	}
	return NBINS;
}

static void bin_insert(struct pageheap *ph, struct page_run *r)
{
	unsigned b = bin_of(r->npages);
	DLIST_PUSH(&ph->bins[b], r, bin_prev, bin_next);
	ph->nonempty[b / 64] |= UINT64_C(1) << (b % 64);
}

static void bin_remove(struct pageheap *ph, struct page_run *r)
{
	unsigned b = bin_of(r->npages);
	DLIST_REMOVE(&ph->bins[b], r, bin_prev, bin_next);
	if (ph->bins[b] == NULL)
		ph->nonempty[b / 64] &= ~(UINT64_C(1) << (b % 64));
}

static void age_append(struct pageheap *ph, struct page_run *r)
{
	r->dirty = 1;
	DLIST_APPEND(&ph->age_head, &ph->age_tail, r, age_prev, age_next);
}

static void age_remove(struct pageheap *ph, struct page_run *r)
{
	if (!r->dirty)
		return;
	r->dirty = 0;
	DLIST_REMOVE_TAILED(&ph->age_head, &ph->age_tail, r, age_prev, age_next);
}

static void region_insert(struct region *g, struct page_run *r)
{
	DLIST_PUSH(&g->runs, r, reg_prev, reg_next);
}

static void region_remove(struct region *g, struct page_run *r)
{
	DLIST_REMOVE(&g->runs, r, reg_prev, reg_next);
}

static void tag(struct region *g, struct page_run *r, struct page_run *v)
{
	g->tag[r->start] = v;
	g->tag[r->start + r->npages - 1] = v;
}

static uint32_t count_backed(const uint64_t *bits, uint32_t start, uint32_t npages);

/* Makes r a free run: binned, listed, tagged; dirty ones queue for decay. */
static void insert_free(struct pageheap *ph, struct page_run *r, int dirty)
{
	struct region *g = &ph->regions[r->region];
	ph->free_backed += count_backed(g->backed, r->start, r->npages);
	r->free = 1;
	r->dirty = 0;
	bin_insert(ph, r);
	region_insert(g, r);
	tag(g, r, r);
	if (dirty)
		age_append(ph, r);
}

/* Takes n backed pages off the free count. */
static void less_backed(struct pageheap *ph, uint64_t n)
{
	ph->free_backed = ph->free_backed > n ? ph->free_backed - n : 0;
}

static void remove_free(struct pageheap *ph, struct page_run *r)
{
	struct region *g = &ph->regions[r->region];
	less_backed(ph, count_backed(g->backed, r->start, r->npages));
	tag(g, r, NULL);
	region_remove(g, r);
	bin_remove(ph, r);
	age_remove(ph, r);
	r->free = 0;
}

int pageheap_create(struct pageheap **out)
{
	*out = calloc(1, sizeof **out);
	return *out == NULL ? -ENOMEM : 0;
}

void pageheap_destroy(struct pageheap *ph)
{
	for (uint32_t i = 0; i < ph->nregions; i++) {
		struct region *g = &ph->regions[i];
		while (g->runs != NULL) {
			struct page_run *r = g->runs;
			g->runs = r->reg_next;
			free(r);
		}
		free(g->tag);
		free(g->backed);
	}
	free(ph->regions);
	free(ph);
}

static int grow_regions(struct pageheap *ph)
{
	if (ph->nregions < ph->cap)
		return 0;
	uint32_t cap = ph->cap ? ph->cap * 2 : 8;
	struct region *n = realloc(ph->regions, cap * sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	ph->regions = n;
	ph->cap = cap;
	return 0;
}

int pageheap_add_region(struct pageheap *ph, uint32_t id, uint32_t npages,
			uint32_t first_free)
{
	if (id != ph->nregions || first_free >= npages)
		return -EINVAL;
	if (grow_regions(ph) < 0)
		return -ENOMEM;
	struct region *g = &ph->regions[id];
	memset(g, 0, sizeof *g);
	g->npages = npages;
	g->tag = calloc(npages, sizeof *g->tag);
	g->backed = calloc((npages + 63) / 64, sizeof *g->backed);
	struct page_run *r = calloc(1, sizeof *r);
	if (g->tag == NULL || g->backed == NULL || r == NULL) {
		free(g->tag);
		free(g->backed);
		free(r);
		return -ENOMEM;
	}
	ph->nregions++;
	r->region = id;
	r->start = first_free;
	r->npages = npages - first_free;
	insert_free(ph, r, 0);
	return 0;
}

/* A free run of at least npages pages, or NULL. */
static struct page_run *find_fit(struct pageheap *ph, uint32_t npages)
{
	unsigned b = bin_of(npages);
	if (b >= EXACT_BINS) {
		/* A power-of-two bin holds runs smaller than npages too. */
		struct page_run *r = ph->bins[b];
		for (int i = 0; r != NULL && i < FIT_SCAN; r = r->bin_next, i++)
			if (r->npages >= npages)
				return r;
		b++;
	}
	b = next_bin(ph, b);
	return b < NBINS ? ph->bins[b] : NULL;
}

int pageheap_alloc(struct pageheap *ph, uint32_t npages, struct page_run **out)
{
	if (npages == 0)
		return -EINVAL;
	struct page_run *r = find_fit(ph, npages);
	if (r == NULL)
		return -ENOMEM;
	if (r->npages == npages) {
		remove_free(ph, r);
		*out = r;
		return 0;
	}
	struct page_run *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -ENOMEM;
	/* Split off the front; the rest keeps its age and dirtiness. */
	struct region *g = &ph->regions[r->region];
	t->region = r->region;
	t->start = r->start;
	t->npages = npages;
	less_backed(ph, count_backed(g->backed, r->start, npages));
	bin_remove(ph, r);
	g->tag[r->start] = NULL;
	r->start += npages;
	r->npages -= npages;
	g->tag[r->start] = r;
	bin_insert(ph, r);
	*out = t;
	return 0;
}

static struct page_run *run_holding(struct region *g, uint32_t start, uint32_t npages)
{
	for (struct page_run *r = g->runs; r != NULL; r = r->reg_next)
		if (r->start <= start && start + npages <= r->start + r->npages)
			return r;
	return NULL;
}

int pageheap_claim(struct pageheap *ph, uint32_t region, uint32_t start, uint32_t npages,
		   struct page_run **out)
{
	if (region >= ph->nregions || npages == 0)
		return -EINVAL;
	struct region *g = &ph->regions[region];
	struct page_run *r = run_holding(g, start, npages);
	if (r == NULL)
		return -EINVAL;
	uint32_t end = r->start + r->npages;
	struct page_run *t = calloc(1, sizeof *t);
	struct page_run *tail = start + npages < end ? calloc(1, sizeof *tail) : NULL;
	if (t == NULL || (start + npages < end && tail == NULL)) {
		free(t);
		free(tail);
		return -ENOMEM;
	}
	remove_free(ph, r);
	*t = (struct page_run){.region = region, .start = start, .npages = npages};
	if (r->start < start) {
		r->npages = start - r->start;
		insert_free(ph, r, 0);
	} else {
		free(r);
	}
	/* The tail goes in last, so it heads the region's list: the next claim
	 * in page order finds it first. */
	if (tail != NULL) {
		*tail = (struct page_run){.region = region, .start = start + npages,
					  .npages = end - start - npages};
		insert_free(ph, tail, 0);
	}
	*out = t;
	return 0;
}

/* Absorbs the free run n (a neighbour of r) into r and frees n. */
static void absorb(struct pageheap *ph, struct page_run *r, struct page_run *n)
{
	remove_free(ph, n);
	if (n->start < r->start)
		r->start = n->start;
	r->npages += n->npages;
	free(n);
}

void pageheap_free(struct pageheap *ph, struct page_run *r, uint64_t now_ms)
{
	struct region *g = &ph->regions[r->region];
	uint32_t end = r->start + r->npages;
	if (r->start > 0) {
		struct page_run *left = g->tag[r->start - 1];
		if (left != NULL && left->start + left->npages == r->start)
			absorb(ph, r, left);
	}
	if (end < g->npages) {
		struct page_run *right = g->tag[end];
		if (right != NULL && right->start == end)
			absorb(ph, r, right);
	}
	r->freed_ms = now_ms;
	insert_free(ph, r, 1);
}

void pageheap_forget(struct page_run *r)
{
	free(r);
}

void pageheap_mark_backed(struct pageheap *ph, uint32_t region, uint32_t start,
			  uint32_t npages)
{
	uint64_t *bits = ph->regions[region].backed;
	for (uint32_t p = start; p < start + npages; p++)
		bits[p / 64] |= UINT64_C(1) << (p % 64);
}

/* Counts the backed bits of [start, start + npages), and clears them when
 * clear is set. */
static uint32_t scan_backed(uint64_t *bits, uint32_t start, uint32_t npages, int clear)
{
	uint32_t n = 0, p = start, end = start + npages;
	while (p < end) {
		uint32_t w = p / 64, lo = p % 64;
		uint32_t hi = end - w * 64 < 64 ? end - w * 64 : 64;
		uint64_t mask = (hi == 64 ? ~UINT64_C(0) : (UINT64_C(1) << hi) - 1) &
				(~UINT64_C(0) << lo);
		n += (uint32_t)__builtin_popcountll(bits[w] & mask);
		if (clear)
			bits[w] &= ~mask;
		p = w * 64 + hi;
	}
	return n;
}

static uint32_t take_backed(uint64_t *bits, uint32_t start, uint32_t npages)
{
	return scan_backed(bits, start, npages, 1);
}

static uint32_t count_backed(const uint64_t *bits, uint32_t start, uint32_t npages)
{
	return scan_backed((uint64_t *)bits, start, npages, 0);
}

uint32_t pageheap_backed(const struct pageheap *ph, uint32_t region, uint32_t start,
			 uint32_t npages)
{
	return count_backed(ph->regions[region].backed, start, npages);
}

uint32_t pageheap_unback(struct pageheap *ph, uint32_t region, uint32_t start,
			 uint32_t npages)
{
	uint32_t n = take_backed(ph->regions[region].backed, start, npages);
	less_backed(ph, n);
	return n;
}

uint64_t pageheap_free_backed(const struct pageheap *ph)
{
	return ph->free_backed;
}

int pageheap_decay_next(struct pageheap *ph, uint64_t now_ms, uint64_t decay_ms,
			struct pageheap_decayed *d)
{
	struct page_run *r = ph->age_head;
	if (r == NULL || now_ms < r->freed_ms || now_ms - r->freed_ms < decay_ms)
		return 0;
	age_remove(ph, r);
	d->region = r->region;
	d->start = r->start;
	d->npages = r->npages;
	d->backed_pages = take_backed(ph->regions[r->region].backed, r->start, r->npages);
	less_backed(ph, d->backed_pages);
	return 1;
}

static void region_stats(const struct region *g, uint64_t *free_pages,
			 uint64_t *largest_run)
{
	for (const struct page_run *r = g->runs; r != NULL; r = r->reg_next) {
		*free_pages += r->npages;
		if (r->npages > *largest_run)
			*largest_run = r->npages;
	}
}

void pageheap_stats(const struct pageheap *ph, uint32_t region, uint64_t *free_pages,
		    uint64_t *largest_run)
{
	*free_pages = 0;
	*largest_run = 0;
	for (uint32_t i = 0; i < ph->nregions; i++)
		if (region == UINT32_MAX || region == i)
			region_stats(&ph->regions[i], free_pages, largest_run);
}
