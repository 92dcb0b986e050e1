/*
 * The recovery suites' shared helpers (see recovery.h): each asserts with
 * Check on failure, or, in a forked child, exits with a status that says so.
 */
#include "recovery.h"

#include "shmalloc.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
