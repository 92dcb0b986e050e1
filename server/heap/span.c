/* SPDX-License-Identifier: MIT */
/*
 * Spans: see span.h.  Finding free objects scans the bitmap a 64-bit word at
 * a time from the span's hint, so a refill costs the words it looks at, at
 * most a span's worth (64 words for the smallest class).
 */
#include "span.h"
#include "list.h"
#include "ref.h"
#include "sizeclass.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t *bitmap(const struct span *s)
{
	return layout_bitmap(s->arena->meta, s->arena->g, s->start);
}

static uint32_t bitmap_words(const struct span *s)
{
	return (s->objects + 63) / 64;
}

/* The bits of word w that name objects of the span. */
static uint64_t valid_mask(const struct span *s, uint32_t w)
{
	uint32_t left = s->objects - w * 64;
	return left >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << left) - 1;
}

static void write_page_map(struct span *s, uint8_t kind, uint8_t cls)
{
	struct page_entry *pm = s->arena->page_map;
	uint16_t flags = kind == PAGE_SPAN ? layout_owner_flags(s->owner) : 0;
	for (uint32_t p = s->start; p < s->start + s->npages; p++) {
		pm[p].cls = cls;
		pm[p].flags = flags;
		pm[p].span_start = kind == PAGE_SPAN ? s->start : 0;
		__atomic_store_n(&pm[p].kind, kind, __ATOMIC_RELEASE);
	}
}

/* A span of class cls over run, its private fields set; NULL without memory. */
static struct span *span_new(struct arena *a, struct page_run *run, unsigned cls)
{
	struct span *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->arena = a;
	s->run = run;
	s->start = run->start;
	s->npages = run->npages;
	s->cls = (uint8_t)cls;
	s->size = sizeclass_table[cls].size;
	s->objects = sizeclass_table[cls].objects;
	return s;
}

struct span *span_create(struct arena *a, struct page_run *run, unsigned cls, uint64_t owner)
{
	struct span *s = span_new(a, run, cls);
	if (s == NULL)
		return NULL;
	memset(bitmap(s), 0, (size_t)s->npages * SHMA_BITMAP_BYTES_PER_PAGE);
	s->owner = owner;
	*layout_owner(a->meta, a->g, s->start) = owner;
	write_page_map(s, PAGE_SPAN, s->cls);
	a->span_of_page[s->start] = s;
	return s;
}

struct span *span_adopt(struct arena *a, struct page_run *run, unsigned cls)
{
	struct span *s = span_new(a, run, cls);
	if (s == NULL)
		return NULL;
	const uint64_t *bm = bitmap(s);
	s->owner = *layout_owner(a->meta, a->g, s->start);
	if (!(s->owner & SHMA_OWNER_REGION))
		s->owner = 0;
	s->hint = bitmap_words(s);
	for (uint32_t w = bitmap_words(s); w-- > 0;) {
		uint64_t out = bm[w] & valid_mask(s, w);
		s->nout += (uint32_t)__builtin_popcountll(out);
		if (out != valid_mask(s, w))
			s->hint = w;
	}
	a->span_of_page[s->start] = s;
	return s;
}

void span_destroy(struct span *s)
{
	write_page_map(s, PAGE_FREE, 0);
	*layout_owner(s->arena->meta, s->arena->g, s->start) = 0;
	s->arena->span_of_page[s->start] = NULL;
	free(s);
}

uint64_t span_ref(const struct span *s, uint32_t idx)
{
	uint64_t off = arena_page_offset(s->start) + (uint64_t)idx * s->size;
	return s->arena->ref_base + off;
}

uint32_t span_take(struct span *s, uint32_t want, uint64_t *refs)
{
	uint64_t *bm = bitmap(s);
	uint32_t n = 0, words = bitmap_words(s);
	for (uint32_t w = s->hint; w < words && n < want; w++) {
		uint64_t avail = ~bm[w] & valid_mask(s, w);
		while (avail != 0 && n < want) {
			uint32_t bit = (uint32_t)__builtin_ctzll(avail);
			avail &= avail - 1;
			bm[w] |= UINT64_C(1) << bit;
			refs[n++] = span_ref(s, w * 64 + bit);
		}
		s->hint = avail == 0 ? w + 1 : w;
	}
	s->nout += n;
	return n;
}

uint32_t span_clear(struct span *s)
{
	memset(bitmap(s), 0, (size_t)bitmap_words(s) * sizeof(uint64_t));
	uint32_t n = s->nout;
	s->nout = 0;
	s->hint = 0;
	return n;
}

void span_take_front(struct span *s, uint32_t n)
{
	uint64_t *bm = bitmap(s);
	uint32_t w;
	for (w = 0; w < n / 64; w++)
		bm[w] = ~UINT64_C(0);
	if (n % 64)
		bm[w] |= (UINT64_C(1) << (n % 64)) - 1;
	s->hint = n / 64;
	s->nout += n;
}

int span_locate(const struct arena *a, uint64_t off, struct span **s, uint32_t *idx)
{
	uint64_t page = off >> SHMA_PAGE_SHIFT;
	if (page >= a->g->npages)
		return -EINVAL;
	const struct page_entry *pe = &a->page_map[page];
	uint8_t kind = __atomic_load_n(&pe->kind, __ATOMIC_ACQUIRE);
	if (kind != PAGE_SPAN)
		return -EINVAL;
	/* The entry is in shared memory: its span start is a hint, checked
	 * against the daemon's own spans before it is used. */
	uint32_t start = pe->span_start;
	if (start >= a->g->npages)
		return -EUCLEAN;
	struct span *sp = a->span_of_page[start];
	if (sp == NULL || page < sp->start || page >= (uint64_t)sp->start + sp->npages ||
	    pe->cls != sp->cls)
		return -EUCLEAN;
	uint64_t rel = off - arena_page_offset(sp->start);
	if (rel % sp->size != 0 || rel / sp->size >= sp->objects)
		return -EINVAL;
	*s = sp;
	*idx = (uint32_t)(rel / sp->size);
	return 0;
}

int span_is_out(const struct span *s, uint32_t idx)
{
	return (int)(bitmap(s)[idx / 64] >> (idx % 64) & 1);
}

int span_put(struct span *s, uint32_t idx)
{
	uint64_t *word = &bitmap(s)[idx / 64];
	uint64_t bit = UINT64_C(1) << (idx % 64);
	if (!(*word & bit))
		return -EALREADY;
	if (s->nout == 0)
		return -EUCLEAN; /* a bit set that the daemon never set */
	*word &= ~bit;
	s->nout--;
	if (idx / 64 < s->hint)
		s->hint = idx / 64;
	return 0;
}

/* The bucket of s by its free share: 0 for the fullest. */
static uint8_t bucket_of(const struct span *s)
{
	uint32_t free = s->objects > s->nout ? s->objects - s->nout : 0;
	uint64_t b = (uint64_t)free * SPAN_LIST_BUCKETS / (s->objects ? s->objects : 1);
	return (uint8_t)(b < SPAN_LIST_BUCKETS ? b : SPAN_LIST_BUCKETS - 1);
}

void span_list_push(struct span_list *l, struct span *s)
{
	uint8_t b = bucket_of(s);
	s->bucket = b;
	DLIST_PUSH(&l->head[b], s, prev, next);
	s->listed = 1;
}

void span_list_remove(struct span_list *l, struct span *s)
{
	if (!s->listed)
		return;
	DLIST_REMOVE(&l->head[s->bucket], s, prev, next);
	s->listed = 0;
}

struct span *span_list_first(const struct span_list *l)
{
	for (unsigned b = 0; b < SPAN_LIST_BUCKETS; b++)
		if (l->head[b] != NULL)
			return l->head[b];
	return NULL;
}

void span_list_update(struct span_list *l, struct span *s)
{
	if (s->listed && bucket_of(s) != s->bucket) {
		span_list_remove(l, s);
		span_list_push(l, s);
	}
}
