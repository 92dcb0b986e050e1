/* SPDX-License-Identifier: MIT */
/*
 * Named heaps: see heaps.h.
 *
 * The segment holds a header and HEAPS_CAPACITY entries, entry i the heap
 * whose id has slot i (id & (HEAPS_CAPACITY - 1)).  Entry states: FREE,
 * USED (the heap lives), DESTROYING (its live word is 0 and its region is
 * being ended).  Everything else is the region's, in the heap's metadata.
 */
#include "heaps.h"
#include "fixedseg.h"
#include "heap_internal.h"
#include "seg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEAPS_MAGIC UINT64_C(0x3150414548534d53) /* "SMSHEAP1" */
#define HEAPS_VERSION 1u
#define SLOT_BITS 9u
#define SLOT_MASK (HEAPS_CAPACITY - 1)

_Static_assert(HEAPS_CAPACITY == 1u << SLOT_BITS, "an id's slot is its low bits");
_Static_assert(SHMA_HEAP_LIVE_OFF + SHMA_HEAP_SLOTS * 8 <= SHMA_PAGE_SIZE,
	       "the live words fit in page 0 of 'M'");

enum { ENTRY_FREE = 0, ENTRY_USED = 1, ENTRY_DESTROYING = 2 };

struct heaps_header {
	struct fixedseg_header h;
	uint64_t next_seq; /* ids given so far: never twice */
};

struct heap_entry {
	uint32_t state;     /* written last on create, first on destroy */
	uint32_t lifetime;
	uint64_t id;
	uint64_t max_bytes;
	uint64_t creator_client;
	uint32_t creator_uid, creator_pid;
	int64_t created;
	uint32_t nusers;
	uint16_t name_len;
	uint16_t reserved;
	uint64_t users[HEAPS_USERS_MAX];
	char name[ROOT_NAME_MAX + 1];
};

struct heaps {
	char seg[SEG_NAME_MAX];
	int fd;
	void *base;
	size_t size;
	struct heaps_header *hdr;
	struct heap_entry *e;
	struct heap *heap;
	uint64_t *live; /* page 0 of 'M', from SHMA_HEAP_LIVE_OFF */
};

static size_t segment_size(void)
{
	size_t entries = (size_t)HEAPS_CAPACITY * sizeof(struct heap_entry);
	return SHMA_PAGE_SIZE + (entries + SHMA_PAGE_SIZE - 1) / SHMA_PAGE_SIZE * SHMA_PAGE_SIZE;
}

static uint64_t region_key(uint64_t id)
{
	return SHMA_OWNER_HEAP | (id & SHMA_HEAP_ID_MASK);
}

/* The used entry of heap id, or NULL. */
static struct heap_entry *entry_of(const struct heaps *r, uint64_t id)
{
	if (id == 0 || (id & ~SHMA_HEAP_ID_MASK) != 0)
		return NULL;
	struct heap_entry *e = &r->e[id & SLOT_MASK];
	return e->state == ENTRY_USED && e->id == id ? e : NULL;
}

static int entry_valid(const struct heap_entry *e, uint32_t slot)
{
	return e->name_len > 0 && e->name_len <= ROOT_NAME_MAX && e->name[e->name_len] == '\0' &&
	       strlen(e->name) == e->name_len && e->id != 0 && (e->id & SLOT_MASK) == slot &&
	       (e->id & ~SHMA_HEAP_ID_MASK) == 0 && e->lifetime <= HEAPS_LAST_USER &&
	       e->nusers <= HEAPS_USERS_MAX;
}

static int map_segment(struct heaps *r, const char *instance, mode_t mode)
{
	const struct fixedseg_shape want = {HEAPS_MAGIC, HEAPS_VERSION, HEAPS_CAPACITY,
					    sizeof(struct heap_entry), instance};
	int fresh;
	int rc = fixedseg_open(r->seg, r->size, mode, &want, &r->fd, &r->base, &fresh);
	r->hdr = r->base;
	r->e = (struct heap_entry *)((char *)r->base + SHMA_PAGE_SIZE);
	if (rc == 0 && fresh)
		r->hdr->next_seq = 1;
	return rc;
}

/* Ends heap id's region, if it has one: its bytes. */
static uint64_t end_region(struct heaps *r, uint64_t id)
{
	return heap_region_end(r->heap, region_key(id));
}

/* The destroy of entry e, from wherever it stopped: live word, state,
 * region, entry; each step idempotent. */
static uint64_t finish_destroy(struct heaps *r, struct heap_entry *e)
{
	uint32_t slot = (uint32_t)(e - r->e);
	__atomic_store_n(&r->live[slot], 0, __ATOMIC_RELEASE);
	__atomic_store_n(&e->state, ENTRY_DESTROYING, __ATOMIC_RELEASE);
	uint64_t freed = end_region(r, e->id);
	__atomic_store_n(&e->state, ENTRY_FREE, __ATOMIC_RELEASE);
	e->nusers = 0;
	return freed;
}

/* After recovery: each entry as its state says, each heap region that no
 * used entry names ended (a destroy that freed its entry, or a create whose
 * entry was never finished, killed midway). */
static void reconcile(struct heaps *r, struct heaps_recovered *rec)
{
	for (uint32_t s = 0; s < HEAPS_CAPACITY; s++) {
		struct heap_entry *e = &r->e[s];
		if (e->state == ENTRY_USED && entry_valid(e, s)) {
			if (e->id >> SLOT_BITS >= r->hdr->next_seq)
				r->hdr->next_seq = (e->id >> SLOT_BITS) + 1;
			__atomic_store_n(&r->live[s], e->id, __ATOMIC_RELEASE);
			rec->heaps++;
			continue;
		}
		if (e->state == ENTRY_DESTROYING && e->id != 0 && (e->id & SLOT_MASK) == s) {
			rec->bytes_freed += finish_destroy(r, e);
			rec->destroys_done++;
			continue;
		}
		e->state = ENTRY_FREE;
		__atomic_store_n(&r->live[s], 0, __ATOMIC_RELEASE);
	}
	struct heap *h = r->heap;
	if (h->regions.alloc == NULL)
		return;
	for (;;) {
		size_t i = 0;
		struct table_entry *t;
		uint64_t orphan = 0;
		while ((t = table_next(&h->regions, &i)) != NULL) {
			uint64_t key = t->key;
			if ((key & SHMA_OWNER_HEAP) && entry_of(r, key & SHMA_HEAP_ID_MASK) == NULL) {
				orphan = key;
				break;
			}
		}
		if (orphan == 0)
			break;
		rec->bytes_freed += heap_region_end(h, orphan);
		rec->orphans_ended++;
	}
}

int heaps_open(struct heaps **out, struct heap *h, const char *instance, mode_t mode,
	       struct heaps_recovered *rec)
{
	struct heaps *r = calloc(1, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	memset(rec, 0, sizeof *rec);
	r->fd = -1;
	r->size = segment_size();
	r->heap = h;
	r->live = (uint64_t *)(h->meta + SHMA_HEAP_LIVE_OFF);
	int rc = seg_name(r->seg, sizeof r->seg, instance, SEG_HEAPS, 0);
	if (rc == 0)
		rc = map_segment(r, instance, mode);
	if (rc < 0) {
		heaps_close(r, 0);
		return rc;
	}
	reconcile(r, rec);
	*out = r;
	return 0;
}

void heaps_close(struct heaps *r, int unlink)
{
	if (r == NULL)
		return;
	if (r->base != NULL)
		seg_unmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	if (unlink)
		seg_unlink(r->seg);
	free(r);
}

static struct heap_entry *entry_named(const struct heaps *r, const char *name, size_t len)
{
	for (uint32_t s = 0; s < HEAPS_CAPACITY; s++) {
		struct heap_entry *e = &r->e[s];
		if (e->state == ENTRY_USED && e->name_len == len && memcmp(e->name, name, len) == 0)
			return e;
	}
	return NULL;
}

int heaps_create(struct heaps *r, const char *name, uint32_t lifetime, uint64_t max_bytes,
		 uint64_t client, uid_t uid, pid_t pid, int64_t now, uint64_t *id)
{
	int rc = rootname_check(name);
	if (rc < 0)
		return rc;
	if (lifetime > HEAPS_LAST_USER)
		return -EINVAL;
	size_t len = strlen(name);
	if (entry_named(r, name, len) != NULL)
		return -EEXIST;
	/* The next slot in sequence that is free: ids go round the slots. */
	uint64_t seq = r->hdr->next_seq;
	struct heap_entry *e = NULL;
	for (uint32_t k = 0; k < HEAPS_CAPACITY; k++, seq++) {
		struct heap_entry *c = &r->e[seq & SLOT_MASK];
		if (c->state == ENTRY_FREE) {
			e = c;
			break;
		}
	}
	if (e == NULL)
		return -ENOSPC;
	uint64_t nid = r->hdr->next_seq << SLOT_BITS | (uint64_t)(e - r->e);
	if (heap_region(r->heap, region_key(nid), 1) == NULL)
		return -ENOMEM;
	r->hdr->next_seq++;
	memset(e, 0, sizeof *e);
	e->lifetime = lifetime;
	e->id = nid;
	e->max_bytes = max_bytes;
	e->creator_client = client;
	e->creator_uid = (uint32_t)uid;
	e->creator_pid = (uint32_t)pid;
	e->created = now;
	e->name_len = (uint16_t)len;
	memcpy(e->name, name, len);
	e->users[0] = client;
	e->nusers = 1;
	__atomic_store_n(&e->state, ENTRY_USED, __ATOMIC_RELEASE);
	__atomic_store_n(&r->live[e - r->e], nid, __ATOMIC_RELEASE);
	*id = nid;
	return 0;
}

int heaps_find(const struct heaps *r, const char *name, uint64_t *id)
{
	int rc = rootname_check(name);
	if (rc < 0)
		return rc;
	const struct heap_entry *e = entry_named(r, name, strlen(name));
	if (e == NULL)
		return -ENOENT;
	*id = e->id;
	return 0;
}

int heaps_info(const struct heaps *r, uint64_t id, struct heaps_info *info)
{
	const struct heap_entry *e = entry_of(r, id);
	if (e == NULL)
		return -ENOENT;
	memset(info, 0, sizeof *info);
	info->id = e->id;
	info->lifetime = e->lifetime;
	info->max_bytes = e->max_bytes;
	info->creator_client = e->creator_client;
	info->creator_uid = e->creator_uid;
	info->creator_pid = e->creator_pid;
	info->created = e->created;
	info->nusers = e->nusers;
	info->name = e->name;
	struct heap_region *rg = heap_region(r->heap, region_key(id), 0);
	if (rg != NULL) {
		info->bytes = rg->bytes;
		for (struct span *s = rg->spans; s != NULL; s = s->rnext) {
			info->spans++;
			info->blocks += s->nout;
		}
		info->large_count = rg->large.used;
		info->blocks += rg->large.used;
	}
	return 0;
}

struct heap_region *heaps_region(struct heaps *r, uint64_t id)
{
	if (entry_of(r, id) == NULL)
		return NULL;
	return heap_region(r->heap, region_key(id), 1);
}

uint64_t heaps_room(struct heaps *r, uint64_t id, uint64_t size)
{
	const struct heap_entry *e = entry_of(r, id);
	if (e == NULL)
		return 0;
	if (e->max_bytes == 0 || size == 0)
		return UINT64_MAX;
	struct heap_region *rg = heap_region(r->heap, region_key(id), 0);
	uint64_t used = rg != NULL ? rg->bytes : 0;
	return used >= e->max_bytes ? 0 : (e->max_bytes - used) / size;
}

static int user_index(const struct heap_entry *e, uint64_t client)
{
	for (uint32_t i = 0; i < e->nusers; i++)
		if (e->users[i] == client)
			return (int)i;
	return -1;
}

int heaps_user_add(struct heaps *r, uint64_t id, uint64_t client)
{
	struct heap_entry *e = entry_of(r, id);
	if (e == NULL)
		return -ENOENT;
	if (user_index(e, client) >= 0)
		return 0;
	if (e->nusers >= HEAPS_USERS_MAX)
		return -ENOSPC;
	e->users[e->nusers] = client;
	__atomic_store_n(&e->nusers, e->nusers + 1, __ATOMIC_RELEASE);
	return 0;
}

int heaps_user_has(const struct heaps *r, uint64_t id, uint64_t client)
{
	const struct heap_entry *e = entry_of(r, id);
	return e != NULL && user_index(e, client) >= 0;
}

int heaps_user_remove(struct heaps *r, uint64_t id, uint64_t client, uint64_t *freed)
{
	struct heap_entry *e = entry_of(r, id);
	*freed = 0;
	int i = e != NULL ? user_index(e, client) : -1;
	if (i < 0)
		return -ENOENT;
	e->users[i] = e->users[e->nusers - 1];
	__atomic_store_n(&e->nusers, e->nusers - 1, __ATOMIC_RELEASE);
	if (e->nusers == 0 && e->lifetime == HEAPS_LAST_USER)
		*freed = finish_destroy(r, e);
	return (int)e->nusers;
}

unsigned heaps_client_gone(struct heaps *r, uint64_t client, uint64_t *freed)
{
	unsigned n = 0;
	*freed = 0;
	for (uint32_t s = 0; s < HEAPS_CAPACITY; s++) {
		struct heap_entry *e = &r->e[s];
		if (e->state != ENTRY_USED)
			continue;
		if (e->lifetime == HEAPS_PROCESS && e->creator_client == client) {
			*freed += finish_destroy(r, e);
			n++;
			continue;
		}
		uint64_t f = 0;
		if (heaps_user_remove(r, e->id, client, &f) == 0 && e->state == ENTRY_FREE)
			n++;
		*freed += f;
	}
	return n;
}

int heaps_destroy(struct heaps *r, uint64_t id, uint64_t *freed)
{
	struct heap_entry *e = entry_of(r, id);
	if (e == NULL)
		return -ENOENT;
	*freed = finish_destroy(r, e);
	return 0;
}

void heaps_destroy_cut(struct heaps *r, uint64_t id, int step, uint64_t spans)
{
	struct heap_entry *e = entry_of(r, id);
	if (e == NULL)
		return;
	__atomic_store_n(&r->live[e - r->e], 0, __ATOMIC_RELEASE);
	__atomic_store_n(&e->state, ENTRY_DESTROYING, __ATOMIC_RELEASE);
	if (step >= 2)
		heap_region_end_spans(r->heap, region_key(id), spans);
	if (step >= 3)
		__atomic_store_n(&e->state, ENTRY_FREE, __ATOMIC_RELEASE);
}

unsigned heaps_count_uid(const struct heaps *r, uid_t uid)
{
	unsigned n = 0;
	for (uint32_t s = 0; s < HEAPS_CAPACITY; s++)
		n += r->e[s].state == ENTRY_USED && r->e[s].creator_uid == (uint32_t)uid;
	return n;
}

uint64_t heaps_next(const struct heaps *r, uint32_t *pos)
{
	while (*pos < HEAPS_CAPACITY) {
		const struct heap_entry *e = &r->e[(*pos)++];
		if (e->state == ENTRY_USED)
			return e->id;
	}
	return 0;
}
