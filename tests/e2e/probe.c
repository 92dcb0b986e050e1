/* SPDX-License-Identifier: MIT */
/*
 * A small program of the README's kind, exec'd by the errors and setup
 * suites: it does one thing with the library and prints one line saying how
 * it went, "<what>: <rc> <ERRNO NAME>: <shma_strerror text>", so a test
 * reads what a user would see.  Exit 0 when the call succeeded, 1 when it
 * failed, 2 on a usage error.
 *
 *   probe malloc              shma_malloc(64) (connects on its own)
 *   probe connect             shma_connect(NULL)
 *   probe publish NAME        a block of 64 bytes published under NAME
 *   probe lookup NAME         shma_lookup
 *   probe wait NAME MS        shma_lookup_wait (prints the ref's first bytes)
 *   probe ptr-freed           shma_ptr of the ref of a block just freed
 *   probe stats               shma_stats_json
 *   probe burst MB            MB of small blocks and 8 large ones of 4 MiB,
 *                             written and freed; "burst: freed", then it
 *                             waits idle for a line on stdin, then does it
 *                             again checking that no two blocks overlap
 */
#include "shmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int report(const char *what, int rc)
{
	const char *name = rc == 0 ? "OK" : strerrorname_np(-rc);
	printf("%s: %d %s: %s\n", what, rc, name ? name : "?", shma_strerror(rc));
	return rc == 0 ? 0 : 1;
}

static int do_malloc(void)
{
	char *p = shma_malloc(64);
	if (p == NULL)
		return report("malloc", -errno);
	shma_free(p);
	return report("malloc", 0);
}

static int do_publish(const char *name)
{
	char *p = shma_malloc(64);
	if (p == NULL)
		return report("publish", -errno);
	snprintf(p, 64, "root %s", name);
	int rc = shma_publish(name, shma_ref(p));
	return report("publish", rc);
}

static int do_lookup(const char *name, const char *ms)
{
	shma_ref_t ref = 0;
	int rc = ms ? shma_lookup_wait(name, &ref, atoi(ms)) : shma_lookup(name, &ref);
	if (rc == 0) {
		const char *p = shma_ptr(ref);
		printf("found: %s\n", p ? p : "(null)");
	}
	return report(ms ? "wait" : "lookup", rc);
}

static int do_ptr_freed(void)
{
	char *p = shma_malloc(64);
	if (p == NULL)
		return report("ptr-freed", -errno);
	shma_ref_t ref = shma_ref(p);
	shma_free(p);
	errno = 0;
	void *q = shma_ptr(ref);
	printf("ptr-freed: %s\n", q == NULL ? "NULL" : q == p ? "the block's address" : "another address");
	return 0;
}

#define BURST_LARGE 8

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* Allocates mb MiB of blocks of 16 B to 2 KiB and 8 of 4 MiB, writes
 * them, and frees them; with check, first sorts them and says whether two
 * overlap.  0, or 1 (a malloc failed or blocks overlap). */
static int burst(unsigned mb, int check)
{
	size_t n = 0, cap = (size_t)mb << 11, bytes = 0;
	uintptr_t *v = malloc((cap + BURST_LARGE) * sizeof *v);
	if (v == NULL)
		return 1;
	unsigned s = 12345;
	while (bytes < (size_t)mb << 20 && n < cap) {
		s = s * 1103515245u + 12345u;
		size_t size = 16 + (s >> 8) % 2032;
		char *p = shma_malloc(size);
		if (p == NULL)
			return report("burst", -errno);
		memset(p, 0x5a, size);
		v[n++] = (uintptr_t)p;
		bytes += size;
	}
	for (unsigned i = 0; i < BURST_LARGE; i++) {
		char *p = shma_malloc((size_t)4 << 20);
		if (p == NULL)
			return report("burst", -errno);
		memset(p, 0xa5, (size_t)4 << 20);
		v[n++] = (uintptr_t)p;
	}
	int bad = 0;
	if (check) {
		uintptr_t *sorted = malloc(n * sizeof *sorted);
		if (sorted == NULL)
			return 1;
		memcpy(sorted, v, n * sizeof *v);
		qsort(sorted, n, sizeof *sorted, cmp_ptr);
		for (size_t i = 1; i < n; i++)
			if (sorted[i - 1] + shma_usable_size((void *)sorted[i - 1]) > sorted[i])
				bad = 1;
		free(sorted);
	}
	for (size_t i = 0; i < n; i++)
		shma_free((void *)v[i]);
	free(v);
	if (bad)
		printf("burst: blocks overlap\n");
	return bad;
}

/* A burst, then idle (nothing asked of the library) until told, then
 * another burst over what decay gave back meanwhile. */
static int do_burst(const char *mb)
{
	if (burst((unsigned)atoi(mb), 0) != 0)
		return 1;
	printf("burst: freed\n");
	char line[16];
	if (fgets(line, sizeof line, stdin) == NULL)
		return 1;
	if (burst((unsigned)atoi(mb), 1) != 0)
		return 1;
	return report("burst", 0);
}

static int do_stats(void)
{
	char *json;
	int rc = shma_stats_json(&json);
	if (rc == 0)
		free(json);
	return report("stats", rc);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "malloc") == 0)
		return do_malloc();
	if (strcmp(cmd, "connect") == 0)
		return report("connect", shma_connect(NULL));
	if (strcmp(cmd, "publish") == 0 && argc == 3)
		return do_publish(argv[2]);
	if (strcmp(cmd, "lookup") == 0 && argc == 3)
		return do_lookup(argv[2], NULL);
	if (strcmp(cmd, "wait") == 0 && argc == 4)
		return do_lookup(argv[2], argv[3]);
	if (strcmp(cmd, "ptr-freed") == 0)
		return do_ptr_freed();
	if (strcmp(cmd, "stats") == 0)
		return do_stats();
	if (strcmp(cmd, "burst") == 0 && argc == 3)
		return do_burst(argv[2]);
	fprintf(stderr, "usage: probe malloc|connect|publish N|lookup N|wait N MS|ptr-freed|stats|burst MB\n");
	return 2;
}
