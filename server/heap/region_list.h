/* SPDX-License-Identifier: MIT */
/*
 * The regions, listed for stats (region_list.c): what `shmallocctl heaps`
 * shows of each shmalloc-run process's region, a heap of process lifetime.
 */
#ifndef SHMA_HEAP_REGION_LIST_H
#define SHMA_HEAP_REGION_LIST_H

#include "heap.h"

#include <stddef.h>
#include <stdint.h>

struct heap_region_info {
	uint64_t id;          /* the client id the region is keyed by */
	uint64_t bytes;       /* objects out (class size) and large blocks */
	uint64_t blocks;      /* objects out and large blocks */
	uint64_t spans;
	uint64_t large_count;
};

/* The first max regions into out (in no order); returns how many there are
 * in all.  Work: the regions' spans, one step each. */
size_t heap_region_list(const struct heap *h, struct heap_region_info *out, size_t max);

#endif
