/* SPDX-License-Identifier: MIT */
/*
 * Debug mode and tool integration: see debug.h.
 *
 * A block in debug mode is laid out as
 *     [ user bytes (n) | canary (8) | ... | trailer (8) ]
 * inside a block of the class that fits n + 16: the trailer, in the block's
 * last 8 bytes, holds n tagged with DEBUG_TAG, so that any process in debug
 * mode can check the canary of a block another process allocated, and a
 * block allocated without debug mode (no tag) is left unchecked rather than
 * misjudged.  A freed block is filled with 0xDD and carries the freed mark
 * of freecheck.h in its second word (the caches keep refs, never a link in the
 * block); check_free() judges every free, as without debug mode.
 *
 * Nothing here calls malloc: the table of live blocks (for the leak report)
 * is a table (shm/table.h) of pointer -> size in memory from prim_alloc(),
 * under a mutex -- debug mode trades speed for answers.
 */
#include "config.h"

#include "freecheck.h"
#include "debug.h"
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif

#define DEBUG_TAG UINT64_C(0x5348410000000000) /* "SHA" in the top 24 bits */
#define DEBUG_SIZE_MASK ((UINT64_C(1) << 40) - 1)
#define DEBUG_EXTRA 16
#define CANARY UINT64_C(0xC5C5C5C5C5C5C5C5)
#define LIVE_HANDED_ON (UINT64_C(1) << 63)

/* AddressSanitizer, when the program was built with it. */
void __asan_poison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));
void __asan_unpoison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));

int debug_flags;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int trace_fd = -1;

/* Blocks this process allocated and has not freed: key the address, value
 * the size requested, with LIVE_HANDED_ON once shma_ref saw it. */
static struct {
	pthread_mutex_t lock;
	struct table t;
	int ready;
} live = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void report(const char *kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(const char *kind, const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof line, "shmalloc[%ld]: %s: ", (long)getpid(), kind);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

/* ---- the table of live blocks ---- */

static void *live_mem(size_t bytes, void *ctx)
{
	(void)ctx;
	return prim_alloc(bytes);
}

static void live_mem_free(void *p, size_t bytes, void *ctx)
{
	(void)ctx;
	prim_free(p, bytes);
}

/* With the lock held. */
static struct table *live_table(void)
{
	if (!live.ready) {
		table_init_growing(&live.t, live_mem, live_mem_free, NULL);
		live.ready = 1;
	}
	return &live.t;
}

static void live_add(uintptr_t p, uint64_t size)
{
	pthread_mutex_lock(&live.lock);
	struct table_entry *e = table_insert(live_table(), p, NULL);
	if (e != NULL)
		e->value = size; /* no memory: the block goes unwatched */
	pthread_mutex_unlock(&live.lock);
}

static void live_remove(uintptr_t p)
{
	pthread_mutex_lock(&live.lock);
	table_remove(live_table(), p);
	pthread_mutex_unlock(&live.lock);
}

void debug_handed_on(const void *p)
{
	if (!(debug_flags & DEBUG_CHECKS))
		return;
	pthread_mutex_lock(&live.lock);
	struct table_entry *e = table_find(live_table(), (uintptr_t)p);
	if (e != NULL)
		e->value |= LIVE_HANDED_ON;
	pthread_mutex_unlock(&live.lock);
}

static int by_size(const void *a, const void *b)
{
	const struct table_entry *x = a, *y = b;
	return x->value < y->value ? -1 : x->value > y->value;
}

/* At exit: what this process allocated and neither freed nor handed on.
 * The report sorts the table's entries in place, then empties it. */
static void leak_report(void)
{
	pthread_mutex_lock(&live.lock);
	struct table *t = live_table();
	struct table_entry *v = t->e;
	size_t k = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (v[i].key && !(v[i].value & LIVE_HANDED_ON)) {
			v[k++] = v[i]; /* compacts in place: k <= i */
			bytes += v[i].value;
		}
	if (k > 0) {
		qsort(v, k, sizeof *v, by_size);
		report("leak", "%zu blocks, %llu bytes, allocated here and never freed or handed on",
		       k, (unsigned long long)bytes);
		for (size_t i = 0; i < k;) {
			size_t j = i;
			while (j < k && v[j].value == v[i].value)
				j++;
			report("leak", "  %zu x %llu bytes (first at %p, ref %#llx)", j - i,
			       (unsigned long long)v[i].value, (void *)(uintptr_t)v[i].key,
			       (unsigned long long)api_ref((void *)(uintptr_t)v[i].key));
			i = j;
		}
	}
	table_clear(t);
	pthread_mutex_unlock(&live.lock);
}

/* ---- trace ---- */

static void trace(char op, const void *p, uint64_t size)
{
	char line[96];
	int n;
	if (op == '+')
		n = snprintf(line, sizeof line, "+ %#llx %llu %ld\n",
			     (unsigned long long)api_ref(p), (unsigned long long)size, (long)getpid());
	else
		n = snprintf(line, sizeof line, "- %#llx %ld\n", (unsigned long long)api_ref(p),
			     (long)getpid());
	ssize_t w = write(trace_fd, line, (size_t)n);
	(void)w;
}

/* ---- init ---- */

static void init(void)
{
	int flags = 0;
	const char *d = getenv("SHMALLOC_DEBUG");
	if (d != NULL && d[0] != '\0' && strcmp(d, "0") != 0)
		flags |= DEBUG_CHECKS;
	const char *t = getenv("SHMALLOC_TRACE");
	if (t != NULL && t[0] != '\0') {
		trace_fd = open(t, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (trace_fd >= 0)
			flags |= DEBUG_TRACE;
		else
			report("trace", "cannot open %s: %s", t, strerror(errno));
	}
#ifdef HAVE_VALGRIND_VALGRIND_H
	if (RUNNING_ON_VALGRIND)
		flags |= DEBUG_VALGRIND;
#endif
	if (__asan_poison_memory_region != NULL && __asan_unpoison_memory_region != NULL)
		flags |= DEBUG_ASAN;
	if (flags & DEBUG_CHECKS)
		atexit(leak_report);
	__atomic_store_n(&debug_flags, flags, __ATOMIC_RELEASE);
}

void debug_init(void)
{
	pthread_once(&init_once, init);
}

/* ---- tools ---- */

static void tools_alloc(void *p, size_t n, size_t usable)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (debug_flags & DEBUG_VALGRIND) {
		VALGRIND_MAKE_MEM_UNDEFINED(p, usable);
		VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, 0);
	}
#endif
	if (debug_flags & DEBUG_ASAN)
		__asan_unpoison_memory_region(p, n);
	(void)usable;
}

static void tools_free(void *p, size_t usable)
{
	unsigned cls;
	uint64_t ref = map_small_ref(p, &cls, 0);
	/* A named heap's block goes to the thread's cache of that heap, whose
	 * pop (shma_heap_malloc(), no debug path of its own) writes the freed
	 * mark into it: left accessible, as a large block is. */
	int small = ref != 0 && !heap_page(ref);
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (debug_flags & DEBUG_VALGRIND) {
		VALGRIND_FREELIKE_BLOCK(p, 0);
		if (small)
			VALGRIND_MAKE_MEM_NOACCESS(p, usable);
	}
#endif
	/* A large block's pages may be any block of any process next, which
	 * this process may reach by a raw pointer: ASan's shadow must not stay
	 * poisoned for them. */
	if (debug_flags & DEBUG_ASAN) {
		if (small)
			__asan_poison_memory_region(p, usable);
		else
			__asan_unpoison_memory_region(p, usable);
	}
}

void debug_received(void *p)
{
	if (!(debug_flags & (DEBUG_VALGRIND | DEBUG_ASAN)))
		return;
	unsigned cls;
	uint64_t ref = map_small_ref(p, &cls, 1);
	char *start;
	size_t usable;
	if (ref != 0) {
		start = map_ptr(ref);
		usable = sizeclass_size(cls);
	} else if (!map_large_block(p, &ref, &start, &usable)) {
		return;
	}
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (debug_flags & DEBUG_VALGRIND)
		VALGRIND_MAKE_MEM_DEFINED(start, usable);
#endif
	if (debug_flags & DEBUG_ASAN)
		__asan_unpoison_memory_region(start, usable);
}

/* ---- the checked allocation ---- */

static uint64_t *trailer_of(void *p, size_t usable)
{
	return (uint64_t *)((char *)p + usable - sizeof(uint64_t));
}

/* The size the program asked for, if p was allocated in debug mode. */
static int requested(void *p, size_t usable, uint64_t *n)
{
	if (usable < DEBUG_EXTRA)
		return 0;
	uint64_t t;
	memcpy(&t, trailer_of(p, usable), sizeof t);
	if ((t & ~DEBUG_SIZE_MASK) != DEBUG_TAG || (t & DEBUG_SIZE_MASK) + DEBUG_EXTRA > usable)
		return 0;
	*n = t & DEBUG_SIZE_MASK;
	return 1;
}

void *debug_malloc(size_t size, size_t align)
{
	if (!(debug_flags & DEBUG_CHECKS)) {
		void *p = api_alloc(size, align);
		if (p != NULL) {
			/* The whole usable size is the program's (malloc_usable_size
			 * says so, and realloc copies it). */
			size_t usable = api_usable_size(p);
			tools_alloc(p, usable, usable);
			check_fresh(p);
			if (debug_flags & DEBUG_TRACE)
				trace('+', p, size);
		}
		return p;
	}
	if (size > DEBUG_SIZE_MASK - DEBUG_EXTRA) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = api_alloc(size + DEBUG_EXTRA, align);
	if (p == NULL)
		return NULL;
	size_t usable = api_usable_size(p);
	tools_alloc(p, usable, usable); /* our own writes below */
	check_fresh(p); /* a stale mark where the bytes below do not reach */
	memset(p, 0xAB, size);
	uint64_t canary = CANARY, t = DEBUG_TAG | size;
	memcpy((char *)p + size, &canary, sizeof canary);
	memcpy(trailer_of(p, usable), &t, sizeof t);
	live_add((uintptr_t)p, size);
	if (debug_flags & DEBUG_TRACE)
		trace('+', p, size);
	return p;
}

static void checked_free(void *p, size_t usable)
{
	uint64_t n;
	if (requested(p, usable, &n)) {
		uint64_t canary;
		memcpy(&canary, (char *)p + n, sizeof canary);
		if (canary != CANARY)
			report("overflow", "block %p (ref %#llx, %llu bytes) was written past its end; "
			       "found on free by pid %ld", p, (unsigned long long)api_ref(p),
			       (unsigned long long)n, (long)getpid());
	}
	live_remove((uintptr_t)p);
	memset(p, 0xDD, usable);
}

int debug_check(void *p, const char *what)
{
	void *w = (uint64_t *)p + CHECK_MARK_WORD;
	/* Only a word of a block of the heap: another's are none of the
	 * tools' business (and check_free() reads no mark off a block). */
	if (api_usable_size(p) != 0) {
#ifdef HAVE_VALGRIND_MEMCHECK_H
		if (debug_flags & DEBUG_VALGRIND)
			VALGRIND_MAKE_MEM_DEFINED(w, sizeof(uint64_t));
#endif
		if (debug_flags & DEBUG_ASAN)
			__asan_unpoison_memory_region(w, sizeof(uint64_t));
	}
	return check_free(p, what, CHECK_READ_MARK);
}

void debug_free(void *p)
{
	if (p == NULL)
		return;
	/* Out of the heap, inside a block, freed already: judged before our
	 * own reads and writes of the block. */
	if (!debug_check(p, "free"))
		return;
	size_t usable = api_usable_size(p);
	if (usable == 0)
		return;
	if (debug_flags & DEBUG_CHECKS) {
#ifdef HAVE_VALGRIND_MEMCHECK_H
		if (debug_flags & DEBUG_VALGRIND)
			VALGRIND_MAKE_MEM_DEFINED(p, usable); /* our checks read it */
#endif
		if (debug_flags & DEBUG_ASAN)
			__asan_unpoison_memory_region(p, usable);
		checked_free(p, usable);
	}
	check_mark(p); /* after the canary is read, over the poison */
	if (debug_flags & DEBUG_TRACE)
		trace('-', p, 0);
	tools_free(p, usable);
	api_free(p);
}

size_t debug_usable_size(const void *p)
{
	size_t usable = api_usable_size(p);
	uint64_t n;
	if ((debug_flags & DEBUG_CHECKS) && usable && requested((void *)p, usable, &n))
		return n;
	return usable;
}
