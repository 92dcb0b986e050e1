/*
 * Test helpers for suites that create segments: a unique instance name per
 * test, and a check that a test left nothing behind in /dev/shm.  One
 * counter for the whole program (instance.c), so no two suites of a run
 * ever hand out the same name, forked per test or not.
 */
#ifndef SHMA_TESTS_INSTANCE_H
#define SHMA_TESTS_INSTANCE_H

#include <stddef.h>

/* Writes "t<pid><salt>x<n>" into buf: unique across the tests of a run, and
 * across runs that overlap or crashed (see instance.c). */
void test_instance(char *buf, size_t size);

/* How many segments of instance exist (names /dev/shm/shmalloc.<inst>.*). */
int test_segments_left(const char *instance);

#endif
