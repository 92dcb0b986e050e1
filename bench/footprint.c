/* SPDX-License-Identifier: MIT */
/*
 * bench/footprint: where the bytes of bench (e) go.  Runs the churn of (e)
 * (the same sizes, seed and steps as bench/tests.c) against a running
 * shmallocd ($SHMALLOC_SOCKET) and, after each step, accounts for every byte
 * the instance's segments hold in /dev/shm: per size class, the bytes the
 * program asked for, the rounding up to the class, the blocks this thread
 * caches, the free objects of partial spans and the tail of each span; then
 * pages reserved but free (not yet decayed), large blocks, the metadata and
 * the control block.  A byte count, exact, not a timing: one run says it.
 *
 * It links the library's internals (libshmclient) to read its own thread's
 * bins and large-block cache; nothing here is on any path a program takes.
 * Usage: bench/footprint [--classes] [--idle-wait MS]
 */
#include "config.h"

#include "sizes.h"

#include "client.h"
#include "shmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SLOTS 8192
#define OPS 100000

static struct size_tables tables;
static void *block[SLOTS];
static size_t block_size[SLOTS];
static int show_classes;

/* The tables of bench/tests.c, drawn in the same order. */
static void tables_init(void)
{
	size_tables_fill(&tables);
}

static void replace(long i, uint64_t *s)
{
	size_t size = tables.small[rng_next(s) % TABLE_SLOTS];

	shma_free(block[i]);
	block[i] = shma_malloc(size);
	block_size[i] = size;
	if (block[i] == NULL) {
		perror("shma_malloc");
		exit(1);
	}
	memset(block[i], 0xa5, size);
}

/* st_blocks of the instance's segment of kind k ('p', 'M', 'm', 'c' any
 * control block), bytes. */
static int64_t seg_bytes(const char *instance, char k)
{
	char prefix[128];
	int64_t sum = 0;
	size_t plen = (size_t)snprintf(prefix, sizeof prefix, "shmalloc.%s.%c", instance, k);
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	struct stat st;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, prefix, plen) == 0 &&
		    (k == 'c' || e->d_name[plen] == '\0') &&
		    fstatat(dirfd(d), e->d_name, &st, 0) == 0)
			sum += (int64_t)st.st_blocks * 512;
	closedir(d);
	return sum;
}

struct seg_bytes {
	int64_t p, meta, manifest, control;
};

static void seg_all(const char *instance, struct seg_bytes *b)
{
	b->p = seg_bytes(instance, 'p');
	b->meta = seg_bytes(instance, 'M');
	b->manifest = seg_bytes(instance, 'm');
	b->control = seg_bytes(instance, 'c');
}

static double mib(double bytes)
{
	return bytes / 1048576.0;
}

static void account(const char *stage, const struct seg_bytes *base)
{
	Shma__Response *resp = NULL;
	conn_lock();
	int rc = stats_fetch(&resp);
	if (rc < 0 || resp == NULL || resp->body_case != SHMA__RESPONSE__BODY_STATS) {
		fprintf(stderr, "stats: %s\n", shma_strerror(rc));
		exit(1);
	}
	const Shma__StatsReply *r = resp->stats;
	struct seg_bytes now;
	seg_all(r->instance, &now);

	uint64_t live_n[SIZECLASS_COUNT] = {0}, live_b[SIZECLASS_COUNT] = {0};
	for (long i = 0; i < SLOTS; i++)
		if (block[i] != NULL) {
			unsigned c = sizeclass_of(block_size[i]);
			live_n[c]++;
			live_b[c] += block_size[i];
		}
	uint64_t cached_n[SIZECLASS_COUNT] = {0};
	struct tcache *t = tcache_self;
	if (t != NULL && t->slot != NULL)
		for (unsigned c = 0; c < SIZECLASS_COUNT; c++)
			cached_n[c] = t->slot->bins[c].count;

	double live = 0, round = 0, cached = 0, inflight = 0, freeobj = 0, tail = 0, spans = 0;
	if (show_classes)
		printf("  %-7s %5s %8s %8s %8s %8s %8s %8s %8s (KiB)\n", "class", "spans",
		       "span", "live", "round", "cached", "free", "tail", "other");
	for (size_t k = 0; k < r->n_classes; k++) {
		const Shma__ClassStats *cs = r->classes[k];
		unsigned c = cs->size_class;
		if (c >= SIZECLASS_COUNT)
			continue;
		double sz = (double)sizeclass_size(c);
		double sb = (double)sizeclass_table[c].span_pages * SHMA_PAGE_SIZE;
		double s_live = (double)live_b[c], s_round = (double)live_n[c] * sz - s_live;
		double s_cached = (double)cached_n[c] * sz;
		double s_other = ((double)cs->objects_out - (double)live_n[c] -
				  (double)cached_n[c]) * sz;
		double s_free = (double)(cs->objects_total - cs->objects_out) * sz;
		double s_tail = (double)cs->spans * (sb - sizeclass_table[c].objects * sz);
		live += s_live;
		round += s_round;
		cached += s_cached;
		inflight += s_other;
		freeobj += s_free;
		tail += s_tail;
		spans += (double)cs->spans * sb;
		if (show_classes && cs->spans > 0)
			printf("  %7u %5llu %8.0f %8.0f %8.0f %8.0f %8.0f %8.0f %8.0f\n",
			       (unsigned)sz, (unsigned long long)cs->spans, sb / 1024,
			       s_live / 1024, s_round / 1024, s_cached / 1024, s_free / 1024,
			       s_tail / 1024, s_other / 1024);
	}
	double large = (double)r->large_bytes;
	double lkept = 0;
	struct control_block *cb = conn_control();
	if (cb != NULL)
		for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++)
			if (cb->hdr.large[i].ref != 0)
				lkept += (double)cb->hdr.large[i].size;
	double freepages = (double)now.p - spans - large;
	int64_t total = now.p + now.meta + now.manifest + now.control;
	int64_t btotal = base->p + base->meta + base->manifest + base->control;
	double foot = (double)(total - btotal);

	printf("%s: footprint %.2f MiB over the baseline, live %.2f MiB: %.3fx\n", stage,
	       mib(foot), mib(live), live > 0 ? foot / live : 0);
	printf("  live (asked for)              %8.2f MiB\n", mib(live));
	printf("  rounding up to the class      %8.2f\n", mib(round));
	printf("  in this thread's cache        %8.2f\n", mib(cached));
	printf("  out, neither live nor cached  %8.2f (refills asked ahead, flushes in flight)\n",
	       mib(inflight));
	printf("  free objects in spans         %8.2f\n", mib(freeobj));
	printf("  span tails                    %8.2f\n", mib(tail));
	printf("  large blocks                  %8.2f (of them kept by this process %.2f)\n",
	       mib(large), mib(lkept));
	printf("  free pages still reserved     %8.2f\n", mib(freepages));
	printf("  metadata M                    %8.2f (baseline %.2f)\n", mib((double)now.meta),
	       mib((double)base->meta));
	printf("  control block                 %8.2f (baseline %.2f)\n",
	       mib((double)now.control), mib((double)base->control));
	printf("  manifest                      %8.2f (baseline %.2f)\n",
	       mib((double)now.manifest), mib((double)base->manifest));
	printf("  pages segment p               %8.2f (baseline %.2f)\n", mib((double)now.p),
	       mib((double)base->p));
	conn_done();
	conn_unlock();
	fflush(stdout);
}

static void idle(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	long idle_ms = 3000;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--classes") == 0)
			show_classes = 1;
		else if (strcmp(argv[i], "--idle-wait") == 0 && i + 1 < argc)
			idle_ms = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--classes] [--idle-wait MS]\n", argv[0]);
			return 2;
		}
	}
	int rc = shma_connect(NULL);
	if (rc < 0) {
		fprintf(stderr, "shma_connect: %s\n", shma_strerror(rc));
		return 1;
	}
	tables_init();
	Shma__Response *resp = NULL;
	conn_lock();
	if (stats_fetch(&resp) < 0 || resp->body_case != SHMA__RESPONSE__BODY_STATS)
		return 1;
	char instance[64];
	snprintf(instance, sizeof instance, "%s", resp->stats->instance);
	conn_done();
	conn_unlock();
	struct seg_bytes base;
	seg_all(instance, &base);

	uint64_t s = SEED ^ 0xe;
	for (long i = 0; i < SLOTS; i++)
		replace(i, &s);
	for (long j = 0; j < OPS; j++)
		replace((long)(rng_next(&s) % SLOTS), &s);
	account("after churn (8192 live)", &base);
	for (long i = 0; i < SLOTS; i++) {
		if (rng_next(&s) % 4 == 0)
			continue;
		shma_free(block[i]);
		block[i] = NULL;
	}
	account("three in four freed", &base);
	for (long i = 0; i < SLOTS; i++) {
		shma_free(block[i]);
		block[i] = NULL;
	}
	idle(idle_ms);
	account("all freed, idle", &base);
	shma_disconnect();
	return 0;
}
