/* SPDX-License-Identifier: MIT */
/*
 * The preload library: a whole program's malloc family in the shared heap.
 *
 * libshmalloc-preload.so, put in a program with LD_PRELOAD (shmalloc-run(1)
 * does), defines malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc and
 * malloc_usable_size -- and so C++'s new and delete, which call them -- on
 * top of shma_*.  It exports nothing else (preload.sym).
 *
 * Fast path.  malloc, free and calloc first try the library's own fast path
 * (fast.h) with nothing around it; what it does not serve goes the way
 * below.
 *
 * Owners.  free, realloc and malloc_usable_size ask who owns a pointer: the
 * bootstrap area (an address compare), the heap (map_owns(), a range test),
 * else the C library's malloc, which had it before we were loaded or served
 * it while we could not; each pointer goes back to its owner.
 *
 * Bootstrap.  Calls made before our constructor has connected, and calls
 * made from inside the library (dlsym's calloc while we look up the real
 * functions, glibc's calloc in pthread_setspecific under the connection's
 * lock, stdio in debug mode) are served from a static area with a free list
 * per power of two.  A thread-local flag says "inside the library", so a
 * re-entrant call never takes the connection's lock a second time.  When the
 * area is full the C library's malloc serves them.
 *
 * No daemon.  If the constructor cannot connect, the process uses the C
 * library's malloc, and says so once on stderr.  If the daemon goes away
 * later, the process switches to the C library's malloc for good (blocks of
 * the heap it holds stay usable; their frees are dropped); a heap that is
 * merely full serves that one call from the C library.  malloc never fails
 * for want of a daemon.
 *
 * fork().  By default the child gets its own copy of the heap, as with
 * glibc, whether the heap serves or the process lost its daemon.  The
 * prepare handler, in the parent, copies the pages of the arenas that may
 * hold its data (those in its own page table, found by PAGEMAP_SCAN or
 * /proc/self/pagemap; not the arenas' metadata, which the child reads where
 * it is) into private anonymous memory; fork() hands that to
 * the child copy-on-write, the child mremaps it over the heap's addresses
 * and the parent drops its own.  The parent copies because it reads its
 * pages without faulting them in and nobody waits for a child to be
 * scheduled.  From then on the child allocates from the C library's malloc
 * and drops frees of heap pointers (its copy is its own, the daemon never
 * hears of it).  exec starts afresh.
 * SHMALLOC_SHARE_FORK=1 (shmalloc-run --share-fork) keeps the heap shared
 * instead: the child reconnects, and parent and children allocate from and
 * free into one heap.
 */
#include "config.h"

#include "client.h"
#include "connerr.h"
#include "fast.h"
#include "preload.h"
#include "seg.h"
#include "shmalloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PRELOAD_EXPORT __attribute__((visibility("default")))


/* ---- who serves: the state of the process ---- */

enum {
	ST_EARLY,  /* before the constructor: the bootstrap area */
	ST_HEAP,   /* connected: the shared heap */
	ST_LIBC,   /* no daemon: the C library's malloc */
	ST_FORKED, /* a child of fork(): the C library's malloc, heap copied */
};

static int state = ST_EARLY;
static int share_fork;
/* In a child of fork(): the end of its copy of the arenas (fork_child()). */
static char *fork_copy_end;

/* Set while a call of ours runs in this thread: a malloc from in there is a
 * re-entry and goes to the bootstrap area. */
static __thread int inside __attribute__((tls_model("initial-exec")));

static int get_state(void)
{
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE);
}

/* ---- the C library's functions ---- */

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	size_t (*usable)(void *);
} real;

enum { REAL_NONE, REAL_RESOLVING, REAL_DONE };
static int real_state = REAL_NONE;

/* 1 once the real functions are known.  dlsym may calloc: that re-entry is
 * served from the bootstrap area (inside is set). */
static int real_ready(void)
{
	int s = __atomic_load_n(&real_state, __ATOMIC_ACQUIRE);
	if (s == REAL_DONE)
		return 1;
	int none = REAL_NONE;
	if (s != REAL_NONE || !__atomic_compare_exchange_n(&real_state, &none, REAL_RESOLVING, 0,
							   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0; /* another thread is at it: bootstrap meanwhile */
	int was = inside;
	inside = 1;
	real.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	real.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	real.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	real.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	real.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	real.usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	inside = was;
	int ok = real.malloc && real.free && real.calloc && real.realloc && real.posix_memalign &&
		 real.usable;
	__atomic_store_n(&real_state, ok ? REAL_DONE : REAL_RESOLVING, __ATOMIC_RELEASE);
	return ok;
}

/* ---- the bootstrap area ---- */

#define BOOT_SIZE ((size_t)1 << 20)
#define BOOT_MIN_SHIFT 5u
#define BOOT_BINS 21u /* blocks of 32 B .. 1 MiB */

struct boot_hdr {
	uint32_t bin;
	uint32_t back; /* from the block's start to this header */
	uint64_t pad;
};

static char boot_area[BOOT_SIZE] __attribute__((aligned(PAGE)));
static size_t boot_used;
static void *boot_bins[BOOT_BINS];
static int boot_locked;

static void boot_lock(void)
{
	while (__atomic_exchange_n(&boot_locked, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void boot_unlock(void)
{
	__atomic_store_n(&boot_locked, 0, __ATOMIC_RELEASE);
}

static int boot_owns(const void *p)
{
	return (uintptr_t)p - (uintptr_t)boot_area < BOOT_SIZE;
}

static void *boot_alloc(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	if (size > BOOT_SIZE || align > BOOT_SIZE / 2)
		return NULL;
	size_t need = size + sizeof(struct boot_hdr) + (align > 16 ? align : 0);
	unsigned bin = 0;
	while (((size_t)1 << (bin + BOOT_MIN_SHIFT)) < need)
		bin++;
	if (bin >= BOOT_BINS)
		return NULL;
	size_t bsize = (size_t)1 << (bin + BOOT_MIN_SHIFT);
	char *block = NULL;
	boot_lock();
	if (boot_bins[bin] != NULL) {
		block = boot_bins[bin];
		boot_bins[bin] = *(void **)block;
	} else if (bsize <= BOOT_SIZE - boot_used) {
		block = boot_area + boot_used;
		boot_used += bsize;
	}
	boot_unlock();
	if (block == NULL)
		return NULL;
	uintptr_t user = ((uintptr_t)block + sizeof(struct boot_hdr) + align - 1) & ~(uintptr_t)(align - 1);
	struct boot_hdr *h = (struct boot_hdr *)user - 1;
	h->bin = bin;
	h->back = (uint32_t)((char *)h - block);
	return (void *)user;
}

static size_t boot_usable(const void *p)
{
	const struct boot_hdr *h = (const struct boot_hdr *)p - 1;
	return ((size_t)1 << (h->bin + BOOT_MIN_SHIFT)) - h->back - sizeof *h;
}

static void boot_free(void *p)
{
	struct boot_hdr *h = (struct boot_hdr *)p - 1;
	char *block = (char *)h - h->back;
	unsigned bin = h->bin;
	if (bin >= BOOT_BINS)
		return; /* not a block of ours after all: keep it */
	boot_lock();
	*(void **)block = boot_bins[bin];
	boot_bins[bin] = block;
	boot_unlock();
}

/* ---- saying once that we serve from the C library ---- */

static void say_libc(const char *why, int err)
{
	static int said;
	if (__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		return;
	char path[108] = "";
	const char *env = getenv("SHMALLOC_SOCKET");
	if (env && env[0])
		snprintf(path, sizeof path, "%s", env);
	else
		seg_default_socket(path, sizeof path);
	char msg[512];
	extern char *program_invocation_short_name;
	int n = snprintf(msg, sizeof msg,
			 "shmalloc[%ld]: %s: %s %s (%s); it uses the C library's malloc\n",
			 (long)getpid(), program_invocation_short_name ? program_invocation_short_name : "?",
			 why, path, wire_strerror(err));
	if (n > 0)
		(void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

/* A heap call failed with errno e: a daemon gone for good sends the
 * process to the C library; a full heap only this call. */
static void heap_failed(int e)
{
	if (e == ENOMEM || e == EINVAL)
		return;
	int heap = ST_HEAP;
	if (__atomic_compare_exchange_n(&state, &heap, ST_LIBC, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		say_libc("lost the daemon at", e);
}

/* ---- the allocation paths ---- */

static void *libc_alloc(size_t size, size_t align)
{
	if (!real_ready()) {
		errno = ENOMEM;
		return NULL;
	}
	if (align <= 16)
		return real.malloc(size);
	void *p;
	int rc = real.posix_memalign(&p, align, size);
	if (rc != 0) {
		errno = rc;
		return NULL;
	}
	return p;
}

/* Before the constructor and on re-entry: the bootstrap area, then libc. */
static void *early_alloc(size_t size, size_t align)
{
	void *p = boot_alloc(size, align);
	if (p != NULL)
		return p;
	/* Full.  Inside, only once the real functions are known: looking them
	 * up from in here would come back here. */
	if (!inside || __atomic_load_n(&real_state, __ATOMIC_ACQUIRE) == REAL_DONE)
		return libc_alloc(size, align);
	errno = ENOMEM;
	return NULL;
}

/* align: a power of two; 16 or less is malloc's. */
static void *alloc(size_t size, size_t align)
{
	if (inside || get_state() == ST_EARLY)
		return early_alloc(size, align);
	if (get_state() == ST_HEAP) {
		int e = errno;
		inside = 1;
		void *p = align <= 16 ? shma_malloc(size) : shma_aligned_alloc(align, size);
		inside = 0;
		if (likely(p != NULL))
			return p;
		heap_failed(errno);
		errno = e;
	}
	return libc_alloc(size, align);
}

/* The bytes usable at p, which its owner says; 0 for a heap pointer that is
 * not a block's start. */
static size_t usable(void *p)
{
	if (boot_owns(p))
		return boot_usable(p);
	if (map_owns(p))
		return shma_usable_size(p);
	return real_ready() ? real.usable(p) : 0;
}

/* 1 where malloc and free may try the library's fast path first: the heap
 * serves and no call of ours runs in this thread (a re-entry may come from
 * the middle of a slow path that is changing this thread's cache). */
static inline int fast_ok(void)
{
	return likely(!inside) && likely(__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_HEAP);
}

PRELOAD_EXPORT void *malloc(size_t size)
{
	if (fast_ok()) {
		void *p = fast_malloc(size);
		if (likely(p != NULL))
			return p;
	}
	return alloc(size, 16);
}

/* free() past its fast path: whose p is, then the way back to its owner. */
static __attribute__((noinline)) void free_slow(void *p)
{
	if (p == NULL)
		return;
	int e = errno;
	if (boot_owns(p)) {
		boot_free(p);
	} else if (map_owns(p)) {
		/* Re-entrant (under our lock), or with no daemon, or a child's
		 * private copy: the block is dropped, never given back. */
		if (!inside && get_state() == ST_HEAP) {
			inside = 1;
			shma_free(p);
			inside = 0;
		}
	} else if (real_ready()) {
		real.free(p);
	}
	errno = e;
}

/* The fast path first: one range compare owns p for the heap, a page entry
 * and a push free it (fast.h); it touches no errno.  The rest, bootstrap
 * blocks and the C library's included, by free_slow(). */
PRELOAD_EXPORT void free(void *p)
{
	if (fast_ok() && likely(fast_free(p)))
		return;
	free_slow(p);
}

PRELOAD_EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (fast_ok()) {
		void *p = fast_malloc(total);
		if (likely(p != NULL))
			return memset(p, 0, total); /* recycled blocks hold old data */
		int e = errno;
		inside = 1;
		p = shma_calloc(n, size);
		inside = 0;
		if (likely(p != NULL))
			return p;
		heap_failed(errno);
		errno = e;
	}
	if (!inside && get_state() != ST_EARLY && real_ready())
		return real.calloc(n, size);
	void *p = alloc(total, 16);
	if (p != NULL)
		memset(p, 0, total); /* a bootstrap block may be a recycled one */
	return p;
}

PRELOAD_EXPORT void *realloc(void *p, size_t size)
{
	if (p == NULL)
		return malloc(size);
	if (size == 0) {
		free(p);
		return NULL;
	}
	if (!boot_owns(p) && !map_owns(p)) {
		if (real_ready())
			return real.realloc(p, size);
		errno = ENOMEM;
		return NULL;
	}
	int heap = !boot_owns(p) && !inside && get_state() == ST_HEAP;
	if (heap) {
		int e = errno;
		inside = 1;
		void *q = shma_realloc(p, size);
		inside = 0;
		if (likely(q != NULL))
			return q;
		heap_failed(errno);
		errno = e;
	}
	size_t old = usable(p);
	/* A child's inherited block: the page map it reads is the daemon's
	 * of now, not of the fork, so the size may be wrong; what it copies is
	 * its own copy of the heap, readable to its end, and size bytes from p
	 * keep whatever the block held. */
	char *end = __atomic_load_n(&fork_copy_end, __ATOMIC_RELAXED);
	if (get_state() == ST_FORKED && !boot_owns(p) && (char *)p < end)
		old = (size_t)(end - (char *)p);
	if (old == 0) {
		errno = EINVAL;
		return NULL;
	}
	if (boot_owns(p) && size <= old)
		return p;
	void *q = alloc(size, 16);
	if (q == NULL)
		return NULL;
	memcpy(q, p, size < old ? size : old);
	free(p);
	return q;
}

PRELOAD_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

static int pow2(size_t a)
{
	return a != 0 && (a & (a - 1)) == 0;
}

PRELOAD_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (!pow2(align) || align % sizeof(void *) != 0)
		return EINVAL;
	int e = errno;
	void *p = alloc(size, align);
	int rc = p ? 0 : errno ? errno : ENOMEM;
	errno = e;
	if (p == NULL)
		return rc;
	*out = p;
	return 0;
}

PRELOAD_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (!pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return alloc(size, align);
}

PRELOAD_EXPORT void *memalign(size_t align, size_t size)
{
	/* As glibc: an alignment that is not a power of two is rounded up. */
	if (align > ((size_t)1 << 62)) {
		errno = EINVAL;
		return NULL;
	}
	size_t a = 16;
	while (a < align)
		a <<= 1;
	return alloc(size, a);
}

PRELOAD_EXPORT void *valloc(size_t size)
{
	return alloc(size, PAGE);
}

PRELOAD_EXPORT void *pvalloc(size_t size)
{
	size_t rounded = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
	if (rounded < size) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc(rounded ? rounded : PAGE, PAGE);
}

PRELOAD_EXPORT size_t malloc_usable_size(void *p)
{
	return p == NULL ? 0 : usable(p);
}

/* ---- fork ---- */

/* The parent copies, before the fork: its page table has the pages (no
 * fault to read them), nobody waits for a child to be scheduled, and the
 * kernel shares the copy with the child for free.  Whether the heap serves
 * or the process went over to the C library (it lost its daemon): the
 * blocks it holds are in the shared segment either way (issue 21 case 9:
 * the child of a process on the C library overwrote its parent's blocks).
 * A child of fork() (ST_FORKED) has its copy already, private: fork()
 * copies it as any memory.  fork_copying tells the child handler what the
 * prepare handler did, whatever the state says by then. */
static int fork_copying;
static int fork_err; /* the copy's first failure, a negative errno */

static void fork_prepare(void)
{
	int s = get_state();
	fork_copying = (s == ST_HEAP || s == ST_LIBC) && !share_fork;
	if (!fork_copying)
		return;
	int e = errno;
	fork_err = fork_copy_heap();
	errno = e;
}

static void fork_parent(void)
{
	int e = errno;
	fork_drop_copies(); /* the child's stay its own */
	errno = e;
}

static void fork_child(void)
{
	int e = errno;
	boot_locked = 0;
	if (fork_copying) {
		int rc = fork_place_copies(&fork_copy_end);
		if (rc == 0)
			rc = fork_err;
		fork_copying = 0;
		state = ST_FORKED;
		if (rc != 0) {
			char msg[160];
			int n = snprintf(msg, sizeof msg,
					 "shmalloc[%ld]: fork: cannot copy the heap (%s): this "
					 "child shares its parent's blocks\n",
					 (long)getpid(), strerror(-rc));
			if (n > 0)
				(void)!write(2, msg, (size_t)n);
		}
	}
	errno = e;
}

/* ---- start ---- */

__attribute__((constructor)) static void preload_init(void)
{
	int e = errno;
	inside = 1;
	real_ready();
	const char *s = getenv("SHMALLOC_SHARE_FORK");
	share_fork = s && s[0] && strcmp(s, "0") != 0;
	/* Before the library's own handlers: ours run last before the fork
	 * (with the connection's lock held) and first after it. */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	/* A region: what the process still holds goes when it ends, and its
	 * pages come on first touch.  Not with --share-fork: there a child's
	 * blocks are meant to outlive it in its parent or siblings (a worker
	 * pool), and a daemonizing parent's in its child, so no process's end
	 * may take them: they stay until freed, as a library client's do. */
	if (!share_fork)
		conn_set_region();
	connerr_quiet(); /* say_libc() says it, and what the process does then */
	int rc = shma_connect(NULL);
	inside = 0;
	__atomic_store_n(&state, rc == 0 ? ST_HEAP : ST_LIBC, __ATOMIC_RELEASE);
	if (rc != 0)
		say_libc("no daemon at", rc);
	errno = e;
}
