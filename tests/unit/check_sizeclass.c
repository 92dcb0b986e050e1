/* SPDX-License-Identifier: MIT */
/*
 * Size classes: the table is re-derived from the rule scripts/gen-sizeclass.py
 * states, the waste bound holds for every size, the lookup gives the
 * smallest class that fits, and the checksum the handshake compares is
 * pinned, so that changing the table is a deliberate act.
 */
#include <check.h>
#include <stdint.h>

#include "layout.h"
#include "sizeclass.h"

/* The checksum of the table as generated; change it only with the table
 * (and the protocol version: old clients will be refused). */
#define PINNED_CHECKSUM UINT64_C(0x535f5bfc6f0e7047)

/* The class sizes by the rule: 16-byte steps to 128, then eight steps per
 * power of two up to 1 MiB. */
static unsigned rule_sizes(uint32_t *out)
{
	unsigned n = 0;
	for (uint32_t s = 16; s <= 128; s += 16)
		out[n++] = s;
	for (unsigned k = 7; out[n - 1] < SIZECLASS_MAX_SIZE; k++)
		for (uint32_t j = 1; j <= 8; j++)
			out[n++] = (UINT32_C(1) << k) + (UINT32_C(1) << (k - 3)) * j;
	return n;
}

/* Pages per span by the rule: the fewest pages that hold one object, grown a
 * page at a time until the tail is at most 1/16 of the span, else (after 8
 * more pages) the size with the least waste. */
static uint32_t rule_span_pages(uint32_t size)
{
	uint32_t n0 = (uint32_t)((size + SHMA_PAGE_SIZE - 1) / SHMA_PAGE_SIZE);
	uint32_t best = n0;
	double best_waste = 2.0;
	for (uint32_t n = n0; n <= n0 + 8; n++) {
		uint64_t bytes = n * SHMA_PAGE_SIZE, tail = bytes % size;
		if (tail * 16 <= bytes)
			return n;
		if ((double)tail / (double)bytes < best_waste) {
			best_waste = (double)tail / (double)bytes;
			best = n;
		}
	}
	return best;
}

START_TEST(table_follows_the_rule)
{
	uint32_t sizes[SIZECLASS_COUNT + 8];
	ck_assert_uint_eq(rule_sizes(sizes), SIZECLASS_COUNT);
	for (unsigned c = 0; c < SIZECLASS_COUNT; c++) {
		const struct sizeclass *sc = &sizeclass_table[c];
		ck_assert_uint_eq(sc->size, sizes[c]);
		ck_assert_uint_eq(sc->span_pages, rule_span_pages(sizes[c]));
		ck_assert_uint_eq(sc->objects, sc->span_pages * SHMA_PAGE_SIZE / sc->size);
		ck_assert_uint_ge(sc->objects, 1);
		/* No span is bigger than it needs to be: what a class holds
		 * beyond its live objects is bounded by its span (the footprint
		 * of bench (e)); at most 8 pages more than one object needs. */
		ck_assert_uint_le(sc->span_pages,
				  (sc->size + SHMA_PAGE_SIZE - 1) / SHMA_PAGE_SIZE + 8);
		/* A span's bitmap fits the slots its pages give it. */
		ck_assert_uint_le(sc->objects, sc->span_pages * SHMA_BITMAP_BYTES_PER_PAGE * 8);
		if (c > 0)
			ck_assert_uint_gt(sc->size, sizeclass_table[c - 1].size);
	}
	ck_assert_uint_eq(sizeclass_table[SIZECLASS_COUNT - 1].size, SIZECLASS_MAX_SIZE);
}
END_TEST

START_TEST(small_sizes_step_by_16)
{
	ck_assert_uint_eq(sizeclass_size(sizeclass_of(0)), 16);
	for (size_t s = 1; s <= 128; s++)
		ck_assert_uint_eq(sizeclass_size(sizeclass_of(s)), (s + 15) / 16 * 16);
}
END_TEST

START_TEST(waste_is_at_most_an_eighth)
{
	for (size_t s = 129; s <= SIZECLASS_MAX_SIZE; s++) {
		size_t got = sizeclass_size(sizeclass_of(s));
		/* Plain tests in the loop: each ck_assert costs a message. */
		if (got < s || (got - s) * 8 > s)
			ck_abort_msg("size %zu gets %zu: more than 12.5%% waste", s, got);
	}
}
END_TEST

START_TEST(lookup_is_smallest_fit_and_monotone)
{
	unsigned prev = 0;
	for (size_t s = 1; s <= SIZECLASS_MAX_SIZE; s++) {
		unsigned c = sizeclass_of(s);
		if (c >= SIZECLASS_COUNT || c < prev)
			ck_abort_msg("size %zu: class %u out of order", s, c);
		if (sizeclass_size(c) < s || (c > 0 && sizeclass_size(c - 1) >= s))
			ck_abort_msg("size %zu: class %u is not the smallest that fits", s, c);
		prev = c;
	}
	/* The table half of the lookup agrees with the computed half. */
	for (unsigned i = 0; i <= SIZECLASS_SMALL_LOOKUP / 16; i++) {
		size_t s = i == 0 ? 1 : i * 16;
		unsigned c = sizeclass_small[i];
		ck_assert(sizeclass_size(c) >= s && (c == 0 || sizeclass_size(c - 1) < s));
	}
}
END_TEST

START_TEST(checksum_is_stable)
{
	ck_assert_uint_eq(sizeclass_checksum(), sizeclass_checksum());
	ck_assert_uint_eq(sizeclass_checksum(), PINNED_CHECKSUM);
}
END_TEST

Suite *make_sizeclass_suite(void);
Suite *make_sizeclass_suite(void)
{
	Suite *s = suite_create("sizeclass");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, table_follows_the_rule);
	tcase_add_test(tc, small_sizes_step_by_16);
	tcase_add_test(tc, waste_is_at_most_an_eighth);
	tcase_add_test(tc, lookup_is_smallest_fit_and_monotone);
	tcase_add_test(tc, checksum_is_stable);
	suite_add_tcase(s, tc);
	return s;
}
