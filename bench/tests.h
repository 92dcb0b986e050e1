/* SPDX-License-Identifier: MIT */
/*
 * The workloads the issue asks for, (a) to (e), as a table the harness runs.
 *
 * Each test fills up to TEST_METRICS_MAX figures; a time is in nanoseconds
 * per operation (lower is better), a footprint in MiB or KiB, NAN for a
 * figure that means nothing for this allocator.
 */
#ifndef BENCH_TESTS_H
#define BENCH_TESTS_H

#include <stddef.h>

#define TEST_METRICS_MAX 5

/* Operation counts; bench_main.c sets them and scales them with --scale. */
struct test_params {
	long batches;      /* (a), (b): batches of 100 malloc + 100 free */
	long messages;     /* (c): producer -> consumer messages */
	long large_ops;    /* (d): large alloc + touch + free */
	long churn_slots;  /* (e): live set slots */
	long churn_ops;    /* (e): random replacements */
	long idle_wait_ms; /* (e): wait after freeing everything */
};

struct test {
	const char *id;
	int procs;
	int idles;      /* waits for the allocator to go idle: fewer runs */
	int nmetrics;
	const char *metric[TEST_METRICS_MAX]; /* column names in the results */
	const char *unit[TEST_METRICS_MAX];
	const char *label[TEST_METRICS_MAX];  /* what the table says of it */
	int (*run)(const struct test *t, const struct test_params *p, double *out,
		   char *why, size_t len);
};

/* The test with this id ("a", "b2", "e"...), or NULL. */
const struct test *test_find(const char *id);

/* The program (fm) execs: --fm-child WHAT; 1 mallocs and frees a block, 0
 * nothing.  Its exit status. */
int test_fm_child(const char *what);

/* Every test, ending with an entry whose id is NULL. */
extern const struct test test_table[];

#endif
