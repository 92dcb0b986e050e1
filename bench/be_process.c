/* SPDX-License-Identifier: MIT */
/*
 * The process-local peers: glibc, jemalloc, mimalloc, tcmalloc.
 *
 * This file is compiled once per peer with one of BE_GLIBC, BE_JEMALLOC,
 * BE_MIMALLOC or BE_TCMALLOC defined.  jemalloc and tcmalloc are linked so
 * that they replace malloc itself (Debian builds them unprefixed), and
 * be_describe asks each for its version, which proves the right allocator
 * answered; mimalloc and tcmalloc are called by their own names.  Each
 * process has its heap: a block passes between threads as a plain pointer,
 * and the footprint is the resident set.
 */
#include "config.h"

#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(BE_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define NAME "jemalloc"
#define ALLOC(n) malloc(n)
#define FREE(p) free(p)
#elif defined(BE_MIMALLOC)
#include <mimalloc.h>
#define NAME "mimalloc"
#define ALLOC(n) mi_malloc(n)
#define FREE(p) mi_free(p)
#elif defined(BE_TCMALLOC)
#include <gperftools/tcmalloc.h>
#define NAME "tcmalloc"
#define ALLOC(n) tc_malloc(n)
#define FREE(p) tc_free(p)
#elif defined(BE_GLIBC)
#include <gnu/libc-version.h>
#define NAME "glibc"
#define ALLOC(n) malloc(n)
#define FREE(p) free(p)
#else
#error "define one of BE_GLIBC, BE_JEMALLOC, BE_MIMALLOC, BE_TCMALLOC"
#endif

const char *be_name(void)
{
	return NAME;
}

int be_shared(void)
{
	return 0;
}

int be_setup(char *why, size_t len)
{
	(void)why;
	(void)len;
	return 0;
}

void be_teardown(void)
{
}

int be_attach(void)
{
	return 0;
}

void *be_malloc(size_t size)
{
	return ALLOC(size);
}

void be_free(void *p)
{
	FREE(p);
}

uint64_t be_to_msg(void *p)
{
	return (uint64_t)(uintptr_t)p;
}

void *be_from_msg(uint64_t msg)
{
	return (void *)(uintptr_t)msg;
}

int64_t be_footprint(void)
{
	return bench_rss();
}

int be_detach(void)
{
	return -ENOTSUP;
}

static const char *version(void)
{
#if defined(BE_JEMALLOC)
	const char *v = "?";
	size_t len = sizeof v;

	return mallctl("version", &v, &len, NULL, 0) == 0 ? v : "? (mallctl failed)";
#elif defined(BE_MIMALLOC)
	static char v[16];

	snprintf(v, sizeof v, "%d", mi_version());
	return v;
#elif defined(BE_TCMALLOC)
	return tc_version(NULL, NULL, NULL);
#else
	return gnu_get_libc_version();
#endif
}

void be_describe(char *out, size_t len)
{
	snprintf(out, len, "version\t%s\nheap\tone per process (RSS)\n", version());
}

void be_counters_begin(void)
{
}

void be_counters_end(struct bench_counters *c)
{
	c->mallocs = 0;
	c->waits = 0;
}
