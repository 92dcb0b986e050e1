/*
 * Arenas: see arena.h.  The metadata is reserved and written before the
 * header's magic, which layout_header_init() stores last.
 */
#include "arena.h"
#include "seg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mark_meta_pages(struct arena *a)
{
	for (uint32_t p = 0; p < a->g->meta_pages; p++) {
		a->page_map[p].kind = PAGE_META;
		a->page_map[p].span_start = p;
	}
}

static int map_new(struct arena *a, const char *name, mode_t mode)
{
	int fd = seg_create(name, a->g->arena_size, mode);
	if (fd < 0)
		return fd;
	a->fd = fd;
	int rc = a->id == 0 ? seg_lock(fd) : 0;
	if (rc < 0)
		return rc;
	rc = seg_reserve(fd, 0, a->g->meta_bytes);
	if (rc < 0)
		return rc;
	a->base = seg_map(fd, 0, a->g->arena_size, 1, NULL);
	if (a->base == NULL)
		return -errno;
	a->page_map = layout_page_map(a->base, a->g);
	return 0;
}

static struct arena *arena_new(uint32_t id, const struct arena_geometry *g)
{
	struct arena *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->id = id;
	a->fd = -1;
	a->g = g;
	a->span_of_page = calloc(g->npages, sizeof *a->span_of_page);
	if (a->span_of_page == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

int arena_create(struct arena **out, const char *instance, uint32_t id,
		 const struct arena_geometry *g, mode_t mode, int64_t now)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, instance, 'a', id);
	if (rc < 0)
		return rc;
	struct arena *a = arena_new(id, g);
	if (a == NULL)
		return -ENOMEM;
	rc = map_new(a, name, mode);
	if (rc < 0) {
		int created = a->fd >= 0;
		arena_destroy(a, instance, created);
		return rc;
	}
	/* A fresh segment reads as zeros: every page is PAGE_FREE already. */
	mark_meta_pages(a);
	layout_header_init((struct arena_header *)a->base, g, instance, id, now);
	*out = a;
	return 0;
}

/* Maps an existing segment; 0, or what arena_open() says. */
static int map_old(struct arena *a, const char *name, const char *instance, mode_t mode,
		   const char **why)
{
	a->fd = seg_adopt(name, mode, why);
	if (a->fd < 0)
		return a->fd;
	/* Arena 0 carries the instance's lock: one daemon at a time. */
	if (a->id == 0 && seg_lock(a->fd) < 0)
		return *why = "another shmallocd holds it", -EBUSY;
	int64_t size = seg_size(a->fd);
	if (size == 0)
		return *why = "creation never finished", -EAGAIN;
	if (size != (int64_t)a->g->arena_size)
		return *why = "its size is not --arena-size", -EINVAL;
	a->base = seg_map(a->fd, 0, a->g->arena_size, 1, NULL);
	if (a->base == NULL)
		return *why = "cannot map it", -errno;
	const struct arena_header *h = a->base;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == 0)
		return *why = "creation never finished", -EAGAIN;
	a->page_map = layout_page_map(a->base, a->g);
	return layout_header_check(h, instance, a->id, a->g->arena_size, why);
}

int arena_open(struct arena **out, const char *instance, uint32_t id,
	       const struct arena_geometry *g, mode_t mode, const char **why)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, instance, 'a', id);
	if (rc < 0)
		return rc;
	struct arena *a = arena_new(id, g);
	if (a == NULL)
		return -ENOMEM;
	rc = map_old(a, name, instance, mode, why);
	if (rc < 0) {
		arena_destroy(a, instance, 0);
		return rc;
	}
	*out = a;
	return 0;
}

void arena_destroy(struct arena *a, const char *instance, int unlink)
{
	char name[SEG_NAME_MAX];
	if (a->base != NULL)
		seg_unmap(a->base, a->g->arena_size);
	if (a->fd >= 0)
		close(a->fd);
	if (unlink && seg_name(name, sizeof name, instance, 'a', a->id) == 0)
		seg_unlink(name);
	free(a->span_of_page);
	free(a);
}
