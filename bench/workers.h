/* SPDX-License-Identifier: MIT */
/*
 * Workers: run one function in n processes or n threads that start together.
 *
 * The workers wait on a barrier in a shared anonymous mapping, then each
 * records when it started and finished on CLOCK_MONOTONIC, which every
 * process of the host reads alike; the run's wall time is from the earliest
 * start to the latest finish.  Setup done before workers_run (size tables,
 * a ring, a shared segment) is inherited by forked workers.
 */
#ifndef BENCH_WORKERS_H
#define BENCH_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#define WORKERS_MAX 8

/* One worker's job.  Returns 0, or -1 with a reason written into why. */
typedef int (*worker_fn)(int index, void *arg, char *why, size_t len);

/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t now_ns(void);

/*
 * Runs fn(0..n-1, arg) in n forked processes (as_procs) or n threads, and
 * stores the wall time in *wall_ns.  Returns 0, or -1 with the first failing
 * worker's reason in why.
 */
int workers_run(int n, int as_procs, worker_fn fn, void *arg, int64_t *wall_ns,
		char *why, size_t len);

#endif
