/* SPDX-License-Identifier: MIT */
/*
 * The heap: arenas, their page heaps, spans and the central free lists.
 *
 * The daemon is the only writer of allocation metadata.  The heap is one
 * range of pages (segment 'p') and one of metadata (segment 'M') laid out as
 * shm/layout.h says, arenas made in it on demand; the heap keeps in its own (private)
 * memory the indexes it needs to be fast -- free runs by size, partial spans
 * by class -- and writes to the shared metadata (page map, object bitmaps)
 * everything a restarted daemon needs to rebuild them.  A bit set in a span's
 * bitmap means the object is out: in a client's cache or in use.
 *
 * No function here does socket I/O or knows about clients; every function is
 * bounded work in the size of its arguments (refill: the batch; flush: the
 * refs), never in the size of the heap.
 */
#ifndef SHMA_SERVER_HEAP_H
#define SHMA_SERVER_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "sizeclass.h"

struct heap_config {
	const char *instance;     /* segment names: /shmalloc.<instance>.... */
	uint64_t arena_size;      /* power of two, >= SHMA_MIN_ARENA_SIZE */
	uint64_t max_memory;      /* arenas, bytes; 0: no cap but SHMA_DEFAULT_RANGE */
	uint64_t base;            /* where clients map the heap; 0: as recorded, or
				   * at the first start a default from the name */
	mode_t mode;              /* of every segment created */
	uint64_t decay_ms;        /* free pages idle longer than this go back to the OS */
	char *why;                /* may be NULL: heap_open() says here why it failed */
	size_t why_size;
	/* May be NULL: called once when an arena is quarantined (below), in
	 * recovery or at run time, with its id and why. */
	void (*on_quarantine)(void *arg, unsigned arena, const char *why);
	void *on_quarantine_arg;
};

/*
 * Quarantine.  Segment 'M' is shared memory: whatever the daemon reads from
 * it (a page map entry, a bit) is checked against the daemon's own state
 * before it is used, and an arena whose metadata turns out inconsistent --
 * in recovery (a page of unknown kind, metadata pages not marked, a span or
 * large block whose pages disagree while objects of it are out) or at run
 * time (a page map entry naming no span of the daemon's, a bit set that the
 * daemon never set) -- is quarantined: nothing new comes from it (refills
 * skip its spans, its free pages are never handed out), what is out stays
 * out (frees of its objects and blocks are refused with -EUCLEAN), and the
 * rest of the heap serves on.  Stats say so per arena; on_quarantine is
 * called once.  A quarantine lasts as long as the daemon; a restart checks
 * the arena again.
 */

struct heap_run {
	uint64_t first; /* ref of the first object */
	uint32_t count;
};

/* Where heap_refill() puts what it hands out; the caller owns the arrays. */
struct heap_batch {
	uint64_t *refs;
	uint32_t nrefs, refs_cap;
	struct heap_run *runs;
	uint32_t nruns, runs_cap;
};

struct heap_class_stats {
	uint64_t spans, objects_out, objects_total;
	uint64_t refills; /* heap_refill() calls that handed something out */
	uint64_t flushes; /* objects taken back by heap_free_object() */
};

struct heap_arena_stats {
	uint32_t id;
	uint64_t size, pages, free_pages, span_pages, largest_free_run, resident_bytes;
	uint32_t quarantined; /* 1: see "Quarantine" above */
};

struct heap_totals {
	uint64_t mapped_bytes;      /* arenas made */
	uint64_t resident_bytes;    /* backing store held in /dev/shm */
	uint64_t in_use_bytes;      /* objects out (class size) + large blocks */
	uint64_t peak_in_use_bytes;
	uint64_t returned_bytes;    /* punched by decay, total */
	uint64_t large_count, large_bytes;
	uint64_t free_pages, largest_free_run; /* over all arenas, pages */
	uint32_t narenas;
};

struct heap;

/*
 * Opens the heap of the instance: recovers it from the segments an earlier
 * daemon left (server/heap/recovery.c), else creates them with its first
 * arena.  Recovery rebuilds the free runs, spans, partial lists and
 * counters from each arena's page map and bitmaps: every object whose bit is
 * set stays out, nothing else is.  0 or a negative errno: -EINVAL for an
 * invalid instance name or arena size, or a max_memory (other than 0) below
 * one arena; -EBUSY if another daemon holds the instance; -EINVAL or -EPROTO
 * for a segment that is not a whole arena of this instance and layout (never
 * trusted: cfg->why says which and why).
 */
int heap_open(struct heap **out, const struct heap_config *cfg);

/* What heap_open() recovered, for the log. */
struct heap_recovery {
	uint32_t arenas, spans, repaired_pages;
	uint64_t objects_out, large_blocks;
	uint64_t old_base;      /* the base recorded before --base moved it; 0: not moved */
	uint32_t quarantined;   /* arenas found inconsistent (heap.h: Quarantine) */
	uint32_t pages_cut;     /* the pages segment was found cut (or grown) and healed (heal.c) */
	int64_t pages_cut_to;   /* the size it had then */
};
void heap_recovery(const struct heap *h, struct heap_recovery *r);

/* Puts the pages segment back to the heap's range if someone changed its
 * size (heal.c): 1 if it did (*was: the size it had), 0 if whole, -errno. */
int heap_pages_heal(struct heap *h, int64_t *was);

/* Frees the heap's private memory and unmaps; with unlink, removes the
 * heap's segments too. */
void heap_close(struct heap *h, int unlink);

/*
 * Hands out up to want objects of class cls (want >= 1), marking each out in
 * its span's bitmap: from region rg's spans only (heap.h: Regions; fresh
 * spans lazily reserved), or with rg NULL from the spans of no region.  Objects go in batch->refs and, where a whole fresh span
 * or a contiguous stretch is handed out, as runs in batch->runs (cheaper for
 * both sides); the sum of nrefs and the runs' counts is at most want.
 * Returns the number of objects handed out (>= 1), or -ENOMEM when none could
 * be (max_memory reached, /dev/shm full, or the class's span is larger than
 * an arena), or -EINVAL for a bad class, want 0 or a batch with no room.
 * The batch is filled from empty (nrefs and nruns are reset first).  Partial
 * spans are drawn on first; a fresh span goes out as one run while the batch
 * has room for runs.
 */
struct heap_region;
int heap_refill(struct heap *h, struct heap_region *rg, unsigned cls, uint32_t want,
		struct heap_batch *batch);

/*
 * Takes one object back.  0; -EINVAL if ref names no arena of this heap or
 * is not on an object boundary of a span; -EALREADY if the object is not out
 * (a double free); -EUCLEAN if its arena is quarantined (or is found
 * inconsistent now, and so is quarantined).  *cls (may be NULL) gets the object's class on success.
 * A span whose last object comes back returns its pages to the page heap.
 */
int heap_free_object(struct heap *h, uint64_t ref, unsigned *cls);

/* The class of the object ref names if it is out, else a negative errno as
 * heap_free_object() would return; changes nothing. */
int heap_object_class(struct heap *h, uint64_t ref);

/* The owner word of the span of out object ref (heap.h: Regions), or 0
 * (none, or not an object that is out). */
uint64_t heap_object_owner(struct heap *h, uint64_t ref);

/*
 * A large block: a run of whole pages of one arena (server/heap/large.h),
 * backing store reserved -- the pages of a freed block, still reserved, when
 * one fits.  *ref names its first byte, *got its size (size rounded up to
 * pages); owner (a client id, say) is remembered with it.  With region rg
 * (not NULL) the block is rg's: lazily reserved, its owner rg's id (owner
 * is not used).  -ENOMEM past max_memory, when /dev/shm is full (or no
 * memory is left to note it in rg) or when the block is larger than an
 * arena's pages; -EINVAL for size 0.
 */
int heap_alloc_large(struct heap *h, struct heap_region *rg, uint64_t size, uint64_t owner,
		     uint64_t *ref, uint64_t *got);

/* The owner heap_alloc_large() was given for the live large block starting
 * exactly at ref (kept in the metadata: across restarts too; a region's
 * id, for a region's block), or 0. */
uint64_t heap_large_owner(const struct heap *h, uint64_t ref);

/* Frees a large block: its pages go back to the page heap, still reserved
 * (punched at once from HEAP_PUNCH_AT bytes).  *size (may be NULL) gets its
 * size.  -EINVAL if ref is not the start of a live large block. */
int heap_free_large(struct heap *h, uint64_t ref, uint64_t *size);

/* Blocks of this many bytes or more give their pages back to the OS as soon
 * as they are freed, as glibc's munmap would; smaller ones at the decay. */
#define HEAP_PUNCH_AT ((uint64_t)64 << 20)

/* Free pages that still hold backing store (freed, waiting for the decay)
 * are at most HEAP_FREE_RESERVED_MIN bytes or an eighth of the bytes in use,
 * whichever is more, when a span goes back: past it, the oldest free runs
 * are punched at once.  Without it, a program that frees most of what it had
 * kept all of it reserved until the decay (bench (e): 22 MiB reserved for 8
 * MiB live).  A large block given back does not trim: the next block of
 * about its size reuses its pages reserved and faulted in (bench (d), (f):
 * 5 to 10 times slower when they were punched). */
#define HEAP_FREE_RESERVED_MIN ((uint64_t)4 << 20)

/* The size of the live large block ref points into (any offset inside it),
 * or 0 if ref names none; *start (may be NULL) gets the ref of its first
 * byte. */
uint64_t heap_large_size(const struct heap *h, uint64_t ref, uint64_t *start);

/*
 * Regions.  A region is the heap of one client that asked for one (the
 * preload library's processes): refills for it come only from spans of its
 * own -- spans no other client allocates from --, its large blocks are its
 * own, and heap_region_end() frees all of them at once, whatever is out,
 * when the client ends.  Each such span and block carries its owner's id
 * with SHMA_OWNER_REGION in the arena's owner words (so a restarted daemon
 * knows the region again) and SHMA_PAGE_REGION in its page map entry (so a
 * client of no region never caches its blocks).  An object of a region may
 * be freed by anyone while it is out (heap_free_object() as ever); once the
 * region has ended it is not out, and the free is refused.
 *
 * A region's pages are reserved lazily: no posix_fallocate when a span or a
 * block is made, tmpfs gives a page when the program first touches it (as
 * glibc's mmap does); a full /dev/shm then means SIGBUS in that program,
 * where a library client gets ENOMEM from its malloc.  max_memory still
 * bounds the arenas.  When a region's run is freed its pages are made
 * reserved (a span, a block below HEAP_PUNCH_AT: the next user finds them
 * reserved, as it would any free run) or punched (larger blocks).
 */
/* The region of client id; with create, made if there is none.  NULL with
 * errno ENOENT (none) or ENOMEM. */
struct heap_region *heap_region(struct heap *h, uint64_t id, int create);

/* Ends the region of client id, if it has one: every object of its spans
 * and every large block of it is freed.  Returns the bytes freed (0 if
 * there was no region).  What lies in a quarantined arena stays out. */
uint64_t heap_region_end(struct heap *h, uint64_t id);

/* Frees up to max of the spans of client id's region (what a daemon killed
 * inside heap_region_end() has done): their bytes.  For tests. */
uint64_t heap_region_end_spans(struct heap *h, uint64_t id, uint64_t max);

/* Bytes of region r out: objects (class size) and large blocks. */
uint64_t heap_region_bytes(const struct heap_region *r);

/* Regions live, and their bytes, for the stats. */
void heap_region_totals(const struct heap *h, uint64_t *regions, uint64_t *bytes);

/* Gives back to the OS the free pages idle at least the decay; returns the
 * bytes of backing store released.  Call it from a timer with monotonic_ms()
 * (shm/clock.h), the clock the heap stamps free runs with. */
uint64_t heap_decay(struct heap *h, uint64_t now_ms);

/* Gives back to the OS every free page that holds backing store, however
 * recently freed: when /dev/shm is full.  Returns the bytes released. */
uint64_t heap_release_free(struct heap *h);

/* Counters: bounded work (per arena, per class), no scan of user memory. */
void heap_totals(const struct heap *h, struct heap_totals *t);
unsigned heap_arena_count(const struct heap *h);
void heap_arena_stats(const struct heap *h, unsigned i, struct heap_arena_stats *s);
void heap_class_stats(const struct heap *h, unsigned cls, struct heap_class_stats *s);

/* The geometry every arena of this heap has. */
const struct arena_geometry *heap_geometry(const struct heap *h);

/* The heap's header (in segment 'M'): base, range, arenas. */
const struct heap_header *heap_header(const struct heap *h);

/* Client ids: the highest ever given out in this heap's life (kept in the
 * header, so it survives restarts), and the record that id was given. */
uint64_t heap_client_ids(const struct heap *h);
void heap_note_client_id(struct heap *h, uint64_t id);

/* Largest number of arenas the heap may make (max_memory's worth, at most
 * the range's). */
uint32_t heap_max_arenas(const struct heap *h);

#endif
