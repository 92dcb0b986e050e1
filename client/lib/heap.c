/* SPDX-License-Identifier: MIT */
/*
 * Named heaps, the library's side (shmalloc.h, doc/architecture.md "Named
 * heaps"): handles, a thread cache per thread per heap, and the free path
 * of a heap's blocks.
 *
 * A handle is a slot of handles[]: the heap's id, name and options.  A
 * thread's cache of heap slot i is heap_caches[i], private memory of the
 * thread's (prim_alloc()), stacks of refs per class, tagged with the id it
 * holds objects of.  Before every take from it the thread reads the heap's
 * live word (page 0 of segment 'M', read-only to us, written by the daemon
 * alone): once the heap is destroyed the word is 0 and the cache is dropped
 * unread -- its objects are no longer out, their pages may be anyone's now
 * -- never flushed.  Flushes of a heap's cache say the heap's id (Flush.
 * heap_id), and the daemon takes back only objects of that heap, so a flush
 * that races a destroy frees nothing of what took the pages since.
 *
 * Blocks of a named heap carry SHMA_PAGE_HEAP in their page map entry, which
 * matches no process's region_flags: shma_free() sends them to free_other(),
 * whose heap_free_fast() (heapfast.h) pushes a small one on this thread's
 * cache of its heap, found from the span's owner word by the id's registry
 * slot (heap_slot_handle[], kept here with the handles); else
 * heap_free_hook() puts it in that cache (if this process has the heap open,
 * and it lives) or straight back with the id.  So no default cache (thread
 * bins, transfer cache, large-block cache) ever holds a heap's block.
 */
#include "config.h"

#include "call.h"
#include "freecheck.h"
#include "heapfast.h"
#include "rootname.h"
#include "shmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct shma_heap {
	uint64_t id;         /* 0: a free slot */
	uint32_t index;
	uint32_t lifetime;
	uint64_t max_bytes;
	char name[ROOT_NAME_MAX + 1];
};

static struct shma_heap handles[HEAP_HANDLES];
/* What heap_caches[] holds where a thread has no cache: id and owner 0,
 * which no handle's id and no span's owner word is, so the fast paths need
 * no test of NULL.  Never written (nothing ever matches it). */
struct heap_tc heap_tc_none;
__thread struct heap_tc *heap_caches[HEAP_HANDLES + 1] __attribute__((tls_model("initial-exec"))) = {
	[0 ... HEAP_HANDLES] = &heap_tc_none};
uint64_t heap_arena_mask;
uint8_t heap_slot_handle[SHMA_HEAP_SLOTS] = {[0 ... SHMA_HEAP_SLOTS - 1] = HEAP_HANDLES};
int64_t heap_owner_delta;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static uint64_t owner_off; /* of the arenas' owner words in their metadata */

/* Per class, what a thread's cache of a heap holds at most (tc_init()). */
uint8_t heap_tc_caps[SIZECLASS_COUNT];

static inline uint32_t tc_cap(unsigned cls)
{
	return heap_tc_caps[cls];
}

/* 1 while heap id lives (the daemon's word; 0 before the heap is mapped). */
static inline int heap_live(uint64_t id)
{
	if (unlikely(map_view.meta == NULL))
		return 0;
	const uint64_t *live = (const uint64_t *)(map_view.meta + SHMA_HEAP_LIVE_OFF);
	return __atomic_load_n(&live[id & (SHMA_HEAP_SLOTS - 1)], __ATOMIC_ACQUIRE) == id;
}

/* Sends cache t's objects back (its heap lives) or drops them (it does not);
 * with the lock held. */
static void tc_empty(struct heap_tc *t)
{
	int live = heap_live(t->id) && conn_connected();
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		uint32_t n = t->count[cls];
		t->count[cls] = 0;
		for (uint32_t k = 0; live && k < n; k += WIRE_FLUSH_CHUNK)
			call_flush_heap(t->id, &t->refs[cls][k],
					n - k < WIRE_FLUSH_CHUNK ? n - k : WIRE_FLUSH_CHUNK);
	}
}

static void thread_gone(void *arg)
{
	(void)arg;
	conn_lock();
	for (unsigned i = 0; i < HEAP_HANDLES; i++) {
		struct heap_tc *t = heap_caches[i];
		if (t == &heap_tc_none)
			continue;
		heap_caches[i] = &heap_tc_none;
		tc_empty(t);
		prim_free(t, sizeof *t);
	}
	conn_unlock();
}

/* The child of a fork(): the caches' objects are the parent's, and the
 * daemon knows of no heap the child has open (a refill finds out and opens
 * again). */
static void forked_child(void)
{
	for (unsigned i = 0; i < HEAP_HANDLES; i++)
		heap_caches[i] = &heap_tc_none;
}

/* A process's exit: the exiting thread's caches go back as a thread's exit
 * sends them (the other threads' stay out in their heaps until those end). */
static void process_exit(void)
{
	thread_gone(NULL);
}

static void tc_init(void)
{
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		uint64_t n = HEAP_TC_BYTES / sizeclass_size(cls);
		heap_tc_caps[cls] = (uint8_t)(n < 4 ? 4 : n > HEAP_TC_CAP ? HEAP_TC_CAP : n);
	}
	pthread_key_create(&tc_key, thread_gone);
	pthread_atfork(NULL, NULL, forked_child);
	atexit(process_exit);
	struct arena_geometry g;
	if (map_view.arena_size != 0 && layout_geometry(map_view.arena_size, &g) == 0)
		owner_off = g.owner_off;
	heap_arena_mask = map_view.arena_size - 1;
	if (owner_off != 0)
		__atomic_store_n(&heap_owner_delta,
				 (int64_t)owner_off - (int64_t)map_view.page_map_off, __ATOMIC_RELEASE);
}

/* This thread's cache of heap h, made if it has none (or one of the heap
 * the slot held before); NULL with errno ENOMEM.  With the lock held. */
static struct heap_tc *tc_of(struct shma_heap *h)
{
	struct heap_tc *t = heap_caches[h->index];
	if (t->id == h->id)
		return t;
	if (t == &heap_tc_none) {
		t = prim_alloc(sizeof *t);
		if (t == NULL)
			return NULL;
		pthread_setspecific(tc_key, (void *)1);
	} else {
		tc_empty(t);
	}
	t->id = h->id;
	t->owner = SHMA_OWNER_REGION | SHMA_OWNER_HEAP | h->id;
	/* Mapped by now (the handle was made on a connection), never moved. */
	t->live = (const uint64_t *)(map_view.meta + SHMA_HEAP_LIVE_OFF) +
		  (h->id & (SHMA_HEAP_SLOTS - 1));
	heap_caches[h->index] = t;
	return t;
}

/* ---- handles ---- */

static struct shma_heap *handle_of_id(uint64_t id)
{
	for (unsigned i = 0; i < HEAP_HANDLES; i++)
		if (handles[i].id == id && id != 0)
			return &handles[i];
	return NULL;
}

static struct shma_heap *handle_new(const struct call_heap *r)
{
	struct shma_heap *h = handle_of_id(r->id);
	if (h != NULL)
		return h;
	for (unsigned i = 0; i < HEAP_HANDLES; i++) {
		if (handles[i].id != 0)
			continue;
		h = &handles[i];
		h->index = i;
		h->lifetime = r->lifetime;
		h->max_bytes = r->max_bytes;
		memcpy(h->name, r->name, sizeof h->name); /* both NUL-terminated, as long */
		__atomic_store_n(&h->id, r->id, __ATOMIC_RELEASE);
		__atomic_store_n(&heap_slot_handle[r->id & (SHMA_HEAP_SLOTS - 1)], (uint8_t)i,
				 __ATOMIC_RELEASE);
		return h;
	}
	return NULL;
}

/* The handle of the heap the daemon answered with (rc 0); with the lock
 * held.  0 or -errno. */
static int heap_handle(int rc, const struct call_heap *r, shma_heap_t **heap)
{
	if (rc != 0)
		return rc;
	pthread_once(&tc_once, tc_init);
	*heap = handle_new(r);
	return *heap == NULL ? -EMFILE : 0;
}

static int heap_open_locked(const char *name, shma_heap_t **heap)
{
	struct call_heap r;
	return heap_handle(call_heap_open(name, &r), &r, heap);
}

SHMA_EXPORT int shma_heap_create(const char *name, const shma_heap_opts_t *opts,
				 shma_heap_t **heap)
{
	if (heap == NULL)
		return -EINVAL;
	int rc = rootname_check(name);
	if (rc != 0)
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	if (opts != NULL && (unsigned)opts->lifetime > SHMA_HEAP_LAST_USER)
		return -EINVAL;
	struct call_heap r;
	conn_lock();
	rc = call_heap_create(name, opts != NULL ? (uint32_t)opts->lifetime : SHMA_HEAP_PERSISTENT,
			      opts != NULL ? opts->max_bytes : 0, &r);
	rc = heap_handle(rc, &r, heap);
	conn_unlock();
	return rc;
}

SHMA_EXPORT int shma_heap_open(const char *name, shma_heap_t **heap)
{
	if (heap == NULL)
		return -EINVAL;
	int rc = rootname_check(name);
	if (rc != 0)
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	conn_lock();
	rc = heap_open_locked(name, heap);
	conn_unlock();
	return rc;
}

/* Empties this thread's cache of h (the other threads' caches of it are
 * emptied when they next use the slot or exit) and frees the handle. */
static void handle_drop(struct shma_heap *h)
{
	struct heap_tc *t = heap_caches[h->index];
	if (t->id == h->id)
		tc_empty(t);
	uint8_t *sh = &heap_slot_handle[h->id & (SHMA_HEAP_SLOTS - 1)];
	if (*sh == h->index)
		__atomic_store_n(sh, (uint8_t)HEAP_HANDLES, __ATOMIC_RELEASE);
	__atomic_store_n(&h->id, 0, __ATOMIC_RELEASE);
}

SHMA_EXPORT void shma_heap_close(shma_heap_t *heap)
{
	if (heap == NULL || heap->id == 0)
		return;
	conn_lock();
	struct heap_tc *t = heap_caches[heap->index];
	if (t->id == heap->id)
		tc_empty(t); /* before the close: a last-user heap ends with it */
	if (conn_ensure() == 0)
		call_heap_end(heap->id, 0);
	handle_drop(heap);
	conn_unlock();
}

SHMA_EXPORT int shma_heap_destroy(shma_heap_t *heap)
{
	if (heap == NULL || heap->id == 0)
		return -EINVAL;
	conn_lock();
	/* Dropped, not flushed: the destroy takes every object back. */
	struct heap_tc *t = heap_caches[heap->index];
	if (t->id == heap->id)
		memset(t->count, 0, sizeof t->count);
	int rc = conn_ensure();
	if (rc == 0)
		rc = call_heap_end(heap->id, 1);
	if (rc == 0 || rc == -ENOENT)
		handle_drop(heap);
	conn_unlock();
	return rc;
}

SHMA_EXPORT uint64_t shma_heap_id(const shma_heap_t *heap)
{
	return heap != NULL ? heap->id : 0;
}

SHMA_EXPORT shma_heap_t *shma_heap_from_id(uint64_t id)
{
	struct shma_heap *h = handle_of_id(id);
	if (h != NULL)
		return h;
	char name[ROOT_NAME_MAX + 1];
	conn_lock();
	int rc = conn_ensure();
	if (rc == 0)
		rc = call_heap_stats(id, NULL, NULL, name, sizeof name);
	if (rc == 0)
		rc = heap_open_locked(name, &h);
	if (rc == 0 && h->id != id)
		rc = -ENOENT; /* another heap of that name since */
	conn_unlock();
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	return h;
}

SHMA_EXPORT int shma_heap_in_use(shma_heap_t *heap, size_t *bytes, size_t *blocks)
{
	if (heap == NULL || heap->id == 0)
		return -EINVAL;
	uint64_t by = 0, bl = 0;
	conn_lock();
	int rc = conn_ensure();
	if (rc == 0)
		rc = call_heap_stats(heap->id, &by, &bl, NULL, 0);
	conn_unlock();
	if (rc == 0) {
		if (bytes != NULL)
			*bytes = (size_t)by;
		if (blocks != NULL)
			*blocks = (size_t)bl;
	}
	return rc;
}

/* ---- allocation ---- */

/* Where a heap refill's objects go: cache t's stack of cls. */
struct tc_put {
	struct heap_tc *t;
	unsigned cls;
};

static int tc_put(void *arg, uint64_t ref)
{
	struct tc_put *p = arg;
	uint32_t *n = &p->t->count[p->cls];
	if (*n >= tc_cap(p->cls))
		return 0;
	p->t->refs[p->cls][(*n)++] = ref;
	return 1;
}

/* Refills t's stack of cls from heap h, reopening h once if the daemon
 * says we do not have it open (a restarted daemon that gave us a new
 * control block, a forked child); with the lock held.  0 or -errno. */
static int tc_refill(struct shma_heap *h, struct heap_tc *t, unsigned cls)
{
	uint32_t want = tc_cap(cls) / 2 ? tc_cap(cls) / 2 : 1;
	if (h->max_bytes != 0)
		want = 1; /* max_bytes is exact: nothing cached counts against it */
	for (int tries = 0; tries < 2; tries++) {
		call_ticket id = call_heap_refill_ask(h->id, cls, want);
		if (id == 0)
			return -ECONNRESET;
		struct tc_put p = {t, cls};
		int rc = call_refill_take(id, cls, tc_put, &p, NULL);
		if (rc != -ENOENT || tries == 1)
			return rc;
		shma_heap_t *again;
		rc = heap_open_locked(h->name, &again);
		if (rc != 0 || again != h)
			return -ENOENT;
	}
	return -ENOENT;
}

static void *heap_large(struct shma_heap *h, size_t size, size_t align)
{
	size_t extra = align > SHMA_PAGE_SIZE ? align : 0;
	if (size > map_view.range || map_view.range - size < extra) {
		errno = ENOMEM;
		return NULL;
	}
	uint64_t ref;
	conn_lock();
	int rc = call_alloc_large_in(h->id, size + extra, &ref);
	if (rc == -ENOENT) {
		shma_heap_t *again;
		if (heap_open_locked(h->name, &again) == 0 && again == h)
			rc = call_alloc_large_in(h->id, size + extra, &ref);
	}
	conn_unlock();
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	uintptr_t user = (uintptr_t)map_ptr(ref);
	if (align > 1)
		user = (user + align - 1) & ~(uintptr_t)(align - 1);
	return (void *)user;
}

static __attribute__((noinline)) void *heap_small_slow(struct shma_heap *h, unsigned cls)
{
	if (h->id == 0) {
		errno = EINVAL;
		return NULL;
	}
	conn_lock();
	int rc = conn_ensure();
	struct heap_tc *t = NULL;
	if (rc == 0 && !heap_live(h->id))
		rc = -ENOENT;
	if (rc == 0 && (t = tc_of(h)) == NULL)
		rc = -ENOMEM;
	if (rc == 0 && t->count[cls] == 0)
		rc = tc_refill(h, t, cls);
	if (rc == -ENOMEM && h->max_bytes != 0) {
		/* What this thread's cache holds counts against max_bytes: back
		 * first (the daemon reads our Flush before the refill), once. */
		tc_empty(t);
		rc = tc_refill(h, t, cls);
	}
	void *p = NULL;
	if (rc == 0 && t->count[cls] > 0)
		p = map_ptr(t->refs[cls][--t->count[cls]]);
	conn_unlock();
	if (p == NULL)
		errno = rc == 0 || rc == -ENOMEM ? ENOMEM : -rc;
	return check_fresh(p);
}

/* What shma_heap_malloc() does not do inline: a closed handle, an empty
 * stack, a large size, not connected yet. */
static __attribute__((noinline)) void *heap_malloc_other(struct shma_heap *h, size_t size)
{
	if (h->id == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (likely(size < map_view.large_threshold))
		return heap_small_slow(h, sizeclass_of(size));
	if (map_view.large_threshold == 0) {
		/* Not connected yet (a handle of a heap another process made,
		 * from its id): connect, then start again. */
		int rc = shma_connect(NULL);
		if (rc != 0) {
			errno = -rc;
			return NULL;
		}
		return shma_heap_malloc(h, size);
	}
	return heap_large(h, size ? size : 1, 1);
}

/* The fast path: a pop from this thread's cache of the heap (a TLS load
 * and an index), after one look at the heap's live word through the
 * cache's pointer to it.  A closed handle (id 0) fails the tag's test, or
 * matches heap_tc_none's id 0 and finds its counts 0: heap_small_slow()
 * says EINVAL. */
SHMA_EXPORT void *shma_heap_malloc(shma_heap_t *heap, size_t size)
{
	if (unlikely(heap == NULL)) {
		errno = EINVAL;
		return NULL;
	}
	if (likely(size < map_view.large_threshold)) {
		unsigned cls = sizeclass_of(size);
		struct heap_tc *t = heap_caches[heap->index];
		uint64_t id = heap->id;
		if (likely(t->id == id)) {
			uint32_t n = t->count[cls];
			if (likely(n != 0 && __atomic_load_n(t->live, __ATOMIC_ACQUIRE) == id)) {
				t->count[cls] = n - 1;
				return check_clear(map_ptr(t->refs[cls][n - 1]));
			}
		}
		return heap_small_slow(heap, cls);
	}
	return heap_malloc_other(heap, size);
}

SHMA_EXPORT void *shma_heap_calloc(shma_heap_t *heap, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = shma_heap_malloc(heap, total);
	if (p != NULL)
		memset(p, 0, total);
	return p;
}

SHMA_EXPORT void *shma_heap_realloc(shma_heap_t *heap, void *p, size_t size)
{
	if (p == NULL)
		return shma_heap_malloc(heap, size);
	if (size == 0) {
		shma_free(p);
		return NULL;
	}
	size_t have = shma_usable_size(p);
	if (have >= size && shma_heap_of(p) == heap)
		return p;
	void *q = shma_heap_malloc(heap, size);
	if (q == NULL)
		return NULL;
	memcpy(q, p, have < size ? have : size);
	shma_free(p);
	return q;
}

SHMA_EXPORT void *shma_heap_aligned_alloc(shma_heap_t *heap, size_t alignment, size_t size)
{
	if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	if (heap == NULL || heap->id == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment <= 16)
		return shma_heap_malloc(heap, size);
	if (map_view.large_threshold == 0 && shma_connect(NULL) != 0)
		return NULL;
	/* A span starts on a page: a class whose size is a multiple of the
	 * alignment gives aligned objects (as shma_aligned_alloc()). */
	if (alignment <= SHMA_PAGE_SIZE) {
		for (unsigned cls = sizeclass_of(size ? size : 1);
		     cls < SIZECLASS_COUNT && sizeclass_size(cls) < map_view.large_threshold; cls++)
			if (sizeclass_size(cls) % alignment == 0)
				return shma_heap_malloc(heap, sizeclass_size(cls));
	}
	return heap_large(heap, size ? size : 1, alignment);
}

/* ---- blocks of a heap: whose, and their frees ---- */

/* The named heap of the span or large block whose page entry pe is, the
 * page at off, or 0. */
static uint64_t heap_id_of(uint64_t off, const struct page_entry *pe)
{
	if (!(pe->flags & SHMA_PAGE_HEAP))
		return 0;
	if (unlikely(owner_off == 0)) {
		pthread_once(&tc_once, tc_init);
		if (owner_off == 0)
			return 0;
	}
	uint32_t arena = (uint32_t)(off >> map_view.arena_shift);
	uint32_t first = pe->kind == PAGE_SPAN ? pe->span_start
			 : (uint32_t)((off & (map_view.arena_size - 1)) >> SHMA_PAGE_SHIFT);
	const uint64_t *owner = (const uint64_t *)(map_view.meta + (uint64_t)arena *
							     map_view.meta_bytes +
						   SHMA_PAGE_SIZE + owner_off) + first;
	uint64_t w = __atomic_load_n(owner, __ATOMIC_ACQUIRE);
	if ((w & (SHMA_OWNER_REGION | SHMA_OWNER_HEAP)) != (SHMA_OWNER_REGION | SHMA_OWNER_HEAP))
		return 0;
	return w & SHMA_HEAP_ID_MASK;
}

static uint64_t heap_id_at(uint64_t off)
{
	const struct page_entry *pe = map_page(off);
	return pe != NULL ? heap_id_of(off, pe) : 0;
}

/* This thread's cache of heap id, or NULL: by the id's registry slot. */
static inline struct heap_tc *tc_for_id(uint64_t id)
{
	struct heap_tc *t = heap_caches[heap_slot_handle[id & (SHMA_HEAP_SLOTS - 1)]];
	return t->id == id ? t : NULL; /* id is not 0: never heap_tc_none */
}

int heap_page(uint64_t off)
{
	const struct page_entry *pe = map_page(off);
	return pe != NULL && (pe->flags & SHMA_PAGE_HEAP);
}

int heap_free_hook(uint64_t ref, unsigned cls)
{
	const struct page_entry *pe = map_page(ref);
	if (pe == NULL || !(pe->flags & SHMA_PAGE_HEAP))
		return 0;
	uint64_t id = heap_id_of(ref, pe);
	/* This thread's cache of that heap, no lock: the thread's own. */
	struct heap_tc *t = id != 0 ? tc_for_id(id) : NULL;
	if (t != NULL && t->count[cls] < tc_cap(cls) && heap_live(id)) {
		t->refs[cls][t->count[cls]++] = ref;
		return 1;
	}
	conn_lock();
	if (conn_ensure() == 0) {
		if (id != 0)
			call_flush_heap(id, &ref, 1);
		else
			call_flush(&ref, 1);
	}
	conn_unlock();
	return 1;
}

SHMA_EXPORT shma_heap_t *shma_heap_of(const void *p)
{
	if (p == NULL || map_view.base == NULL)
		return NULL;
	uint64_t off = (uint64_t)((const char *)p - map_view.base);
	if (off >= map_view.range)
		return NULL;
	uint64_t ref = off;
	unsigned cls;
	uint64_t start = map_small_ref(p, &cls, 1);
	char *bstart;
	size_t bsize;
	if (start != 0)
		ref = start;
	else if (map_large_block(p, &ref, &bstart, &bsize) == 0)
		return NULL;
	uint64_t id = heap_id_at(ref);
	if (id == 0)
		return NULL;
	return shma_heap_from_id(id);
}
