/* SPDX-License-Identifier: MIT */
/*
 * Run under shmalloc-run by the preload suite: free() keeps errno, on every
 * path -- the thread cache, a cache flushed to the daemon, a large block,
 * NULL, aligned, calloc'd and realloc'd blocks -- and, with
 * PRELOAD_KILL=PID, after it has killed the daemon (PID), when the frees
 * meet a dead socket.  Prints "ok" and exits 0, else names the case.
 */
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(what, expr)                                                       \
	do {                                                                    \
		errno = EXDEV;                                                  \
		expr;                                                           \
		if (errno != EXDEV) {                                           \
			printf("errno changed by %s: %d\n", what, errno);       \
			return 1;                                               \
		}                                                               \
	} while (0)

int main(void)
{
	static void *many[20000];
	for (int i = 0; i < 20000; i++)
		many[i] = malloc(64);
	CHECK("free(NULL)", free(NULL));
	CHECK("free(small)", free(malloc(32)));
	/* Past the cache's high water: frees that flush to the daemon. */
	for (int i = 0; i < 20000; i++)
		CHECK("free(flushing)", free(many[i]));
	CHECK("free(large)", free(malloc(8 << 20)));
	void *a = NULL;
	if (posix_memalign(&a, 4096, 100) != 0)
		return 2;
	CHECK("free(aligned)", free(a));
	CHECK("free(calloc)", free(calloc(1000, 10)));
	void *r = realloc(NULL, 10);
	r = realloc(r, 100000);
	CHECK("free(realloc)", free(r));
	const char *victim = getenv("PRELOAD_KILL");
	if (victim != NULL) {
		for (int i = 0; i < 20000; i++)
			many[i] = malloc(64);
		void *large = malloc(8 << 20);
		if (kill((pid_t)atol(victim), SIGKILL) != 0)
			return 3;
		usleep(200000);
		for (int i = 0; i < 20000; i++)
			CHECK("free(flushing, daemon dead)", free(many[i]));
		CHECK("free(large, daemon dead)", free(large));
		CHECK("free(new, daemon dead)", free(malloc(100)));
	}
	printf("ok\n");
	return 0;
}
