/*
 * The process's view of the heap: where each segment is mapped.
 *
 * Arenas: one range of address space is reserved at the first handshake,
 * max_arenas * arena_size long, and arena i is mapped at offset i * arena_size
 * -- its metadata read-only, its pages read-write, two mappings of one fd.
 * So a pointer turns into a ref, and a ref into a pointer, with a subtraction
 * and a shift: no table, no lock, no system call on the fast path.
 *
 * Large blocks: each a segment mapped wherever the kernel puts it, kept in a
 * small open-addressing table keyed by the address the application holds.
 * Other processes map a large block lazily, the first time shma_ptr() meets
 * its ref.
 */
#include "config.h"

#include "client.h"
#include "seg.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct heap_view map_view;

struct large_entry {
	uintptr_t user;   /* what the application holds; 0: empty slot */
	char *base;       /* the mapping */
	uint64_t maplen;
	uint64_t ref;     /* of the segment's first byte */
};

static struct {
	pthread_mutex_t lock;
	struct large_entry *slots;
	size_t cap, used;
} large = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned log2u(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

int map_setup(const Shma__HelloReply *h)
{
	if (h->arena_size == 0 || (h->arena_size & (h->arena_size - 1)) != 0 ||
	    h->max_arenas == 0 || h->max_arenas > REF_ID_MAX + 1u ||
	    h->meta_bytes >= h->arena_size || strlen(h->instance) >= SHMA_INSTANCE_MAX)
		return -EPROTO;
	struct arena_geometry g;
	if (layout_geometry(h->arena_size, &g) != 0 || g.meta_bytes != h->meta_bytes)
		return -EPROTO;
	if (map_view.va_base != NULL) {
		/* Reconnected: the daemon must be serving the heap we mapped. */
		if (h->arena_size != map_view.arena_size || strcmp(h->instance, map_view.instance) ||
		    h->max_arenas > map_view.max_arenas)
			return -EPROTO;
		map_view.large_threshold = h->large_threshold;
		return 0;
	}
	uint64_t va = h->arena_size * h->max_arenas;
	/* Arena-aligned, so that a span's page alignment in the segment is its
	 * alignment in memory too (aligned_alloc relies on it). */
	char *base = seg_reserve_va(va, h->arena_size);
	if (base == NULL)
		return -ENOMEM;
	uint8_t *mapped = mmap(NULL, h->max_arenas, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mapped == MAP_FAILED) {
		seg_unmap(base, va);
		return -ENOMEM;
	}
	map_view.arena_mapped = mapped;
	map_view.va_size = va;
	map_view.arena_size = h->arena_size;
	map_view.arena_shift = log2u(h->arena_size);
	map_view.max_arenas = h->max_arenas;
	map_view.meta_bytes = h->meta_bytes;
	map_view.page_map_off = g.page_map_off;
	map_view.large_threshold = h->large_threshold;
	strcpy(map_view.instance, h->instance);
	__atomic_store_n(&map_view.va_base, base, __ATOMIC_RELEASE);
	return 0;
}

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;

static int map_arena_locked(uint32_t id)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, map_view.instance, 'a', id);
	if (rc != 0)
		return rc;
	int fd = seg_open(name, 1);
	if (fd < 0)
		return fd;
	char *at = map_view.va_base + ((uint64_t)id << map_view.arena_shift);
	rc = -EINVAL;
	if (seg_size(fd) == (int64_t)map_view.arena_size &&
	    seg_map(fd, 0, map_view.meta_bytes, 0, at) != NULL &&
	    seg_map(fd, map_view.meta_bytes, map_view.arena_size - map_view.meta_bytes, 1,
		    at + map_view.meta_bytes) != NULL) {
		const char *why;
		rc = layout_header_check((const struct arena_header *)at, map_view.instance, id,
					 map_view.arena_size, &why);
	}
	close(fd);
	if (rc != 0) {
		seg_unmap_to_reserved(at, map_view.arena_size);
		return rc;
	}
	__atomic_store_n(&map_view.arena_mapped[id], 1, __ATOMIC_RELEASE);
	return 0;
}

int map_arena(uint32_t id)
{
	if (map_view.va_base == NULL || id >= map_view.max_arenas)
		return -EINVAL;
	if (__atomic_load_n(&map_view.arena_mapped[id], __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&arena_lock);
	int rc = map_view.arena_mapped[id] ? 0 : map_arena_locked(id);
	pthread_mutex_unlock(&arena_lock);
	return rc;
}

uint64_t map_small_ref(const void *p, unsigned *cls, int interior)
{
	uint64_t off = (uint64_t)((const char *)p - map_view.va_base);
	if (map_view.va_base == NULL || off >= map_view.va_size)
		return 0;
	uint32_t id = (uint32_t)(off >> map_view.arena_shift);
	if (!__atomic_load_n(&map_view.arena_mapped[id], __ATOMIC_ACQUIRE))
		return 0;
	char *arena = map_view.va_base + ((uint64_t)id << map_view.arena_shift);
	uint64_t aoff = off & (map_view.arena_size - 1);
	const struct page_entry *pm = (const struct page_entry *)(arena + map_view.page_map_off);
	struct page_entry pe = pm[aoff >> SHMA_PAGE_SHIFT];
	if (pe.kind != PAGE_SPAN || pe.cls >= SIZECLASS_COUNT)
		return 0;
	uint64_t start = (uint64_t)pe.span_start << SHMA_PAGE_SHIFT;
	uint64_t size = sizeclass_table[pe.cls].size;
	uint64_t in = aoff - start;
	uint64_t idx = in / size;
	if (idx >= sizeclass_table[pe.cls].objects)
		return 0;
	if (in % size != 0 && !interior)
		return 0;
	*cls = pe.cls;
	return ref_make(REF_ARENA, id, start + idx * size);
}

/* ---- large blocks ---- */

static size_t hash_addr(uintptr_t a, size_t cap)
{
	return (size_t)((a >> 12) * UINT64_C(0x9E3779B97F4A7C15) >> 20) & (cap - 1);
}

static int large_grow(void)
{
	size_t ncap = large.cap ? large.cap * 2 : 256;
	struct large_entry *n = mmap(NULL, ncap * sizeof *n, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (n == MAP_FAILED)
		return -ENOMEM;
	for (size_t i = 0; i < large.cap; i++) {
		struct large_entry *e = &large.slots[i];
		if (e->user == 0)
			continue;
		size_t j = hash_addr(e->user, ncap);
		while (n[j].user)
			j = (j + 1) & (ncap - 1);
		n[j] = *e;
	}
	if (large.slots)
		munmap(large.slots, large.cap * sizeof *large.slots);
	large.slots = n;
	large.cap = ncap;
	return 0;
}

static struct large_entry *large_slot(uintptr_t user)
{
	if (large.cap == 0)
		return NULL;
	for (size_t j = hash_addr(user, large.cap);; j = (j + 1) & (large.cap - 1)) {
		if (large.slots[j].user == user)
			return &large.slots[j];
		if (large.slots[j].user == 0)
			return NULL;
	}
}

static int large_insert(const struct large_entry *e)
{
	if ((large.used + 1) * 2 > large.cap && large_grow() != 0)
		return -ENOMEM;
	size_t j = hash_addr(e->user, large.cap);
	while (large.slots[j].user)
		j = (j + 1) & (large.cap - 1);
	large.slots[j] = *e;
	large.used++;
	return 0;
}

/* Removes slot j, moving later entries of its cluster back (no tombstones). */
static void large_remove(struct large_entry *e)
{
	size_t j = (size_t)(e - large.slots);
	large.slots[j].user = 0;
	large.used--;
	for (size_t k = (j + 1) & (large.cap - 1); large.slots[k].user;
	     k = (k + 1) & (large.cap - 1)) {
		struct large_entry moved = large.slots[k];
		large.slots[k].user = 0;
		size_t h = hash_addr(moved.user, large.cap);
		while (large.slots[h].user)
			h = (h + 1) & (large.cap - 1);
		large.slots[h] = moved;
	}
}

static void *map_large_segment(uint64_t ref, uint64_t *maplen)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, map_view.instance, 'l', ref_id(ref)) != 0)
		return NULL;
	int fd = seg_open(name, 1);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	int64_t size = seg_size(fd);
	void *p = size > 0 ? seg_map(fd, 0, (size_t)size, 1, NULL) : NULL;
	int e = errno;
	close(fd);
	errno = e;
	*maplen = size > 0 ? (uint64_t)size : 0;
	return p;
}

void *map_large(uint64_t ref, uint64_t size, size_t align)
{
	uint64_t maplen;
	char *base = map_large_segment(ref, &maplen);
	if (base == NULL)
		return NULL;
	struct large_entry e = {.base = base, .maplen = maplen, .ref = ref};
	uintptr_t user = (uintptr_t)base;
	if (align > 1)
		user = (user + align - 1) & ~(uintptr_t)(align - 1);
	if (user + size > (uintptr_t)base + maplen) {
		seg_unmap(base, maplen);
		errno = EINVAL;
		return NULL;
	}
	e.user = user;
	pthread_mutex_lock(&large.lock);
	int rc = large_insert(&e);
	pthread_mutex_unlock(&large.lock);
	if (rc != 0) {
		seg_unmap(base, maplen);
		errno = ENOMEM;
		return NULL;
	}
	return (void *)user;
}

int map_large_find(const void *p, uint64_t *ref, size_t *usable, int interior)
{
	uintptr_t a = (uintptr_t)p;
	int found = 0;
	pthread_mutex_lock(&large.lock);
	struct large_entry *e = large_slot(a);
	if (e == NULL && interior) {
		for (size_t i = 0; i < large.cap && !e; i++) {
			struct large_entry *s = &large.slots[i];
			if (s->user && a >= s->user && a < (uintptr_t)s->base + s->maplen)
				e = s;
		}
	}
	if (e != NULL) {
		*ref = e->ref + (uint64_t)(a - (uintptr_t)e->base);
		if (usable)
			*usable = (size_t)((uintptr_t)e->base + e->maplen - e->user);
		found = 1;
	}
	pthread_mutex_unlock(&large.lock);
	return found;
}

int map_large_extent(const void *p, char **base, size_t *len)
{
	uintptr_t a = (uintptr_t)p;
	int found = 0;
	pthread_mutex_lock(&large.lock);
	for (size_t i = 0; i < large.cap && !found; i++) {
		struct large_entry *s = &large.slots[i];
		if (s->user && a >= (uintptr_t)s->base && a < (uintptr_t)s->base + s->maplen) {
			*base = s->base;
			*len = s->maplen;
			found = 1;
		}
	}
	pthread_mutex_unlock(&large.lock);
	return found;
}

void map_large_forget(const void *p)
{
	pthread_mutex_lock(&large.lock);
	struct large_entry *e = large_slot((uintptr_t)p);
	if (e != NULL) {
		seg_unmap(e->base, e->maplen);
		large_remove(e);
	}
	pthread_mutex_unlock(&large.lock);
}

static void *large_ptr(uint64_t ref)
{
	uint64_t seg_ref = ref_make(REF_LARGE, ref_id(ref), 0);
	void *found = NULL;
	pthread_mutex_lock(&large.lock);
	for (size_t i = 0; i < large.cap && !found; i++) {
		struct large_entry *s = &large.slots[i];
		if (s->user && s->ref == seg_ref && ref_offset(ref) < s->maplen)
			found = s->base + ref_offset(ref);
	}
	pthread_mutex_unlock(&large.lock);
	if (found)
		return found;
	/* Not mapped here yet: map the whole segment, remember it by its start. */
	char *base = map_large(seg_ref, 1, 1);
	if (base == NULL)
		return NULL;
	uint64_t r;
	size_t usable;
	if (!map_large_find(base, &r, &usable, 0) || ref_offset(ref) >= usable) {
		errno = EINVAL;
		return NULL;
	}
	return base + ref_offset(ref);
}

void *map_ref_ptr(uint64_t ref)
{
	if (map_view.va_base == NULL) {
		errno = ENOTCONN;
		return NULL;
	}
	switch (ref_kind(ref)) {
	case REF_ARENA:
		if (ref_offset(ref) >= map_view.arena_size || ref_offset(ref) < map_view.meta_bytes ||
		    map_arena(ref_id(ref)) != 0)
			break;
		return map_arena_ptr(ref);
	case REF_LARGE:
		return large_ptr(ref);
	default:
		break;
	}
	errno = EINVAL;
	return NULL;
}

/* ---- for the preload library (client/lib/preload.c) ---- */

int map_owns(const void *p)
{
	char *base = __atomic_load_n(&map_view.va_base, __ATOMIC_ACQUIRE);
	if (base == NULL)
		return 0;
	if ((uint64_t)((const char *)p - base) < map_view.va_size)
		return 1;
	if (__atomic_load_n(&large.used, __ATOMIC_RELAXED) == 0)
		return 0;
	pthread_mutex_lock(&large.lock);
	int found = large_slot((uintptr_t)p) != NULL;
	pthread_mutex_unlock(&large.lock);
	return found;
}

int map_each_mapping(int (*fn)(void *base, size_t len, int all, void *arg), void *arg)
{
	if (map_view.va_base == NULL)
		return 0;
	for (uint32_t id = 0; id < map_view.max_arenas; id++) {
		if (!__atomic_load_n(&map_view.arena_mapped[id], __ATOMIC_ACQUIRE))
			continue;
		char *at = map_view.va_base + ((uint64_t)id << map_view.arena_shift);
		int rc = fn(at, map_view.meta_bytes, 1, arg);
		if (rc == 0)
			rc = fn(at + map_view.meta_bytes, map_view.arena_size - map_view.meta_bytes, 0,
				arg);
		if (rc != 0)
			return rc;
	}
	for (size_t i = 0; i < large.cap; i++) {
		struct large_entry *s = &large.slots[i];
		if (s->user == 0)
			continue;
		int rc = fn(s->base, s->maplen, 0, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void map_fork_child(void)
{
	/* Another thread of the parent may have held them at the fork. */
	pthread_mutex_init(&large.lock, NULL);
	pthread_mutex_init(&arena_lock, NULL);
}
