/* SPDX-License-Identifier: MIT */
/*
 * The allocator's promises where a shortcut would still pass a gentle test:
 * realloc keeps every byte (into memory poisoned first, so a byte it left
 * out cannot be found there by luck), a block aligned_alloc returns is
 * aligned however many of its kind are live, and a fork child never takes
 * blocks from its parent's caches while the parent allocates too.
 */
#include "e2e.h"
#include "shmalloc.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- realloc copies every byte ---- */

/* Up through every region of the small classes -- class edges and one past
 * them -- into large blocks, then back down. */
static const size_t realloc_sizes[] = {
	1, 16, 17, 48, 100, 128, 129, 1000, 1024, 1025, 4096, 4097, 30000,
	65536, 65537, 131071, 131072, 200000, 1 << 20, (3 << 20) + 5,
	300000, 70000, 5000, 700, 64, 33, 8, 1,
};

/* Takes a few blocks of size (small or large) and gives them back
 * poisoned: the next allocation of that size likely gets one of them. */
static void poison_blocks_of(size_t size)
{
	enum { POISONED = 8 };
	void *p[POISONED];
	for (unsigned i = 0; i < POISONED; i++) {
		p[i] = shma_malloc(size);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], 0xA5, shma_usable_size(p[i]));
	}
	for (unsigned i = POISONED; i-- > 0;)
		shma_free(p[i]);
}

START_TEST(realloc_copies_every_byte_into_poisoned_memory)
{
	const unsigned n = sizeof realloc_sizes / sizeof realloc_sizes[0];
	uint8_t *p = shma_malloc(realloc_sizes[0]);
	ck_assert_ptr_nonnull(p);
	size_t have = shma_usable_size(p); /* the caller may write all of it */
	e2e_fill(p, have, 1000);
	for (unsigned i = 1; i < n; i++) {
		size_t want = realloc_sizes[i];
		poison_blocks_of(want);
		uint8_t *q = shma_realloc(p, want);
		ck_assert_msg(q != NULL, "realloc(%zu -> %zu)", have, want);
		size_t kept = want < have ? want : have;
		ck_assert_msg(e2e_check_fill(q, kept, 1000 + i - 1),
			      "realloc(%zu -> %zu) lost some of the first %zu bytes", have, want, kept);
		ck_assert_uint_ge(shma_usable_size(q), want);
		p = q;
		have = shma_usable_size(p);
		e2e_fill(p, have, 1000 + i);
	}
	shma_free(p);
}
END_TEST

/* ---- aligned_alloc, many blocks live at once ---- */

#define ALIGNED_LIVE 64

START_TEST(aligned_blocks_stay_aligned_while_many_are_live)
{
	static void *live[8][ALIGNED_LIVE];
	for (size_t align = 16; align <= 4096; align *= 2) {
		const size_t sizes[] = {1, align / 2, align - 1, align, align + 1,
					2 * align + 16, 3 * align};
		const unsigned nsizes = sizeof sizes / sizeof sizes[0];
		for (unsigned s = 0; s < nsizes; s++) {
			for (unsigned i = 0; i < ALIGNED_LIVE; i++) {
				uint8_t *p = shma_aligned_alloc(align, sizes[s]);
				ck_assert_msg(p != NULL, "aligned_alloc(%zu, %zu)", align, sizes[s]);
				ck_assert_msg((uintptr_t)p % align == 0,
					      "aligned_alloc(%zu, %zu) #%u gave %p", align, sizes[s],
					      i, (void *)p);
				ck_assert_uint_ge(shma_usable_size(p), sizes[s]);
				e2e_fill(p, sizes[s], align * 1000 + s * 100 + i);
				live[s][i] = p;
			}
		}
		/* All of them live at once: none overlaps another. */
		for (unsigned s = 0; s < nsizes; s++)
			for (unsigned i = 0; i < ALIGNED_LIVE; i++)
				ck_assert(e2e_check_fill(live[s][i], sizes[s],
							 align * 1000 + s * 100 + i));
		for (unsigned s = 0; s < nsizes; s++)
			for (unsigned i = 0; i < ALIGNED_LIVE; i++)
				shma_free(live[s][i]);
	}
}
END_TEST

/* ---- a fork child and its parent allocate at the same time ---- */

#define FORK_SIZE 48
#define FORK_WINDOW 16
#define FORK_HOLD 256
#define FORK_RUN_NS 400000000LL /* each side churns this long */

/* Shared by parent and child: the start line, and the blocks each holds at
 * the end. */
struct fork_race {
	volatile int child_ready, go, child_done;
	shma_ref_t held[2][FORK_HOLD];
};

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Churns blocks of FORK_SIZE, each stamped with who (1: parent, 2: child)
 * and when, checking the stamp before every free; then holds FORK_HOLD
 * stamped blocks, listed in r->held[who - 1].  0, or what went wrong. */
static int race(struct fork_race *r, unsigned who)
{
	void *win[FORK_WINDOW] = {0};
	uint64_t seed[FORK_WINDOW] = {0};
	uint64_t n = 0;
	long long end = now_ns() + FORK_RUN_NS;
	while (n < 10000 || now_ns() < end) {
		for (unsigned k = 0; k < 256; k++, n++) {
			unsigned i = (unsigned)(n % FORK_WINDOW);
			if (win[i] != NULL) {
				if (!e2e_check_fill(win[i], FORK_SIZE, seed[i]))
					return 1; /* the other side wrote our block */
				shma_free(win[i]);
			}
			seed[i] = (uint64_t)who << 40 | n;
			if ((win[i] = shma_malloc(FORK_SIZE)) == NULL)
				return 2;
			e2e_fill(win[i], FORK_SIZE, seed[i]);
		}
	}
	for (unsigned i = 0; i < FORK_WINDOW; i++) {
		if (!e2e_check_fill(win[i], FORK_SIZE, seed[i]))
			return 3;
		shma_free(win[i]);
	}
	for (unsigned i = 0; i < FORK_HOLD; i++) {
		void *p = shma_malloc(FORK_SIZE);
		if (p == NULL)
			return 4;
		e2e_fill(p, FORK_SIZE, (uint64_t)who << 40 | (1u << 30) | i);
		r->held[who - 1][i] = shma_ref(p);
	}
	return 0;
}

static int check_held(const struct fork_race *r, unsigned who)
{
	for (unsigned i = 0; i < FORK_HOLD; i++) {
		void *p = shma_ptr(r->held[who - 1][i]);
		if (p == NULL || !e2e_check_fill(p, FORK_SIZE, (uint64_t)who << 40 | (1u << 30) | i))
			return 0;
	}
	return 1;
}

START_TEST(fork_child_and_parent_allocating_at_once_share_no_block)
{
	struct fork_race *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(r, MAP_FAILED);
	/* Warm caches: the parent's bin of the class is well stocked. */
	void *warm[512];
	for (unsigned i = 0; i < 512; i++)
		ck_assert_ptr_nonnull(warm[i] = shma_malloc(FORK_SIZE));
	for (unsigned i = 0; i < 512; i++)
		shma_free(warm[i]);
	pid_t parent = getpid(), pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		__atomic_store_n(&r->child_ready, 1, __ATOMIC_RELEASE);
		while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE) && getppid() == parent)
			;
		int rc = race(r, 2);
		__atomic_store_n(&r->child_done, 1, __ATOMIC_RELEASE);
		if (rc == 0 && !check_held(r, 2))
			rc = 5;
		/* Hold until the parent has compared (or is gone). */
		while (rc == 0 && __atomic_load_n(&r->go, __ATOMIC_ACQUIRE) != 2 &&
		       getppid() == parent)
			usleep(1000);
		_exit(rc);
	}
	while (!__atomic_load_n(&r->child_ready, __ATOMIC_ACQUIRE))
		;
	__atomic_store_n(&r->go, 1, __ATOMIC_RELEASE);
	int rc = race(r, 1);
	for (int i = 0; i < 1000 && !__atomic_load_n(&r->child_done, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	int both_held = __atomic_load_n(&r->child_done, __ATOMIC_ACQUIRE) && check_held(r, 1);
	unsigned shared = 0;
	for (unsigned i = 0; i < FORK_HOLD; i++)
		for (unsigned k = 0; k < FORK_HOLD; k++)
			shared += r->held[0][i] == r->held[1][k];
	__atomic_store_n(&r->go, 2, __ATOMIC_RELEASE);
	int child = e2e_wait(pid);
	ck_assert_msg(rc == 0, "parent: stamp or allocation failure %d", rc);
	ck_assert_msg(child == 0, "child: status %d", child);
	ck_assert(both_held);
	ck_assert_msg(shared == 0, "%u blocks handed to both parent and child", shared);
	for (unsigned i = 0; i < FORK_HOLD; i++)
		shma_free(shma_ptr(r->held[0][i]));
	munmap(r, sizeof *r);
}
END_TEST

Suite *make_contract_suite(void);
Suite *make_contract_suite(void)
{
	Suite *s = suite_create("contract");
	TCase *tc = tcase_create("promises");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, realloc_copies_every_byte_into_poisoned_memory);
	tcase_add_test(tc, aligned_blocks_stay_aligned_while_many_are_live);
	tcase_add_test(tc, fork_child_and_parent_allocating_at_once_share_no_block);
	suite_add_tcase(s, tc);
	return s;
}
