/* SPDX-License-Identifier: MIT */
/*
 * End to end, thread caches for any number of threads: a real daemon, and
 * threads by the hundred in one client process.
 *
 * What must hold: every thread of a process gets a cache (a slot of the
 * control block), past the 256 slots a block once had; a thread's start and
 * exit make no round trip to the daemon once a thread has left a slot to
 * take (its bins reserved and stocked); a process that dies with a thousand
 * threads' caches full gives every cached block back; and the daemon reads
 * no slot past its control block whatever the client claims.  Counted, not
 * timed: round trips are the client's requests in the daemon's stats.
 */
#include "e2e.h"
#include "layout.h"
#include "recovery.h"
#include "shmalloc.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MANY 1000     /* threads alive at once */
#define PER_THREAD 64 /* blocks each holds at once, then frees */
#define BLOCK 48

static pthread_barrier_t all_alive;

/* Holds PER_THREAD blocks, frees them (into its cache), and waits until
 * every thread has done as much before it exits. */
static void *hold_and_free(void *arg)
{
	void *p[PER_THREAD];
	(void)arg;
	for (unsigned i = 0; i < PER_THREAD; i++) {
		if ((p[i] = shma_malloc(BLOCK)) == NULL)
			return (void *)1;
		memset(p[i], (int)i, BLOCK);
	}
	for (unsigned i = 0; i < PER_THREAD; i++)
		shma_free(p[i]);
	pthread_barrier_wait(&all_alive);
	return NULL;
}

/* Starts n threads of fn with small stacks; 0, or the first failure. */
static int start_threads(pthread_t *th, unsigned n, void *(*fn)(void *))
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	int rc = 0;
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = pthread_create(&th[i], &attr, fn, NULL);
	pthread_attr_destroy(&attr);
	return rc;
}

static int join_threads(pthread_t *th, unsigned n)
{
	int bad = 0;
	for (unsigned i = 0; i < n; i++) {
		void *rc;
		if (pthread_join(th[i], &rc) != 0 || rc != NULL)
			bad++;
	}
	return bad;
}

START_TEST(a_thousand_live_threads_each_have_a_cache)
{
	static pthread_t th[MANY];
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t requests0 = e2e_my_stat("\"requests\":");
	pthread_barrier_init(&all_alive, NULL, MANY);
	ck_assert_int_eq(start_threads(th, MANY, hold_and_free), 0);
	ck_assert_int_eq(join_threads(th, MANY), 0);
	pthread_barrier_destroy(&all_alive);
	/* Every malloc went through a cache (a thread without one counts
	 * none: it asks the daemon for each block, and frees each straight
	 * back), and few waited: about one refill per thread. */
	ck_assert_uint_eq(e2e_my_stat("\"mallocs\":"), (uint64_t)MANY * PER_THREAD);
	ck_assert_uint_le(e2e_my_stat("\"waits\":"), 4 * MANY);
	/* Messages per thread: a few refills and a flush at exit, not two per
	 * block (64 000 + 64 000 for 744 uncached threads). */
	ck_assert_uint_le(e2e_my_stat("\"requests\":") - requests0, 6 * MANY);
	shma_disconnect();
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
}
END_TEST

/* 16 blocks of a few classes, held, then freed: a short-lived worker. */
static void *short_life(void *arg)
{
	void *p[16];
	(void)arg;
	for (unsigned i = 0; i < 16; i++)
		if ((p[i] = shma_malloc((size_t)64 << (i % 4))) == NULL)
			return (void *)1;
	for (unsigned i = 0; i < 16; i++)
		shma_free(p[i]);
	return NULL;
}

START_TEST(a_thread_start_and_exit_make_no_round_trip)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	pthread_t th;
	/* The first thread takes a fresh slot: its bins reserved and refilled. */
	ck_assert_int_eq(start_threads(&th, 1, short_life), 0);
	ck_assert_int_eq(join_threads(&th, 1), 0);
	uint64_t requests0 = e2e_my_stat("\"requests\":"), waits0 = e2e_my_stat("\"waits\":");
	/* Each later one takes the slot it left, bins and blocks as they were:
	 * no refill, no flush (there were 8 of each per thread). */
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(start_threads(&th, 1, short_life), 0);
		ck_assert_int_eq(join_threads(&th, 1), 0);
	}
	ck_assert_uint_le(e2e_my_stat("\"requests\":") - requests0, 1 + 10);
	ck_assert_uint_le(e2e_my_stat("\"waits\":") - waits0, 4);
	shma_disconnect();
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
}
END_TEST

/* A thousand threads with full caches, then the process is killed. */
static int die_with_many_caches(void *arg)
{
	static pthread_t th[MANY];
	(void)arg;
	/* One more: the main thread kills the process once all have freed. */
	pthread_barrier_init(&all_alive, NULL, MANY + 1);
	if (start_threads(th, MANY, hold_and_free) != 0)
		return 10;
	pthread_barrier_wait(&all_alive);
	kill(getpid(), SIGKILL);
	return 11;
}

START_TEST(a_process_dying_with_a_thousand_threads_caches_gives_them_back)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use0 = e2e_stat("\"in_use_bytes\":");
	uint64_t reclaimed0 = e2e_stat("\"reclaimed_objects\":");
	ck_assert_int_eq(e2e_wait(e2e_fork(die_with_many_caches, NULL)), 128 + SIGKILL);
	/* What was in flight at the kill may leak, as after any kill: at most
	 * one batch of the one class used (seen once in four runs, 6 KiB, with
	 * a thousand threads on two loaded cores), against 3 MiB cached. */
	unsigned cls = sizeclass_of(BLOCK);
	uint64_t in_flight = (uint64_t)layout_bin_batch_cap(cls) * sizeclass_size(cls);
	ck_assert_uint_le(e2e_wait_in_use_at_most(in_use0), in_use0 + in_flight);
	/* Taken back from the caches of every thread, those past slot 256
	 * too: each held PER_THREAD freed blocks at the kill. */
	ck_assert_uint_ge(e2e_stat("\"reclaimed_objects\":") - reclaimed0,
			  (uint64_t)MANY * PER_THREAD);
	shma_disconnect();
}
END_TEST

/* Warms its cache, then claims every slot there is and more -- the last
 * slot, never reserved, says it is in use with refs of noise -- and dies. */
static int claim_past_the_segment(void *arg)
{
	(void)arg;
	static void *p[2000];
	for (unsigned i = 0; i < 2000; i++)
		if ((p[i] = shma_malloc(16 + (i % 8) * 16)) == NULL)
			return 20;
	for (unsigned i = 0; i < 2000; i++)
		shma_free(p[i]);
	struct control_block *cb = recovery_my_control_block();
	if (cb == NULL)
		return 21;
	uint32_t first[SIZECLASS_COUNT];
	layout_bin_firsts(first);
	struct control_slot *last = &cb->slots[SHMA_CONTROL_SLOTS - 1];
	last->in_use = 1;
	last->bins[3].count = 2;
	cb->refs[SHMA_CONTROL_SLOTS - 1][first[3]] = 0x123456789;
	cb->refs[SHMA_CONTROL_SLOTS - 1][first[3] + 1] = 8;
	cb->hdr.slots_taken = UINT32_MAX;
	kill(getpid(), SIGKILL);
	return 22;
}

START_TEST(the_daemon_reads_no_slot_past_the_segment)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t in_use0 = e2e_stat("\"in_use_bytes\":");
	ck_assert_int_eq(e2e_wait(e2e_fork(claim_past_the_segment, NULL)), 128 + SIGKILL);
	/* The daemon lived through it, took back the real cache, refused the
	 * noise (and read nothing past the block: it would have died). */
	ck_assert_uint_eq(e2e_wait_in_use_at_most(in_use0), in_use0);
	ck_assert_uint_ge(e2e_stat("\"reclaimed_objects\":"), 2000);
	/* The headers of slots 64.. were never reserved: not read at all. */
	ck_assert_int_eq(e2e_log_has(&e2e, "have no header it reserved: not read"), 1);
	shma_disconnect();
}
END_TEST

Suite *make_threads_suite(void);
Suite *make_threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_thousand_live_threads_each_have_a_cache);
	tcase_add_test(tc, a_thread_start_and_exit_make_no_round_trip);
	tcase_add_test(tc, a_process_dying_with_a_thousand_threads_caches_gives_them_back);
	tcase_add_test(tc, the_daemon_reads_no_slot_past_the_segment);
	suite_add_tcase(s, tc);
	return s;
}
