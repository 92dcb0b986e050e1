/* SPDX-License-Identifier: MIT */
/*
 * The recovery suites' shared helpers (see recovery.h): each asserts with
 * Check on failure, or, in a forked child, exits with a status that says so.
 */
#include "recovery.h"
#include "e2e.h"
#include "layout.h"

#include "shmalloc.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

uint64_t recovery_stat_rejected(void)
{
	char *json;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	char *at = strstr(json, ",\"roots\":");
	ck_assert_ptr_nonnull(at);
	while (at > json && at[-1] != ':')
		at--;
	uint64_t v = strtoull(at, NULL, 10);
	free(json);
	return v;
}

pid_t recovery_fork_client(const char *socket, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int rc = shma_connect(socket);
		if (rc != 0) {
			fprintf(stderr, "child: connect: %s\n", shma_strerror(rc));
			_exit(100);
		}
		_exit(fn(arg));
	}
	return pid;
}

size_t recovery_block_size(unsigned i)
{
	static const size_t sizes[] = {8, 24, 100, 700, 1500, 5000, 30000, 200000, 1 << 20};
	return sizes[i % (sizeof sizes / sizeof sizes[0])];
}

/* The control block the daemon made for this process: the one of e2e's
 * instance whose header names our pid, mapped whole
 * (read-write: the tests scribble on it); NULL if none. */
struct control_block *recovery_my_control_block(void)
{
	return recovery_control_block_of(getpid());
}

struct control_block *recovery_control_block_of(pid_t pid)
{
	char prefix[96], name[400];
	snprintf(prefix, sizeof prefix, "shmalloc.%s.c", e2e.instance);
	DIR *dir = opendir("/dev/shm");
	struct control_block *found = NULL;
	for (struct dirent *e; dir && found == NULL && (e = readdir(dir)) != NULL;) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(name, sizeof name, "/%s", e->d_name);
		int fd = shm_open(name, O_RDWR, 0);
		if (fd < 0)
			continue;
		struct control_block *cb = mmap(NULL, sizeof *cb, PROT_READ | PROT_WRITE,
						MAP_SHARED, fd, 0);
		close(fd);
		if (cb != MAP_FAILED && cb->hdr.pid == (uint32_t)pid)
			found = cb;
		else if (cb != MAP_FAILED)
			munmap(cb, sizeof *cb);
	}
	if (dir)
		closedir(dir);
	return found;
}
