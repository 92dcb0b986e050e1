/* SPDX-License-Identifier: MIT */
/*
 * The heap: see heap.h.  This file is the running heap's core -- arenas
 * made on demand (arena.c), free runs (pageheap.c), spans and their bitmaps
 * (span.c), refills and frees of small objects, decay -- and does the
 * system calls they leave to it: reserving backing store before pages go
 * out, punching it when decay says so.  Large blocks are large.c's, the
 * heap's segments (open, create, close) segments.c's, its counters
 * counters.c's; reopening a heap an earlier daemon left is recovery.c's.
 *
 * max_memory bounds the arenas made (large blocks live in arenas).
 */
#include "heap_internal.h"
#include "clock.h"
#include "list.h"
#include "ref.h"
#include "seg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void heap_say(struct heap *h, const char *fmt, ...)
{
	if (h->cfg.why == NULL || h->cfg.why_size == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->cfg.why, h->cfg.why_size, fmt, ap);
	va_end(ap);
}

void heap_quarantine(struct heap *h, struct arena *a, const char *why)
{
	if (a->quarantined != NULL)
		return;
	a->quarantined = why;
	if (h->cfg.on_quarantine != NULL)
		h->cfg.on_quarantine(h->cfg.on_quarantine_arg, a->id, why);
}

int heap_withhold(struct heap *h, struct page_run *r)
{
	if (h->nheld == h->held_cap) {
		uint32_t cap = h->held_cap ? h->held_cap * 2 : 16;
		struct page_run **n = realloc(h->held, cap * sizeof *n);
		if (n == NULL) {
			pageheap_free(h->ph, r, monotonic_ms());
			return -ENOMEM;
		}
		h->held = n;
		h->held_cap = cap;
	}
	h->held[h->nheld++] = r;
	return 0;
}

int heap_grow_arena_array(struct heap *h)
{
	if (h->narenas < h->arenas_cap)
		return 0;
	uint32_t cap = h->arenas_cap ? h->arenas_cap * 2 : 4;
	struct arena **n = realloc(h->arenas, cap * sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	h->arenas = n;
	h->arenas_cap = cap;
	return 0;
}

int heap_add_arena(struct heap *h)
{
	struct arena *a;
	if (h->narenas >= h->max_arenas)
		return -ENOMEM;
	int rc = heap_grow_arena_array(h);
	if (rc < 0)
		return rc;
	uint32_t id = h->narenas;
	uint64_t off = layout_meta_offset(h->g.meta_bytes, id);
	rc = arena_create(&a, h->meta_fd, h->meta + off, off, h->instance, id, &h->g,
			  time(NULL));
	if (rc < 0)
		return rc;
	rc = pageheap_add_region(h->ph, a->id, h->g.npages, h->g.meta_pages);
	if (rc < 0) {
		arena_destroy(a);
		return rc;
	}
	h->arenas[h->narenas++] = a;
	/* Last: an arena counts once its metadata is whole (recovery.c). */
	__atomic_store_n(&h->hdr->narenas, h->narenas, __ATOMIC_RELEASE);
	return 0;
}


/* ---- page runs ---- */

int heap_reserve(struct heap *h, uint64_t off, uint64_t len)
{
	int rc = seg_reserve(h->pages_fd, off, len);
	if (rc == -ENOMEM && heap_release_free(h) > 0)
		rc = seg_reserve(h->pages_fd, off, len);
	return rc;
}

/* A run of npages pages, backing store reserved (unless lazy: a region's,
 * whose pages come on first touch): from the free runs, else from a new
 * arena. */
int heap_alloc_pages(struct heap *h, uint32_t npages, int lazy, struct page_run **out)
{
	if (npages == 0 || npages > h->g.npages - h->g.meta_pages)
		return -ENOMEM;
	int rc;
	for (;;) {
		rc = pageheap_alloc(h->ph, npages, out);
		if (rc == -ENOMEM) {
			rc = heap_add_arena(h);
			if (rc == 0)
				rc = pageheap_alloc(h->ph, npages, out);
		}
		if (rc < 0)
			return rc;
		/* A quarantined arena's free runs leave the page heap as they
		 * come up, one at a time: a bounded number of them. */
		if (h->arenas[(*out)->region]->quarantined == NULL)
			break;
		rc = heap_withhold(h, *out);
		if (rc < 0)
			return rc;
	}
	struct page_run *r = *out;
	/* Pages freed and not yet decayed hold their store: no system call. */
	if (lazy || pageheap_backed(h->ph, r->region, r->start, r->npages) == r->npages)
		return 0;
	rc = heap_reserve(h, heap_pages_offset(h, r->region, r->start),
			  arena_page_offset(r->npages));
	if (rc < 0) {
		pageheap_free(h->ph, r, monotonic_ms());
		return rc;
	}
	pageheap_mark_backed(h->ph, r->region, r->start, r->npages);
	return 0;
}

static int new_span(struct heap *h, unsigned cls, struct heap_region *rg, struct span **out)
{
	struct page_run *r;
	uint64_t owner = rg ? rg->id | SHMA_OWNER_REGION : 0;
	int rc = heap_alloc_pages(h, sizeclass_table[cls].span_pages, heap_owner_lazy(owner), &r);
	if (rc < 0)
		return rc;
	*out = span_create(h->arenas[r->region], r, cls, owner);
	if (*out == NULL) {
		if (heap_owner_lazy(owner))
			heap_settle_lazy(h, r->region, r->start, r->npages);
		pageheap_free(h->ph, r, monotonic_ms());
		return -ENOMEM;
	}
	if (rg != NULL)
		heap_region_add_span(rg, *out);
	h->counters[cls].spans++;
	return 0;
}

static uint64_t punch_decayed(struct heap *h, const struct pageheap_decayed *d);

/* Punches the oldest free runs while more free pages hold backing store
 * than HEAP_FREE_RESERVED_MIN or an eighth of the bytes in use. */
static void trim_reserved(struct heap *h)
{
	uint64_t cap = h->in_use / 8 > HEAP_FREE_RESERVED_MIN ? h->in_use / 8
							      : HEAP_FREE_RESERVED_MIN;
	struct pageheap_decayed d;
	while (arena_page_offset(pageheap_free_backed(h->ph)) > cap &&
	       pageheap_decay_next(h->ph, UINT64_MAX / 2, 0, &d))
		h->returned += punch_decayed(h, &d);
}

void heap_release_span(struct heap *h, struct span *s)
{
	struct page_run *r = s->run;
	struct heap_region *rg = s->region;
	h->counters[s->cls].spans--;
	span_list_remove(heap_partial(h, s), s);
	if (rg != NULL)
		DLIST_REMOVE(&rg->spans, s, rprev, rnext);
	int lazy = heap_owner_lazy(s->owner);
	span_destroy(s);
	if (lazy)
		heap_settle_lazy(h, r->region, r->start, r->npages);
	pageheap_free(h->ph, r, monotonic_ms());
	trim_reserved(h);
}

void heap_settle_lazy(struct heap *h, uint32_t region_id, uint32_t start, uint32_t npages)
{
	uint64_t off = heap_pages_offset(h, region_id, start), len = arena_page_offset(npages);
	if (pageheap_backed(h->ph, region_id, start, npages) == npages)
		return;
	if (len < HEAP_PUNCH_AT && seg_reserve(h->pages_fd, off, len) == 0) {
		pageheap_mark_backed(h->ph, region_id, start, npages);
		return;
	}
	/* Too large to keep, or /dev/shm is full: nothing of it stays. */
	if (seg_punch(h->pages_fd, off, len) == 0)
		h->returned += arena_page_offset(pageheap_unback(h->ph, region_id, start, npages));
}

/* ---- refill ---- */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Takes up to want objects from the class's partial spans, as refs. */
static uint32_t take_partial(struct span_list *l, uint32_t want, struct heap_batch *b)
{
	uint32_t got = 0;
	struct span *s;
	while (got < want && b->nrefs < b->refs_cap && (s = span_list_first(l)) != NULL) {
		if (s->arena->quarantined != NULL) {
			span_list_remove(l, s);
			continue;
		}
		uint32_t room = min_u32(want - got, b->refs_cap - b->nrefs);
		uint32_t n = span_take(s, room, b->refs + b->nrefs);
		b->nrefs += n;
		got += n;
		/* A listed span has a free object, so n > 0; should the bitmap
		 * and nout ever disagree, unlist the span rather than spin. */
		if (s->nout == s->objects || n == 0)
			span_list_remove(l, s);
		else
			span_list_update(l, s);
	}
	return got;
}

/* Takes up to want objects from a fresh span: as one run if the batch has
 * room for a run, else as refs.  The rest of the span joins the partial
 * list.  The count, or a negative errno. */
static int take_fresh(struct heap *h, struct heap_region *rg, unsigned cls, uint32_t want,
		      struct heap_batch *b)
{
	struct span *s;
	int rc = new_span(h, cls, rg, &s);
	if (rc < 0)
		return rc;
	uint32_t n = min_u32(want, s->objects);
	if (b->nruns < b->runs_cap) {
		span_take_front(s, n);
		b->runs[b->nruns].first = span_ref(s, 0);
		b->runs[b->nruns++].count = n;
	} else {
		n = span_take(s, min_u32(n, b->refs_cap - b->nrefs), b->refs + b->nrefs);
		b->nrefs += n;
	}
	if (s->nout < s->objects)
		span_list_push(heap_partial(h, s), s);
	return (int)n;
}

int heap_refill(struct heap *h, struct heap_region *rg, unsigned cls, uint32_t want,
		struct heap_batch *batch)
{
	if (cls >= SIZECLASS_COUNT || want == 0)
		return -EINVAL;
	batch->nrefs = batch->nruns = 0;
	uint32_t got = take_partial(rg ? &rg->partial[cls] : &h->partial[cls], want, batch);
	int err = 0;
	while (got < want && err == 0) {
		if (batch->nrefs >= batch->refs_cap && batch->nruns >= batch->runs_cap)
			break;
		int n = take_fresh(h, rg, cls, want - got, batch);
		if (n < 0)
			err = n;
		else
			got += (uint32_t)n;
	}
	if (got == 0)
		return err != 0 ? err : -EINVAL;
	h->counters[cls].refills++;
	h->counters[cls].objects_out += got;
	uint64_t bytes = (uint64_t)got * sizeclass_table[cls].size;
	h->in_use += bytes;
	if (h->in_use > h->peak)
		h->peak = h->in_use;
	if (rg != NULL) {
		rg->bytes += bytes;
		h->region_bytes += bytes;
	}
	return (int)got;
}

/* ---- free ---- */

static int locate(struct heap *h, uint64_t ref, struct span **s, uint32_t *idx)
{
	struct arena *a = heap_arena_of(h, ref);
	if (a == NULL)
		return -EINVAL;
	if (a->quarantined != NULL)
		return -EUCLEAN;
	int rc = span_locate(a, ref_arena_offset(ref, h->arena_shift), s, idx);
	if (rc == -EUCLEAN)
		heap_quarantine(h, a, "a page map entry names no span of the daemon's");
	return rc;
}

int heap_object_class(struct heap *h, uint64_t ref)
{
	struct span *s;
	uint32_t idx;
	int rc = locate(h, ref, &s, &idx);
	if (rc < 0)
		return rc;
	return span_is_out(s, idx) ? (int)s->cls : -EALREADY;
}

uint64_t heap_object_owner(struct heap *h, uint64_t ref)
{
	struct span *s;
	uint32_t idx;
	if (locate(h, ref, &s, &idx) < 0 || !span_is_out(s, idx))
		return 0;
	return s->owner;
}

/* A large block of got bytes is out: the counters say so. */

int heap_free_object(struct heap *h, uint64_t ref, unsigned *cls)
{
	struct span *s;
	uint32_t idx;
	int rc = locate(h, ref, &s, &idx);
	if (rc == 0) {
		rc = span_put(s, idx);
		if (rc == -EUCLEAN)
			heap_quarantine(h, s->arena, "a bitmap bit set that the daemon never set");
	}
	if (rc < 0)
		return rc;
	unsigned c = s->cls;
	h->counters[c].objects_out--;
	h->counters[c].flushes++;
	h->in_use -= s->size;
	if (s->region != NULL) {
		s->region->bytes -= s->size;
		h->region_bytes -= s->size;
	}
	if (cls != NULL)
		*cls = c;
	if (s->nout == 0)
		heap_release_span(h, s);
	else if (!s->listed)
		span_list_push(heap_partial(h, s), s);
	else
		span_list_update(heap_partial(h, s), s);
	return 0;
}


/* ---- decay ---- */

/* Punches a run decay chose; the bytes of backing store it released. */
static uint64_t punch_decayed(struct heap *h, const struct pageheap_decayed *d)
{
	int rc = seg_punch(h->pages_fd, heap_pages_offset(h, d->region, d->start),
			   arena_page_offset(d->npages));
	return rc == 0 ? arena_page_offset(d->backed_pages) : 0;
}

uint64_t heap_decay(struct heap *h, uint64_t now_ms)
{
	struct pageheap_decayed d;
	uint64_t bytes = 0;
	while (pageheap_decay_next(h->ph, now_ms, h->cfg.decay_ms, &d))
		bytes += punch_decayed(h, &d);
	h->returned += bytes;
	return bytes;
}

uint64_t heap_release_free(struct heap *h)
{
	uint64_t decay = h->cfg.decay_ms;
	h->cfg.decay_ms = 0;
	uint64_t bytes = heap_decay(h, UINT64_MAX / 2);
	h->cfg.decay_ms = decay;
	return bytes;
}

