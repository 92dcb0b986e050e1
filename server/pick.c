/* SPDX-License-Identifier: MIT */
/*
 * One pass over /dev/shm for the numbered alternatives of an instance name:
 * see pick.h.
 */
#include "pick.h"
#include "seg.h"


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_value(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/* n of "<digits>.<kind>..." as candidate() writes it (no leading zero), or -1. */
static long number_of(const char *s, char *kind)
{
	if (s[0] < '1' || s[0] > '9')
		return -1;
	unsigned long n = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (unsigned long)(*s - '0');
		if (n > UINT_MAX)
			return -1;
	}
	if (s[0] != '.' || s[1] == '\0')
		return -1;
	*kind = s[1];
	return (long)n;
}

int pick_beyond(const char *base, unsigned from, long *own, long *unused)
{
	char prefix[128];
	int plen = snprintf(prefix, sizeof prefix, "shmalloc.%s-", base);
	if (plen < 0 || (size_t)plen >= sizeof prefix)
		return -ENAMETOOLONG;
	*own = -1;
	*unused = -1;
	DIR *dir = opendir("/dev/shm");
	if (dir == NULL)
		return -errno;
	unsigned *taken = NULL;
	size_t ntaken = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		char kind;
		if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
			continue;
		long n = number_of(e->d_name + plen, &kind);
		if (n < (long)from || kind == SEG_CONTROL || kind == 'l' /* layout 1's large blocks */)
			continue;
		struct stat st;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_uid == geteuid() && (*own < 0 || n < *own))
			*own = n;
		if (ntaken == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			unsigned *t = realloc(taken, ncap * sizeof *t);
			if (t == NULL) {
				rc = -ENOMEM;
				break;
			}
			taken = t;
			cap = ncap;
		}
		taken[ntaken++] = (unsigned)n;
	}
	closedir(dir);
	if (rc == 0) {
		if (ntaken > 0) /* qsort() of NULL is undefined, even for 0 */
			qsort(taken, ntaken, sizeof *taken, by_value);
		unsigned long want = from;
		for (size_t i = 0; i < ntaken && taken[i] <= want; i++)
			if (taken[i] == want)
				want++;
		if (want <= UINT_MAX)
			*unused = (long)want;
		else
			rc = -EEXIST;
	}
	free(taken);
	return rc;
}
