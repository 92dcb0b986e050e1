/* SPDX-License-Identifier: MIT */
/*
 * A test's seed (see seed.h): from the environment, or fresh from the
 * kernel, and said on one line in one write, as skip.c says a skip.
 */
#include "seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

unsigned test_seed(const char *fn)
{
	unsigned seed = 0;
	const char *env = getenv("SHMALLOC_TEST_SEED");
	char *end = NULL;
	if (env != NULL && *env != '\0')
		seed = (unsigned)strtoul(env, &end, 10);
	if (end == NULL || *end != '\0') {
		if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
			seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	}
	size_t n = strlen(fn);
	if (n > 3 && strcmp(fn + n - 3, "_fn") == 0)
		n -= 3;
	char line[256];
	int k = snprintf(line, sizeof line, "seed: %.*s: %u (SHMALLOC_TEST_SEED=%u reproduces)\n",
			 (int)n, fn, seed, seed);
	fflush(stderr);
	if (k > 0 && write(STDERR_FILENO, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1) < 0)
		return seed; /* nowhere to say it */
	return seed;
}
