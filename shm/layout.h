/* SPDX-License-Identifier: MIT */
/*
 * The versioned layout of the segments both sides map.
 *
 * The heap of an instance is one range of address space, [base, base +
 * range), the same base in every process (the daemon chooses it at the
 * instance's first start and records it here; --base overrides it).  Two
 * sparse segments hold it:
 *
 * - 'p', the pages: range bytes, mapped whole and read-write by every client
 *   at connect (MAP_FIXED_NOREPLACE at base), so every block -- in an arena
 *   made after the client connected, a large block -- is there without any
 *   further mapping.  Arena i is bytes [i * arena_size, (i + 1) * arena_size);
 *   its first meta_pages pages are never used (so offset 0 is never a block,
 *   and page p of an arena is at byte p * SHMA_PAGE_SIZE of it).  tmpfs holds
 *   only what the daemon reserved (posix_fallocate before it hands pages out).
 * - 'M', the metadata: a heap header (page 0), then arena i's metadata at
 *   SHMA_PAGE_SIZE + i * meta_bytes: its header, its page map (one entry per
 *   page: free, metadata, a span of class k starting at page s, or a large
 *   block), its object bitmaps (64 bytes per page, so a span starting at
 *   page s keeps its bitmap at bitmap slot s; one bit per object, set while
 *   the object is out of the daemon's hands) and its owners (8 bytes per
 *   page: the client that asked for the large block starting there, or
 *   whose region the span starting there is in; see HEAP_OWNER_REGION).  Clients map it read-only; no
 *   client can open it for writing (its mode has no write bit but the
 *   owner's), so nothing a client does changes what is allocated.
 *
 * The control block is one segment per connected client, created by the
 * daemon at the handshake and mapped read-write by that client alone: per
 * thread slot and size class, a bounded stack of the refs of its free blocks
 * (nothing is ever linked through a freed block), so that the daemon can
 * take the blocks back if the client dies, reading the control block only.
 *
 * Everything the daemon writes here is written so that a restarted daemon can
 * rebuild its state from it; anything a client could scribble on (the control
 * block, user pages) is validated before it is believed.
 */
#ifndef SHMA_LAYOUT_H
#define SHMA_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "sizeclass.h"

#define SHMA_PAGE_SHIFT 13
#define SHMA_PAGE_SIZE ((size_t)1 << SHMA_PAGE_SHIFT)
#define SHMA_LAYOUT_VERSION 2u
/* Of a control block (its header says which): 3 since slots count their
 * allocations per class, 4 since it holds a transfer cache.  A block of another version is not believed (its caches
 * leak once, at the upgrade). */
#define SHMA_CONTROL_VERSION 4u
#define SHMA_ARENA_MAGIC UINT64_C(0x32414e4552414d53)   /* "SMARENA2" */
#define SHMA_HEAP_MAGIC UINT64_C(0x3250414548414d53)    /* "SMAHEAP2" */
#define SHMA_CONTROL_MAGIC UINT64_C(0x324c52544e434d53) /* "SMCNTRL2" */
#define SHMA_INSTANCE_MAX 48  /* bytes of an instance name, NUL included */
#define SHMA_BITMAP_BYTES_PER_PAGE 64 /* SHMA_PAGE_SIZE / 16 bits */
#define SHMA_MIN_ARENA_SIZE ((uint64_t)1 << 20)
#define SHMA_MAX_ARENA_SIZE ((uint64_t)1 << 36)
/* The heap range when --max-memory does not set it: arenas are made on
 * demand up to it.  Sparse: it costs address space, not memory. */
#define SHMA_DEFAULT_RANGE ((uint64_t)64 << 30)
/* The default base: SHMA_BASE_FIRST plus a slot of SHMA_BASE_STRIDE chosen by
 * the instance name's hash, so that two instances' heaps do not collide in a
 * process that uses both.  [0x300000000000, 0x400000000000): clear of the
 * kernel's mmap area (below 0x7f..), of AddressSanitizer's shadow (ends at
 * 0x10007fff8000) and allocator (0x600000000000-0x640000000000). */
#define SHMA_BASE_FIRST UINT64_C(0x300000000000)
#define SHMA_BASE_SLOTS 256u
#define SHMA_BASE_STRIDE ((uint64_t)1 << 36)

enum page_kind {
	PAGE_FREE = 0,
	PAGE_META = 1,
	PAGE_SPAN = 2,
	PAGE_LARGE = 3,      /* first page of a large block; span_start: its pages */
	PAGE_LARGE_CONT = 4, /* another page of one; span_start: its first page, or
			      * PAGE_JUMBO */
};

/* span_start of a PAGE_LARGE_CONT page of a block that starts in an earlier
 * arena (a block larger than an arena spans several whole arenas; all its
 * pages in the later ones, those numbered as metadata too, say this). */
#define PAGE_JUMBO UINT32_MAX

/* page_entry.flags of a span's pages and a large block's first page that
 * belong to a region (server/heap/heap.h: Regions): a client that asked for
 * no region hands such a block straight back to the daemon when it frees it,
 * never into its caches, so nothing of a region outlives its owner in
 * another process's cache. */
#define SHMA_PAGE_REGION 1u
/* With SHMA_PAGE_REGION: the region is a named heap's (server/heap/heaps.c).
 * No process's default caches ever hold such a block (its flags match no
 * process's region_flags); the library puts it in its heap's own cache. */
#define SHMA_PAGE_HEAP 2u

struct page_entry {
	uint8_t kind;        /* enum page_kind */
	uint8_t cls;         /* size class, for PAGE_SPAN */
	uint16_t flags;      /* SHMA_PAGE_REGION or 0 */
	uint32_t span_start; /* PAGE_SPAN: first page of the span; see page_kind */
};

struct arena_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t page_shift;
	char instance[SHMA_INSTANCE_MAX];
	uint64_t arena_size;
	uint64_t class_checksum;
	uint32_t id;
	uint32_t npages;
	uint32_t meta_pages;
	uint32_t nclasses;
	uint64_t page_map_off; /* bytes from the segment start */
	uint64_t bitmap_off;
	int64_t created;       /* unix seconds */
	uint64_t owner_off;
};

/* Page 0 of segment 'M': the instance's heap, as the daemon set it up. */
struct heap_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t page_shift;
	char instance[SHMA_INSTANCE_MAX];
	uint64_t base;         /* where every process maps 'p' */
	uint64_t range;        /* bytes of 'p': max_arenas * arena_size */
	uint64_t arena_size;
	uint64_t meta_bytes;   /* of each arena's metadata in 'M' */
	uint64_t class_checksum;
	uint32_t max_arenas;
	uint32_t narenas;      /* arenas made so far; only grows */
	int64_t created;
	/* The highest client id ever given out.  Large blocks record their
	 * owner's id, and a dead owner's kept blocks are freed by id: an id must
	 * never be given twice in the life of the heap, across restarts too,
	 * even once its control block is gone.  0 in a heap made before it. */
	uint64_t client_ids;
};

/* Bytes of segment 'M' for max_arenas arenas of meta_bytes each. */
static inline uint64_t layout_meta_size(uint64_t meta_bytes, uint32_t max_arenas)
{
	return SHMA_PAGE_SIZE + (uint64_t)max_arenas * meta_bytes;
}

/* Where arena id's metadata starts in segment 'M'. */
static inline uint64_t layout_meta_offset(uint64_t meta_bytes, uint32_t id)
{
	return SHMA_PAGE_SIZE + (uint64_t)id * meta_bytes;
}

/* Where the parts of an arena's metadata lie, for an arena of a given size. */
struct arena_geometry {
	uint64_t arena_size;
	uint32_t npages;
	uint32_t meta_pages;
	uint64_t page_map_off;
	uint64_t bitmap_off;
	uint64_t owner_off;  /* per page: client id that asked for the large block there */
	uint64_t meta_bytes; /* meta_pages * SHMA_PAGE_SIZE */
};

/* 0, or -EINVAL if arena_size is not a power of two in range. */
int layout_geometry(uint64_t arena_size, struct arena_geometry *g);

/* Fills a fresh header (the caller zeroed the metadata). */
void layout_header_init(struct arena_header *h, const struct arena_geometry *g,
			const char *instance, uint32_t id, int64_t now);

/* 0 if the header is one we wrote for this instance, id and size, else a
 * negative errno and *why says what is wrong. */
int layout_header_check(const struct arena_header *h, const char *instance,
			uint32_t id, uint64_t arena_size, const char **why);

static inline struct page_entry *layout_page_map(void *base,
						 const struct arena_geometry *g)
{
	return (struct page_entry *)((char *)base + g->page_map_off);
}

/* The client id that asked for the large block starting at page p (0 for
 * none), or whose region the span starting at p is in (0 for none), with
 * bit 63 set for a region's; written by the daemon before the first page's
 * entry. */
#define SHMA_OWNER_REGION (UINT64_C(1) << 63)
/* With SHMA_OWNER_REGION: the region of named heap (owner & SHMA_HEAP_ID_MASK),
 * an id space of its own (client ids never reach bit 62). */
#define SHMA_OWNER_HEAP (UINT64_C(1) << 62)
#define SHMA_HEAP_ID_MASK (SHMA_OWNER_HEAP - 1)
/* The page map flags of what owner word owner owns. */
static inline uint16_t layout_owner_flags(uint64_t owner)
{
	return !(owner & SHMA_OWNER_REGION) ? 0
	       : owner & SHMA_OWNER_HEAP   ? SHMA_PAGE_REGION | SHMA_PAGE_HEAP
					   : SHMA_PAGE_REGION;
}
/* Named heaps live: in page 0 of segment 'M' (read-only to clients), from
 * this offset, one word per registry slot: the heap's id while it lives, 0
 * once it is destroyed (written only by the daemon; the library checks it
 * before it takes from a heap's cache). */
#define SHMA_HEAP_LIVE_OFF 4096u
#define SHMA_HEAP_SLOTS 512u
static inline uint64_t *layout_owner(void *base, const struct arena_geometry *g, uint32_t p)
{
	return (uint64_t *)((char *)base + g->owner_off) + p;
}

static inline uint64_t *layout_bitmap(void *base, const struct arena_geometry *g,
				      uint32_t span_start)
{
	return (uint64_t *)((char *)base + g->bitmap_off +
			    (uint64_t)span_start * SHMA_BITMAP_BYTES_PER_PAGE);
}

/* ---- control block ---- */

/* Thread slots of a control block: enough for any program's threads (a
 * process past it has its extra threads uncached).  The block is sparse:
 * 16384 slots are 6.8 GiB of address space in the client and the daemon,
 * and tmpfs holds only what was reserved -- the header and the first
 * SHMA_CONTROL_SLOTS_RESERVED slots' headers by the daemon when it makes the
 * block; a later slot's header by the client before it raises slots_taken
 * past it; a bin's refs by the client when a thread first uses the bin. */
#define SHMA_CONTROL_SLOTS 16384
#define SHMA_CONTROL_SLOTS_RESERVED 64
/* A class's cache holds at most layout_bin_capacity(cls) refs: twice the
 * largest batch, a batch being SHMA_BIN_BATCH_BYTES' worth of objects
 * between 8 and SHMA_BIN_BATCH_MAX of them. */
#define SHMA_BIN_BATCH_BYTES ((uint64_t)256 << 10)
#define SHMA_BIN_BATCH_MAX 1024u
#define SHMA_SLOT_REFS 55296u /* >= the sum of every class's capacity */
/* Freed large blocks a client keeps for reuse, recorded here. */
#define SHMA_LARGE_KEEP 8

static inline uint32_t layout_bin_batch_cap(unsigned cls)
{
	uint64_t n = SHMA_BIN_BATCH_BYTES / sizeclass_table[cls].size;
	return n < 8 ? 8 : n > SHMA_BIN_BATCH_MAX ? SHMA_BIN_BATCH_MAX : (uint32_t)n;
}

static inline uint32_t layout_bin_capacity(unsigned cls)
{
	return 2 * layout_bin_batch_cap(cls);
}

/* Bin cls of a slot: its free blocks are refs[first, first + count) of the
 * slot, first = layout_bin_first(cls) (each side computes it; it is not
 * stored where a client could change it), count <= layout_bin_capacity(cls)
 * (the daemon reads no further, whatever count says). */
struct tcache_bin {
	uint32_t count;
	uint32_t reserved;
	uint64_t collected; /* id of the last refill taken in */
};

struct control_slot {
	uint32_t in_use; /* 1 while a thread owns the slot */
	uint32_t tid;
	uint64_t mallocs; /* large allocations by the thread (it alone writes them);
			   * small ones are its bins' */
	uint64_t waits;   /* of them, those that waited on the daemon */
	uint64_t reserved;
	struct tcache_bin bins[SIZECLASS_COUNT];
	/* Per class, the slot's small allocations and the bytes they asked for:
	 * they only grow (a thread that takes the slot goes on counting), the
	 * thread alone writes them, the daemon sums them for stats.  Arrays of
	 * their own, indexed by the class as it is (one add to memory each on
	 * the fast path, no other index to compute). */
	uint64_t class_mallocs[SIZECLASS_COUNT];
	uint64_t class_requested[SIZECLASS_COUNT];
};

/* A freed large block a client keeps: ref of its first page, its bytes. */
struct control_large {
	uint64_t ref;
	uint64_t size;
};

/* ---- the transfer cache ----
 *
 * Per class, SHMA_XFER_ENTRIES entries, each a batch of at most
 * layout_xfer_cap(cls) refs: a thread whose bin overflows moves a batch into
 * an empty entry, a thread whose bin runs low moves a full entry into its bin,
 * without the daemon (client/lib/xfer.c).  An entry's state is one 64-bit
 * word (SHMA_XFER_*), and every move is claimed by one compare-and-swap and
 * committed by single stores, ordered so that a process killed at any
 * instruction leaves the daemon able to tell, from the word and the bin it
 * names, where each ref is:
 *
 * - EMPTY: nothing.  FULL(n): refs[0, n) are free blocks of the class.
 * - PUTTING(n, c, slot): slot's bin had count c and its top n refs are being
 *   copied here.  While the bin's count is still c the bin holds them; once
 *   it is c - n (copied first, then the count lowered, then FULL) the entry.
 * - TAKING(n, c, slot): refs[0, n) are being copied onto slot's bin above
 *   count c.  While the bin's count is c the entry holds them; once it is
 *   c + n (copied first, then the count raised, then EMPTY) the bin.  A
 *   slot of SHMA_XFER_NO_SLOT: going to the daemon in a Flush (the entry
 *   holds them until it says EMPTY, then they are in flight).
 *
 * The daemon believes none of it beyond bounds: n is capped at the class's
 * cap, a word naming a slot that is not in use or whose count says neither
 * is taken for the entry's, and every ref is checked as a bin's (an object
 * of the class that is out; a ref seen twice is not out the second time).
 * The words sit in the header (reserved by the daemon); the refs in
 * xfer_refs, reserved by the client per class when a class is first used
 * (reserved[cls] says so to its threads; the daemon does not believe it and
 * reads only the pages the client reserved: server/guard.c's
 * guard_reserved(), as for a bin's refs). */
#define SHMA_XFER_ENTRIES 4u
#define SHMA_XFER_REFS_MAX 1024u
#define SHMA_XFER_BATCH_BYTES ((uint64_t)32 << 10)
#define SHMA_XFER_BATCH_MIN 16u
#define SHMA_XFER_EMPTY 0u
#define SHMA_XFER_FULL 1u
#define SHMA_XFER_PUTTING 2u
#define SHMA_XFER_TAKING 3u
#define SHMA_XFER_NO_SLOT 0xffffu

/* A new process's first batches (issue 22 item 4): the daemon fills entry
 * 0 of each class up to SHMA_PREFILL_MAX_SIZE with SHMA_PREFILL_OBJECTS
 * objects before it answers the Hello (FULL, slot SHMA_XFER_NO_SLOT: the
 * daemon's, which the client checks as a refill), so a first malloc of
 * those classes sends nothing but the Hello.  Both sides know the classes:
 * the client asks no first refill behind its Hello for them. */
#define SHMA_PREFILL_MAX_SIZE 128u
#define SHMA_PREFILL_OBJECTS 32u

static inline int layout_prefilled(unsigned cls)
{
	return sizeclass_table[cls].size <= SHMA_PREFILL_MAX_SIZE;
}

/* The refs one entry of class cls holds at most: SHMA_XFER_BATCH_BYTES of
 * objects, between SHMA_XFER_BATCH_MIN and SHMA_XFER_REFS_MAX of them. */
static inline uint32_t layout_xfer_cap(unsigned cls)
{
	uint64_t n = SHMA_XFER_BATCH_BYTES / sizeclass_table[cls].size;
	return n < SHMA_XFER_BATCH_MIN ? SHMA_XFER_BATCH_MIN
	       : n > SHMA_XFER_REFS_MAX ? SHMA_XFER_REFS_MAX : (uint32_t)n;
}

static inline uint64_t layout_xfer_word(unsigned kind, uint32_t n, uint32_t count, uint32_t slot)
{
	return (uint64_t)(kind & 3u) | (uint64_t)(n & 0xffffu) << 2 |
	       (uint64_t)(count & 0xffffu) << 18 | (uint64_t)(slot & 0xffffu) << 34;
}

static inline unsigned layout_xfer_kind(uint64_t w) { return (unsigned)(w & 3u); }
static inline uint32_t layout_xfer_n(uint64_t w) { return (uint32_t)(w >> 2) & 0xffffu; }
static inline uint32_t layout_xfer_count(uint64_t w) { return (uint32_t)(w >> 18) & 0xffffu; }
static inline uint32_t layout_xfer_slot(uint64_t w) { return (uint32_t)(w >> 34) & 0xffffu; }

/* One class's transfer cache: its entries' words on one cache line. */
struct control_xfer {
	uint64_t state[SHMA_XFER_ENTRIES];
	uint32_t reserved; /* the client's word: the entries' refs are reserved */
	uint32_t unused;
	uint64_t pad[3];
} __attribute__((aligned(64)));

struct control_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t nslots;
	uint64_t client_id;
	uint32_t pid;
	uint32_t nclasses;
	uint64_t retired_mallocs; /* counters of threads that have exited */
	uint64_t retired_waits;
	uint64_t large_collected; /* id of the last AllocLarge answer read */
	uint32_t same_address;    /* the client's word: 1 heap mapped at its base, 2 elsewhere */
	/* The client's word: no slot at or past this one was ever taken (it is
	 * raised before a slot is, and the slot's header reserved before that).
	 * The daemon reads slots [0, this) only -- capped at SHMA_CONTROL_SLOTS,
	 * the segment's size, and past the slots it reserved itself only once
	 * the headers are there (layout_slots_readable()), so a lie hides the
	 * liar's own caches and counters, no more -- which spares it a page
	 * fault per 2 slots on every disconnect. */
	uint32_t slots_taken;
	struct control_large large[SHMA_LARGE_KEEP]; /* ref 0: an empty entry */
	/* The client's word: bytes of objects in the transfer cache (its
	 * budget; the daemon does not read it). */
	uint64_t xfer_bytes;
	struct control_xfer xfer[SIZECLASS_COUNT];
};

/* The header and the slots are reserved by the daemon when it makes the
 * block; a slot's refs by the client, when a thread takes the slot. */
struct control_block {
	struct control_header hdr;
	struct control_slot slots[SHMA_CONTROL_SLOTS];
	/* Entry e of class cls's transfer cache: xfer_refs[cls][e][0, cap). */
	uint64_t xfer_refs[SIZECLASS_COUNT][SHMA_XFER_ENTRIES][SHMA_XFER_REFS_MAX]
		__attribute__((aligned(4096)));
	uint64_t refs[SHMA_CONTROL_SLOTS][SHMA_SLOT_REFS] __attribute__((aligned(4096)));
};

/* How many slots of a block the daemon reads: the client's word, capped. */
static inline uint32_t layout_slots_taken(const struct control_header *h)
{
	uint32_t n = __atomic_load_n(&h->slots_taken, __ATOMIC_ACQUIRE);
	return n < SHMA_CONTROL_SLOTS ? n : SHMA_CONTROL_SLOTS;
}

/* The end of slot n - 1's header in the block, rounded up to a whole page:
 * bytes [0, this) hold the header and the headers of slots [0, n). */
static inline uint64_t layout_slot_headers_end(uint32_t n)
{
	uint64_t end = offsetof(struct control_block, slots) + (uint64_t)n * sizeof(struct control_slot);
	return (end + 4095) & ~(uint64_t)4095;
}

/* How many slots of cb a daemon may read: layout_slots_taken(), but past the
 * slots the daemon reserved only as far as the client reserved their headers
 * (a page the client never reserved is made now; where tmpfs has no room
 * for it the count stops at SHMA_CONTROL_SLOTS_RESERVED, never a SIGBUS).
 * The block is a mapping of the whole segment, writable. */
uint32_t layout_slots_readable(struct control_block *cb);

/* Where each bin's refs start in a slot (the same for every slot): fills
 * first[SIZECLASS_COUNT] and returns the refs they take in all, which is at
 * most SHMA_SLOT_REFS. */
uint32_t layout_bin_firsts(uint32_t *first);

#endif
