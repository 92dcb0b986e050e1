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
 * dry before a refill arrived, up to a cap that keeps one class's batch
 * near 256 KiB (and within half the bin).  When a class falls below a quarter of its batch, the next
 * allocation asks for a refill without waiting for it; the answer is
 * usually there when the cache runs dry.  Frees: past twice the batch cap,
 * half of the class goes back to the daemon in one message nobody waits for.
 */
#include "config.h"

#include "client.h"
#include "debug.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define BATCH_START 32u
#define THREAD_CACHE_MAX ((uint64_t)4 << 20)
#define FLUSH_CHUNK 4096u
#define GROW_WITHIN_NS 5000000u    /* refilled again within 5 ms: grow */
#define SHRINK_AFTER_NS 100000000u /* not for 100 ms: shrink */

__thread struct tcache *tcache_self __attribute__((tls_model("initial-exec")));

static struct tcache locals[SHMA_CONTROL_SLOTS];
/* 1 while locals[i] is a live thread's cache, with the lock held.  After
 * shma_disconnect() and a new connection, slot i of the new control block
 * may be free while a thread still pops from and pushes to slot i of the old
 * one through locals[i] (its fast path does not look at the generation):
 * take_slot() must not hand locals[i] to another thread then.  It did: two
 * threads shared one cache (blocks handed to both) or one zeroed the other's
 * under it (SIGSEGV in the fast path). */
static uint8_t locals_owned[SHMA_CONTROL_SLOTS];
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static uint32_t batch_cap(unsigned cls)
{
	return layout_bin_batch_cap(cls);
}

static uint32_t bin_first[SIZECLASS_COUNT];

static uint32_t high_water(unsigned cls)
{
	return layout_bin_capacity(cls);
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

/* With room checked by the caller. */
static inline void push(struct tcache *t, unsigned cls, uint64_t ref)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	t->stack[cls][b->count] = ref;
	/* The ref is in the array before the count says so: the daemon reads
	 * no further than the count. */
	__atomic_store_n(&b->count, b->count + 1, __ATOMIC_RELEASE);
}

static inline void *pop(struct tcache *t, unsigned cls)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	uint32_t n = b->count - 1;
	b->count = n;
	return map_ptr(t->stack[cls][n]);
}

/* Sends refs back to the daemon in one message nobody waits for. */
static void send_flush(uint64_t *refs, uint32_t n)
{
	Shma__Request req;
	Shma__Flush f;
	wire_flush(&req, &f, refs, n, 0);
	conn_send(&req); /* lost with the connection: in flight, they leak */
}

/* Sends up to n objects of bin cls back to the daemon (from the top of the
 * stack); with the lock held. */
static void flush_bin(struct tcache *t, unsigned cls, uint32_t n)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	uint64_t refs[FLUSH_CHUNK];
	if (!conn_connected())
		return; /* keep them: the daemon may give us our control block back */
	while (n > 0 && b->count > 0) {
		uint32_t k = n < FLUSH_CHUNK ? n : FLUSH_CHUNK;
		if (k > b->count)
			k = b->count;
		uint32_t left = b->count - k;
		memcpy(refs, t->stack[cls] + left, k * sizeof *refs);
		/* Out of the bin before they go: a death in between leaks them
		 * (in flight) rather than have the daemon take them twice. */
		__atomic_store_n(&b->count, left, __ATOMIC_RELEASE);
		n -= k;
		send_flush(refs, k);
	}
}

static int take_refill(struct tcache *t, unsigned cls, uint64_t id);

/* Collects the refills asked ahead of need, then sends every bin back;
 * with the lock held and the connection current. */
static void flush_everything(struct tcache *t)
{
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		if (t->pending[cls] && conn_id_current(t->pending[cls]))
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
		flush_everything(t);
		struct control_block *cb = conn_control();
		/* The counts live on in the header once the slot is free. */
		cb->hdr.retired_mallocs += t->slot->mallocs;
		cb->hdr.retired_waits += t->slot->waits;
		t->slot->mallocs = t->slot->waits = 0;
	}
	/* A slot whose blocks could not go back stays taken, so that no thread
	 * clears it: the daemon takes them back when the process is gone. */
	if (!mine || conn_connected())
		__atomic_store_n(&t->slot->in_use, 0, __ATOMIC_RELEASE);
	t->slot = NULL;
	locals_owned[t->index] = 0;
	conn_unlock();
	tcache_self = NULL;
}

static void make_key(void)
{
	init_firsts();
	pthread_key_create(&exit_key, thread_exit);
}

/* Takes a free slot of the control block; with the lock held. */
static struct tcache *take_slot(void)
{
	struct control_block *cb = conn_control();
	if (cb == NULL)
		return NULL;
	for (unsigned i = 0; i < SHMA_CONTROL_SLOTS; i++) {
		struct control_slot *s = &cb->slots[i];
		uint32_t zero = 0;
		if (locals_owned[i])
			continue; /* a thread's cache still, on an older block */
		/* Raised before the slot is taken: the daemon reads no further
		 * (we hold the lock: no other thread of ours writes it). */
		if (cb->hdr.slots_taken <= i)
			__atomic_store_n(&cb->hdr.slots_taken, i + 1, __ATOMIC_RELEASE);
		if (!__atomic_compare_exchange_n(&s->in_use, &zero, 1, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		struct tcache *t = &locals[i];
		locals_owned[i] = 1;
		/* Empty bins; the collected marks stay, they are the daemon's
		 * record of refills this slot took in.  A bin's refs are
		 * reserved when the thread first uses the bin (bin_ready()): a
		 * first malloc makes a page or two of the control block, not
		 * the slot's 432 KiB. */
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
			s->bins[cls].count = 0;
		s->mallocs = s->waits = 0;
		memset(t, 0, sizeof *t);
		t->slot = s;
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
			t->stack[cls] = &cb->refs[i][bin_first[cls]];
		t->index = i;
		t->generation = conn_generation();
		for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
			t->batch[cls] = (uint16_t)(BATCH_START < batch_cap(cls) ? BATCH_START
										  : batch_cap(cls));
			t->low[cls] = t->batch[cls] / 2;
		}
		return t;
	}
	return NULL; /* more threads than slots: this one goes uncached */
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
		locals_owned[t->index] = 0;
		tcache_self = NULL;
	}
	pthread_once(&exit_once, make_key);
	t = take_slot();
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
	if (t->room[cls] != 0)
		return 0;
	int rc = conn_reserve_refs(t->index, bin_first[cls], high_water(cls));
	if (rc == 0)
		t->room[cls] = (uint16_t)high_water(cls);
	return rc;
}

/* A ref the daemon sent for class cls: the start of an object of the heap
 * (its boundary is the daemon's to know; the range is ours to check). */
static int ref_ok(uint64_t ref, uint64_t size)
{
	return ref != 0 && ref < map_view.range && map_view.range - ref >= size;
}

/* A refill's ref, believed only if the page map (read-only to us) says it
 * is the start of an object of class cls: not in an arena's metadata pages,
 * past the heap, inside an object or in another class's span.  The slow
 * path's check; a divide a ref. */
static int refill_ref_ok(uint64_t ref, unsigned cls)
{
	unsigned c;
	return ref_ok(ref, sizeclass_size(cls)) && map_small_ref(map_ptr(ref), &c, 1) == ref &&
	       c == cls;
}

/* A refill's run of count objects of class cls from first: its first and
 * last objects are objects of one span of the class (count is bounded by
 * the caller). */
static int refill_run_ok(uint64_t first, uint32_t count, unsigned cls)
{
	uint64_t size = sizeclass_size(cls), last = first + (uint64_t)(count - 1) * size;
	if (!refill_ref_ok(first, cls) || !refill_ref_ok(last, cls))
		return 0;
	const struct page_entry *pe = map_page(first);
	if (pe == NULL)
		return 0;
	uint64_t start = (first & ~(map_view.arena_size - 1)) +
			 ((uint64_t)pe->span_start << SHMA_PAGE_SHIFT);
	return last < start + (uint64_t)sizeclass_table[cls].objects * size;
}

/* Takes the refill's objects into bin cls; what does not fit (the bin
 * filled with frees since it was asked for) goes back at once. */
static void push_refs(struct tcache *t, unsigned cls, const Shma__RefillReply *r)
{
	struct tcache_bin *b = &t->slot->bins[cls];
	uint64_t size = sizeclass_size(cls);
	uint32_t cap = layout_bin_capacity(cls), nback = 0;
	uint64_t back[FLUSH_CHUNK];
	for (size_t i = r->n_runs; i-- > 0;) {
		const Shma__Run *run = r->runs[i];
		if (run->count == 0 || run->count > FLUSH_CHUNK * 4 ||
		    !ref_ok(run->first, (uint64_t)run->count * size) ||
		    !refill_run_ok(run->first, run->count, cls))
			continue; /* not ours to use, nor to give back */
		for (uint32_t j = run->count; j-- > 0;) {
			uint64_t ref = run->first + (uint64_t)j * size;
			if (b->count < cap) {
				push(t, cls, ref);
			} else {
				back[nback++] = ref;
				if (nback == FLUSH_CHUNK)
					send_flush(back, nback), nback = 0;
			}
		}
	}
	for (size_t i = r->n_refs; i-- > 0;) {
		uint64_t ref = r->refs[i];
		if (!refill_ref_ok(ref, cls))
			continue;
		if (b->count < cap) {
			push(t, cls, ref);
		} else {
			back[nback++] = ref;
			if (nback == FLUSH_CHUNK)
				send_flush(back, nback), nback = 0;
		}
	}
	if (nback)
		send_flush(back, nback);
}

static uint64_t send_refill(const struct tcache *t, unsigned cls, uint32_t count)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, count, t->index + 1);
	return conn_send(&req);
}

/* Collects the answer to refill id; with the lock held.  0 or -errno. */
static int take_refill(struct tcache *t, unsigned cls, uint64_t id)
{
	Shma__Response *resp;
	int rc = conn_wait(id, &resp);
	if (rc == 0 && (resp->body_case != SHMA__RESPONSE__BODY_REFILL ||
			resp->refill->size_class != cls))
		rc = -EPROTO;
	if (rc == 0 && t->generation == conn_generation()) {
		push_refs(t, cls, resp->refill);
		/* In the bin now: tell the daemon, before any can be popped
		 * (server/inflight.h). */
		__atomic_store_n(&t->slot->bins[cls].collected, id, __ATOMIC_RELEASE);
	}
	conn_done();
	return rc;
}

/* One object straight from the daemon, for a thread that has no slot (more
 * threads than the control block holds); with the lock held. */
static void *alloc_uncached(unsigned cls)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, 1, 0);
	Shma__Response *resp;
	int rc = conn_call(&req, &resp);
	uint64_t ref = 0;
	if (rc == 0 && resp->body_case == SHMA__RESPONSE__BODY_REFILL) {
		const Shma__RefillReply *r = resp->refill;
		ref = r->n_refs ? r->refs[0] : r->n_runs ? r->runs[0]->first : 0;
	}
	if (resp)
		conn_done();
	if (!refill_ref_ok(ref, cls)) {
		errno = rc == 0 ? EPROTO : -rc;
		return NULL;
	}
	return map_ptr(ref);
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

/* The clock adapt_batch() reads: CLOCK_MONOTONIC, on the slow path only. */
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The next batch of a class: twice as large while the class is refilled in
 * quick succession (it keeps missing), half as large when it is not, between
 * BATCH_START and the cap; the next refill is asked for at half of it. */
static void adapt_batch(struct tcache *t, unsigned cls)
{
	uint64_t now = now_ns(), since = now - t->last_refill_ns[cls];
	uint32_t b = t->batch[cls];
	t->last_refill_ns[cls] = now;
	if (since < GROW_WITHIN_NS)
		b = b * 2 > batch_cap(cls) ? batch_cap(cls) : b * 2;
	else if (since > SHRINK_AFTER_NS && b / 2 >= BATCH_START)
		b /= 2;
	t->batch[cls] = (uint16_t)b;
	t->low[cls] = (uint16_t)(b / 2);
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
	uint32_t free_slots = layout_bin_capacity(cls) - t->slot->bins[cls].count;
	return n < free_slots ? n : free_slots ? free_slots : 1;
}

/* Refills bin cls and waits for it: the refill asked ahead of need if it is
 * on this connection, else a new one.  0 or -errno. */
static int refill_now(struct tcache *t, unsigned cls)
{
	uint64_t id = t->pending[cls];
	t->pending[cls] = 0;
	if (id != 0 && !conn_id_current(id))
		id = 0; /* asked on a connection that is gone: never answered */
	if (id == 0)
		id = send_refill(t, cls, refill_count(t, cls));
	int rc = id ? take_refill(t, cls, id) : -ECONNRESET;
	adapt_batch(t, cls);
	return rc;
}

/* 1 if no thread of ours holds a slot of any control block, old or new. */
static int no_slot_owned(void)
{
	for (unsigned i = 0; i < SHMA_CONTROL_SLOTS; i++)
		if (locals_owned[i])
			return 0;
	return 1;
}

/* Takes in the answer to refill id that no bin will have (not expected:
 * see first_refill()) and gives its objects back, so none is lost. */
static void drop_refill(uint64_t id)
{
	Shma__Response *resp;
	if (conn_wait(id, &resp) == 0 && resp->body_case == SHMA__RESPONSE__BODY_REFILL &&
	    resp->refill->size_class < SIZECLASS_COUNT) {
		const Shma__RefillReply *r = resp->refill;
		unsigned cls = (unsigned)r->size_class;
		uint64_t size = sizeclass_size(cls), back[FLUSH_CHUNK];
		uint32_t n = 0;
		for (size_t i = 0; i < r->n_runs; i++) {
			const Shma__Run *run = r->runs[i];
			if (run->count == 0 || run->count > FLUSH_CHUNK * 4 ||
			    !ref_ok(run->first, (uint64_t)run->count * size) ||
			    !refill_run_ok(run->first, run->count, cls))
				continue;
			for (uint32_t j = 0; j < run->count; j++) {
				back[n++] = run->first + (uint64_t)j * size;
				if (n == FLUSH_CHUNK)
					send_flush(back, n), n = 0;
			}
		}
		for (size_t i = 0; i < r->n_refs; i++) {
			if (!refill_ref_ok(r->refs[i], cls))
				continue;
			back[n++] = r->refs[i];
			if (n == FLUSH_CHUNK)
				send_flush(back, n), n = 0;
		}
		if (n)
			send_flush(back, n);
	}
	conn_done();
}

/* The calling thread's cache, as self_locked(); when that connects us with
 * no slot of ours held anywhere, the first refill of cls rides behind the
 * Hello (conn.c): the block is new, this thread takes its slot 0, and its
 * first malloc waits for one round trip instead of two. */
static struct tcache *first_refill(unsigned cls)
{
	if (!conn_connected() && no_slot_owned()) {
		uint32_t n = BATCH_START < batch_cap(cls) ? BATCH_START : batch_cap(cls);
		uint64_t room = THREAD_CACHE_MAX / sizeclass_size(cls);
		conn_want_first_refill(cls, n < room ? n : room > 8 ? (uint32_t)room : 8);
	}
	struct tcache *t = self_locked();
	conn_want_first_refill(0, 0);
	unsigned ecls = 0;
	uint64_t id = conn_first_refill(&ecls);
	if (id != 0) {
		if (t != NULL && t->index == 0 && ecls == cls && t->pending[cls] == 0)
			t->pending[cls] = id;
		else
			drop_refill(id);
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
	conn_lock();
	struct tcache *t = self_offline(cls);
	if (t == NULL)
		t = first_refill(cls);
	if (t == NULL) {
		void *p = errno == EAGAIN ? alloc_uncached(cls) : NULL;
		conn_unlock();
		return p;
	}
	struct tcache_bin *b = &t->slot->bins[cls];
	int rc = 0;
	if (bin_ready(t, cls) != 0) {
		/* No room in /dev/shm for the bin: this one straight from the
		 * daemon, uncached. */
		void *p = alloc_uncached(cls);
		conn_unlock();
		return p;
	}
	t->slot->mallocs++;
	if (b->count == 0) {
		/* A refill asked ahead of need that is already here is no wait. */
		if (t->pending[cls] == 0 || !conn_id_current(t->pending[cls]) || !conn_readable())
			t->slot->waits++;
		rc = refill_now(t, cls);
		/* The daemon was restarted under us: once more, on a new
		 * connection, if our control block (and so b) is still ours. */
		if (rc == -ECONNRESET && b->count == 0 && self_locked() == t)
			rc = refill_now(t, cls);
	} else if (conn_connected() &&
		   (t->pending[cls] == 0 || !conn_id_current(t->pending[cls]))) {
		t->pending[cls] = send_refill(t, cls, refill_count(t, cls));
		t->low[cls] = 0; /* the fast path until the bin is empty */
	}
	conn_unlock();
	if (b->count == 0) {
		errno = rc == -ENOMEM || rc == 0 ? ENOMEM : -rc;
		return NULL;
	}
	return pop(t, cls);
}

void tcache_free_slow(unsigned cls, uint64_t ref)
{
	conn_lock();
	/* While the connection is lost, frees go to the cache (flush_bin keeps
	 * them): no reconnection on a free. */
	struct tcache *t = tcache_self;
	if (t == NULL || t->slot == NULL || conn_connected() || t->generation != conn_generation())
		t = self_locked();
	if (t == NULL || bin_ready(t, cls) != 0) {
		/* No cache for this thread (or no room for the bin): hand the
		 * block straight back. */
		Shma__Request req;
		Shma__Flush f;
		wire_flush(&req, &f, &ref, 1, 0);
		if (conn_ensure() == 0)
			conn_send(&req);
		conn_unlock();
		return;
	}
	struct tcache_bin *b = &t->slot->bins[cls];
	if (b->count >= high_water(cls))
		flush_bin(t, cls, b->count / 2);
	if (b->count >= high_water(cls)) {
		/* Offline and full: this one goes back when we can. */
		uint64_t one = ref;
		if (conn_ensure() == 0)
			send_flush(&one, 1);
		conn_unlock();
		return;
	}
	push(t, cls, ref);
	if (cached_bytes(t) > THREAD_CACHE_MAX)
		for (unsigned c = 0; c < SIZECLASS_COUNT; c++)
			flush_bin(t, c, t->slot->bins[c].count / 2);
	conn_unlock();
}

void tcache_flush_all(void)
{
	struct tcache *t = tcache_self;
	if (t == NULL || t->slot == NULL)
		return;
	if (t->generation == conn_generation() && conn_connected())
		flush_everything(t);
}

void tcache_forget(void)
{
	/* After fork(): the slot belongs to the parent's control block, and
	 * the parent's other threads are not here. */
	tcache_self = NULL;
	memset(locals_owned, 0, sizeof locals_owned);
}
