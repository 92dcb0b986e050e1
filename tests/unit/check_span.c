/* SPDX-License-Identifier: MIT */
/*
 * Spans (server/heap/span.c) alone: a span made over a run of the heap
 * fixture's first arena, its bitmap driven by hand -- objects taken and put
 * back, the hint, the last bitmap word of a class whose objects are no
 * multiple of 64, a front taken whole, a span adopted from its bitmap, a
 * ref located (or refused: inside an object, past the objects, a page map
 * entry the daemon's spans disagree with), a bit the daemon never set, and
 * the partial list's buckets.  Each test names the planted bug it catches.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "clock.h"
#include "heap_fixture.h"
#include "heap_internal.h"
#include "sizeclass.h"

#define CLS 2 /* 48 bytes: 170 objects a span, the last word partly used */

static struct arena *a;
static struct page_run *run;
static struct span *s;

static struct span *make(unsigned cls)
{
	struct heap *h = heap_fixture_heap;
	ck_assert_int_eq(pageheap_alloc(h->ph, sizeclass_table[cls].span_pages, &run), 0);
	a = h->arenas[run->region];
	struct span *sp = span_create(a, run, cls, 0);
	ck_assert_ptr_nonnull(sp);
	return sp;
}

static void setup(void)
{
	heap_fixture_open(0);
	s = make(CLS);
}

static void teardown(void)
{
	struct page_run *r = s->run;
	span_destroy(s);
	pageheap_free(heap_fixture_heap->ph, r, monotonic_ms());
	heap_fixture_close();
}

static uint32_t idx_of(uint64_t ref)
{
	return (uint32_t)((ref - span_ref(s, 0)) / s->size);
}

/* Planted bug: span_put() not moving the hint back (a span would hand out
 * only what lies past its last put, and look full while it has room). */
START_TEST(take_put_and_the_hint)
{
	uint64_t refs[200];
	ck_assert_uint_eq(span_take(s, 3, refs), 3);
	for (uint32_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(refs[i], span_ref(s, i));
		ck_assert_int_eq(span_is_out(s, i), 1);
	}
	ck_assert_int_eq(span_is_out(s, 3), 0);
	ck_assert_int_eq(span_put(s, 1), 0);
	ck_assert_int_eq(span_put(s, 1), -EALREADY);
	ck_assert_uint_eq(s->nout, 2);
	/* Fill the first word, then put one of it back: the next take finds it. */
	ck_assert_uint_eq(span_take(s, 62, refs), 62);
	ck_assert_uint_eq(s->hint, 1);
	ck_assert_int_eq(span_put(s, 10), 0);
	ck_assert_uint_eq(span_take(s, 1, refs), 1);
	ck_assert_uint_eq(idx_of(refs[0]), 10);
}
END_TEST

/* Planted bug: the last word's mask off by one -- an object past the
 * span's end handed out (it overlaps the next span's pages). */
START_TEST(the_last_word_stops_at_the_objects)
{
	uint64_t refs[256];
	ck_assert_uint_eq(s->objects, 170);
	ck_assert_uint_eq(span_take(s, 256, refs), 170);
	ck_assert_uint_eq(s->nout, 170);
	ck_assert_uint_eq(idx_of(refs[169]), 169);
	ck_assert_uint_eq(span_take(s, 1, refs), 0);
	ck_assert_uint_eq(span_clear(s), 170);
	ck_assert_uint_eq(s->nout, 0);
	ck_assert_uint_eq(span_take(s, 1, refs), 1);
	ck_assert_uint_eq(idx_of(refs[0]), 0);
}
END_TEST

/* Planted bug: span_take_front() setting one bit too few of a partial word,
 * or leaving the hint at 0 (a refill would scan words it knows full). */
START_TEST(a_front_taken_whole)
{
	uint64_t ref;
	span_take_front(s, 70);
	ck_assert_uint_eq(s->nout, 70);
	ck_assert_int_eq(span_is_out(s, 69), 1);
	ck_assert_int_eq(span_is_out(s, 70), 0);
	ck_assert_uint_eq(s->hint, 1);
	ck_assert_uint_eq(span_take(s, 1, &ref), 1);
	ck_assert_uint_eq(idx_of(ref), 70);
}
END_TEST

/* Planted bug: span_adopt() counting the bits past the objects, or not
 * counting at all (a recovered span would hand out what is out). */
START_TEST(adopted_from_the_bitmap)
{
	uint64_t refs[8];
	ck_assert_uint_eq(span_take(s, 5, refs), 5);
	/* A bit past the objects (a scribble in 'M') is not an object. */
	layout_bitmap(a->meta, a->g, s->start)[2] |= UINT64_C(1) << 63;
	struct span *t = span_adopt(a, run, CLS);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(t->nout, 5);
	ck_assert_uint_eq(t->hint, 0);
	ck_assert_ptr_eq(a->span_of_page[s->start], t);
	a->span_of_page[s->start] = s;
	free(t);
}
END_TEST

/* Planted bug: span_locate() trusting the page map entry's span start or
 * class (shared memory), or accepting a ref inside an object. */
START_TEST(locate_checks_what_it_reads)
{
	struct span *found;
	uint32_t idx;
	uint64_t base = arena_page_offset(s->start);
	ck_assert_int_eq(span_locate(a, base + 7 * s->size, &found, &idx), 0);
	ck_assert_ptr_eq(found, s);
	ck_assert_uint_eq(idx, 7);
	ck_assert_int_eq(span_locate(a, base + 7 * s->size + 1, &found, &idx), -EINVAL);
	ck_assert_int_eq(span_locate(a, base + 170 * s->size, &found, &idx), -EINVAL);
	struct page_entry *pe = &a->page_map[s->start];
	pe->cls = CLS + 1;
	ck_assert_int_eq(span_locate(a, base, &found, &idx), -EUCLEAN);
	pe->cls = CLS;
	pe->span_start = a->g->npages;
	ck_assert_int_eq(span_locate(a, base, &found, &idx), -EUCLEAN);
	pe->span_start = s->start;
	ck_assert_int_eq(span_locate(a, base, &found, &idx), 0);
}
END_TEST

/* Planted bug: span_put() clearing a bit the daemon never set (one a
 * scribbler set in 'M' while the span counts nothing out). */
START_TEST(a_bit_never_set_is_refused)
{
	layout_bitmap(a->meta, a->g, s->start)[0] |= UINT64_C(1) << 5;
	ck_assert_int_eq(span_is_out(s, 5), 1);
	ck_assert_int_eq(span_put(s, 5), -EUCLEAN);
}
END_TEST

/* Planted bug: span_list_first() taking the emptiest span, or
 * span_list_update() leaving a span in its old bucket (refills would keep
 * every span a little used instead of draining the emptiest). */
START_TEST(the_partial_list_gives_the_fullest)
{
	struct span *t = make(CLS);
	uint64_t refs[200];
	struct span_list l = {{0}, 0};
	ck_assert_uint_eq(span_take(s, 100, refs), 100);
	ck_assert_uint_eq(span_take(t, 150, refs), 150);
	span_list_push(&l, s);
	span_list_push(&l, t);
	ck_assert_ptr_eq(span_list_first(&l), t);
	ck_assert_uint_eq(span_clear(t), 150);
	ck_assert_uint_eq(span_take(t, 1, refs), 1);
	span_list_update(&l, t);
	ck_assert_ptr_eq(span_list_first(&l), s);
	span_list_remove(&l, s);
	ck_assert_ptr_eq(span_list_first(&l), t);
	span_list_remove(&l, t);
	ck_assert_ptr_null(span_list_first(&l));
	span_list_remove(&l, t); /* not listed: nothing */
	struct page_run *r = t->run;
	span_destroy(t);
	pageheap_free(heap_fixture_heap->ph, r, monotonic_ms());
}
END_TEST

Suite *make_span_suite(void);
Suite *make_span_suite(void)
{
	Suite *su = suite_create("span");
	TCase *tc = tcase_create("span");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, take_put_and_the_hint);
	tcase_add_test(tc, the_last_word_stops_at_the_objects);
	tcase_add_test(tc, a_front_taken_whole);
	tcase_add_test(tc, adopted_from_the_bitmap);
	tcase_add_test(tc, locate_checks_what_it_reads);
	tcase_add_test(tc, a_bit_never_set_is_refused);
	tcase_add_test(tc, the_partial_list_gives_the_fullest);
	suite_add_tcase(su, tc);
	return su;
}
