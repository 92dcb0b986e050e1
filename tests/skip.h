/* SPDX-License-Identifier: MIT */
/*
 * A test that cannot run here (no root to switch users, no mount namespace,
 * an ASan build, a missing tool) says so instead of passing in silence.
 * Check has no skip: the test calls TEST_SKIP(why...) and returns, Check
 * counts it passed, and the line "SKIP: <test>: <why>" it wrote on stderr
 * (which lands in the suite's log) is what scripts/test.sh counts as
 * skipped and takes off the passed.
 */
#ifndef SHMA_TESTS_SKIP_H
#define SHMA_TESTS_SKIP_H

/* Writes "SKIP: <test>: <why>" on stderr, test being the calling Check
 * test (its function's name, Check's "_fn" left off). */
#define TEST_SKIP(...) test_skip(__func__, __VA_ARGS__)

void test_skip(const char *fn, const char *why_format, ...)
	__attribute__((format(printf, 2, 3)));

#endif
