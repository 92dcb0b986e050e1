/* SPDX-License-Identifier: MIT */
/*
 * A randomized stress test: several processes on one heap allocate blocks of
 * random sizes, write a pattern that names the block, pass blocks to each
 * other by ref through rings in shared memory, verify what they receive and
 * free it.  A block handed out twice, or two live blocks that overlap, or a
 * block recycled while still live, shows up as a broken pattern; at the end
 * every block is freed and the daemon must count nothing in use.
 */
#include "e2e.h"
#include "shmalloc.h"

#include <check.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PROCS 4
#define HELD 512
#define OPS 60000

struct header {
	uint64_t ref;
	uint64_t size;
	uint64_t seed;
};

static struct e2e_ring *rings;

static size_t random_size(unsigned *seed)
{
	unsigned r = (unsigned)rand_r(seed);
	switch (r % 16) {
	case 0: return 150000 + r % 300000;   /* large */
	case 1: case 2: return 4096 + r % 60000;
	default: return sizeof(struct header) + r % 600;
	}
}

static void stamp(void *p, size_t size, uint64_t seed)
{
	struct header *h = p;
	h->ref = shma_ref(p);
	h->size = size;
	h->seed = seed;
	uint8_t *tail = (uint8_t *)p + sizeof *h;
	size_t n = size - sizeof *h;
	for (size_t i = 0; i < n && i < 256; i++)
		tail[i] = (uint8_t)(seed + i);
	for (size_t i = n > 512 ? n - 256 : 256; i < n; i++)
		tail[i] = (uint8_t)(seed * 7 + i);
}

static int intact(const void *p)
{
	const struct header *h = p;
	if (h->ref != shma_ref(p) || shma_usable_size(p) < h->size)
		return 0;
	const uint8_t *tail = (const uint8_t *)p + sizeof *h;
	size_t n = h->size - sizeof *h;
	for (size_t i = 0; i < n && i < 256; i++)
		if (tail[i] != (uint8_t)(h->seed + i))
			return 0;
	for (size_t i = n > 512 ? n - 256 : 256; i < n; i++)
		if (tail[i] != (uint8_t)(h->seed * 7 + i))
			return 0;
	return 1;
}

/* Takes what the neighbour passed; 0, or an exit code on a broken block. */
static int receive(struct e2e_ring *in, void **held, unsigned *nheld)
{
	shma_ref_t ref;
	while ((ref = e2e_ring_get(in)) != 0) {
		void *p = shma_ptr(ref);
		if (p == NULL || !intact(p))
			return 20;
		if (*nheld < HELD)
			held[(*nheld)++] = p;
		else
			shma_free(p);
	}
	return 0;
}

static int worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg, seed = me * 7919 + 1;
	struct e2e_ring *in = &rings[me], *out = &rings[(me + 1) % PROCS];
	void *held[HELD];
	unsigned nheld = 0;
	for (unsigned op = 0; op < OPS; op++) {
		unsigned r = (unsigned)rand_r(&seed) % 8;
		if (r < 4 && nheld < HELD) {
			size_t size = random_size(&seed);
			void *p = shma_malloc(size);
			if (p == NULL)
				return 10;
			stamp(p, size, (uint64_t)seed);
			held[nheld++] = p;
		} else if (r < 6 && nheld > 0) {
			unsigned i = (unsigned)rand_r(&seed) % nheld;
			if (!intact(held[i])) {
				const struct header *h = held[i];
				fprintf(stderr, "worker %u op %u: block %p ref %#llx: header ref %#llx size %llu (usable %zu)\n",
					me, op, held[i], (unsigned long long)shma_ref(held[i]),
					(unsigned long long)h->ref, (unsigned long long)h->size,
					shma_usable_size(held[i]));
				return 11;
			}
			shma_free(held[i]);
			held[i] = held[--nheld];
		} else if (r == 6 && nheld > 0) {
			unsigned i = (unsigned)rand_r(&seed) % nheld;
			if (e2e_ring_put(out, shma_ref(held[i])))
				held[i] = held[--nheld];
		} else if (receive(in, held, &nheld) != 0) {
			return 12;
		}
	}
	for (unsigned i = 0; i < nheld; i++) {
		if (!intact(held[i]))
			return 13;
		shma_free(held[i]);
	}
	return 0;
}

/* What is left in the rings once every worker stopped: free it here. */
static void drain_rings(void)
{
	for (unsigned i = 0; i < PROCS; i++) {
		shma_ref_t ref;
		while ((ref = e2e_ring_get(&rings[i])) != 0) {
			void *p = shma_ptr(ref);
			ck_assert_ptr_nonnull(p);
			ck_assert(intact(p));
			shma_free(p);
		}
	}
}

START_TEST(processes_pass_blocks_at_random)
{
	rings = mmap(NULL, PROCS * sizeof *rings, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(rings, MAP_FAILED);
	memset(rings, 0, PROCS * sizeof *rings);
	pid_t pid[PROCS];
	for (unsigned i = 0; i < PROCS; i++)
		pid[i] = e2e_fork(worker, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < PROCS; i++)
		ck_assert_int_eq(e2e_wait(pid[i]), 0);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	drain_rings();
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
	munmap(rings, PROCS * sizeof *rings);
}
END_TEST

START_TEST(decay_gives_memory_back)
{
	/* A burst of 40 MiB of small blocks, all freed: after the decay the
	 * daemon has punched the free pages, and /dev/shm holds little more
	 * than the metadata. */
	struct e2e_daemon quick;
	const char *const extra[] = {"--decay", "0.2", NULL};
	e2e_start_daemon(&quick, extra);
	ck_assert_int_eq(shma_connect(quick.socket), 0);
	enum { N = 40 * 1024 };
	static void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = shma_malloc(1000);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], 0x77, 1000);
	}
	uint64_t peak = e2e_stat("\"resident_bytes\":");
	ck_assert_uint_ge(peak, (uint64_t)N * 1000);
	for (int i = 0; i < N; i++)
		shma_free(p[i]);
	shma_disconnect();
	ck_assert_int_eq(shma_connect(quick.socket), 0);
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
	uint64_t resident = peak;
	for (int i = 0; i < 100 && resident * 20 > peak; i++) {
		usleep(50000);
		resident = e2e_stat("\"resident_bytes\":");
	}
	ck_assert_msg(resident * 20 <= peak, "%llu of %llu bytes still resident after the decay",
		      (unsigned long long)resident, (unsigned long long)peak);
	ck_assert_uint_ge(e2e_stat("\"returned_bytes\":"), peak / 2);
	shma_disconnect();
	e2e_stop_daemon(&quick);
}
END_TEST

Suite *make_stress_suite(void);
Suite *make_stress_suite(void)
{
	Suite *s = suite_create("stress");
	TCase *tc = tcase_create("stress");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, processes_pass_blocks_at_random);
	tcase_add_test(tc, decay_gives_memory_back);
	suite_add_tcase(s, tc);
	return s;
}
