/* SPDX-License-Identifier: MIT */
/*
 * What a region keeps of its empty spans (issue 22 item 5).
 *
 * A span of the shared heap goes back to the page heap the moment its last
 * object comes back (bench (e)'s footprint).  A region's is different: its
 * pages are the region's own, unreserved, and given back they cost the
 * daemon a reservation of them (heap_settle_lazy()) and, past the bound of
 * free reserved pages, a punch, and the client a page fault on each page of
 * the next span it is given.  With 64 region clients churning 16 B - 32 KiB
 * blocks (`make bench-scale`) that was half of the daemon's time and a
 * quarter of the clients'.  So a region's class list keeps its empty spans
 * up to a client's batch of objects (32 KiB of them, at least 4: what a
 * thread cache flushes back and asks for again), and hands a kept span out
 * whole as a run (heap.c: take_partial).  They are the region's, freed with
 * it, and bounded: at most a batch a class.
 *
 * And when a region ends, none of its spans goes back alone while its
 * client's caches are taken back: heap_region_closing() says the end is
 * coming, so the objects freed then leave their spans listed, and
 * heap_region_end() gives every span back at once: its pages punched, the
 * runs that touch as one (heap_region_release_spans()), never reserved first
 * (they were the region's, unreserved, and nobody's now).
 */
#include "heap_internal.h"
#include "clock.h"
#include "list.h"
#include "seg.h"

#include <stdlib.h>

#define KEEP_BYTES ((uint32_t)32 << 10)
#define KEEP_MIN 4u

int heap_span_keep(struct heap *h, const struct span *s)
{
	(void)h;
	const struct heap_region *r = s->region;
	if (r == NULL)
		return 0;
	if (r->closing)
		return 1;
	uint32_t cap = KEEP_BYTES / (s->size ? s->size : 1);
	if (cap < KEEP_MIN)
		cap = KEEP_MIN;
	if (cap < s->objects)
		cap = s->objects;
	return r->partial[s->cls].kept + s->objects <= cap;
}

void heap_region_closing(struct heap *h, uint64_t id)
{
	struct heap_region *r = heap_region(h, id, 0);
	if (r != NULL)
		r->closing = 1;
}

/* ---- the end: every span's pages back at once ---- */

struct punch {
	uint32_t arena, start, npages;
};

static int punch_order(const void *a, const void *b)
{
	const struct punch *x = a, *y = b;
	if (x->arena != y->arena)
		return x->arena < y->arena ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Punches the runs, adjacent ones as one, and tells the page heap (the
 * runs are free by now) that their pages hold nothing. */
static void punch_runs(struct heap *h, struct punch *p, size_t n)
{
	qsort(p, n, sizeof *p, punch_order);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		uint32_t end = p[i].start + p[i].npages;
		while (j < n && p[j].arena == p[i].arena && p[j].start == end)
			end += p[j++].npages;
		uint32_t len = end - p[i].start;
		if (seg_punch(h->pages_fd, heap_pages_offset(h, p[i].arena, p[i].start),
			      arena_page_offset(len)) == 0)
			h->returned += arena_page_offset(
				pageheap_unback(h->ph, p[i].arena, p[i].start, len));
		i = j;
	}
}

void heap_region_release_spans(struct heap *h, struct heap_region *r)
{
	size_t n = 0;
	for (struct span *s = r->spans; s != NULL; s = s->rnext)
		n++;
	struct punch *p = n ? malloc(n * sizeof *p) : NULL;
	if (p == NULL)
		return; /* heap_region_end() gives them back one at a time */
	size_t k = 0;
	uint64_t now = monotonic_ms();
	struct span *next;
	for (struct span *s = r->spans; s != NULL; s = next) {
		next = s->rnext;
		if (s->arena->quarantined != NULL)
			continue; /* heap_region_end()'s */
		uint64_t bytes = (uint64_t)span_clear(s) * s->size;
		h->counters[s->cls].objects_out -= bytes / s->size;
		h->counters[s->cls].spans--;
		h->in_use -= bytes;
		r->bytes -= bytes;
		h->region_bytes -= bytes;
		struct page_run *run = s->run;
		p[k++] = (struct punch){run->region, run->start, run->npages};
		span_list_remove(heap_partial(h, s), s);
		DLIST_REMOVE(&r->spans, s, rprev, rnext);
		span_destroy(s);
		pageheap_free(h->ph, run, now);
	}
	punch_runs(h, p, k);
	free(p);
}
