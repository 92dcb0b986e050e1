/*
 * Unique instance names for tests, and the count of segments one left
 * behind (see instance.h).  The counter is the program's one, shared by
 * every suite linked into it.
 */
#include "instance.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static unsigned instance_counter;

void test_instance(char *buf, size_t size)
{
	snprintf(buf, size, "t%ldx%u", (long)getpid(), instance_counter++);
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
