/*
 * The public functions of shmalloc.h.
 *
 * shma_malloc and shma_free are the fast path: a size-class lookup and a pop
 * from (or push to) the calling thread's cache -- no lock, no system call.
 * Everything else goes to tcache.c (refill, flush), maps.c (large blocks,
 * refs) or conn.c (roots, stats), under the connection's lock.
 */
#include "config.h"

#include "client.h"
#include "debug.h"
#include "seg.h"
#include "shmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ROOT_NAME_MAX 255

static inline uint64_t small_max(void)
{
	/* 0 before the first handshake: everything takes the slow path then. */
	return map_view.large_threshold;
}

static void *large_alloc(size_t size, size_t align)
{
	struct tcache *t = tcache_self;
	if (t != NULL && t->slot != NULL) {
		t->slot->mallocs++; /* a large block always waits on the daemon */
		t->slot->waits++;
	}
	if (size > REF_OFFSET_MASK - align) {
		errno = ENOMEM;
		return NULL;
	}
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__AllocLarge al = SHMA__ALLOC_LARGE__INIT;
	/* A segment is mapped on an OS page (4 KiB) boundary: more alignment
	 * than that needs room to move the block up. */
	al.size = size + (align > 4096 ? align : 0);
	req.body_case = SHMA__REQUEST__BODY_ALLOC_LARGE;
	req.alloc_large = &al;
	Shma__Response *resp;
	conn_lock();
	int rc = conn_call(&req, &resp);
	uint64_t ref = 0, segsize = 0;
	if (rc == 0 && resp->body_case == SHMA__RESPONSE__BODY_ALLOC_LARGE) {
		/* Read: the daemon need not take it back if we die now, since the
		 * program may have it soon (server/inflight.h). */
		struct control_block *cb = conn_control();
		if (cb != NULL)
			__atomic_store_n(&cb->hdr.large_collected, req.id, __ATOMIC_RELEASE);
		ref = resp->alloc_large->ref;
		segsize = resp->alloc_large->size;
	} else if (rc == 0) {
		rc = -EPROTO;
	}
	conn_done(resp);
	conn_unlock();
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	void *p = map_large(ref, size, align);
	if (p == NULL || segsize < size) {
		int e = errno;
		Shma__FreeLarge fl = SHMA__FREE_LARGE__INIT;
		fl.ref = ref;
		req.body_case = SHMA__REQUEST__BODY_FREE_LARGE;
		req.free_large = &fl;
		conn_lock();
		if (conn_call(&req, &resp) == 0 || resp)
			conn_done(resp);
		conn_unlock();
		errno = e ? e : ENOMEM;
		return NULL;
	}
	return p;
}

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

static void *small_alloc_slow(size_t size)
{
	if (small_max() == 0) {
		/* Not connected yet: connect, then we know the threshold and
		 * whether debug mode is on -- and start again from the top. */
		if (ensure_connected() != 0)
			return NULL;
		return shma_malloc(size);
	}
	return tcache_alloc_slow(sizeclass_of(size));
}

static inline void *malloc_fast(size_t size)
{
	if (likely(size < small_max())) {
		unsigned cls = sizeclass_of(size);
		struct tcache *t = tcache_self;
		if (likely(t != NULL)) {
			struct tcache_bin *b = &t->slot->bins[cls];
			if (likely(b->count > tcache_low(t, cls))) {
				void *p = map_arena_ptr(b->head);
				debug_link_open(p);
				b->head = *(uint64_t *)p;
				b->count--;
				t->cached_bytes -= sizeclass_size(cls);
				t->slot->mallocs++;
				return p;
			}
		}
		return tcache_alloc_slow(cls);
	}
	if (small_max() == 0)
		return small_alloc_slow(size);
	return large_alloc(size, 1);
}

static void *aligned_plain(size_t alignment, size_t size);

void *api_alloc(size_t size, size_t align)
{
	return align > 16 ? aligned_plain(align, size) : malloc_fast(size);
}

SHMA_EXPORT void *shma_malloc(size_t size)
{
	if (unlikely(debug_flags))
		return debug_malloc(size, 0);
	return malloc_fast(size);
}

static void free_large(void *p)
{
	uint64_t ref;
	size_t usable;
	if (!map_large_find(p, &ref, &usable, 0))
		return; /* not ours: ignoring it beats corrupting the heap */
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__FreeLarge fl = SHMA__FREE_LARGE__INIT;
	fl.ref = ref_make(REF_LARGE, ref_id(ref), 0);
	req.body_case = SHMA__REQUEST__BODY_FREE_LARGE;
	req.free_large = &fl;
	map_large_forget(p);
	Shma__Response *resp;
	conn_lock();
	if (conn_call(&req, &resp) == 0 || resp)
		conn_done(resp);
	conn_unlock();
}

static inline void free_fast(void *p)
{
	unsigned cls;
	uint64_t ref = map_small_ref(p, &cls, 0);
	if (unlikely(ref == 0)) {
		free_large(p);
		return;
	}
	struct tcache *t = tcache_self;
	if (likely(t != NULL)) {
		struct tcache_bin *b = &t->slot->bins[cls];
		if (likely(b->count < tcache_high[cls])) {
			debug_link_open(p);
			*(uint64_t *)p = b->head;
			debug_link_close(p);
			b->head = ref;
			b->count++;
			t->cached_bytes += sizeclass_size(cls);
			return;
		}
	}
	tcache_free_slow(cls, ref);
}

void api_free(void *p)
{
	free_fast(p);
}

SHMA_EXPORT void shma_free(void *p)
{
	if (p == NULL)
		return;
	if (unlikely(debug_flags)) {
		debug_free(p);
		return;
	}
	free_fast(p);
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
	size_t usable;
	return map_large_find(p, &ref, &usable, 0) ? usable : 0;
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
		memset(p, 0, total); /* recycled blocks hold old data and a link */
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
	return aligned_plain(alignment, size);
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
	uint64_t ref = map_small_ref(p, &cls, 1);
	if (ref != 0)
		return ref + (uint64_t)((const char *)p - (const char *)map_arena_ptr(ref));
	size_t usable;
	return map_large_find(p, &ref, &usable, 1) ? ref : 0;
}

SHMA_EXPORT void *shma_ptr(shma_ref_t ref)
{
	if (ref == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (map_view.va_base == NULL) {
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
		conn_close(1);
	}
	conn_unlock();
}

static int name_check(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return -EINVAL;
	return strlen(name) > ROOT_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* Sends a roots request and returns the daemon's verdict (and a ref). */
static int roots_call(Shma__Request *req, uint64_t *ref)
{
	Shma__Response *resp;
	conn_lock();
	int rc = conn_call(req, &resp);
	if (rc == 0 && ref != NULL) {
		if (resp->body_case == SHMA__RESPONSE__BODY_LOOKUP)
			*ref = resp->lookup->ref;
		else
			rc = -EPROTO;
	}
	if (resp)
		conn_done(resp);
	conn_unlock();
	return rc;
}

SHMA_EXPORT int shma_publish(const char *name, shma_ref_t ref)
{
	int rc = name_check(name);
	if (rc != 0)
		return rc;
	if (ref == 0)
		return -EINVAL;
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Publish p = SHMA__PUBLISH__INIT;
	p.name = (char *)name;
	p.ref = ref;
	req.body_case = SHMA__REQUEST__BODY_PUBLISH;
	req.publish = &p;
	return roots_call(&req, NULL);
}

SHMA_EXPORT int shma_lookup(const char *name, shma_ref_t *ref)
{
	int rc = name_check(name);
	if (rc != 0)
		return rc;
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Lookup l = SHMA__LOOKUP__INIT;
	l.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_LOOKUP;
	req.lookup = &l;
	return roots_call(&req, ref);
}

SHMA_EXPORT int shma_unpublish(const char *name)
{
	int rc = name_check(name);
	if (rc != 0)
		return rc;
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Unpublish u = SHMA__UNPUBLISH__INIT;
	u.name = (char *)name;
	req.body_case = SHMA__REQUEST__BODY_UNPUBLISH;
	req.unpublish = &u;
	return roots_call(&req, NULL);
}

SHMA_EXPORT const char *shma_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0: return "success";
	case EPROTO: return "protocol error (the daemon and the library disagree)";
	case EPROTONOSUPPORT: return "the daemon speaks another protocol version";
	case ECONNREFUSED: return "no daemon listens on the socket";
	case ENOENT: return "no such socket or name";
	case EACCES: return "the daemon refuses this user";
	case EPERM: return "the daemon on the socket runs as a user this process does not trust "
			   "(not its own, not root; see SHMALLOC_DAEMON_UID)";
	case ENOMEM: return "out of shared memory";
	case EEXIST: return "the name is taken";
	case ENAMETOOLONG: return "name too long";
	case ECONNRESET: return "the connection to the daemon was lost";
	default: return strerror(err);
	}
}
