/* SPDX-License-Identifier: MIT */
/*
 * The public functions of shmalloc.h.
 *
 * shma_malloc and shma_free are the fast path: a size-class lookup and a pop
 * from (or push to) the calling thread's cache -- no lock, no system call.
 * Everything else goes to tcache.c (refill, flush), maps.c (refs, what a
 * page holds), largecache.c or call.c (large blocks, roots), under the
 * connection's lock.
 */
#include "config.h"

#include "call.h"
#include "connerr.h"
#include "debug.h"
#include "fast.h"
#include "freecheck.h"
#include "heapfast.h"
#include "seg.h"
#include "shmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t small_max(void)
{
	/* 0 before the first handshake: everything takes the slow path then. */
	return map_view.large_threshold;
}

/* Gives a large block back to the daemon; with the lock not held. */
static void send_free_large(uint64_t ref)
{
	conn_lock();
	call_free_large(ref);
	conn_unlock();
}

/* Start of a block (of start) aligned as asked. */
static void *aligned_in(uint64_t start, size_t align)
{
	uintptr_t user = (uintptr_t)map_ptr(start);
	if (align > 1)
		user = (user + align - 1) & ~(uintptr_t)(align - 1);
	return (void *)user;
}

static void *large_alloc(size_t size, size_t align)
{
	struct tcache *t = tcache_self;
	/* A block starts on a page: more alignment than that needs room to
	 * move the block up. */
	size_t extra = align > SHMA_PAGE_SIZE ? align : 0;
	if (size > map_view.range || map_view.range - size < extra) {
		errno = ENOMEM;
		return NULL;
	}
	if (t != NULL && t->slot != NULL)
		t->slot->mallocs++;
	/* One this process freed, if one fits: no round trip. */
	conn_lock();
	lcache_expire();
	uint64_t kept_size, kept = lcache_take(size + extra, &kept_size);
	conn_unlock();
	if (kept != 0)
		return aligned_in(kept, align);
	if (t != NULL && t->slot != NULL)
		t->slot->waits++; /* from the daemon: a wait */
	uint64_t ref;
	conn_lock();
	int rc = call_alloc_large(size + extra, &ref);
	if (rc == 0)
		lcache_note_mine(ref);
	conn_unlock();
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	return aligned_in(ref, align);
}

/* The largest first malloc whose refill rides with the Hello: should the
 * daemon's --large-threshold make it a large block after all, the refill
 * waits in the thread's cache (a few hundred KiB at worst, once). */
#define FIRST_REFILL_MAX ((size_t)32 << 10)

/* Connects if this process never has; 0, or -1 with errno set. */
static int ensure_connected(void)
{
	if (small_max() != 0)
		return 0;
	conn_lock();
	int rc = conn_ensure();
	conn_unlock();
	if (rc != 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

/* The slow path of a small malloc, counted in the thread's bin as the fast
 * path counts (stats: allocations and bytes asked for, per class). */
static __attribute__((noinline)) void *small_alloc_counted(unsigned cls, size_t size)
{
	void *p = tcache_alloc_slow(cls);
	struct tcache *t = tcache_self;
	if (p != NULL && t != NULL && t->slot != NULL) {
		t->slot->class_mallocs[cls]++;
		t->slot->class_requested[cls] += size;
	}
	return p;
}

static void *small_alloc_slow(size_t size)
{
	if (small_max() == 0) {
		/* Not connected yet: connect, then we know the threshold and
		 * whether debug mode is on -- and start again from the top.  A
		 * size small under any threshold a daemon is likely to have has
		 * its first refill asked with the Hello (one round trip). */
		if ((size <= FIRST_REFILL_MAX ? tcache_connect(sizeclass_of(size))
					      : ensure_connected()) != 0)
			return NULL;
		return shma_malloc(size);
	}
	return small_alloc_counted(sizeclass_of(size), size);
}

/* A pop from the calling thread's bin of the class of size (size below
 * the large threshold), or the slow path when there is none to pop.  fresh:
 * the block's freed mark cleared (freecheck.h; debug.c clears it itself). */
static inline void *malloc_small(size_t size, int fresh)
{
	unsigned cls = sizeclass_of(size);
	void *p = fast_pop(cls, size);
	if (likely(p != NULL))
		return fresh ? check_clear(p) : p;
	return fresh ? check_fresh(small_alloc_counted(cls, size)) : small_alloc_counted(cls, size);
}

static inline void *malloc_fast(size_t size)
{
	if (likely(size < small_max()))
		return malloc_small(size, 0);
	if (small_max() == 0)
		return small_alloc_slow(size);
	return large_alloc(size, 1);
}

static void *aligned_plain(size_t alignment, size_t size);

void *api_alloc(size_t size, size_t align)
{
	return align > 16 ? aligned_plain(align, size) : malloc_fast(size);
}

/* What shma_malloc() does not do inline: debug mode, the first call, a
 * large block. */
static __attribute__((noinline)) void *malloc_other(size_t size)
{
	if (unlikely(debug_flags))
		return debug_malloc(size, 0);
	void *p = malloc_fast(size);
	/* The first call connects and may find debug mode on: debug.c's block
	 * then, with its canary where the mark would be cleared. */
	return unlikely(debug_flags) ? p : check_fresh(p);
}

/* malloc_limit is 0 in debug mode and until the heap is mapped: one
 * compare sends those, and large sizes, to malloc_other().  A plain load:
 * past it the fast path reads only this thread's cache (none before the
 * thread's first slow path, which takes the lock) and the base, which a
 * thread with a cache has seen set. */
SHMA_EXPORT void *shma_malloc(size_t size)
{
	if (likely(size < map_view.malloc_limit))
		return malloc_small(size, 1);
	return malloc_other(size);
}

static void free_large(void *p)
{
	uint64_t ref;
	char *start;
	size_t size;
	if (!map_large_block(p, &ref, &start, &size))
		return; /* not ours: ignoring it beats corrupting the heap */
	if (map_foreign_region(ref) || heap_page(ref)) {
		/* Another process's region, a named heap's block: never kept
		 * here (it may end). */
		send_free_large(ref);
		return;
	}
	conn_lock();
	int kept = lcache_put(ref, size);
	lcache_expire();
	conn_unlock();
	if (!kept)
		send_free_large(ref);
}

/* What free_fast() could not place: a small object of an arena this
 * process has not seen made yet, a large block, or not ours; judged
 * already. */
static void free_placed(void *p)
{
	unsigned cls;
	uint64_t ref = map_small_ref(p, &cls, 0);
	if (ref != 0 && heap_free_hook(ref, cls))
		return; /* a named heap's (heap.c) */
	if (ref != 0 && map_foreign_region(ref))
		tcache_free_direct(ref);
	else if (ref != 0)
		tcache_free_slow(cls, ref);
	else
		free_large(p);
}

/* What shma_free() does not place itself: judged (freecheck.c), then
 * placed. */
static __attribute__((noinline)) void free_judged(void *p)
{
	if (check_free(p, "free", CHECK_READ_MARK | CHECK_WRITE_MARK))
		free_placed(p);
}

/* What shma_free()'s test of the page failed, p within free_limit: a named
 * heap's small block into this thread's cache of it (heapfast.h), else
 * free_judged(). */
static __attribute__((noinline)) void free_other(void *p)
{
	if (heap_free_fast(p))
		return;
	free_judged(p);
}

/* A push of ref onto the calling thread's bin cls, or the slow path when
 * the bin is full (or not ready).  Every call here is a tail call, so the
 * fast path saves no register. */
static inline void free_small(size_t cls, uint64_t ref)
{
	if (likely(fast_push(cls, ref)))
		return;
	tcache_free_slow((unsigned)cls, ref);
}

static inline void free_fast(void *p)
{
	uint64_t ref;
	unsigned cls = map_small_class(p, &ref);
	if (unlikely(cls == SIZECLASS_COUNT)) {
		free_placed(p);
		return;
	}
	free_small(cls, ref);
}

void api_free(void *p)
{
	free_fast(p);
}

/* What shma_free() does not do inline: NULL, debug mode, an arena made
 * since, a large block, a pointer not ours. */
static __attribute__((noinline)) void free_checked(void *p)
{
	if (p == NULL)
		return;
	if (unlikely(debug_flags)) {
		debug_free(p);
		return;
	}
	free_judged(p); /* beyond free_limit: no named heap's block seen yet */
}

/* free_limit is 0 in debug mode and until the heap is mapped, and NULL is
 * far below the heap: one compare sends them all to free_checked().  The
 * limit is read first, with acquire: a thread that sees it raised sees the
 * base and the page maps it was raised for (another thread may be mapping
 * the heap while this one frees a pointer not ours). */
SHMA_EXPORT void shma_free(void *p)
{
	uint64_t limit = __atomic_load_n(&map_view.free_limit, __ATOMIC_ACQUIRE);
	uint64_t off = (uint64_t)((char *)p - map_view.base);
	if (unlikely(off >= limit)) {
		free_checked(p);
		return;
	}
	/* A region's block in a process that is not its region (or a
	 * library client's in a region process) goes by free_other(), and so
	 * does what check_fast_ok() does not pass (not an object's start, or
	 * marked freed). */
	struct page_entry e = *map_fast_entry(off);
	if (unlikely(MAP_ENTRY_UNCACHED(e) || !check_fast_ok(p, off, e))) {
		free_other(p);
		return;
	}
	check_mark(p);
	free_small(e.cls, off);
}

SHMA_EXPORT size_t shma_usable_size(const void *p)
{
	if (unlikely(debug_flags) && p != NULL)
		return debug_usable_size(p);
	return api_usable_size(p);
}

size_t api_usable_size(const void *p)
{
	if (p == NULL)
		return 0;
	unsigned cls;
	if (map_small_ref(p, &cls, 0) != 0)
		return sizeclass_size(cls);
	uint64_t ref;
	char *start;
	size_t size;
	if (!map_large_block(p, &ref, &start, &size))
		return 0;
	return size - (size_t)((const char *)p - start);
}

SHMA_EXPORT void *shma_calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = shma_malloc(total);
	if (p != NULL)
		memset(p, 0, total); /* recycled blocks hold old data */
	return p;
}

SHMA_EXPORT void *shma_realloc(void *p, size_t size)
{
	if (p == NULL)
		return shma_malloc(size);
	if (size == 0) {
		shma_free(p);
		return NULL;
	}
	if (!(unlikely(debug_flags) ? debug_check(p, "realloc")
				    : check_free(p, "realloc", CHECK_READ_MARK))) {
		errno = EINVAL;
		return NULL;
	}
	size_t old = shma_usable_size(p);
	if (old == 0) {
		errno = EINVAL;
		return NULL;
	}
	/* In place when the block already fits and would not be better served
	 * by a class at most half its size. */
	if (size <= old && size > old / 2)
		return p;
	void *q = shma_malloc(size);
	if (q == NULL)
		return NULL;
	memcpy(q, p, size < old ? size : old);
	shma_free(p);
	return q;
}

SHMA_EXPORT void *shma_aligned_alloc(size_t alignment, size_t size)
{
	if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment <= 16)
		return shma_malloc(size);
	if (ensure_connected() != 0)
		return NULL;
	if (unlikely(debug_flags))
		return debug_malloc(size, alignment);
	return check_fresh(aligned_plain(alignment, size));
}

static void *aligned_plain(size_t alignment, size_t size)
{
	/* A span starts on a page, so an object whose class size is a multiple
	 * of the alignment is aligned: take the first such class that fits. */
	if (alignment <= SHMA_PAGE_SIZE) {
		for (unsigned cls = sizeclass_of(size ? size : 1);
		     cls < SIZECLASS_COUNT && sizeclass_size(cls) < small_max(); cls++)
			if (sizeclass_size(cls) % alignment == 0)
				return malloc_fast(sizeclass_size(cls));
	}
	return large_alloc(size ? size : 1, alignment);
}

SHMA_EXPORT shma_ref_t shma_ref(const void *p)
{
	if (unlikely(debug_flags) && p != NULL)
		debug_handed_on(p);
	return api_ref(p);
}

uint64_t api_ref(const void *p)
{
	if (p == NULL)
		return 0;
	unsigned cls;
	uint64_t ref;
	char *start;
	size_t size;
	/* Any byte of a live block: its offset from the base. */
	if (map_small_ref(p, &cls, 1) != 0 || map_large_block(p, &ref, &start, &size))
		return (uint64_t)((const char *)p - map_view.base);
	return 0;
}

SHMA_EXPORT void *shma_ptr(shma_ref_t ref)
{
	if (ref == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (map_view.base == NULL) {
		conn_lock();
		int rc = conn_ensure();
		conn_unlock();
		if (rc != 0) {
			errno = -rc;
			return NULL;
		}
	}
	void *p = map_ref_ptr(ref);
	if (unlikely(debug_flags) && p != NULL)
		debug_received(p);
	return p;
}

SHMA_EXPORT int shma_same_address(void)
{
	if (map_view.base == NULL) {
		conn_lock();
		int rc = conn_ensure();
		conn_unlock();
		if (rc != 0)
			return rc;
	}
	return map_view.same_address;
}

SHMA_EXPORT int shma_connect(const char *socket_path)
{
	conn_lock();
	int rc = 0;
	if (!conn_connected()) {
		rc = conn_set_path(socket_path);
		if (rc == 0)
			rc = conn_ensure();
	}
	conn_unlock();
	return rc;
}

SHMA_EXPORT void shma_disconnect(void)
{
	conn_lock();
	if (conn_connected()) {
		tcache_flush_all();
		lcache_flush();
		conn_close(1);
	}
	conn_unlock();
}

SHMA_EXPORT int shma_publish(const char *name, shma_ref_t ref)
{
	int rc = rootname_check(name);
	if (rc != 0)
		return rc;
	if (ref == 0)
		return -EINVAL;
	conn_lock();
	rc = call_publish(name, ref);
	conn_unlock();
	return rc;
}

SHMA_EXPORT int shma_lookup(const char *name, shma_ref_t *ref)
{
	int rc = rootname_check(name);
	if (rc != 0)
		return rc;
	conn_lock();
	rc = call_lookup(name, ref);
	conn_unlock();
	return rc;
}

SHMA_EXPORT int shma_unpublish(const char *name)
{
	int rc = rootname_check(name);
	if (rc != 0)
		return rc;
	conn_lock();
	rc = call_unpublish(name);
	conn_unlock();
	return rc;
}

SHMA_EXPORT const char *shma_strerror(int err)
{
	const char *t = connerr_text(err);
	return t != NULL ? t : wire_strerror(err);
}
