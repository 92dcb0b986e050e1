/* SPDX-License-Identifier: MIT */
/*
 * Multi-threaded allocation workloads for `make bench-programs`.
 *
 * A plain program on the C library's malloc, run under each allocator the
 * way the real programs are (LD_PRELOAD, or shmalloc-run): it calls nothing
 * but the malloc family, so what it measures is the allocator's behaviour
 * under threads, in three shapes the field uses:
 *
 *   random   THREADS OPS   each thread keeps a table of live blocks and, OPS
 *                          times, frees a random one and allocates another
 *                          of a random size (mostly small, some to 64 KiB);
 *   prodcons PAIRS OPS     PAIRS producer threads allocate and fill blocks
 *                          and pass them through one bounded queue to PAIRS
 *                          consumer threads, which check and free them:
 *                          every free is of another thread's block;
 *   pool     THREADS TASKS a pool of THREADS workers takes TASKS tasks from
 *                          a queue; each builds a list of strings and a
 *                          hash table, looks things up, and frees it all;
 *   simple   THREADS ROUNDS the shape of glibc's bench-malloc-simple: each
 *                          thread, ROUNDS times, for 25, 100, 400 and 1600
 *                          blocks of each size 16 B .. 256 B, allocates
 *                          them all and frees them all (the fast path
 *                          alone: malloc and free as the wrapper sees them);
 *   thread   THREADS OPS   the shape of glibc's bench-malloc-thread: each
 *                          thread, OPS times, frees a random block of its
 *                          own working set of 4096 and allocates another of
 *                          16 B .. 1 KiB.
 *
 * Every block is written and read back, so an allocator that hands a block
 * out twice fails the check; it prints one line, a checksum that is the
 * same under every allocator, and exits 0 (1 on a wrong byte, 2 on a bad
 * command line, 3 when malloc fails).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a per-thread random generator (xorshift64*) ---- */

static uint64_t next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717u;
}

/* Mostly small sizes, as programs ask: 7/8 of 8..512 B, 1/16 of up to
 * 4 KiB, 1/16 of up to 64 KiB. */
static size_t random_size(uint64_t *s)
{
	uint64_t r = next(s);
	switch (r & 15) {
	case 0:
		return 4096 + (r >> 8) % 61440;
	case 1:
		return 512 + (r >> 8) % 3584;
	default:
		return 8 + (r >> 8) % 504;
	}
}

static void *must_malloc(size_t n)
{
	void *p = malloc(n);
	if (p == NULL) {
		fprintf(stderr, "mtalloc: malloc(%zu) failed\n", n);
		exit(3);
	}
	return p;
}

/* A block starts and ends with a byte that names it. */
static void mark(unsigned char *p, size_t n, uint64_t tag)
{
	p[0] = (unsigned char)tag;
	p[n - 1] = (unsigned char)(tag >> 8);
}

static void check(const unsigned char *p, size_t n, uint64_t tag)
{
	if (p[0] != (unsigned char)tag || p[n - 1] != (unsigned char)(tag >> 8)) {
		fprintf(stderr, "mtalloc: block %p of %zu bytes was overwritten\n", (const void *)p, n);
		exit(1);
	}
}

static long ops;		/* per thread (random, prodcons) or in all (pool) */
static uint64_t sums[256];	/* one per thread, added up at the end */

/* ---- random: many threads allocating and freeing random sizes ---- */

#define LIVE 1024

struct slot {
	unsigned char *p;
	size_t n;
	uint64_t tag;
};

static void *random_thread(void *arg)
{
	long id = (long)arg;
	uint64_t s = 0x9e3779b97f4a7c15u * (uint64_t)(id + 1), sum = 0;
	struct slot *live = calloc(LIVE, sizeof *live);
	if (live == NULL)
		exit(3);
	for (long i = 0; i < ops; i++) {
		struct slot *sl = &live[next(&s) % LIVE];
		if (sl->p != NULL) {
			check(sl->p, sl->n, sl->tag);
			sum += sl->n;
			free(sl->p);
		}
		sl->n = random_size(&s);
		sl->tag = next(&s);
		sl->p = must_malloc(sl->n);
		mark(sl->p, sl->n, sl->tag);
	}
	for (int i = 0; i < LIVE; i++) {
		if (live[i].p != NULL) {
			check(live[i].p, live[i].n, live[i].tag);
			free(live[i].p);
		}
	}
	free(live);
	sums[id] = sum;
	return NULL;
}

/* ---- a bounded queue of pointers, for prodcons and pool ---- */

#define QUEUE 256

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	void *item[QUEUE];
	unsigned head, tail; /* head - tail items, head and tail mod QUEUE */
};

static struct queue queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			     PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static void put(struct queue *q, void *p)
{
	pthread_mutex_lock(&q->lock);
	while (q->head - q->tail == QUEUE)
		pthread_cond_wait(&q->not_full, &q->lock);
	q->item[q->head++ % QUEUE] = p;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
}

static void *take(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->head == q->tail)
		pthread_cond_wait(&q->not_empty, &q->lock);
	void *p = q->item[q->tail++ % QUEUE];
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return p;
}

/* ---- prodcons: one set of threads allocates, another frees ---- */

struct message {
	size_t n; /* of the whole block */
	uint64_t tag;
};

static void *producer(void *arg)
{
	long id = (long)arg;
	uint64_t s = 0x2545f4914f6cdd1du * (uint64_t)(id + 1);
	for (long i = 0; i < ops; i++) {
		size_t n = random_size(&s);
		if (n < sizeof(struct message) + 1)
			n = sizeof(struct message) + 1;
		struct message *m = must_malloc(n);
		m->n = n;
		m->tag = next(&s);
		((unsigned char *)m)[n - 1] = (unsigned char)m->tag;
		put(&queue, m);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	long id = (long)arg;
	uint64_t sum = 0;
	for (;;) {
		struct message *m = take(&queue);
		if (m == NULL)
			break; /* the end, one per consumer */
		if (((unsigned char *)m)[m->n - 1] != (unsigned char)m->tag) {
			fprintf(stderr, "mtalloc: message %p was overwritten\n", (void *)m);
			exit(1);
		}
		sum += m->n;
		free(m);
	}
	sums[id] = sum;
	return NULL;
}

/* ---- pool: a thread pool whose tasks allocate and free ---- */

struct node {
	struct node *next;
	char *key;
	uint64_t value;
};

/* A task: a list of n strings, a chained hash table over them, lookups,
 * then everything freed.  Returns a sum that does not depend on the
 * allocator. */
static uint64_t task(uint64_t seed)
{
	uint64_t s = seed | 1, sum = 0;
	size_t n = 64 + next(&s) % 448, buckets = 64;
	struct node **table = calloc(buckets, sizeof *table);
	if (table == NULL)
		exit(3);
	for (size_t i = 0; i < n; i++) {
		struct node *nd = must_malloc(sizeof *nd);
		size_t len = 4 + next(&s) % 60;
		nd->key = must_malloc(len + 1);
		for (size_t j = 0; j < len; j++)
			nd->key[j] = (char)('a' + next(&s) % 26);
		nd->key[len] = '\0';
		nd->value = i;
		size_t b = (size_t)(nd->key[0] * 31 + nd->key[1]) % buckets;
		nd->next = table[b];
		table[b] = nd;
	}
	for (size_t b = 0; b < buckets; b++) {
		for (struct node *nd = table[b]; nd != NULL; nd = nd->next)
			sum += nd->value * strlen(nd->key);
	}
	for (size_t b = 0; b < buckets; b++) {
		while (table[b] != NULL) {
			struct node *nd = table[b];
			table[b] = nd->next;
			free(nd->key);
			free(nd);
		}
	}
	free(table);
	return sum;
}

static void *worker(void *arg)
{
	long id = (long)arg;
	uint64_t sum = 0;
	for (;;) {
		uint64_t *t = take(&queue);
		if (t == NULL)
			break;
		sum += task(*t);
		free(t); /* the submitter's block */
	}
	sums[id] = sum;
	return NULL;
}

/* ---- simple, thread: the malloc/free fast path in a loop ---- */

static void *simple_thread(void *arg)
{
	long id = (long)arg;
	static const unsigned counts[] = {25, 100, 400, 1600};
	unsigned char **b = must_malloc(1600 * sizeof *b);
	uint64_t sum = 0;
	for (long r = 0; r < ops; r++) {
		for (unsigned c = 0; c < sizeof counts / sizeof counts[0]; c++) {
			for (size_t size = 16; size <= 256; size *= 2) {
				for (unsigned i = 0; i < counts[c]; i++) {
					b[i] = must_malloc(size);
					b[i][0] = (unsigned char)i;
				}
				for (unsigned i = 0; i < counts[c]; i++) {
					sum += b[i][0];
					free(b[i]);
				}
			}
		}
	}
	free(b);
	sums[id] = sum;
	return NULL;
}

#define WORKING_SET 4096

static void *small_random_thread(void *arg)
{
	long id = (long)arg;
	uint64_t s = 0x9e3779b97f4a7c15u * (uint64_t)(id + 1), sum = 0;
	unsigned char **set = calloc(WORKING_SET, sizeof *set);
	if (set == NULL)
		exit(3);
	for (long i = 0; i < ops; i++) {
		uint64_t r = next(&s);
		unsigned char **sl = &set[r % WORKING_SET];
		if (*sl != NULL) {
			sum += **sl;
			free(*sl);
		}
		*sl = must_malloc(16 + (r >> 32) % 1009);
		**sl = (unsigned char)r;
	}
	for (unsigned i = 0; i < WORKING_SET; i++)
		free(set[i]);
	free(set);
	sums[id] = sum;
	return NULL;
}

/* ---- main ---- */

static void start(pthread_t *t, void *(*fn)(void *), long id)
{
	if (pthread_create(t, NULL, fn, (void *)id) != 0) {
		fprintf(stderr, "mtalloc: cannot start a thread\n");
		exit(3);
	}
}

int main(int argc, char **argv)
{
	long threads = argc == 4 ? strtol(argv[2], NULL, 10) : 0;
	ops = argc == 4 ? strtol(argv[3], NULL, 10) : 0;
	if (threads < 1 || threads > 128 || ops < 1) {
		fprintf(stderr, "usage: mtalloc random|prodcons|pool|simple|thread THREADS OPS\n");
		return 2;
	}
	pthread_t t[256];
	long n = 0;
	if (strcmp(argv[1], "random") == 0) {
		for (; n < threads; n++)
			start(&t[n], random_thread, n);
	} else if (strcmp(argv[1], "prodcons") == 0) {
		for (; n < threads; n++)
			start(&t[n], consumer, n);
		for (long i = 0; i < threads; i++, n++)
			start(&t[n], producer, n);
		for (long i = 0; i < threads; i++)
			pthread_join(t[threads + i], NULL);
		for (long i = 0; i < threads; i++)
			put(&queue, NULL);
		n = threads; /* the consumers are left to join */
	} else if (strcmp(argv[1], "simple") == 0 || strcmp(argv[1], "thread") == 0) {
		for (; n < threads; n++)
			start(&t[n], argv[1][0] == 's' ? simple_thread : small_random_thread, n);
	} else if (strcmp(argv[1], "pool") == 0) {
		for (; n < threads; n++)
			start(&t[n], worker, n);
		uint64_t s = 42;
		for (long i = 0; i < ops; i++) {
			uint64_t *seed = must_malloc(sizeof *seed);
			*seed = next(&s);
			put(&queue, seed);
		}
		for (long i = 0; i < threads; i++)
			put(&queue, NULL);
	} else {
		fprintf(stderr, "mtalloc: no workload %s\n", argv[1]);
		return 2;
	}
	uint64_t sum = 0;
	for (long i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		sum += sums[i];
	}
	printf("%s %ld %ld %llu\n", argv[1], threads, ops, (unsigned long long)sum);
	return 0;
}
