/* SPDX-License-Identifier: MIT */
/*
 * The one monotonic clock of the project: CLOCK_MONOTONIC, which no
 * settimeofday moves, in nanoseconds or milliseconds.  The daemon stamps
 * free runs with it and measures their decay against it; the library's
 * timeouts and adaptive batches may read it too.  Header only: two calls
 * that compile to one vDSO clock_gettime.
 */
#ifndef SHMA_CLOCK_H
#define SHMA_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t monotonic_ms(void)
{
	return monotonic_ns() / 1000000u;
}

#endif
