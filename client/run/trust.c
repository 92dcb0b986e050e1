/* SPDX-License-Identifier: MIT */
/*
 * Which daemon shmalloc-run hands a program to: see trust.h.
 *
 * A socket path is a name anyone may have bound first (/tmp/shmalloc-$UID
 * is everybody's to create).  Something that merely accepts a connection
 * there is not a daemon: the preloaded library would refuse it (or time
 * out) and the program would run on the C library's malloc, silently.  So
 * shmalloc-run asks what the library asks before any program starts: it
 * connects with the library itself, which checks the peer's uid
 * (SO_PEERCRED: our own, root, $SHMALLOC_DAEMON_UID, or the owner of a
 * directory nobody else could have made; client/lib/peer.c), sends a
 * Hello, checks the answer and maps the heap; then it says goodbye.
 */
#include "config.h"

#include "trust.h"
#include "shmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int trust_daemon(const char *path, char *why, size_t n)
{
	int rc = shma_connect(path);
	if (rc == 0) {
		shma_disconnect();
		return 0;
	}
	snprintf(why, n, "%s", shma_strerror(rc));
	return rc;
}

int trust_nobody_listens(int rc)
{
	return rc == -ECONNREFUSED || rc == -ENOENT || rc == -ENOTDIR;
}

int trust_private_dir(const char *dir, char *why, size_t n)
{
	struct stat st;
	if (lstat(dir, &st) != 0) {
		snprintf(why, n, "%s", strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		snprintf(why, n, "not a directory of ours of mode 0700 (uid %lu, mode %04o)",
			 (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int trust_instance_name(char *buf, size_t n)
{
	unsigned char r[8];
	size_t got = 0;
	while (got < sizeof r) {
		ssize_t k = getrandom(r + got, sizeof r - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		got += (size_t)k;
	}
	int w = snprintf(buf, n, "run-");
	for (size_t i = 0; i < sizeof r && w > 0 && (size_t)w < n; i++)
		w += snprintf(buf + w, n - (size_t)w, "%02x", r[i]);
	return w > 0 && (size_t)w < n ? 0 : -ENAMETOOLONG;
}
