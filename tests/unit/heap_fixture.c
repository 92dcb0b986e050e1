/* SPDX-License-Identifier: MIT */
/*
 * The heap unit tests' fixture (see heap_fixture.h): one heap on a unique
 * instance, asserted to leave no segment behind when closed.
 */
#include "heap_fixture.h"

#include <check.h>

#include "instance.h"

struct heap *heap_fixture_heap;
char heap_fixture_inst[32];

void heap_fixture_open(uint64_t max_memory)
{
	struct heap_config cfg = {
		.instance = heap_fixture_inst, .arena_size = MIB, .max_memory = max_memory,
		.mode = 0600, .decay_ms = 1000,
	};
	test_instance(heap_fixture_inst, sizeof heap_fixture_inst);
	ck_assert_int_eq(heap_open(&heap_fixture_heap, &cfg), 0);
}

void heap_fixture_close(void)
{
	heap_close(heap_fixture_heap, 1);
	ck_assert_int_eq(test_segments_left(heap_fixture_inst), 0);
}
