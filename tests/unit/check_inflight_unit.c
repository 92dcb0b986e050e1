/* SPDX-License-Identifier: MIT */
/*
 * Refills in flight (server/inflight.c) alone, on a real heap (the heap
 * fixture) and a control block in this process's own memory: what a settle
 * takes back and what it leaves out -- a refill its bin marks collected
 * stays out, one it does not is freed, refs and runs alike; a newer refill
 * of a slot and class replaces the older; a large block's answer likewise
 * by the header's mark; a slot the client never reserved is not believed;
 * what is already free is not counted twice; forgetting takes nothing back.
 * The end-to-end suite (tests/e2e/check_inflight.c) kills real clients; this
 * one names the planted bug each test catches.
 */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "heap_fixture.h"
#include "inflight.h"
#include "layout.h"
#include "sizeclass.h"

#define CLS 3

static struct control_block *ctl;
static struct inflight_set *set;
/* Of the block, what the daemon reads here: the header and the slots' bins
 * (not the refs, 7 GiB of address space). */
#define CTL_BYTES offsetof(struct control_block, refs)

static void setup(void)
{
	heap_fixture_open(0);
	void *p = mmap(NULL, CTL_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ctl = p;
	ctl->hdr.slots_taken = 2;
	set = NULL;
}

static void teardown(void)
{
	inflight_forget(&set);
	munmap(ctl, CTL_BYTES);
	heap_fixture_close();
}

static uint64_t refs_a[64], refs_b[64];
static struct heap_run runs[4];

/* A refill of n objects of CLS as refs only. */
static struct heap_batch refill_refs(uint64_t *refs, uint32_t n)
{
	struct heap_batch b = {.refs = refs, .refs_cap = n};
	ck_assert_int_eq(heap_refill(heap_fixture_heap, NULL, CLS, n, &b), (int)n);
	ck_assert_uint_eq(b.nrefs, n);
	return b;
}

static int out(uint64_t ref)
{
	return heap_object_class(heap_fixture_heap, ref) == CLS;
}

/* Planted bug: `mark > r->id` in collected() (the refill the client took
 * in last would be taken back from under it), or a collected refill taken
 * back anyway. */
START_TEST(a_collected_refill_stays_out)
{
	struct heap_batch b = refill_refs(refs_a, 10);
	inflight_note(&set, 1, CLS, 5, &b);
	ctl->slots[1].bins[CLS].collected = 5;
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 0);
	ck_assert_ptr_null(set);
	for (int i = 0; i < 10; i++)
		ck_assert(out(refs_a[i]));
}
END_TEST

/* Planted bug: an uncollected refill forgotten rather than taken back (a
 * whole batch lost at each crash); or a settle that counts wrong. */
START_TEST(an_uncollected_refill_comes_back)
{
	struct heap_batch b = refill_refs(refs_a, 10);
	inflight_note(&set, 1, CLS, 5, &b);
	ctl->slots[1].bins[CLS].collected = 4; /* the one before */
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 10);
	for (int i = 0; i < 10; i++)
		ck_assert(!out(refs_a[i])); /* free (their span went back whole) */
}
END_TEST

/* Planted bug: a set that keeps every refill of a slot and class (the older
 * one, collected before the thread asked again, would be freed while in
 * use). */
START_TEST(a_newer_refill_replaces_the_older)
{
	struct heap_batch a = refill_refs(refs_a, 8);
	inflight_note(&set, 0, CLS, 1, &a);
	struct heap_batch b = refill_refs(refs_b, 6);
	inflight_note(&set, 0, CLS, 2, &b);
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, NULL), 6);
	for (int i = 0; i < 8; i++)
		ck_assert(out(refs_a[i]));
	for (int i = 0; i < 6; i++)
		ck_assert(!out(refs_b[i]));
}
END_TEST

/* Planted bug: take_back() walking the refs and not the runs (a fresh
 * span handed out as one run would leak whole). */
START_TEST(runs_come_back_too)
{
	struct heap_batch b = {.refs = refs_a, .refs_cap = 64, .runs = runs, .runs_cap = 4};
	int n = heap_refill(heap_fixture_heap, NULL, CLS, 40, &b);
	ck_assert_int_eq(n, 40);
	ck_assert_uint_ge(b.nruns, 1);
	inflight_note(&set, 0, CLS, 9, &b);
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 40);
	uint64_t size = sizeclass_size(CLS);
	for (uint32_t k = 0; k < runs[0].count; k++)
		ck_assert(!out(runs[0].first + k * size));
}
END_TEST

/* Planted bug: reading the bin of a slot past the slots the client
 * reserved (its word there is not to be believed, and may not be mapped). */
START_TEST(a_slot_never_reserved_is_not_believed)
{
	struct heap_batch b = refill_refs(refs_a, 4);
	inflight_note(&set, 7, CLS, 3, &b); /* slots_taken is 2 */
	ctl->slots[7].bins[CLS].collected = 3;
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 4);
	ck_assert(!out(refs_a[0]));
}
END_TEST

/* Planted bug: counting (or freeing twice) what a cache walk took back
 * first. */
START_TEST(what_is_free_already_is_skipped)
{
	struct heap_batch b = refill_refs(refs_a, 5);
	inflight_note(&set, 0, CLS, 1, &b);
	ck_assert_int_eq(heap_free_object(heap_fixture_heap, refs_a[2], NULL), 0);
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, NULL), 4);
}
END_TEST

/* Planted bug: the large block's mark compared as the bins' are against a
 * bin (or not at all): an answer read is freed, or one never read leaks. */
START_TEST(a_large_block_by_the_header_mark)
{
	uint64_t ref, got;
	ck_assert_int_eq(heap_alloc_large(heap_fixture_heap, NULL, 200000, 1, &ref, &got), 0);
	inflight_note_large(&set, 7, ref);
	ctl->hdr.large_collected = 7;
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 0);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref, NULL), got);
	inflight_note_large(&set, 8, ref);
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 1);
	ck_assert_uint_eq(heap_large_size(heap_fixture_heap, ref, NULL), 0);
}
END_TEST

/* Planted bug: inflight_forget() taking back (a goodbye's caches are the
 * process's to keep handing out). */
START_TEST(forgetting_takes_nothing_back)
{
	struct heap_batch b = refill_refs(refs_a, 5);
	inflight_note(&set, 0, CLS, 1, &b);
	inflight_forget(&set);
	ck_assert_ptr_null(set);
	for (int i = 0; i < 5; i++)
		ck_assert(out(refs_a[i]));
	ck_assert_uint_eq(inflight_settle(&set, heap_fixture_heap, ctl), 0);
}
END_TEST

Suite *make_inflight_unit_suite(void);
Suite *make_inflight_unit_suite(void)
{
	Suite *s = suite_create("inflight_unit");
	TCase *tc = tcase_create("inflight_unit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_collected_refill_stays_out);
	tcase_add_test(tc, an_uncollected_refill_comes_back);
	tcase_add_test(tc, a_newer_refill_replaces_the_older);
	tcase_add_test(tc, runs_come_back_too);
	tcase_add_test(tc, a_slot_never_reserved_is_not_believed);
	tcase_add_test(tc, what_is_free_already_is_skipped);
	tcase_add_test(tc, a_large_block_by_the_header_mark);
	tcase_add_test(tc, forgetting_takes_nothing_back);
	suite_add_tcase(s, tc);
	return s;
}
