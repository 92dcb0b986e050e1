/* SPDX-License-Identifier: MIT */
/*
 * Refs: how an allocation is named across processes.
 *
 * A ref is the byte offset of a block (or of a byte inside one) from the
 * base of the instance's heap range, [base, base + range).  Every process
 * maps the pages of the whole range, so base + ref is the block in every
 * process -- and in a process mapped at the instance's base, the ref's
 * pointer is the pointer every other such process holds.  0 is the null ref:
 * the first pages of the range are arena 0's metadata pages, which never
 * hold a block.  Arena i is [i << arena_shift, (i + 1) << arena_shift) of the
 * range, so a ref's arena and page come with a shift and a mask.  A ref stays
 * valid across a daemon restart (the range, its base and its arenas are kept).
 */
#ifndef SHMA_REF_H
#define SHMA_REF_H

#include <stdint.h>

/* The largest heap range a ref can address (64 TiB). */
#define REF_RANGE_MAX ((uint64_t)1 << 46)
/* Most arenas a heap may have. */
#define REF_ARENAS_MAX ((uint32_t)1 << 22)

static inline uint64_t ref_make(uint32_t arena, unsigned arena_shift, uint64_t off)
{
	return (uint64_t)arena << arena_shift | off;
}

static inline uint32_t ref_arena(uint64_t ref, unsigned arena_shift)
{
	return (uint32_t)(ref >> arena_shift);
}

/* The byte offset of ref inside its arena. */
static inline uint64_t ref_arena_offset(uint64_t ref, unsigned arena_shift)
{
	return ref & ((UINT64_C(1) << arena_shift) - 1);
}

#endif
