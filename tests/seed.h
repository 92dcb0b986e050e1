/* SPDX-License-Identifier: MIT */
/*
 * The seed of a test that draws random numbers: printed, so that a failure
 * can be run again with the same draws.  Timing-dependent tests (kills at
 * random instants) replay the same draws, not the same interleaving.
 */
#ifndef SHMA_TESTS_SEED_H
#define SHMA_TESTS_SEED_H

/* $SHMALLOC_TEST_SEED if it is set (a decimal number), else a fresh seed;
 * either way writes "seed: <test>: N (SHMALLOC_TEST_SEED=N reproduces)" on
 * stderr, test being the calling Check test. */
#define TEST_SEED() test_seed(__func__)

unsigned test_seed(const char *fn);

#endif
