/* SPDX-License-Identifier: MIT */
/*
 * A region (server/heap/region.c) ends with its client's process, not with
 * its connection.  A region client whose connection ends while its process
 * lives keeps every block it holds: nobody else is handed one until the
 * process is gone; then the sweep ends the region and every byte of it
 * comes back.  The client here is a raw peer (a forked child that asks for
 * a region in its Hello, takes blocks, closes its socket and waits), so the
 * suite runs in every build, ASan's too; the preload suite
 * (check_preload.c, tcase region) covers regions of real programs.
 */
#include "e2e.h"
#include "raw.h"
#include "shmalloc.h"
#include "sizeclass.h"
#include "wire.h"

#include <check.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HELD 2000
#define SIZE 64
#define BIG ((uint64_t)1 << 20)

/* What the region client took, shared with the test. */
struct held {
	uint64_t refs[HELD];
	uint64_t large;
	int ready[2], go[2];
};

/* The region client: a region Hello, HELD objects and a large block, then
 * its connection closed while it lives on until told to go. */
static int hold_and_hang_up(struct held *h)
{
	int fd = raw_region_peer(e2e.socket);
	if (fd < 0)
		return 1;
	Shma__Response *r;
	for (size_t n = 0; n < HELD;) {
		uint32_t want = HELD - n < 256 ? (uint32_t)(HELD - n) : 256;
		size_t got = raw_refill_refs(fd, sizeclass_of(SIZE), want, h->refs + n);
		if (got == 0)
			return 3;
		n += got;
	}
	r = raw_alloc_large(fd, BIG);
	if (r->body_case != SHMA__RESPONSE__BODY_ALLOC_LARGE)
		return 4;
	h->large = r->alloc_large->ref;
	shma__response__free_unpacked(r, NULL);
	close(fd);
	char c = 1;
	if (write(h->ready[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
		return 5;
	return 0;
}

static int cmp_ref(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* How many of the library's n new blocks of SIZE (and two large ones) are
 * the region client's. */
static unsigned taken_from(struct held *h, unsigned n)
{
	qsort(h->refs, HELD, sizeof h->refs[0], cmp_ref);
	void **p = mmap(NULL, n * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	unsigned taken = 0;
	for (unsigned i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(p[i] = shma_malloc(SIZE));
		uint64_t ref = shma_ref(p[i]);
		taken += bsearch(&ref, h->refs, HELD, sizeof ref, cmp_ref) != NULL;
	}
	void *big[2];
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(big[i] = shma_malloc(BIG));
		taken += shma_ref(big[i]) == h->large;
	}
	for (unsigned i = 0; i < n; i++)
		shma_free(p[i]);
	for (unsigned i = 0; i < 2; i++)
		shma_free(big[i]);
	munmap(p, n * sizeof *p);
	return taken;
}

/* A region that ended at its connection's end whatever its process did
 * gave another client (which then overwrote them) 1992 of its 2000 live
 * blocks.  (Planted: end_region() called in daemon_control_release() for a
 * process still alive: here all 2000 were handed out again.) */
START_TEST(a_region_outlives_its_connection_not_its_process)
{
	struct held *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			      -1, 0);
	ck_assert_ptr_ne(h, MAP_FAILED);
	ck_assert_int_eq(pipe(h->ready), 0);
	ck_assert_int_eq(pipe(h->go), 0);
	uint64_t base = e2e_stat("\"in_use_bytes\":");
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(hold_and_hang_up(h));
	close(h->ready[1]);
	char c;
	ck_assert_msg(read(h->ready[0], &c, 1) == 1, "the region client ended with %d",
		      e2e_wait(pid));
	/* The daemon has read the connection's end. */
	int peer = raw_peer(e2e.socket);
	ck_assert_int_eq(raw_wait_connections_of(peer, pid, 0), 0);
	unsigned taken = taken_from(h, 2 * HELD);
	ck_assert_msg(taken == 0, "%u of the live region's blocks handed out again", taken);
	ck_assert_uint_eq(e2e_stat("\"regions\":"), 1);
	ck_assert_uint_ge(e2e_stat("\"in_use_bytes\":"),
			  base + HELD * sizeclass_size(sizeclass_of(SIZE)) + BIG);
	/* The process goes: the sweep ends its region. */
	ck_assert_int_eq(write(h->go[1], &c, 1), 1);
	ck_assert_int_eq(e2e_wait(pid), 0);
	for (int i = 0; i < 500 && e2e_stat("\"regions\":") != 0; i++)
		usleep(10000);
	ck_assert_uint_eq(e2e_stat("\"regions\":"), 0);
	shma_disconnect(); /* our caches back too */
	ck_assert_uint_le(e2e_wait_in_use_at_most(base), base);
	close(peer);
	munmap(h, sizeof *h);
}
END_TEST

Suite *make_region_suite(void);
Suite *make_region_suite(void)
{
	Suite *s = suite_create("region");
	TCase *tc = tcase_create("lifetime");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_region_outlives_its_connection_not_its_process);
	suite_add_tcase(s, tc);
	return s;
}
