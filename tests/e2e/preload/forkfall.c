/* SPDX-License-Identifier: MIT */
/*
 * Run under shmalloc-run by the preload suite (issue 21 case 9): a program
 * that lost its daemon and went over to the C library's malloc keeps fork()
 * semantics for the heap blocks it still holds.  It fills 2000 blocks, kills
 * its daemon (PRELOAD_KILL=PID), makes a large malloc, which needs the
 * daemon and so finds it gone (the process says so on stderr and serves
 * from the C library from then on), and forks: the child overwrites and
 * frees the 2000 blocks, and the parent must find every one as it was.
 * Exits 0 and prints "ok", else says how many blocks the child reached.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 2000
#define SIZE 64

/* 1 once process pid is dead (a zombie, or reaped). */
static int dead(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren == NULL || paren[1] == '\0' || paren[2] == 'Z' || paren[2] == 'X';
}

int main(void)
{
	static char *b[N];
	for (int i = 0; i < N; i++) {
		b[i] = malloc(SIZE);
		if (b[i] == NULL)
			return 2;
		memset(b[i], 'a' + i % 26, SIZE);
	}
	const char *victim = getenv("PRELOAD_KILL");
	if (victim == NULL || kill((pid_t)atol(victim), SIGKILL) != 0)
		return 3;
	/* Dead before the next request, which must find it gone. */
	while (!dead((pid_t)atol(victim)))
		usleep(1000);
	/* A large block is the daemon's to give: this malloc meets the dead
	 * socket, and the process goes over to the C library for good. */
	char *large = malloc(8 << 20);
	if (large == NULL)
		return 4;
	large[0] = 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return 5;
	if (pid == 0) {
		for (int i = 0; i < N; i++) {
			memset(b[i], 'c', SIZE);
			/* Not a dead store to the compiler, which knows free(). */
			__asm__ __volatile__("" : : "r"(b[i]) : "memory");
			free(b[i]);
		}
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 6;
	int bad = 0;
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < SIZE; k++) {
			if (b[i][k] != 'a' + i % 26) {
				bad++;
				break;
			}
		}
	}
	if (bad) {
		printf("the child changed %d of the parent's %d blocks\n", bad, N);
		return 1;
	}
	printf("ok\n");
	return 0;
}
