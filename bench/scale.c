/* SPDX-License-Identifier: MIT */
/*
 * Many processes at once on one allocator: `make bench-scale` (issue 22
 * item 5).
 *
 *   scale N OPS     forks N workers (each execs this program again, so an
 *                   LD_PRELOADed allocator or shmalloc-run's preload library
 *                   starts afresh in each, as in a shell's pipeline), waits
 *                   for all of them and prints one line:
 *                   "scale N OPS SECONDS" (wall time from the first fork to
 *                   the last exit);
 *   scale -w OPS SEED   one worker.
 *
 * A worker's workload is mixed: rounds of a batch of mallocs of sizes from
 * bench/sizes.h's small table (16 B - 32 KiB, log-uniform), each block
 * written at both ends, then the batch freed but for one block in four,
 * which replaces a random block of a table of RETAIN live ones (blocks kept
 * across batches, as a program's longer-lived data).  OPS is the count of
 * malloc+free pairs.  Every block is checked before its free, so an
 * allocator that hands a block out twice fails (exit 1).
 *
 * Built twice: bench/scale on the C library's malloc (run plain, under
 * LD_PRELOAD and under shmalloc-run) and bench/scale_shmalloc with
 * -DSCALE_SHMALLOC, whose workers call shma_malloc/shma_free as library
 * clients of the daemon at $SHMALLOC_SOCKET.
 */
#include "sizes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef SCALE_SHMALLOC
#include <shmalloc.h>
#define ALLOC shma_malloc
#define FREE shma_free
#else
#define ALLOC malloc
#define FREE free
#endif

#define BATCH 64
#define RETAIN 1024

struct block {
	unsigned char *p;
	size_t n;
};

static void mark(struct block *b, uint64_t tag)
{
	b->p[0] = (unsigned char)tag;
	b->p[b->n - 1] = (unsigned char)(tag >> 8);
}

static void release(struct block *b, uint64_t tag)
{
	if (b->p == NULL)
		return;
	if (b->p[0] != (unsigned char)tag || b->p[b->n - 1] != (unsigned char)(tag >> 8)) {
		fprintf(stderr, "scale: block %p of %zu bytes was overwritten\n", (void *)b->p,
			b->n);
		exit(1);
	}
	FREE(b->p);
	b->p = NULL;
}

static int worker(long ops, uint64_t seed)
{
	static struct size_tables t;
	static struct block keep[RETAIN];
	struct block batch[BATCH];
	uint64_t s = seed | 1;
	long done = 0;

	size_tables_fill(&t);
	while (done < ops) {
		for (int i = 0; i < BATCH; i++) {
			struct block *b = &batch[i];
			b->n = t.small[rng_next(&s) % TABLE_SLOTS];
			b->p = ALLOC(b->n);
			if (b->p == NULL) {
				fprintf(stderr, "scale: malloc(%zu) failed\n", b->n);
				return 3;
			}
			mark(b, (uint64_t)(uintptr_t)b->p);
		}
		for (int i = 0; i < BATCH; i++) {
			struct block *b = &batch[i];
			if (i % 4 == 0) {
				struct block *k = &keep[rng_next(&s) % RETAIN];
				release(k, (uint64_t)(uintptr_t)k->p);
				*k = *b;
			} else {
				release(b, (uint64_t)(uintptr_t)b->p);
			}
		}
		done += BATCH;
	}
	for (int i = 0; i < RETAIN; i++)
		release(&keep[i], (uint64_t)(uintptr_t)keep[i].p);
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int launch(int n, const char *ops)
{
	double t0 = now();
	int failed = 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("scale: fork");
			return 2;
		}
		if (pid == 0) {
			char seed[32];
			snprintf(seed, sizeof seed, "%d", i + 1);
			execl("/proc/self/exe", "scale", "-w", ops, seed, (char *)NULL);
			_exit(127);
		}
	}
	int st;
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	if (errno != ECHILD)
		perror("scale: wait");
	printf("scale %d %s %.3f\n", n, ops, now() - t0);
	if (failed)
		fprintf(stderr, "scale: %d workers failed\n", failed);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "-w") == 0)
		return worker(atol(argv[2]), strtoull(argv[3], NULL, 10) * UINT64_C(0x9e3779b97f4a7c15));
	if (argc == 3 && atoi(argv[1]) > 0 && atol(argv[2]) > 0)
		return launch(atoi(argv[1]), argv[2]);
	fprintf(stderr, "usage: scale N OPS | scale -w OPS SEED\n");
	return 2;
}
