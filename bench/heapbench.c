/* SPDX-License-Identifier: MIT */
/*
 * Named heaps in `make bench` (issue 17): the fast loop of (s) -- batches of
 * 64-120 B blocks that stay in the thread's cache, allocated then freed --
 * with shma_malloc and with shma_heap_malloc beside it, and the time a
 * destroy of a heap of 1M blocks takes.  Against the daemon $SHMALLOC_SOCKET
 * names; one line per figure, "name<TAB>value<TAB>unit<TAB>what".
 */
#include "shmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define ROUNDS 200000
#define DESTROY_BLOCKS 1000000

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t size_of(unsigned i)
{
	return 64 + (i * 8) % 57;
}

/* ns per malloc+free pair: heap NULL is shma_malloc. */
static double fast_loop(shma_heap_t *h, unsigned rounds)
{
	void *p[BATCH];
	int64_t t0 = now_ns();
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < BATCH; i++) {
			p[i] = h ? shma_heap_malloc(h, size_of(i)) : shma_malloc(size_of(i));
			if (p[i] == NULL) {
				fprintf(stderr, "heapbench: malloc: %s\n", strerror(errno));
				exit(1);
			}
			*(volatile char *)p[i] = (char)i;
		}
		for (unsigned i = 0; i < BATCH; i++)
			shma_free(p[i]);
	}
	return (double)(now_ns() - t0) / ((double)rounds * BATCH);
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : ROUNDS;
	size_t nblocks = argc > 2 ? (size_t)atol(argv[2]) : DESTROY_BLOCKS;
	char name[64];
	snprintf(name, sizeof name, "heapbench.%ld", (long)getpid());
	shma_heap_t *h;
	int rc = shma_heap_create(name, NULL, &h);
	if (rc != 0) {
		fprintf(stderr, "heapbench: create: %s\n", shma_strerror(rc));
		return 1;
	}
	fast_loop(NULL, rounds / 10 + 1); /* warm both caches */
	fast_loop(h, rounds / 10 + 1);
	double d = fast_loop(NULL, rounds), n = fast_loop(h, rounds);
	double d2 = fast_loop(NULL, rounds), n2 = fast_loop(h, rounds);
	d = d2 < d ? d2 : d;
	n = n2 < n ? n2 : n;
	printf("fast_default\t%.2f\tns\tshma_malloc+shma_free, 64-120 B, (s)'s loop\n", d);
	printf("fast_heap\t%.2f\tns\tshma_heap_malloc+shma_free, the same\n", n);
	printf("fast_ratio\t%.2f\tx\theap over default (goal: 1.2 at most)\n", n / d);
	for (size_t i = 0; i < nblocks; i++)
		if (shma_heap_malloc(h, 16 + (i % 7) * 8) == NULL) {
			fprintf(stderr, "heapbench: fill: %s\n", strerror(errno));
			return 1;
		}
	size_t bytes = 0, blocks = 0;
	shma_heap_in_use(h, &bytes, &blocks);
	int64_t t0 = now_ns();
	rc = shma_heap_destroy(h);
	double ms = (double)(now_ns() - t0) / 1e6;
	if (rc != 0) {
		fprintf(stderr, "heapbench: destroy: %s\n", shma_strerror(rc));
		return 1;
	}
	printf("destroy_1m\t%.2f\tms\tshma_heap_destroy of %zu blocks (%zu bytes), round trip\n", ms,
	       blocks, bytes);
	return 0;
}
