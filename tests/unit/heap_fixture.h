/* SPDX-License-Identifier: MIT */
/*
 * The fixture of the heap's unit tests: a heap of 1 MiB arenas on a unique
 * instance, opened per test and closed with every segment removed (asserted).
 * One heap at a time: the suites that use it (check_heap.c,
 * check_pageheap.c) share heap_fixture_heap, each test opening its own.
 */
#ifndef SHMA_TESTS_HEAP_FIXTURE_H
#define SHMA_TESTS_HEAP_FIXTURE_H

#include <stdint.h>

#include "heap.h"

#define MIB ((uint64_t)1 << 20)

/* The heap heap_fixture_open() opened, and its instance name. */
extern struct heap *heap_fixture_heap;
extern char heap_fixture_inst[32];

/* Opens a heap of 1 MiB arenas capped at max_memory (0: no cap) on a fresh
 * instance; asserts it opened. */
void heap_fixture_open(uint64_t max_memory);
/* Closes it, removing its segments; asserts none is left. */
void heap_fixture_close(void);

#endif
