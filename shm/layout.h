/*
 * The versioned layout of the segments both sides map.
 *
 * An arena is one segment of arena_size bytes (a power of two).  Its first
 * meta_pages pages are metadata, which clients map read-only: the header, the
 * page map (one entry per page: free, metadata, or part of a span of class k
 * starting at page s) and the object bitmaps (64 bytes per page, so a span
 * starting at page s keeps its bitmap at bitmap slot s; one bit per object,
 * set while the object is out of the daemon's hands).  The rest are pages,
 * mapped read-write.  Page p starts at byte p * SHMA_PAGE_SIZE of the segment,
 * so a ref's offset gives the page with a shift.
 *
 * The control block is one segment per connected client, created by the
 * daemon at the handshake and mapped read-write by the client: the heads and
 * counts of its thread caches, so that the daemon can take the blocks back if
 * the client dies.
 *
 * Everything the daemon writes here is written so that a restarted daemon can
 * rebuild its state from it; anything a client could scribble on (the control
 * block, user pages) is validated before it is believed.
 */
#ifndef SHMA_LAYOUT_H
#define SHMA_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "sizeclass.h"

#define SHMA_PAGE_SHIFT 13
#define SHMA_PAGE_SIZE ((size_t)1 << SHMA_PAGE_SHIFT)
#define SHMA_LAYOUT_VERSION 1u
#define SHMA_ARENA_MAGIC UINT64_C(0x31414e4552414d53)   /* "SMARENA1" */
#define SHMA_CONTROL_MAGIC UINT64_C(0x314c52544e434d53) /* "SMCNTRL1" */
#define SHMA_INSTANCE_MAX 48  /* bytes of an instance name, NUL included */
#define SHMA_BITMAP_BYTES_PER_PAGE 64 /* SHMA_PAGE_SIZE / 16 bits */
#define SHMA_MIN_ARENA_SIZE ((uint64_t)1 << 20)
#define SHMA_MAX_ARENA_SIZE ((uint64_t)1 << 36)
/* Clients reserve address space for every arena the daemon may create; this
 * caps that reservation (and so the arenas) when --max-memory does not.  16
 * GiB: Valgrind cannot reserve more than 32 GiB in one piece, and a program
 * under Valgrind must still work.  Large blocks are not counted here. */
#define SHMA_MAX_ARENA_VA ((uint64_t)16 << 30)

enum page_kind {
	PAGE_FREE = 0,
	PAGE_META = 1,
	PAGE_SPAN = 2,
};

struct page_entry {
	uint8_t kind;        /* enum page_kind */
	uint8_t cls;         /* size class, for PAGE_SPAN */
	uint16_t reserved;
	uint32_t span_start; /* first page of the span, for PAGE_SPAN */
};

struct arena_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t page_shift;
	char instance[SHMA_INSTANCE_MAX];
	uint64_t arena_size;
	uint64_t class_checksum;
	uint32_t id;
	uint32_t npages;
	uint32_t meta_pages;
	uint32_t nclasses;
	uint64_t page_map_off; /* bytes from the segment start */
	uint64_t bitmap_off;
	int64_t created;       /* unix seconds */
};

/* Where the parts of an arena's metadata lie, for an arena of a given size. */
struct arena_geometry {
	uint64_t arena_size;
	uint32_t npages;
	uint32_t meta_pages;
	uint64_t page_map_off;
	uint64_t bitmap_off;
	uint64_t meta_bytes; /* meta_pages * SHMA_PAGE_SIZE */
};

/* 0, or -EINVAL if arena_size is not a power of two in range. */
int layout_geometry(uint64_t arena_size, struct arena_geometry *g);

/* Fills a fresh header (the caller zeroed the metadata). */
void layout_header_init(struct arena_header *h, const struct arena_geometry *g,
			const char *instance, uint32_t id, int64_t now);

/* 0 if the header is one we wrote for this instance, id and size, else a
 * negative errno and *why says what is wrong. */
int layout_header_check(const struct arena_header *h, const char *instance,
			uint32_t id, uint64_t arena_size, const char **why);

static inline struct page_entry *layout_page_map(void *base,
						 const struct arena_geometry *g)
{
	return (struct page_entry *)((char *)base + g->page_map_off);
}

static inline uint64_t *layout_bitmap(void *base, const struct arena_geometry *g,
				      uint32_t span_start)
{
	return (uint64_t *)((char *)base + g->bitmap_off +
			    (uint64_t)span_start * SHMA_BITMAP_BYTES_PER_PAGE);
}

/* ---- control block ---- */

#define SHMA_CONTROL_SLOTS 256

struct tcache_bin {
	uint64_t head;      /* ref of the first free block; each block holds the next */
	uint32_t count;
	uint32_t collected; /* low 32 bits of the id of the last refill taken in */
};

struct control_slot {
	uint32_t in_use; /* 1 while a thread owns the slot */
	uint32_t tid;
	uint64_t mallocs; /* allocations by the thread (it alone writes them) */
	uint64_t waits;   /* of them, those that waited on the daemon */
	uint64_t reserved;
	struct tcache_bin bins[SIZECLASS_COUNT];
};

struct control_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t nslots;
	uint64_t client_id;
	uint32_t pid;
	uint32_t nclasses;
	uint64_t retired_mallocs; /* counters of threads that have exited */
	uint64_t retired_waits;
	uint64_t large_collected; /* id of the last AllocLarge answer read */
	uint64_t reserved[1];
};

struct control_block {
	struct control_header hdr;
	struct control_slot slots[SHMA_CONTROL_SLOTS];
};

#endif
