/* SPDX-License-Identifier: MIT */
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

/* How many of instance's segments are not control blocks, and how many
 * control blocks a client took (their header names a pid).  The spare
 * control blocks a daemon makes ahead of Hellos (pid 0) and drops again
 * when idle are in neither, so these two are stable while nobody connects,
 * whenever they are read. */
int test_segments_not_control(const char *instance);
int test_control_blocks_taken(const char *instance);
/* The highest client id instance's heap has given (its heap header's
 * client_ids: a Hello, or a spare made for one, raises it); 0 without one. */
unsigned long long test_client_ids_given(const char *instance);

#endif
