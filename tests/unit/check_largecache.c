/* SPDX-License-Identifier: MIT */
/*
 * The large blocks a process keeps (client/lib/largecache.c) against a
 * model daemon (modeld.h) that counts the AllocLarge and FreeLarge it is
 * asked: a freed block is kept in the control block and taken back by the
 * next allocation it fits, within the decay, the keep count and the byte
 * budget, and only when this process allocated it.  Each test names the
 * planted bug it catches.
 */
#include "config.h"

#include "client.h"
#include "modeld.h"
#include "shmalloc.h"

#include <check.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#define MIB ((size_t)1 << 20)
#define FOREVER 3600000u

/* 1 if the control block records a kept block of ref and size. */
static int recorded(uint64_t ref, uint64_t size)
{
	const struct control_block *cb = conn_control();
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
		if (cb->hdr.large[i].ref == ref && cb->hdr.large[i].size == size)
			return 1;
	return 0;
}

/* The kept block is in the control block's record (the daemon takes it
 * back if we die) until it is taken again.  Catches: lcache_put() keeping
 * nothing (a round trip each time), and call_alloc_large() not marking its
 * answer read (large_collected). */
START_TEST(a_freed_block_is_kept_and_reused_without_a_round_trip)
{
	struct modeld m;
	modeld_start(&m, FOREVER);
	char *p = shma_malloc(MIB);
	ck_assert_ptr_nonnull(p);
	modeld_sync(&m);
	ck_assert_uint_eq(conn_control()->hdr.large_collected, m.log->last_large_id);
	shma_free(p);
	ck_assert(recorded(shma_ref(p), MIB));
	ck_assert_ptr_eq(shma_malloc(MIB), p);
	ck_assert(!recorded(shma_ref(p), MIB));
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->alloc_large, 1);
	ck_assert_uint_eq(m.log->free_large, 0);
	modeld_stop(&m);
}
END_TEST

/* A kept block serves a request it fits by no more than twice.  Catches:
 * lcache_take() without its s / 2 <= need bound (a 1 MiB block for 256 KiB). */
START_TEST(a_kept_block_serves_at_most_twice_the_request)
{
	struct modeld m;
	modeld_start(&m, FOREVER);
	char *p = shma_malloc(MIB);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	char *q = shma_malloc(MIB / 4);
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_ne(q, p);
	ck_assert_ptr_eq(shma_malloc(MIB / 2 + MIB / 16), p);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->alloc_large, 2);
	modeld_stop(&m);
}
END_TEST

/* With a decay of 0 a freed block goes back at once.  Catches:
 * lcache_expire() ignoring the decay. */
START_TEST(a_decay_of_0_keeps_nothing)
{
	struct modeld m;
	modeld_start(&m, 0);
	char *p = shma_malloc(MIB);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->free_large, 1);
	ck_assert_uint_eq(m.log->free_large_bytes, MIB);
	modeld_stop(&m);
}
END_TEST

/* A large block this process did not allocate (another's, handed over by
 * ref) goes back, never into the cache.  Catches: lcache_put() not asking
 * forget_mine(). */
START_TEST(a_block_another_process_allocated_is_not_kept)
{
	struct modeld m;
	modeld_start(&m, FOREVER);
	char *p = shma_ptr(m.premade_large);
	ck_assert_ptr_nonnull(p);
#ifdef HAVE_VALGRIND_VALGRIND_H
	/* shma_ptr() makes a received block defined for memcheck, not one
	 * this program allocated: its free would be an "invalid free". */
	VALGRIND_MALLOCLIKE_BLOCK(p, m.premade_size, 0, 0);
#endif
	shma_free(p);
	ck_assert(!recorded(m.premade_large, m.premade_size));
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->free_large, 1);
	ck_assert_uint_eq(m.log->free_large_bytes, m.premade_size);
	modeld_stop(&m);
}
END_TEST

/* At most SHMA_LARGE_KEEP blocks are kept: one more evicts the oldest.
 * Catches: lcache_put() overwriting an entry without giving its block back
 * (the count of FreeLarge) or keeping past the table. */
START_TEST(one_block_past_the_keep_count_evicts_one)
{
	struct modeld m;
	modeld_start(&m, FOREVER);
	char *p[SHMA_LARGE_KEEP + 1];
	for (unsigned i = 0; i <= SHMA_LARGE_KEEP; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc(MIB / 4));
	for (unsigned i = 0; i <= SHMA_LARGE_KEEP; i++)
		shma_free(p[i]);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->free_large, 1);
	ck_assert(recorded(shma_ref(p[SHMA_LARGE_KEEP]), MIB / 4));
	modeld_stop(&m);
}
END_TEST

/* The kept bytes stay within 64 MiB (the oldest goes back first), a block
 * past it is never kept, and a disconnect gives every kept block back.
 * Catches: lcache_put() without its byte budget, and lcache_flush() not
 * run (or not evicting) at disconnect. */
START_TEST(the_byte_budget_holds_and_a_disconnect_returns_every_kept_block)
{
	struct modeld m;
	modeld_start(&m, FOREVER);
	char *a = shma_malloc(30 * MIB), *b = shma_malloc(30 * MIB), *c = shma_malloc(30 * MIB);
	char *d = shma_malloc(65 * MIB);
	ck_assert(a && b && c && d);
	shma_free(d);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->free_large, 1); /* past the budget alone */
	shma_free(a);
	shma_free(b);
	shma_free(c);
	modeld_sync(&m);
	/* One of a and b, the oldest (within the clock's millisecond). */
	ck_assert_uint_eq(m.log->free_large, 2);
	ck_assert_uint_eq(m.log->free_large_bytes, 95 * MIB);
	ck_assert(recorded(shma_ref(c), 30 * MIB));
	ck_assert_int_eq(recorded(shma_ref(a), 30 * MIB) + recorded(shma_ref(b), 30 * MIB), 1);
	shma_disconnect();
	ck_assert_uint_eq(m.log->free_large, 4);
	ck_assert_uint_eq(m.log->free_large_bytes, 155 * MIB);
	modeld_stop(&m);
}
END_TEST

Suite *make_largecache_suite(void);
Suite *make_largecache_suite(void)
{
	Suite *s = suite_create("largecache");
	TCase *tc = tcase_create("largecache");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_freed_block_is_kept_and_reused_without_a_round_trip);
	tcase_add_test(tc, a_kept_block_serves_at_most_twice_the_request);
	tcase_add_test(tc, a_decay_of_0_keeps_nothing);
	tcase_add_test(tc, a_block_another_process_allocated_is_not_kept);
	tcase_add_test(tc, one_block_past_the_keep_count_evicts_one);
	tcase_add_test(tc, the_byte_budget_holds_and_a_disconnect_returns_every_kept_block);
	suite_add_tcase(s, tc);
	return s;
}
