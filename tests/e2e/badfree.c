/* SPDX-License-Identifier: MIT */
/*
 * A program that makes one bad free, exec'd by the badfree suite (a bad
 * free aborts by default, so each case is a process of its own):
 *   badfree CASE      interior, interior16, double, large-double,
 *                     large-interior, local, realloc-freed,
 *                     double-after-flush (the first free's block back in
 *                     the daemon before the second): prints
 *                     "pointer 0x..." (the one it frees wrongly), makes the
 *                     bad free, then -- if still alive (SHMALLOC_CHECK=warn)
 *                     -- allocates many blocks of every kind, all live at
 *                     once, and exits 0 only if none overlaps another or
 *                     the live block the case keeps
 *   badfree hold NAME mallocs 64 bytes, publishes the block's ref as NAME,
 *                     frees it (so it sits in this process's cache), prints
 *                     "freed", then waits for EOF on stdin
 *   badfree refree NAME   frees the block NAME names (a double free across
 *                     processes), then as the cases above
 *   badfree clean     no bad free: blocks of every size freed, allocated
 *                     again (from the caches, their freed mark on them) and
 *                     freed again, by malloc, calloc, realloc and
 *                     aligned_alloc; must say nothing
 */
#include "shmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MANY 3000

struct span {
	uintptr_t at;
	size_t len;
};

static int by_at(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* Allocates MANY blocks (16 B to 1 MiB, all live) beside the live block
 * keep (NULL: none): 0 if no two of them overlap and every byte written is
 * read back. */
static int none_overlap(const void *keep, size_t keep_len)
{
	static struct span s[MANY + 1];
	size_t n = 0;
	for (int i = 0; i < MANY; i++) {
		size_t len = i % 100 == 0 ? (size_t)1 << 20 : (size_t)(16 + (i * 37) % 2000);
		if (i % 3 == 0)
			len = 64; /* the class of the cases' block */
		unsigned char *p = shma_malloc(len);
		if (p == NULL) {
			fprintf(stderr, "malloc(%zu) failed\n", len);
			return 1;
		}
		memset(p, (unsigned char)i, len);
		s[n++] = (struct span){(uintptr_t)p, len};
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = (const void *)s[i].at;
		for (size_t k = 0; k < s[i].len; k += 61)
			if (p[k] != (unsigned char)i) {
				fprintf(stderr, "block %p was written by another\n", (void *)p);
				return 1;
			}
	}
	if (keep != NULL)
		s[n++] = (struct span){(uintptr_t)keep, keep_len};
	qsort(s, n, sizeof *s, by_at);
	for (size_t i = 1; i < n; i++)
		if (s[i].at < s[i - 1].at + s[i - 1].len) {
			fprintf(stderr, "overlap: %p (%zu bytes) and %p\n", (void *)s[i - 1].at,
				s[i - 1].len, (void *)s[i].at);
			return 1;
		}
	printf("no overlap in %zu blocks\n", n);
	for (size_t i = 0; i < n; i++)
		if ((const void *)s[i].at != keep)
			shma_free((void *)s[i].at);
	return 0;
}

/* Good frees of the cases' class first: the first free of a process takes
 * the slow path (it sets the fast path's key and reciprocals), and the bad
 * free must meet the fast path's tests. */
static void warm_up(void)
{
	for (int i = 0; i < 4; i++)
		shma_free(shma_malloc(64));
}

static void say(const void *p)
{
	printf("pointer %p\n", p);
	fflush(stdout);
}

static int hold(const char *name)
{
	char *p = shma_malloc(64);
	if (p == NULL || shma_publish(name, shma_ref(p)) != 0)
		return 2;
	shma_free(p);
	printf("freed\n");
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

static int refree(const char *name)
{
	shma_ref_t ref;
	if (shma_lookup(name, &ref) != 0)
		return 2;
	char *p = shma_ptr(ref);
	warm_up();
	say(p);
	shma_free(p);
	/* Refused: the block is in the other process's cache, so none of ours
	 * may be it. */
	return none_overlap(p, 64);
}

/* Every free here is good: the freed mark of a block taken again from a
 * cache must be gone, whichever call handed it out. */
static int clean(void)
{
	for (int round = 0; round < 3; round++) {
		for (size_t len = 1; len <= ((size_t)2 << 20); len = len * 5 / 4 + 1) {
			void *p[4] = {shma_malloc(len), shma_calloc(1, len),
				      shma_realloc(shma_malloc(8), len), shma_aligned_alloc(64, len)};
			for (int i = 0; i < 4; i++) {
				if (p[i] == NULL)
					return 2;
				shma_free(p[i]);
			}
		}
		if (none_overlap(NULL, 0) != 0)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *c = argv[1];
	if (strcmp(c, "hold") == 0 && argc == 3)
		return hold(argv[2]);
	if (strcmp(c, "refree") == 0 && argc == 3)
		return refree(argv[2]);
	if (strcmp(c, "clean") == 0)
		return clean();
	char *p = shma_malloc(64);
	if (p == NULL)
		return 2;
	memset(p, 0x5a, 64);
	warm_up();
	int local = 0;
	if (strcmp(c, "interior") == 0 || strcmp(c, "interior16") == 0) {
		char *q = p + (c[8] ? 16 : 8);
		say(q);
		shma_free(q);
		return none_overlap(p, 64); /* p is live still */
	}
	if (strcmp(c, "double") == 0) {
		say(p);
		shma_free(p);
		shma_free(p);
		return none_overlap(NULL, 0);
	}
	if (strcmp(c, "double-after-flush") == 0) {
		char *keep = shma_malloc(64); /* its span stays a span */
		say(p);
		shma_free(p);
		shma_disconnect(); /* every cache back to the daemon */
		shma_free(p);
		return none_overlap(keep, 64);
	}
	if (strcmp(c, "large-double") == 0 || strcmp(c, "large-interior") == 0) {
		char *q = shma_malloc((size_t)1 << 20);
		if (q == NULL)
			return 2;
		memset(q, 0x33, (size_t)1 << 20);
		if (c[6] == 'i') {
			say(q + 8);
			shma_free(q + 8);
			return none_overlap(q, (size_t)1 << 20);
		}
		say(q);
		shma_free(q);
		shma_free(q);
		return none_overlap(p, 64);
	}
	if (strcmp(c, "local") == 0) {
		say(&local);
		shma_free(&local);
		return none_overlap(p, 64);
	}
	if (strcmp(c, "realloc-freed") == 0) {
		say(p);
		shma_free(p);
		if (shma_realloc(p, 200) != NULL)
			return 3;
		return none_overlap(NULL, 0);
	}
	return 2;
}
