/* SPDX-License-Identifier: MIT */
/*
 * The large blocks a process keeps (client/lib/largecache.c): a freed large
 * block is taken again by the next large malloc it fits (at most twice the
 * request) with no round trip; at most SHMA_LARGE_KEEP blocks and 64 MiB
 * are kept; what is older than the daemon's --decay goes back on the next
 * large-block call, and everything at disconnect or when the process dies.
 * The daemon's view is the proof: its count of large blocks out
 * (large_count) counts a kept block, and malloc_waits counts every large
 * malloc that asked it.  Each e2e_stat() is a round trip on the process's
 * one connection, which the daemon reads in order: a FreeLarge sent
 * before it, unanswered, is counted by then.
 */
#include "e2e.h"
#include "layout.h"
#include "shmalloc.h"

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static uint64_t large_out(void)
{
	return e2e_stat("\"large_count\":");
}

/* The daemon's count of mallocs that waited for it.  The library counts
 * them in the thread's slot, which a thread takes at its first small
 * malloc: the tests make one first. */
static uint64_t waits(void)
{
	return e2e_stat("\"malloc_waits\":");
}

START_TEST(a_freed_large_block_is_taken_again_without_the_daemon)
{
	void *slot = shma_malloc(16);
	char *p = shma_malloc(MIB);
	ck_assert_ptr_nonnull(p);
	e2e_fill(p, MIB, 1);
	shma_free(p);
	ck_assert_uint_eq(large_out(), 1); /* kept, so still out */
	uint64_t w = waits();
	char *q = shma_malloc(MIB - 4096);
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_eq(waits(), w);
	ck_assert_uint_eq(large_out(), 1);
	shma_free(q);
	/* Not for a request of less than half its size, nor a bigger one. */
	char *small = shma_malloc(MIB / 2 - 4096);
	char *big = shma_malloc(2 * MIB);
	ck_assert_ptr_nonnull(small);
	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_ne(small, p);
	ck_assert_ptr_ne(big, p);
	ck_assert_uint_eq(waits(), w + 2);
	ck_assert_uint_eq(large_out(), 3);
	shma_free(small);
	shma_free(big);
	shma_free(slot);
}
END_TEST

START_TEST(at_most_eight_large_blocks_and_64_mib_are_kept)
{
	enum { N = SHMA_LARGE_KEEP + 2 };
	void *p[N];
	for (unsigned i = 0; i < N; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc(MIB));
	for (unsigned i = 0; i < N; i++)
		shma_free(p[i]);
	ck_assert_uint_eq(large_out(), SHMA_LARGE_KEEP);
	/* By bytes: three of 24 MiB do not fit in 64 (the eight above go
	 * first, the oldest first). */
	for (unsigned i = 0; i < 3; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc(24 * MIB));
	for (unsigned i = 0; i < 3; i++)
		shma_free(p[i]);
	ck_assert_uint_eq(large_out(), 2);
	ck_assert_uint_eq(e2e_stat("\"large_bytes\":"), 2 * 24 * MIB);
	/* And none bigger than 64 MiB. */
	void *huge = shma_malloc(65 * MIB);
	ck_assert_ptr_nonnull(huge);
	shma_free(huge);
	ck_assert_uint_eq(large_out(), 2);
}
END_TEST

START_TEST(the_kept_blocks_go_back_at_disconnect)
{
	uint64_t base = e2e_stat("\"in_use_bytes\":");
	void *p[3];
	for (unsigned i = 0; i < 3; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc((i + 1) * MIB));
	for (unsigned i = 0; i < 3; i++)
		shma_free(p[i]);
	ck_assert_uint_eq(large_out(), 3);
	shma_disconnect();
	ck_assert_uint_eq(large_out(), 0);
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), base);
}
END_TEST

static int keep_and_die(void *arg)
{
	(void)arg;
	void *p[4];
	for (unsigned i = 0; i < 4; i++)
		if ((p[i] = shma_malloc((i + 1) * MIB)) == NULL)
			return 1;
	for (unsigned i = 0; i < 4; i++)
		shma_free(p[i]);
	kill(getpid(), SIGKILL);
	return 2;
}

START_TEST(the_kept_blocks_of_a_killed_process_go_back)
{
	ck_assert_uint_eq(large_out(), 0);
	ck_assert_int_eq(e2e_wait(e2e_fork(keep_and_die, NULL)), 128 + SIGKILL);
	for (int i = 0; i < 500 && large_out() != 0; i++)
		usleep(10000); /* until the daemon has read the end */
	ck_assert_uint_eq(large_out(), 0);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(0), 0);
}
END_TEST

/* A daemon with --decay 0: every kept block is older than the decay at the
 * next large-block call, the free that kept it included.  (Planted:
 * lcache_expire() that ignores the decay -- cached large blocks were never
 * given back while the process lived.) */
START_TEST(kept_blocks_older_than_the_decay_go_back)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--decay", "0", NULL};
	e2e_start_daemon(&d, extra);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	void *p = shma_malloc(MIB);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	ck_assert_uint_eq(large_out(), 0);
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

Suite *make_largeblocks_suite(void);
Suite *make_largeblocks_suite(void)
{
	Suite *s = suite_create("largeblocks");
	TCase *tc = tcase_create("largecache");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_freed_large_block_is_taken_again_without_the_daemon);
	tcase_add_test(tc, at_most_eight_large_blocks_and_64_mib_are_kept);
	tcase_add_test(tc, the_kept_blocks_go_back_at_disconnect);
	tcase_add_test(tc, the_kept_blocks_of_a_killed_process_go_back);
	tcase_add_test(tc, kept_blocks_older_than_the_decay_go_back);
	suite_add_tcase(s, tc);
	return s;
}
