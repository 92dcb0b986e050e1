/* SPDX-License-Identifier: MIT */
/*
 * The page heap: free runs coalesce on both sides, exhaustion is -ENOMEM,
 * the heap adds arenas on demand up to max_memory, and decay punches idle
 * runs, counts what it gave back, and the pages are reserved again on reuse.
 */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "heap_fixture.h"
#include "clock.h"
#include "instance.h"
#include "layout.h"
#include "ref.h"
#include "seg.h"
#include "heap.h"
#include "pageheap.h"


static uint64_t free_pages(struct pageheap *ph, uint64_t *largest)
{
	uint64_t n;
	pageheap_stats(ph, UINT32_MAX, &n, largest);
	return n;
}

START_TEST(runs_coalesce_on_both_sides)
{
	struct pageheap *ph;
	struct page_run *a, *b, *c;
	uint64_t largest;
	ck_assert_int_eq(pageheap_create(&ph), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 0, 100, 2), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &a), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &b), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &c), 0);
	ck_assert_uint_eq(a->start, 2);
	ck_assert_uint_eq(b->start, 12);
	ck_assert_uint_eq(c->start, 22);
	pageheap_free(ph, c, 0); /* joins the tail: [22, 100) */
	ck_assert_uint_eq(free_pages(ph, &largest), 78);
	ck_assert_uint_eq(largest, 78);
	pageheap_free(ph, a, 0); /* alone: its left neighbour is metadata */
	ck_assert_uint_eq(free_pages(ph, &largest), 88);
	ck_assert_uint_eq(largest, 78);
	pageheap_free(ph, b, 0); /* joins both */
	ck_assert_uint_eq(free_pages(ph, &largest), 98);
	ck_assert_uint_eq(largest, 98);
	ck_assert_int_eq(pageheap_alloc(ph, 98, &a), 0);
	ck_assert_uint_eq(a->start, 2);
	ck_assert_int_eq(pageheap_alloc(ph, 1, &b), -ENOMEM);
	pageheap_free(ph, a, 0);
	pageheap_destroy(ph);
}
END_TEST

START_TEST(exhaustion_is_enomem)
{
	struct pageheap *ph;
	struct page_run *r[3];
	ck_assert_int_eq(pageheap_create(&ph), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 0, 64, 4), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 1, 64, 4), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 3, 64, 4), -EINVAL);
	ck_assert_int_eq(pageheap_alloc(ph, 61, &r[0]), -ENOMEM);
	ck_assert_int_eq(pageheap_alloc(ph, 0, &r[0]), -EINVAL);
	ck_assert_int_eq(pageheap_alloc(ph, 60, &r[0]), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 60, &r[1]), 0);
	ck_assert_uint_ne(r[0]->region, r[1]->region);
	ck_assert_int_eq(pageheap_alloc(ph, 1, &r[2]), -ENOMEM);
	pageheap_free(ph, r[0], 0);
	pageheap_free(ph, r[1], 0);
	pageheap_destroy(ph);
}
END_TEST

START_TEST(large_runs_are_found)
{
	/* Runs of 256 pages and more share a bin per power of two. */
	struct pageheap *ph;
	struct page_run *a, *b, *c, *d;
	ck_assert_int_eq(pageheap_create(&ph), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 0, 4096, 1), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 300, &a), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 1, &b), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 500, &c), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 1, &d), 0);
	pageheap_free(ph, a, 0);
	pageheap_free(ph, c, 0);
	/* 400 fits only the 500-page run among the two in bin 256..511. */
	ck_assert_int_eq(pageheap_alloc(ph, 400, &a), 0);
	ck_assert_uint_eq(a->start, 302);
	ck_assert_int_eq(pageheap_alloc(ph, 300, &c), 0);
	ck_assert_uint_eq(c->start, 1);
	ck_assert_int_eq(pageheap_alloc(ph, 4096 - 802, &c), -ENOMEM);
	pageheap_forget(a);
	pageheap_forget(b);
	pageheap_forget(c);
	pageheap_forget(d);
	pageheap_destroy(ph);
}
END_TEST

START_TEST(decay_pops_idle_runs_in_order)
{
	struct pageheap *ph;
	struct page_run *a, *b, *c;
	struct pageheap_decayed d;
	ck_assert_int_eq(pageheap_create(&ph), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 0, 100, 2), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &a), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &b), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &c), 0);
	pageheap_mark_backed(ph, 0, a->start, 10);
	pageheap_mark_backed(ph, 0, c->start, 4);
	/* The fresh region is clean: nothing to decay. */
	ck_assert_int_eq(pageheap_decay_next(ph, 1000, 0, &d), 0);
	pageheap_free(ph, a, 100);
	pageheap_free(ph, c, 200);
	ck_assert_int_eq(pageheap_decay_next(ph, 149, 50, &d), 0);
	ck_assert_int_eq(pageheap_decay_next(ph, 150, 50, &d), 1);
	ck_assert_uint_eq(d.start, 2);
	ck_assert_uint_eq(d.npages, 10);
	ck_assert_uint_eq(d.backed_pages, 10);
	ck_assert_int_eq(pageheap_decay_next(ph, 150, 50, &d), 0);
	ck_assert_int_eq(pageheap_decay_next(ph, 250, 50, &d), 1);
	ck_assert_uint_eq(d.start, 22);
	ck_assert_uint_eq(d.npages, 78);
	ck_assert_uint_eq(d.backed_pages, 4);
	ck_assert_int_eq(pageheap_decay_next(ph, 10000, 50, &d), 0);
	/* Freeing b joins both clean neighbours; only b's pages are backed. */
	pageheap_mark_backed(ph, 0, b->start, 10);
	pageheap_free(ph, b, 300);
	ck_assert_int_eq(pageheap_decay_next(ph, 400, 50, &d), 1);
	ck_assert_uint_eq(d.npages, 98);
	ck_assert_uint_eq(d.backed_pages, 10);
	pageheap_destroy(ph);
}
END_TEST

/* The backed pages of free runs are counted as runs come and go: given
 * back, split off, coalesced, decayed, unbacked. */
START_TEST(free_backed_pages_are_counted)
{
	struct pageheap *ph;
	struct page_run *a, *b;
	struct pageheap_decayed d;
	ck_assert_int_eq(pageheap_create(&ph), 0);
	ck_assert_int_eq(pageheap_add_region(ph, 0, 100, 2), 0);
	ck_assert_uint_eq(pageheap_free_backed(ph), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &a), 0);
	ck_assert_int_eq(pageheap_alloc(ph, 10, &b), 0);
	pageheap_mark_backed(ph, 0, a->start, 10);
	pageheap_mark_backed(ph, 0, b->start, 6);
	ck_assert_uint_eq(pageheap_free_backed(ph), 0); /* handed out */
	pageheap_free(ph, a, 10);
	ck_assert_uint_eq(pageheap_free_backed(ph), 10);
	pageheap_free(ph, b, 20); /* coalesces with a and the tail */
	ck_assert_uint_eq(pageheap_free_backed(ph), 16);
	/* A run split off the front takes its backed pages with it. */
	ck_assert_int_eq(pageheap_alloc(ph, 4, &a), 0);
	ck_assert_uint_eq(a->start, 2);
	ck_assert_uint_eq(pageheap_free_backed(ph), 12);
	ck_assert_uint_eq(pageheap_unback(ph, 0, 6, 2), 2);
	ck_assert_uint_eq(pageheap_free_backed(ph), 10);
	ck_assert_int_eq(pageheap_decay_next(ph, 1000, 0, &d), 1);
	ck_assert_uint_eq(d.backed_pages, 10);
	ck_assert_uint_eq(pageheap_free_backed(ph), 0);
	pageheap_free(ph, a, 30);
	ck_assert_uint_eq(pageheap_free_backed(ph), 4);
	pageheap_destroy(ph);
}
END_TEST

/* ---- through the heap: arenas and decay on real segments ---- */


START_TEST(arenas_are_added_on_demand)
{
	unsigned cls = sizeclass_of(524288); /* 64-page spans: one per 1 MiB arena */
	uint32_t objs = sizeclass_table[cls].objects;
	struct heap_run runs[1];
	struct heap_batch b = {.runs = runs, .runs_cap = 1};
	struct heap_totals t;
	heap_fixture_open(3 * MIB);
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, objs, &b), (int)objs);
		ck_assert_uint_eq(runs[0].first / MIB, i);
		ck_assert_uint_eq(heap_arena_count(heap_fixture_heap), i + 1);
	}
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, objs, &b), -ENOMEM);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.narenas, 3);
	ck_assert_uint_eq(t.mapped_bytes, 3 * MIB);
	struct heap_arena_stats as;
	heap_arena_stats(heap_fixture_heap, 2, &as);
	ck_assert_uint_eq(as.id, 2);
	ck_assert_uint_eq(as.pages, 128);
	ck_assert_uint_eq(as.span_pages, 64);
	ck_assert_uint_eq(as.free_pages, 128 - heap_geometry(heap_fixture_heap)->meta_pages - 64);
	ck_assert_uint_ge(as.resident_bytes, 64 * SHMA_PAGE_SIZE);
	/* Freed spans are reused before any new arena. */
	for (uint32_t i = 0; i < objs; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, runs[0].first + i * sizeclass_size(cls),
						  NULL), 0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, objs, &b), (int)objs);
	ck_assert_uint_eq(runs[0].first / MIB, 2);
	heap_fixture_close();
}
END_TEST

static uint64_t resident(void)
{
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	return t.resident_bytes;
}

/* Writes every byte of the run ref names, through a mapping of our own: a
 * page not reserved would not fault here (tmpfs has room), but it must be
 * counted resident afterwards only if it was reserved. */
static void touch(uint64_t first, size_t len)
{
	char name[SEG_NAME_MAX];
	ck_assert_int_eq(seg_name(name, sizeof name, heap_fixture_inst, SEG_PAGES, 0), 0);
	int fd = seg_open(name, 1);
	ck_assert_int_ge(fd, 0);
	size_t range = (size_t)seg_size(fd);
	char *base = seg_map_sparse(fd, range, 1, SHMA_PAGE_SIZE);
	close(fd);
	ck_assert_ptr_nonnull(base);
	memset(base + first, 0xa5, len);
	seg_unmap(base, range);
}

START_TEST(decay_punches_and_counts)
{
	unsigned cls = 3;
	uint32_t objs = sizeclass_table[cls].objects;
	uint64_t span = sizeclass_table[cls].span_pages * SHMA_PAGE_SIZE;
	struct heap_run runs[1];
	struct heap_batch b = {.runs = runs, .runs_cap = 1};
	heap_fixture_open(0);
	uint64_t r0 = resident();
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, objs, &b), (int)objs);
	/* Reserved before it went out. */
	ck_assert_uint_eq(resident(), r0 + span);
	touch(runs[0].first, objs * sizeclass_size(cls));
	for (uint32_t i = 0; i < objs; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, runs[0].first + i * sizeclass_size(cls),
						  NULL), 0);
	uint64_t now = monotonic_ms();
	ck_assert_uint_eq(heap_decay(heap_fixture_heap, now), 0);
	ck_assert_uint_eq(resident(), r0 + span);
	ck_assert_uint_eq(heap_decay(heap_fixture_heap, now + 5000), span);
	ck_assert_uint_eq(resident(), r0);
	ck_assert_uint_eq(heap_decay(heap_fixture_heap, now + 10000), 0);
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.returned_bytes, span);
	/* Reused after the punch: reserved again, readable as zeros. */
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, objs, &b), (int)objs);
	ck_assert_uint_eq(resident(), r0 + span);
	touch(runs[0].first, objs * sizeclass_size(cls));
	heap_fixture_close();
}
END_TEST

/* Free pages that hold backing store are bounded without waiting for the
 * decay when spans go back: HEAP_FREE_RESERVED_MIN, or an eighth of the
 * bytes in use.  Before, a heap that freed most of what it held kept it all
 * reserved until the decay (bench (e): 22 MiB reserved, 8 MiB live).  Large
 * blocks keep theirs until the decay. */
START_TEST(free_reserved_pages_are_bounded)
{
	unsigned cls = sizeclass_of(524288); /* 64-page spans: one per 1 MiB arena */
	enum { SPANS = 24 };
	uint64_t refs[SPANS], ref, size;
	struct heap_batch b = {.refs = &ref, .refs_cap = 1};
	heap_fixture_open(0);
	uint64_t r0 = resident();
	for (int i = 0; i < SPANS; i++) {
		ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, 1, &b), 1);
		refs[i] = ref;
	}
	ck_assert_uint_ge(resident(), r0 + SPANS * MIB / 2);
	for (int i = 0; i < SPANS; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[i], NULL), 0);
	/* Nothing in use: at most the floor stays reserved (and metadata). */
	uint64_t meta = heap_arena_count(heap_fixture_heap) *
			heap_geometry(heap_fixture_heap)->meta_bytes;
	ck_assert_uint_le(resident(), r0 + meta + HEAP_FREE_RESERVED_MIN);
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_ge(t.returned_bytes, SPANS * MIB / 2 - HEAP_FREE_RESERVED_MIN);
	/* A large block given back keeps its pages reserved for the next. */
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, MIB / 2, 1, &ref, &size), 0);
	uint64_t r1 = resident();
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, NULL), 0);
	ck_assert_uint_eq(resident(), r1);
	heap_fixture_close();
}
END_TEST

Suite *make_pageheap_suite(void);
Suite *make_pageheap_suite(void)
{
	Suite *s = suite_create("pageheap");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, runs_coalesce_on_both_sides);
	tcase_add_test(tc, exhaustion_is_enomem);
	tcase_add_test(tc, large_runs_are_found);
	tcase_add_test(tc, decay_pops_idle_runs_in_order);
	tcase_add_test(tc, arenas_are_added_on_demand);
	tcase_add_test(tc, decay_punches_and_counts);
	tcase_add_test(tc, free_backed_pages_are_counted);
	tcase_add_test(tc, free_reserved_pages_are_bounded);
	suite_add_tcase(s, tc);
	return s;
}
