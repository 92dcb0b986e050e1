/* SPDX-License-Identifier: MIT */
/*
 * The process's view of the heap: segment 'p' (the pages) mapped whole,
 * read-write, at the instance's base -- the same address in every process --
 * and segment 'M' (the metadata) mapped whole, read-only, anywhere.  Both
 * are sparse and mapped once, at the first handshake: every block, in every
 * arena the daemon makes later, and every large block, is there from the
 * moment it exists, so a pointer another process hands us (or stores in the
 * heap) can be followed as it is.  Should the base be taken in this process,
 * the pages go elsewhere (aligned as an arena, as spans need): refs still
 * work, raw pointers of other processes do not, and shma_same_address()
 * says so.
 *
 * Pointer -> ref is a subtraction, ref -> pointer an addition; the page map
 * (read-only) says what a page holds.  No table, no lock, no system call.
 *
 * Under Valgrind, memcheck would read every readable byte of the two
 * mappings when it looks for leaks -- and a read of a hole in tmpfs makes a
 * page: tens of GiB.  So the pages are marked no-access at first (blocks
 * become accessible as this process allocates or receives them, debug.c),
 * and the metadata of arenas not made yet stays no-access until they are.
 */
#include "config.h"

#include "client.h"
#include "distrust.h"
#include "debug.h"
#include "seg.h"

#include <errno.h>
#include <string.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif
#include <sys/mman.h>
#include <unistd.h>

struct heap_view map_view;

/* Opens segment kind of instance and maps it: at base (same address),
 * else anywhere aligned to align.  NULL with errno set. */
static void *map_segment(const char *instance, enum seg_kind kind, uint64_t len, int writable,
			 uint64_t base, size_t align, int *at_base)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, instance, kind, 0);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	int fd = backing_take(kind); /* passed with the Hello; else by name */
	if (fd < 0)
		fd = seg_open(name, writable);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	void *p = NULL;
	if (seg_size(fd) != (int64_t)len)
		errno = EPROTO;
	else if (base != 0 && (p = seg_map_at(fd, len, writable, (void *)(uintptr_t)base)) != NULL)
		*at_base = 1;
	else
		p = seg_map_sparse(fd, len, writable, align);
	if (p != NULL && kind == SEG_PAGES)
		backing_note_pages(fd);
	int e = errno;
	close(fd);
	errno = e;
	return p;
}

static int check_reply(const struct heap_shape *h, struct arena_geometry *g)
{
	if (h->arena_size == 0 || (h->arena_size & (h->arena_size - 1)) != 0 ||
	    h->max_arenas == 0 || h->max_arenas > REF_ARENAS_MAX ||
	    h->range != (uint64_t)h->max_arenas * h->arena_size ||
	    h->range > REF_RANGE_MAX || h->base % SHMA_PAGE_SIZE != 0 ||
	    strlen(h->instance) >= SHMA_INSTANCE_MAX)
		return -EPROTO;
	if (layout_geometry(h->arena_size, g) != 0 || g->meta_bytes != h->meta_bytes)
		return -EPROTO;
	return 0;
}

/* The header the daemon wrote must say what its Hello said. */
static int check_header(const struct heap_header *hh, const struct heap_shape *h)
{
	if (hh->magic != SHMA_HEAP_MAGIC || hh->layout_version != SHMA_LAYOUT_VERSION ||
	    hh->arena_size != h->arena_size || hh->range != h->range ||
	    hh->max_arenas != h->max_arenas || hh->meta_bytes != h->meta_bytes)
		return -EPROTO;
	return 0;
}

int map_setup(const struct heap_shape *h)
{
	struct arena_geometry g;
	int rc = check_reply(h, &g);
	if (rc != 0)
		return rc;
	if (map_view.base != NULL) {
		/* Reconnected: the daemon must be serving the heap we mapped. */
		if (h->arena_size != map_view.arena_size || strcmp(h->instance, map_view.instance) ||
		    h->range != map_view.range || h->base != map_view.heap_base)
			return -EPROTO;
		rc = backing_same_heap();
		if (rc != 0)
			return rc;
		/* Cut short since we mapped them, the next touch past the cut
		 * would be a SIGBUS: refused, the connection with it. */
		if (!distrust_segments_whole())
			return -EPROTO;
		map_view.large_threshold = h->large_threshold;
		map_fast_update();
		return 0;
	}
	int unused = 0, at_base = 0;
	uint64_t meta_size = layout_meta_size(h->meta_bytes, h->max_arenas);
	const char *meta = map_segment(h->instance, SEG_META, meta_size, 0, 0, SHMA_PAGE_SIZE, &unused);
	if (meta == NULL)
		return -errno;
	rc = check_header((const struct heap_header *)meta, h);
	char *base = NULL;
	if (rc == 0) {
		base = map_segment(h->instance, SEG_PAGES, h->range, 1, h->base,
				   (size_t)h->arena_size, &at_base);
		rc = base ? 0 : -errno;
	}
	if (rc != 0) {
		seg_unmap((void *)meta, meta_size);
		return rc;
	}
	map_view.range = h->range;
	map_view.pop_limit = h->range - 1;
	map_view.heap_base = h->base;
	map_view.same_address = at_base;
	map_view.meta = meta;
	map_view.meta_size = meta_size;
	map_view.hdr = (const struct heap_header *)meta;
	map_view.arena_size = h->arena_size;
	map_view.arena_shift = (unsigned)__builtin_ctzll(h->arena_size);
	map_view.max_arenas = h->max_arenas;
	map_view.meta_bytes = h->meta_bytes;
	map_view.page_map_off = g.page_map_off;
	map_view.page_maps = meta + SHMA_PAGE_SIZE + g.page_map_off;
	map_view.pm_gap = h->meta_bytes - (h->arena_size >> SHMA_PAGE_SHIFT) * sizeof(struct page_entry);
	map_view.large_threshold = h->large_threshold;
	strcpy(map_view.instance, h->instance);
	map_view.narenas_seen = 0;
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (RUNNING_ON_VALGRIND) {
		map_view.valgrind = 1;
		VALGRIND_MAKE_MEM_NOACCESS(base, h->range);
		VALGRIND_MAKE_MEM_NOACCESS(meta + SHMA_PAGE_SIZE, meta_size - SHMA_PAGE_SIZE);
	}
#endif
	__atomic_store_n(&map_view.base, base, __ATOMIC_RELEASE);
	map_arenas_made(0);
	return 0;
}

int map_arenas_made(uint32_t id)
{
	uint32_t n = __atomic_load_n(&map_view.hdr->narenas, __ATOMIC_ACQUIRE);
	if (n > map_view.max_arenas)
		n = map_view.max_arenas;
	uint32_t seen = __atomic_load_n(&map_view.narenas_seen, __ATOMIC_RELAXED);
	if (n > seen) {
#ifdef HAVE_VALGRIND_MEMCHECK_H
		if (map_view.valgrind)
			VALGRIND_MAKE_MEM_DEFINED(map_view.meta + SHMA_PAGE_SIZE + seen * map_view.meta_bytes,
						  (n - seen) * map_view.meta_bytes);
#endif
		/* Threads race here harmlessly: the count only grows. */
		__atomic_store_n(&map_view.narenas_seen, n, __ATOMIC_RELAXED);
	}
	map_fast_update();
	return id < n;
}

void map_fast_update(void)
{
	int plain = __atomic_load_n(&debug_flags, __ATOMIC_ACQUIRE) == 0 &&
		    __atomic_load_n(&map_view.base, __ATOMIC_ACQUIRE) != NULL;
	uint64_t seen = __atomic_load_n(&map_view.narenas_seen, __ATOMIC_RELAXED);
	uint64_t want = plain ? seen << map_view.arena_shift : 0;
	uint64_t cur = __atomic_load_n(&map_view.free_limit, __ATOMIC_RELAXED);
	while (cur < want && !__atomic_compare_exchange_n(&map_view.free_limit, &cur, want, 1,
							  __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	__atomic_store_n(&map_view.malloc_limit, plain ? map_view.large_threshold : 0,
			 __ATOMIC_RELEASE);
}

/* The page entry under p into *e and p's offset into *off: 1, or 0 when p
 * is out of the range or in an arena not made yet. */
static int entry_of(const void *p, uint64_t *off, struct page_entry *e)
{
	*off = (uint64_t)((const char *)p - map_view.base);
	if (map_view.base == NULL || *off >= map_view.range)
		return 0;
	const struct page_entry *pe = map_page(*off);
	if (pe == NULL)
		return 0;
	*e = *pe;
	return 1;
}

uint64_t map_small_ref(const void *p, unsigned *cls, int interior)
{
	uint64_t off;
	struct page_entry e;
	if (!entry_of(p, &off, &e))
		return 0;
	if (MAP_ENTRY_NOT_SMALL(e))
		return 0;
	*cls = e.cls;
	if (!interior)
		return off;
	/* Interior: the object's start (a divide: not the free path's). */
	uint64_t arena = off & ~(map_view.arena_size - 1);
	uint64_t start = arena + ((uint64_t)e.span_start << SHMA_PAGE_SHIFT);
	uint64_t size = sizeclass_table[e.cls].size;
	if (off < start)
		return 0;
	uint64_t idx = (off - start) / size;
	if (idx >= sizeclass_table[e.cls].objects)
		return 0;
	return start + idx * size;
}

int map_large_block(const void *p, uint64_t *ref, char **start, size_t *size)
{
	uint64_t off;
	struct page_entry e;
	const struct page_entry *pe;
	if (!entry_of(p, &off, &e))
		return 0;
	uint64_t arena = off & ~(map_view.arena_size - 1);
	uint64_t npages_arena = map_view.arena_size >> SHMA_PAGE_SHIFT;
	uint64_t head = off >> SHMA_PAGE_SHIFT << SHMA_PAGE_SHIFT;
	/* A page of a block that began in an earlier arena: back to its last
	 * page (bounded by the arenas before). */
	while (e.kind == PAGE_LARGE_CONT && e.span_start == PAGE_JUMBO && arena != 0) {
		arena -= map_view.arena_size;
		head = arena + map_view.arena_size - SHMA_PAGE_SIZE;
		pe = map_page(head);
		if (pe == NULL)
			return 0;
		e = *pe;
	}
	if (e.kind == PAGE_LARGE_CONT) {
		if (e.span_start >= npages_arena)
			return 0;
		head = arena + ((uint64_t)e.span_start << SHMA_PAGE_SHIFT);
		pe = map_page(head);
		if (pe == NULL)
			return 0;
		e = *pe;
	}
	if (e.kind != PAGE_LARGE || e.span_start == 0 ||
	    e.span_start > (map_view.range - head) >> SHMA_PAGE_SHIFT)
		return 0;
	uint64_t len = (uint64_t)e.span_start << SHMA_PAGE_SHIFT;
	if (off >= head + len)
		return 0;
	*ref = head;
	*start = map_view.base + head;
	*size = (size_t)len;
	return 1;
}

void *map_ref_ptr(uint64_t ref)
{
	if (map_view.base == NULL) {
		errno = ENOTCONN;
		return NULL;
	}
	if (ref == 0 || ref >= map_view.range) {
		errno = EINVAL;
		return NULL;
	}
	const struct page_entry *pe = map_page(ref);
	uint8_t kind = pe ? __atomic_load_n(&pe->kind, __ATOMIC_ACQUIRE) : PAGE_FREE;
	if (kind != PAGE_SPAN && kind != PAGE_LARGE && kind != PAGE_LARGE_CONT) {
		errno = EINVAL;
		return NULL;
	}
	return map_ptr(ref);
}

/* ---- for the preload library (client/lib/preload.c) ---- */

int map_owns(const void *p)
{
	char *base = __atomic_load_n(&map_view.base, __ATOMIC_ACQUIRE);
	return base != NULL && (uint64_t)((const char *)p - base) < map_view.range;
}

/* Only what the daemon made: arenas are made in order from 0, large blocks
 * are page runs inside them, and an arena's metadata is reserved whole when
 * it is made (so reading it touches no hole of the sparse segment). */
int map_each_mapping(int (*fn)(void *base, size_t len, int all, void *arg), void *arg)
{
	if (map_view.base == NULL)
		return 0;
	map_arenas_made(0);
	uint64_t n = __atomic_load_n(&map_view.narenas_seen, __ATOMIC_RELAXED);
	int rc = fn((void *)map_view.meta, SHMA_PAGE_SIZE + n * map_view.meta_bytes, 1, arg);
	if (rc == 0)
		rc = fn(map_view.base, n * map_view.arena_size, 0, arg);
	return rc;
}
