/*
 * Test helpers for suites that create segments: a unique instance name per
 * test, and a check that a test left nothing behind in /dev/shm.
 */
#ifndef SHMA_TESTS_INSTANCE_H
#define SHMA_TESTS_INSTANCE_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Writes "t<pid>x<n>-<clock>" into buf: unique across the tests of a run, and
 * across runs that overlap.  The clock part keeps a test whose pid was reused
 * off the segments a failed run of long ago left under its name (every
 * forked test starts from the runner's counter). */
static inline void test_instance(char *buf, size_t size)
{
	static unsigned counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, size, "t%ldx%u-%08lx", (long)getpid(), counter++,
		 (unsigned long)((ts.tv_sec * 1000000007ull + (unsigned long long)ts.tv_nsec) &
				 0xffffffffu));
}

/* How many segments of instance exist (names /dev/shm/shmalloc.<inst>.*). */
static inline int test_segments_left(const char *instance)
{
	char prefix[128];
	int n = 0;
	snprintf(prefix, sizeof prefix, "shmalloc.%s.", instance);
	DIR *d = opendir("/dev/shm");
	if (d == NULL)
		return 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

#endif
