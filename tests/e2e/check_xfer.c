/* SPDX-License-Identifier: MIT */
/*
 * End to end, the transfer cache (client/lib/xfer.c): batches between the
 * threads of one process, in its control block, without the daemon.
 *
 * What must hold: a producer thread and a consumer thread exchanging
 * messages send the daemon nothing once warm (counted: the client's
 * requests in the daemon's stats); a process killed at any instant while
 * batches move loses no block and hands none out twice; a thread killed at
 * each step of a move leaves words from which the daemon takes each batch
 * once; a transfer cache full of lies costs the daemon nothing but the
 * liar's refusals; and a new process's first mallocs of the small classes
 * find their batches in the control block the Hello brought.
 */
#include "e2e.h"
#include "layout.h"
#include "recovery.h"
#include "shmalloc.h"
#include "skip.h"
#include "users.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define RING 64
#define NSIZES 4
static const size_t sizes[NSIZES] = {64, 128, 200, 256};

/* One producer -> consumer flow through a ring of refs, in memory the test
 * sees after a kill: message i is of size msg_size(i); pending refs are the
 * one malloc and the one free under way (which the kill may have cut). */
struct flow {
	volatile uint64_t head, tail;
	volatile uint64_t slot[RING];
	volatile uint64_t made;  /* messages in the ring so far */
	uint64_t limit;          /* messages to make */
	volatile uint64_t p_pending, c_pending;
	volatile int bad;        /* a message overwritten: a block handed out twice */
	int die_on_bad;
	volatile uint64_t eaten; /* messages freed so far */
	volatile int quit;       /* the uid area's tests: the processes may go */
	volatile int go;         /* and may start (on_ud()) */
};

static size_t msg_size(uint64_t i)
{
	return sizes[i % NSIZES];
}

static void *producer(void *arg)
{
	struct flow *f = arg;
	for (uint64_t i = 0; i < f->limit; i++) {
		size_t n = msg_size(i);
		void *p = shma_malloc(n);
		if (p == NULL) {
			f->bad = 1;
			if (f->die_on_bad)
				_exit(4);
			return NULL;
		}
		uint64_t ref = shma_ref(p);
		f->p_pending = ref;
		e2e_fill(p, n, ref);
		while (f->head - __atomic_load_n(&f->tail, __ATOMIC_ACQUIRE) == RING)
			sched_yield();
		f->slot[f->head % RING] = ref;
		__atomic_store_n(&f->head, f->head + 1, __ATOMIC_RELEASE);
		f->p_pending = 0;
		__atomic_store_n(&f->made, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct flow *f = arg;
	for (uint64_t i = 0; i < f->limit; i++) {
		while (__atomic_load_n(&f->head, __ATOMIC_ACQUIRE) == f->tail)
			sched_yield();
		uint64_t ref = f->slot[f->tail % RING];
		f->c_pending = ref;
		__atomic_store_n(&f->tail, f->tail + 1, __ATOMIC_RELEASE);
		void *p = shma_ptr(ref);
		if (p == NULL || !e2e_check_fill(p, msg_size(i), ref)) {
			f->bad = 1;
			if (f->die_on_bad)
				_exit(3);
			continue;
		}
		shma_free(p);
		f->c_pending = 0;
		__atomic_store_n(&f->eaten, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void flow_start(struct flow *f, pthread_t th[2])
{
	ck_assert_int_eq(pthread_create(&th[0], NULL, producer, f), 0);
	ck_assert_int_eq(pthread_create(&th[1], NULL, consumer, f), 0);
}

static void flow_join(pthread_t th[2])
{
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
}

/* ---- steady state: no request ---- */

#define WARM 50000
#define STEADY 400000

START_TEST(a_thread_to_thread_churn_sends_no_request_in_steady_state)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	struct flow *f = calloc(1, sizeof *f);
	ck_assert_ptr_nonnull(f);
	f->limit = WARM + STEADY;
	pthread_t th[2];
	flow_start(f, th);
	while (__atomic_load_n(&f->made, __ATOMIC_ACQUIRE) < WARM && !f->bad)
		sched_yield();
	uint64_t requests0 = e2e_my_stat("\"requests\":");
	uint64_t waits0 = e2e_my_stat("\"waits\":");
	flow_join(th);
	uint64_t asked = e2e_my_stat("\"requests\":") - requests0;
	uint64_t waited = e2e_my_stat("\"waits\":") - waits0;
	ck_assert_int_eq(f->bad, 0);
	/* Before: a Flush of the consumer's and a Refill of the producer's
	 * every batch (4 010 for these 400 000 messages).  Now the batches go
	 * from one bin to the other through the control block: the requests
	 * counted are the two Stats between the counts (2 in every run here;
	 * a few more would be a scheduling accident, not a batch a message). */
	ck_assert_msg(asked <= 2 + 4, "%llu requests and %llu waits for %d messages",
		      (unsigned long long)asked, (unsigned long long)waited, STEADY);
	free(f);
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(0), 0);
	shma_disconnect();
}
END_TEST

/* ---- killed at random while batches move ---- */

static int flow_forever(void *arg)
{
	struct flow *f = arg;
	f->limit = UINT64_MAX;
	f->die_on_bad = 1;
	pthread_t th[2];
	flow_start(f, th);
	flow_join(th); /* never: the parent kills us */
	return 5;
}

/* Entries of cb's transfer cache that are not empty. */
static unsigned entries_busy(const struct control_block *cb)
{
	unsigned n = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		for (unsigned e = 0; e < SHMA_XFER_ENTRIES; e++)
			n += __atomic_load_n(&cb->hdr.xfer[cls].state[e], __ATOMIC_RELAXED) != 0;
	return n;
}

/* Frees what the dead producer and consumer of f surely held (the ring but
 * a message the kill may have caught being freed); returns the bytes the two
 * operations under way may have left out. */
static uint64_t free_what_it_held(struct flow *f)
{
	uint64_t slack = 0;
	int p_in_ring = 0;
	for (uint64_t i = f->tail; i < f->head; i++) {
		uint64_t ref = f->slot[i % RING];
		p_in_ring |= ref == f->p_pending;
		if (ref == f->c_pending) {
			slack += 512;
			continue;
		}
		void *p = shma_ptr(ref);
		ck_assert_ptr_nonnull(p);
		ck_assert_msg(e2e_check_fill(p, msg_size(i), ref),
			      "message %llu of a killed process was overwritten", (unsigned long long)i);
		shma_free(p);
	}
	if (f->c_pending != 0 && slack == 0)
		slack += 512;
	if (f->p_pending != 0 && !p_in_ring)
		slack += 512;
	return slack;
}

/* Connected: frees what the killed processes of flows[0, rounds) surely
 * held, then (on a new connection, the old one's caches gone) asserts that
 * every block came back, none twice: in_use_bytes falls to what the kills
 * may have caught under way, and no ref was refused (a batch taken back
 * twice would be).  Connected after. */
static void all_back_once(struct flow *flows, unsigned rounds)
{
	uint64_t slack = 0;
	for (unsigned r = 0; r < rounds; r++)
		slack += free_what_it_held(&flows[r]);
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use = e2e_wait_in_use_at_most(0);
	/* A batch lost is 16 KiB and more; two operations under way a kill, 1 KiB. */
	ck_assert_msg(in_use <= slack, "in_use_bytes %llu once every block was freed "
		      "(the operations under way at the kills allow %llu)",
		      (unsigned long long)in_use, (unsigned long long)slack);
	ck_assert_int_eq(e2e_log_has(&e2e, "refs of its caches refused"), 0);
	ck_assert_int_eq(e2e_log_has(&e2e, "refs of its transfer area refused"), 0);
}

START_TEST(a_process_killed_while_batches_move_loses_no_block)
{
	enum { ROUNDS = 12 };
	struct flow *flows = mmap(NULL, ROUNDS * sizeof *flows, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(flows, MAP_FAILED);
	srand((unsigned)getpid());
	unsigned caught = 0;
	for (unsigned r = 0; r < ROUNDS; r++) {
		struct flow *f = &flows[r];
		pid_t pid = e2e_fork(flow_forever, f);
		/* A random instant, counted in messages, not in time, at which
		 * batches are in the cache (looked for a while: under Valgrind,
		 * which runs one thread at a time, they mostly are not). */
		uint64_t at = 20000 + (uint64_t)(rand() % 40000);
		struct control_block *cb = NULL;
		for (uint64_t made = 0; made < at || (entries_busy(cb) == 0 && made < 4 * at);) {
			ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0); /* it died first */
			sched_yield();
			made = __atomic_load_n(&f->made, __ATOMIC_ACQUIRE);
			if (cb == NULL && made > 0)
				ck_assert_ptr_nonnull(cb = recovery_control_block_of(pid));
		}
		caught += entries_busy(cb) > 0;
		kill(pid, SIGKILL);
		munmap(cb, sizeof *cb);
		ck_assert_int_eq(e2e_wait(pid), 128 + SIGKILL);
	}
	/* Batches were there at (nearly) every kill: the test is about them. */
	ck_assert_uint_ge(caught, ROUNDS / 2);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	all_back_once(flows, ROUNDS);
	ck_assert_uint_gt(e2e_stat("\"reclaimed_objects\":"), 0);
	ck_assert_uint_eq(recovery_stat_rejected(), 0);
	shma_disconnect();
	munmap(flows, ROUNDS * sizeof *flows);
}
END_TEST

/* ---- a thread killed at each step of a move ---- */

/* Runs a flow to its end in this process: bins and entries of the four
 * classes hold free blocks, the ring is empty. */
static int warm_flow(struct flow *f)
{
	f->limit = 40000;
	pthread_t th[2];
	flow_start(f, th);
	flow_join(th);
	return f->bad ? 30 : 0;
}

/* The in-use slot whose bin cls holds the most; -1 if none holds 4. */
static int fullest_slot(const struct control_block *cb, unsigned cls)
{
	int best = -1;
	uint32_t most = 3;
	for (uint32_t i = 0; i < layout_slots_taken(&cb->hdr); i++)
		if (cb->slots[i].in_use && cb->slots[i].bins[cls].count > most)
			most = cb->slots[i].bins[cls].count, best = (int)i;
	return best;
}

/* Where a move is cut: one class's words and refs, in the process's
 * transfer cache or its uid's area, and what the words carry beside. */
struct cut_place {
	uint64_t *state;
	uint64_t (*refs)[SHMA_XFER_REFS_MAX];
	unsigned entries;
	uint64_t tag;
};

static int empty_entry(const struct cut_place *pl)
{
	for (unsigned e = 0; e < pl->entries; e++)
		if (pl->state[e] == SHMA_XFER_EMPTY)
			return (int)e;
	return -1;
}

/* Leaves class cls as a thread of ours killed at step 'step' of a move
 * into or out of pl: 0 PUTTING, the bin not let go yet; 1 PUTTING, the bin
 * let go; 2 TAKING, the bin not raised yet; 3 TAKING, the bin raised.  0,
 * or a failure. */
static int cut_a_move_in(struct control_block *cb, unsigned cls, int step,
			 const struct cut_place *pl)
{
	static uint32_t first[SIZECLASS_COUNT];
	layout_bin_firsts(first);
	int s = fullest_slot(cb, cls), e = empty_entry(pl);
	if (s < 0 || e < 0)
		return 31;
	struct tcache_bin *b = &cb->slots[s].bins[cls];
	uint64_t *stack = &cb->refs[s][first[cls]], *entry = pl->refs[e];
	uint32_t c = b->count, n = c / 2 < 8 ? c / 2 : 8;
	memcpy(entry, stack + (c - n), n * sizeof *entry);
	if (step < 2) {
		pl->state[e] = layout_xfer_word(SHMA_XFER_PUTTING, n, c, (uint32_t)s) | pl->tag;
		b->count = step == 0 ? c : c - n;
		return 0;
	}
	/* The entry was FULL with the bin's top n; a thread took it on the
	 * bin at c - n (the same refs go back where they were). */
	pl->state[e] = layout_xfer_word(SHMA_XFER_TAKING, n, c - n, (uint32_t)s) | pl->tag;
	b->count = step == 2 ? c - n : c;
	return 0;
}

static int cut_a_move(struct control_block *cb, unsigned cls, int step)
{
	struct cut_place pl = {cb->hdr.xfer[cls].state, cb->xfer_refs[cls], SHMA_XFER_ENTRIES, 0};
	return cut_a_move_in(cb, cls, step, &pl);
}

static int cut_every_step_and_die(void *arg)
{
	int rc = warm_flow(arg);
	struct control_block *cb = recovery_my_control_block();
	if (rc != 0 || cb == NULL)
		return rc ? rc : 32;
	for (int step = 0; step < 4; step++)
		if ((rc = cut_a_move(cb, sizeclass_of(sizes[step]), step)) != 0)
			return rc;
	kill(getpid(), SIGKILL);
	return 33;
}

/* Runs fn in a child that kills itself, and waits for the daemon to take
 * back what it cached: asserts in_use_bytes comes back to what it was. */
static void die_and_come_back(int (*fn)(void *))
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use0 = e2e_stat("\"in_use_bytes\":");
	struct flow *f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(f, MAP_FAILED);
	ck_assert_int_eq(e2e_wait(e2e_fork(fn, f)), 128 + SIGKILL);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(in_use0), in_use0);
	munmap(f, sizeof *f);
}

START_TEST(a_move_cut_at_any_step_is_taken_back_once)
{
	/* Taken from the bin or the entry, as the words say, never both and
	 * never neither: nothing left out (a batch skipped would be), nothing
	 * refused (a batch listed twice would be). */
	die_and_come_back(cut_every_step_and_die);
	ck_assert_int_eq(e2e_log_has(&e2e, "refs of its caches refused"), 0);
	shma_disconnect();
}
END_TEST

/* ---- a lying transfer cache ---- */

#define LIE_BLOCK 1000 /* a class the flow does not use: its entries are empty */
#define LIE_HELD 40    /* freed into the main thread's bin, below its high water */

static int lie_and_die(void *arg)
{
	int rc = warm_flow(arg);
	static void *p[LIE_HELD];
	for (unsigned i = 0; i < LIE_HELD && rc == 0; i++)
		if ((p[i] = shma_malloc(LIE_BLOCK)) == NULL)
			rc = 40;
	for (unsigned i = 0; i < LIE_HELD && rc == 0; i++)
		shma_free(p[i]);
	struct control_block *cb = recovery_my_control_block();
	if (rc != 0 || cb == NULL)
		return rc ? rc : 41;
	unsigned x = sizeclass_of(LIE_BLOCK), y = sizeclass_of(3000), z = sizeclass_of(6000);
	uint64_t real[LIE_HELD];
	for (unsigned i = 0; i < LIE_HELD; i++)
		real[i] = shma_ref(p[i]);
	/* A count past the entry, refs that name nothing, inside an object, and
	 * blocks its own bin holds (a second time). */
	uint64_t *refs = cb->xfer_refs[x][0];
	for (uint32_t k = 0; k < layout_xfer_cap(x); k++) {
		uint64_t r = real[k % LIE_HELD];
		refs[k] = k % 4 == 0 ? 0 : k % 4 == 1 ? UINT64_C(0x123456789) : k % 4 == 2 ? r + 8 : r;
	}
	cb->hdr.xfer[x].state[0] = layout_xfer_word(SHMA_XFER_FULL, 0xffff, 0, 0);
	/* Caught putting from a slot that is none: the entry's, all noise. */
	memset(cb->xfer_refs[y][2], 0x5a, layout_xfer_cap(y) * sizeof(uint64_t));
	cb->hdr.xfer[y].state[2] = layout_xfer_word(SHMA_XFER_PUTTING, layout_xfer_cap(y), 7,
						    0xfffe);
	/* Full, in pages it never reserved or wrote (a hole). */
	cb->hdr.xfer[z].state[3] = layout_xfer_word(SHMA_XFER_FULL, layout_xfer_cap(z), 0, 0);
	kill(getpid(), SIGKILL);
	return 42;
}

START_TEST(the_daemon_takes_back_a_lying_transfer_cache_safely)
{
	/* Every real cached block back once, no lie believed: the daemon read
	 * no further than each entry's cap, freed nothing twice, and lives. */
	die_and_come_back(lie_and_die);
	unsigned y = sizeclass_of(3000), z = sizeclass_of(6000);
	char line[96];
	snprintf(line, sizeof line, ": %u refs of its caches refused",
		 0xffffu + layout_xfer_cap(y) + layout_xfer_cap(z));
	ck_assert_msg(e2e_log_has(&e2e, line), "no \"%s\" in the daemon's log", line);
	shma_disconnect();
}
END_TEST

/* ---- a new process's first malloc ---- */

/* Connects by its first malloc (as under the preload library), counts the
 * requests it made into out[], exits without a goodbye. */
static int first_malloc_counted(void *arg)
{
	volatile uint64_t *out = arg;
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
	void *p[3] = {shma_malloc(24), shma_malloc(64), shma_malloc(128)};
	if (!p[0] || !p[1] || !p[2])
		return 1;
	out[0] = e2e_my_stat("\"requests\":");
	out[1] = e2e_my_stat("\"waits\":");
	for (int i = 0; i < 3; i++)
		shma_free(p[i]);
	return 0;
}

START_TEST(a_first_malloc_sends_nothing_but_the_hello)
{
	if (SANITIZED) {
		/* Under ASan the library is in debug mode, whose mallocs never
		 * take from the transfer cache: it asks for no first batches. */
		TEST_SKIP("under AddressSanitizer the library is in debug mode");
		return;
	}
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use0 = e2e_stat("\"in_use_bytes\":");
	volatile uint64_t *out = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne((void *)out, MAP_FAILED);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(first_malloc_counted((void *)out));
	ck_assert_int_eq(e2e_wait(pid), 0);
	/* The Hello alone, counted before the Stats that read it (before: a
	 * Refill behind the Hello and one for each other class, 4).  No malloc
	 * of the three waited on the daemon. */
	ck_assert_uint_eq(out[0], 1);
	ck_assert_uint_eq(out[1], 0);
	/* Exited without a goodbye: the first batches of the classes it never
	 * used come back with the rest. */
	ck_assert_uint_eq(e2e_wait_in_use_at_most(in_use0), in_use0);
	munmap((void *)out, 4096);
	shma_disconnect();
}
END_TEST

/* ==== the uid's transfer area: the same flow between two processes ====
 *
 * (server/uidarea.c, client/lib/xfer.c): a producer process and a consumer
 * process of one uid send the daemon nothing once warm; processes killed at
 * random while batches wait in the area or move in or out of it lose no
 * block and hand none out twice (the next round's processes take what the
 * dead left there: a batch the daemon also took back would be handed out
 * twice, an overwritten message). */

static void hold_until_quit(struct flow *f)
{
	while (!__atomic_load_n(&f->quit, __ATOMIC_ACQUIRE))
		sched_yield();
}

static int produce(void *arg)
{
	producer(arg);
	hold_until_quit(arg);
	return ((struct flow *)arg)->bad ? 2 : 0;
}

static int consume(void *arg)
{
	struct flow *f = arg;
	f->die_on_bad = 1;
	consumer(arg);
	hold_until_quit(arg);
	return 0;
}

static struct flow *flows_map(unsigned n)
{
	struct flow *f = mmap(NULL, n * sizeof *f, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(f, MAP_FAILED);
	return f;
}

START_TEST(two_processes_of_one_uid_send_no_request_in_steady_state)
{
	if (SANITIZED) {
		TEST_SKIP("under AddressSanitizer the library is in debug mode: no batches");
		return;
	}
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	struct flow *f = flows_map(1);
	f->limit = WARM + STEADY;
	pid_t pp = e2e_fork(produce, f), pc = e2e_fork(consume, f);
	while (__atomic_load_n(&f->eaten, __ATOMIC_ACQUIRE) < WARM)
	{
		ck_assert_int_eq(waitpid(pc, NULL, WNOHANG), 0);
		sched_yield();
	}
	uint64_t requests0 = e2e_stat("\"requests\":");
	while (__atomic_load_n(&f->eaten, __ATOMIC_ACQUIRE) < WARM + STEADY)
	{
		ck_assert_int_eq(waitpid(pc, NULL, WNOHANG), 0);
		sched_yield();
	}
	uint64_t asked = e2e_stat("\"requests\":") - requests0;
	__atomic_store_n(&f->quit, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(e2e_wait(pp), 0);
	ck_assert_int_eq(e2e_wait(pc), 0);
	/* Before: a Flush of the consumer's and a Refill of the producer's
	 * every batch (about 4 000 for these 400 000 messages).  Now the
	 * consumer's batches wait in the uid's area for the producer: counted
	 * are the Stats between the counts (1) and what scheduling may add. */
	ck_assert_msg(asked <= 1 + 8, "%llu requests for %d messages between two processes",
		      (unsigned long long)asked, STEADY);
	shma_disconnect();
	/* The last member gone: the area's batches are the heap's again. */
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(0), 0);
	shma_disconnect();
	munmap(f, sizeof *f);
}
END_TEST

START_TEST(processes_killed_while_batches_are_in_the_area_lose_no_block)
{
	if (SANITIZED) {
		TEST_SKIP("under AddressSanitizer the library is in debug mode: no batches");
		return;
	}
	enum { ROUNDS = 10 };
	struct flow *flows = flows_map(ROUNDS);
	srand((unsigned)getpid());
	/* This process stays a member throughout: what the dead leave in the
	 * area waits there for the next round's producer. */
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	for (unsigned r = 0; r < ROUNDS; r++) {
		struct flow *f = &flows[r];
		f->limit = UINT64_MAX;
		pid_t pp = e2e_fork(produce, f), pc = e2e_fork(consume, f);
		uint64_t at = 20000 + (uint64_t)(rand() % 40000);
		while (__atomic_load_n(&f->made, __ATOMIC_ACQUIRE) < at) {
			ck_assert_int_eq(waitpid(pp, NULL, WNOHANG), 0);
			ck_assert_int_eq(waitpid(pc, NULL, WNOHANG), 0); /* 3: overwritten */
			sched_yield();
		}
		/* One, then the other a moment later, or both at once. */
		pid_t first = r % 3 == 0 ? pp : pc, second = first == pp ? pc : pp;
		kill(first, SIGKILL);
		if (r % 3 != 2) {
			uint64_t m = f->made + 100;
			for (int k = 0; k < 100000 && f->made < m; k++)
				sched_yield();
		}
		kill(second, SIGKILL);
		ck_assert_int_eq(e2e_wait(pp), 128 + SIGKILL);
		ck_assert_int_eq(e2e_wait(pc), 128 + SIGKILL);
		ck_assert_int_eq(f->bad, 0);
	}
	all_back_once(flows, ROUNDS);
	shma_disconnect();
	munmap(flows, ROUNDS * sizeof *flows);
}
END_TEST

/* The uid's area this process's library mapped (the memfd the Hello brought),
 * found in /proc/self/maps, of the connection it has now; NULL if none. */
static struct uid_area *my_uid_area(void)
{
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	struct uid_area *a = NULL;
	while (m != NULL && a == NULL && fgets(line, sizeof line, m) != NULL) {
		unsigned long lo, hi;
		/* The one with members now: an area of an earlier connection
		 * stays mapped, the daemon's members word last set to 0. */
		if (strstr(line, "memfd:shmalloc-uid") != NULL &&
		    sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi - lo == sizeof(struct uid_area) &&
		    __atomic_load_n(&((struct uid_area *)lo)->hdr.members, __ATOMIC_ACQUIRE) != 0)
			a = (struct uid_area *)lo;
	}
	if (m != NULL)
		fclose(m);
	return a;
}

/* Bytes of the objects in a's full entries. */
static uint64_t area_full_bytes(const struct uid_area *a)
{
	uint64_t bytes = 0;
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		for (unsigned e = 0; e < SHMA_UID_ENTRIES; e++) {
			uint64_t w = __atomic_load_n(&a->cls[cls].state[e], __ATOMIC_ACQUIRE);
			if (layout_xfer_kind(w) == SHMA_XFER_FULL)
				bytes += (uint64_t)layout_xfer_n(w) * sizeclass_size(cls);
		}
	return bytes;
}

static int cut_every_step_in_the_area_and_die(void *arg)
{
	int rc = warm_flow(arg);
	struct control_block *cb = recovery_my_control_block();
	struct uid_area *a = my_uid_area();
	if (rc != 0 || cb == NULL || a == NULL || cb->hdr.uid_member == 0)
		return rc ? rc : 34;
	for (int step = 0; step < 4; step++) {
		unsigned cls = sizeclass_of(sizes[step]);
		struct cut_place pl = {a->cls[cls].state, a->refs[cls], SHMA_UID_ENTRIES,
				       (uint64_t)cb->hdr.uid_member << SHMA_UID_MEMBER_SHIFT};
		if ((rc = cut_a_move_in(cb, cls, step, &pl)) != 0)
			return rc;
	}
	kill(getpid(), SIGKILL);
	return 35;
}

START_TEST(a_move_cut_at_any_step_in_the_area_is_taken_back_once)
{
	if (SANITIZED) {
		TEST_SKIP("under AddressSanitizer the library is in debug mode: no batches");
		return;
	}
	/* We stay a member (connected), so the area lives on with the dead
	 * one's words in it: the daemon must settle them by its bin. */
	die_and_come_back(cut_every_step_in_the_area_and_die);
	ck_assert_int_eq(e2e_log_has(&e2e, "refs of its caches refused"), 0);
	ck_assert_int_eq(e2e_log_has(&e2e, "refs of its transfer area refused"), 0);
	shma_disconnect();
}
END_TEST

/* ---- a batch nobody takes ---- */

#define IDLE_OBJECTS 8192
static struct e2e_daemon dd;

/* Allocates and frees IDLE_OBJECTS blocks of 64 B (the frees go to the
 * area as its bin overflows, another member being connected), then stays
 * connected. */
static int free_a_heap_and_stay(void *arg)
{
	struct flow *f = arg;
	static void *p[IDLE_OBJECTS];
	if (shma_connect(dd.socket) != 0)
		return 100;
	while (!__atomic_load_n(&f->go, __ATOMIC_ACQUIRE)) /* the other member is there */
		sched_yield();
	/* Three rounds: a refill asked ahead and still on its way keeps a bin
	 * off the area (xfer.c: usable()) until it is taken in. */
	for (int round = 0; round < 3; round++) {
		for (unsigned i = 0; i < IDLE_OBJECTS; i++)
			if ((p[i] = shma_malloc(64)) == NULL)
				return 1;
		/* A round trip: the answer to that refill is here behind it, so
		 * the first overflow takes it in. */
		char *json;
		if (shma_stats_json(&json) != 0)
			return 2;
		free(json);
		for (unsigned i = 0; i < IDLE_OBJECTS; i++)
			shma_free(p[i]);
	}
	__atomic_store_n(&f->made, 1, __ATOMIC_RELEASE);
	hold_until_quit(f);
	shma_disconnect();
	return 0;
}

START_TEST(a_batch_nobody_takes_goes_back_after_the_decay)
{
	if (SANITIZED) {
		TEST_SKIP("under AddressSanitizer the library is in debug mode: no batches");
		return;
	}
	/* --decay 0: full entries unchanged for a second go back. */
	const char *const opts[] = {"--decay", "0", NULL};
	e2e_start_daemon(&dd, opts);
	setenv("SHMALLOC_SOCKET", dd.socket, 1); /* not the fixture's daemon, on any reconnect */
	struct flow *f = flows_map(1);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(free_a_heap_and_stay(f));
	ck_assert_int_eq(shma_connect(dd.socket), 0); /* the other member */
	__atomic_store_n(&f->go, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&f->made, __ATOMIC_ACQUIRE))
		ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
	/* The area, as this member's library mapped it: the batches the other
	 * put, and the bytes the members count for them. */
	struct uid_area *a = my_uid_area();
	ck_assert_ptr_nonnull(a);
	uint64_t held0 = area_full_bytes(a), held = held0;
	ck_assert_uint_ge(held0, 512 * 64); /* a batch at least */
	uint64_t cached0 = e2e_stat("\"cached_bytes\":");
	for (int i = 0; i < 100 && held != 0; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL); /* polling the area, not a synchronisation */
		held = area_full_bytes(a);
	}
	/* Before: held in the area as long as both stay connected. */
	ck_assert_msg(held == 0, "%llu bytes still in the area, %llu before the decay",
		      (unsigned long long)held, (unsigned long long)held0);
	ck_assert_uint_le(e2e_stat("\"cached_bytes\":") + held0, cached0);
	/* And off the members' budget with them (else a few drains would spend
	 * it, and the area would take nothing more). */
	ck_assert_uint_eq(__atomic_load_n(&a->hdr.bytes, __ATOMIC_RELAXED), 0);
	__atomic_store_n(&f->quit, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(e2e_wait(pid), 0);
	shma_disconnect();
	e2e_stop_daemon(&dd);
	munmap(f, sizeof *f);
}
END_TEST

/* ---- a consumer of another uid ---- */

static struct user other;
static char other_group[32];
static int have_other;
static struct e2e_daemon ud;

static void other_create(void)
{
	have_other = geteuid() == 0 && make_group(other_group, sizeof other_group, "gu") == 0 &&
		     make_user(&other, "u", other_group) == 0;
}

static void other_remove(void)
{
	remove_user(&other);
	remove_group(other_group);
}

static int on_ud(int (*fn)(void *), void *arg)
{
	if (shma_connect(ud.socket) != 0)
		return 100;
	while (!__atomic_load_n(&((struct flow *)arg)->go, __ATOMIC_ACQUIRE))
		sched_yield();
	int rc = fn(arg);
	shma_disconnect();
	return rc;
}

static int produce_on_ud(void *arg)
{
	return on_ud(produce, arg);
}

static int consume_on_ud(void *arg)
{
	return on_ud(consume, arg);
}

/* The inode of the uid area process pid has mapped; 0 if none. */
static unsigned long area_inode_of(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
	FILE *m = fopen(path, "r");
	unsigned long ino = 0;
	while (m != NULL && ino == 0 && fgets(line, sizeof line, m) != NULL)
		if (strstr(line, "memfd:shmalloc-uid") == NULL ||
		    sscanf(line, "%*s %*s %*s %*s %lu", &ino) != 1)
			ino = 0;
	if (m != NULL)
		fclose(m);
	return ino;
}

/* The sum of every value of key in the daemon's stats (per class rows). */
static uint64_t stat_sum(const char *key)
{
	char *json;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	uint64_t sum = 0;
	for (char *at = strstr(json, key); at != NULL; at = strstr(at + 1, key))
		sum += strtoull(at + strlen(key), NULL, 10);
	free(json);
	return sum;
}

#define OTHER_MESSAGES 200000

START_TEST(a_consumer_of_another_uid_has_its_frees_checked_by_the_daemon)
{
	if (!have_other) {
		fprintf(stderr, "SKIP: a_consumer_of_another_uid_has_its_frees_checked_by_the_daemon: "
			"cannot create users (not root, or no useradd)\n");
		return;
	}
	if (SANITIZED) {
		TEST_SKIP("under AddressSanitizer the library is in debug mode: no batches");
		return;
	}
	char uid[16];
	snprintf(uid, sizeof uid, "%lu", (unsigned long)other.uid);
	const char *const opts[] = {"--allow-uid", uid, "--allow-uid", "0", "--socket-mode",
				    "0666", "--segment-mode", "0666", NULL};
	e2e_start_daemon(&ud, opts);
	char dir[160];
	snprintf(dir, sizeof dir, "%s/sock", ud.dir);
	ck_assert_int_eq(chmod(ud.dir, 0711), 0);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	struct flow *f = flows_map(1);
	f->limit = OTHER_MESSAGES;
	/* Forked before we connect: neither inherits a mapping of ours. */
	pid_t pp = fork();
	ck_assert_int_ge(pp, 0);
	if (pp == 0)
		_exit(produce_on_ud(f));
	pid_t pc = fork_as(&other, consume_on_ud, f);
	ck_assert_int_eq(shma_connect(ud.socket), 0); /* a member of root's area beside the producer */
	uint64_t flushed0 = stat_sum("\"flushes\":");
	__atomic_store_n(&f->go, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&f->eaten, __ATOMIC_ACQUIRE) < OTHER_MESSAGES) {
		ck_assert_int_eq(waitpid(pc, NULL, WNOHANG), 0);
		sched_yield();
	}
	/* Each has an area of its own uid's, never the other's. */
	unsigned long ip = area_inode_of(pp), ic = area_inode_of(pc);
	ck_assert_uint_ne(ip, 0);
	ck_assert_uint_ne(ic, ip);
	uint64_t flushed = stat_sum("\"flushes\":") - flushed0;
	__atomic_store_n(&f->quit, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(e2e_wait(pp), 0);
	ck_assert_int_eq(e2e_wait(pc), 0);
	/* Every block the consumer freed went to the daemon, which checked it:
	 * all of them but what its bins still hold (four classes' capacities at
	 * most).  Through root's area they would not have. */
	uint64_t bins = 0;
	for (unsigned k = 0; k < NSIZES; k++)
		bins += layout_bin_capacity(sizeclass_of(sizes[k]));
	ck_assert_msg(flushed + bins >= OTHER_MESSAGES, "%llu of %d messages flushed",
		      (unsigned long long)flushed, OTHER_MESSAGES);
	ck_assert_int_eq(e2e_log_count(&ud, "refs of its transfer area refused"), 0);
	shma_disconnect();
	e2e_stop_daemon(&ud);
	munmap(f, sizeof *f);
}
END_TEST

Suite *make_uidarea_suite(void);
Suite *make_uidarea_suite(void)
{
	Suite *s = suite_create("uidarea");
	TCase *tc = tcase_create("uidarea");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, two_processes_of_one_uid_send_no_request_in_steady_state);
	tcase_add_test(tc, processes_killed_while_batches_are_in_the_area_lose_no_block);
	tcase_add_test(tc, a_move_cut_at_any_step_in_the_area_is_taken_back_once);
	tcase_add_test(tc, a_batch_nobody_takes_goes_back_after_the_decay);
	suite_add_tcase(s, tc);
	TCase *tu = tcase_create("another uid");
	tcase_add_unchecked_fixture(tu, other_create, other_remove);
	tcase_set_timeout(tu, 120);
	tcase_add_test(tu, a_consumer_of_another_uid_has_its_frees_checked_by_the_daemon);
	suite_add_tcase(s, tu);
	return s;
}

Suite *make_xfer_suite(void);
Suite *make_xfer_suite(void)
{
	Suite *s = suite_create("xfer");
	TCase *tc = tcase_create("xfer");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_thread_to_thread_churn_sends_no_request_in_steady_state);
	tcase_add_test(tc, a_process_killed_while_batches_move_loses_no_block);
	tcase_add_test(tc, a_move_cut_at_any_step_is_taken_back_once);
	tcase_add_test(tc, the_daemon_takes_back_a_lying_transfer_cache_safely);
	tcase_add_test(tc, a_first_malloc_sends_nothing_but_the_hello);
	suite_add_tcase(s, tc);
	return s;
}
