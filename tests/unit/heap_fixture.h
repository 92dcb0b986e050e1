/*
 * The fixture of the heap's unit tests: a heap of 1 MiB arenas on a unique
 * instance, opened per test and closed with every segment removed (asserted).
 * Each test file that includes it gets its own heap and instance name.
 */
#ifndef SHMA_TESTS_HEAP_FIXTURE_H
#define SHMA_TESTS_HEAP_FIXTURE_H

#include <check.h>

#include "instance.h"
#include "heap.h"

#define MIB ((uint64_t)1 << 20)

static char inst[32];
static struct heap *h;

static void open_heap(uint64_t max_memory)
{
	struct heap_config cfg = {
		.instance = inst, .arena_size = MIB, .max_memory = max_memory,
		.mode = 0600, .decay_ms = 1000,
	};
	test_instance(inst, sizeof inst);
	ck_assert_int_eq(heap_open(&h, &cfg), 0);
}

static void close_heap(void)
{
	heap_close(h, 1);
	ck_assert_int_eq(test_segments_left(inst), 0);
}

#endif
