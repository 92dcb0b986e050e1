/* SPDX-License-Identifier: MIT */
/*
 * Regions: the heap of one client, freed at once when it ends (heap.h:
 * Regions).
 *
 * A region is private bookkeeping over ordinary spans and large blocks: its
 * own partial list per class (so its refills never take an object of
 * another client's span, and nobody else's refill takes one of its), the
 * list of every span it has, and a table of its large blocks.  Its truth for
 * a restarted daemon is in the metadata: each span's and block's owner word
 * says the client id with SHMA_OWNER_REGION, and recovery.c gives them back
 * to the region of that id.  Ending a region is work in its spans and
 * blocks, never in the size of the heap.
 */
#include "heap_internal.h"
#include "list.h"

#include <errno.h>
#include <stdlib.h>

static void *table_calloc(size_t bytes, void *ctx)
{
	(void)ctx;
	return calloc(1, bytes);
}

static void table_free(void *p, size_t bytes, void *ctx)
{
	(void)bytes;
	(void)ctx;
	free(p);
}

struct heap_region *heap_region(struct heap *h, uint64_t id, int create)
{
	if (h->regions.alloc == NULL)
		table_init_growing(&h->regions, table_calloc, table_free, NULL);
	id &= ~SHMA_OWNER_REGION;
	struct table_entry *e = table_find(&h->regions, id);
	if (e != NULL)
		return (struct heap_region *)(uintptr_t)e->value;
	if (!create || id == 0) {
		errno = id == 0 ? EINVAL : ENOENT;
		return NULL;
	}
	struct heap_region *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	e = table_insert(&h->regions, id, NULL);
	if (e == NULL) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	r->id = id;
	table_init_growing(&r->large, table_calloc, table_free, NULL);
	e->value = (uint64_t)(uintptr_t)r;
	return r;
}

void heap_region_add_span(struct heap_region *r, struct span *s)
{
	s->region = r;
	DLIST_PUSH(&r->spans, s, rprev, rnext);
}

int heap_region_note_large(struct heap *h, uint64_t owner, uint64_t ref, uint64_t bytes,
			   int add)
{
	if (!(owner & SHMA_OWNER_REGION))
		return 0;
	struct heap_region *r = heap_region(h, owner, add);
	if (r == NULL)
		return add ? -ENOMEM : 0;
	if (!add) {
		if (table_remove(&r->large, ref) == 0) {
			r->bytes -= bytes;
			h->region_bytes -= bytes;
		}
		return 0;
	}
	int added;
	struct table_entry *e = table_insert(&r->large, ref, &added);
	if (e == NULL)
		return -ENOMEM;
	e->value = 1;
	if (added) {
		r->bytes += bytes;
		h->region_bytes += bytes;
	}
	return 0;
}

static void region_free(struct heap_region *r)
{
	table_release(&r->large);
	free(r);
}

/* Frees up to max spans of region r (every object of each): their bytes. */
static uint64_t end_spans(struct heap *h, struct heap_region *r, uint64_t max)
{
	uint64_t freed = 0;
	for (; r->spans != NULL && max > 0; max--) {
		struct span *s = r->spans;
		if (s->arena->quarantined != NULL) {
			/* What is out there stays out (heap.h: Quarantine). */
			span_list_remove(heap_partial(h, s), s);
			DLIST_REMOVE(&r->spans, s, rprev, rnext);
			s->region = NULL;
			continue;
		}
		uint64_t bytes = (uint64_t)span_clear(s) * s->size;
		h->counters[s->cls].objects_out -= bytes / s->size;
		h->in_use -= bytes;
		r->bytes -= bytes;
		h->region_bytes -= bytes;
		freed += bytes;
		heap_release_span(h, s);
	}
	return freed;
}

uint64_t heap_region_end_spans(struct heap *h, uint64_t id, uint64_t max)
{
	struct heap_region *r = heap_region(h, id, 0);
	return r != NULL ? end_spans(h, r, max) : 0;
}

uint64_t heap_region_end(struct heap *h, uint64_t id)
{
	struct heap_region *r = heap_region(h, id, 0);
	if (r == NULL)
		return 0;
	uint64_t freed = end_spans(h, r, UINT64_MAX);
	/* The refs first (freeing removes them from the table, which would
	 * move entries under an iteration), then each block. */
	size_t n = r->large.used, k = 0, i = 0;
	uint64_t *refs = n ? malloc(n * sizeof *refs) : NULL;
	struct table_entry *e;
	while (refs != NULL && (e = table_next(&r->large, &i)) != NULL && k < n)
		refs[k++] = e->key;
	for (size_t j = 0; j < k; j++) {
		uint64_t size = 0;
		if (heap_free_large(h, refs[j], &size) == 0)
			freed += size; /* it left the table */
	}
	free(refs);
	/* No memory for the list (or a quarantined block): one at a time. */
	while (r->large.used > 0) {
		i = 0;
		e = table_next(&r->large, &i);
		uint64_t size = 0;
		if (heap_free_large(h, e->key, &size) == 0)
			freed += size;
		else
			table_remove_entry(&r->large, e);
	}
	h->region_bytes -= r->bytes; /* only a quarantined arena's, left out */
	table_remove(&h->regions, r->id);
	region_free(r);
	return freed;
}

uint64_t heap_region_bytes(const struct heap_region *r)
{
	return r->bytes;
}

void heap_region_totals(const struct heap *h, uint64_t *regions, uint64_t *bytes)
{
	*regions = h->regions.used;
	*bytes = h->region_bytes;
}

void heap_regions_close(struct heap *h)
{
	if (h->regions.alloc == NULL)
		return; /* no region was ever asked for */
	size_t i = 0;
	struct table_entry *e;
	while ((e = table_next(&h->regions, &i)) != NULL)
		region_free((struct heap_region *)(uintptr_t)e->value);
	table_release(&h->regions);
}
