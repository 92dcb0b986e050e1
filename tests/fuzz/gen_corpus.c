/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of the fuzz targets: byte streams a real client
 * would send, one request kind after another, plus the mistakes a buggy
 * one makes (a double free, a request before Hello, Hello twice).
 *
 * The refs in the seeds are the ones a fresh heap of the dispatch target's
 * geometry (fuzz_daemon.h) hands out first, learnt by asking such a heap,
 * so the seeds reach the paths where a ref names a live object.
 * Usage: gen_corpus DIR   (writes DIR/fuzz_frame/... and DIR/fuzz_dispatch/...)
 */
#include "frame.h"
#include "fuzz_daemon.h"
#include "heap.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct stream {
	uint8_t buf[1 << 16];
	size_t len;
	uint64_t next_id;
};

static void put(struct stream *s, Shma__Request *req)
{
	req->id = ++s->next_id;
	size_t n = shma__request__get_packed_size(req);
	if (s->len + FRAME_HEADER + n > sizeof s->buf)
		abort();
	frame_put_header(s->buf + s->len, (uint32_t)n);
	shma__request__pack(req, s->buf + s->len + FRAME_HEADER);
	s->len += FRAME_HEADER + n;
}

static void hello(struct stream *s, const char *name)
{
	Shma__Request r;
	Shma__Hello h;
	wire_hello(&r, &h, name, 0);
	h.pid = 4242; /* the seeds do not depend on who wrote them */
	put(s, &r);
}

static void refill(struct stream *s, uint32_t cls, uint32_t count)
{
	Shma__Request r;
	Shma__Refill f;
	wire_refill(&r, &f, cls, count, 0);
	put(s, &r);
}

static void flush(struct stream *s, uint64_t *refs, size_t n, int want_reply)
{
	Shma__Request r;
	Shma__Flush f;
	wire_flush(&r, &f, refs, n, want_reply);
	put(s, &r);
}

static void alloc_large(struct stream *s, uint64_t size)
{
	Shma__Request r;
	Shma__AllocLarge a;
	wire_alloc_large(&r, &a, size);
	put(s, &r);
}

static void free_large(struct stream *s, uint64_t ref)
{
	Shma__Request r;
	Shma__FreeLarge f;
	wire_free_large(&r, &f, ref);
	put(s, &r);
}

static void publish(struct stream *s, const char *name, uint64_t ref)
{
	Shma__Request r;
	Shma__Publish p;
	wire_publish(&r, &p, name, ref);
	put(s, &r);
}

static void lookup(struct stream *s, const char *name)
{
	Shma__Request r;
	Shma__Lookup l;
	wire_lookup(&r, &l, name);
	put(s, &r);
}

static void unpublish(struct stream *s, const char *name)
{
	Shma__Request r;
	Shma__Unpublish u;
	wire_unpublish(&r, &u, name);
	put(s, &r);
}

static void empty_body(struct stream *s, Shma__Request__BodyCase which)
{
	Shma__Request r;
	Shma__Stats st;
	Shma__Roots ro;
	Shma__Goodbye g;
	if (which == SHMA__REQUEST__BODY_STATS)
		wire_stats(&r, &st);
	else if (which == SHMA__REQUEST__BODY_ROOTS)
		wire_roots(&r, &ro);
	else
		wire_goodbye(&r, &g);
	put(s, &r);
}

static const char *out_dir;

static void save(const char *target, const char *name, const struct stream *s)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", out_dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void save_both(const char *name, const struct stream *s)
{
	save("fuzz_frame", name, s);
	save("fuzz_dispatch", name, s);
}

/* The refs a fresh heap of the target's geometry hands out first. */
struct first_refs {
	uint64_t small[4];
	uint64_t large;
};

static void learn_refs(struct first_refs *fr)
{
	char instance[32];
	snprintf(instance, sizeof instance, "fzgen%ld", (long)getpid());
	struct heap_config hc = {.instance = instance, .arena_size = FUZZ_ARENA_SIZE,
				 .max_memory = FUZZ_MAX_MEMORY, .mode = 0600};
	struct heap *h;
	if (heap_open(&h, &hc) != 0)
		abort();
	uint64_t refs[4];
	struct heap_run runs[4];
	struct heap_batch b = {.refs = refs, .refs_cap = 4, .runs = runs, .runs_cap = 4};
	if (heap_refill(h, NULL, 0, 4, &b) != 4)
		abort();
	for (unsigned i = 0, k = 0; k < 4; i++) {
		if (i < b.nrefs) {
			fr->small[k++] = refs[i];
			continue;
		}
		for (uint32_t j = 0; j < b.runs[i - b.nrefs].count && k < 4; j++)
			fr->small[k++] = b.runs[i - b.nrefs].first + (uint64_t)j * sizeclass_size(0);
	}
	uint64_t seg_size;
	if (heap_alloc_large(h, NULL, 200000, 1, &fr->large, &seg_size) != 0)
		abort();
	heap_close(h, 1);
}

static void seeds(const struct first_refs *fr)
{
	struct stream s;
	memset(&s, 0, sizeof s); hello(&s, "seed"); save_both("hello", &s);
	empty_body(&s, SHMA__REQUEST__BODY_STATS);
	empty_body(&s, SHMA__REQUEST__BODY_ROOTS);
	empty_body(&s, SHMA__REQUEST__BODY_GOODBYE);
	save_both("hello-stats-roots-goodbye", &s);
	memset(&s, 0, sizeof s); hello(&s, NULL);
	for (uint32_t c = 0; c < SIZECLASS_COUNT; c += 13)
		refill(&s, c, 8);
	save_both("refills", &s);
	memset(&s, 0, sizeof s); hello(&s, NULL);
	refill(&s, 0, 4);
	flush(&s, (uint64_t *)fr->small, 4, 1);
	flush(&s, (uint64_t *)fr->small, 2, 0);
	refill(&s, 0, 1000);
	save_both("refill-flush-double-free", &s);
	memset(&s, 0, sizeof s); hello(&s, NULL);
	alloc_large(&s, 200000);
	free_large(&s, fr->large);
	free_large(&s, fr->large);
	alloc_large(&s, 0);
	alloc_large(&s, UINT64_C(1) << 63);
	save_both("large", &s);
	memset(&s, 0, sizeof s); hello(&s, NULL);
	refill(&s, 0, 1);
	alloc_large(&s, 200000);
	publish(&s, "queue", fr->small[0]);
	publish(&s, "big", fr->large);
	lookup(&s, "queue");
	empty_body(&s, SHMA__REQUEST__BODY_ROOTS);
	unpublish(&s, "queue");
	lookup(&s, "queue");
	publish(&s, "", fr->small[1]);
	save_both("roots", &s);
	memset(&s, 0, sizeof s);
	empty_body(&s, SHMA__REQUEST__BODY_STATS);
	save_both("before-hello", &s);
	memset(&s, 0, sizeof s); hello(&s, "a"); hello(&s, "b");
	save_both("hello-twice", &s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	struct first_refs fr;
	learn_refs(&fr);
	seeds(&fr);
	return 0;
}
