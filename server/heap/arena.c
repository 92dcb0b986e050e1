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
	*out = a;
	return 0;
}

void arena_destroy(struct arena *a)
{
	free(a->span_of_page);
	free(a->large_of_page);
	free(a);
}
