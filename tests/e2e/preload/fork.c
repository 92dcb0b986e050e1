/* SPDX-License-Identifier: MIT */
/*
 * Run under shmalloc-run by the preload suite: fork() as glibc does it.  The
 * child gets its own copy of what the parent allocated: its writes and frees
 * never reach the parent's blocks, and what the parent writes after the
 * fork does not show in the child; a grandchild likewise.  A large block
 * written on every other page (hundreds of runs of pages to copy, more than
 * the kernel names in one PAGEMAP_SCAN call) comes whole to the child.
 * Exits 0, else prints what went wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 1000
#define BIG_PAGES 1024 /* a large block of 4 MiB */

static char *big;

/* 1 if every other page of big holds its mark (plus shift).  The pages
 * between were never written: malloc left them as they were, and the child
 * need not see them as the parent does. */
static int big_intact(int shift)
{
	for (int i = 0; i < BIG_PAGES; i += 2) {
		if (big[(size_t)i * 4096] != (char)((i + shift) | 1))
			return 0;
	}
	return 1;
}

static int child(char *p, char *q, char *r0, int go)
{
	char c;
	/* A block it inherited grows into a block of its own, contents kept. */
	char *r1 = realloc(r0, 1 << 20);
	if (r1 == NULL || strcmp(r1, "parent-r") != 0) {
		printf("child: realloc of an inherited block gave %s\n", r1 ? r1 : "NULL");
		return 1;
	}
	free(r1);
	if (strcmp(p, "parent-p") != 0) {
		printf("child: p is '%s' at the fork\n", p);
		return 1;
	}
	strcpy(p, "child");
	free(p);
	/* New blocks of the child are its own: writing them hurts nobody. */
	for (int i = 0; i < N; i++) {
		char *r = malloc(64);
		if (r == NULL)
			return 1;
		memset(r, 'c', 64);
	}
	/* And so is a grandchild's copy. */
	pid_t g = fork();
	if (g == 0) {
		strcpy(q, "grandchild");
		_exit(0);
	}
	int st;
	waitpid(g, &st, 0);
	if (strcmp(q, "parent-q") != 0) {
		printf("child: q is '%s' after the grandchild wrote\n", q);
		return 1;
	}
	if (!big_intact(0)) {
		printf("child: the large block did not come whole\n");
		return 1;
	}
	if (read(go, &c, 1) != 1)
		return 1;
	if (!big_intact(0)) {
		printf("child: the parent's writes to the large block show\n");
		return 1;
	}
	if (strcmp(q, "parent-q") != 0) {
		printf("child: the parent's write shows: q is '%s'\n", q);
		return 1;
	}
	return 0;
}

int main(void)
{
	char *p = malloc(64), *q = malloc(64), *r0 = malloc(64);
	if (p == NULL || q == NULL || r0 == NULL)
		return 2;
	strcpy(r0, "parent-r");
	strcpy(p, "parent-p");
	strcpy(q, "parent-q");
	big = malloc((size_t)BIG_PAGES * 4096);
	if (big == NULL)
		return 2;
	for (int i = 0; i < BIG_PAGES; i += 2)
		big[(size_t)i * 4096] = (char)(i | 1);
	int go[2];
	if (pipe(go) != 0)
		return 2;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child(p, q, r0, go[0]));
	strcpy(q, "parent-again");
	for (int i = 0; i < BIG_PAGES; i += 2)
		big[(size_t)i * 4096] = (char)((i + 2) | 1);
	if (write(go[1], "g", 1) != 1)
		return 2;
	int st;
	waitpid(pid, &st, 0);
	int bad = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	if (!big_intact(2)) {
		printf("parent: the large block lost its writes\n");
		bad = 1;
	}
	if (strcmp(p, "parent-p") != 0) {
		printf("parent: the child's write shows: p is '%s'\n", p);
		bad = 1;
	}
	/* The child's free of p never reached the heap: p stays ours. */
	for (int i = 0; i < N; i++) {
		char *r = malloc(64);
		if (r == p) {
			printf("parent: malloc handed out p, which is live\n");
			bad = 1;
			break;
		}
	}
	if (!bad)
		printf("ok\n");
	return bad;
}
