/* SPDX-License-Identifier: MIT */
/*
 * Arenas: the fixed-size regions of the heap range that hold spans and
 * large blocks.
 *
 * Arena i is bytes [i * arena_size, (i + 1) * arena_size) of the pages
 * segment 'p' and its metadata is the slot of segment 'M' at
 * layout_meta_offset(i), laid out as shm/layout.h says.  Neither is a
 * segment of its own: making an arena maps nothing anywhere (every process
 * has the whole range mapped already).  Creating one clears and reserves
 * backing store for its metadata (header, page map, bitmaps), marks the
 * metadata pages PAGE_META in the page map and writes the header last, so a
 * header with its magic is a whole arena.  The user pages are left sparse:
 * the heap reserves them run by run, just before it hands them out.
 */
#ifndef SHMA_SERVER_ARENA_H
#define SHMA_SERVER_ARENA_H

#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

struct span;
struct page_run;

struct arena {
	uint32_t id;
	uint64_t ref_base;               /* ref (and offset in 'p') of its byte 0 */
	void *meta;                      /* its metadata in the daemon's map of 'M' */
	const struct arena_geometry *g;  /* shared by every arena of a heap */
	struct page_entry *page_map;
	struct span **span_of_page;      /* private: span by first page */
	struct page_run **large_of_page; /* private: large block by first page */
	const char *quarantined;         /* private: why its metadata is not believed
					  * (NULL: it is); see heap.h */
	/* private: a bit per page whose bitmap bytes may be a hole in 'M'
	 * (arena_bitmap_punch()); NULL: none may. */
	uint64_t *bitmap_holes;
};

/*
 * Makes arena id: clears its metadata slot at meta (the daemon's mapping of
 * it, at byte meta_off of the segment behind meta_fd), reserves it, marks the
 * metadata pages and writes the header.  0 and *out, or a negative errno
 * (-ENOMEM when /dev/shm cannot hold the metadata).
 */
int arena_create(struct arena **out, int meta_fd, void *meta, uint64_t meta_off,
		 const char *instance, uint32_t id, const struct arena_geometry *g, int64_t now);

/*
 * Recovery: takes arena id whose metadata an earlier daemon wrote at meta
 * and checks its header.  0 and *out, or -EINVAL / -EPROTO for metadata that
 * is not a whole arena of this instance, layout and geometry, with *why
 * saying what is wrong.
 */
int arena_open(struct arena **out, void *meta, const char *instance, uint32_t id,
	       const struct arena_geometry *g, const char **why);

/*
 * The bitmaps of free pages hold nothing anyone reads (a span clears its
 * own when it is made), so decay gives their backing store back with the
 * pages': arena_bitmap_punch() punches the whole metadata pages that only
 * bitmaps of pages [start, start + n) fill, and arena_bitmap_reserve()
 * reserves them again before a span over any of those pages writes its
 * bitmap -- one fallocate, and only where a hole may be.  0, or a negative
 * errno (-ENOMEM when /dev/shm cannot hold them: no span there).
 */
int arena_bitmap_punch(struct arena *a, int meta_fd, uint32_t start, uint32_t n);
int arena_bitmap_reserve(struct arena *a, int meta_fd, uint32_t start, uint32_t n);

/* Frees the arena's private memory (its metadata stays). */
void arena_destroy(struct arena *a);

/* The byte offset of page p in the arena. */
static inline uint64_t arena_page_offset(uint32_t p)
{
	return (uint64_t)p << SHMA_PAGE_SHIFT;
}

#endif
