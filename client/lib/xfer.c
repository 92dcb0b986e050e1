/* SPDX-License-Identifier: MIT */
/*
 * The transfer cache: between the threads of one process, whole batches of
 * free blocks, so that a thread whose bin overflows feeds a sibling whose
 * bin runs low without the daemon and without the connection's lock (as
 * tcmalloc's transfer cache sits between its thread caches and its central
 * free lists; doc/architecture.md, "Transfer cache").
 *
 * It lives in the control block (shm/layout.h: struct control_xfer, and
 * xfer_refs), so the daemon finds every ref in it if the process dies.  Per
 * class, SHMA_XFER_ENTRIES entries of one batch each.  A thread claims an
 * entry with one compare-and-swap of its state word (EMPTY -> PUTTING, or
 * FULL -> TAKING, naming its slot and its bin's count), copies, moves its
 * bin's count with one store, and commits the entry with one store (FULL,
 * or EMPTY).  No lock is held across anything: a thread preempted in the
 * middle holds one entry, which the others skip.  Since the process dies
 * whole, a kill at any instruction leaves words from which the daemon tells
 * whether the bin or the entry holds each batch (server/control.c).
 *
 * Bounds: SHMA_XFER_ENTRIES batches a class (4: a producer's overflow and a
 * consumer's refill are one batch each, and the stock of blocks between two
 * threads swings by a batch or two as they are scheduled; past that the
 * batch goes to the daemon as before), and XFER_BYTES_MAX of objects in all
 * (a thread cache's budget), so that a process's footprint grows by at most
 * that much.  A process that never had a second thread does not use it: its
 * flushes go to the daemon as before, and its footprint does not change.
 *
 * Regions: the transfer cache is per control block, that is per client, and
 * holds only what its own threads' bins held (a library client never caches
 * a region's block; a region client's bins are its region's), so nothing
 * moves between regions through it.
 *
 * A new process's first batches: when its first malloc connects, the daemon
 * fills entry 0 of the small classes before it answers the Hello (slot
 * SHMA_XFER_NO_SLOT in the word); such an entry is taken as any other, its
 * refs checked against the page map first, since the daemon wrote them.
 */
#include "config.h"

#include "call.h"
#include "distrust.h"
#include "xfer.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_MEMCHECK_H
#include <valgrind/memcheck.h>
#endif

/* Objects' bytes a process keeps in its transfer cache at most. */
#define XFER_BYTES_MAX ((uint64_t)4 << 20)

/* The control block t's slot is in (of t's generation: the block stays
 * mapped while a thread uses a slot of it). */
static struct control_block *block_of(const struct tcache *t)
{
	return (struct control_block *)((char *)(t->slot - t->index) -
					offsetof(struct control_block, slots));
}

/* The calling thread's cache when it may use the transfer cache of class
 * cls: a slot of the current block, the bin reserved, no refill of its own
 * on the way (the locked path takes that in).  NULL otherwise. */
static struct tcache *usable(unsigned cls)
{
	struct tcache *t = tcache_self;
	if (t == NULL || t->slot == NULL || t->generation != conn_generation())
		return NULL;
	if (t->hot[cls].room == 0 || t->pending[cls] != 0)
		return NULL;
	return t;
}

/* 1 if a thread of cb may put in the process's own transfer cache: the
 * process had a second thread (else its batches would only wait there). */
static int local_puts(const struct control_block *cb)
{
	return __atomic_load_n(&cb->hdr.slots_taken, __ATOMIC_RELAXED) >= 2;
}

/* ---- where batches wait: the process's transfer cache, its uid's area ----
 *
 * The moves are the same in both (shm/layout.h); a place says where the
 * words and the refs of one class are, how many entries, and what the
 * words of a move carry beside (the member index, in the uid's area). */
struct place {
	uint64_t *state;
	uint64_t (*refs)[SHMA_XFER_REFS_MAX];
	unsigned entries;
	uint64_t tag;
	uint64_t *bytes;    /* the budget word */
	uint64_t max_bytes;
};

static void local_place(struct control_block *cb, unsigned cls, struct place *pl)
{
	*pl = (struct place){cb->hdr.xfer[cls].state, cb->xfer_refs[cls], SHMA_XFER_ENTRIES, 0,
			     &cb->hdr.xfer_bytes, XFER_BYTES_MAX};
}

/* The uid's transfer area this process was given with its Hello, for
 * control block cb (its member index is cb's); published whole, never
 * unmapped (a thread may be in it when the next connection brings another). */
struct uid_view {
	struct uid_area *area;
	const struct control_block *cb;
	uint32_t member;
	dev_t dev;
	ino_t ino;
};
static struct uid_view *uid_now;

/* Class cls of the area cb's threads may use; 0 if none. */
static int uid_place(const struct control_block *cb, unsigned cls, struct place *pl)
{
	struct uid_view *v = __atomic_load_n(&uid_now, __ATOMIC_ACQUIRE);
	if (v == NULL || v->cb != cb)
		return 0;
	struct uid_area *a = v->area;
	*pl = (struct place){a->cls[cls].state, a->refs[cls], SHMA_UID_ENTRIES,
			     (uint64_t)v->member << SHMA_UID_MEMBER_SHIFT, &a->hdr.bytes,
			     SHMA_UID_BYTES_MAX};
	return 1;
}

/* 1 if a batch put in the uid's area may be taken by another process: one
 * is connected (the daemon's word). */
static int uid_puts(const struct control_block *cb, unsigned cls, struct place *pl)
{
	if (!uid_place(cb, cls, pl))
		return 0;
	struct uid_area *a = (struct uid_area *)((char *)pl->state -
						 offsetof(struct uid_area, cls[cls].state));
	return __atomic_load_n(&a->hdr.members, __ATOMIC_RELAXED) >= 2;
}

/* Under memcheck the block is accessible only where this process reserved
 * it (conn.c); an entry the daemon filled is not. */
static void entry_accessible(uint64_t *refs, uint32_t n)
{
#ifdef HAVE_VALGRIND_MEMCHECK_H
	if (map_view.valgrind)
		VALGRIND_MAKE_MEM_DEFINED(refs, n * sizeof *refs);
#else
	(void)refs;
	(void)n;
#endif
}

/* Entry e of class cls, claimed TAKING(n, c, slot): keeps its refs that are
 * objects of the class by the read-only page map (moved down), says how many
 * in the word before they move; what is not ours is neither used nor given
 * back.  Every entry is checked, not only the daemon's first batches: the
 * daemon can write the control block, and any process of the uid (or the
 * daemon) the uid's area. */
static uint32_t keep_daemon_refs(uint64_t *state, uint64_t *refs, unsigned e,
				 unsigned cls, uint32_t n, uint32_t c, uint32_t slot, uint64_t tag)
{
	uint32_t k = 0;
	entry_accessible(refs, n);
	for (uint32_t i = 0; i < n; i++)
		if (distrust_ref_ok(refs[i], cls))
			refs[k++] = refs[i];
		else
			distrust_note(DISTRUST_XFER_REF);
	if (k != n)
		__atomic_store_n(&state[e], layout_xfer_word(SHMA_XFER_TAKING, k, c, slot) | tag,
				 __ATOMIC_RELEASE);
	return k;
}

/* Reserves class cls's entries in t's block, once per block; 0 or -errno. */
static int ready(struct tcache *t, unsigned cls)
{
	struct control_block *cb = block_of(t);
	struct control_xfer *x = &cb->hdr.xfer[cls];
	if (__atomic_load_n(&x->reserved, __ATOMIC_ACQUIRE))
		return 0;
	int rc = -ESTALE;
	conn_lock();
	/* The descriptor reserves for the current block only. */
	if (conn_control() == cb && t->generation == conn_generation()) {
		rc = 0;
		for (unsigned e = 0; e < SHMA_XFER_ENTRIES && rc == 0; e++)
			rc = conn_reserve_control(offsetof(struct control_block, xfer_refs[cls][e]),
						  (uint64_t)layout_xfer_cap(cls) * sizeof(uint64_t));
		if (rc == 0)
			__atomic_store_n(&x->reserved, 1, __ATOMIC_RELEASE);
	}
	conn_unlock();
	return rc;
}

/* Takes bytes of a place's budget; 0 if there is not that much left. */
static int budget_take(const struct place *pl, uint64_t bytes)
{
	uint64_t had = __atomic_fetch_add(pl->bytes, bytes, __ATOMIC_RELAXED);
	if (had + bytes <= pl->max_bytes)
		return 1;
	__atomic_fetch_sub(pl->bytes, bytes, __ATOMIC_RELAXED);
	return 0;
}

static void budget_give(const struct place *pl, uint64_t bytes)
{
	__atomic_fetch_sub(pl->bytes, bytes, __ATOMIC_RELAXED);
}

/* Moves the top n refs of t's bin cls into an empty entry of pl: 1, or 0
 * if every entry is taken.  stamp goes in the FULL word's count field (which
 * FULL does not use otherwise): the daemon tells a batch that sits in a
 * uid's area from the next one by it (server/uidarea.c: uidarea_decay). */
static int put(struct tcache *t, unsigned cls, uint32_t n, uint32_t stamp,
	       const struct place *pl)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	uint32_t c = b->count;
	uint64_t claim = layout_xfer_word(SHMA_XFER_PUTTING, n, c, t->index) | pl->tag;
	for (unsigned e = 0; e < pl->entries; e++) {
		uint64_t w = SHMA_XFER_EMPTY;
		if (__atomic_load_n(&pl->state[e], __ATOMIC_RELAXED) != w ||
		    !__atomic_compare_exchange_n(&pl->state[e], &w, claim, 0, __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		memcpy(pl->refs[e], t->hot[cls].stack + (c - n), n * sizeof(uint64_t));
		/* Copied, then out of the bin, then the entry's: at each step one
		 * of the two says it holds them (shm/layout.h). */
		__atomic_store_n(&b->count, c - n, __ATOMIC_RELEASE);
		__atomic_store_n(&pl->state[e], layout_xfer_word(SHMA_XFER_FULL, n, stamp, 0),
				 __ATOMIC_RELEASE);
		return 1;
	}
	return 0;
}

/* Moves a full entry of pl of at most room refs onto t's bin cls: the refs
 * the entry held (those of an entry of the daemon's that are not objects of
 * the class do not move), or 0 if there is none. */
static uint32_t take(struct tcache *t, unsigned cls, uint32_t room, const struct place *pl)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	uint32_t c = b->count;
	for (unsigned e = 0; e < pl->entries; e++) {
		uint64_t w = __atomic_load_n(&pl->state[e], __ATOMIC_RELAXED);
		uint32_t n = layout_xfer_n(w);
		if (layout_xfer_kind(w) != SHMA_XFER_FULL || n == 0 || n > room ||
		    n > layout_xfer_cap(cls) ||
		    !__atomic_compare_exchange_n(&pl->state[e], &w,
						 layout_xfer_word(SHMA_XFER_TAKING, n, c, t->index) |
							 pl->tag,
						 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		uint32_t had = n;
		/* The daemon's first batches, a sibling's, another process's:
		 * each ref checked before it enters the bin. */
		n = keep_daemon_refs(pl->state, pl->refs[e], e, cls, n, c, t->index, pl->tag);
		memcpy(t->hot[cls].stack + c, pl->refs[e], n * sizeof(uint64_t));
		__atomic_store_n(&b->count, c + n, __ATOMIC_RELEASE);
		__atomic_store_n(&pl->state[e], SHMA_XFER_EMPTY, __ATOMIC_RELEASE);
		return had;
	}
	return 0;
}

void *xfer_alloc(unsigned cls)
{
	struct tcache *t = usable(cls);
	if (t == NULL)
		return NULL;
	struct control_block *cb = block_of(t);
	struct tcache_bin *b = &t->slot->bins[cls];
	uint32_t room = t->hot[cls].room, count = b->count;
	if (count >= room)
		return NULL;
	/* A sibling thread's batch first, then another process's. */
	struct place pl;
	local_place(cb, cls, &pl);
	uint32_t had = take(t, cls, room - count, &pl);
	if (had == 0 && (!uid_place(cb, cls, &pl) || (had = take(t, cls, room - count, &pl)) == 0))
		return NULL;
	budget_give(&pl, (uint64_t)had * sizeclass_size(cls));
	if (b->count == 0)
		return NULL; /* a batch of the daemon's that held nothing of ours */
	t->slot->mallocs++;
	uint32_t top = b->count - 1;
	b->count = top;
	return map_ptr(t->hot[cls].stack[top]);
}

/* Puts n refs of t's bin cls in pl within its budget: 1 if done.  stamp:
 * put()'s. */
static int put_budgeted(struct tcache *t, unsigned cls, uint32_t n, uint32_t stamp,
			const struct place *pl)
{
	uint64_t bytes = (uint64_t)n * sizeclass_size(cls);
	if (!budget_take(pl, bytes))
		return 0;
	if (put(t, cls, n, stamp, pl))
		return 1;
	budget_give(pl, bytes);
	return 0;
}

int xfer_free(unsigned cls, uint64_t ref)
{
	struct tcache *t = usable(cls);
	if (t == NULL)
		return 0;
	struct tcache_bin *b = &t->slot->bins[cls];
	uint32_t room = t->hot[cls].room, count = b->count;
	if (count < room || count < 2)
		return 0;
	uint32_t n = count / 2;
	if (n > layout_xfer_cap(cls))
		n = layout_xfer_cap(cls);
	struct control_block *cb = block_of(t);
	/* For a sibling thread first, else for another process of the uid. */
	struct place pl;
	local_place(cb, cls, &pl);
	int done = local_puts(cb) && ready(t, cls) == 0 && put_budgeted(t, cls, n, 0, &pl);
	/* The stamp: bits of the block being freed, which change from one
	 * batch to the next. */
	if (!done && (!uid_puts(cb, cls, &pl) ||
		      !put_budgeted(t, cls, n, (uint32_t)(ref >> 4) | 1u, &pl)))
		return 0;
	uint32_t at = b->count;
	t->hot[cls].stack[at] = ref;
	__atomic_store_n(&b->count, at + 1, __ATOMIC_RELEASE);
	return 1;
}

/* Sends entry e of class cls to the daemon if it is full; with the lock. */
static void flush_entry(struct control_block *cb, unsigned cls, unsigned e)
{
	struct control_xfer *x = &cb->hdr.xfer[cls];
	uint64_t w = __atomic_load_n(&x->state[e], __ATOMIC_RELAXED);
	uint32_t n = layout_xfer_n(w);
	if (layout_xfer_kind(w) != SHMA_XFER_FULL || n == 0 || n > layout_xfer_cap(cls) ||
	    !__atomic_compare_exchange_n(&x->state[e], &w,
					 layout_xfer_word(SHMA_XFER_TAKING, n, 0, SHMA_XFER_NO_SLOT),
					 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	uint64_t refs[SHMA_XFER_REFS_MAX];
	entry_accessible(cb->xfer_refs[cls][e], n);
	memcpy(refs, cb->xfer_refs[cls][e], n * sizeof *refs);
	/* Out of the entry before they go: a death in between leaks them (in
	 * flight, as a bin's flush) rather than have the daemon take them
	 * twice. */
	__atomic_store_n(&x->state[e], SHMA_XFER_EMPTY, __ATOMIC_RELEASE);
	__atomic_fetch_sub(&cb->hdr.xfer_bytes, (uint64_t)n * sizeclass_size(cls), __ATOMIC_RELAXED);
	call_flush(refs, n);
}

void xfer_flush_all(void)
{
	struct control_block *cb = conn_control();
	if (cb == NULL || !conn_connected())
		return;
	/* Every class: the daemon's first batches are in classes no thread of
	 * ours reserved. */
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		for (unsigned e = 0; e < SHMA_XFER_ENTRIES; e++)
			flush_entry(cb, cls, e);
}

/* ---- the uid's transfer area: attached at each Hello that brings one ---- */

int xfer_uid_attach(int fd)
{
	struct control_block *cb = conn_control();
	struct stat st;
	if (fd < 0)
		return 0;
	uint32_t member = cb != NULL ? __atomic_load_n(&cb->hdr.uid_member, __ATOMIC_ACQUIRE) : 0;
	struct uid_view *old = __atomic_load_n(&uid_now, __ATOMIC_ACQUIRE);
	/* A region client's blocks never leave it (the daemon makes none a
	 * member; a member index it would send anyway is not believed). */
	if (member == 0 || member > SHMA_UID_MEMBERS || map_view.region_flags != 0 ||
	    fstat(fd, &st) != 0 || (uint64_t)st.st_size != sizeof(struct uid_area)) {
		close(fd);
		return 0;
	}
	if (old != NULL && old->dev == st.st_dev && old->ino == st.st_ino) {
		/* The same area again (our block re-adopted, or a new one): the
		 * mapping we have, under the member index of this block. */
		close(fd);
		if (old->cb == cb && old->member == member)
			return 0;
	}
	struct uid_view *v = prim_alloc(sizeof *v);
	if (v == NULL) {
		close(fd);
		return -ENOMEM;
	}
	if (old != NULL && old->dev == st.st_dev && old->ino == st.st_ino) {
		v->area = old->area;
	} else {
		void *p = mmap(NULL, sizeof(struct uid_area), PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, 0);
		close(fd);
		const struct uid_area *a = p;
		if (p != MAP_FAILED &&
		    (__atomic_load_n(&a->hdr.magic, __ATOMIC_ACQUIRE) != SHMA_UID_MAGIC ||
		     a->hdr.version != SHMA_UID_VERSION || a->hdr.nclasses != SIZECLASS_COUNT ||
		     a->hdr.uid != (uint32_t)geteuid())) {
			munmap(p, sizeof(struct uid_area));
			p = MAP_FAILED;
		}
		if (p == MAP_FAILED) {
			prim_free(v, sizeof *v);
			return -EPROTO; /* not an area we would use: without one */
		}
		v->area = p;
	}
	v->cb = cb;
	v->member = member;
	v->dev = st.st_dev;
	v->ino = st.st_ino;
	__atomic_store_n(&uid_now, v, __ATOMIC_RELEASE);
	return 0;
}
