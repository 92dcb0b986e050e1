/* SPDX-License-Identifier: MIT */
/*
 * Unique instance names for tests, and the count of segments one left
 * behind (see instance.h).  The counter is the program's one, shared by
 * every suite linked into it.
 */
#include "instance.h"
#include "layout.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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

enum which { ALL, NOT_CONTROL, CONTROL_TAKEN };

/* 1 if name (after the instance's prefix) is a control block's: c<id>. */
static int is_control(const char *kind)
{
	if (kind[0] != 'c' || !isdigit((unsigned char)kind[1]))
		return 0;
	for (kind++; isdigit((unsigned char)*kind); kind++)
		;
	return *kind == '\0';
}

/* The first size bytes of segment /dev/shm/name, mapped read-only; NULL if
 * it is not there (removed while we look). */
static void *map_start(const char *name, size_t size)
{
	char path[300];
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* 1 if the control block name says a client's pid; a spare (pid 0) or one
 * removed while we look is not taken. */
static int control_taken(const char *name)
{
	struct control_header *h = map_start(name, sizeof *h);
	if (h == NULL)
		return 0;
	int taken = __atomic_load_n(&h->pid, __ATOMIC_ACQUIRE) != 0;
	munmap(h, sizeof *h);
	return taken;
}

static int count(const char *instance, enum which which)
{
	char prefix[128];
	int n = 0;
	snprintf(prefix, sizeof prefix, "shmalloc.%s.", instance);
	size_t len = strlen(prefix);
	DIR *d = opendir("/dev/shm");
	if (d == NULL)
		return 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (strncmp(e->d_name, prefix, len) != 0)
			continue;
		int control = is_control(e->d_name + len);
		n += which == ALL || (which == NOT_CONTROL && !control) ||
		     (which == CONTROL_TAKEN && control && control_taken(e->d_name));
	}
	closedir(d);
	return n;
}

int test_segments_left(const char *instance)
{
	return count(instance, ALL);
}

int test_segments_not_control(const char *instance)
{
	return count(instance, NOT_CONTROL);
}

int test_control_blocks_taken(const char *instance)
{
	return count(instance, CONTROL_TAKEN);
}

unsigned long long test_client_ids_given(const char *instance)
{
	char name[160];
	snprintf(name, sizeof name, "shmalloc.%s.M", instance);
	struct heap_header *h = map_start(name, sizeof *h);
	if (h == NULL)
		return 0;
	unsigned long long ids = __atomic_load_n(&h->client_ids, __ATOMIC_ACQUIRE);
	munmap(h, sizeof *h);
	return ids;
}
