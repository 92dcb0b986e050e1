/* SPDX-License-Identifier: MIT */
/*
 * Named heaps from exec'd programs, for the heaps suite (check_heaps.c).
 * Each command prints what it did on lines "<what>: <value>" and exits 0
 * when all went as it should, 1 if not, 2 on a usage error.  Commands that
 * "hold" print "ready" and wait for a line on stdin (or its end) before they
 * go on: the suite's synchronisation, no sleeps.
 *
 *   heapprog create NAME LIFETIME MAX       create (p|c|l: persistent, process,
 *                                           last user), exit without closing
 *   heapprog create-hold NAME LIFETIME      create, ready, wait, exit
 *   heapprog open-hold NAME CLOSE           open, ready, wait, close if CLOSE
 *                                           is 1, ready, wait, exit
 *   heapprog open NAME                      open: its rc
 *   heapprog create-fill NAME FIRST COUNT ROOT   create (persistent), then fill
 *   heapprog fill NAME FIRST COUNT ROOT     COUNT blocks FIRST.. in heap NAME,
 *                                           patterned, their index (a block of
 *                                           the heap) published as ROOT
 *   heapprog verify-destroy NAME ROOT...    checks every block of each index,
 *                                           then destroys the heap
 *   heapprog hold4 NAME                     3 000 default blocks held and
 *                                           heap blocks cached; ready, wait;
 *                                           then 30 000 fresh default blocks
 *                                           that must overlap none of them
 *   heapprog limit NAME MAX SIZE            a heap of max_bytes MAX filled with
 *                                           SIZE-byte blocks: how many fit
 *   heapprog names                          names the roots refuse: EINVAL
 *   heapprog try NAME                       create, open, destroy: each rc
 */
#include "shmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Block i's size: mostly small, every 97th 16 KiB to 256 KiB, every
 * 2 000th 1 MiB (so 100 000 blocks are ~200 MiB, 16 B to 1 MiB). */
static size_t block_size(uint64_t i)
{
	if (i % 2000 == 1999)
		return (size_t)1 << 20;
	if (i % 97 == 0)
		return (size_t)16384 << (i / 97 % 5);
	return (size_t)16 << (i % 8) | (size_t)(i * 7 % 16);
}

static uint8_t pat(uint64_t i, size_t k)
{
	return (uint8_t)(i * 131 + k * 7 + (i >> 8));
}

static void fill(uint8_t *p, size_t n, uint64_t i)
{
	/* The first bytes, the last and one a page: cheap, and a block
	 * overlapping another shows it. */
	for (size_t k = 0; k < n; k += k < 64 ? 1 : 4096)
		p[k] = pat(i, k);
	p[n - 1] = pat(i, n - 1);
}

static int check(const uint8_t *p, size_t n, uint64_t i)
{
	for (size_t k = 0; k < n; k += k < 64 ? 1 : 4096)
		if (p[k] != pat(i, k))
			return 0;
	return p[n - 1] == pat(i, n - 1);
}

static int lifetime_of(const char *s)
{
	return s[0] == 'c' ? SHMA_HEAP_PROCESS : s[0] == 'l' ? SHMA_HEAP_LAST_USER
							      : SHMA_HEAP_PERSISTENT;
}

static void wait_line(void)
{
	printf("ready\n");
	fflush(stdout);
	char buf[16];
	if (read(0, buf, sizeof buf) < 0)
		return;
}

static const char *ename(int rc)
{
	const char *n = rc == 0 ? "OK" : strerrorname_np(-rc);
	return n ? n : "?";
}

/* An index of blocks: first, count, then the pointers. */
struct index {
	uint64_t first, count;
	void *blocks[];
};

static int do_fill(const char *name, uint64_t first, uint64_t count, const char *root)
{
	shma_heap_t *h;
	int rc = shma_heap_open(name, &h);
	printf("open: %s\n", ename(rc));
	if (rc != 0)
		return 1;
	struct index *ix = shma_heap_malloc(h, sizeof *ix + count * sizeof(void *));
	if (ix == NULL)
		return printf("index: %s\n", ename(-errno)), 1;
	ix->first = first;
	ix->count = count;
	for (uint64_t j = 0; j < count; j++) {
		uint64_t i = first + j;
		size_t n = block_size(i);
		uint8_t *p = shma_heap_malloc(h, n);
		if (p == NULL)
			return printf("malloc %llu: %s\n", (unsigned long long)i, ename(-errno)), 1;
		if (shma_heap_of(p) != h)
			return printf("heap_of %llu: wrong\n", (unsigned long long)i), 1;
		fill(p, n, i);
		ix->blocks[j] = p;
	}
	rc = shma_publish(root, shma_ref(ix));
	printf("publish: %s\n", ename(rc));
	return rc != 0;
}

static int do_verify_destroy(const char *name, char **roots, int nroots)
{
	shma_heap_t *h;
	int rc = shma_heap_open(name, &h);
	printf("open: %s\n", ename(rc));
	if (rc != 0)
		return 1;
	uint64_t checked = 0, bad = 0;
	for (int r = 0; r < nroots; r++) {
		shma_ref_t ref;
		if (shma_lookup(roots[r], &ref) != 0)
			return printf("lookup %s: missing\n", roots[r]), 1;
		const struct index *ix = shma_ptr(ref);
		for (uint64_t j = 0; j < ix->count; j++, checked++) {
			uint64_t i = ix->first + j;
			if (!check(ix->blocks[j], block_size(i), i) ||
			    shma_heap_of(ix->blocks[j]) != h)
				bad++;
		}
		shma_unpublish(roots[r]);
	}
	size_t bytes = 0, blocks = 0;
	rc = shma_heap_in_use(h, &bytes, &blocks);
	printf("checked: %llu bad: %llu\n", (unsigned long long)checked, (unsigned long long)bad);
	printf("heap in use: %zu bytes %zu blocks (%s)\n", bytes, blocks, ename(rc));
	rc = shma_heap_destroy(h);
	printf("destroy: %s\n", ename(rc));
	shma_heap_t *again;
	int rc2 = shma_heap_open(name, &again);
	printf("open after: %s\n", ename(rc2));
	return bad != 0 || rc != 0 || rc2 != -ENOENT || blocks < checked;
}

struct range {
	uintptr_t start, end;
};

static int by_start(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

#define HELD 3000u
#define FRESH 30000u

static int do_hold4(const char *name)
{
	static struct range held[HELD];
	static void *fresh[FRESH];
	static uint8_t *hp[64];
	for (uint64_t i = 0; i < HELD; i++) {
		size_t n = block_size(i * 13 + 5) > 65536 ? 4096 : block_size(i * 13 + 5);
		uint8_t *p = shma_malloc(n);
		if (p == NULL)
			return printf("held malloc: %s\n", ename(-errno)), 1;
		fill(p, n, 1000000 + i);
		held[i].start = (uintptr_t)p;
		held[i].end = (uintptr_t)p + n;
	}
	shma_heap_t *h;
	int rc = shma_heap_open(name, &h);
	printf("open: %s\n", ename(rc));
	if (rc != 0)
		return 1;
	/* This thread's cache of the heap stocked: a refill's worth taken,
	 * half of it freed into the cache again. */
	for (unsigned k = 0; k < 64; k++)
		if ((hp[k] = shma_heap_malloc(h, 48)) == NULL)
			return printf("heap malloc: %s\n", ename(-errno)), 1;
	for (unsigned k = 0; k < 32; k++)
		shma_free(hp[k]);
	wait_line(); /* the heap is destroyed meanwhile */
	errno = 0;
	void *after = shma_heap_malloc(h, 48);
	printf("heap malloc after destroy: %s\n", after ? "a block" : ename(-errno));
	qsort(held, HELD, sizeof held[0], by_start);
	uint64_t overlaps = 0, damaged = 0;
	for (uint64_t j = 0; j < FRESH; j++) {
		size_t n = block_size(j) > 65536 ? 65536 : block_size(j);
		uint8_t *p = shma_malloc(n);
		if (p == NULL)
			return printf("fresh malloc: %s\n", ename(-errno)), 1;
		fresh[j] = p;
		struct range key = {(uintptr_t)p, 0};
		/* The held block starting last at or before p, and the next. */
		size_t lo = 0, hi = HELD;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (by_start(&held[mid], &key) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0 && held[lo - 1].end > (uintptr_t)p)
			overlaps++;
		if (lo < HELD && held[lo].start < (uintptr_t)p + n)
			overlaps++;
		memset(p, 0xa5, n);
	}
	for (uint64_t i = 0; i < HELD; i++) {
		/* held[] is sorted now: find each block's seed again by its size
		 * is not possible, so check the pattern against every seed's
		 * first byte cheaply: the block keeps its first 64 bytes. */
		const uint8_t *p = (const uint8_t *)held[i].start;
		if (p[0] == 0xa5 && p[1] == 0xa5 && p[2] == 0xa5 && p[3] == 0xa5)
			damaged++;
	}
	for (uint64_t j = 0; j < FRESH; j++)
		shma_free(fresh[j]);
	for (uint64_t i = 0; i < HELD; i++)
		shma_free((void *)held[i].start);
	printf("overlaps: %llu damaged: %llu\n", (unsigned long long)overlaps,
	       (unsigned long long)damaged);
	return after != NULL || overlaps != 0 || damaged != 0;
}

/* A heap of max_bytes max: blocks of size fit until the next would pass
 * max (in the class's bytes: shma_usable_size()), then ENOMEM; one freed,
 * exactly one fits again.  Large blocks the same, by whole pages. */
static int do_limit(const char *name, size_t max, size_t size)
{
	static void *blocks[1 << 16];
	shma_heap_t *h;
	shma_heap_opts_t o = {SHMA_HEAP_PROCESS, max};
	int rc = shma_heap_create(name, &o, &h);
	printf("create: %s\n", ename(rc));
	if (rc != 0)
		return 1;
	size_t n = 0, each = 0;
	void *p;
	while (n < sizeof blocks / sizeof blocks[0] && (p = shma_heap_malloc(h, size)) != NULL) {
		each = shma_usable_size(p);
		blocks[n++] = p;
	}
	int err = errno;
	size_t bytes = 0, nb = 0;
	shma_heap_in_use(h, &bytes, &nb);
	size_t want = each ? max / each : 0;
	printf("fit: %zu of %zu want %zu errno: %s in use: %zu\n", n, each, want,
	       p ? "none" : ename(-err), bytes);
	int ok = p == NULL && err == ENOMEM && n == want && bytes == n * each;
	shma_free(blocks[--n]);
	void *again = shma_heap_malloc(h, size);
	errno = 0;
	void *past = again ? shma_heap_malloc(h, size) : NULL;
	printf("after a free: %s, then %s\n", again ? "fits" : "ENOMEM",
	       past ? "fits" : ename(-errno));
	ok = ok && again != NULL && past == NULL && errno == ENOMEM;
	shma_heap_destroy(h);
	return !ok;
}

static int do_names(void)
{
	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	const char *bad[] = {"", "a\nb", "\x1b[31m", "\xc0\xaf", longname};
	int fails = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		shma_heap_t *h = NULL;
		int rc = shma_heap_create(bad[i], NULL, &h);
		int rc2 = shma_heap_open(bad[i], &h);
		printf("name %zu: create %s open %s\n", i, ename(rc), ename(rc2));
		fails += rc != -EINVAL || rc2 != -EINVAL;
	}
	shma_heap_t *h;
	int rc = shma_heap_create(NULL, NULL, &h);
	printf("name NULL: %s\n", ename(rc));
	return fails != 0 || rc != -EINVAL;
}

static int do_try(const char *name)
{
	shma_heap_t *h = NULL;
	int rc = shma_heap_create(name, NULL, &h);
	printf("create: %s\n", ename(rc));
	int rc2 = shma_heap_open(name, &h);
	printf("open: %s\n", ename(rc2));
	int rc3 = rc2 == 0 ? shma_heap_destroy(h) : -ENOENT;
	printf("destroy: %s\n", ename(rc3));
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	const char *cmd = argv[1];
	if (strcmp(cmd, "create") == 0 && argc == 5) {
		shma_heap_t *h;
		shma_heap_opts_t o = {lifetime_of(argv[3]), strtoull(argv[4], NULL, 0)};
		int rc = shma_heap_create(argv[2], &o, &h);
		printf("create: %s\n", ename(rc));
		return rc != 0;
	}
	if (strcmp(cmd, "create-hold") == 0 && argc == 4) {
		shma_heap_t *h;
		shma_heap_opts_t o = {lifetime_of(argv[3]), 0};
		int rc = shma_heap_create(argv[2], &o, &h);
		printf("create: %s\n", ename(rc));
		if (rc == 0 && shma_heap_malloc(h, 100) == NULL)
			rc = -errno;
		wait_line();
		return rc != 0;
	}
	if (strcmp(cmd, "open-hold") == 0 && argc == 4) {
		shma_heap_t *h;
		int rc = shma_heap_open(argv[2], &h);
		printf("open: %s\n", ename(rc));
		if (rc == 0 && shma_heap_malloc(h, 100) == NULL)
			rc = -errno;
		wait_line();
		if (rc == 0 && atoi(argv[3]) == 1)
			shma_heap_close(h);
		wait_line();
		return rc != 0;
	}
	if (strcmp(cmd, "open") == 0 && argc == 3) {
		shma_heap_t *h;
		int rc = shma_heap_open(argv[2], &h);
		printf("open: %s\n", ename(rc));
		return rc != 0;
	}
	if (strcmp(cmd, "create-fill") == 0 && argc == 6) {
		shma_heap_t *h;
		int rc = shma_heap_create(argv[2], NULL, &h);
		printf("create: %s\n", ename(rc));
		if (rc != 0)
			return 1;
		return do_fill(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
			       argv[5]);
	}
	if (strcmp(cmd, "fill") == 0 && argc == 6)
		return do_fill(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
			       argv[5]);
	if (strcmp(cmd, "verify-destroy") == 0 && argc >= 4)
		return do_verify_destroy(argv[2], argv + 3, argc - 3);
	if (strcmp(cmd, "hold4") == 0 && argc == 3)
		return do_hold4(argv[2]);
	if (strcmp(cmd, "limit") == 0 && argc == 5)
		return do_limit(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (strcmp(cmd, "names") == 0)
		return do_names();
	if (strcmp(cmd, "try") == 0 && argc == 3)
		return do_try(argv[2]);
	return 2;
}
