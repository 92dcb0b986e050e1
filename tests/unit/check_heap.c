/* SPDX-License-Identifier: MIT */
/*
 * The heap: refills hand out distinct objects on span boundaries, frees are
 * validated (double, misaligned, foreign), empty spans give their pages back,
 * large blocks are segments of their own, and max_memory is a hard cap.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "heap.h"
#include "clock.h"
#include "heap_fixture.h"
#include "instance.h"
#include "layout.h"
#include "ref.h"
#include "seg.h"
#include "sizeclass.h"

#define CLS 3 /* 64-byte objects, 1-page spans (128 objects) */


/* Maps the metadata segment read-only, as a client does. */
static char *map_meta(void)
{
	char name[SEG_NAME_MAX];
	ck_assert_int_eq(seg_name(name, sizeof name, heap_fixture_inst, SEG_META, 0), 0);
	int fd = seg_open(name, 0);
	ck_assert_int_ge(fd, 0);
	char *meta = seg_map_sparse(fd, (size_t)seg_size(fd), 0, SHMA_PAGE_SIZE);
	close(fd);
	ck_assert_ptr_nonnull(meta);
	return meta;
}

/* Arena id's metadata in the mapping of 'M'. */
static void *map_arena(uint32_t id)
{
	char *meta = map_meta();
	return meta + layout_meta_offset(heap_geometry(heap_fixture_heap)->meta_bytes, id);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Checks what a client would: the page map says span of cls, the ref is on
 * an object boundary inside the span, its bit is set. */
static void check_object(void *base, uint64_t ref, unsigned cls)
{
	const struct arena_geometry *g = heap_geometry(heap_fixture_heap);
	const struct sizeclass *sc = &sizeclass_table[cls];
	uint64_t off = ref & (MIB - 1);
	const struct page_entry *pe = &layout_page_map(base, g)[off >> SHMA_PAGE_SHIFT];
	ck_assert_int_eq(pe->kind, PAGE_SPAN);
	ck_assert_uint_eq(pe->cls, cls);
	ck_assert_uint_ge(pe->span_start, g->meta_pages);
	uint64_t rel = off - ((uint64_t)pe->span_start << SHMA_PAGE_SHIFT);
	ck_assert_uint_eq(rel % sc->size, 0);
	uint64_t idx = rel / sc->size;
	ck_assert_uint_lt(idx, sc->objects);
	const uint64_t *bm = layout_bitmap(base, g, pe->span_start);
	ck_assert(bm[idx / 64] >> (idx % 64) & 1);
	ck_assert_int_eq(heap_object_class(heap_fixture_heap, ref), (int)cls);
}

START_TEST(refill_hands_distinct_objects)
{
	enum { WANT = 3000 };
	uint64_t refs[WANT];
	struct heap_batch b = {.refs = refs, .refs_cap = WANT};
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, WANT, &b), WANT);
	ck_assert_uint_eq(b.nrefs, WANT);
	ck_assert_uint_eq(b.nruns, 0);
	void *base = map_arena(0);
	for (unsigned i = 0; i < WANT; i++)
		check_object(base, refs[i], CLS);
	qsort(refs, WANT, sizeof refs[0], cmp_u64);
	for (unsigned i = 1; i < WANT; i++)
		ck_assert_uint_ge(refs[i] - refs[i - 1], sizeclass_size(CLS));
	struct heap_class_stats cs;
	heap_class_stats(heap_fixture_heap, CLS, &cs);
	ck_assert_uint_eq(cs.objects_out, WANT);
	uint32_t per = sizeclass_table[CLS].objects;
	ck_assert_uint_eq(cs.spans, (WANT + per - 1) / per);
	ck_assert_uint_eq(cs.objects_total, cs.spans * per);
	heap_fixture_close();
}
END_TEST

START_TEST(fresh_spans_go_out_as_runs)
{
	uint32_t objs = sizeclass_table[CLS].objects;
	uint64_t refs[16];
	struct heap_run runs[4];
	struct heap_batch b = {.refs = refs, .refs_cap = 16, .runs = runs, .runs_cap = 4};
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 2 * objs + 5, &b), (int)(2 * objs + 5));
	ck_assert_uint_eq(b.nruns, 3);
	ck_assert_uint_eq(b.nrefs, 0);
	ck_assert_uint_eq(runs[0].count, objs);
	ck_assert_uint_eq(runs[1].count, objs);
	ck_assert_uint_eq(runs[2].count, 5);
	void *base = map_arena(0);
	for (unsigned r = 0; r < 3; r++)
		for (uint32_t i = 0; i < runs[r].count; i++)
			check_object(base, runs[r].first + i * sizeclass_size(CLS), CLS);
	/* The partly used span is drawn on next, as refs after the run. */
	b.runs_cap = 0;
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 10, &b), 10);
	ck_assert_uint_eq(b.nrefs, 10);
	for (unsigned i = 0; i < 10; i++)
		ck_assert_uint_eq(refs[i], runs[2].first + (5 + i) * sizeclass_size(CLS));
	heap_fixture_close();
}
END_TEST

START_TEST(bad_refills_are_refused)
{
	uint64_t refs[4];
	struct heap_batch b = {.refs = refs, .refs_cap = 4};
	struct heap_batch none = {0};
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, SIZECLASS_COUNT, 1, &b), -EINVAL);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 0, &b), -EINVAL);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 1, &none), -EINVAL);
	/* A 1 MiB class needs 8 MiB spans: no 1 MiB arena holds one. */
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, SIZECLASS_COUNT - 1, 1, &b), -ENOMEM);
	ck_assert_uint_eq(heap_arena_count(heap_fixture_heap), 1);
	heap_fixture_close();
}
END_TEST

START_TEST(bad_frees_are_refused)
{
	uint64_t refs[2];
	struct heap_batch b = {.refs = refs, .refs_cap = 2};
	unsigned cls = 99;
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 2, &b), 2);
	uint64_t r = refs[0], off = r & (MIB - 1);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, r + 1, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, r + sizeclass_size(CLS) / 2, NULL), -EINVAL);
	/* The same offset in an arena not made yet, and far past the range. */
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, 5 * MIB + off, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, (UINT64_C(1) << 62) + r, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, 0, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, MIB - 64, NULL), -EINVAL);
	/* Past the last object of the span: the tail is no object. */
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, r, &cls), 0);
	ck_assert_uint_eq(cls, CLS);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, r, NULL), -EALREADY);
	ck_assert_int_eq(heap_object_class(heap_fixture_heap, r), -EALREADY);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[1], NULL), 0);
	/* The span went back: its pages are no span any more. */
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[1], NULL), -EINVAL);
	heap_fixture_close();
}
END_TEST

/* Refills take from the fullest partial span first, so the emptiest ones
 * drain and go back to the page heap; before, the span that last got an
 * object back went first, and every span of a churned class stayed a
 * little used (bench (e)'s footprint). */
START_TEST(refills_take_the_fullest_span_first)
{
	uint32_t per = sizeclass_table[CLS].objects;
	uint64_t refs[2 * 128];
	struct heap_batch b = {.refs = refs, .refs_cap = 2 * per};
	ck_assert_uint_eq(per, 128);
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 2 * per, &b), (int)(2 * per));
	qsort(refs, 2 * per, sizeof refs[0], cmp_u64);
	uint64_t full_page = refs[per] >> SHMA_PAGE_SHIFT; /* the second span */
	ck_assert_uint_ne(refs[0] >> SHMA_PAGE_SHIFT, full_page);
	/* The second span gets one object back first, then the first span
	 * all but one: the first is the one freed into last, and the emptiest. */
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[per], NULL), 0);
	for (uint32_t i = 1; i < per; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[i], NULL), 0);
	uint64_t got;
	struct heap_batch one = {.refs = &got, .refs_cap = 1};
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 1, &one), 1);
	ck_assert_uint_eq(got >> SHMA_PAGE_SHIFT, full_page);
	ck_assert_uint_eq(got, refs[per]);
	/* The first span's last object back: the span goes, both spans were
	 * never made a third. */
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[0], NULL), 0);
	struct heap_class_stats cs;
	heap_class_stats(heap_fixture_heap, CLS, &cs);
	ck_assert_uint_eq(cs.spans, 1);
	ck_assert_uint_eq(cs.objects_out, per);
	heap_fixture_close();
}
END_TEST

START_TEST(span_tail_is_no_object)
{
	unsigned cls = sizeclass_of(3000); /* 3072 B: a span has a tail */
	const struct sizeclass *sc = &sizeclass_table[cls];
	uint64_t ref;
	struct heap_batch b = {.refs = &ref, .refs_cap = 1};
	ck_assert_uint_lt((uint64_t)sc->objects * sc->size, sc->span_pages * SHMA_PAGE_SIZE);
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, cls, 1, &b), 1);
	uint64_t tail = ref + (uint64_t)sc->objects * sc->size;
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, tail, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, ref, NULL), 0);
	heap_fixture_close();
}
END_TEST

START_TEST(empty_span_returns_its_pages)
{
	uint64_t refs[8];
	struct heap_batch b = {.refs = refs, .refs_cap = 8};
	struct heap_totals t0, t1;
	heap_fixture_open(0);
	heap_totals(heap_fixture_heap, &t0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 8, &b), 8);
	heap_totals(heap_fixture_heap, &t1);
	ck_assert_uint_eq(t1.free_pages, t0.free_pages - sizeclass_table[CLS].span_pages);
	ck_assert_uint_eq(t1.in_use_bytes, 8 * sizeclass_size(CLS));
	for (unsigned i = 0; i < 8; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs[i], NULL), 0);
	heap_totals(heap_fixture_heap, &t1);
	ck_assert_uint_eq(t1.free_pages, t0.free_pages);
	ck_assert_uint_eq(t1.largest_free_run, t0.largest_free_run);
	ck_assert_uint_eq(t1.in_use_bytes, 0);
	ck_assert_uint_eq(t1.peak_in_use_bytes, 8 * sizeclass_size(CLS));
	struct heap_class_stats cs;
	heap_class_stats(heap_fixture_heap, CLS, &cs);
	ck_assert_uint_eq(cs.spans, 0);
	ck_assert_uint_eq(cs.flushes, 8);
	ck_assert_uint_eq(cs.refills, 1);
	heap_fixture_close();
}
END_TEST

/* The page map entry of the page at ref, read as a client reads it. */
static struct page_entry page_at(uint64_t ref)
{
	char *meta = map_meta();
	const struct arena_geometry *g = heap_geometry(heap_fixture_heap);
	const struct page_entry *pm =
		layout_page_map(meta + layout_meta_offset(g->meta_bytes, (uint32_t)(ref / MIB)), g);
	struct page_entry pe = pm[(ref & (MIB - 1)) >> SHMA_PAGE_SHIFT];
	seg_unmap(meta, layout_meta_size(g->meta_bytes, heap_max_arenas(heap_fixture_heap)));
	return pe;
}

START_TEST(large_blocks_are_page_runs)
{
	uint64_t ref, size, freed, start;
	struct heap_totals t, t0;
	heap_fixture_open(0);
	heap_totals(heap_fixture_heap, &t0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 200000, 1, &ref, &size), 0);
	ck_assert_uint_eq(size, 25 * SHMA_PAGE_SIZE);
	ck_assert_uint_eq(ref % SHMA_PAGE_SIZE, 0);
	/* The page map says so: its first page and its length, then pages that
	 * name the first. */
	struct page_entry pe = page_at(ref);
	ck_assert_int_eq(pe.kind, PAGE_LARGE);
	ck_assert_uint_eq(pe.span_start, 25);
	pe = page_at(ref + 24 * SHMA_PAGE_SIZE);
	ck_assert_int_eq(pe.kind, PAGE_LARGE_CONT);
	ck_assert_uint_eq(pe.span_start, (ref & (MIB - 1)) >> SHMA_PAGE_SHIFT);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref + 100000, &start), size);
	ck_assert_uint_eq(start, ref);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref + size, NULL), 0);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 1);
	ck_assert_uint_eq(t.large_bytes, size);
	ck_assert_uint_eq(t.in_use_bytes, size);
	ck_assert_uint_eq(t.mapped_bytes, MIB);
	ck_assert_uint_eq(t.free_pages, t0.free_pages - 25);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref + 8, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref + SHMA_PAGE_SIZE, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, 0, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, &freed), 0);
	ck_assert_uint_eq(freed, size);
	ck_assert_int_eq(page_at(ref).kind, PAGE_FREE);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, NULL), -EINVAL);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 0);
	ck_assert_uint_eq(t.in_use_bytes, 0);
	ck_assert_uint_eq(t.free_pages, t0.free_pages);
	/* Still reserved: the next block of that size takes the same pages
	 * back without a system call; after the decay they go to the OS. */
	uint64_t again;
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 200000, 1, &again, &size), 0);
	ck_assert_uint_eq(again, ref);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, again, NULL), 0);
	ck_assert_uint_ge(heap_decay(heap_fixture_heap, monotonic_ms() + 1000), size);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 0, 1, &ref, &size), -EINVAL);
	heap_fixture_close();
}
END_TEST

/* Reopens the fixture's heap as a restarted daemon would. */
static void reopen_heap(uint64_t max_memory)
{
	heap_close(heap_fixture_heap, 0);
	struct heap_config cfg = {
		.instance = heap_fixture_inst, .arena_size = MIB, .max_memory = max_memory,
		.mode = 0600, .decay_ms = 1000,
	};
	ck_assert_int_eq(heap_open(&heap_fixture_heap, &cfg), 0);
}

START_TEST(a_block_larger_than_an_arena_spans_fresh_arenas)
{
	uint64_t ref, size, start, small;
	struct heap_totals t;
	heap_fixture_open(0);
	/* An ordinary block first, so the big one cannot start in arena 0. */
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 200000, 1, &small, &size), 0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 3 * MIB + 5, 7, &ref, &size), 0);
	ck_assert_uint_eq(size, 3 * MIB + SHMA_PAGE_SIZE);
	ck_assert_uint_eq(ref / MIB, 1);
	ck_assert_uint_ge(heap_arena_count(heap_fixture_heap), 5);
	/* Any byte of it, in any of its arenas, is in it; past it is not. */
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref + 2 * MIB + 77, &start), size);
	ck_assert_uint_eq(start, ref);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref + MIB - 1, NULL), size);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref + size, NULL), 0);
	ck_assert_uint_eq(heap_large_owner(heap_fixture_heap, ref), 7);
	struct page_entry pe = page_at(ref + 2 * MIB);
	ck_assert_int_eq(pe.kind, PAGE_LARGE_CONT);
	ck_assert_uint_eq(pe.span_start, PAGE_JUMBO);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref + MIB, NULL), -EINVAL);
	/* A restarted daemon finds it whole, with its owner. */
	reopen_heap(0);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 2);
	ck_assert_uint_eq(t.large_bytes, size + 25 * SHMA_PAGE_SIZE);
	ck_assert_uint_eq(heap_large_owner(heap_fixture_heap, ref), 7);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref + 3 * MIB, NULL), size);
	uint64_t freed;
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, &freed), 0);
	ck_assert_uint_eq(freed, size);
	/* Its arenas are ordinary ones again: metadata pages and all. */
	ck_assert_int_eq(page_at(3 * MIB).kind, PAGE_META);
	ck_assert_int_eq(page_at(3 * MIB + 64 * SHMA_PAGE_SIZE).kind, PAGE_FREE);
	reopen_heap(0);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 1);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, small, NULL), 0);
	/* A cap leaves no room for it: ENOMEM. */
	heap_fixture_close();
	heap_fixture_open(3 * MIB);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 3 * MIB, 1, &ref, &size), -ENOMEM);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 3 * MIB / 2, 1, &ref, &size), 0);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, NULL), 0);
	heap_fixture_close();
}
END_TEST

/* Bytes of backing store the pages segment holds. */
static uint64_t resident(void)
{
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	return t.resident_bytes;
}

/* A region's refills come from spans of its own (flagged in the page map),
 * its pages are not reserved until touched, a restarted heap knows it again,
 * and its end frees everything in it and nothing else. */
START_TEST(a_region_ends_at_once)
{
	enum { N = 40 };
	uint64_t shared[N], mine[N], ref, size, lib;
	struct heap_run runs[4];
	struct heap_batch b = {.refs = shared, .refs_cap = N, .runs = runs, .runs_cap = 0};
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, N, &b), N);
	struct heap_region *r = heap_region(heap_fixture_heap, 42, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_eq(heap_region(heap_fixture_heap, 42, 0), r);
	ck_assert_ptr_null(heap_region(heap_fixture_heap, 43, 0));
	/* Half the shared span is still free: the region takes none of it. */
	uint64_t before = resident();
	b.refs = mine;
	ck_assert_int_eq(heap_refill(heap_fixture_heap, r, CLS, N, &b), N);
	for (unsigned i = 0; i < N; i++) {
		struct page_entry pm = page_at(mine[i]), ps = page_at(shared[0]);
		ck_assert_uint_eq(pm.flags, SHMA_PAGE_REGION);
		ck_assert_uint_eq(ps.flags, 0);
		ck_assert(mine[i] / MIB != shared[0] / MIB || pm.span_start != ps.span_start);
	}
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, r, 300000, 0, &ref, &size), 0);
	ck_assert_uint_eq(page_at(ref).flags, SHMA_PAGE_REGION);
	ck_assert_uint_eq(heap_large_owner(heap_fixture_heap, ref), 42);
	/* Lazy: neither its span nor its block took backing store. */
	ck_assert_uint_eq(resident(), before);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 300000, 7, &lib, &size), 0);
	ck_assert_uint_ge(resident(), before + size);
	/* Another client may free one of its objects while it lives. */
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, mine[0], NULL), 0);
	uint64_t held = (N - 1) * 64 + size;
	ck_assert_uint_eq(heap_region_bytes(r), held);
	/* A restarted daemon finds the region in the owner words. */
	reopen_heap(0);
	r = heap_region(heap_fixture_heap, 42, 0);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(heap_region_bytes(r), held);
	ck_assert_uint_eq(heap_region_end(heap_fixture_heap, 42), held);
	ck_assert_ptr_null(heap_region(heap_fixture_heap, 42, 0));
	ck_assert_uint_eq(heap_region_end(heap_fixture_heap, 42), 0);
	/* Gone: its objects and block are not out; the shared ones are. */
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_lt(heap_object_class(heap_fixture_heap, mine[i]), 0);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, NULL), -EINVAL);
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.in_use_bytes, N * 64 + size);
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(heap_free_object(heap_fixture_heap, shared[i], NULL), 0);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, lib, NULL), 0);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.in_use_bytes, 0);
	heap_fixture_close();
}
END_TEST

START_TEST(large_blocks_are_tracked_by_id)
{
	enum { N = 300 };
	uint64_t refs[N], size;
	heap_fixture_open(0);
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, SHMA_PAGE_SIZE, 1, &refs[i], &size), 0);
	for (unsigned i = 0; i < N; i += 2)
		ck_assert_int_eq(heap_free_large(heap_fixture_heap, refs[i], NULL), 0);
	for (unsigned i = 1; i < N; i += 2)
		ck_assert_int_eq(heap_free_large(heap_fixture_heap, refs[i], &size), 0);
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 0);
	heap_fixture_close();
}
END_TEST

START_TEST(close_unlinks_live_blocks)
{
	uint64_t ref, size;
	uint64_t refs[4];
	struct heap_batch b = {.refs = refs, .refs_cap = 4};
	heap_fixture_open(0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, MIB / 2, 1, &ref, &size), 0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, 4, &b), 4);
	heap_fixture_close();
}
END_TEST

START_TEST(max_memory_is_a_cap)
{
	uint64_t ref, size;
	uint64_t refs[8];
	struct heap_batch b = {.refs = refs, .refs_cap = 8};
	heap_fixture_open(2 * MIB);
	ck_assert_uint_eq(heap_max_arenas(heap_fixture_heap), 2);
	/* Large blocks fill the arenas the cap allows, then fail. */
	uint64_t half = MIB / 2, big_refs[2];
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, half, 1, &big_refs[0], &size), 0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, half, 1, &big_refs[1], &size), 0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, half, 1, &ref, &size), -ENOMEM);
	ck_assert_uint_eq(heap_arena_count(heap_fixture_heap), 2);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, big_refs[0], NULL), 0);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, big_refs[1], NULL), 0);
	heap_fixture_close();
	heap_fixture_open(MIB);
	/* One arena allowed: it has room for one span of 512 KiB objects
	 * (64 pages, one object: a 1 MiB arena of 128 pages holds one beside
	 * its metadata), no more. */
	unsigned big = sizeclass_of(524288);
	ck_assert_uint_eq(sizeclass_table[big].span_pages, 64);
	ck_assert_uint_eq(sizeclass_table[big].objects, 1);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, big, 8, &b), 1);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, big, 1, &b), -ENOMEM);
	/* Smaller spans fill the rest of it. */
	unsigned mid = sizeclass_of(65536); /* 8-page spans, one object */
	uint32_t fit = (heap_geometry(heap_fixture_heap)->npages -
			heap_geometry(heap_fixture_heap)->meta_pages - 64) / 8;
	for (uint32_t i = 0; i < fit; i++)
		ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, mid, 1, &b), 1);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, mid, 1, &b), -ENOMEM);
	ck_assert_uint_eq(heap_arena_count(heap_fixture_heap), 1);
	heap_fixture_close();
}
END_TEST

START_TEST(bad_configs_are_refused)
{
	struct heap *other;
	struct heap_config cfg = {.instance = "bad/name", .arena_size = MIB, .mode = 0600};
	ck_assert_int_eq(heap_open(&other, &cfg), -EINVAL);
	test_instance(heap_fixture_inst, sizeof heap_fixture_inst);
	cfg.instance = heap_fixture_inst;
	cfg.arena_size = MIB + 1;
	ck_assert_int_eq(heap_open(&other, &cfg), -EINVAL);
	cfg.arena_size = MIB / 2;
	ck_assert_int_eq(heap_open(&other, &cfg), -EINVAL);
	cfg.arena_size = 2 * MIB;
	cfg.max_memory = MIB;
	ck_assert_int_eq(heap_open(&other, &cfg), -EINVAL);
	ck_assert_int_eq(test_segments_left(heap_fixture_inst), 0);
	/* Two heaps of one instance would share segments: the first holds the
	 * instance's lock, and the second would recover the first's arenas. */
	heap_fixture_open(0);
	cfg.instance = heap_fixture_inst;
	cfg.arena_size = MIB;
	cfg.max_memory = 0;
	ck_assert_int_eq(heap_open(&other, &cfg), -EBUSY);
	heap_fixture_close();
}
END_TEST

Suite *make_heap_suite(void);
Suite *make_heap_suite(void)
{
	Suite *s = suite_create("heap");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, refill_hands_distinct_objects);
	tcase_add_test(tc, fresh_spans_go_out_as_runs);
	tcase_add_test(tc, bad_refills_are_refused);
	tcase_add_test(tc, bad_frees_are_refused);
	tcase_add_test(tc, refills_take_the_fullest_span_first);
	tcase_add_test(tc, span_tail_is_no_object);
	tcase_add_test(tc, empty_span_returns_its_pages);
	tcase_add_test(tc, large_blocks_are_page_runs);
	tcase_add_test(tc, a_block_larger_than_an_arena_spans_fresh_arenas);
	tcase_add_test(tc, large_blocks_are_tracked_by_id);
	tcase_add_test(tc, a_region_ends_at_once);
	tcase_add_test(tc, close_unlinks_live_blocks);
	tcase_add_test(tc, max_memory_is_a_cap);
	tcase_add_test(tc, bad_configs_are_refused);
	suite_add_tcase(s, tc);
	return s;
}
