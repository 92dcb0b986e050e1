/* SPDX-License-Identifier: MIT */
/*
 * Roots: see roots.h.
 *
 * The segment holds a header and a fixed array of entries.  The daemon keeps
 * privately: an index (shm/table.h over 4x the capacity, keyed by slot
 * number + 1 and hashed by the slot's name, so that a name finds its slot),
 * the list of used slots for roots_get(), and the free slots.
 */
#include "roots.h"
#include "fixedseg.h"
#include "layout.h"
#include "seg.h"
#include "table.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOTS_MAGIC UINT64_C(0x31544f4f524d5353) /* "SSMROOT1" */
#define ROOTS_VERSION 1u
#define INDEX_SLOTS (4 * ROOTS_CAPACITY)

_Static_assert(offsetof(struct fixedseg_header, instance) == 32,
	       "the roots header as layout 1 wrote it");

struct root_entry {
	uint32_t used;     /* set last on publish, cleared first on unpublish */
	uint16_t name_len;
	uint16_t reserved;
	uint64_t ref;
	char name[ROOT_NAME_MAX + 1];
};

struct roots {
	char seg[SEG_NAME_MAX];
	int fd;
	void *base;
	size_t size;
	struct fixedseg_header *hdr;
	struct root_entry *e;
	struct table index; /* key: slot + 1 */
	struct table_entry index_mem[INDEX_SLOTS];
	uint32_t order[ROOTS_CAPACITY]; /* used slots, for roots_get() */
	uint32_t pos[ROOTS_CAPACITY];   /* of each used slot in order */
	uint32_t count;
	uint32_t free_slots[ROOTS_CAPACITY];
	uint32_t nfree;
};

static size_t segment_size(void)
{
	size_t entries = (size_t)ROOTS_CAPACITY * sizeof(struct root_entry);
	return SHMA_PAGE_SIZE + (entries + SHMA_PAGE_SIZE - 1) / SHMA_PAGE_SIZE * SHMA_PAGE_SIZE;
}

static uint64_t hash(const char *name, size_t len)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)name[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static int name_check(const char *name, size_t *len)
{
	int rc = rootname_check(name);
	*len = rc == 0 ? strlen(name) : 0;
	return rc;
}

/* The index hashes a slot by its name. */
static uint64_t slot_hash(uint64_t key, const void *ctx)
{
	const struct roots *r = ctx;
	const struct root_entry *e = &r->e[key - 1];
	return hash(e->name, e->name_len);
}

struct wanted {
	const struct roots *r;
	const char *name;
	size_t len;
};

static int slot_named(uint64_t key, const void *arg)
{
	const struct wanted *w = arg;
	const struct root_entry *e = &w->r->e[key - 1];
	return e->name_len == w->len && memcmp(e->name, w->name, w->len) == 0;
}

/* The index entry of the slot holding name, or NULL. */
static struct table_entry *probe(const struct roots *r, const char *name, size_t len)
{
	struct wanted w = {r, name, len};
	return table_find_hashed(&r->index, hash(name, len), slot_named, &w);
}

/* Puts slot in the index (its name is not there yet).  The index has room
 * for 4x the slots, so this never fails. */
static void index_insert(struct roots *r, uint32_t slot)
{
	table_insert(&r->index, (uint64_t)slot + 1, NULL);
}

static void list_add(struct roots *r, uint32_t slot)
{
	r->pos[slot] = r->count;
	r->order[r->count++] = slot;
}

static void list_remove(struct roots *r, uint32_t slot)
{
	uint32_t last = r->order[--r->count];
	r->order[r->pos[slot]] = last;
	r->pos[last] = r->pos[slot];
}

/* An entry a previous daemon left is believed only if it is well formed. */
static int entry_valid(const struct root_entry *e)
{
	return e->name_len > 0 && e->name_len <= ROOT_NAME_MAX &&
	       e->name[e->name_len] == '\0' && strlen(e->name) == e->name_len &&
	       e->ref != 0;
}

/* Builds the private state from the entries: used ones are indexed (bad or
 * duplicate ones dropped), the rest are free. */
static void load_entries(struct roots *r)
{
	for (uint32_t s = ROOTS_CAPACITY; s-- > 0;) {
		struct root_entry *e = &r->e[s];
		if (e->used && entry_valid(e) && probe(r, e->name, e->name_len) == NULL) {
			list_add(r, s);
			index_insert(r, s);
			continue;
		}
		e->used = 0;
		r->free_slots[r->nfree++] = s;
	}
}

static int map_segment(struct roots *r, const char *instance, mode_t mode)
{
	const struct fixedseg_shape want = {ROOTS_MAGIC, ROOTS_VERSION, ROOTS_CAPACITY,
					    sizeof(struct root_entry), instance};
	int fresh;
	int rc = fixedseg_open(r->seg, r->size, mode, &want, &r->fd, &r->base, &fresh);
	r->hdr = r->base;
	r->e = (struct root_entry *)((char *)r->base + SHMA_PAGE_SIZE);
	return rc;
}

int roots_open(struct roots **out, const char *instance, mode_t mode)
{
	struct roots *r = calloc(1, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	r->fd = -1;
	r->size = segment_size();
	table_init(&r->index, r->index_mem, INDEX_SLOTS);
	table_set_hash(&r->index, slot_hash, r);
	int rc = seg_name(r->seg, sizeof r->seg, instance, SEG_MANIFEST, 0);
	if (rc == 0)
		rc = map_segment(r, instance, mode);
	if (rc < 0) {
		roots_close(r, 0);
		return rc;
	}
	load_entries(r);
	*out = r;
	return 0;
}

void roots_close(struct roots *r, int unlink)
{
	if (r->base != NULL)
		seg_unmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	if (unlink)
		seg_unlink(r->seg);
	free(r);
}

int roots_publish(struct roots *r, const char *name, uint64_t ref)
{
	size_t len;
	int rc = name_check(name, &len);
	if (rc < 0)
		return rc;
	if (ref == 0)
		return -EINVAL;
	if (probe(r, name, len) != NULL)
		return -EEXIST;
	if (r->nfree == 0)
		return -ENOSPC;
	uint32_t slot = r->free_slots[--r->nfree];
	struct root_entry *e = &r->e[slot];
	memcpy(e->name, name, len);
	memset(e->name + len, 0, sizeof e->name - len);
	e->name_len = (uint16_t)len;
	e->ref = ref;
	__atomic_store_n(&e->used, 1, __ATOMIC_RELEASE);
	index_insert(r, slot);
	list_add(r, slot);
	return 0;
}

int roots_lookup(const struct roots *r, const char *name, uint64_t *ref)
{
	size_t len;
	int rc = name_check(name, &len);
	if (rc < 0)
		return rc;
	const struct table_entry *x = probe(r, name, len);
	if (x == NULL)
		return -ENOENT;
	*ref = r->e[x->key - 1].ref;
	return 0;
}

int roots_unpublish(struct roots *r, const char *name)
{
	size_t len;
	int rc = name_check(name, &len);
	if (rc < 0)
		return rc;
	struct table_entry *x = probe(r, name, len);
	if (x == NULL)
		return -ENOENT;
	uint32_t slot = (uint32_t)(x->key - 1);
	/* Out of the index while its name is still there to hash it by. */
	table_remove_entry(&r->index, x);
	__atomic_store_n(&r->e[slot].used, 0, __ATOMIC_RELEASE);
	list_remove(r, slot);
	r->free_slots[r->nfree++] = slot;
	return 0;
}

unsigned roots_count(const struct roots *r)
{
	return r->count;
}

unsigned roots_capacity(const struct roots *r)
{
	(void)r;
	return ROOTS_CAPACITY;
}

int roots_get(const struct roots *r, unsigned i, const char **name, uint64_t *ref)
{
	if (i >= r->count)
		return -ENOENT;
	const struct root_entry *e = &r->e[r->order[i]];
	*name = e->name;
	*ref = e->ref;
	return 0;
}
