/* SPDX-License-Identifier: MIT */
/*
 * Large blocks a process keeps: the freed ones it may reuse without asking
 * the daemon, and the ones it allocated (which alone it may keep).
 *
 * A freed large block of this process goes into a small cache instead of
 * back to the daemon (at most SHMA_LARGE_KEEP blocks, LCACHE_BYTES in all):
 * the next large allocation it fits (no more than twice the request) takes
 * it back with no round trip, and its pages, still reserved and already
 * faulted in here, cost nothing to touch again -- jemalloc reuses its
 * extents the same way.  The cache lives in the control block's header, so
 * that the daemon takes the blocks back if the process dies; it believes an
 * entry only for a live large block that this client allocated (so a
 * process may keep only blocks it allocated itself: a table of those, in
 * memory of its own, says which).  Entries older than the decay go back to
 * the daemon (checked on the large-block paths), and all of them at
 * disconnect; a process that stops using large blocks leaves its entries
 * to the daemon, which takes back what sat for the decay (server/kept.h),
 * so every take of an entry here is an exchange of its ref for 0.  Everything here runs with the connection's lock held.
 */
#include "config.h"

#include "call.h"

#include <errno.h>
#include <string.h>

#define LCACHE_BYTES ((uint64_t)64 << 20)
#define MINE_CAP 4096u /* a power of two */

static struct {
	uint64_t *mine;      /* refs of live large blocks we allocated; 0 empty */
	unsigned nmine;
	uint64_t since_ms[SHMA_LARGE_KEEP];
	uint64_t generation; /* conn_generation() the state belongs to */
	uint64_t decay_ms;
} lc;

static unsigned slot_of(uint64_t ref)
{
	return (unsigned)((ref >> SHMA_PAGE_SHIFT) * UINT64_C(0x9E3779B97F4A7C15) >> 52) &
	       (MINE_CAP - 1);
}

/* A new control block (or none): what we kept is the daemon's business. */
static void sync_generation(void)
{
	if (lc.generation == conn_generation())
		return;
	lc.generation = conn_generation();
	if (lc.mine != NULL)
		memset(lc.mine, 0, MINE_CAP * sizeof *lc.mine);
	lc.nmine = 0;
}

void lcache_set_decay(uint64_t decay_ms)
{
	lc.decay_ms = decay_ms;
}

void lcache_note_mine(uint64_t ref)
{
	sync_generation();
	if (lc.mine == NULL && (lc.mine = prim_alloc(MINE_CAP * sizeof *lc.mine)) == NULL)
		return;
	if (lc.nmine * 2 >= MINE_CAP)
		return; /* full: that block goes back to the daemon when freed */
	unsigned i = slot_of(ref);
	while (lc.mine[i] != 0 && lc.mine[i] != ref)
		i = (i + 1) & (MINE_CAP - 1);
	if (lc.mine[i] == 0)
		lc.nmine++;
	lc.mine[i] = ref;
}

/* Removes ref from the table: 1 if it was there. */
static int forget_mine(uint64_t ref)
{
	if (lc.mine == NULL)
		return 0;
	unsigned i = slot_of(ref);
	while (lc.mine[i] != ref) {
		if (lc.mine[i] == 0)
			return 0;
		i = (i + 1) & (MINE_CAP - 1);
	}
	/* Backward shift: later entries of the cluster move up. */
	for (unsigned j = (i + 1) & (MINE_CAP - 1); lc.mine[j] != 0; j = (j + 1) & (MINE_CAP - 1)) {
		unsigned home = slot_of(lc.mine[j]);
		if (((j - home) & (MINE_CAP - 1)) >= ((j - i) & (MINE_CAP - 1))) {
			lc.mine[i] = lc.mine[j];
			i = j;
		}
	}
	lc.mine[i] = 0;
	lc.nmine--;
	return 1;
}

/* Empties entry i and gives its block back to the daemon -- unless the
 * daemon took it first (server/kept.h: it takes what sat for the decay
 * with the same exchange of the ref for 0). */
static void evict(struct control_block *cb, unsigned i)
{
	uint64_t ref = __atomic_exchange_n(&cb->hdr.large[i].ref, 0, __ATOMIC_ACQ_REL);
	if (ref != 0)
		call_free_large_unanswered(ref); /* waited for only if too many are out */
}

uint64_t lcache_take(uint64_t need, uint64_t *size)
{
	struct control_block *cb = conn_control();
	sync_generation();
	if (cb == NULL || !conn_connected())
		return 0;
	int best = -1;
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++) {
		uint64_t r = cb->hdr.large[i].ref, s = cb->hdr.large[i].size;
		if (r != 0 && s >= need && s / 2 <= need &&
		    (best < 0 || s < cb->hdr.large[best].size))
			best = (int)i;
	}
	if (best < 0)
		return 0;
	uint64_t ref = cb->hdr.large[best].ref;
	*size = cb->hdr.large[best].size;
	/* Out of the record before the program has it; the daemon may have
	 * taken it back since we looked (server/kept.h): then it is not ours. */
	if (!__atomic_compare_exchange_n(&cb->hdr.large[best].ref, &ref, 0, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return 0;
	lcache_note_mine(ref);
	return ref;
}

int lcache_put(uint64_t ref, uint64_t size)
{
	struct control_block *cb = conn_control();
	sync_generation();
	if (cb == NULL || !conn_connected() || size > LCACHE_BYTES || !forget_mine(ref))
		return 0;
	uint64_t bytes = size;
	int empty = -1, oldest = -1;
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++) {
		if (cb->hdr.large[i].ref == 0) {
			empty = (int)i;
			continue;
		}
		bytes += cb->hdr.large[i].size;
		if (oldest < 0 || lc.since_ms[i] < lc.since_ms[oldest])
			oldest = (int)i;
	}
	while ((empty < 0 || bytes > LCACHE_BYTES) && oldest >= 0) {
		bytes -= cb->hdr.large[oldest].size;
		evict(cb, (unsigned)oldest);
		empty = oldest;
		oldest = -1;
		for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
			if (cb->hdr.large[i].ref != 0 &&
			    (oldest < 0 || lc.since_ms[i] < lc.since_ms[oldest]))
				oldest = (int)i;
	}
	if (empty < 0 || bytes > LCACHE_BYTES)
		return 0;
	cb->hdr.large[empty].size = size;
	/* The size before the ref: the daemon reads an entry by its ref. */
	__atomic_store_n(&cb->hdr.large[empty].ref, ref, __ATOMIC_RELEASE);
	lc.since_ms[empty] = monotonic_ms();
	return 1;
}

void lcache_expire(void)
{
	struct control_block *cb = conn_control();
	if (cb == NULL || !conn_connected())
		return;
	uint64_t now = monotonic_ms();
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
		if (cb->hdr.large[i].ref != 0 && now - lc.since_ms[i] >= lc.decay_ms)
			evict(cb, i);
}

void lcache_flush(void)
{
	struct control_block *cb = conn_control();
	if (cb == NULL || !conn_connected())
		return;
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
		evict(cb, i);
}

void lcache_forget(void)
{
	lc.generation = UINT64_MAX;
	if (lc.mine != NULL)
		memset(lc.mine, 0, MINE_CAP * sizeof *lc.mine);
	lc.nmine = 0;
}
