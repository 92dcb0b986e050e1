/* SPDX-License-Identifier: MIT */
/*
 * calloc, realloc and aligned_alloc across the sizes where the allocator
 * changes its ways: every small class and its neighbours, the large
 * threshold, large blocks taken again from the process's own cache; realloc
 * up and down across class and large boundaries; aligned_alloc with many
 * blocks live at once, at every alignment from 32 B to 1 MiB.  (Before, the
 * suite tried calloc at 256 B, realloc from 10 bytes, and aligned_alloc
 * with one block live at a time.)
 */
#include "e2e.h"
#include "shmalloc.h"
#include "sizeclass.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

/* The first n bytes of p are 0. */
static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* A block of n bytes filled with 0xA5 and freed, then calloc of m bytes
 * (in two factors): it must be that block again (so the test is of a
 * recycled one) and hold m zeros. */
static void calloc_after_dirty_free(size_t n, size_t m)
{
	unsigned char *p = shma_malloc(n);
	ck_assert_ptr_nonnull(p);
	memset(p, 0xA5, shma_usable_size(p));
	shma_free(p);
	size_t k = m % 3 == 0 ? 3 : 1;
	unsigned char *q = shma_calloc(m / k, k);
	ck_assert_ptr_nonnull(q);
	ck_assert_msg(q == p, "calloc(%zu) after free(malloc(%zu)): not the block freed, so "
		      "nothing recycled was tried", m, n);
	ck_assert_msg(all_zero(q, m), "calloc(%zu) of a recycled %zu-byte block is not all zero",
		      m, n);
	shma_free(q);
}

/* Planted: a calloc that leaves a large block as it is (fresh pages are
 * zero, a kept one is not) -- only gcc crashing in the preload suite
 * caught it. */
START_TEST(calloc_zeroes_at_every_size)
{
	size_t threshold = 128 * KIB; /* the daemon's default --large-threshold */
	for (unsigned cls = 0; cls < SIZECLASS_COUNT && sizeclass_size(cls) < threshold; cls++) {
		size_t c = sizeclass_size(cls);
		calloc_after_dirty_free(c, c);
		calloc_after_dirty_free(c, c - 1);
		if (cls > 0)
			calloc_after_dirty_free(c, sizeclass_size(cls - 1) + 1);
	}
	/* Large: the block comes back from the process's own cache. */
	const size_t large[] = {threshold, threshold + 1, 300 * KIB, MIB, 3 * MIB + 5};
	for (unsigned i = 0; i < sizeof large / sizeof large[0]; i++) {
		calloc_after_dirty_free(large[i], large[i]);
		if (large[i] / 2 + 4096 >= threshold) /* a smaller request it serves */
			calloc_after_dirty_free(large[i], large[i] / 2 + 4096);
	}
}
END_TEST

/* The byte i of a block written at step s. */
static unsigned char pattern(unsigned s, size_t i)
{
	return (unsigned char)(s * 37 + i * 11 + (i >> 12));
}

/* One walk of realloc over sizes: what was written is kept up to the
 * smaller size, and a block that fits and is not more than twice too big
 * stays where it is. */
static void realloc_walk(const size_t *sizes, unsigned n)
{
	unsigned char *p = shma_realloc(NULL, sizes[0]);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < sizes[0]; i++)
		p[i] = pattern(0, i);
	for (unsigned s = 1; s < n; s++) {
		size_t old = sizes[s - 1], want = sizes[s], usable = shma_usable_size(p);
		unsigned char *q = shma_realloc(p, want);
		ck_assert_msg(q != NULL, "realloc %zu -> %zu", old, want);
		if (want <= usable && want > usable / 2)
			ck_assert_msg(q == p, "realloc %zu -> %zu moved a block of %zu usable", old,
				      want, usable);
		ck_assert_uint_ge(shma_usable_size(q), want);
		size_t kept = old < want ? old : want;
		for (size_t i = 0; i < kept; i++)
			if (q[i] != pattern(s - 1, i))
				ck_abort_msg("realloc %zu -> %zu: byte %zu changed", old, want, i);
		for (size_t i = 0; i < want; i++)
			q[i] = pattern(s, i);
		p = q;
	}
	ck_assert_ptr_null(shma_realloc(p, 0));
}

START_TEST(realloc_keeps_contents_across_sizes_and_directions)
{
	/* Up through classes and the large threshold, down again by steps of
	 * less and of more than half. */
	const size_t walk[] = {1,          15,         16,         17,        100,
			       1024,       1025,       8000,       32 * KIB - 1,
			       32 * KIB + 1, 128 * KIB - 1, 128 * KIB, 128 * KIB + 1,
			       MIB,        3 * MIB + 7, 2 * MIB,   MIB - 1,   200 * KIB,
			       127 * KIB,  5000,       4000,       33,        1};
	realloc_walk(walk, sizeof walk / sizeof walk[0]);
	/* Large to small and back, and a large block shrunk a little. */
	const size_t jumps[] = {3 * MIB, 64, 2 * MIB, 2 * MIB - 4096, 16, 512 * KIB, 24};
	realloc_walk(jumps, sizeof jumps / sizeof jumps[0]);
}
END_TEST

struct live {
	char *p;
	size_t size;
};

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct live *)a)->p;
	uintptr_t y = (uintptr_t)((const struct live *)b)->p;
	return x < y ? -1 : x > y;
}

START_TEST(aligned_alloc_with_many_blocks_live)
{
	const size_t aligns[] = {32,       64,       128,      256,        512,       4 * KIB,
				 8 * KIB,  16 * KIB, 64 * KIB, 256 * KIB, MIB};
	enum { MAX = 4000 };
	struct live *b = mmap(NULL, MAX * sizeof *b, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(b, MAP_FAILED);
	unsigned n = 0;
	for (unsigned a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
		size_t al = aligns[a];
		const size_t sizes[] = {1, al / 2, al - 1, al, al + 1, 3 * al + 5, 40000};
		unsigned each = al <= 8 * KIB ? 48 : al <= 64 * KIB ? 6 : 2;
		for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
			for (unsigned k = 0; k < each; k++) {
				ck_assert_uint_lt(n, MAX);
				char *p = shma_aligned_alloc(al, sizes[s]);
				ck_assert_msg(p != NULL, "aligned_alloc(%zu, %zu)", al, sizes[s]);
				ck_assert_msg((uintptr_t)p % al == 0, "aligned_alloc(%zu, %zu) = %p",
					      al, sizes[s], (void *)p);
				ck_assert_uint_ge(shma_usable_size(p), sizes[s]);
				e2e_fill(p, sizes[s], n);
				b[n].p = p;
				b[n++].size = sizes[s];
			}
	}
	for (unsigned i = 0; i < n; i++)
		ck_assert_msg(e2e_check_fill(b[i].p, b[i].size, i), "block %u (%zu bytes) overwritten",
			      i, b[i].size);
	qsort(b, n, sizeof *b, by_address);
	for (unsigned i = 1; i < n; i++)
		ck_assert_msg(b[i - 1].p + b[i - 1].size <= b[i].p, "%p (%zu bytes) overlaps %p",
			      (void *)b[i - 1].p, b[i - 1].size, (void *)b[i].p);
	for (unsigned i = 0; i < n; i++)
		shma_free(b[i].p);
	munmap(b, MAX * sizeof *b);
}
END_TEST

Suite *make_sizes_suite(void);
Suite *make_sizes_suite(void)
{
	Suite *s = suite_create("sizes");
	TCase *tc = tcase_create("sizes");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, calloc_zeroes_at_every_size);
	tcase_add_test(tc, realloc_keeps_contents_across_sizes_and_directions);
	tcase_add_test(tc, aligned_alloc_with_many_blocks_live);
	suite_add_tcase(s, tc);
	return s;
}
