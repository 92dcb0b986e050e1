/* SPDX-License-Identifier: MIT */
/*
 * shmalloc itself: one heap, owned by one shmallocd, shared by every process.
 *
 * run-bench.sh starts a daemon per test with --name $SHMALLOC_BENCH_INSTANCE
 * and exports SHMALLOC_SOCKET.  Workers forked after be_setup connected rely
 * on the library's fork rule (the child drops inherited caches and
 * reconnects on first use).  A block passes between processes as its
 * shma_ref_t.  The footprint is what the instance's segments hold in
 * /dev/shm, the same bytes `du /dev/shm` would count.
 */
#include "config.h"

#include "bench.h"

#include <shmalloc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * HOOK: the fraction of mallocs that waited on the daemon.  When the daemon's
 * stats JSON carries these two counters (summed over every place they occur,
 * e.g. once per client, and cumulative), the report prints waits/mallocs for
 * each test; until then it prints nothing.  Rename here if the library
 * settles on other names.
 */
#define STATS_KEY_MALLOCS "\"malloc_calls\""
#define STATS_KEY_WAITS "\"malloc_waits\""

static struct bench_counters at_begin;
static int have_begin;

static const char *instance(void)
{
	const char *name = getenv("SHMALLOC_BENCH_INSTANCE");

	return name ? name : "bench";
}

const char *be_name(void)
{
	return "shmalloc";
}

int be_shared(void)
{
	return 1;
}

int be_setup(char *why, size_t len)
{
	int rc = shma_connect(NULL);

	if (rc < 0)
		snprintf(why, len, "shma_connect(%s): %s",
			 getenv("SHMALLOC_SOCKET") ? getenv("SHMALLOC_SOCKET") : "default",
			 shma_strerror(rc));
	return rc;
}

void be_teardown(void)
{
	shma_disconnect();
}

int be_attach(void)
{
	return 0; /* the first shma_malloc() connects, as under the preload library */
}

void *be_malloc(size_t size)
{
	return shma_malloc(size);
}

void be_free(void *p)
{
	shma_free(p);
}

uint64_t be_to_msg(void *p)
{
	return shma_ref(p);
}

void *be_from_msg(uint64_t msg)
{
	return shma_ptr(msg);
}

int64_t be_footprint(void)
{
	char prefix[128];

	snprintf(prefix, sizeof prefix, "shmalloc.%s.", instance());
	return bench_shm_bytes(prefix);
}

int be_detach(void)
{
	shma_disconnect();
	return 0;
}

void be_describe(char *out, size_t len)
{
	snprintf(out, len, "heap\tone shmallocd, instance %s (/dev/shm)\n", instance());
}

/* Sums the numbers that follow every occurrence of key in json. */
static double sum_key(const char *json, const char *key)
{
	double sum = 0;

	for (const char *p = strstr(json, key); p; p = strstr(p + 1, key)) {
		const char *v = p + strlen(key);

		while (*v == ' ' || *v == ':')
			v++;
		sum += strtod(v, NULL);
	}
	return sum;
}

/* Reads both counters; 0 when the daemon reports them. */
static int read_counters(struct bench_counters *c)
{
	char *json = NULL;

	if (shma_stats_json(&json) < 0 || json == NULL)
		return -1;
	if (strstr(json, STATS_KEY_MALLOCS) == NULL || strstr(json, STATS_KEY_WAITS) == NULL) {
		free(json);
		return -1;
	}
	c->mallocs = sum_key(json, STATS_KEY_MALLOCS);
	c->waits = sum_key(json, STATS_KEY_WAITS);
	free(json);
	return 0;
}

void be_counters_begin(void)
{
	have_begin = read_counters(&at_begin) == 0;
}

void be_counters_end(struct bench_counters *c)
{
	struct bench_counters now;

	c->mallocs = 0;
	c->waits = 0;
	if (!have_begin || read_counters(&now) < 0)
		return;
	c->mallocs = now.mallocs - at_begin.mallocs;
	c->waits = now.waits - at_begin.waits;
}
