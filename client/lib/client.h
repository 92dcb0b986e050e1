/* SPDX-License-Identifier: MIT */
/*
 * libshmalloc's insides: what the files of client/ share.
 *
 * call.c   the typed calls to the daemon (call.h): refill, flush, large
 *          blocks, roots, stats, goodbye -- with the connection's files the
 *          only ones that build a request or read an answer
 * transport.c, handshake.c, control.c  the one connection of the process
 *          to the daemon, under a mutex: frames, ids and deadlines; connect,
 *          Hello, reconnect and salvage; the control block (conn.h)
 * peer.c   which daemon to trust
 * maps.c   the heap mapped whole, at its base; ref <-> pointer both ways
 * tcache.c per-thread caches in the control block; the fast path
 * xfer.c   the transfer cache: batches between a process's threads (xfer.h)
 * api.c    the public functions of shmalloc.h
 * largecache.c freed large blocks kept for reuse, in the control block
 * pballoc.c protobuf-c's allocator: a bump arena, never the process's malloc
 * prim.c   the one primitive for the library's own memory (anonymous pages)
 * stats_json.c the daemon's stats (call.c fetches them) written as JSON
 *
 * This is the one header through which code outside client/lib/ (the CLI,
 * the tests) reaches the library's insides.  It brings the wire contract
 * (wire.h: caps, builders, the error table) and the calls (call.h) with it.
 *
 * Nothing here calls malloc(3): the library must be able to stand in for it.
 */
#ifndef SHMA_CLIENT_H
#define SHMA_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "clock.h"
#include "layout.h"
#include "ref.h"
#include "shmalloc.pb-c.h"
#include "wire.h"

#define SHMA_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- the process's view of the heap (maps.c) ---- */
struct heap_view {
	char *base;               /* 'p' mapped here: block of ref r at base + r */
	/* The fast path's one bound each way (map_fast_update()), 0 while
	 * debug mode is on or nothing is mapped, so that one compare sends
	 * every other case to the slow path: free(p) is fast if p - base is
	 * below free_limit (the arenas seen made), malloc(n) if n is below
	 * malloc_limit (the large threshold). */
	uint64_t free_limit;
	uint64_t malloc_limit;
	/* The page entry of offset off is at page_maps + (off >> PAGE_SHIFT) *
	 * sizeof entry + (off >> arena_shift) * pm_gap: one arena's metadata
	 * less its page map's bytes (see map_fast_entry()). */
	uint64_t pm_gap;
	uint64_t range;
	/* range - 1 (0 unmapped): a ref popped is 0 < ref < range, that is
	 * ref - 1 < pop_limit (fast.h). */
	uint64_t pop_limit;
	uint64_t heap_base;       /* the instance's base (== base when same_address) */
	int same_address;
	const char *meta;         /* 'M', mapped read-only */
	uint64_t meta_size;
	const struct heap_header *hdr;
	uint64_t arena_size;
	unsigned arena_shift;
	uint32_t max_arenas;
	uint64_t meta_bytes;
	uint64_t page_map_off;
	const char *page_maps;    /* arena 0's page map; arena i's is meta_bytes * i further */
	uint64_t large_threshold; /* requests this big are large blocks */
	uint32_t narenas_seen;    /* arenas known made (the header's count, cached) */
	int valgrind;             /* memcheck is watching: see map_arenas_made() */
	/* The page map flags of the spans this process caches freed objects of
	 * on the fast path: SHMA_PAGE_REGION for a region client (the preload
	 * library's: it allocates from its region only), 0 for a library
	 * client, which hands a region's blocks straight back (free_other()). */
	uint16_t region_flags;
	char instance[SHMA_INSTANCE_MAX];
};

extern struct heap_view map_view SHMA_HIDDEN;

static inline void *map_ptr(uint64_t ref)
{
	return map_view.base + ref;
}

/* Catches up with the arenas the daemon made since: 1 if arena id is made. */
SHMA_HIDDEN int map_arenas_made(uint32_t id);

/* The page entry of the page at offset off, for off below free_limit (an
 * arena seen made): two shifts, a multiply and an add, no branch. */
static inline const struct page_entry *map_fast_entry(uint64_t off)
{
	const char *pm = map_view.page_maps + (off >> map_view.arena_shift) * map_view.pm_gap;
	return (const struct page_entry *)pm + (off >> SHMA_PAGE_SHIFT);
}

/* The page map entry of the page at offset off of the range (off <
 * map_view.range), or NULL if its arena is not made yet. */
static inline const struct page_entry *map_page(uint64_t off)
{
	uint32_t id = (uint32_t)(off >> map_view.arena_shift);
	if (unlikely(id >= map_view.narenas_seen) && !map_arenas_made(id))
		return NULL;
	return map_fast_entry(off);
}

/* 1 if page entry e is no page of a span of small objects. */
#define MAP_ENTRY_NOT_SMALL(e) ((e).kind != PAGE_SPAN || (e).cls >= SIZECLASS_COUNT)
/* 1 unless page entry e is of a span whose freed objects this process
 * caches (a small objects' span of the region_flags it caches): the free
 * path's one test of a page entry.  A macro: under unlikely(), gcc keeps
 * each compare's branch as the fast path wants it, which it did not for
 * an inline function (shma_free() took a branch more). */
#define MAP_ENTRY_UNCACHED(e) (MAP_ENTRY_NOT_SMALL(e) || (e).flags != map_view.region_flags)

/* The class of the small object that starts at p, with *ref its ref; or
 * SIZECLASS_COUNT when p is no small object this process caches of an arena
 * it has seen made (a large block, a pointer out of the range, an arena made
 * since: map_small_ref() says which).  For api_free() (debug mode's free;
 * shma_free() bounds off by free_limit, which is 0 in debug mode): the
 * bound free_limit has outside debug mode, then shma_free()'s test. */
static inline unsigned map_small_class(const void *p, uint64_t *ref)
{
	char *base = map_view.base;
	uint64_t off = (uint64_t)((const char *)p - base);
	if (unlikely(base == NULL ||
		     off >= ((uint64_t)map_view.narenas_seen << map_view.arena_shift)))
		return SIZECLASS_COUNT;
	struct page_entry e = *map_fast_entry(off);
	if (unlikely(MAP_ENTRY_UNCACHED(e)))
		return SIZECLASS_COUNT;
	*ref = off;
	return e.cls;
}

/* Sets free_limit and malloc_limit from what is mapped and seen made (it
 * only raises free_limit, so racing threads leave the highest). */
SHMA_HIDDEN void map_fast_update(void);

/* 1 if the page at off of the range is a region's (a span, or a large block's
 * first page) while this process is no region client: its block goes
 * straight back to the daemon when freed, never into a cache. */
static inline int map_foreign_region(uint64_t off)
{
	const struct page_entry *pe = map_page(off);
	return pe != NULL && (pe->flags & SHMA_PAGE_REGION) && !map_view.region_flags;
}

/* The heap as a Hello reply describes it (handshake.c decodes it). */
struct heap_shape {
	uint64_t arena_size;      /* a power of two */
	uint32_t max_arenas;
	uint64_t range;           /* max_arenas * arena_size bytes of segment 'p' */
	uint64_t base;            /* where every process maps 'p' */
	uint64_t meta_bytes;      /* of each arena's metadata in segment 'M' */
	uint64_t large_threshold;
	const char *instance;
};

/* Maps the heap after the first handshake (checks it is the same heap after
 * a reconnection): 0, or -EPROTO if the daemon's geometry is not one we can
 * use (or differs from the one we mapped), or -errno. */
SHMA_HIDDEN int map_setup(const struct heap_shape *h);

/* The segments' descriptors passed with the Hello (backing.c).  keep: the
 * i-th descriptor of the reply (1 pages, 2 metadata) is ours to hold: 1, or
 * 0 (the caller closes it).  take: the one of kind, or -1; the caller owns
 * it.  note_pages: fd is the pages we map.  same_heap: the pages passed now
 * are those: 0, or -ESTALE (another file), or -EPROTO (cut short: a SIGBUS
 * past the cut).  drop: closes what the handshake left. */
SHMA_HIDDEN int backing_keep(size_t i, int fd);
SHMA_HIDDEN int backing_take(int kind); /* enum seg_kind */
/* The uid's transfer area passed with the Hello, or -1; the caller owns it. */
SHMA_HIDDEN int backing_take_area(void);
SHMA_HIDDEN void backing_note_pages(int fd);
SHMA_HIDDEN int backing_same_heap(void);
SHMA_HIDDEN void backing_drop(void);
/* Pointer -> ref for a small object, or 0.  *cls gets its class.  Not
 * interior: p is taken for an object's start (no check: the daemon checks
 * boundaries when the ref comes back).  Interior: p may point anywhere in a
 * live object and the ref of the object's start is returned. */
SHMA_HIDDEN uint64_t map_small_ref(const void *p, unsigned *cls, int interior);
/* The large block p points into: 1 with *ref (its first page), *start (its
 * address here) and *size set, else 0. */
SHMA_HIDDEN int map_large_block(const void *p, uint64_t *ref, char **start, size_t *size);
/* Ref -> pointer, for a ref into a live block; NULL with errno set. */
SHMA_HIDDEN void *map_ref_ptr(uint64_t ref);
/* 1 if p points into the heap's range in this process: the one ownership
 * test of the preload library, a compare and a subtraction. */
SHMA_HIDDEN int map_owns(const void *p);
/* Calls fn on every mapping of the heap in this process that may hold data,
 * stopping at the first nonzero return, which it returns.  all: any page of
 * it may matter to this process (an arena's metadata, written by the
 * daemon); else only the pages this process touched can hold data of its
 * own (blocks).  Takes no lock: for the child after fork(). */
SHMA_HIDDEN int map_each_mapping(int (*fn)(void *base, size_t len, int all, void *arg),
				 void *arg);

/* ---- the connection (transport.c, handshake.c, control.c) ---- */
/* The requests themselves: call.h.  Every conn_ function but conn_lock()
 * and conn_generation() wants the lock held. */
SHMA_HIDDEN void conn_lock(void);
SHMA_HIDDEN void conn_unlock(void);
SHMA_HIDDEN int conn_ensure(void);             /* connect if needed; 0 or -errno */
SHMA_HIDDEN int conn_connected(void);
SHMA_HIDDEN void conn_close(int goodbye);
SHMA_HIDDEN int conn_set_path(const char *path); /* NULL: the default */
/* Before the first connection: ask for a region in every Hello (the preload
 * library; server/heap/heap.h: Regions). */
SHMA_HIDDEN void conn_set_region(void);
/* With the lock held: should the next conn_ensure() make a new connection,
 * its Hello asks for the first batches of the small classes in the new
 * control block (xfer.c takes them); 0 withdraws the wish. */
SHMA_HIDDEN void conn_want_first_batches(int on);
/* recvmsg() of up to cap bytes from sock: the first descriptor passed with
 * them goes to *keep when keep is not NULL and *keep < 0, every other one is
 * closed.  recvmsg()'s result (-1 with errno). */
SHMA_HIDDEN ssize_t conn_recv(int sock, void *buf, size_t cap, int *keep);
/* A connected Unix stream socket to path (close-on-exec), or -errno. */
SHMA_HIDDEN int conn_open_socket(const char *path);
/* With the lock held: the socket the next connection goes to. */
SHMA_HIDDEN const char *conn_socket_path(void);
/* An answer conn_call() or conn_wait() gave is done with (its memory is
 * reused).  Harmless when there was none. */
SHMA_HIDDEN void conn_done(void);
/* Objects of refills in flight when a daemon died that this process flushed
 * back to the daemon after it (handshake.c's salvage), over its life. */
SHMA_HIDDEN uint64_t conn_salvaged(void);
/* Whether the daemon on fd (connected to path) is one to trust (peer.c):
 * 0, or -EPERM (or getsockopt's errno). */
SHMA_HIDDEN int peer_check(int fd, const char *path);

/* ---- the control block (control.c) ---- */
SHMA_HIDDEN struct control_block *conn_control(void);
/* Reserves backing store for refs [first, first + n) of slot i in the
 * control block, so that a full /dev/shm is an error here and never a SIGBUS
 * later: 0 or -errno. */
SHMA_HIDDEN int conn_reserve_refs(unsigned i, uint32_t first, uint32_t n);
/* Reserves bytes [off, off + len) of the current control block (the
 * transfer cache's entries, xfer.c): 0 or -errno. */
SHMA_HIDDEN int conn_reserve_control(uint64_t off, uint64_t len);
/* Reserves backing store for the headers of slots [from, to) of the control
 * block, those of [0, from) being reserved already (the daemon reserved the
 * first SHMA_CONTROL_SLOTS_RESERVED): 0 or -errno.  Before slots_taken is
 * raised to to. */
SHMA_HIDDEN int conn_reserve_slot_headers(uint32_t from, uint32_t to);
/* Changes when the control block changes: a new connection, but not a
 * reconnection that re-adopted the block (thread slots stay valid). */
SHMA_HIDDEN uint64_t conn_generation(void);

/* ---- large blocks this process keeps (largecache.c), lock held ---- */
SHMA_HIDDEN void lcache_set_decay(uint64_t decay_ms);
/* A large block we allocated (the only kind we may keep when freed). */
SHMA_HIDDEN void lcache_note_mine(uint64_t ref);
/* A kept block of need to 2 * need bytes: its ref (*size its size), or 0. */
SHMA_HIDDEN uint64_t lcache_take(uint64_t need, uint64_t *size);
/* Keeps a freed block: 1 if kept, 0 if it must go back to the daemon. */
SHMA_HIDDEN int lcache_put(uint64_t ref, uint64_t size);
/* Gives back what was kept longer than the decay / everything. */
SHMA_HIDDEN void lcache_expire(void);
SHMA_HIDDEN void lcache_flush(void);
/* After fork: the parent's blocks are not ours to keep. */
SHMA_HIDDEN void lcache_forget(void);

/* ---- the clock: shm/clock.h's monotonic_ns()/monotonic_ms(), on slow paths only ---- */

/* ---- memory for the library's own use (prim.c) ---- */
/* len > 0 zeroed, page-aligned bytes of private anonymous memory, committed
 * as touched; NULL with errno ENOMEM.  prim_free() takes what prim_alloc()
 * gave, with the same len (NULL: nothing), and keeps errno. */
SHMA_HIDDEN void *prim_alloc(size_t len);
SHMA_HIDDEN void prim_free(void *p, size_t len);

/* ---- protobuf-c's allocator (pballoc.c) ---- */
SHMA_HIDDEN ProtobufCAllocator *pballoc_get(void);
SHMA_HIDDEN void pballoc_reset(void);

/* ---- thread caches (tcache.c) ---- */
SHMA_HIDDEN void *tcache_alloc_slow(unsigned cls);
/* Connects a process that never was, for a first malloc of class cls: the
 * calling thread takes its slot and the class's first refill is on its way
 * (asked behind the Hello).  0, or -1 with errno set. */
SHMA_HIDDEN int tcache_connect(unsigned cls);
SHMA_HIDDEN void tcache_free_slow(unsigned cls, uint64_t ref);
/* ---- named heaps (heap.c) ---- */
/* 1 if the page at off of the range is a named heap's block's. */
SHMA_HIDDEN int heap_page(uint64_t off);
/* A free of small object ref of class cls: 1 if it was a named heap's
 * (placed: this thread's cache of that heap, or straight back), else 0. */
SHMA_HIDDEN int heap_free_hook(uint64_t ref, unsigned cls);
/* heap_free_fast(): heapfast.h. */
/* Hands one object straight back to the daemon (a Flush nobody waits for). */
SHMA_HIDDEN void tcache_free_direct(uint64_t ref);
SHMA_HIDDEN void tcache_flush_all(void);   /* this thread's caches */
SHMA_HIDDEN void tcache_forget(void);      /* after fork: drop, never flush */

/* What the fast path reads of one bin besides its count (which stays in
 * the shared slot, where the daemon reads it): one 16-byte entry, so that
 * a malloc or a free touches one line of the thread's own memory and one
 * of the slot, and indexes both with the same shift. */
struct tcache_hot {
	uint64_t *stack; /* the bin's refs in the slot */
	uint16_t low;    /* see tcache_low() */
	/* A free finds room in the bin below this count: 0 until the bin's
	 * refs are reserved (tcache.c), then the bin's high water (twice
	 * its largest batch, within the layout's capacity). */
	uint16_t room;
	/* room - low (low <= room always), so that the fast path's bound of a
	 * count the daemon can write, low < n <= room, is one subtract and a
	 * compare: n - low - 1 < reach.  tcache.c's set_low()/set_room(). */
	uint32_t reach;
};

struct tcache {
	struct control_slot *slot; /* in the control block */
	struct tcache_hot hot[SIZECLASS_COUNT];
	uint64_t generation;       /* conn_generation() when the slot was taken */
	unsigned index;            /* of the slot */
	uint16_t batch[SIZECLASS_COUNT];
	uint64_t last_refill_ns[SIZECLASS_COUNT];
	uint64_t pending[SIZECLASS_COUNT]; /* call_ticket of a refill asked ahead of need */
};

/* The calling thread's cache, NULL until its first allocation. */
extern __thread struct tcache *tcache_self
	__attribute__((tls_model("initial-exec"))) SHMA_HIDDEN;

/* At or below this count the next allocation of the class takes the slow
 * path, which asks for a refill ahead of need and then sets it to 0, so the
 * fast path goes on until the bin is empty and the refill is collected. */
static inline uint32_t tcache_low(const struct tcache *t, unsigned cls)
{
	return t->hot[cls].low;
}

/* A bin of *count objects, n of them (n below its room): ref goes on top
 * of its stack.  The ref is in the array before the count says so (the
 * daemon reads no further than the count).  The one push: the fast path's
 * and the slow path's. */
static inline void tcache_push(uint32_t *count, uint64_t *stack, uint32_t n, uint64_t ref)
{
	stack[n] = ref;
	__atomic_store_n(count, n + 1, __ATOMIC_RELEASE);
}

/* A bin of *count objects, n > 0 of them: the top one, taken.  The one pop. */
static inline void *tcache_pop(uint32_t *count, const uint64_t *stack, uint32_t n)
{
	*count = --n;
	return map_ptr(stack[n]);
}

/* The typed calls and the raw requests, for the CLI and the tests too. */
#include "call.h"

#endif
