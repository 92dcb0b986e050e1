/* SPDX-License-Identifier: MIT */
/*
 * Nothing lost when clients die: clients killed at random instants of a
 * churn loop, and one that scribbled on its control block before dying.
 * The checks are on the daemon's own accounting (in_use_bytes, rejected
 * frees, reclaimed objects) against what the dead processes provably held,
 * and on the contents of every block that must have survived.
 */
#include "e2e.h"
#include "seed.h"
#include "layout.h"
#include "recovery.h"
#include "shmalloc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- (a) clients killed in a churn loop ---- */

#define WINDOW 128
#define THREADS 2

/* What one churning thread holds, in memory its parent sees after the kill.
 * pending is the size of the one malloc or free under way, whose block may
 * or may not be the application's at the instant of the kill. */
struct churn {
	volatile uint64_t refs[WINDOW];
	volatile uint32_t sizes[WINDOW];
	volatile uint64_t pending;
	uint64_t seed;
};

static size_t churn_size(uint64_t r)
{
	if (r % 97 == 0)
		return 150000 + r % 50000; /* now and then a large block */
	return 1 + r % 2000;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *churn_thread(void *arg)
{
	struct churn *t = arg;
	for (;;) {
		uint64_t r = next_rand(&t->seed);
		unsigned i = (unsigned)(r % WINDOW);
		if (t->refs[i] != 0) {
			uint64_t ref = t->refs[i];
			void *p = shma_ptr(ref);
			if (p == NULL || !e2e_check_fill(p, t->sizes[i], ref))
				_exit(3);
			t->pending = t->sizes[i];
			t->refs[i] = 0;
			shma_free(p);
			t->pending = 0;
			continue;
		}
		size_t n = churn_size(r >> 8);
		t->sizes[i] = (uint32_t)n;
		t->pending = n;
		void *p = shma_malloc(n);
		if (p == NULL) {
			fprintf(stderr, "churn: malloc(%zu): %s\n", n, strerror(errno));
			_exit(4); /* only a kill may end us: say why we stopped */
		}
		uint64_t ref = shma_ref(p);
		e2e_fill(p, n, ref);
		t->refs[i] = ref;
		t->pending = 0;
	}
	return NULL;
}

static int churn_child(void *arg)
{
	struct churn *t = arg;
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, churn_thread, &t[i]);
	pthread_join(th[0], NULL); /* never: the parent kills us */
	return 5;
}

/* The bytes a pending operation may have left out: its block rounded up to
 * its class (12.5% and 16 B) or to pages. */
static uint64_t slack_of(uint64_t pending)
{
	return pending ? pending + pending / 8 + 8192 : 0;
}

/* Checks and frees every block the dead children's applications held;
 * returns the slack their pending operations allow. */
static uint64_t free_what_they_held(struct churn *t, unsigned n)
{
	uint64_t slack = 0;
	for (unsigned k = 0; k < n; k++) {
		for (unsigned i = 0; i < WINDOW; i++) {
			uint64_t ref = t[k].refs[i];
			if (ref == 0)
				continue;
			void *p = shma_ptr(ref);
			ck_assert_ptr_nonnull(p);
			ck_assert_msg(e2e_check_fill(p, t[k].sizes[i], ref),
				      "block %#llx of a killed client was overwritten",
				      (unsigned long long)ref);
			shma_free(p);
		}
		slack += slack_of(t[k].pending);
	}
	return slack;
}

START_TEST(clients_killed_at_random_leave_exact_accounting)
{
	enum { ROUNDS = 10, CHILDREN = 4 };
	size_t bytes = sizeof(struct churn) * THREADS * CHILDREN * ROUNDS;
	struct churn *all = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(all, MAP_FAILED);
	srand(TEST_SEED());
	for (unsigned r = 0; r < ROUNDS; r++) {
		pid_t pid[CHILDREN];
		for (unsigned c = 0; c < CHILDREN; c++) {
			struct churn *t = &all[(r * CHILDREN + c) * THREADS];
			for (unsigned k = 0; k < THREADS; k++)
				t[k].seed = (uint64_t)rand() << 20 | (r * 16 + c * 2 + k + 1);
			pid[c] = e2e_fork(churn_child, t);
		}
		for (unsigned c = 0; c < CHILDREN; c++) {
			usleep(2000 + (useconds_t)(rand() % 40000));
			kill(pid[c], SIGKILL);
		}
		for (unsigned c = 0; c < CHILDREN; c++)
			ck_assert_int_eq(e2e_wait(pid[c]), 128 + SIGKILL);
	}
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t slack = free_what_they_held(all, THREADS * CHILDREN * ROUNDS);
	/* Our own cache goes back with the goodbye; then ask again. */
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use = e2e_wait_in_use_at_most(0);
	ck_assert_msg(in_use <= slack, "in_use_bytes %llu after every block was freed "
		      "(pending operations at the kills allow %llu)",
		      (unsigned long long)in_use, (unsigned long long)slack);
	if (slack == 0)
		ck_assert_uint_eq(in_use, 0);
	ck_assert_uint_gt(e2e_stat("\"reclaimed_objects\":"), 0);
	ck_assert_uint_eq(recovery_stat_rejected(), 0);
	munmap(all, bytes);
}
END_TEST

/* Warms its caches, then scribbles on its control block -- counts past the
 * end of a bin, refs that name nothing, a ref twice, a slot of noise -- and
 * dies. */
static int scribble_and_die(void *arg)
{
	(void)arg;
	static void *p[3000];
	for (unsigned i = 0; i < 3000; i++)
		if ((p[i] = shma_malloc(16 + (i % 12) * 16)) == NULL)
			return 40;
	for (unsigned i = 0; i < 3000; i++)
		shma_free(p[i]);
	struct control_block *cb = recovery_my_control_block();
	if (cb == NULL)
		return 41;
	struct control_slot *s = &cb->slots[0];
	for (unsigned i = 0; i < SHMA_CONTROL_SLOTS && !s->in_use; i++)
		s = &cb->slots[i];
	unsigned k = 0, slot = (unsigned)(s - cb->slots);
	uint32_t first[SIZECLASS_COUNT];
	layout_bin_firsts(first);
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		struct tcache_bin *b = &s->bins[cls];
		uint64_t *refs = &cb->refs[slot][first[cls]];
		if (b->count == 0)
			continue;
		switch (k++ % 3) {
		case 0: b->count = UINT32_MAX; break;
		case 1: refs[0] ^= 0x5a5a5a; break;
		default:
			refs[b->count - 1] = refs[0]; /* the first ref twice */
			b->count = UINT32_MAX;
		}
	}
	struct control_slot *noise = &cb->slots[SHMA_CONTROL_SLOTS - 1];
	noise->in_use = 1;
	cb->hdr.slots_taken = SHMA_CONTROL_SLOTS; /* as a client that took them all */
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++) {
		noise->bins[cls].count = (uint32_t)random();
		for (unsigned i = 0; i < 4; i++)
			cb->refs[SHMA_CONTROL_SLOTS - 1][first[cls] + i] =
				(uint64_t)random() << 33 ^ (uint64_t)random();
	}
	kill(getpid(), SIGKILL);
	return 42;
}

static int churn_a_little(void *arg)
{
	(void)arg;
	static void *p[5000];
	for (int r = 0; r < 3; r++) {
		for (unsigned i = 0; i < 5000; i++) {
			if ((p[i] = shma_malloc(16 + (i % 12) * 16)) == NULL)
				return 50;
			e2e_fill(p[i], 16, i);
		}
		for (unsigned i = 0; i < 5000; i++)
			if (!e2e_check_fill(p[i], 16, i))
				return 51;
		for (unsigned i = 0; i < 5000; i++)
			shma_free(p[i]);
	}
	return 0;
}

START_TEST(a_scribbled_control_block_is_walked_safely)
{
	ck_assert_int_eq(e2e_wait(e2e_fork(scribble_and_die, NULL)), 128 + SIGKILL);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	for (int i = 0; i < 100 && e2e_stat("\"reclaimed_objects\":") == 0; i++)
		usleep(50000);
	/* The good links were taken back, the bad ones ended their bin. */
	ck_assert_uint_gt(e2e_stat("\"reclaimed_objects\":"), 0);
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), 3000 * 208);
	ck_assert_int_eq(kill(e2e.pid, 0), 0);
	/* And the heap is whole: others allocate and free as before. */
	ck_assert_int_eq(e2e_wait(e2e_fork(churn_a_little, NULL)), 0);
	ck_assert_uint_eq(recovery_stat_rejected(), 0);
}
END_TEST

Suite *make_reclaim_suite(void);
Suite *make_reclaim_suite(void)
{
	Suite *s = suite_create("reclaim");
	TCase *tc = tcase_create("client-crash");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, clients_killed_at_random_leave_exact_accounting);
	tcase_add_test(tc, a_scribbled_control_block_is_walked_safely);
	suite_add_tcase(s, tc);
	return s;
}
