/* SPDX-License-Identifier: MIT */
/*
 * The workloads' random sizes, drawn once from a fixed seed so that every
 * allocator (and bench/footprint, which accounts for (e)'s bytes) sees the
 * same sequence: a xorshift generator and the four size tables of
 * bench/tests.c, filled in one interleaved order.
 */
#ifndef SHMA_BENCH_SIZES_H
#define SHMA_BENCH_SIZES_H

#include <stddef.h>
#include <stdint.h>

#define TABLE_SLOTS 4096 /* a power of two */
#define SEED UINT64_C(0x5eed5eed12345678)

struct size_tables {
	size_t small[TABLE_SLOTS]; /* 16 B - 32 KiB, log-uniform: (a), (b), (e) */
	size_t tiny[TABLE_SLOTS];  /* 64 - 120 B: (s) */
	size_t large[TABLE_SLOTS]; /* 256 KiB - 8 MiB, log-uniform: (d), (f) */
	size_t msg[TABLE_SLOTS];   /* 64 - 256 B: (c), (cp) */
};

static inline uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* A size in [2^lo_bits, 2^hi_bits), each octave equally likely. */
static inline size_t log_uniform(uint64_t *s, int lo_bits, int hi_bits)
{
	int k = lo_bits + (int)(rng_next(s) % (uint64_t)(hi_bits - lo_bits));
	size_t base = (size_t)1 << k;

	return base + (size_t)(rng_next(s) % base);
}

static inline void size_tables_fill(struct size_tables *t)
{
	uint64_t s = SEED;

	for (int i = 0; i < TABLE_SLOTS; i++) {
		t->small[i] = log_uniform(&s, 4, 15);
		t->tiny[i] = 64 + (size_t)(rng_next(&s) % 57);
		t->large[i] = log_uniform(&s, 18, 23);
		t->msg[i] = 64 + (size_t)(rng_next(&s) % 193);
	}
}

#endif
