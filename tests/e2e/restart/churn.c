/* SPDX-License-Identifier: MIT */
/*
 * A program the restart_live suite runs under shmalloc-run while it kills
 * and restarts the daemon: plain malloc and free in a table of slots, each
 * block filled with a pattern of its slot and generation and checked before
 * it is freed.  After each round of 4096 replacements it writes one byte to
 * stdout (the suite counts rounds); when stdin closes, it checks every block
 * it holds, frees them all and exits 0, or 1 at the first block whose
 * contents changed (printed on stderr).  argv[1]: a seed.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SLOTS 2048

struct slot {
	uint64_t *p;
	size_t words;
	uint64_t tag;
};

static struct slot slots[SLOTS];

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static int check(const struct slot *s, unsigned i)
{
	for (size_t w = 0; w < s->words; w++)
		if (s->p[w] != s->tag + w) {
			fprintf(stderr, "churn: slot %u word %zu of %zu: %#llx, not %#llx\n", i, w,
				s->words, (unsigned long long)s->p[w],
				(unsigned long long)(s->tag + w));
			return -1;
		}
	return 0;
}

static int replace(unsigned i, uint64_t r)
{
	struct slot *s = &slots[i];
	if (s->p != NULL && check(s, i) < 0)
		return -1;
	free(s->p);
	/* Mostly small classes, now and then a block past the small sizes. */
	size_t bytes = r % 16 == 0 ? 4096 + r % 60000 : 8 + r % 1000;
	s->words = bytes / 8;
	s->p = malloc(s->words * 8);
	if (s->p == NULL) {
		perror("churn: malloc");
		return -1;
	}
	s->tag = r & ~(uint64_t)0xffff;
	for (size_t w = 0; w < s->words; w++)
		s->p[w] = s->tag + w;
	return 0;
}

static int stdin_closed(void)
{
	struct pollfd pf = {.fd = 0, .events = POLLIN};
	char c;
	return poll(&pf, 1, 0) > 0 && read(0, &c, 1) <= 0;
}

int main(int argc, char **argv)
{
	uint64_t x = argc > 1 ? strtoull(argv[1], NULL, 0) | 1 : 88172645463325252ULL;
	while (!stdin_closed()) {
		for (unsigned k = 0; k < 4096; k++) {
			uint64_t r = next(&x);
			if (replace((unsigned)(r >> 40) % SLOTS, r) < 0)
				return 1;
		}
		if (write(1, "r", 1) != 1)
			return 1;
	}
	for (unsigned i = 0; i < SLOTS; i++) {
		if (slots[i].p != NULL && check(&slots[i], i) < 0)
			return 1;
		free(slots[i].p);
	}
	return 0;
}
