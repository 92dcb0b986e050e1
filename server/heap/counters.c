/* SPDX-License-Identifier: MIT */
/*
 * The heap's counters and what it tells about itself (heap.h: heap_totals()
 * and the rest): bounded work, per arena or per class, no scan of user
 * memory.
 */
#include "heap_internal.h"
#include "seg.h"

#include <string.h>

static uint64_t arena_resident(const struct heap *h, uint32_t i)
{
	return h->g.meta_bytes +
	       arena_page_offset(pageheap_backed(h->ph, i, 0, h->g.npages));
}

void heap_totals(const struct heap *h, struct heap_totals *t)
{
	memset(t, 0, sizeof *t);
	t->mapped_bytes = (uint64_t)h->narenas * h->g.arena_size;
	int64_t p = seg_resident(h->pages_fd), m = seg_resident(h->meta_fd);
	t->resident_bytes = (p > 0 ? (uint64_t)p : 0) + (m > 0 ? (uint64_t)m : 0);
	t->in_use_bytes = h->in_use;
	t->peak_in_use_bytes = h->peak;
	t->returned_bytes = h->returned;
	t->large_count = h->large_count;
	t->large_bytes = h->large_bytes;
	pageheap_stats(h->ph, UINT32_MAX, &t->free_pages, &t->largest_free_run);
	t->narenas = h->narenas;
}

uint64_t heap_in_use(const struct heap *h)
{
	return h->in_use;
}

unsigned heap_arena_count(const struct heap *h)
{
	return h->narenas;
}

void heap_arena_stats(const struct heap *h, unsigned i, struct heap_arena_stats *s)
{
	memset(s, 0, sizeof *s);
	if (i >= h->narenas)
		return;
	const struct arena *a = h->arenas[i];
	s->id = a->id;
	s->size = h->g.arena_size;
	s->pages = h->g.npages;
	pageheap_stats(h->ph, a->id, &s->free_pages, &s->largest_free_run);
	s->span_pages = s->pages - h->g.meta_pages - s->free_pages;
	s->resident_bytes = arena_resident(h, i);
	s->quarantined = a->quarantined != NULL;
}

void heap_class_stats(const struct heap *h, unsigned cls, struct heap_class_stats *s)
{
	memset(s, 0, sizeof *s);
	if (cls >= SIZECLASS_COUNT)
		return;
	const struct class_counters *c = &h->counters[cls];
	s->spans = c->spans;
	s->objects_out = c->objects_out;
	s->objects_total = c->spans * sizeclass_table[cls].objects;
	s->refills = c->refills;
	s->flushes = c->flushes;
}

const struct arena_geometry *heap_geometry(const struct heap *h)
{
	return &h->g;
}

const struct heap_header *heap_header(const struct heap *h)
{
	return h->hdr;
}

uint64_t heap_client_ids(const struct heap *h)
{
	return h->hdr->client_ids;
}

void heap_note_client_id(struct heap *h, uint64_t id)
{
	if (id > h->hdr->client_ids)
		h->hdr->client_ids = id;
}

uint32_t heap_max_arenas(const struct heap *h)
{
	return h->max_arenas;
}

void heap_recovery(const struct heap *h, struct heap_recovery *r)
{
	*r = h->rec;
}

