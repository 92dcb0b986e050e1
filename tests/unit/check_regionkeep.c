/* SPDX-License-Identifier: MIT */
/*
 * What a region keeps of its empty spans, and how it ends
 * (server/heap/regionkeep.c, issue 22 item 5): a region's span that empties
 * stays for the region's next refill of its class, up to a batch of
 * objects, and is handed out again as a run, with no reservation of its
 * pages; the shared heap's goes back at once; a region whose end is coming
 * keeps every span until the end, which punches them all and reserves none.
 */
#include <check.h>

#include "heap.h"
#include "heap_fixture.h"
#include "sizeclass.h"

#define CLS 3 /* 64-byte objects, 1-page spans of 128 */
#define PER_SPAN 128u
/* What a class's list keeps: 32 KiB of objects, 512 of 64 B, 4 spans. */
#define KEPT_SPANS 4u

static uint64_t resident(void)
{
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	return t.resident_bytes;
}

static uint64_t spans(void)
{
	struct heap_class_stats s;
	heap_class_stats(heap_fixture_heap, CLS, &s);
	return s.spans;
}

/* Refills of region r (NULL: the shared heap) until n objects are out, into
 * refs (runs expanded); the count. */
static unsigned take(struct heap_region *r, unsigned n, uint64_t *refs)
{
	unsigned got = 0;
	while (got < n) {
		uint64_t one[PER_SPAN];
		struct heap_run runs[4];
		struct heap_batch b = {.refs = one, .refs_cap = PER_SPAN, .runs = runs,
				       .runs_cap = 4};
		int k = heap_refill(heap_fixture_heap, r, CLS, n - got < PER_SPAN ? n - got : PER_SPAN,
				    &b);
		ck_assert_int_gt(k, 0);
		for (uint32_t i = 0; i < b.nrefs; i++)
			refs[got++] = one[i];
		for (uint32_t i = 0; i < b.nruns; i++)
			for (uint32_t j = 0; j < runs[i].count; j++)
				refs[got++] = runs[i].first + (uint64_t)j * 64;
	}
	return got;
}

static void give_back(const uint64_t *refs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[i], NULL), 0);
}

/* Planted bug: heap_span_keep() returning 0 (every emptied span goes back, as
 * before): the spans count falls to 0, the region's next refill is a fresh
 * span elsewhere, and the pages were reserved (resident grew). */
START_TEST(a_region_keeps_an_emptied_span_for_its_next_refill)
{
	uint64_t refs[PER_SPAN];
	heap_fixture_open(0);
	struct heap_region *r = heap_region(heap_fixture_heap, 42, 1);
	ck_assert_ptr_nonnull(r);
	uint64_t before = resident();
	ck_assert_uint_eq(take(r, PER_SPAN, refs), PER_SPAN);
	give_back(refs, PER_SPAN);
	ck_assert_uint_eq(spans(), 1);
	ck_assert_uint_eq(resident(), before);
	/* The same span, whole, as a run. */
	uint64_t one[PER_SPAN];
	struct heap_run runs[4];
	struct heap_batch b = {.refs = one, .refs_cap = PER_SPAN, .runs = runs, .runs_cap = 4};
	ck_assert_int_eq(heap_refill(heap_fixture_heap, r, CLS, PER_SPAN, &b), PER_SPAN);
	ck_assert_uint_eq(b.nruns, 1);
	ck_assert_uint_eq(b.nrefs, 0);
	ck_assert_uint_eq(runs[0].first, refs[0]);
	ck_assert_uint_eq(spans(), 1);
	ck_assert_uint_eq(heap_region_end(heap_fixture_heap, 42), PER_SPAN * 64);
	ck_assert_uint_eq(spans(), 0);
	heap_fixture_close();
}
END_TEST

/* The bound, and the shared heap.  Planted bugs: no bound (all 6 spans
 * kept), or the shared heap's spans kept too (spans 1 after its frees). */
START_TEST(a_region_keeps_a_batch_of_empty_spans_the_shared_heap_none)
{
	enum { N = 6 * PER_SPAN };
	static uint64_t refs[N];
	heap_fixture_open(0);
	struct heap_region *r = heap_region(heap_fixture_heap, 42, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(take(r, N, refs), N);
	ck_assert_uint_eq(spans(), 6);
	give_back(refs, N);
	ck_assert_uint_eq(spans(), KEPT_SPANS);
	ck_assert_uint_eq(heap_region_end(heap_fixture_heap, 42), 0);
	ck_assert_uint_eq(spans(), 0);
	ck_assert_uint_eq(take(NULL, PER_SPAN, refs), PER_SPAN);
	ck_assert_uint_eq(spans(), 1);
	give_back(refs, PER_SPAN);
	ck_assert_uint_eq(spans(), 0);
	heap_fixture_close();
}
END_TEST

/* A region whose end is coming keeps every span while its caches come back,
 * and the end punches its pages rather than reserve them.  Planted bugs:
 * heap_region_closing() not called or ignored (spans fall to the bound while
 * the objects come back); the end reserving the region's runs first, as
 * heap_settle_lazy() did (resident after the end above what it was before
 * the region: the untouched pages made real). */
START_TEST(a_closing_region_gives_its_pages_back_once_at_its_end)
{
	enum { N = 6 * PER_SPAN };
	static uint64_t refs[N];
	heap_fixture_open(0);
	uint64_t before = resident();
	struct heap_region *r = heap_region(heap_fixture_heap, 42, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(take(r, N, refs), N);
	heap_region_closing(heap_fixture_heap, 42);
	give_back(refs, N - 1);
	ck_assert_uint_eq(spans(), 6);
	ck_assert_uint_eq(heap_region_end(heap_fixture_heap, 42), 64);
	ck_assert_uint_eq(spans(), 0);
	ck_assert_uint_le(resident(), before);
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.in_use_bytes, 0);
	ck_assert_int_lt(heap_object_class(heap_fixture_heap, refs[N - 1]), 0);
	heap_fixture_close();
}
END_TEST

Suite *make_regionkeep_suite(void);
Suite *make_regionkeep_suite(void)
{
	Suite *s = suite_create("regionkeep");
	TCase *tc = tcase_create("regionkeep");
	tcase_add_test(tc, a_region_keeps_an_emptied_span_for_its_next_refill);
	tcase_add_test(tc, a_region_keeps_a_batch_of_empty_spans_the_shared_heap_none);
	tcase_add_test(tc, a_closing_region_gives_its_pages_back_once_at_its_end);
	suite_add_tcase(s, tc);
	return s;
}
