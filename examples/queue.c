/* SPDX-License-Identifier: MIT */
/*
 * A producer/consumer queue of messages passed by ref: the shmalloc demo.
 *
 *   queue producer N   allocates N messages of 64-256 bytes in the shared
 *                      heap, fills each, and pushes its ref into a ring that
 *                      it published under the root name "demo.queue"
 *   queue consumer N   looks the ring up by name, pops N refs, turns each
 *                      into a pointer, checks the message and frees it
 *
 * The ring is itself a shared allocation: one producer, one consumer, a head
 * and a tail with acquire/release ordering.  Run both against one shmallocd
 * (SHMALLOC_SOCKET names its socket); scripts/run.sh does.
 */
#include <shmalloc.h>

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_SLOTS 4096

struct ring {
	uint64_t head; /* next slot the producer writes */
	char pad1[56];
	uint64_t tail; /* next slot the consumer reads */
	char pad2[56];
	shma_ref_t slots[RING_SLOTS];
};

struct message {
	uint32_t seq;
	uint32_t len;
	uint32_t sum;
	char text[];
};

static uint32_t checksum(const char *p, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int produce(unsigned long n)
{
	struct ring *r = shma_calloc(1, sizeof *r);
	if (r == NULL) {
		perror("queue: shma_calloc");
		return 1;
	}
	int rc = shma_publish("demo.queue", shma_ref(r));
	if (rc != 0) {
		fprintf(stderr, "queue: publish: %s\n", shma_strerror(rc));
		return 1;
	}
	double t0 = now();
	for (unsigned long i = 0; i < n; i++) {
		uint32_t len = 64 + (uint32_t)(i * 7919 % 193) - (uint32_t)sizeof(struct message);
		struct message *m = shma_malloc(sizeof *m + len);
		if (m == NULL) {
			perror("queue: shma_malloc");
			return 1;
		}
		m->seq = (uint32_t)i;
		m->len = len;
		for (uint32_t k = 0; k < len; k++)
			m->text[k] = (char)('a' + (i + k) % 26);
		m->sum = checksum(m->text, len);
		while (__atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) + RING_SLOTS == r->head)
			sched_yield();
		r->slots[r->head % RING_SLOTS] = shma_ref(m);
		__atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) != n)
		usleep(1000);
	double dt = now() - t0;
	printf("producer: %lu messages in %.3f s (%.0f ns per message)\n", n, dt, dt * 1e9 / (double)n);
	shma_unpublish("demo.queue");
	shma_free(r);
	return 0;
}

static int consume(unsigned long n)
{
	shma_ref_t ref = 0;
	for (int tries = 0; shma_lookup("demo.queue", &ref) != 0; tries++) {
		if (tries > 5000) {
			fprintf(stderr, "queue: no producer published demo.queue\n");
			return 1;
		}
		usleep(1000);
	}
	struct ring *r = shma_ptr(ref);
	if (r == NULL) {
		perror("queue: shma_ptr");
		return 1;
	}
	unsigned long bad = 0;
	for (unsigned long i = 0; i < n; i++) {
		while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == r->tail)
			sched_yield();
		struct message *m = shma_ptr(r->slots[r->tail % RING_SLOTS]);
		if (m == NULL || m->seq != (uint32_t)i || checksum(m->text, m->len) != m->sum)
			bad++;
		shma_free(m);
		__atomic_store_n(&r->tail, r->tail + 1, __ATOMIC_RELEASE);
	}
	printf("consumer: %lu messages checked and freed, %lu bad\n", n, bad);
	return bad != 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "producer") && strcmp(argv[1], "consumer"))) {
		fprintf(stderr, "usage: %s producer|consumer COUNT\n", argv[0]);
		return 2;
	}
	unsigned long n = strtoul(argv[2], NULL, 10);
	int rc = strcmp(argv[1], "producer") == 0 ? produce(n) : consume(n);
	shma_disconnect();
	return rc;
}
