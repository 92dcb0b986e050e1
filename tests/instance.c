/*
 * Unique instance names for tests, and the count of segments one left
 * behind (see instance.h).  The counter is the program's one, shared by
 * every suite linked into it.
 */
#include "instance.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static unsigned instance_counter;
static unsigned instance_salt;

/* The pid alone is not enough: a run that crashed may have left segments
 * under a name whose pid the kernel now hands to us, and a heap refuses an
 * arena it did not make.  A random salt per program makes that collision
 * one in 2^32. */
void test_instance(char *buf, size_t size)
{
	if (instance_salt == 0 && getrandom(&instance_salt, sizeof instance_salt, 0) < 0)
		instance_salt = (unsigned)time(NULL);
	snprintf(buf, size, "t%ld%08xx%u", (long)getpid(), instance_salt, instance_counter++);
}

int test_segments_left(const char *instance)
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
