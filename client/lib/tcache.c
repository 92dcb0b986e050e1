/* SPDX-License-Identifier: MIT */
/*
 * Thread caches: per thread and size class, a stack of the refs of free
 * blocks.
 *
 * The stacks are arrays in this thread's slot of the control block (a
 * shared segment the daemon created for us, that no other process can
 * write), bounded by layout_bin_capacity(): so the daemon knows where our
 * cached blocks are if we die, without reading any block.  Nothing is ever
 * written into a freed block, so nothing a program writes there (a use after
 * free) can redirect the allocator, and the fast path never touches a freed
 * block's memory.  Only the owning thread touches its slot, so the fast path
 * (api.c) takes no lock and makes no system call.
 *
 * Refills: a class's batch starts small and doubles each time the cache ran
 * dry before a refill arrived, up to a cap of BATCH_BYTES of objects (at
 * least BATCH_MIN of them, within half the bin the layout reserves).  When
 * a class falls below a quarter of its batch, the next allocation asks for a
 * refill without waiting for it; the answer is usually there when the cache
 * runs dry.  Frees: past twice the batch cap (high_water(), what room[]
 * tells the fast path), half of the class goes back to the daemon in one
 * message nobody waits for.  So a class keeps at most three batches beyond
 * its live blocks (its bin and a refill asked ahead): with some 80 classes
 * in use, that is what the footprint of a big heap pays (bench (e)).
 *
 * Slots: any number of threads up to SHMA_CONTROL_SLOTS have one.  A thread's
 * exit parks its slot for the next thread (jemalloc's tcache reuse): its bins
 * stay reserved, and the last PARK_STOCKED parked keep their blocks too, so
 * a thread's start and exit make no round trip once an earlier thread used
 * the same classes.
 */
#include "config.h"

#include "call.h"
#include "debug.h"
#include "distrust.h"
#include "tslots.h"
#include "xfer.h"

#include <errno.h>
#include <string.h>

#define BATCH_START 32u
/* A batch is at most this many bytes of objects (and at least BATCH_MIN
 * objects): what a class holds beyond its live blocks, in this thread's
 * cache, in a refill asked ahead and in its spans' free objects, scales
 * with it, for every class a program uses. */
#define BATCH_BYTES ((uint64_t)32 << 10)
#define BATCH_MIN 4u
/* A bin holds at least this many objects (the big classes' batches are 4):
 * see high_water(). */
#define HIGH_WATER_MIN 16u
#define THREAD_CACHE_MAX ((uint64_t)4 << 20)
#define FLUSH_CHUNK WIRE_FLUSH_CHUNK
#define GROW_WITHIN_NS 5000000u    /* refilled again within 5 ms: grow */
#define SHRINK_AFTER_NS 100000000u /* not for 100 ms: shrink */

__thread struct tcache *tcache_self __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* The largest batch of a class: BATCH_BYTES of objects, at least
 * BATCH_MIN of them, within the layout's cap (shm/layout.h). */
static uint32_t batch_cap(unsigned cls)
{
	uint32_t most = layout_bin_batch_cap(cls);
	uint64_t n = BATCH_BYTES / sizeclass_size(cls);
	if (n < BATCH_MIN)
		n = BATCH_MIN;
	return n < most ? (uint32_t)n : most;
}

static uint32_t bin_first[SIZECLASS_COUNT];

/* The refs the layout sets aside for bin cls in a slot of the control block. */
static uint32_t bin_capacity(unsigned cls)
{
	return layout_bin_capacity(cls);
}

/* What bin cls holds at most: twice its largest batch, and at least
 * HIGH_WATER_MIN objects -- with two batches of 4, a thread's bin of a big
 * class hit a bound every few operations of a random churn, each a message
 * under the lock every thread of the process shares.  A free past it sends
 * half back (free_fast() goes to the slow path at room[cls]). */
static uint32_t high_water(unsigned cls)
{
	uint32_t n = 2 * batch_cap(cls), cap = bin_capacity(cls);
	if (n < HIGH_WATER_MIN)
		n = HIGH_WATER_MIN;
	return n < cap ? n : cap;
}

static void init_firsts(void)
{
	layout_bin_firsts(bin_first);
}

/* The bytes this thread's bins hold: summed on the slow path, so that the
 * fast path keeps no running total. */
static uint64_t cached_bytes(const struct tcache *t)
{
	uint64_t sum = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		sum += (uint64_t)t->slot->bins[cls].count * sizeclass_size(cls);
	return sum;
}

/* Sends up to n objects of bin cls back to the daemon (from the top of the
 * stack); with the lock held. */
static void flush_bin(struct tcache *t, unsigned cls, uint32_t n)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	uint64_t refs[FLUSH_CHUNK];
	if (!conn_connected())
		return; /* keep them: the daemon may give us our control block back */
	distrust_bin(t, cls); /* never a count past the bin's refs read */
	while (n > 0 && b->count > 0) {
		uint32_t k = n < FLUSH_CHUNK ? n : FLUSH_CHUNK;
		if (k > b->count)
			k = b->count;
		uint32_t left = b->count - k;
		memcpy(refs, t->hot[cls].stack + left, k * sizeof *refs);
		/* Out of the bin before they go: a death in between leaks them
		 * (in flight) rather than have the daemon take them twice. */
		__atomic_store_n(&b->count, left, __ATOMIC_RELEASE);
		n -= k;
		call_flush(refs, k);
	}
}

static int take_refill(struct tcache *t, unsigned cls, call_ticket ticket);

void tcache_flush_everything(struct tcache *t)
{
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		if (t->pending[cls] && call_ticket_live(t->pending[cls]))
			take_refill(t, cls, t->pending[cls]);
		t->pending[cls] = 0;
		flush_bin(t, cls, UINT32_MAX);
	}
}

static void thread_exit(void *arg)
{
	struct tcache *t = arg;
	if (t == NULL || t->slot == NULL)
		return;
	conn_lock();
	/* Connection lost: reconnect (re-adopting our control block) to flush. */
	if (t->generation == conn_generation() && !conn_connected())
		conn_ensure();
	int mine = t->generation == conn_generation();
	if (mine && conn_connected()) {
		struct control_block *cb = conn_control();
		/* The counts live on in the header once the slot is left. */
		cb->hdr.retired_mallocs += t->slot->mallocs;
		cb->hdr.retired_waits += t->slot->waits;
		t->slot->mallocs = t->slot->waits = 0;
		tslots_park(t);
	} else if (!mine) {
		/* A slot of an older block: no thread of ours takes it again. */
		__atomic_store_n(&t->slot->in_use, 0, __ATOMIC_RELEASE);
	}
	/* Mine but offline: the slot stays taken with its blocks, so that no
	 * thread clears it: the daemon takes them back when we are gone. */
	tslots_leave(t->index);
	if (!mine || !conn_connected())
		t->slot = NULL;
	conn_unlock();
	tcache_self = NULL;
}

static void make_key(void)
{
	init_firsts();
	pthread_key_create(&exit_key, thread_exit);
}

/* Bin cls's low mark and room, with reach (room - low) kept with them:
 * the fast path's bound (client.h, struct tcache_hot).  low <= room. */
static void set_low(struct tcache *t, unsigned cls, uint32_t low)
{
	t->hot[cls].low = (uint16_t)low;
	t->hot[cls].reach = t->hot[cls].room - t->hot[cls].low;
}

static void set_room(struct tcache *t, unsigned cls, uint32_t room)
{
	t->hot[cls].room = (uint16_t)room;
	t->hot[cls].reach = t->hot[cls].room - t->hot[cls].low;
}

struct tcache *tcache_fresh(struct tcache *t, struct control_block *cb, unsigned i, int reserved)
{
	struct control_slot *s = &cb->slots[i];
	uint16_t room[SIZECLASS_COUNT];
	if (reserved)
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
			room[cls] = t->hot[cls].room;
	/* Empty bins; the collected marks stay, they are the daemon's record
	 * of refills this slot took in.  A bin's refs are reserved when the
	 * thread first uses the bin (bin_ready()): a first malloc makes a page
	 * or two of the control block, not the slot's 432 KiB. */
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		s->bins[cls].count = 0;
	s->mallocs = s->waits = 0;
	memset(t, 0, sizeof *t);
	t->slot = s;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		t->hot[cls].stack = &cb->refs[i][bin_first[cls]];
		t->hot[cls].room = reserved ? room[cls] : 0; /* reach: set_low() below */
	}
	t->index = i;
	t->generation = conn_generation();
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		t->batch[cls] = (uint16_t)(BATCH_START < batch_cap(cls) ? BATCH_START
									  : batch_cap(cls));
		/* low <= room, which the fast path's one compare needs: a bin not
		 * reserved yet takes the slow path whatever its count says. */
		set_low(t, cls, t->hot[cls].room ? t->batch[cls] / 2u : 0);
	}
	return t;
}

/* The calling thread's cache, connecting and taking a slot if needed; NULL
 * with errno set when there is none.  With the lock held. */
static struct tcache *self_locked(void)
{
	struct tcache *t = tcache_self;
	if (t != NULL && t->generation == conn_generation() && conn_connected())
		return t;
	int rc = conn_ensure();
	if (rc != 0) {
		errno = -rc;
		return NULL;
	}
	if (t != NULL && t->generation == conn_generation())
		return t; /* reconnected, our control block re-adopted: slot intact */
	if (t != NULL) {
		/* A new control block: the old slot's blocks are the daemon's to
		 * take back when this process is gone. */
		t->slot = NULL;
		tslots_leave(t->index);
		tcache_self = NULL;
	}
	pthread_once(&exit_once, make_key);
	t = tslots_take();
	if (t == NULL) {
		errno = EAGAIN;
		return NULL;
	}
	pthread_setspecific(exit_key, t);
	tcache_self = t;
	return t;
}

/* Reserves the refs of bin cls the first time this thread uses it (a slot
 * another thread left has them already: the call is then cheap); until then
 * room[cls] is 0, so every free of the class comes here.  0 or -errno. */
static int bin_ready(struct tcache *t, unsigned cls)
{
	if (t->hot[cls].room != 0)
		return 0;
	/* As many refs as the bin ever holds (its high water, not the
	 * layout's capacity): the daemon reads no further than the count,
	 * and a page it reads that was never reserved reads as zeros. */
	int rc = conn_reserve_refs(t->index, bin_first[cls], high_water(cls));
	if (rc == 0)
		set_room(t, cls, high_water(cls));
	return rc;
}

/* Where a refill's objects go (call_refill_take()): into bin cls of t while
 * it is below its high water. */
struct bin_put {
	struct tcache *t;
	unsigned cls;
	uint32_t cap;
};

/* The objects of a refill for a slot of an older control block: neither
 * kept nor given back (they are the daemon's to take back when this
 * process is gone, with the slot). */
static int discard(void *arg, uint64_t ref)
{
	(void)arg;
	(void)ref;
	return 1;
}

static int bin_put(void *arg, uint64_t ref)
{
	struct bin_put *p = arg;
	uint32_t *count = &p->t->slot->bins[p->cls].count;
	if (*count >= p->cap)
		return 0;
	tcache_push(count, p->t->hot[p->cls].stack, *count, ref);
	return 1;
}

/* Collects the answer to refill ticket into bin cls; 0 or -errno. */
static int take_refill(struct tcache *t, unsigned cls, call_ticket ticket)
{
	if (t->generation != conn_generation())
		return call_refill_take(ticket, cls, discard, NULL, NULL);
	struct bin_put p = {.t = t, .cls = cls, .cap = high_water(cls)};
	return call_refill_take(ticket, cls, bin_put, &p, &t->slot->bins[cls].collected);
}

/* One object straight from the daemon, for a thread that has no slot (more
 * threads than the control block holds); with the lock held. */
static void *alloc_uncached(unsigned cls)
{
	uint64_t ref = call_object(cls);
	return ref != 0 ? map_ptr(ref) : NULL;
}

/* The calling thread's cache while the connection is lost and it still
 * holds objects of the class, else NULL: those go on being used, and the
 * reconnection waits until they run out. */
static struct tcache *self_offline(unsigned cls)
{
	struct tcache *t = tcache_self;
	if (t == NULL || t->slot == NULL || conn_connected() || t->generation != conn_generation())
		return NULL;
	return t->slot->bins[cls].count > 0 ? t : NULL;
}

/* The next batch of a class: twice as large while the class is refilled in
 * quick succession (it keeps missing), half as large when it is not, between
 * BATCH_START and the cap; the next refill is asked for at half of it. */
static void adapt_batch(struct tcache *t, unsigned cls)
{
	uint64_t now = monotonic_ns(), since = now - t->last_refill_ns[cls];
	uint32_t b = t->batch[cls];
	t->last_refill_ns[cls] = now;
	if (since < GROW_WITHIN_NS)
		b = b * 2 > batch_cap(cls) ? batch_cap(cls) : b * 2;
	else if (since > SHRINK_AFTER_NS && b / 2 >= BATCH_START)
		b /= 2;
	t->batch[cls] = (uint16_t)b;
	set_low(t, cls, b / 2);
}

/* How many objects a refill of cls asks for: the batch, but no more than the
 * thread's cache budget has room for (and at least a few). */
static uint32_t refill_count(const struct tcache *t, unsigned cls)
{
	uint64_t size = sizeclass_size(cls), cached = cached_bytes(t);
	uint64_t room = cached < THREAD_CACHE_MAX ? (THREAD_CACHE_MAX - cached) / size : 0;
	uint32_t n = t->batch[cls], least = n < 8 ? n : 8;
	if (n > room)
		n = room > least ? (uint32_t)room : least;
	uint32_t count = t->slot->bins[cls].count, hw = high_water(cls);
	uint32_t free_slots = count < hw ? hw - count : 0;
	return n < free_slots ? n : free_slots ? free_slots : 1;
}

/* Refills bin cls and waits for it: the refill asked ahead of need if it is
 * on this connection, else a new one.  0 or -errno. */
static int refill_now(struct tcache *t, unsigned cls)
{
	call_ticket id = t->pending[cls];
	t->pending[cls] = 0;
	if (id != 0 && !call_ticket_live(id))
		id = 0; /* asked on a connection that is gone: never answered */
	if (id == 0)
		id = call_refill_ask(t->index, cls, refill_count(t, cls));
	int rc = id ? take_refill(t, cls, id) : -ECONNRESET;
	adapt_batch(t, cls);
	return rc;
}

/* The calling thread's cache, as self_locked(); when that connects us with
 * no slot of ours held anywhere, the first refill of cls rides behind the
 * Hello (call_connect_refill()): the block is new, this thread takes its
 * slot 0, and its first malloc waits for one round trip instead of two.
 * Should the refill find no bin to go to (not expected), its objects go
 * back, so none is lost. */
static struct tcache *first_refill(unsigned cls)
{
	call_ticket id = 0;
	/* The first batches of the small classes come in the new block
	 * (shm/layout.h: layout_prefilled()): for those the Hello goes alone
	 * (self_locked() connects), for the others a refill rides behind it. */
	if (!conn_connected() && tslots_none_owned())
		conn_want_first_batches(1);
	if (!conn_connected() && tslots_none_owned() && !layout_prefilled(cls)) {
		uint32_t n = BATCH_START < batch_cap(cls) ? BATCH_START : batch_cap(cls);
		uint64_t room = THREAD_CACHE_MAX / sizeclass_size(cls);
		int rc = call_connect_refill(cls, n < room ? n : room > 8 ? (uint32_t)room : 8, &id);
		if (rc != 0) {
			errno = -rc;
			return NULL;
		}
	}
	struct tcache *t = self_locked();
	conn_want_first_batches(0);
	if (id != 0 && call_ticket_live(id)) {
		if (t != NULL && t->index == 0 && t->pending[cls] == 0)
			t->pending[cls] = id;
		else
			call_refill_take(id, cls, NULL, NULL, NULL);
	}
	return t;
}

int tcache_connect(unsigned cls)
{
	conn_lock();
	first_refill(cls);
	int rc = conn_connected() ? 0 : -1; /* errno: self_locked()'s */
	conn_unlock();
	return rc;
}

void *tcache_alloc_slow(unsigned cls)
{
	/* The fast path refuses a count past the room or a top ref outside
	 * the heap (a broken daemon's): mended here, said once. */
	struct tcache *me = tcache_self;
	if (me != NULL && me->slot != NULL)
		distrust_bin(me, cls);
	void *p = xfer_alloc(cls); /* a sibling's batch: no lock, no round trip */
	if (p != NULL)
		return p;
	conn_lock();
	struct tcache *t = self_offline(cls);
	if (t == NULL)
		t = first_refill(cls);
	if (t == NULL) {
		p = errno == EAGAIN ? alloc_uncached(cls) : NULL;
		conn_unlock();
		return p;
	}
	struct tcache_bin *b = &t->slot->bins[cls];
	int rc = 0;
	if (bin_ready(t, cls) != 0) {
		/* No room in /dev/shm for the bin: this one straight from the
		 * daemon, uncached. */
		p = alloc_uncached(cls);
		conn_unlock();
		return p;
	}
	if (b->count == 0 && (p = xfer_alloc(cls)) != NULL) {
		conn_unlock(); /* a batch in the control block: no round trip */
		return p;
	}
	if (b->count == 0) {
		/* A refill asked ahead of need that is already here is no wait. */
		if (!call_ticket_ready(t->pending[cls]))
			t->slot->waits++;
		rc = refill_now(t, cls);
		/* The daemon was restarted under us: once more, on a new
		 * connection, if our control block (and so b) is still ours. */
		if (rc == -ECONNRESET && b->count == 0 && self_locked() == t)
			rc = refill_now(t, cls);
	} else if (conn_connected() &&
		   (t->pending[cls] == 0 || !call_ticket_live(t->pending[cls]))) {
		t->pending[cls] = call_refill_ask(t->index, cls, refill_count(t, cls));
		set_low(t, cls, 0); /* the fast path until the bin is empty */
	}
	conn_unlock();
	if (distrust_bin(t, cls) == 0) {
		errno = rc == -ENOMEM || rc == 0 ? ENOMEM : -rc;
		return NULL;
	}
	return tcache_pop(&b->count, t->hot[cls].stack, b->count);
}

void tcache_free_direct(uint64_t ref)
{
	conn_lock();
	if (conn_ensure() == 0)
		call_flush(&ref, 1);
	conn_unlock();
}

void tcache_free_slow(unsigned cls, uint64_t ref)
{
	/* A count past the room (a broken daemon's) sends the fast path here:
	 * mended before anything reads the bin. */
	struct tcache *me = tcache_self;
	if (me != NULL && me->slot != NULL)
		distrust_bin(me, cls);
	if (xfer_free(cls, ref)) /* half the full bin to a sibling: no lock */
		return;
	conn_lock();
	/* While the connection is lost, frees go to the cache (flush_bin keeps
	 * them): no reconnection on a free. */
	struct tcache *t = tcache_self;
	if (t == NULL || t->slot == NULL || conn_connected() || t->generation != conn_generation())
		t = self_locked();
	if (t == NULL || bin_ready(t, cls) != 0) {
		/* No cache for this thread (or no room for the bin): hand the
		 * block straight back. */
		if (conn_ensure() == 0)
			call_flush(&ref, 1);
		conn_unlock();
		return;
	}
	struct tcache_bin *b = &t->slot->bins[cls];
	if (b->count >= high_water(cls)) {
		/* Full: a refill asked ahead would only go back.  If its answer
		 * is here, take it in now (what does not fit goes back at once)
		 * rather than hold its objects out until the bin runs dry. */
		if (call_ticket_ready(t->pending[cls])) {
			take_refill(t, cls, t->pending[cls]);
			t->pending[cls] = 0;
			set_low(t, cls, t->batch[cls] / 2u);
		}
		flush_bin(t, cls, b->count / 2);
	}
	if (b->count >= high_water(cls)) {
		/* Offline and full: this one goes back when we can. */
		uint64_t one = ref;
		if (conn_ensure() == 0)
			call_flush(&one, 1);
		conn_unlock();
		return;
	}
	tcache_push(&b->count, t->hot[cls].stack, b->count, ref);
	if (cached_bytes(t) > THREAD_CACHE_MAX)
		for (unsigned c = 0; c < SIZECLASS_COUNT; c++)
			flush_bin(t, c, t->slot->bins[c].count / 2);
	conn_unlock();
}

void tcache_flush_all(void)
{
	if (!conn_connected())
		return;
	xfer_flush_all(); /* the batches between our threads go back too */
	tslots_flush_parked();
	struct tcache *t = tcache_self;
	if (t == NULL || t->slot == NULL)
		return;
	if (t->generation == conn_generation())
		tcache_flush_everything(t);
}

void tcache_forget(void)
{
	/* After fork(): the slot belongs to the parent's control block, and
	 * the parent's other threads are not here. */
	tcache_self = NULL;
	tslots_forget();
}
