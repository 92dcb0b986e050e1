/* SPDX-License-Identifier: MIT */
/*
 * The library's thread caches and its view of the heap (client/lib/tcache.c,
 * maps.c, call.c) against a model daemon (modeld.h), which counts what it is
 * asked: what a malloc, a free, a thread's exit and a disconnect send, and
 * what the page map makes of a pointer.  Each test names the planted bug it
 * catches.
 */
#include "config.h"

#include "client.h"
#include "modeld.h"
#include "shmalloc.h"
#include "sizeclass.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#define OBJ 64
/* A class with a bin of 64 objects (batches of 32): BIG_MANY objects pass
 * its high water many times over (and stay quick under Valgrind). */
#define BIG 1024
#define BIG_MANY 400

/* The first refill taken in is marked collected in the thread's bin with
 * the refill's id: the daemon's record that its objects are in a cache now
 * (server/inflight.h).  Catches: call_refill_take() not storing the mark. */
START_TEST(a_refill_taken_in_is_marked_collected)
{
	struct modeld m;
	modeld_start(&m, 3600000);
	unsigned cls = sizeclass_of(OBJ);
	ck_assert_ptr_nonnull(shma_malloc(OBJ));
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->refills, 1);
	struct control_block *cb = conn_control();
	ck_assert_ptr_nonnull(cb);
	ck_assert_uint_eq(tcache_self->index, 0);
	ck_assert_uint_eq(cb->slots[0].bins[cls].collected, m.log->first_refill_id);
	modeld_stop(&m);
}
END_TEST

/* Frees past a bin's high water send half of it back in one Flush, so the
 * bin never holds more than its room; and a disconnect gives back every
 * object the daemon handed out (bins and refills asked ahead alike).
 * Catches: flush_bin() sending one ref at a time (the average Flush), a
 * bin filling past its room, and flush_everything() leaving the refill
 * asked ahead of need out (the count at the end). */
START_TEST(frees_go_back_in_halves_and_a_disconnect_returns_everything)
{
	static void *p[BIG_MANY];
	struct modeld m;
	modeld_start(&m, 3600000);
	unsigned cls = sizeclass_of(BIG);
	for (int i = 0; i < BIG_MANY; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc(BIG));
	struct tcache *t = tcache_self;
	uint32_t room = t->hot[cls].room;
	ck_assert_uint_gt(room, 16);
	for (int i = 0; i < BIG_MANY; i++) {
		shma_free(p[i]);
		ck_assert_uint_le(t->slot->bins[cls].count, room);
	}
	modeld_sync(&m);
	ck_assert_uint_gt(m.log->flushes, 0);
	ck_assert_uint_ge(m.log->flushed_refs / m.log->flushes, room / 4);
	/* Some mallocs more: a refill is asked ahead of need again. */
	for (int i = 0; i < BIG_MANY; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc(BIG));
	for (int i = 0; i < BIG_MANY; i += 2)
		shma_free(p[i]);
	for (int i = 1; i < BIG_MANY; i += 2)
		shma_free(p[i]);
	/* And mallocs until a refill is asked ahead of need (its answer not
	 * taken in), their blocks freed: the disconnect must collect it. */
	int n = 0;
	while (t->pending[cls] == 0 && n < BIG_MANY)
		ck_assert_ptr_nonnull(p[n++] = shma_malloc(BIG));
	ck_assert_uint_ne(t->pending[cls], 0);
	while (n > 0)
		shma_free(p[--n]);
	shma_disconnect();
	ck_assert_uint_eq(m.log->goodbyes, 1);
	ck_assert_uint_eq(m.log->flushed_refs, m.log->refill_objects);
	modeld_stop(&m);
}
END_TEST

struct churn {
	unsigned slot;
	void *first, *last_freed;
};

static void *churn(void *arg)
{
	struct churn *c = arg;
	void *p[10];
	for (int i = 0; i < 10; i++)
		p[i] = shma_malloc(OBJ);
	for (int i = 0; i < 10; i++)
		shma_free(p[i]);
	c->slot = tcache_self->index;
	c->first = p[0];
	c->last_freed = p[9];
	return NULL;
}

/* A thread's exit parks its slot with its blocks, and the next thread takes
 * it: its first malloc is the block the last thread freed last, and nothing
 * was flushed.  Catches: park() emptying every slot (or take_slot() not
 * preferring a parked one).  (The next thread's first malloc still asks a
 * refill ahead of need, unwaited: the slow path does whenever it runs with
 * objects in the bin.) */
START_TEST(a_thread_takes_the_slot_and_blocks_an_exited_thread_left)
{
	struct modeld m;
	modeld_start(&m, 3600000);
	pthread_t th;
	struct churn a = {.slot = 99}, b = {.slot = 98};
	ck_assert_int_eq(pthread_create(&th, NULL, churn, &a), 0);
	pthread_join(th, NULL);
	modeld_sync(&m);
	uint64_t flushed = m.log->flushed_refs;
	ck_assert_uint_eq(m.log->refills, 1);
	ck_assert_int_eq(pthread_create(&th, NULL, churn, &b), 0);
	pthread_join(th, NULL);
	modeld_sync(&m);
	ck_assert_uint_eq(b.slot, a.slot);
	ck_assert_ptr_eq(b.first, a.last_freed);
	ck_assert_uint_eq(m.log->flushed_refs, flushed);
	modeld_stop(&m);
}
END_TEST

/* Pointer -> ref through the page map: any byte of a small object gives
 * the object's start when asked for interior pointers, itself when not; a
 * metadata page is no object; a large block's inner byte gives the block.
 * Catches: map_small_ref() returning the offset for an interior pointer,
 * and map_large_block() taking a later page for the block's first. */
START_TEST(the_page_map_says_what_a_pointer_points_into)
{
	struct modeld m;
	modeld_start(&m, 3600000);
	unsigned cls = sizeclass_of(OBJ), c = SIZECLASS_COUNT;
	char *p = shma_malloc(OBJ);
	ck_assert_ptr_nonnull(p);
	uint64_t ref = shma_ref(p);
	ck_assert_uint_eq(map_small_ref(p + 10, &c, 1), ref);
	ck_assert_uint_eq(c, cls);
	ck_assert_uint_eq(map_small_ref(p + 10, &c, 0), ref + 10);
	ck_assert_uint_eq(map_small_ref(map_ptr(SHMA_PAGE_SIZE), &c, 1), 0);
	ck_assert_uint_eq(shma_usable_size(p), sizeclass_size(cls));
	size_t big = (size_t)1 << 20;
	char *q = shma_malloc(big);
	ck_assert_ptr_nonnull(q);
	uint64_t bref = 0;
	char *start = NULL;
	size_t size = 0;
	ck_assert_int_eq(map_large_block(q + 300000, &bref, &start, &size), 1);
	ck_assert_uint_eq(bref, shma_ref(q));
	ck_assert_ptr_eq(start, q);
	ck_assert_uint_eq(size, big);
	ck_assert_uint_eq(shma_usable_size(q + 300000), big - 300000);
	ck_assert_int_eq(map_large_block(p, &bref, &start, &size), 0);
	modeld_stop(&m);
}
END_TEST

/* An object of an arena made after the heap was mapped (past free_limit,
 * outside debug mode): its free catches the page map up and caches it, and the next malloc of
 * the class takes it back with no refill.  Catches: map_page() not calling
 * map_arenas_made() (the free was dropped as not ours). */
START_TEST(a_free_in_an_arena_made_since_is_cached)
{
	struct modeld m;
	modeld_start(&m, 3600000);
	unsigned cls = sizeclass_of(OBJ);
	void *p = shma_malloc(OBJ);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(map_view.narenas_seen, 1);
	void *q = map_ptr(modeld_make_arena1(&m, cls));
#ifdef HAVE_VALGRIND_VALGRIND_H
	/* As if another process had handed it over: memcheck takes q for a
	 * block this program has (without a call into the library, which
	 * would catch the page map up before the free does). */
	VALGRIND_MALLOCLIKE_BLOCK(q, sizeclass_size(cls), 0, 0);
#endif
	shma_free(q);
	ck_assert_uint_eq(map_view.narenas_seen, 2);
	ck_assert_ptr_eq(shma_malloc(OBJ), q);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->refills, 1);
	modeld_stop(&m);
}
END_TEST

Suite *make_libcache_suite(void);
Suite *make_libcache_suite(void)
{
	Suite *s = suite_create("libcache");
	TCase *tc = tcase_create("libcache");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_refill_taken_in_is_marked_collected);
	tcase_add_test(tc, frees_go_back_in_halves_and_a_disconnect_returns_everything);
	tcase_add_test(tc, a_thread_takes_the_slot_and_blocks_an_exited_thread_left);
	tcase_add_test(tc, the_page_map_says_what_a_pointer_points_into);
	tcase_add_test(tc, a_free_in_an_arena_made_since_is_cached);
	suite_add_tcase(s, tc);
	return s;
}
