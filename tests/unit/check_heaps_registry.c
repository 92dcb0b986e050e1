/* SPDX-License-Identifier: MIT */
/*
 * The named heaps' registry (server/heap/heaps.c) over a real heap: a
 * destroy killed at any step is finished by the next daemon, from the
 * metadata alone, and leaves nothing of the heap out.
 */
#include "heap_fixture.h"
#include "heap_internal.h"
#include "heaps.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#define OBJECTS 300

static struct heaps *reg;

static void open_registry(struct heaps_recovered *rec)
{
	ck_assert_int_eq(heaps_open(&reg, heap_fixture_heap, heap_fixture_inst, 0600, rec), 0);
}

/* What a restart does: the registry and the heap closed (segments kept),
 * the heap recovered, the registry reopened over it. */
static void restart(struct heaps_recovered *rec)
{
	heaps_close(reg, 0);
	heap_close(heap_fixture_heap, 0);
	struct heap_config cfg = {
		.instance = heap_fixture_inst, .arena_size = MIB, .mode = 0600, .decay_ms = 1000,
	};
	ck_assert_int_eq(heap_open(&heap_fixture_heap, &cfg), 0);
	open_registry(rec);
}

static uint64_t live_word(uint64_t id)
{
	const char *page0 = (const char *)heap_header(heap_fixture_heap);
	return ((const uint64_t *)(page0 + SHMA_HEAP_LIVE_OFF))[id & (SHMA_HEAP_SLOTS - 1)];
}

/* A heap with objects of three classes in several spans and two large
 * blocks, and a default-heap object beside it; returns its id. */
static uint64_t filled_heap(uint64_t *shared)
{
	uint64_t id, refs[OBJECTS];
	struct heap_run runs[8];
	struct heap_batch b = {.refs = refs, .refs_cap = OBJECTS, .runs = runs, .runs_cap = 8};
	ck_assert_int_eq(heaps_create(reg, "doomed", HEAPS_PERSISTENT, 0, 1, 0, 1, 0, &id), 0);
	ck_assert_uint_eq(live_word(id), id);
	struct heap_region *rg = heaps_region(reg, id);
	ck_assert_ptr_nonnull(rg);
	for (unsigned cls = 3; cls < 30; cls += 13)
		ck_assert_int_gt(heap_refill(heap_fixture_heap, rg, cls, OBJECTS, &b), 0);
	uint64_t ref, size;
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, rg, 200000, 0, &ref, &size), 0);
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, rg, 90000, 0, &ref, &size), 0);
	struct heap_batch one = {.refs = shared, .refs_cap = 1, .runs = runs, .runs_cap = 0};
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, 3, 1, &one), 1);
	struct heaps_info info;
	ck_assert_int_eq(heaps_info(reg, id, &info), 0);
	ck_assert_uint_ge(info.spans, 3);
	return id;
}

/* After: only the default object is out, the heap is gone, its name free. */
static void nothing_left(uint64_t id, uint64_t shared)
{
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_eq(t.in_use_bytes, sizeclass_size(3));
	ck_assert_uint_eq(t.large_count, 0);
	ck_assert_int_eq(heap_object_class(heap_fixture_heap, shared), 3);
	uint64_t found;
	ck_assert_int_eq(heaps_find(reg, "doomed", &found), -ENOENT);
	ck_assert_uint_eq(live_word(id), 0);
	ck_assert_ptr_null(heap_region(heap_fixture_heap, SHMA_OWNER_HEAP | id, 0));
	uint64_t again;
	ck_assert_int_eq(heaps_create(reg, "doomed", HEAPS_PERSISTENT, 0, 1, 0, 1, 0, &again), 0);
	ck_assert_uint_ne(again, id); /* ids are never given twice */
}

/* Killed after each step of a destroy: the next daemon finishes it.
 * Planted bugs: reconcile() leaving a destroying entry as it is (the heap
 * listed and its bytes out), or not ending the heap regions no entry names
 * (a destroy killed after its entry was freed leaks the rest of the
 * region for ever). */
START_TEST(a_destroy_killed_at_any_step_is_finished_after_recovery)
{
	for (int step = 1; step <= 3; step++) {
		struct heaps_recovered rec;
		heap_fixture_open(0);
		open_registry(&rec);
		uint64_t shared;
		uint64_t id = filled_heap(&shared);
		heaps_destroy_cut(reg, id, step, 2);
		restart(&rec);
		ck_assert_uint_eq(rec.destroys_done, step < 3);
		ck_assert_uint_eq(rec.orphans_ended, step == 3);
		ck_assert_uint_gt(rec.bytes_freed, 0);
		nothing_left(id, shared);
		heaps_close(reg, 1);
		heap_fixture_close();
	}
}
END_TEST

/* A heap lives across a restart with its bytes, users and limit. */
START_TEST(a_heap_survives_a_restart_with_its_blocks)
{
	struct heaps_recovered rec;
	heap_fixture_open(0);
	open_registry(&rec);
	uint64_t shared, id = filled_heap(&shared);
	ck_assert_int_eq(heaps_user_add(reg, id, 7), 0);
	struct heaps_info before, after;
	ck_assert_int_eq(heaps_info(reg, id, &before), 0);
	/* Reserved when made, as the default heap's (ENOMEM, never SIGBUS, for
	 * a library's program; planted bug: heaps lazy as clients' regions). */
	struct heap_totals t;
	heap_totals(heap_fixture_heap, &t);
	ck_assert_uint_ge(t.resident_bytes, before.bytes);
	restart(&rec);
	ck_assert_uint_eq(rec.heaps, 1);
	ck_assert_int_eq(heaps_info(reg, id, &after), 0);
	ck_assert_uint_eq(after.bytes, before.bytes);
	ck_assert_uint_eq(after.blocks, before.blocks);
	ck_assert_uint_eq(after.nusers, 2);
	ck_assert_uint_eq(live_word(id), id);
	uint64_t freed;
	ck_assert_int_eq(heaps_destroy(reg, id, &freed), 0);
	ck_assert_uint_eq(freed, before.bytes);
	nothing_left(id, shared);
	heaps_close(reg, 1);
	heap_fixture_close();
}
END_TEST

Suite *make_heaps_registry_suite(void);
Suite *make_heaps_registry_suite(void)
{
	Suite *s = suite_create("heaps_registry");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, a_destroy_killed_at_any_step_is_finished_after_recovery);
	tcase_add_test(tc, a_heap_survives_a_restart_with_its_blocks);
	suite_add_tcase(s, tc);
	return s;
}
