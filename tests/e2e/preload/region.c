/* SPDX-License-Identifier: MIT */
/*
 * A program the preload suite runs under shmalloc-run to show what a
 * region (server/heap/heap.h: Regions) does for an unmodified program: the
 * blocks it still holds when it ends go with it, and pages it never touches
 * cost nothing.  Plain malloc and free only; the mode is argv[1]:
 *
 *   hold       allocates small and large blocks, writes them, exits 0
 *              without freeing any ("ok");
 *   kill       the same, then SIGKILLs itself;
 *   big        mallocs 4 GiB, touches 1 MiB of it, prints by how many bytes
 *              the heap's pages segment (/dev/shm/shmalloc.<instance>.p,
 *              found in /proc/self/maps) grew, in st_blocks;
 *   share      prints the addresses of two 64-byte blocks and two 1 MiB
 *              blocks, one a line in hex, then waits for stdin to close and
 *              exits without freeing them (another process frees them).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *hold(size_t n)
{
	char *p = malloc(n);
	if (p == NULL) {
		perror("malloc");
		exit(1);
	}
	memset(p, 0x5a, n < 4096 ? n : 4096);
	return p;
}

static void allocate_and_keep(void)
{
	static void *keep[20000];
	for (int i = 0; i < 20000; i++)
		keep[i] = hold(16 + (size_t)(i % 61) * 24);
	if (keep[0] == keep[19999])
		exit(1);
	for (int i = 0; i < 8; i++)
		hold((size_t)(i + 1) << 20);
	hold((size_t)100 << 20);
}

/* Bytes of the heap's pages segment in tmpfs (st_blocks), or -1. */
static long long segment_bytes(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return -1;
	char line[512], path[256] = "";
	while (fgets(line, sizeof line, f) != NULL) {
		char *at = strstr(line, "/dev/shm/shmalloc.");
		size_t n = at ? strcspn(at, "\n") : 0;
		if (at && n > 2 && at[n - 2] == '.' && at[n - 1] == 'p' && n < sizeof path) {
			memcpy(path, at, n);
			path[n] = '\0';
			break;
		}
	}
	fclose(f);
	struct stat st;
	if (path[0] == '\0' || stat(path, &st) != 0)
		return -1;
	return (long long)st.st_blocks * 512;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "hold") == 0 || strcmp(mode, "kill") == 0) {
		allocate_and_keep();
		if (strcmp(mode, "kill") == 0)
			raise(SIGKILL);
		puts("ok");
		return 0;
	}
	if (strcmp(mode, "big") == 0) {
		free(hold(64)); /* connected: the segment is mapped */
		long long before = segment_bytes();
		size_t n = (size_t)4 << 30;
		char *p = malloc(n);
		if (p == NULL || before < 0) {
			fprintf(stderr, "big: malloc %p, segment %lld\n", (void *)p, before);
			return 1;
		}
		for (size_t off = 0; off < ((size_t)1 << 20); off += 4096)
			p[off] = 1;
		printf("%lld\n", segment_bytes() - before);
		free(p);
		return 0;
	}
	if (strcmp(mode, "share") == 0) {
		printf("%p\n%p\n%p\n%p\n", hold(64), hold(64), hold((size_t)1 << 20),
		       hold((size_t)1 << 20));
		fflush(stdout);
		char c;
		while (read(0, &c, 1) > 0)
			;
		return 0;
	}
	fprintf(stderr, "usage: region hold|kill|big|share\n");
	return 2;
}
