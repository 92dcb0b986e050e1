/* SPDX-License-Identifier: MIT */
/*
 * The walk of a gone client's control block (control.c's header says what
 * it believes and why): every bin of every slot a thread held, the transfer
 * cache, the client's share of its uid's transfer area (uidarea.c) and the
 * large blocks it kept -- each ref taken back only if it names an object of
 * its bin's class that is out, read only where the client reserved it.
 *
 * Layer: session (no libuv).
 */
#include "control.h"
#include "daemon.h"
#include "guard.h"
#include "log.h"
#include "uidarea.h"

/* Where each class's refs start in a slot. */
static uint32_t bin_first[SIZECLASS_COUNT];
static int bin_first_set;

/* Takes back refs [0, n), each if it names an object of class cls that is
 * out; counts the others. */
static uint64_t take_refs(struct heap *h, const volatile uint64_t *refs, uint32_t n,
			  unsigned cls, uint64_t *refused)
{
	uint64_t got = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t ref = refs[k];
		if (heap_object_class(h, ref) == (int)cls && heap_free_object(h, ref, NULL) == 0)
			got++;
		else
			(*refused)++;
	}
	return got;
}

/* Takes back the objects bin cls of slot i lists; counts refs refused. */
static uint64_t reclaim_bin(struct heap *h, const struct control_block *cb, int fd, unsigned i,
			    unsigned cls, uint64_t *refused)
{
	uint32_t count = __atomic_load_n(&cb->slots[i].bins[cls].count, __ATOMIC_RELAXED);
	uint32_t cap = layout_bin_capacity(cls);
	if (count > cap) {
		*refused += count - cap;
		count = cap;
	}
	const volatile uint64_t *refs = &cb->refs[i][bin_first[cls]];
	/* Refs the client never reserved are a lie: reading them would make
	 * tmpfs pages (or SIGBUS on a full tmpfs). */
	if (!guard_reserved(fd, cb, (const void *)refs, count * sizeof *refs)) {
		*refused += count;
		return 0;
	}
	return take_refs(h, refs, count, cls, refused);
}

/* Takes back refs [0, n) of entry e of class cls's transfer cache: only
 * where the client reserved them, as a bin's. */
static uint64_t reclaim_entry(struct heap *h, struct control_block *cb, int fd, unsigned cls,
			      unsigned e, uint32_t n, uint64_t *refused)
{
	if (!guard_reserved(fd, cb, (const void *)cb->xfer_refs[cls][e], n * sizeof(uint64_t))) {
		*refused += n; /* pages it never reserved */
		return 0;
	}
	return take_refs(h, cb->xfer_refs[cls][e], n, cls, refused);
}

/* 1 if the batch of a word caught between a bin and an entry (PUTTING,
 * TAKING: shm/layout.h) is the bin's: the slot is one the walk reads, in
 * use, and its bin's count says it holds them.  Anything else -- another
 * count, no such slot, a Flush's -- is the entry's. */
int daemon_control_batch_in_bin(const struct control_block *cb, uint32_t nslots, unsigned cls,
				uint64_t w, uint32_t n)
{
	uint32_t slot = layout_xfer_slot(w);
	if (slot >= nslots || !__atomic_load_n(&cb->slots[slot].in_use, __ATOMIC_ACQUIRE))
		return 0;
	uint32_t count = __atomic_load_n(&cb->slots[slot].bins[cls].count, __ATOMIC_RELAXED);
	uint32_t c = layout_xfer_count(w);
	return layout_xfer_kind(w) == SHMA_XFER_PUTTING ? count == c : count == c + n;
}

/* Takes back every batch in cb's transfer cache (the process is gone: no
 * word moves under us).  n is capped at the class's cap whatever the word
 * says; every ref is checked as a bin's. */
static uint64_t reclaim_xfer(struct heap *h, struct control_block *cb, int fd, uint32_t nslots,
			     uint64_t *refused)
{
	uint64_t got = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		for (unsigned e = 0; e < SHMA_XFER_ENTRIES; e++) {
			uint64_t w = __atomic_load_n(&cb->hdr.xfer[cls].state[e], __ATOMIC_ACQUIRE);
			uint32_t n = layout_xfer_n(w), cap = layout_xfer_cap(cls);
			if (layout_xfer_kind(w) == SHMA_XFER_EMPTY || n == 0)
				continue;
			if (n > cap) {
				*refused += n - cap;
				n = cap;
			}
			if (layout_xfer_kind(w) != SHMA_XFER_FULL && daemon_control_batch_in_bin(cb, nslots, cls, w, n))
				continue; /* the bin walk takes them */
			got += reclaim_entry(h, cb, fd, cls, e, n, refused);
		}
	}
	return got;
}

uint64_t daemon_control_xfer_bytes(const struct control_block *cb)
{
	uint64_t bytes = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		for (unsigned e = 0; e < SHMA_XFER_ENTRIES; e++) {
			uint64_t w = __atomic_load_n(&cb->hdr.xfer[cls].state[e], __ATOMIC_RELAXED);
			uint32_t n = layout_xfer_n(w), cap = layout_xfer_cap(cls);
			if (layout_xfer_kind(w) == SHMA_XFER_FULL)
				bytes += (uint64_t)(n < cap ? n : cap) * sizeclass_size(cls);
		}
	}
	return bytes;
}

/* daemon_control_reclaim(): control.h. */
uint64_t daemon_control_reclaim(struct daemon *d, struct control_block *cb, int fd, uint64_t id)
{
	if (!bin_first_set) {
		layout_bin_firsts(bin_first);
		bin_first_set = 1;
	}
	uint64_t n = 0, refused = 0;
	uint32_t nslots = guard_slots_readable(fd, cb);
	if (nslots < layout_slots_taken(&cb->hdr)) {
		log_msg(SLOG_WARN, "client %llu: slots %u..%u of its control block have no "
			"header it reserved: not read, not reclaimed", (unsigned long long)id,
			nslots, layout_slots_taken(&cb->hdr) - 1);
		/* Its process is gone: what settles its refills next reads no more. */
		__atomic_store_n(&cb->hdr.slots_taken, nslots, __ATOMIC_RELEASE);
	}
	for (unsigned i = 0; i < nslots; i++) {
		/* A slot no thread holds is empty: a thread leaves it only once
		 * its bins went back (and its refs may not even be reserved). */
		if (__atomic_load_n(&cb->slots[i].in_use, __ATOMIC_ACQUIRE) == 0)
			continue;
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
			n += reclaim_bin(d->heap, cb, fd, i, cls, &refused);
	}
	n += reclaim_xfer(d->heap, cb, fd, nslots, &refused);
	n += uidarea_reclaim(d, id, cb, fd, nslots, &refused); /* its half moves there */
	/* The large blocks it kept: those it allocated and that are live. */
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++) {
		uint64_t ref = __atomic_load_n(&cb->hdr.large[i].ref, __ATOMIC_ACQUIRE);
		if (ref == 0)
			continue;
		if (heap_large_owner(d->heap, ref) == id && heap_free_large(d->heap, ref, NULL) == 0)
			n++;
		else
			refused++;
	}
	if (guard_broken(cb))
		log_msg(SLOG_WARN, "client %llu: its control block was cut short under the daemon "
			"(truncated): what was past the cut is not reclaimed", (unsigned long long)id);
	if (refused != 0) {
		log_msg(SLOG_WARN, "client %llu: %llu refs of its caches refused (not objects "
			"of their bin's class that are out)", (unsigned long long)id,
			(unsigned long long)refused);
	}
	return n;
}
