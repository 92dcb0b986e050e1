/* SPDX-License-Identifier: MIT */
/*
 * The partial lists across a restart (server/heap/lists.c, recovery.c): a
 * region's partial spans come back on the region's list, not the heap's, and
 * a list found broken is rebuilt instead of spun on (issue 21, case 8).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "heap.h"
#include "heap_fixture.h"
#include "heap_internal.h"
#include "layout.h"
#include "sizeclass.h"

#define CLS 3 /* 64-byte objects, 1-page spans (128 objects) */
#define N 40

static void reopen(void)
{
	heap_close(heap_fixture_heap, 0);
	struct heap_config cfg = {
		.instance = heap_fixture_inst, .arena_size = MIB, .mode = 0600, .decay_ms = 1000,
	};
	ck_assert_int_eq(heap_open(&heap_fixture_heap, &cfg), 0);
}

static uint64_t page_of(uint64_t ref)
{
	return ref >> SHMA_PAGE_SHIFT;
}

static int refill(struct heap_region *r, uint64_t *refs, uint32_t want)
{
	struct heap_batch b = {.refs = refs, .refs_cap = want};
	return heap_refill(heap_fixture_heap, r, CLS, want, &b);
}

/* Planted bug it catches: recovery.c pushing every adopted partial span on
 * the heap's list (span_list_push(&h->partial[cls], s)), as it did: the
 * shared refill below is then handed the region's objects, the region's
 * refill gets a fresh span, and ending the region leaves the heap's list
 * naming a freed span (the take_partial() spin of case 8). */
START_TEST(a_region_span_comes_back_on_its_region_list)
{
	uint64_t shared[128], mine[128], more[128];
	heap_fixture_open(0);
	ck_assert_int_eq(refill(NULL, shared, N), N);
	struct heap_region *r = heap_region(heap_fixture_heap, 42, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(refill(r, mine, N), N);
	uint64_t rpage = page_of(mine[0]), spage = page_of(shared[0]);
	ck_assert_uint_ne(rpage, spage);
	reopen();
	ck_assert_int_eq(heap_lists_check(heap_fixture_heap), 0);
	r = heap_region(heap_fixture_heap, 42, 0);
	ck_assert_ptr_nonnull(r);
	/* The heap's refill takes the shared span's free objects, none of
	 * the region's. */
	ck_assert_int_eq(refill(NULL, more, 128 - N), 128 - N);
	for (unsigned i = 0; i < 128 - N; i++)
		ck_assert_uint_ne(page_of(more[i]), rpage);
	/* The region's refill takes its own span's. */
	int got = refill(r, mine + N, 128 - N);
	ck_assert_int_eq(got, 128 - N);
	for (int i = 0; i < got; i++)
		ck_assert_uint_eq(page_of(mine[N + i]), rpage);
	ck_assert_uint_eq(heap_region_end(heap_fixture_heap, 42), 128 * 64);
	/* The lists are whole: refills and frees go on and end. */
	ck_assert_int_eq(heap_lists_check(heap_fixture_heap), 0);
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, shared[i], NULL), 0);
	ck_assert_int_eq(refill(NULL, shared, N), N);
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, shared[i], NULL), 0);
	for (unsigned i = 0; i < 128 - N; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, more[i], NULL), 0);
	struct heap_recovery rec;
	heap_recovery(heap_fixture_heap, &rec);
	ck_assert_uint_eq(rec.lists_rebuilt, 0);
	heap_fixture_close();
}
END_TEST

/* The first listed span of class CLS on the heap's list. */
static struct span *first_shared(void)
{
	struct span *s = span_list_first(&heap_fixture_heap->partial[CLS]);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Planted bug it catches: take_partial() without its check of the head
 * (or heap_lists_check() without its bound): the refill spins on a head
 * that says it is on no list, and the check walks a cycle forever; the
 * test's timeout stops either. */
START_TEST(a_broken_list_is_rebuilt_not_spun_on)
{
	uint64_t a[N], b[N], c[N];
	heap_fixture_open(0);
	ck_assert_int_eq(refill(NULL, a, N), N);
	/* A head that says it is on no list, as the region's span was. */
	first_shared()->listed = 0;
	ck_assert_int_ne(heap_lists_check(heap_fixture_heap), 0);
	ck_assert_int_eq(refill(NULL, b, N), N);
	ck_assert_uint_eq(page_of(b[0]), page_of(a[0])); /* the same span, listed again */
	struct heap_recovery rec;
	heap_recovery(heap_fixture_heap, &rec);
	ck_assert_uint_eq(rec.lists_rebuilt, 1);
	/* A cycle: the walk is bounded, the rebuild undoes it. */
	struct span *s = first_shared();
	s->next = s;
	ck_assert_int_ne(heap_lists_check(heap_fixture_heap), 0);
	ck_assert_int_eq(heap_lists_mend(heap_fixture_heap), 1);
	ck_assert_int_eq(heap_lists_check(heap_fixture_heap), 0);
	ck_assert_int_eq(refill(NULL, c, N), N);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, a[i], NULL), 0);
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, b[i], NULL), 0);
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, c[i], NULL), 0);
	}
	heap_fixture_close();
}
END_TEST

Suite *make_lists_suite(void);
Suite *make_lists_suite(void)
{
	Suite *s = suite_create("lists");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, a_region_span_comes_back_on_its_region_list);
	tcase_add_test(tc, a_broken_list_is_rebuilt_not_spun_on);
	suite_add_tcase(s, tc);
	return s;
}
