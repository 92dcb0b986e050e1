/* SPDX-License-Identifier: MIT */
/*
 * One heap, one address: a program the memory suite execs twice (not forks),
 * as a reader and as a writer, that share a linked list by raw pointers.
 *
 *   listwalk reader IN OUT   connects first and allocates nothing (says so
 *                            on fd OUT); waits for the head's address on fd
 *                            IN, walks the list by raw pointers alone,
 *                            appends nodes of its own, writes the first one's
 *                            address to OUT; once the writer has walked it
 *                            all, frees every node
 *   listwalk writer IN OUT   grows the heap past several arenas while building
 *                            the list, writes its head's address to OUT, waits
 *                            for the reader's first node on IN, walks it all
 *   listwalk elsewhere BASE  takes address BASE (hex) before it connects: the
 *                            heap cannot go there; finds root "greeting" by
 *                            its ref, answers with root "reply"
 *
 * Each node's payload (1 B to 3 MiB) names its node; exit 0 when every node
 * was where its pointer said, with the bytes it should hold.
 */
#include "shmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WRITER_NODES 20000u
#define READER_NODES 2000u
#define BIG_EVERY 400u /* one node in this many carries 128 KiB to 3 MiB */

struct node {
	struct node *next;
	uint64_t seq;
	uint64_t len;
	unsigned char payload[];
};

static uint64_t payload_len(uint64_t seq)
{
	uint64_t x = seq * UINT64_C(0x9E3779B97F4A7C15);
	if (seq % BIG_EVERY == 0)
		return (128u << 10) + (x >> 20) % ((3u << 20) - (128u << 10) + 1);
	return 1 + (x >> 40) % 2000;
}

static unsigned char byte_of(uint64_t seq, uint64_t i)
{
	return (unsigned char)(seq * 131 + i * 7 + (i >> 12));
}

static struct node *make(uint64_t seq)
{
	uint64_t len = payload_len(seq);
	struct node *n = shma_malloc(sizeof *n + len);
	if (n == NULL) {
		perror("listwalk: shma_malloc");
		exit(10);
	}
	n->next = NULL;
	n->seq = seq;
	n->len = len;
	for (uint64_t i = 0; i < len; i++)
		n->payload[i] = byte_of(seq, i);
	return n;
}

/* Walks from head by its next pointers: n nodes, seq first.. in order, each
 * payload whole.  Returns the last node. */
static struct node *walk(struct node *head, uint64_t first, uint64_t n)
{
	struct node *p = head, *last = NULL;
	for (uint64_t k = 0; k < n; k++, p = p->next) {
		if (p == NULL || p->seq != first + k || p->len != payload_len(first + k)) {
			fprintf(stderr, "listwalk %d: node %llu is not where its pointer says\n",
				(int)getpid(), (unsigned long long)(first + k));
			exit(20);
		}
		for (uint64_t i = 0; i < p->len; i += p->len > 4096 ? 613 : 1)
			if (p->payload[i] != byte_of(p->seq, i)) {
				fprintf(stderr, "listwalk: node %llu byte %llu is wrong\n",
					(unsigned long long)p->seq, (unsigned long long)i);
				exit(21);
			}
		last = p;
	}
	if (p != NULL) {
		fprintf(stderr, "listwalk: the list goes on past %llu nodes\n",
			(unsigned long long)n);
		exit(22);
	}
	return last;
}

static void put(int fd, const void *p)
{
	uint64_t v = (uint64_t)(uintptr_t)p;
	if (write(fd, &v, sizeof v) != (ssize_t)sizeof v)
		exit(30);
}

static void *get(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
		exit(31);
	return (void *)(uintptr_t)v;
}

static int reader(int in, int out)
{
	int rc = shma_connect(NULL);
	if (rc != 0 || shma_same_address() != 1) {
		fprintf(stderr, "listwalk reader: connect %d, same address %d\n", rc,
			shma_same_address());
		return 40;
	}
	put(out, NULL); /* connected, heap mapped, nothing allocated */
	struct node *head = get(in);
	struct node *last = walk(head, 0, WRITER_NODES);
	struct node *mine = make(WRITER_NODES), *p = mine;
	for (uint64_t k = 1; k < READER_NODES; k++, p = p->next)
		p->next = make(WRITER_NODES + k);
	last->next = mine;
	put(out, mine);
	get(in); /* the writer walked it all */
	for (p = head; p != NULL;) {
		struct node *next = p->next;
		shma_free(p);
		p = next;
	}
	shma_disconnect();
	return 0;
}

static int writer(int in, int out)
{
	struct node *head = make(0), *p = head;
	for (uint64_t k = 1; k < WRITER_NODES; k++, p = p->next)
		p->next = make(k);
	put(out, head);
	struct node *theirs = get(in);
	struct node *last = walk(head, 0, WRITER_NODES + READER_NODES);
	if (last == NULL || walk(theirs, WRITER_NODES, READER_NODES) != last)
		return 50;
	put(out, NULL);
	shma_disconnect();
	return 0;
}

static int elsewhere(const char *base_hex)
{
	void *base = (void *)(uintptr_t)strtoull(base_hex, NULL, 16);
	if (mmap(base, 1u << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0) != base)
		return 60;
	if (shma_connect(NULL) != 0 || shma_same_address() != 0)
		return 61;
	shma_ref_t ref;
	if (shma_lookup("greeting", &ref) != 0)
		return 62;
	const char *g = shma_ptr(ref);
	if (g == NULL || g == (const char *)base + ref || strcmp(g, "hello from the base") != 0)
		return 63;
	char *r = shma_malloc(64);
	if (r == NULL || shma_ptr(shma_ref(r)) != r)
		return 64;
	strcpy(r, "hello from elsewhere");
	if (shma_publish("reply", shma_ref(r)) != 0)
		return 65;
	shma_disconnect();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "elsewhere") == 0)
		return elsewhere(argv[2]);
	if (argc != 4)
		return 2;
	int in = atoi(argv[2]), out = atoi(argv[3]);
	if (strcmp(argv[1], "reader") == 0)
		return reader(in, out);
	if (strcmp(argv[1], "writer") == 0)
		return writer(in, out);
	return 2;
}
