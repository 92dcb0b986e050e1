/* SPDX-License-Identifier: MIT */
/*
 * End to end, the allocator: real processes allocating, passing refs,
 * writing, verifying and freeing each other's blocks through one daemon.
 */
#include "config.h"

#include "e2e.h"
#include "instance.h"
#include "shmalloc.h"
#include "skip.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif


/* Sizes from 1 B to 4 MiB: every small class region and large blocks. */
static size_t mixed_size(unsigned i)
{
	static const size_t sizes[] = {1, 7, 16, 17, 100, 128, 129, 500, 1024, 4000, 8192,
				       12345, 65536, 100000, 131071, 131072, 200000,
				       1 << 20, 3 << 20, 4 << 20};
	return sizes[i % (sizeof sizes / sizeof sizes[0])];
}

#define MIXED 200

struct handoff {
	shma_ref_t refs[MIXED];
	size_t sizes[MIXED];
};

static int verify_and_free(void *arg)
{
	struct handoff *h = arg;
	for (unsigned i = 0; i < MIXED; i++) {
		uint8_t *p = shma_ptr(h->refs[i]);
		if (p == NULL)
			return 10;
		if (!e2e_check_fill(p, h->sizes[i], i))
			return 11;
		if (shma_usable_size(p) < h->sizes[i])
			return 12;
		shma_free(p);
	}
	return 0;
}

START_TEST(mixed_sizes_written_here_verified_and_freed_there)
{
	struct handoff *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	for (unsigned i = 0; i < MIXED; i++) {
		h->sizes[i] = mixed_size(i);
		void *p = shma_malloc(h->sizes[i]);
		ck_assert_msg(p != NULL, "malloc(%zu): %s", h->sizes[i], strerror(errno));
		e2e_fill(p, h->sizes[i], i);
		h->refs[i] = shma_ref(p);
		ck_assert_uint_ne(h->refs[i], 0);
		ck_assert_ptr_eq(shma_ptr(h->refs[i]), p);
	}
	ck_assert_int_eq(e2e_wait(e2e_fork(verify_and_free, h)), 0);
	/* Large blocks freed there are gone: their segments were unlinked. */
	char *json;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	ck_assert_ptr_nonnull(strstr(json, "\"large_count\":0,"));
	free(json);
	munmap(h, sizeof *h);
}
END_TEST

struct block {
	uintptr_t start;
	size_t size;
};

static int by_start(const void *a, const void *b)
{
	const struct block *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

START_TEST(live_blocks_never_overlap)
{
	enum { N = 20000 };
	static struct block b[N];
	static void *ptrs[N];
	unsigned seed = 1;
	for (unsigned i = 0; i < N; i++) {
		size_t n = (size_t)(rand_r(&seed) % 3000) + 1;
		ptrs[i] = shma_malloc(n);
		ck_assert_ptr_nonnull(ptrs[i]);
		if (i % 3 == 2) { /* churn: free some, so blocks get recycled */
			shma_free(ptrs[i - 1]);
			ptrs[i - 1] = NULL;
		}
	}
	unsigned k = 0;
	for (unsigned i = 0; i < N; i++)
		if (ptrs[i]) {
			b[k].start = (uintptr_t)ptrs[i];
			b[k].size = shma_usable_size(ptrs[i]);
			k++;
		}
	qsort(b, k, sizeof b[0], by_start);
	for (unsigned i = 1; i < k; i++)
		ck_assert_msg(b[i - 1].start + b[i - 1].size <= b[i].start,
			      "blocks at %#lx (+%zu) and %#lx overlap", (unsigned long)b[i - 1].start,
			      b[i - 1].size, (unsigned long)b[i].start);
	for (unsigned i = 0; i < N; i++)
		shma_free(ptrs[i]);
}
END_TEST

START_TEST(calloc_zeroes_recycled_memory)
{
	for (int round = 0; round < 3; round++) {
		void *p[64];
		for (int i = 0; i < 64; i++) {
			p[i] = shma_malloc(256);
			memset(p[i], 0xA5, 256);
		}
		for (int i = 0; i < 64; i++)
			shma_free(p[i]);
		for (int i = 0; i < 64; i++) {
			uint8_t *q = shma_calloc(16, 16);
			ck_assert_ptr_nonnull(q);
			for (int j = 0; j < 256; j++)
				ck_assert_uint_eq(q[j], 0);
			p[i] = q;
		}
		for (int i = 0; i < 64; i++)
			shma_free(p[i]);
	}
	errno = 0;
	/* volatile: shmalloc.h's alloc_size lets the compiler see the overflow
	 * coming, and it is the library that must catch it. */
	volatile size_t half = SIZE_MAX / 2;
	ck_assert_ptr_null(shma_calloc(half, 3));
	ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(realloc_keeps_contents)
{
	char *p = shma_realloc(NULL, 10);
	ck_assert_ptr_nonnull(p);
	memcpy(p, "0123456789", 10);
	size_t sizes[] = {12, 100, 5000, 300000, 2 << 20, 64, 10};
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		p = shma_realloc(p, sizes[i]);
		ck_assert_ptr_nonnull(p);
		ck_assert_mem_eq(p, "0123456789", 10);
		ck_assert_uint_ge(shma_usable_size(p), sizes[i]);
	}
	char *same = shma_realloc(p, 9); /* fits the class: in place */
	ck_assert_ptr_eq(same, p);
	ck_assert_ptr_null(shma_realloc(same, 0));
}
END_TEST

START_TEST(aligned_alloc_aligns)
{
	size_t aligns[] = {16, 32, 64, 256, 4096, 8192, 65536, 1 << 20};
	for (unsigned i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
		for (size_t size = 1; size < (1 << 21); size = size * 7 + 3) {
			void *p = shma_aligned_alloc(aligns[i], size);
			ck_assert_msg(p != NULL, "aligned_alloc(%zu, %zu)", aligns[i], size);
			ck_assert_uint_eq((uintptr_t)p % aligns[i], 0);
			memset(p, 1, size);
			ck_assert_uint_ge(shma_usable_size(p), size);
			ck_assert_uint_ne(shma_ref(p), 0);
			shma_free(p);
		}
	}
	errno = 0;
	ck_assert_ptr_null(shma_aligned_alloc(24, 10));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(malloc_zero_and_free_null)
{
	void *p = shma_malloc(0);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(shma_usable_size(p), 1);
	shma_free(p);
	shma_free(NULL);
	ck_assert_uint_eq(shma_usable_size(NULL), 0);
	int local;
	ck_assert_uint_eq(shma_usable_size(&local), 0);
}
END_TEST

START_TEST(interior_pointers_give_the_blocks_ref)
{
	char *p = shma_malloc(1000);
	shma_ref_t r = shma_ref(p);
	ck_assert_uint_eq(shma_ref(p + 999), r + 999);
	ck_assert_ptr_eq(shma_ptr(shma_ref(p + 500)), p + 500);
	char *big = shma_malloc(1 << 20);
	shma_ref_t rb = shma_ref(big);
	ck_assert_uint_eq(shma_ref(big + 12345), rb + 12345);
	shma_free(p);
	shma_free(big);
}
END_TEST

static int child_allocates(void *arg)
{
	(void)arg;
	void *p[1000];
	for (int i = 0; i < 1000; i++) {
		p[i] = shma_malloc(48);
		if (p[i] == NULL)
			return 1;
		e2e_fill(p[i], 48, (uint64_t)i + 7);
	}
	for (int i = 0; i < 1000; i++) {
		if (!e2e_check_fill(p[i], 48, (uint64_t)i + 7))
			return 2;
		shma_free(p[i]);
	}
	return 0;
}

START_TEST(fork_child_allocates_on_its_own)
{
	/* The parent has warm caches; the child must not reuse them. */
	void *mine[100];
	for (int i = 0; i < 100; i++) {
		mine[i] = shma_malloc(48);
		e2e_fill(mine[i], 48, (uint64_t)i);
	}
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_allocates(NULL));
	ck_assert_int_eq(e2e_wait(pid), 0);
	for (int i = 0; i < 100; i++) {
		ck_assert(e2e_check_fill(mine[i], 48, (uint64_t)i));
		shma_free(mine[i]);
	}
	void *again = shma_malloc(48);
	ck_assert_ptr_nonnull(again);
	shma_free(again);
}
END_TEST

START_TEST(roots_publish_lookup_unpublish)
{
	void *p = shma_malloc(100);
	shma_ref_t r = shma_ref(p), got = 0;
	ck_assert_int_eq(shma_publish("app.root", r), 0);
	ck_assert_int_eq(shma_publish("app.root", r), -EEXIST);
	ck_assert_int_eq(shma_lookup("app.root", &got), 0);
	ck_assert_uint_eq(got, r);
	ck_assert_int_eq(shma_lookup("nope", &got), -ENOENT);
	ck_assert_int_eq(shma_publish("", r), -EINVAL);
	ck_assert_int_eq(shma_publish("null", 0), -EINVAL);
	char longname[300];
	memset(longname, 'x', sizeof longname - 1);
	longname[299] = '\0';
	ck_assert_int_eq(shma_publish(longname, r), -ENAMETOOLONG);
	longname[255] = '\0';
	ck_assert_int_eq(shma_publish(longname, r), 0);
	ck_assert_int_eq(shma_unpublish("app.root"), 0);
	ck_assert_int_eq(shma_unpublish("app.root"), -ENOENT);
	ck_assert_int_eq(shma_lookup("app.root", &got), -ENOENT);
	shma_free(p);
}
END_TEST

static void *thread_allocates(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000; i++) {
		void *p = shma_malloc(32 + (size_t)i % 200);
		if (p == NULL)
			return (void *)1;
		memset(p, i, 32);
		shma_free(p);
	}
	return NULL;
}


START_TEST(thread_exit_flushes_its_caches)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, thread_allocates, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *rc;
		pthread_join(th[i], &rc);
		ck_assert_ptr_null(rc);
	}
	/* A thread's slot is parked for the next thread with its blocks (a
	 * few slots at most): they are cached, none is lost... */
	ck_assert_uint_gt(e2e_stat("\"cached_bytes\":"), 0);
	/* ...and every object goes back when the process lets go: none out. */
	shma_disconnect();
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
}
END_TEST

static pthread_barrier_t all_alive;

static void *one_thread(void *arg)
{
	(void)arg;
	void *p = shma_malloc(100);
	if (p == NULL)
		return (void *)1;
	memset(p, 1, 100);
	/* Hold the slot until every thread has one or found none. */
	pthread_barrier_wait(&all_alive);
	shma_free(p);
	return NULL;
}

START_TEST(more_threads_than_cache_slots_still_allocate)
{
	/* 300 threads alive at once (past the 256 slots control blocks once
	 * had): every one of them allocates. */
	enum { T = 300 };
	static pthread_t th[T];
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	pthread_barrier_init(&all_alive, NULL, T);
	for (int i = 0; i < T; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, one_thread, NULL), 0);
	for (int i = 0; i < T; i++) {
		void *rc;
		pthread_join(th[i], &rc);
		ck_assert_ptr_null(rc);
	}
	pthread_barrier_destroy(&all_alive);
	/* Parked slots keep their blocks for the next threads until the
	 * process lets go. */
	shma_disconnect();
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
}
END_TEST

static void *counted_work(void *arg)
{
	(void)arg;
	static void *p[10000];
	for (int i = 0; i < 10000; i++)
		p[i] = shma_malloc(64);
	for (int i = 0; i < 10000; i++)
		shma_free(p[i]);
	/* Sizes a freed one cannot serve (more than twice it): each waits. */
	static const size_t large[3] = {1u << 20, 3u << 20, 7u << 20};
	for (int i = 0; i < 3; i++)
		shma_free(shma_malloc(large[i]));
	return NULL;
}

/* This process's client id, from the daemon's stats. */
static uint64_t own_client_id(void)
{
	char *json, key[64];
	ck_assert_int_eq(shma_stats_json(&json), 0);
	snprintf(key, sizeof key, ",\"pid\":%ld,", (long)getpid());
	char *at = strstr(json, key);
	ck_assert_ptr_nonnull(at);
	*at = '\0';
	char *id = strrchr(json, '{');
	ck_assert_ptr_nonnull(id);
	ck_assert_int_eq(strncmp(id, "{\"id\":", 6), 0);
	uint64_t v = strtoull(id + 6, NULL, 10);
	free(json);
	return v;
}

/* Bytes /dev/shm holds for control block c<id> of instance (not the spares
 * the daemon makes meanwhile). */
static uint64_t control_bytes(const char *instance, uint64_t id)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof path, "/dev/shm/shmalloc.%s.c%llu", instance, (unsigned long long)id);
	ck_assert_int_eq(stat(path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

START_TEST(a_first_malloc_makes_little_of_the_control_block)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t id = own_client_id();
	uint64_t at_hello = control_bytes(e2e.instance, id);
	ck_assert_uint_gt(at_hello, 0);
	void *p = shma_malloc(64);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	/* The thread's bin of 64 B objects, not every bin of its slot (432
	 * KiB): what a first malloc costs is mostly this.  And of the bin, as
	 * many refs as it ever holds (1024 refs, 8 KiB, and the pages they
	 * straddle), not the layout's 2048 (16 KiB). */
	ck_assert_uint_le(control_bytes(e2e.instance, id) - at_hello, 12 << 10);
}
END_TEST

START_TEST(malloc_and_wait_counters_add_up)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t before = e2e_stat("\"malloc_calls\":");
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, counted_work, NULL), 0);
	pthread_join(th, NULL);
	/* The thread's exit retires its counters exactly. */
	ck_assert_uint_eq(e2e_stat("\"malloc_calls\":") - before, 10003);
	uint64_t waits = e2e_stat("\"malloc_waits\":");
	ck_assert_uint_ge(waits, 4);      /* the first refill, three large blocks */
	ck_assert_uint_le(waits, 10003 / 20); /* batches make waits rare */
}
END_TEST

START_TEST(disconnect_flushes_everything)
{
	void *p[3000];
	for (int i = 0; i < 3000; i++)
		p[i] = shma_malloc(64);
	for (int i = 0; i < 3000; i++)
		shma_free(p[i]);
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
}
END_TEST

/* What a class keeps beyond its live blocks is bounded in bytes: a thread's
 * bin at most two batches of 32 KiB of objects (at least 4 objects a batch,
 * and the bin at least 16 objects), plus one refill asked ahead.  Before, a batch was 256 KiB (at least 8
 * objects) and a bin held 512 KiB: about 80 classes in use made the 1.86x
 * footprint of bench (e). */
static void churn_class(size_t size, unsigned n)
{
	void *p[4096];
	ck_assert_uint_le(n, 4096);
	for (int round = 0; round < 3; round++) {
		for (unsigned i = 0; i < n; i++) {
			p[i] = shma_malloc(size);
			ck_assert_ptr_nonnull(p[i]);
		}
		for (unsigned i = 0; i < n; i++)
			shma_free(p[i]);
	}
}

START_TEST(a_class_caches_at_most_two_batches)
{
	const uint64_t batch = 32 << 10;
	churn_class(64, 3000);
	ck_assert_uint_le(e2e_stat("\"cached_bytes\":"), 2 * batch);
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), 3 * batch);
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), 0);
	/* A big class: batches of 4 objects, a bin of at most 16 (two batches
	 * of 4 made every fourth free of four threads churning 4-64 KiB
	 * blocks a Flush: bench-programs mt-random ran 3.6x slower). */
	churn_class(32 << 10, 64);
	ck_assert_uint_le(e2e_stat("\"cached_bytes\":"), 16 * (32 << 10));
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), (16 + 4) * (32 << 10));
}
END_TEST

/* Blocks of a big class allocated and freed at random, a few dozen live:
 * the thread's bin moves up and down by one and must not hit its bounds
 * every few operations -- each hit is a message to the daemon under the
 * connection's lock, which a process's threads share.  A bin of two
 * batches of 4 objects made a Flush or a Refill every 10 operations. */
START_TEST(a_big_class_churn_rarely_asks_the_daemon)
{
	enum { LIVE = 48, OPS = 20000 };
	void *p[LIVE] = {0};
	uint64_t s = 0x9e3779b97f4a7c15u;
	for (int i = 0; i < LIVE / 2; i++)
		ck_assert_ptr_nonnull(p[i] = shma_malloc(16 << 10));
	uint64_t requests0 = e2e_stat("\"requests\":");
	for (int i = 0; i < OPS; i++) {
		s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
		unsigned k = (unsigned)((s * 2685821657736338717u) >> 40) % LIVE;
		if (p[k] != NULL) {
			shma_free(p[k]);
			p[k] = NULL;
		} else {
			ck_assert_ptr_nonnull(p[k] = shma_malloc(16 << 10));
		}
	}
	uint64_t asked = e2e_stat("\"requests\":") - requests0;
	for (int i = 0; i < LIVE; i++)
		shma_free(p[i]);
	ck_assert_msg(asked <= OPS / 50, "%llu requests for %d operations",
		      (unsigned long long)asked, OPS);
}
END_TEST

/* A refill asked ahead whose answer is in when the frees fill the bin is
 * taken in and goes back with them: only the bin stays out.  Before, its
 * objects stayed out until the bin ran dry, which after a free of
 * everything was never (bench (e) kept 6 MiB out so). */
START_TEST(a_full_bin_gives_back_the_refill_asked_ahead)
{
	const uint64_t batch = 32 << 10;
	void *p[3000];
	for (int i = 0; i < 3000; i++) {
		p[i] = shma_malloc(64);
		ck_assert_ptr_nonnull(p[i]);
	}
	/* A call on the same connection: the daemon reads a connection's
	 * requests in order, so the refill asked ahead is answered before it,
	 * and its answer is parked in the library when the call returns. */
	(void)e2e_stat("\"requests\":");
	for (int i = 0; i < 3000; i++)
		shma_free(p[i]);
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), 2 * batch);
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), e2e_stat("\"cached_bytes\":"));
}
END_TEST

static int exhaust(void *arg)
{
	(void)arg;
	/* Small objects until ENOMEM, then large ones; both fail cleanly. */
	void **held = mmap(NULL, 1 << 24, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	size_t n = 0;
	for (;;) {
		void *p = shma_malloc(4000);
		if (p == NULL) {
			if (errno != ENOMEM)
				return 1;
			break;
		}
		memset(p, 0x5a, 4000);
		held[n++] = p;
		if (n == (1 << 21))
			return 2; /* the cap did not hold */
	}
	errno = 0;
	if (shma_malloc(1 << 20) != NULL || errno != ENOMEM)
		return 3;
	for (size_t i = 0; i < n; i++)
		shma_free(held[i]);
	return 0;
}

START_TEST(enomem_at_the_cap_and_the_daemon_serves_on)
{
	struct e2e_daemon capped;
	const char *const extra[] = {"--max-memory", "8M", "--arena-size", "4M", NULL};
	e2e_start_daemon(&capped, extra);
	struct e2e_daemon saved = e2e;
	e2e = capped;
	ck_assert_int_eq(e2e_wait(e2e_fork(exhaust, NULL)), 0);
	/* After the hog let go, another client allocates again. */
	ck_assert_int_eq(shma_connect(capped.socket), 0);
	void *p = shma_malloc(4000);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	shma_disconnect();
	e2e = saved;
	e2e_stop_daemon(&capped);
}
END_TEST

START_TEST(client_cap_holds)
{
	struct e2e_daemon capped;
	const char *const extra[] = {"--client-max-memory", "2M", NULL};
	e2e_start_daemon(&capped, extra);
	ck_assert_int_eq(shma_connect(capped.socket), 0);
	size_t got = 0;
	void *p;
	while ((p = shma_malloc(1000)) != NULL && got < (8u << 20))
		got += 1000;
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_le(got, 2u << 20);
	ck_assert_uint_ge(got, 1u << 20);
	shma_disconnect();
	e2e_stop_daemon(&capped);
}
END_TEST

/* A block of arena 1, made by this child after its parent last looked. */
static int block_of_a_new_arena(void *arg)
{
	void **out = arg;
	for (int i = 0; i < 100000; i++) {
		void *p = shma_malloc(64);
		if (p == NULL)
			return 1;
		if (shma_ref(p) >= (1u << 20)) {
			*out = p; /* left allocated: the parent frees it */
			return 0;
		}
	}
	return 2;
}

/* free()'s fast path knows the arenas seen made (free_limit): a block of
 * one made since by another process must still land in this thread's
 * cache -- the next malloc of its class pops it -- and not be taken for a
 * pointer not ours and dropped. */
START_TEST(free_of_a_block_of_an_arena_made_since_goes_to_the_cache)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
	/* There the library is in debug mode (no fast path to test), and
	 * memcheck never saw the other process allocate the block. */
	if (RUNNING_ON_VALGRIND) {
		TEST_SKIP("under Valgrind the library is in debug mode");
		return;
	}
#endif
	struct e2e_daemon small;
	const char *const extra[] = {"--arena-size", "1M", NULL};
	e2e_start_daemon(&small, extra);
	struct e2e_daemon saved = e2e;
	e2e = small;
	ck_assert_int_eq(shma_connect(small.socket), 0);
	void *first = shma_malloc(64);
	ck_assert_ptr_nonnull(first);
	ck_assert_uint_lt(shma_ref(first), 1u << 20);
	shma_free(first);
	void **out = mmap(NULL, sizeof *out, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			  -1, 0);
	ck_assert_ptr_ne(out, MAP_FAILED);
	ck_assert_int_eq(e2e_wait(e2e_fork(block_of_a_new_arena, out)), 0);
	ck_assert(shma_same_address());
	void *p = *out;
	memset(p, 0x5a, 64);
	shma_free(p);
	ck_assert_ptr_eq(shma_malloc(64), p);
	shma_free(p);
	/* Not ours, below and past the heap: refused (freecheck.c; warn: go on). */
	setenv("SHMALLOC_CHECK", "warn", 1);
	int local = 0;
	shma_free(&local);
	shma_free((char *)shma_ptr(shma_ref(p)) + ((uint64_t)64 << 30));
	munmap(out, sizeof *out);
	shma_disconnect();
	e2e = saved;
	e2e_stop_daemon(&small);
}
END_TEST

/* A program whose first malloc is under 32 KiB has that class's first refill
 * asked with its Hello; with the daemon's --large-threshold below the size,
 * the block is a large one after all, and the daemon refuses the refill (no
 * such class): the malloc still works, so do the program's next ones (the
 * refusal waits unread in the thread's cache, never mistaken for another
 * answer), and once it exits without a goodbye nothing stays out. */
START_TEST(a_refused_first_refill_harms_nothing)
{
	struct e2e_daemon t;
	const char *const extra[] = {"--large-threshold", "16K", NULL};
	e2e_start_daemon(&t, extra);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("SHMALLOC_SOCKET", t.socket, 1);
		char *b = shma_malloc(20000); /* connects: no shma_connect() first */
		if (b == NULL)
			_exit(1);
		b[0] = 1;
		void *small[100];
		for (int i = 0; i < 100; i++)
			if ((small[i] = shma_malloc(64 + (size_t)i)) == NULL)
				_exit(2);
		for (int i = 0; i < 100; i++)
			shma_free(small[i]);
		shma_free(b);
		if ((b = shma_malloc(20000)) == NULL)
			_exit(3);
		shma_free(b);
		_exit(0);
	}
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert_int_eq(shma_connect(t.socket), 0);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(0), 0);
	shma_disconnect();
	e2e_stop_daemon(&t);
}
END_TEST

Suite *make_alloc_suite(void);
Suite *make_alloc_suite(void)
{
	Suite *s = suite_create("alloc");
	TCase *tc = tcase_create("allocator");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, mixed_sizes_written_here_verified_and_freed_there);
	tcase_add_test(tc, a_refused_first_refill_harms_nothing);
	tcase_add_test(tc, live_blocks_never_overlap);
	tcase_add_test(tc, calloc_zeroes_recycled_memory);
	tcase_add_test(tc, realloc_keeps_contents);
	tcase_add_test(tc, aligned_alloc_aligns);
	tcase_add_test(tc, malloc_zero_and_free_null);
	tcase_add_test(tc, interior_pointers_give_the_blocks_ref);
	tcase_add_test(tc, fork_child_allocates_on_its_own);
	tcase_add_test(tc, roots_publish_lookup_unpublish);
	tcase_add_test(tc, thread_exit_flushes_its_caches);
	tcase_add_test(tc, more_threads_than_cache_slots_still_allocate);
	tcase_add_test(tc, a_first_malloc_makes_little_of_the_control_block);
	tcase_add_test(tc, malloc_and_wait_counters_add_up);
	tcase_add_test(tc, disconnect_flushes_everything);
	tcase_add_test(tc, a_class_caches_at_most_two_batches);
	tcase_add_test(tc, a_big_class_churn_rarely_asks_the_daemon);
	tcase_add_test(tc, a_full_bin_gives_back_the_refill_asked_ahead);
	tcase_add_test(tc, enomem_at_the_cap_and_the_daemon_serves_on);
	tcase_add_test(tc, client_cap_holds);
	tcase_add_test(tc, free_of_a_block_of_an_arena_made_since_goes_to_the_cache);
	suite_add_tcase(s, tc);
	return s;
}
