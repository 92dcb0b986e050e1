/* SPDX-License-Identifier: MIT */
/*
 * The preload module's copy of the heap at fork (preload.c's header says
 * why the child gets one): the pages of each mapping of the heap that are
 * in the parent's page table go into private anonymous memory before the
 * fork, which fork() hands to the child copy-on-write; the child moves them
 * over the heap's addresses, the parent drops them.
 */
#include "config.h"

#include "client.h"
#include "preload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Which pages of [at, at + n pages) to copy, one byte each (bit 0): with
 * all, those resident in the segment (mincore); else those in our page
 * table, present or swapped (/proc/self/pagemap), or mincore's if that
 * could not be read. */
static void pages_to_copy(char *at, size_t n, int all, int pagemap, unsigned char *vec)
{
	if (!all && pagemap >= 0) {
		uint64_t ent[256];
		off_t pos = (off_t)((uintptr_t)at / PAGE * sizeof ent[0]);
		if (pread(pagemap, ent, n * sizeof ent[0], pos) == (ssize_t)(n * sizeof ent[0])) {
			for (size_t i = 0; i < n; i++)
				vec[i] = (ent[i] >> 62) != 0; /* bit 63 present, 62 swapped */
			return;
		}
	}
	if (mincore(at, n * PAGE, vec) != 0)
		memset(vec, 1, n); /* cannot tell: copy them all */
}

/* The copies the prepare handler made, one per mapping of the heap (the
 * arenas' metadata, the arenas), which the child puts in place and the
 * parent drops.  Only the forking thread touches them: the connection's
 * lock is held from before our prepare handler to after our parent's. */
#define FORK_COPIES 4
static struct fork_copy {
	char *base, *copy;
	size_t len;
} fork_copies[FORK_COPIES];
static int fork_ncopies;
static int fork_pagemap = -1;

/* Copies n bytes at from of the mapping at base into copy. */
static void copy_run(char *copy, const char *base, size_t from, size_t n)
{
#ifdef MADV_POPULATE_WRITE
	/* A long run's pages at once, not a fault each (Linux 5.14; where it
	 * fails, memcpy faults them in). */
	if (n >= 4 * PAGE)
		(void)madvise(copy + from, n, MADV_POPULATE_WRITE);
#endif
	memcpy(copy + from, base + from, n);

}

/* PAGEMAP_SCAN (Linux 6.7) names the runs of pages in our page table and
 * skips the holes whole: reading pagemap costs a word per page, and the
 * heap's range is mostly holes.  The ABI, for older headers: */
#ifndef PAGEMAP_SCAN
struct page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#endif

/* Copies the runs of [base, base + len) present or swapped in our page
 * table; -1 if the kernel cannot say (then nothing is known copied). */
static int copy_scanned(char *base, size_t len, char *copy)
{
	struct page_region r[64];
	uint64_t at = (uintptr_t)base, end = at + len;
	while (at < end) {
		struct pm_scan_arg a = {
			.size = sizeof a, .start = at, .end = end, .vec = (uintptr_t)r,
			.vec_len = sizeof r / sizeof r[0],
			.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		};
		long n = fork_pagemap >= 0 ? ioctl(fork_pagemap, PAGEMAP_SCAN, &a) : -1;
		if (n < 0 || a.walk_end <= at || a.walk_end > end)
			return -1;
		for (long i = 0; i < n; i++) {
			if (r[i].start < (uintptr_t)base || r[i].end > end || r[i].start >= r[i].end)
				return -1;
			copy_run(copy, base, r[i].start - (uintptr_t)base, r[i].end - r[i].start);
		}
		at = a.walk_end;
	}
	return 0;
}

/* Copies the pages of [base, base + len) that may hold this process's data
 * into private anonymous memory, which fork() gives the child copy-on-write;
 * the others read as zero in the copy.  The limit: a page of the segment
 * that the kernel swapped out is in no page table, and reads as zero too. */
static int copy_mapping(void *base, size_t len, int all, void *arg)
{
	(void)arg;
	/* Not the arenas' metadata (all): the child reads it where it is,
	 * read-only (see fork_child()); copying it cost every fork its
	 * resident pages, the more the more arenas any program of the daemon
	 * had made (1.1 ms a fork once a 1.5 GB program had run). */
	if (len == 0 || all)
		return 0;
	if (fork_ncopies == FORK_COPIES)
		return -ENOSPC;
	char *copy = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (copy == MAP_FAILED)
		return -errno;
	fork_copies[fork_ncopies++] = (struct fork_copy){base, copy, len};
	if (!all && copy_scanned(base, len, copy) == 0)
		return 0;
	unsigned char vec[256];
	const size_t chunk = sizeof vec * PAGE;
	for (size_t off = 0; off < len; off += chunk) {
		size_t bytes = len - off < chunk ? len - off : chunk;
		size_t pages = (bytes + PAGE - 1) / PAGE;
		pages_to_copy((char *)base + off, pages, all, fork_pagemap, vec);
		for (size_t i = 0; i < pages;) {
			if (!(vec[i] & 1)) {
				i++;
				continue;
			}
			size_t j = i;
			while (j < pages && (vec[j] & 1))
				j++;
			size_t from = off + i * PAGE, n = (j - i) * PAGE;
			copy_run(copy, base, from, from + n > len ? len - from : n);
			i = j;
		}
	}
	return 0;
}

void fork_drop_copies(void)
{
	for (int i = 0; i < fork_ncopies; i++)
		munmap(fork_copies[i].copy, fork_copies[i].len);
	fork_ncopies = 0;
}

int fork_copy_heap(void)
{
	fork_ncopies = 0;
	fork_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int rc = map_each_mapping(copy_mapping, NULL);
	if (fork_pagemap >= 0)
		close(fork_pagemap);
	fork_pagemap = -1;
	return rc;
}

int fork_place_copies(char **end)
{
	int rc = 0;
	for (int i = 0; i < fork_ncopies; i++) {
		struct fork_copy *c = &fork_copies[i];
		if (mremap(c->copy, c->len, c->len, MREMAP_MAYMOVE | MREMAP_FIXED, c->base) ==
		    MAP_FAILED) {
			if (rc == 0)
				rc = -errno;
			munmap(c->copy, c->len);
		} else {
			*end = c->base + c->len;
		}
	}
	fork_ncopies = 0;
	return rc;
}

