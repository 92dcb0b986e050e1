/* SPDX-License-Identifier: MIT */
/*
 * The heap's segments: opening the instance's heap (the segments an earlier
 * daemon left, handed to recovery.c, or new ones: 'M' first, which carries
 * the instance's lock and whose header's magic, written last, says the heap
 * is whole), and closing it.  See heap.h: heap_open(), heap_close().
 *
 * Whatever the backing (shm/seg.h), the segments' descriptors are what
 * clients get, with the Hello (heap_segment_fds()): the pages read-write,
 * the metadata through a read-only descriptor of its own, so a client
 * never needs a name -- and with memfds there is none.  With hugetlb pages
 * (--huge-pages, HEAP_HUGE_TLB) only the pages segment is of huge pages.
 */
#include "heap_internal.h"
#include "ref.h"
#include "seg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int check_config(const struct heap_config *cfg, struct arena_geometry *g)
{
	if (cfg->instance == NULL || !seg_instance_valid(cfg->instance))
		return -EINVAL;
	if (layout_geometry(cfg->arena_size, g) < 0)
		return -EINVAL;
	if (cfg->max_memory != 0 && cfg->max_memory < cfg->arena_size)
		return -EINVAL;
	if (cfg->base % SHMA_PAGE_SIZE != 0)
		return -EINVAL;
	return 0;
}

/* Arenas the heap may make: as many as --max-memory holds (rounded up, so a
 * cap below one arena still allows one), or else SHMA_DEFAULT_RANGE's worth.
 * The range is that many arenas. */
static uint32_t max_arenas(const struct heap_config *cfg)
{
	uint64_t n = cfg->max_memory != 0
			     ? (cfg->max_memory + cfg->arena_size - 1) / cfg->arena_size
			     : SHMA_DEFAULT_RANGE / cfg->arena_size;
	if (n == 0)
		n = 1;
	if (n > REF_RANGE_MAX / cfg->arena_size)
		n = REF_RANGE_MAX / cfg->arena_size;
	if (n > REF_ARENAS_MAX)
		n = REF_ARENAS_MAX;
	return (uint32_t)n;
}

/* The default base of an instance: a slot of the base area chosen by its
 * name, so that two instances rarely want the same addresses. */
static uint64_t default_base(const char *instance)
{
	uint64_t x = UINT64_C(14695981039346656037);
	for (const char *p = instance; *p; p++) {
		x ^= (uint8_t)*p;
		x *= UINT64_C(1099511628211);
	}
	return SHMA_BASE_FIRST + (x % SHMA_BASE_SLOTS) * SHMA_BASE_STRIDE;
}

static void unlink_segment(const char *instance, enum seg_kind kind)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, instance, kind, 0) == 0)
		seg_unlink(name);
}

int heap_map_segments(struct heap *h)
{
	h->meta = seg_map_sparse(h->meta_fd, h->meta_size, 1, SHMA_PAGE_SIZE);
	if (h->meta == NULL)
		return -errno;
	h->pages = seg_map_sparse(h->pages_fd, h->range, 1, SHMA_PAGE_SIZE);
	if (h->pages == NULL)
		return -errno;
	h->hdr = (struct heap_header *)h->meta;
	if (h->cfg.huge == HEAP_HUGE_THP)
		seg_advise_huge(h->pages, h->range);
	return 0;
}

void heap_segment_fds(const struct heap *h, int *pages, int *meta_ro)
{
	*pages = h->pages_fd;
	*meta_ro = h->meta_ro_fd;
}

/* Makes the segments of a fresh heap, 'M' first (it carries the instance's
 * lock, and its header's magic, written last, says the heap is whole). */
static int create_heap(struct heap *h)
{
	char name[SEG_NAME_MAX];
	/* Metadata: writable by the daemon's uid alone, whatever the mode. */
	mode_t meta_mode = seg_kind_mode(SEG_META, h->cfg.mode);
	int rc = seg_name(name, sizeof name, h->instance, SEG_META, 0);
	if (rc < 0)
		return rc;
	h->meta_fd = seg_create(name, h->meta_size, meta_mode);
	if (h->meta_fd < 0)
		return h->meta_fd;
	rc = seg_lock(h->meta_fd);
	if (rc == 0)
		rc = seg_reserve(h->meta_fd, 0, SHMA_PAGE_SIZE);
	if (rc < 0)
		return rc;
	rc = seg_name(name, sizeof name, h->instance, SEG_PAGES, 0);
	if (rc < 0)
		return rc;
	unsigned flags = h->cfg.huge == HEAP_HUGE_TLB ? SEG_HUGETLB : 0;
	h->pages_fd = seg_create_flags(name, h->range, h->cfg.mode, flags);
	if (h->pages_fd == -EEXIST && !seg_foreign(name, h->cfg.mode)) {
		/* Left by a creation cut short ('M' had no magic): ours to drop.
		 * Someone else's file stays, and the instance moves (-EEXIST). */
		seg_unlink(name);
		h->pages_fd = seg_create_flags(name, h->range, h->cfg.mode, flags);
	}
	if (h->pages_fd < 0)
		return h->pages_fd;
	rc = heap_map_segments(h);
	if (rc < 0)
		return rc;
	struct heap_header *hh = h->hdr;
	hh->layout_version = SHMA_LAYOUT_VERSION;
	hh->page_shift = SHMA_PAGE_SHIFT;
	memcpy(hh->instance, h->instance, strlen(h->instance) + 1);
	hh->base = h->cfg.base ? h->cfg.base : default_base(h->instance);
	hh->range = h->range;
	hh->arena_size = h->g.arena_size;
	hh->meta_bytes = h->g.meta_bytes;
	hh->class_checksum = sizeclass_checksum();
	hh->max_arenas = h->max_arenas;
	hh->narenas = 0;
	hh->created = time(NULL);
	__atomic_store_n(&hh->magic, SHMA_HEAP_MAGIC, __ATOMIC_RELEASE);
	return heap_add_arena(h);
}

/* 1 if segment kind exists and is ours (a file someone else made under the
 * name is not). */
static int segment_exists(const char *instance, enum seg_kind kind, uint64_t id, mode_t mode)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, instance, kind, id) < 0)
		return 0;
	int fd = seg_adopt(name, mode, NULL);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Opens the heap's segments: those an earlier daemon left, or new ones. */
static int open_segments(struct heap *h)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, h->instance, SEG_META, 0);
	if (rc < 0)
		return rc;
	const char *why = NULL;
	h->meta_fd = seg_adopt(name, seg_kind_mode(SEG_META, h->cfg.mode), &why);
	if (h->meta_fd == -EPERM)
		return heap_say(h, "%s is not ours (%s)", name, why ? why : "?"), -EPERM;
	if (h->meta_fd == -ENOENT) {
		if (segment_exists(h->instance, SEG_ARENA_V1, 0, h->cfg.mode))
			return heap_say(h, "instance %s holds a heap of layout 1 (segment "
				    "/shmalloc.%s.a0); this shmallocd reads layout %u only", h->instance,
				    h->instance, SHMA_LAYOUT_VERSION), -EPROTO;
		return create_heap(h);
	}
	if (h->meta_fd < 0)
		return heap_say(h, "segment %s: %s", name, strerror(-h->meta_fd)), h->meta_fd;
	if (seg_lock(h->meta_fd) < 0)
		return -EBUSY;
	int64_t size = seg_size(h->meta_fd);
	struct heap_header hh = {0};
	if (size >= (int64_t)sizeof hh && pread(h->meta_fd, &hh, sizeof hh, 0) != (ssize_t)sizeof hh)
		return -errno;
	if (hh.magic == 0) {
		/* Its creation was cut short: nothing in it was handed out. */
		close(h->meta_fd);
		h->meta_fd = -1;
		seg_unlink(name);
		unlink_segment(h->instance, SEG_PAGES);
		return create_heap(h);
	}
	return heap_recover(h);
}

int heap_open(struct heap **out, const struct heap_config *cfg)
{
	struct arena_geometry g;
	int rc = check_config(cfg, &g);
	if (rc < 0)
		return rc;
	struct heap *h = calloc(1, sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	strcpy(h->instance, cfg->instance);
	h->cfg = *cfg;
	h->cfg.instance = h->instance;
	h->g = g;
	h->arena_shift = (unsigned)__builtin_ctzll(g.arena_size);
	h->pages_fd = h->meta_fd = h->meta_ro_fd = -1;
	h->max_arenas = max_arenas(cfg);
	h->range = (uint64_t)h->max_arenas * g.arena_size;
	h->meta_size = layout_meta_size(g.meta_bytes, h->max_arenas);
	rc = pageheap_create(&h->ph);
	if (rc == 0)
		rc = open_segments(h);
	if (rc == 0 && h->narenas == 0)
		rc = heap_add_arena(h);
	if (rc == 0)
		h->meta_ro_fd = seg_reopen_ro(h->meta_fd);
	if (rc == -EBUSY)
		heap_say(h, "another shmallocd holds instance %s", h->instance);
	if (rc < 0) {
		heap_close(h, 0);
		return rc;
	}
	*out = h;
	return 0;
}

/* Frees the private structs of an arena's spans and blocks (teardown). */
static void forget_spans(struct arena *a)
{
	for (uint32_t p = 0; p < a->g->npages; p++) {
		struct span *s = a->span_of_page[p];
		if (s != NULL) {
			pageheap_forget(s->run);
			free(s);
		}
		if (a->large_of_page[p] != NULL)
			pageheap_forget(a->large_of_page[p]);
	}
}

void heap_close(struct heap *h, int unlink)
{
	if (h == NULL)
		return;
	heap_regions_close(h);
	for (uint32_t i = 0; i < h->narenas; i++) {
		forget_spans(h->arenas[i]);
		arena_destroy(h->arenas[i]);
	}
	free(h->arenas);
	for (uint32_t i = 0; i < h->nheld; i++)
		pageheap_forget(h->held[i]);
	free(h->held);
	if (h->ph != NULL)
		pageheap_destroy(h->ph);
	if (h->pages != NULL)
		seg_unmap(h->pages, h->range);
	if (h->meta != NULL)
		seg_unmap(h->meta, h->meta_size);
	if (h->pages_fd >= 0) {
		seg_sync(h->pages_fd);
		close(h->pages_fd);
	}
	if (h->meta_fd >= 0) {
		seg_sync(h->meta_fd);
		close(h->meta_fd);
	}
	if (h->meta_ro_fd >= 0)
		close(h->meta_ro_fd);
	if (unlink) {
		unlink_segment(h->instance, SEG_PAGES);
		unlink_segment(h->instance, SEG_META);
	}
	free(h);
}

