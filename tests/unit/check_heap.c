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
#include "heap_fixture.h"
#include "instance.h"
#include "layout.h"
#include "ref.h"
#include "seg.h"
#include "sizeclass.h"

#define CLS 3 /* 64-byte objects, 8-page spans */


/* Maps arena id read-only, as a client maps its metadata. */
static void *map_arena(uint32_t id)
{
	char name[SEG_NAME_MAX];
	ck_assert_int_eq(seg_name(name, sizeof name, heap_fixture_inst, 'a', id), 0);
	int fd = seg_open(name, 0);
	ck_assert_int_ge(fd, 0);
	void *base = seg_map(fd, 0, MIB, 0, NULL);
	close(fd);
	ck_assert_ptr_nonnull(base);
	return base;
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
	ck_assert_int_eq(ref_kind(ref), REF_ARENA);
	uint64_t off = ref_offset(ref);
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
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, WANT, &b), WANT);
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
	ck_assert_uint_eq(cs.spans, (WANT + 1023) / 1024);
	ck_assert_uint_eq(cs.objects_total, cs.spans * 1024);
	seg_unmap(base, MIB);
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
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 2 * objs + 5, &b), (int)(2 * objs + 5));
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
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 10, &b), 10);
	ck_assert_uint_eq(b.nrefs, 10);
	for (unsigned i = 0; i < 10; i++)
		ck_assert_uint_eq(refs[i], runs[2].first + (5 + i) * sizeclass_size(CLS));
	seg_unmap(base, MIB);
	heap_fixture_close();
}
END_TEST

START_TEST(bad_refills_are_refused)
{
	uint64_t refs[4];
	struct heap_batch b = {.refs = refs, .refs_cap = 4};
	struct heap_batch none = {0};
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, SIZECLASS_COUNT, 1, &b), -EINVAL);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 0, &b), -EINVAL);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 1, &none), -EINVAL);
	/* A 1 MiB class needs 8 MiB spans: no 1 MiB arena holds one. */
	ck_assert_int_eq(heap_refill(heap_fixture_heap, SIZECLASS_COUNT - 1, 1, &b), -ENOMEM);
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
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 2, &b), 2);
	uint64_t r = refs[0], off = ref_offset(r);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, r + 1, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, r + sizeclass_size(CLS) / 2, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, ref_make(REF_ARENA, 5, off), NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, ref_make(REF_LARGE, 0, off), NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, 0, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, ref_make(REF_ARENA, 0, 0), NULL), -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, ref_make(REF_ARENA, 0, MIB - 64), NULL),
			 -EINVAL);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, ref_make(REF_ARENA, 0, MIB * 4), NULL),
			 -EINVAL);
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

START_TEST(span_tail_is_no_object)
{
	unsigned cls = sizeclass_of(3000); /* 3072 B: a span has a tail */
	const struct sizeclass *sc = &sizeclass_table[cls];
	uint64_t ref;
	struct heap_batch b = {.refs = &ref, .refs_cap = 1};
	ck_assert_uint_lt((uint64_t)sc->objects * sc->size, sc->span_pages * SHMA_PAGE_SIZE);
	heap_fixture_open(0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, cls, 1, &b), 1);
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
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 8, &b), 8);
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

static int large_exists(uint64_t ref)
{
	char name[SEG_NAME_MAX];
	ck_assert_int_eq(seg_name(name, sizeof name, heap_fixture_inst, 'l', ref_id(ref)), 0);
	int fd = seg_open(name, 0);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* The size of the segment behind a large ref, or -1. */
static int64_t large_seg_size(uint64_t ref)
{
	char name[SEG_NAME_MAX];
	ck_assert_int_eq(seg_name(name, sizeof name, heap_fixture_inst, 'l', ref_id(ref)), 0);
	int fd = seg_open(name, 0);
	if (fd < 0)
		return -1;
	int64_t size = seg_size(fd);
	close(fd);
	return size;
}

START_TEST(large_blocks_are_segments)
{
	uint64_t ref, size, freed;
	struct heap_totals t;
	heap_fixture_open(0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 200000, &ref, &size), 0);
	ck_assert_uint_eq(size, 25 * SHMA_PAGE_SIZE);
	ck_assert_int_eq(ref_kind(ref), REF_LARGE);
	ck_assert_uint_eq(ref_offset(ref), 0);
	ck_assert(large_exists(ref));
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 1);
	ck_assert_uint_eq(t.large_bytes, size);
	ck_assert_uint_eq(t.in_use_bytes, size);
	ck_assert_uint_eq(t.mapped_bytes, MIB + size);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref + 8, NULL), -EINVAL);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref_make(REF_ARENA, 0, 0), NULL), -EINVAL);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, &freed), 0);
	ck_assert_uint_eq(freed, size);
	/* Kept, still reserved, for the next allocation that fits; marked by a
	 * size past its pages, so recovery would never take it for live. */
	ck_assert_int_eq(large_seg_size(ref), (int64_t)size + 1);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref, NULL), -EINVAL);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.large_count, 0);
	ck_assert_uint_eq(t.in_use_bytes, 0);
	ck_assert_uint_eq(t.mapped_bytes, MIB + size);
	/* After the decay it goes back to the OS. */
	ck_assert_uint_ge(heap_decay(heap_fixture_heap, heap_now_ms() + 1000), size);
	ck_assert(!large_exists(ref));
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.mapped_bytes, MIB);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 0, &ref, &size), -EINVAL);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, (REF_OFFSET_MASK + 1) * 2, &ref, &size),
			 -EINVAL);
	heap_fixture_close();
}
END_TEST

START_TEST(large_blocks_come_back_from_the_pool_new_ids_never_repeat)
{
	char name[SEG_NAME_MAX];
	uint64_t a, b, c, size;
	heap_fixture_open(0);
	/* A segment left by someone else holds id 0: it is skipped. */
	ck_assert_int_eq(seg_name(name, sizeof name, heap_fixture_inst, 'l', 0), 0);
	int fd = seg_create(name, SHMA_PAGE_SIZE, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 100000, &a, &size), 0);
	ck_assert_uint_eq(ref_id(a), 1);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, a, NULL), 0);
	/* The same size again: the kept segment, a block again. */
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 100000, &b, &size), 0);
	ck_assert_uint_eq(ref_id(b), 1);
	ck_assert_int_eq(large_seg_size(b), (int64_t)size);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, b, NULL), 0);
	/* Twice as large does not fit it (more than a quarter): a new id. */
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 200000, &c, &size), 0);
	ck_assert_uint_eq(ref_id(c), 2);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, c, NULL), 0);
	ck_assert_int_eq(seg_unlink(name), 0);
	heap_fixture_close();
}
END_TEST

START_TEST(the_pool_is_bounded_and_yields_to_the_cap)
{
	enum { N = 24 };
	uint64_t ref[N], size;
	struct heap_totals t;
	heap_fixture_open(0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, (uint64_t)(i + 1) << 20, &ref[i], &size), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref[i], NULL), 0);
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_le(t.mapped_bytes - MIB, 64u << 20); /* at most 64 MiB kept */
	int kept = 0;
	for (int i = 0; i < N; i++)
		kept += large_exists(ref[i]);
	ck_assert_int_le(kept, 16);
	ck_assert_int_gt(kept, 0);
	heap_fixture_close();
	ck_assert_int_eq(test_segments_left(heap_fixture_inst), 0);
	/* Under a cap, kept blocks give their room to a new allocation. */
	heap_fixture_open(MIB + (9u << 20));
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 8u << 20, &ref[0], &size), 0);
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref[0], NULL), 0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 5u << 20, &ref[1], &size), 0);
	ck_assert(!large_exists(ref[0]) || ref_id(ref[1]) == ref_id(ref[0]));
	ck_assert_int_eq(heap_free_large(heap_fixture_heap, ref[1], NULL), 0);
	heap_fixture_close();
}
END_TEST

START_TEST(large_blocks_are_tracked_by_id)
{
	enum { N = 300 };
	uint64_t refs[N], size;
	heap_fixture_open(0);
	for (unsigned i = 0; i < N; i++)
		ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, SHMA_PAGE_SIZE, &refs[i], &size), 0);
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
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 5 * MIB, &ref, &size), 0);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, CLS, 4, &b), 4);
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
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, MIB, &ref, &size), 0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, 1, &ref, &size), -ENOMEM);
	/* The first arena has room; a second one would pass the cap. */
	unsigned big = sizeclass_of(65536); /* 64-page spans: one per 1 MiB arena */
	ck_assert_int_eq(heap_refill(heap_fixture_heap, big, 1, &b), 1);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, big, 8, &b), 7);
	ck_assert_int_eq(heap_refill(heap_fixture_heap, big, 1, &b), -ENOMEM);
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
	tcase_add_test(tc, span_tail_is_no_object);
	tcase_add_test(tc, empty_span_returns_its_pages);
	tcase_add_test(tc, large_blocks_are_segments);
	tcase_add_test(tc, large_blocks_come_back_from_the_pool_new_ids_never_repeat);
	tcase_add_test(tc, the_pool_is_bounded_and_yields_to_the_cap);
	tcase_add_test(tc, large_blocks_are_tracked_by_id);
	tcase_add_test(tc, close_unlinks_live_blocks);
	tcase_add_test(tc, max_memory_is_a_cap);
	tcase_add_test(tc, bad_configs_are_refused);
	suite_add_tcase(s, tc);
	return s;
}
