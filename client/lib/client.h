/*
 * libshmalloc's insides: what the files of client/ share.
 *
 * conn.c   the one connection of the process to the daemon, under a mutex
 * maps.c   the address space: arenas at fixed offsets of one reserved range,
 *          large blocks in a table; ref <-> pointer both ways
 * tcache.c per-thread caches in the control block; the fast path
 * api.c    the public functions of shmalloc.h
 * pballoc.c protobuf-c's allocator: a bump arena, never the process's malloc
 *
 * Nothing here calls malloc(3): the library must be able to stand in for it.
 */
#ifndef SHMA_CLIENT_H
#define SHMA_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "ref.h"
#include "shmalloc.pb-c.h"

#define SHMA_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- the process's view of the heap (maps.c) ---- */
struct heap_view {
	char *va_base;            /* arena i lives at va_base + (i << arena_shift) */
	uint64_t va_size;
	uint64_t arena_size;
	unsigned arena_shift;
	uint32_t max_arenas;
	uint64_t meta_bytes;
	uint64_t page_map_off;
	uint64_t large_threshold; /* requests this big go to their own segment */
	char instance[SHMA_INSTANCE_MAX];
	uint8_t *arena_mapped;    /* one byte per arena id */
};

extern struct heap_view map_view SHMA_HIDDEN;

static inline void *map_arena_ptr(uint64_t ref)
{
	return map_view.va_base + ((uint64_t)ref_id(ref) << map_view.arena_shift) +
	       ref_offset(ref);
}

/* Sets up the view after a handshake (reserving address space the first
 * time); -EPROTO if the daemon's geometry differs from the one we mapped. */
SHMA_HIDDEN int map_setup(const Shma__HelloReply *h);
/* Maps arena id if it is not yet; 0 or a negative errno. */
SHMA_HIDDEN int map_arena(uint32_t id);
/* Pointer -> ref for a small object (start of it), or 0. *cls gets its class. */
SHMA_HIDDEN uint64_t map_small_ref(const void *p, unsigned *cls, int interior);
/* Large blocks: remember a mapping, find one, forget one. */
SHMA_HIDDEN void *map_large(uint64_t ref, uint64_t size, size_t align);
SHMA_HIDDEN int map_large_find(const void *p, uint64_t *ref, size_t *usable, int interior);
SHMA_HIDDEN void map_large_forget(const void *p);
/* The whole mapping of the large block p points into (a linear search). */
SHMA_HIDDEN int map_large_extent(const void *p, char **base, size_t *len);
SHMA_HIDDEN void *map_ref_ptr(uint64_t ref);
/* 1 if p points into the shared heap as this process maps it (the arena
 * range, or the start of a large block held here): the one ownership test of
 * the preload library, a range test once the heap is one range. */
SHMA_HIDDEN int map_owns(const void *p);
/* Calls fn on every mapping of the heap in this process that may hold data,
 * stopping at the first nonzero return, which it returns.  all: any page of
 * it may matter to this process (an arena's metadata, written by the
 * daemon); else only the pages this process touched can hold data of its
 * own (blocks).  Takes no lock: for the child after fork(). */
SHMA_HIDDEN int map_each_mapping(int (*fn)(void *base, size_t len, int all, void *arg),
				 void *arg);
/* In the child after fork(): the map locks, which a thread of the parent may
 * have held, are free again. */
SHMA_HIDDEN void map_fork_child(void);

/* ---- the connection (conn.c) ---- */
SHMA_HIDDEN int conn_ensure(void);             /* connect if needed; 0 or -errno */
SHMA_HIDDEN void conn_lock(void);
SHMA_HIDDEN void conn_unlock(void);
/* With the lock held: sends req and waits for its response, *resp valid until
 * conn_done().  0, or a negative errno (the daemon's Error code too). */
SHMA_HIDDEN int conn_call(Shma__Request *req, Shma__Response **resp);
/* With the lock held: sends req and does not wait; returns its id or 0. */
SHMA_HIDDEN uint64_t conn_send(Shma__Request *req);
/* With the lock held: waits for the response to an id sent earlier. */
SHMA_HIDDEN int conn_wait(uint64_t id, Shma__Response **resp);
SHMA_HIDDEN void conn_done(Shma__Response *resp);
SHMA_HIDDEN struct control_block *conn_control(void);
/* Changes when the control block changes: a new connection, but not a
 * reconnection that re-adopted the block (thread slots stay valid). */
SHMA_HIDDEN uint64_t conn_generation(void);
/* 1 if request id was sent on the current connection (its answer may come). */
SHMA_HIDDEN int conn_id_current(uint64_t id);
/* With the lock held: 1 if an answer is there to read without waiting. */
SHMA_HIDDEN int conn_readable(void);
SHMA_HIDDEN int conn_connected(void);
SHMA_HIDDEN void conn_close(int goodbye);
SHMA_HIDDEN int conn_set_path(const char *path); /* NULL: the default */

/* ---- protobuf-c's allocator (pballoc.c) ---- */
SHMA_HIDDEN ProtobufCAllocator *pballoc_get(void);
SHMA_HIDDEN void pballoc_reset(void);

/* ---- thread caches (tcache.c) ---- */
SHMA_HIDDEN void *tcache_alloc_slow(unsigned cls);
SHMA_HIDDEN void tcache_free_slow(unsigned cls, uint64_t ref);
SHMA_HIDDEN void tcache_flush_all(void);   /* this thread's caches */
SHMA_HIDDEN void tcache_forget(void);      /* after fork: drop, never flush */

struct tcache {
	struct control_slot *slot; /* in the control block */
	uint64_t generation;       /* conn_generation() when the slot was taken */
	uint64_t cached_bytes;
	unsigned index;            /* of the slot */
	uint16_t batch[SIZECLASS_COUNT];
	uint16_t low[SIZECLASS_COUNT]; /* see tcache_low() */
	uint64_t last_refill_ns[SIZECLASS_COUNT];
	uint64_t pending[SIZECLASS_COUNT]; /* id of a refill asked ahead of need */
};

/* The calling thread's cache, NULL until its first allocation. */
extern __thread struct tcache *tcache_self
	__attribute__((tls_model("initial-exec"))) SHMA_HIDDEN;

/* A class's cache flushes half past this count (2 x its batch cap). */
extern uint16_t tcache_high[SIZECLASS_COUNT] SHMA_HIDDEN;

/* At or below this count the next allocation of the class takes the slow
 * path, which asks for a refill ahead of need and then sets it to 0, so the
 * fast path goes on until the bin is empty and the refill is collected. */
static inline uint32_t tcache_low(const struct tcache *t, unsigned cls)
{
	return t->low[cls];
}

#endif
