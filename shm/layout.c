/* SPDX-License-Identifier: MIT */
/*
 * Arena geometry and header, where a slot's bins lie, and how many slots of
 * a control block (and which transfer-cache entries) can be read without a
 * fault: see layout.h.
 */
#include "layout.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

int layout_geometry(uint64_t arena_size, struct arena_geometry *g)
{
	if (arena_size < SHMA_MIN_ARENA_SIZE || arena_size > SHMA_MAX_ARENA_SIZE ||
	    (arena_size & (arena_size - 1)) != 0)
		return -EINVAL;
	uint64_t npages = arena_size >> SHMA_PAGE_SHIFT;
	g->arena_size = arena_size;
	g->npages = (uint32_t)npages;
	g->page_map_off = round_up(sizeof(struct arena_header), 64);
	g->bitmap_off = round_up(g->page_map_off + npages * sizeof(struct page_entry), 64);
	g->owner_off = round_up(g->bitmap_off + npages * SHMA_BITMAP_BYTES_PER_PAGE, 64);
	g->meta_bytes = round_up(g->owner_off + npages * sizeof(uint64_t), SHMA_PAGE_SIZE);
	g->meta_pages = (uint32_t)(g->meta_bytes >> SHMA_PAGE_SHIFT);
	return 0;
}

void layout_header_init(struct arena_header *h, const struct arena_geometry *g,
			const char *instance, uint32_t id, int64_t now)
{
	h->layout_version = SHMA_LAYOUT_VERSION;
	h->page_shift = SHMA_PAGE_SHIFT;
	strncpy(h->instance, instance, sizeof h->instance - 1);
	h->arena_size = g->arena_size;
	h->class_checksum = sizeclass_checksum();
	h->id = id;
	h->npages = g->npages;
	h->meta_pages = g->meta_pages;
	h->nclasses = SIZECLASS_COUNT;
	h->page_map_off = g->page_map_off;
	h->bitmap_off = g->bitmap_off;
	h->owner_off = g->owner_off;
	h->created = now;
	/* The magic goes last: a header with the magic is a whole header. */
	__atomic_store_n(&h->magic, SHMA_ARENA_MAGIC, __ATOMIC_RELEASE);
}

int layout_header_check(const struct arena_header *h, const char *instance,
			uint32_t id, uint64_t arena_size, const char **why)
{
	struct arena_geometry g;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != SHMA_ARENA_MAGIC)
		return *why = "bad magic (not a shmalloc arena)", -EINVAL;
	if (h->layout_version != SHMA_LAYOUT_VERSION || h->page_shift != SHMA_PAGE_SHIFT)
		return *why = "another layout version", -EPROTO;
	if (strncmp(h->instance, instance, sizeof h->instance) != 0)
		return *why = "belongs to another instance", -EINVAL;
	if (h->id != id || h->arena_size != arena_size)
		return *why = "id or size does not match its name", -EINVAL;
	if (h->class_checksum != sizeclass_checksum() || h->nclasses != SIZECLASS_COUNT)
		return *why = "another size-class table", -EPROTO;
	if (layout_geometry(arena_size, &g) != 0 || h->npages != g.npages ||
	    h->meta_pages != g.meta_pages || h->page_map_off != g.page_map_off ||
	    h->bitmap_off != g.bitmap_off || h->owner_off != g.owner_off)
		return *why = "corrupt geometry", -EINVAL;
	return 0;
}

uint32_t layout_bin_firsts(uint32_t *first)
{
	uint32_t at = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		first[cls] = at;
		at += layout_bin_capacity(cls);
	}
	return at;
}

uint32_t layout_slots_readable(struct control_block *cb)
{
	uint32_t n = layout_slots_taken(&cb->hdr);
	if (n <= SHMA_CONTROL_SLOTS_RESERVED)
		return n;
	/* Pages the client reserved are there and only get mapped; a page it
	 * did not (a lie, or a client that died between the two) is made, or
	 * refused with an error where a read would have raised SIGBUS. */
	uint64_t first = layout_slot_headers_end(SHMA_CONTROL_SLOTS_RESERVED);
	uint64_t len = layout_slot_headers_end(n);
	int e = errno;
	/* EINVAL: a kernel before 5.14, which cannot tell; the headers are read
	 * as before the guard (a hole of a full tmpfs would be a SIGBUS). */
	if (len > first && madvise((char *)cb + first, len - first, MADV_POPULATE_WRITE) != 0 &&
	    errno != EINVAL)
		n = SHMA_CONTROL_SLOTS_RESERVED;
	errno = e;
	return n;
}
