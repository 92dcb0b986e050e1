/* SPDX-License-Identifier: MIT */
/*
 * The workloads, written once against the backend of bench.h: (a) to (e)
 * from the allocator issue, (s), (cp), (b8) and (fm) from the fast-path one,
 * (f) from the memory-model one, (t) from the unmodified-programs one.
 *
 * Sizes come from tables filled from a fixed seed before the clock starts,
 * so every allocator sees the same requests in the same order and no random
 * number is drawn inside a timed loop.  Small sizes are log-uniform over
 * 16 B-32 KiB (each power-of-two octave equally likely, as real programs ask
 * for many more small blocks than large ones); large sizes log-uniform over
 * 256 KiB-8 MiB; messages uniform over 64-256 B.
 */
#include "config.h"

#include "tests.h"

#include "bench.h"
#include "ring.h"
#include "sizes.h"
#include "workers.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BATCH 100
#define CHURN_MAX 65536

struct message {
	uint32_t seq;
	uint32_t len;
	unsigned char body[];
};

struct pc_arg {
	struct ring *ring;
	long messages;
	int pin; /* producer on CPU 0, consumer on CPU 1 */
};

static struct size_tables tables;
static void *churn_block[CHURN_MAX];
static size_t churn_size[CHURN_MAX];

static void tables_init(void)
{
	size_tables_fill(&tables);
}

static int fail(char *why, size_t len, const char *what)
{
	snprintf(why, len, "%s: %s", what, strerror(errno));
	return -1;
}

/* (a): batches of BATCH mallocs, each block's first byte written, then
 * BATCH frees in allocation order.  start staggers workers in the table. */
static int batch_loop(const size_t *sizes, long batches, unsigned start, char *why,
		      size_t len)
{
	void *slot[BATCH];
	unsigned k = start;

	for (long b = 0; b < batches; b++) {
		for (int i = 0; i < BATCH; i++) {
			char *p = be_malloc(sizes[k++ % TABLE_SLOTS]);

			if (p == NULL)
				return fail(why, len, "malloc");
			*p = (char)i;
			slot[i] = p;
		}
		for (int i = 0; i < BATCH; i++)
			be_free(slot[i]);
	}
	return 0;
}

static int run_a(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	int64_t t0;

	(void)t;
	tables_init();
	t0 = now_ns();
	if (batch_loop(tables.small, p->batches, 0, why, len) < 0)
		return -1;
	out[0] = (double)(now_ns() - t0) / ((double)p->batches * BATCH);
	return 0;
}

/* (s): (a) with 64-120 B blocks only: the fast path alone, every block of a
 * few classes that stay in the thread's cache. */
static int run_s(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	int64_t t0;

	(void)t;
	tables_init();
	t0 = now_ns();
	if (batch_loop(tables.tiny, 4 * p->batches, 0, why, len) < 0)
		return -1;
	out[0] = (double)(now_ns() - t0) / (4.0 * (double)p->batches * BATCH);
	return 0;
}

static int batch_worker(int index, void *arg, char *why, size_t len)
{
	const struct test_params *p = arg;

	return batch_loop(tables.small, p->batches, (unsigned)index * 977, why, len);
}

/* (b): t->procs processes doing (a) at once; the figure is wall time over
 * every pair of every process, so perfect scaling halves it from 1 to 2. */
static int run_b(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	int64_t wall;

	tables_init();
	if (workers_run(t->procs, 1, batch_worker, (void *)p, &wall, why, len) < 0)
		return -1;
	out[0] = (double)wall / ((double)p->batches * BATCH * t->procs);
	return 0;
}

static int produce(struct pc_arg *a, char *why, size_t len)
{
	for (long i = 0; i < a->messages; i++) {
		size_t size = tables.msg[i % TABLE_SLOTS];
		struct message *m = be_malloc(size);

		if (m == NULL)
			return fail(why, len, "producer malloc");
		m->seq = (uint32_t)i;
		m->len = (uint32_t)size;
		memset(m->body, (int)(i & 0xff), size - sizeof *m);
		ring_push(a->ring, be_to_msg(m));
	}
	return 0;
}

/* Reads the whole message; 0 when it holds what the producer wrote. */
static int check_message(const struct message *m, long i)
{
	size_t size = tables.msg[i % TABLE_SLOTS];
	unsigned sum = 0;

	if (m->seq != (uint32_t)i || m->len != size)
		return -1;
	for (size_t k = 0; k < size - sizeof *m; k++)
		sum += m->body[k];
	return sum == (unsigned)(i & 0xff) * (unsigned)(size - sizeof *m) ? 0 : -1;
}

/* The consumer drains every message even after a bad one, so that the
 * producer never waits forever on a full ring. */
static int consume(struct pc_arg *a, char *why, size_t len)
{
	long bad = 0;

	for (long i = 0; i < a->messages; i++) {
		struct message *m = be_from_msg(ring_pop(a->ring));

		if (m == NULL || check_message(m, i) < 0) {
			bad++;
			continue;
		}
		be_free(m);
	}
	if (bad)
		snprintf(why, len, "consumer: %ld of %ld messages missing or corrupt",
			 bad, a->messages);
	return bad ? -1 : 0;
}

/* Pins the calling thread (or process) to one CPU; 0 or -1 with errno. */
static int pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % CPU_SETSIZE, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

static int pc_worker(int index, void *arg, char *why, size_t len)
{
	struct pc_arg *a = arg;

	if (a->pin && pin_to(index) < 0)
		return fail(why, len, "sched_setaffinity");
	return index == 0 ? produce(arg, why, len) : consume(arg, why, len);
}

/*
 * How long a cache line takes to go from CPU 0 to CPU 1 and back, in ns per
 * one-way hand-over: two threads pinned apart bounce a counter.  It says in
 * which regime a pinned run is (the VM's two vCPUs on one physical core, a
 * few ns; on two cores, tens of ns) and is the same for every allocator.
 */
struct bounce {
	_Alignas(64) _Atomic long turn;
	long rounds;
};

static void *bounce_peer(void *arg)
{
	struct bounce *b = arg;

	if (pin_to(1) < 0)
		return NULL;
	for (long i = 1; i < 2 * b->rounds; i += 2) {
		while (atomic_load_explicit(&b->turn, memory_order_acquire) != i)
			;
		atomic_store_explicit(&b->turn, i + 1, memory_order_release);
	}
	return NULL;
}

static double bounce_ns(long rounds)
{
	struct bounce b = { .rounds = rounds };
	pthread_t th;
	int64_t t0;
	cpu_set_t old;

	if (sched_getaffinity(0, sizeof old, &old) < 0 || pin_to(0) < 0)
		return NAN;
	if (pthread_create(&th, NULL, bounce_peer, &b) != 0)
		return NAN;
	t0 = now_ns();
	for (long i = 0; i < 2 * rounds; i += 2) {
		while (atomic_load_explicit(&b.turn, memory_order_acquire) != i)
			;
		atomic_store_explicit(&b.turn, i + 1, memory_order_release);
	}
	while (atomic_load_explicit(&b.turn, memory_order_acquire) != 2 * rounds)
		;
	t0 = now_ns() - t0;
	pthread_join(th, NULL);
	sched_setaffinity(0, sizeof old, &old);
	return (double)t0 / (2.0 * (double)rounds);
}

/* (c): two processes on a shared heap, two threads on a private one;
 * (ct): two threads of one process for every allocator. */
static int run_c(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	struct pc_arg a = { .messages = p->messages, .pin = strchr(t->id, 'p') != NULL };
	int as_procs = t->id[1] == 't' ? 0 : be_shared();
	int64_t wall;
	int rc;

	tables_init();
	if (a.pin) {
		if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
			snprintf(why, len, "pinned run needs 2 CPUs");
			return -1;
		}
		out[1] = bounce_ns(200000);
	}
	a.ring = mmap(NULL, sizeof *a.ring, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a.ring == MAP_FAILED)
		return fail(why, len, "mmap ring");
	rc = workers_run(2, as_procs, pc_worker, &a, &wall, why, len);
	munmap(a.ring, sizeof *a.ring);
	if (rc == 0)
		out[0] = (double)wall / (double)p->messages;
	return rc;
}

/* (d): a large block, its first and last page written, freed. */
static int run_d(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	int64_t t0;

	(void)t;
	tables_init();
	t0 = now_ns();
	for (long i = 0; i < p->large_ops; i++) {
		size_t size = tables.large[i % TABLE_SLOTS];
		char *b = be_malloc(size);

		if (b == NULL)
			return fail(why, len, "large malloc");
		b[0] = 1;
		b[size - 1] = 1;
		be_free(b);
	}
	out[0] = (double)(now_ns() - t0) / (double)p->large_ops;
	return 0;
}

/* (f): 8 large blocks of 256 KiB-4 MiB live; one at a time is freed and
 * replaced by a new one, one byte written per 4 KiB page (first touch is
 * what a heap that does not reuse its pages pays for). */
#define F_LIVE 8
static int run_f(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	char *live[F_LIVE] = {0};
	uint64_t s = SEED;
	size_t sizes[TABLE_SLOTS];
	int64_t t0;

	(void)t;
	for (int i = 0; i < TABLE_SLOTS; i++)
		sizes[i] = log_uniform(&s, 18, 22);
	t0 = now_ns();
	for (long i = 0; i < p->large_ops + F_LIVE; i++) {
		size_t size = sizes[i % TABLE_SLOTS];
		int k = (int)(i % F_LIVE);
		char *b;

		if (live[k] != NULL)
			be_free(live[k]);
		b = be_malloc(size);
		if (b == NULL)
			return fail(why, len, "large malloc");
		for (size_t off = 0; off < size; off += 4096)
			b[off] = (char)i;
		live[k] = b;
	}
	out[0] = (double)(now_ns() - t0) / (double)(p->large_ops + F_LIVE);
	for (int k = 0; k < F_LIVE; k++)
		be_free(live[k]);
	return 0;
}

static int churn_replace(long i, uint64_t *s)
{
	size_t size = tables.small[rng_next(s) % TABLE_SLOTS];

	be_free(churn_block[i]);
	churn_block[i] = be_malloc(size);
	churn_size[i] = size;
	if (churn_block[i] == NULL)
		return -1;
	memset(churn_block[i], 0xa5, size);
	return 0;
}

/* Fills n slots and replaces churn_ops random ones; returns the live bytes,
 * or -1. */
static int64_t churn(long n, long churn_ops, uint64_t *s)
{
	int64_t live = 0;

	for (long i = 0; i < n; i++)
		if (churn_replace(i, s) < 0)
			return -1;
	for (long j = 0; j < churn_ops; j++)
		if (churn_replace((long)(rng_next(s) % (uint64_t)n), s) < 0)
			return -1;
	for (long i = 0; i < n; i++)
		live += (int64_t)churn_size[i];
	return live;
}

/* Frees three blocks in four, at random; returns the live bytes left. */
static int64_t thin_out(long n, uint64_t *s)
{
	int64_t live = 0;

	for (long i = 0; i < n; i++) {
		if (rng_next(s) % 4 == 0) {
			live += (int64_t)churn_size[i];
			continue;
		}
		be_free(churn_block[i]);
		churn_block[i] = NULL;
	}
	return live;
}

static void idle_wait(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * (e): the memory behind the heap after a churn, against the bytes live;
 * again once three blocks in four are freed at random (what fragmentation
 * keeps); then, everything freed and the allocator left idle past its decay,
 * what it still holds; and for a shared heap, what it holds once this
 * process has let go of it too (be_detach), which tells the caches this
 * process keeps from what the daemon keeps.  All are measured from a
 * baseline taken before the first allocation (be_footprint: RSS, or the
 * shared segments' blocks).
 */
static int run_e(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	long n = p->churn_slots < CHURN_MAX ? p->churn_slots : CHURN_MAX;
	uint64_t s = SEED ^ 0xe;
	int64_t base, live, foot;

	(void)t;
	tables_init();
	memset(churn_block, 0, sizeof churn_block);
	memset(churn_size, 0, sizeof churn_size);
	base = be_footprint();
	live = base < 0 ? -1 : churn(n, p->churn_ops, &s);
	if (live <= 0)
		return fail(why, len, base < 0 ? "footprint" : "churn malloc");
	foot = be_footprint() - base;
	out[0] = (double)foot / 1048576.0;
	out[1] = (double)foot / (double)live;
	live = thin_out(n, &s);
	out[2] = (double)(be_footprint() - base) / (double)live;
	for (long i = 0; i < n; i++)
		be_free(churn_block[i]);
	idle_wait(p->idle_wait_ms);
	out[3] = (double)(be_footprint() - base) / 1024.0;
	out[4] = NAN;
	if (be_detach() < 0)
		return 0;
	idle_wait(p->idle_wait_ms);
	out[4] = (double)(be_footprint() - base) / 1024.0;
	return 0;
}

/*
 * (fm): what a new program's first allocation costs.  The driver execs
 * itself (/proc/self/exe --fm-child 1) FIRST_CHILDREN times and waits for
 * each: a fresh process, as every program of a build or a shell pipeline is,
 * whose first malloc finds no heap of its own -- a shared heap's connects to
 * the daemon then (a forked child would inherit the parent's mappings and
 * the loader's work, and hide most of it).  Between them it execs the same
 * program that allocates nothing (--fm-child 0), so that both see the same
 * load: fm_base is exec + exit alone, fm_over = fm - fm_base what the first
 * malloc + free adds.  Microseconds per process, from fork to reaped.
 */
#define FIRST_CHILDREN 200

int test_fm_child(const char *what)
{
	if (be_attach() != 0)
		return 2;
	if (strcmp(what, "1") == 0) {
		char *b = be_malloc(64);

		if (b == NULL)
			return 1;
		b[0] = 1;
		be_free(b);
	}
	return 0; /* as a program ends: atexit handlers run */
}

static int run_fm(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	int64_t spent[2] = { 0, 0 };
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	(void)t;
	(void)p;
	if (n <= 0 || n == (ssize_t)sizeof self - 1)
		return fail(why, len, "readlink /proc/self/exe");
	self[n] = '\0';
	fflush(NULL); /* no output of ours may be written twice */
	for (int i = 0; i < 2 * FIRST_CHILDREN; i++) {
		int status, alloc = i % 2 == 0;
		char *argv[] = { self, (char *)"--fm-child", (char *)(alloc ? "1" : "0"), NULL };
		int64_t t0 = now_ns();
		pid_t pid = fork();

		if (pid < 0)
			return fail(why, len, "fork");
		if (pid == 0) {
			execv(self, argv);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			snprintf(why, len, "first-malloc child (--fm-child %d) failed", alloc);
			return -1;
		}
		spent[alloc] += now_ns() - t0;
	}
	out[0] = (double)spent[1] / 1000.0 / FIRST_CHILDREN;
	out[1] = (double)spent[0] / 1000.0 / FIRST_CHILDREN;
	out[2] = out[0] - out[1];
	return 0;
}

/*
 * (t): what a thread's life costs: create a thread that mallocs and frees a
 * few blocks (THREAD_BLOCKS of a few sizes, all live at once, then freed),
 * join it, THREAD_COUNT times one after the other; microseconds per thread,
 * from pthread_create to joined.  A thread cache that is made and torn down
 * with each thread (a slot taken, its bins reserved, refilled, flushed) is
 * what this shows against a plain thread start and exit.
 */
#define THREAD_COUNT 500
#define THREAD_BLOCKS 16

static void *thread_life(void *arg)
{
	void *b[THREAD_BLOCKS];

	(void)arg;
	for (int i = 0; i < THREAD_BLOCKS; i++) {
		b[i] = be_malloc(tables.tiny[i] << (i % 4));
		if (b[i] == NULL)
			return (void *)1;
		*(char *)b[i] = (char)i;
	}
	for (int i = 0; i < THREAD_BLOCKS; i++)
		be_free(b[i]);
	return NULL;
}

static int run_t(const struct test *t, const struct test_params *p, double *out,
		 char *why, size_t len)
{
	int64_t t0;
	void *warm = be_malloc(64);

	(void)t;
	(void)p;
	tables_init();
	be_free(warm); /* the process's first malloc is (fm)'s, not ours */
	t0 = now_ns();
	for (int i = 0; i < THREAD_COUNT; i++) {
		pthread_t th;
		void *rc;

		if (pthread_create(&th, NULL, thread_life, NULL) != 0)
			return fail(why, len, "pthread_create");
		if (pthread_join(th, &rc) != 0 || rc != NULL) {
			snprintf(why, len, "thread's malloc failed");
			return -1;
		}
	}
	out[0] = (double)(now_ns() - t0) / 1000.0 / THREAD_COUNT;
	return 0;
}

#define PAIR_LABEL "ns per malloc+free pair"

const struct test test_table[] = {
	{ "a", 1, 0, 1, { "a" }, { "ns" },
	  { "(a) 1 thread, 100 malloc + 100 free, 16 B-32 KiB, " PAIR_LABEL }, run_a },
	{ "b1", 1, 0, 1, { "b1" }, { "ns" },
	  { "(b) 1 process doing (a), wall " PAIR_LABEL }, run_b },
	{ "b2", 2, 0, 1, { "b2" }, { "ns" },
	  { "(b) 2 processes doing (a), wall / all pairs" }, run_b },
	{ "b4", 4, 0, 1, { "b4" }, { "ns" },
	  { "(b) 4 processes doing (a), wall / all pairs" }, run_b },
	{ "b8", 8, 0, 1, { "b8" }, { "ns" },
	  { "(b) 8 processes doing (a), wall / all pairs" }, run_b },
	{ "s", 1, 0, 1, { "s" }, { "ns" },
	  { "(s) 1 thread, 100 malloc + 100 free, 64-120 B, " PAIR_LABEL }, run_s },
	{ "c", 2, 0, 1, { "c" }, { "ns" },
	  { "(c) producer -> consumer, 64-256 B, ns per message" }, run_c },
	{ "cp", 2, 0, 2, { "cp", "cp_line" }, { "ns", "ns" },
	  { "(cp) (c) pinned: producer on CPU 0, consumer on CPU 1, ns per message",
	    "(cp) a cache line CPU 0 -> CPU 1, ns (the regime; same for all)" }, run_c },
	{ "ct", 2, 0, 1, { "ct" }, { "ns" },
	  { "(ct) (c) between two threads of one process, every allocator, ns per message" },
	  run_c },
	{ "ctp", 2, 0, 2, { "ctp", "ctp_line" }, { "ns", "ns" },
	  { "(ctp) (ct) pinned: producer on CPU 0, consumer on CPU 1, ns per message",
	    "(ctp) a cache line CPU 0 -> CPU 1, ns (the regime; same for all)" }, run_c },
	{ "d", 1, 0, 1, { "d" }, { "ns" },
	  { "(d) 256 KiB-8 MiB malloc + touch 2 pages + free, ns" }, run_d },
	{ "f", 1, 0, 1, { "f" }, { "ns" },
	  { "(f) 8 live 256 KiB-4 MiB blocks, replace one + touch every 4 KiB, ns" }, run_f },
	{ "e", 1, 1, 5, { "e_foot", "e_ratio", "e_frag", "e_idle", "e_exit" },
	  { "MiB", "x", "x", "KiB", "KiB" },
	  { "(e) memory behind the heap after churn (8192 blocks live), MiB",
	    "(e) that / live bytes",
	    "(e) memory behind the heap / live bytes, 3 blocks in 4 then freed",
	    "(e) still held after free all + idle wait, KiB",
	    "(e) shared heaps: still held once the process let go + idle wait, KiB" },
	  run_e },
	{ "fm", 1, 0, 3, { "fm", "fm_base", "fm_over" }, { "us", "us", "us" },
	  { "(fm) exec a program: first malloc + free, exit; us per process",
	    "(fm) the same program allocating nothing (exec + exit alone), us",
	    "(fm) what the first malloc adds: fm - fm_base, us" }, run_fm },
	{ "t", 1, 0, 1, { "t" }, { "us" },
	  { "(t) thread create, 16 malloc + 16 free, join: us per thread" }, run_t },
	{ NULL, 0, 0, 0, { NULL }, { NULL }, { NULL }, NULL },
};

const struct test *test_find(const char *id)
{
	for (const struct test *t = test_table; t->id; t++)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}
