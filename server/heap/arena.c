/* SPDX-License-Identifier: MIT */
/*
 * Arenas: see arena.h.  The metadata is cleared, reserved and written before
 * the header's magic, which layout_header_init() stores last.
 */
#include "arena.h"
#include "seg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void mark_meta_pages(struct arena *a)
{
	for (uint32_t p = 0; p < a->g->meta_pages; p++) {
		a->page_map[p].kind = PAGE_META;
		a->page_map[p].span_start = p;
	}
}

static size_t holes_words(const struct arena *a)
{
	return (a->g->npages + 63) / 64;
}

static struct arena *arena_new(uint32_t id, void *meta, const struct arena_geometry *g)
{
	struct arena *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->id = id;
	a->ref_base = (uint64_t)id * g->arena_size;
	a->meta = meta;
	a->g = g;
	a->page_map = layout_page_map(meta, g);
	a->span_of_page = calloc(g->npages, sizeof *a->span_of_page);
	a->large_of_page = calloc(g->npages, sizeof *a->large_of_page);
	if (a->span_of_page == NULL || a->large_of_page == NULL) {
		arena_destroy(a);
		return NULL;
	}
	return a;
}

int arena_create(struct arena **out, int meta_fd, void *meta, uint64_t meta_off,
		 const char *instance, uint32_t id, const struct arena_geometry *g, int64_t now)
{
	/* A creation cut short may have left bytes here: zeros first. */
	int rc = seg_punch(meta_fd, meta_off, g->meta_bytes);
	if (rc == 0)
		rc = seg_reserve(meta_fd, meta_off, g->meta_bytes);
	if (rc < 0)
		return rc;
	struct arena *a = arena_new(id, meta, g);
	if (a == NULL)
		return -ENOMEM;
	/* Cleared: every page is PAGE_FREE already. */
	mark_meta_pages(a);
	layout_header_init((struct arena_header *)meta, g, instance, id, now);
	*out = a;
	return 0;
}

int arena_open(struct arena **out, void *meta, const char *instance, uint32_t id,
	       const struct arena_geometry *g, const char **why)
{
	int rc = layout_header_check((const struct arena_header *)meta, instance, id,
				     g->arena_size, why);
	if (rc < 0)
		return rc;
	struct arena *a = arena_new(id, meta, g);
	if (a == NULL)
		return -ENOMEM;
	/* An earlier daemon may have punched any free page's bitmap. */
	a->bitmap_holes = malloc(holes_words(a) * sizeof *a->bitmap_holes);
	if (a->bitmap_holes == NULL) {
		arena_destroy(a);
		return -ENOMEM;
	}
	memset(a->bitmap_holes, 0xff, holes_words(a) * sizeof *a->bitmap_holes);
	*out = a;
	return 0;
}

/* Where the bitmap bytes of page p lie in segment 'M'. */
static uint64_t bitmap_file_off(const struct arena *a, uint32_t p)
{
	return layout_meta_offset(a->g->meta_bytes, a->id) + a->g->bitmap_off +
	       (uint64_t)p * SHMA_BITMAP_BYTES_PER_PAGE;
}

static void holes_mark(struct arena *a, uint32_t from, uint32_t to, int hole)
{
	for (uint32_t p = from; p < to; p++) {
		uint64_t bit = UINT64_C(1) << (p % 64);
		if (hole)
			a->bitmap_holes[p / 64] |= bit;
		else
			a->bitmap_holes[p / 64] &= ~bit;
	}
}

int arena_bitmap_punch(struct arena *a, int meta_fd, uint32_t start, uint32_t n)
{
	uint64_t base = bitmap_file_off(a, 0);
	uint64_t lo = bitmap_file_off(a, start), hi = bitmap_file_off(a, start + n);
	lo = (lo + SHMA_PAGE_SIZE - 1) & ~(uint64_t)(SHMA_PAGE_SIZE - 1);
	hi &= ~(uint64_t)(SHMA_PAGE_SIZE - 1);
	if (hi <= lo)
		return 0;
	if (a->bitmap_holes == NULL) {
		a->bitmap_holes = calloc(holes_words(a), sizeof *a->bitmap_holes);
		if (a->bitmap_holes == NULL)
			return -ENOMEM;
	}
	/* Marked first: a page marked and still backed costs a fallocate. */
	holes_mark(a, (uint32_t)((lo - base) / SHMA_BITMAP_BYTES_PER_PAGE),
		   (uint32_t)((hi - base) / SHMA_BITMAP_BYTES_PER_PAGE), 1);
	return seg_punch(meta_fd, lo, hi - lo);
}

int arena_bitmap_reserve(struct arena *a, int meta_fd, uint32_t start, uint32_t n)
{
	if (a->bitmap_holes == NULL)
		return 0;
	uint32_t p = start;
	while (p < start + n && !(a->bitmap_holes[p / 64] >> (p % 64) & 1))
		p++;
	if (p == start + n)
		return 0;
	uint64_t lo = bitmap_file_off(a, start) & ~(uint64_t)(SHMA_PAGE_SIZE - 1);
	uint64_t hi = bitmap_file_off(a, start + n);
	int rc = seg_reserve(meta_fd, lo, hi - lo);
	if (rc == 0)
		holes_mark(a, start, start + n, 0);
	return rc;
}

void arena_destroy(struct arena *a)
{
	free(a->bitmap_holes);
	free(a->span_of_page);
	free(a->large_of_page);
	free(a);
}
