/*
 * Arenas: the segments that hold small objects.
 *
 * An arena is one segment of the heap's arena_size, named 'a<id>', laid out
 * as shm/layout.h says.  Creating one reserves backing store for its
 * metadata region (header, page map, bitmaps), marks those pages PAGE_META in
 * the page map and writes the header last, so a header with its magic is a
 * whole arena.  The user pages are left sparse: the page heap reserves them
 * run by run, just before it hands them out.  The daemon maps the whole arena
 * read-write; clients map the metadata read-only and the pages read-write.
 */
#ifndef SHMA_SERVER_ARENA_H
#define SHMA_SERVER_ARENA_H

#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

struct span;

struct arena {
	uint32_t id;
	int fd;
	void *base;                      /* the whole segment, read-write */
	const struct arena_geometry *g;  /* shared by every arena of a heap */
	struct page_entry *page_map;
	struct span **span_of_page;      /* private: span by first page */
};

/*
 * Creates segment 'a<id>' of instance with the geometry g (which must outlive
 * the arena) and mode, reserves and initialises its metadata, and maps it.
 * 0 and *out, or a negative errno (-EEXIST if the segment exists, -ENOMEM
 * when /dev/shm cannot hold the metadata).  Nothing is left behind on error.
 */
int arena_create(struct arena **out, const char *instance, uint32_t id,
		 const struct arena_geometry *g, mode_t mode, int64_t now);

/*
 * Reopens segment 'a<id>' that an earlier daemon of instance created, maps it
 * and checks its header.  0 and *out; -ENOENT if there is no such segment;
 * -EAGAIN if its creation never finished (the size not yet set or the magic
 * not yet written: nothing in it was ever handed out); -EINVAL or -EPROTO
 * for a segment that is not a whole arena of this instance, layout and
 * geometry, with *why saying what is wrong; -EPERM for a file under the name
 * that is not ours (seg_adopt(): another owner, not of mode), left alone.
 */
int arena_open(struct arena **out, const char *instance, uint32_t id,
	       const struct arena_geometry *g, mode_t mode, const char **why);

/* Unmaps and closes the arena and frees it; with unlink, removes its
 * segment too. */
void arena_destroy(struct arena *a, const char *instance, int unlink);

/* The byte offset of page p in the segment. */
static inline uint64_t arena_page_offset(uint32_t p)
{
	return (uint64_t)p << SHMA_PAGE_SHIFT;
}

#endif
