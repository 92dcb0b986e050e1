/* SPDX-License-Identifier: MIT */
/*
 * The soak test (`make soak`, minutes long, not part of `make check`): a
 * real daemon that keeps its segments, N client processes doing random
 * allocations, frees and passes by ref through rings in shared memory, every
 * block carrying a pattern that names it; clients killed with SIGKILL at
 * random and replaced by fresh ones that take over what they held; and one
 * kill -9 of the daemon midway, restarted on the same socket.  At the end
 * every block known to be live is checked (intact, no two overlapping) and
 * freed, and the daemon must count nothing in use but what the operations
 * in flight at the kills may have left (measured and printed), must have
 * reclaimed the dead clients' caches, still serve, and leave /dev/shm clean
 * when stopped with --cleanup.  It is a Check runner of one test, so it
 * reuses the end-to-end fixture; SOAK_SECONDS (default 120) and
 * SOAK_CLIENTS (default 8) set its size.
 */
#include "e2e.h"
#include "instance.h"
#include "shmalloc.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define HELD 256
/* What the daemon may leak at its kill: the batches in flight, at most one
 * per class and connection (doc/architecture.md, "Restart"); as the
 * recovery suite bounds it per connection. */
#define IN_FLIGHT_PER_CLIENT ((uint64_t)24 << 20)

enum op { OP_NONE, OP_MALLOC, OP_FREE, OP_PASS, OP_RECV };

/* One client's state, in memory the parent sees after a kill: what it
 * holds, the one operation under way, and its inbound ring. */
struct slot {
	volatile uint64_t held[HELD];
	volatile int op;
	volatile uint64_t op_ref;
	volatile uint64_t op_size;
	volatile uint64_t op_mark; /* ring head before a pass, tail before a take */
	volatile uint64_t ops;
	volatile int stop;
	struct e2e_ring in;
	pid_t pid;
	uint64_t seed;
};

struct header {
	uint64_t ref;
	uint64_t size;
};

static struct slot *slots;
static unsigned nclients = 8;
static unsigned seconds = 120;

/* ---- blocks that name themselves ---- */

static uint8_t pattern(uint64_t ref, size_t i)
{
	return (uint8_t)((ref * 0x9e3779b1u) >> 11 ^ i * 13 ^ i >> 7);
}

/* The bytes checked: all of a small block, the ends and every 4 KiB of a
 * big one. */
static int sampled(size_t i, size_t n)
{
	return n <= 8192 || i < 4096 || i >= n - 4096 || i % 4096 == 0;
}

static void stamp(uint8_t *p, uint64_t ref, size_t n)
{
	struct header *h = (struct header *)p;
	h->ref = ref;
	h->size = n;
	for (size_t i = sizeof *h; i < n; i++)
		if (sampled(i, n))
			p[i] = pattern(ref, i);
}

/* The block's size if ref names an intact block, else 0. */
static size_t intact(uint64_t ref)
{
	const uint8_t *p = shma_ptr(ref);
	if (p == NULL)
		return 0;
	const struct header *h = (const struct header *)p;
	if (h->ref != ref || h->size < sizeof *h || shma_usable_size(p) < h->size)
		return 0;
	for (size_t i = sizeof *h; i < h->size; i++)
		if (sampled(i, h->size) && p[i] != pattern(ref, i))
			return 0;
	return h->size;
}

/* ---- a client ---- */

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t random_size(uint64_t r)
{
	switch (r % 32) {
	case 0: return 150000 + r % 900000; /* large */
	case 1: case 2: case 3: return 4096 + r % 60000;
	default: return sizeof(struct header) + r % 2000;
	}
}

static void begin(struct slot *s, int op, uint64_t ref, uint64_t size, uint64_t mark)
{
	s->op_ref = ref;
	s->op_size = size;
	s->op_mark = mark;
	__atomic_store_n(&s->op, op, __ATOMIC_SEQ_CST);
}

static void end(struct slot *s)
{
	__atomic_store_n(&s->op, OP_NONE, __ATOMIC_SEQ_CST);
	s->ops++;
}

static int do_malloc(struct slot *s, unsigned i, uint64_t r)
{
	size_t n = random_size(r);
	begin(s, OP_MALLOC, 0, n, 0);
	uint8_t *p = shma_malloc(n);
	if (p == NULL) {
		fprintf(stderr, "soak: client %d: malloc(%zu): %s\n", (int)getpid(), n,
			strerror(errno));
		return 10;
	}
	uint64_t ref = shma_ref(p);
	stamp(p, ref, n);
	s->held[i] = ref;
	end(s);
	return 0;
}

static int do_free(struct slot *s, unsigned i)
{
	uint64_t ref = s->held[i];
	size_t n = intact(ref);
	if (n == 0) {
		fprintf(stderr, "soak: client %d: block %#llx is broken\n", (int)getpid(),
			(unsigned long long)ref);
		return 11;
	}
	begin(s, OP_FREE, ref, n, 0);
	s->held[i] = 0;
	shma_free(shma_ptr(ref));
	end(s);
	return 0;
}

static int do_pass(struct slot *s, struct e2e_ring *out, unsigned i)
{
	uint64_t ref = s->held[i];
	begin(s, OP_PASS, ref, 0, out->head);
	s->held[i] = 0;
	if (!e2e_ring_put(out, ref))
		s->held[i] = ref; /* full: keep it */
	end(s);
	return 0;
}

static int free_index(const struct slot *s)
{
	for (unsigned i = 0; i < HELD; i++)
		if (s->held[i] == 0)
			return (int)i;
	return -1;
}

/* Takes one block from the inbound ring, if any, and checks it. */
static int do_take(struct slot *s)
{
	uint64_t tail = s->in.tail;
	if (__atomic_load_n(&s->in.head, __ATOMIC_ACQUIRE) == tail)
		return 0;
	uint64_t ref = s->in.slot[tail % E2E_RING];
	int i = free_index(s);
	if (i < 0)
		return 0; /* nowhere to keep it: later */
	begin(s, OP_RECV, ref, 0, tail);
	e2e_ring_get(&s->in);
	if (intact(ref) == 0) {
		fprintf(stderr, "soak: client %d: received block %#llx is broken\n",
			(int)getpid(), (unsigned long long)ref);
		return 12;
	}
	s->held[i] = ref;
	end(s);
	return 0;
}

static int client(void *arg)
{
	struct slot *s = arg;
	struct e2e_ring *out = &slots[(unsigned)(s - slots + 1) % nclients].in;
	while (!s->stop) {
		uint64_t r = next_rand(&s->seed);
		unsigned i = (unsigned)(r >> 40) % HELD;
		int rc = 0;
		switch (r % 16) {
		case 0: case 1: case 2: case 3: case 4: case 5:
			rc = s->held[i] ? do_free(s, i) : do_malloc(s, i, r >> 8);
			break;
		case 6: case 7: case 8: case 9:
			rc = s->held[i] ? 0 : do_malloc(s, i, r >> 8);
			break;
		case 10: case 11:
			rc = s->held[i] ? do_pass(s, out, i) : 0;
			break;
		default:
			rc = do_take(s);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- the parent: kills, replacements, and what a dead client left ---- */

struct tally {
	uint64_t kills, replaced, slack, adopted_count;
	uint64_t adopted[4096];
};

static struct tally tally;

static int held_by(const struct slot *s, uint64_t ref)
{
	for (unsigned i = 0; i < HELD; i++)
		if (s->held[i] == ref)
			return 1;
	return 0;
}

static void adopt(uint64_t ref)
{
	ck_assert_uint_lt(tally.adopted_count, sizeof tally.adopted / sizeof tally.adopted[0]);
	tally.adopted[tally.adopted_count++] = ref;
}

/* Settles the operation a killed client was in: a block it may or may not
 * have allocated or freed is slack; one it had taken out of its hands but
 * not yet into the ring (or into its table) is the parent's to free. */
static void settle(struct slot *s, struct e2e_ring *out)
{
	switch (s->op) {
	case OP_MALLOC:
	case OP_FREE:
		if (s->op == OP_MALLOC || !held_by(s, s->op_ref))
			tally.slack += s->op_size + s->op_size / 8 + 8192;
		break;
	case OP_PASS:
		if (out->head == s->op_mark && !held_by(s, s->op_ref))
			adopt(s->op_ref);
		break;
	case OP_RECV:
		if (s->in.tail != s->op_mark && !held_by(s, s->op_ref))
			adopt(s->op_ref);
		break;
	}
	s->op = OP_NONE;
}

static void start_client(struct slot *s)
{
	s->seed = (uint64_t)rand() << 24 ^ (uint64_t)(s - slots + 1) ^ (uint64_t)time(NULL);
	s->pid = e2e_fork(client, s);
}

static void kill_and_replace(struct slot *s)
{
	kill(s->pid, SIGKILL);
	int status = e2e_wait(s->pid);
	ck_assert_msg(status == 128 + SIGKILL, "client %ld stopped with %d before its kill",
		      (long)s->pid, status);
	settle(s, &slots[(unsigned)(s - slots + 1) % nclients].in);
	tally.kills++;
	start_client(s);
	tally.replaced++;
}

/* Fails the run if a client stopped by itself (a broken block, ENOMEM). */
static void check_alive(void)
{
	for (unsigned c = 0; c < nclients; c++) {
		int status;
		pid_t pid = waitpid(slots[c].pid, &status, WNOHANG);
		ck_assert_msg(pid == 0, "client %u (pid %ld) stopped with status %d", c,
			      (long)slots[c].pid, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
	}
}

static void restart_daemon(void)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	e2e_kill_daemon(&e2e);
	ck_assert_int_eq(e2e_restart_daemon(&e2e, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("soak: daemon killed with SIGKILL and restarted on %s: listening again after %ld ms\n",
	       e2e.socket, (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	fflush(stdout);
}

static void run(void)
{
	time_t start = time(NULL);
	int restarted = 0;
	while (time(NULL) - start < (time_t)seconds) {
		usleep(50000 + (useconds_t)(rand() % 250000));
		check_alive();
		if (!restarted && time(NULL) - start >= (time_t)seconds / 2) {
			restart_daemon();
			restarted = 1;
		}
		if (rand() % 3 == 0)
			kill_and_replace(&slots[(unsigned)rand() % nclients]);
	}
	check_alive();
	ck_assert(restarted);
}

static void stop_clients(void)
{
	for (unsigned c = 0; c < nclients; c++)
		slots[c].stop = 1;
	for (unsigned c = 0; c < nclients; c++)
		ck_assert_int_eq(e2e_wait(slots[c].pid), 0);
}

/* ---- the invariants ---- */

struct live {
	uintptr_t start, end;
	uint64_t ref;
};

static int by_ref(const void *a, const void *b)
{
	uint64_t x = ((const struct live *)a)->ref, y = ((const struct live *)b)->ref;
	return x < y ? -1 : x > y;
}

static int by_start(const void *a, const void *b)
{
	uintptr_t x = ((const struct live *)a)->start, y = ((const struct live *)b)->start;
	return x < y ? -1 : x > y;
}

/* Every ref known to be live: held, in a ring, or adopted. */
static size_t collect(struct live *out, size_t cap)
{
	size_t n = 0;
	for (unsigned c = 0; c < nclients; c++) {
		for (unsigned i = 0; i < HELD; i++)
			if (slots[c].held[i] != 0 && n < cap)
				out[n++].ref = slots[c].held[i];
		uint64_t ref;
		while ((ref = e2e_ring_get(&slots[c].in)) != 0 && n < cap)
			out[n++].ref = ref;
	}
	for (uint64_t i = 0; i < tally.adopted_count && n < cap; i++)
		out[n++].ref = tally.adopted[i];
	ck_assert_uint_lt(n, cap);
	return n;
}

/* Checks every live block and frees it; returns their bytes. */
static uint64_t check_and_free(struct live *l, size_t n)
{
	qsort(l, n, sizeof *l, by_ref);
	for (size_t i = 1; i < n; i++)
		ck_assert_msg(l[i].ref != l[i - 1].ref, "block %#llx is held twice",
			      (unsigned long long)l[i].ref);
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		size_t size = intact(l[i].ref);
		ck_assert_msg(size != 0, "live block %#llx is broken", (unsigned long long)l[i].ref);
		l[i].start = (uintptr_t)shma_ptr(l[i].ref);
		l[i].end = l[i].start + size;
		bytes += size;
	}
	qsort(l, n, sizeof *l, by_start);
	for (size_t i = 1; i < n; i++)
		ck_assert_msg(l[i].start >= l[i - 1].end, "live blocks %#llx and %#llx overlap",
			      (unsigned long long)l[i - 1].ref, (unsigned long long)l[i].ref);
	for (size_t i = 0; i < n; i++)
		shma_free((void *)l[i].start);
	return bytes;
}

static unsigned env_or(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static uint64_t total_ops(void)
{
	uint64_t ops = 0;
	for (unsigned c = 0; c < nclients; c++)
		ops += slots[c].ops;
	return ops;
}

START_TEST(soak)
{
	size_t bytes = sizeof(struct slot) * nclients;
	slots = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(slots, MAP_FAILED);
	srand((unsigned)getpid());
	e2e_start_daemon_kept(&e2e, NULL);
	for (unsigned c = 0; c < nclients; c++)
		start_client(&slots[c]);
	run();
	stop_clients();

	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use_before = e2e_stat("\"in_use_bytes\":");
	static struct live live[MAX_CLIENTS * (HELD + E2E_RING) + 4096];
	size_t n = collect(live, sizeof live / sizeof live[0]);
	uint64_t live_bytes = check_and_free(live, n);
	shma_disconnect(); /* our cache goes back with the goodbye */
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t allowed = tally.slack + IN_FLIGHT_PER_CLIENT * nclients;
	uint64_t left = e2e_wait_in_use_at_most(0);
	uint64_t reclaimed = e2e_stat("\"reclaimed_objects\":");
	printf("soak: %u s, %u clients, %llu operations, %llu clients killed and replaced, "
	       "1 daemon restart\n", seconds, nclients, (unsigned long long)total_ops(),
	       (unsigned long long)tally.kills);
	printf("soak: %zu blocks live at the end (%llu bytes; in_use_bytes %llu before they "
	       "were freed), all intact, none overlapping\n", n, (unsigned long long)live_bytes,
	       (unsigned long long)in_use_before);
	printf("soak: in_use_bytes after freeing everything: %llu (allowance %llu: %llu for "
	       "operations under way at client kills, %llu for batches in flight at the "
	       "daemon kill)\n", (unsigned long long)left, (unsigned long long)allowed,
	       (unsigned long long)tally.slack,
	       (unsigned long long)(IN_FLIGHT_PER_CLIENT * nclients));
	printf("soak: reclaimed_objects %llu since the restart\n", (unsigned long long)reclaimed);
	fflush(stdout);
	ck_assert_uint_ge(in_use_before, live_bytes);
	ck_assert_msg(left <= allowed, "in_use_bytes %llu past the allowance %llu",
		      (unsigned long long)left, (unsigned long long)allowed);
	ck_assert_uint_gt(reclaimed, 0);
	void *p = shma_malloc(100); /* still serving */
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	shma_disconnect();

	/* Stop it, then once more with --cleanup: /dev/shm must be clean. */
	e2e_kill_daemon(&e2e);
	static const char *const cleanup[] = {"--cleanup", NULL};
	ck_assert_int_eq(e2e_restart_daemon(&e2e, cleanup), 0);
	char instance[sizeof e2e.instance];
	strcpy(instance, e2e.instance);
	e2e_stop_daemon(&e2e);
	ck_assert_int_eq(test_segments_left(instance), 0);
	printf("soak: daemon stopped with --cleanup, /dev/shm clean; every invariant holds\n");
	munmap(slots, bytes);
}
END_TEST

int main(void)
{
	seconds = env_or("SOAK_SECONDS", 120);
	nclients = env_or("SOAK_CLIENTS", 8);
	if (nclients > MAX_CLIENTS)
		nclients = MAX_CLIENTS;
	Suite *s = suite_create("soak");
	TCase *tc = tcase_create("soak");
	tcase_set_timeout(tc, seconds + 120);
	tcase_add_test(tc, soak);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
