/*
 * Test helpers for suites that create segments: a unique instance name per
 * test, and a check that a test left nothing behind in /dev/shm.
 */
#ifndef SHMA_TESTS_INSTANCE_H
#define SHMA_TESTS_INSTANCE_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Writes "t<pid>x<n>" into buf: unique across the tests of a run, and across
 * runs that overlap. */
static inline void test_instance(char *buf, size_t size)
{
	static unsigned counter;
	snprintf(buf, size, "t%ldx%u", (long)getpid(), counter++);
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
