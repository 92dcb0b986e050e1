/* SPDX-License-Identifier: MIT */
/*
 * Run under shmalloc-run by the preload suite (issue 22 item 4): what a
 * fork() copies for a child that execs at once.  The parent fills a few
 * hundred small blocks and forks; the child reads its own /proc/self/smaps
 * before it execs /bin/true and tells the parent, through a pipe, how many
 * pages of memory of its own (Anonymous) it has where the parent has the
 * heap's segments: none where the metadata is (its view stays the daemon's
 * read-only segment: before, every arena's metadata was copied, the more
 * the more arenas the daemon had made), and of the heap's pages no more
 * than the parent has in its page table.  Prints "ok" and the counts, else
 * what it found.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 400
#define MAXR 16

struct range {
	uintptr_t lo, hi;
};

static struct range ro[MAXR]; /* read-only shared mappings: the metadata */
static int nro;
static struct range heap;     /* the mapping that holds our blocks */

/* Walks smaps: fn(range, perms, name, rss kB, anonymous kB) per entry. */
static void walk(void (*fn)(struct range, const char *, long, long, void *), void *arg)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (f == NULL)
		exit(2);
	char line[512], perms[8] = "";
	struct range r = {0, 0};
	long rss = -1, anon = -1;
	int have = 0;
	for (;;) {
		char *got = fgets(line, sizeof line, f);
		unsigned long lo, hi;
		char p[8];
		/* An entry's first line is "lo-hi perms ..."; its fields are
		 * "Name: value" and never parse so. */
		int head = got && sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3;
		if (!got || head) {
			if (have)
				fn(r, perms, rss, anon, arg);
			if (!got)
				break;
			r.lo = lo;
			r.hi = hi;
			strcpy(perms, p);
			rss = anon = -1;
			have = 1;
			continue;
		}
		sscanf(line, "Rss: %ld kB", &rss);
		sscanf(line, "Anonymous: %ld kB", &anon);
	}
	fclose(f);
}

static int overlaps(struct range a, struct range b)
{
	return a.lo < b.hi && b.lo < a.hi;
}

static void in_parent(struct range r, const char *perms, long rss, long anon, void *arg)
{
	uintptr_t b0 = *(uintptr_t *)arg;
	(void)anon;
	if (strcmp(perms, "r--s") == 0 && nro < MAXR)
		ro[nro++] = r;
	if (b0 >= r.lo && b0 < r.hi) {
		heap = r;
		((long *)arg)[1] = rss;
	}
}

static void in_child(struct range r, const char *perms, long rss, long anon, void *arg)
{
	long *c = arg; /* metadata kB of its own, heap kB of its own */
	(void)rss;
	(void)perms;
	for (int i = 0; i < nro; i++)
		if (overlaps(r, ro[i]) && anon > 0)
			c[0] += anon;
	if (overlaps(r, heap) && anon > 0)
		c[1] += anon;
}

int main(void)
{
	static char *b[N];
	for (int i = 0; i < N; i++) {
		b[i] = malloc(64);
		if (b[i] == NULL)
			return 2;
		memset(b[i], 'a', 64);
	}
	long parent[2] = {(long)(uintptr_t)b[0], -1};
	walk(in_parent, parent);
	if (parent[1] < 0 || nro == 0) {
		printf("no heap mapping (rss %ld) or no read-only segment (%d) found\n", parent[1], nro);
		return 2;
	}
	int fds[2];
	if (pipe(fds) != 0)
		return 2;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		long c[2] = {0, 0};
		walk(in_child, c);
		if (write(fds[1], c, sizeof c) != sizeof c)
			_exit(3);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	long c[2];
	if (pid < 0 || read(fds[0], c, sizeof c) != sizeof c)
		return 2;
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 2;
	int bad = 0;
	if (c[0] != 0) {
		printf("the child has %ld kB of its own where the metadata is (a copy)\n", c[0]);
		bad = 1;
	}
	if (c[1] > parent[1]) {
		printf("the child has %ld kB of its own in the heap, its parent %ld kB there\n", c[1],
		       parent[1]);
		bad = 1;
	}
	if (!bad)
		printf("ok\n");
	fprintf(stderr, "forkexec: copied for the child: metadata %ld kB, heap %ld kB (the parent's "
		"page table: %ld kB of the heap)\n", c[0], c[1], parent[1]);
	return bad;
}
