/* SPDX-License-Identifier: MIT */
/*
 * The heap's insides: what heap.c (the running heap), large.c (its large
 * blocks), segments.c (opening and closing it), counters.c, region.c and
 * recovery.c (the heap an earlier daemon left) share.  Nothing outside server/heap/ sees it.
 */
#ifndef SHMA_SERVER_HEAP_INTERNAL_H
#define SHMA_SERVER_HEAP_INTERNAL_H

#include "arena.h"
#include "heap.h"
#include "pageheap.h"
#include "span.h"
#include "table.h"

struct class_counters {
	uint64_t spans, objects_out, refills, flushes;
};

struct heap {
	char instance[SHMA_INSTANCE_MAX];
	struct heap_config cfg;
	struct arena_geometry g;
	unsigned arena_shift;
	int pages_fd, meta_fd;       /* segments 'p' and 'M' */
	char *pages, *meta;          /* the daemon's mappings of them */
	uint64_t range, meta_size;   /* their sizes */
	struct heap_header *hdr;     /* page 0 of 'M' */
	struct arena **arenas;
	uint32_t narenas, arenas_cap;
	uint32_t max_arenas;         /* what the range and max_memory allow */
	struct pageheap *ph;
	struct span_list partial[SIZECLASS_COUNT];
	struct class_counters counters[SIZECLASS_COUNT];
	uint64_t in_use, peak, returned;
	uint64_t large_count, large_bytes;
	struct heap_recovery rec;
	uint64_t jumbo_left;         /* recovery: pages of a block still to come */
	struct page_run **held;      /* free runs of quarantined arenas, withheld */
	uint32_t nheld, held_cap;
	struct table regions;        /* client id -> struct heap_region * */
	uint64_t region_bytes;       /* of every region, in in_use too */
};

/* A region (heap.h: Regions). */
struct heap_region {
	uint64_t id;
	uint64_t bytes;                        /* objects out and large blocks */
	struct span_list partial[SIZECLASS_COUNT];
	struct span *spans;                    /* every span of it, by rnext */
	struct table large;                    /* ref of each of its large blocks -> 1 */
};

/* 1 if what owner word owner owns has its pages reserved on first touch:
 * a client's region's (heap.h: Regions); a named heap's are reserved as the
 * default heap's are, so its library users get ENOMEM, not SIGBUS. */
static inline int heap_owner_lazy(uint64_t owner)
{
	return (owner & (SHMA_OWNER_REGION | SHMA_OWNER_HEAP)) == SHMA_OWNER_REGION;
}

/* The partial list span s belongs on: its region's or the heap's. */
static inline struct span_list *heap_partial(struct heap *h, struct span *s)
{
	return s->region != NULL ? &s->region->partial[s->cls] : &h->partial[s->cls];
}

/* The arena ref lies in, or NULL. */
static inline struct arena *heap_arena_of(const struct heap *h, uint64_t ref)
{
	uint64_t id = ref >> h->arena_shift;
	return id < h->narenas ? h->arenas[id] : NULL;
}

/* Offset in 'p' of page p of arena r. */
static inline uint64_t heap_pages_offset(const struct heap *h, uint32_t r, uint32_t p)
{
	return h->arenas[r]->ref_base + arena_page_offset(p);
}

/* Makes the next arena (heap.c): 0, -ENOMEM past max_arenas, or -errno. */
int heap_add_arena(struct heap *h);

/* A run of npages pages (heap.c), backing store reserved unless lazy (a
 * region's, whose pages come on first touch): from the free runs, else
 * from a new arena.  0 or a negative errno. */
int heap_alloc_pages(struct heap *h, uint32_t npages, int lazy, struct page_run **out);

/* Reserves [off, off + len) of the pages (heap.c), punching free pages
 * first if /dev/shm is full: 0 or -errno. */
int heap_reserve(struct heap *h, uint64_t off, uint64_t len);

/* Region r takes span s (made or adopted for it). */
void heap_region_add_span(struct heap_region *r, struct span *s);

/* Region bookkeeping of a large block of owner word owner (made, or adopted
 * in recovery: add 1; freed: add 0): 0 or -ENOMEM. */
int heap_region_note_large(struct heap *h, uint64_t owner, uint64_t ref, uint64_t bytes,
			   int add);

/* Frees every region's private memory (teardown). */
void heap_regions_close(struct heap *h);

/* A region's run [start, start + npages) of arena region_id, about to be
 * freed: made reserved (small) or punched (from HEAP_PUNCH_AT bytes), so
 * that the page heap's idea of what is backed holds again. */
void heap_settle_lazy(struct heap *h, uint32_t region_id, uint32_t start, uint32_t npages);

/* Quarantines arena a (see heap.h) for why (a static string); once. */
void heap_quarantine(struct heap *h, struct arena *a, const char *why);

/* Keeps run r (of a quarantined arena) out of the page heap for good:
 * 0, or -ENOMEM (r is then given back to the page heap). */
int heap_withhold(struct heap *h, struct page_run *r);

/* Writes why heap_open() fails into cfg.why. */
void heap_say(struct heap *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns a span's pages to the page heap and forgets it. */
void heap_release_span(struct heap *h, struct span *s);

/* Makes room for one more arena in h->arenas: 0 or -ENOMEM. */
int heap_grow_arena_array(struct heap *h);

/* Maps the two segments (fds set) and points h->hdr at the header: 0 or
 * -errno. */
int heap_map_segments(struct heap *h);

/* Recovery (recovery.c): h->meta_fd is segment 'M' of an earlier daemon,
 * locked.  Checks its header, opens 'p', maps both and rebuilds every arena
 * from its page map and bitmaps.  0 or a negative errno, h->cfg.why set. */
int heap_recover(struct heap *h);

#endif
