/* SPDX-License-Identifier: MIT */
/*
 * Size classes: see sizeclass.h.  The table is written out rather than
 * computed at start-up so that both sides agree by construction and the
 * fast path reads a constant; tests/check_sizeclass.c re-derives it from the
 * rule and checks every entry, the waste bound and the lookup.
 */
#include "sizeclass.h"
#include "layout.h"

/* Spans: the fewest pages that hold one object, grown a page at a time
 * until the tail left over after the last object is at most 1/16 of the
 * span (scripts/gen-sizeclass.py). */
#define SC(sz, pages) { (sz), (pages), (uint32_t)(((pages) * SHMA_PAGE_SIZE) / (sz)) }

const struct sizeclass sizeclass_table[SIZECLASS_COUNT] = {
#include "sizeclass_table.inc"
};

const uint8_t sizeclass_small[SIZECLASS_SMALL_LOOKUP / 16 + 1] = {
#include "sizeclass_small.inc"
};

uint64_t sizeclass_checksum(void)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (unsigned i = 0; i < SIZECLASS_COUNT; i++) {
		uint32_t v[2] = {sizeclass_table[i].size, sizeclass_table[i].span_pages};
		const uint8_t *p = (const uint8_t *)v;
		for (unsigned j = 0; j < sizeof v; j++) {
			h ^= p[j];
			h *= UINT64_C(1099511628211);
		}
	}
	return h;
}
