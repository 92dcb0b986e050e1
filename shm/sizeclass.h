/* SPDX-License-Identifier: MIT */
/*
 * Size classes: the one table both the daemon and the library use.
 *
 * Requests up to 128 B are rounded to 16-byte steps.  Above that every power
 * of two is split in eight, so a request is never rounded up by more than
 * 12.5% of itself.  The largest class is SIZECLASS_MAX_SIZE; anything larger
 * (or anything at or above the daemon's --large-threshold) is a large block.
 * Each class also fixes the size of its spans, in pages.  The handshake
 * compares sizeclass_checksum() on both sides, so a client built against
 * another table is refused instead of corrupting the heap.
 */
#ifndef SHMA_SIZECLASS_H
#define SHMA_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#define SIZECLASS_COUNT 112
#define SIZECLASS_MAX_SIZE ((size_t)1 << 20)
/* Sizes up to this take the table (2 KiB, one byte a 16-byte step): every
 * size of a typical program, with no branch on which half of the lookup a
 * size falls in to mispredict. */
#define SIZECLASS_SMALL_LOOKUP 32768

struct sizeclass {
	uint32_t size;       /* bytes per object */
	uint32_t span_pages; /* pages per span */
	uint32_t objects;    /* objects per span */
};

extern const struct sizeclass sizeclass_table[SIZECLASS_COUNT];
extern const uint8_t sizeclass_small[SIZECLASS_SMALL_LOOKUP / 16 + 1];

/* The class for a request of size bytes (0 counts as 1); size must be
 * <= SIZECLASS_MAX_SIZE. */
static inline unsigned sizeclass_of(size_t size)
{
	if (__builtin_expect(size <= SIZECLASS_SMALL_LOOKUP, 1))
		return sizeclass_small[(size + 15) >> 4];
	size_t s = size - 1;
	unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)s);
	return 8u + (k - 7u) * 8u + (unsigned)((s - ((size_t)1 << k)) >> (k - 3u));
}

static inline size_t sizeclass_size(unsigned cls)
{
	return sizeclass_table[cls].size;
}

/* A fingerprint of the whole table, for the handshake. */
uint64_t sizeclass_checksum(void);

#endif
