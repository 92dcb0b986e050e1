/* SPDX-License-Identifier: MIT */
/*
 * The heap the dispatch fuzz target runs on, shared with the corpus
 * generator so that the refs written into the seeds name real objects.
 */
#ifndef SHMA_TESTS_FUZZ_DAEMON_H
#define SHMA_TESTS_FUZZ_DAEMON_H

#define FUZZ_ARENA_SIZE (1u << 20)
#define FUZZ_MAX_MEMORY (8u << 20)
#define FUZZ_CLIENT_MAX_MEMORY (6u << 20)
#define FUZZ_LARGE_THRESHOLD (128u << 10)

#endif
