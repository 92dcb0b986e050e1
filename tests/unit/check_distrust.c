/* SPDX-License-Identifier: MIT */
/*
 * What a broken daemon could change under the library (client/lib/
 * distrust.c, fast.h, xfer.c): the test writes into its own control block
 * as a daemon could (the library maps it read-write, and so does the
 * daemon), against the model daemon (modeld.h), and checks that malloc
 * hands out no pointer outside the heap and no block twice, and that each
 * fault is counted (said once on stderr).  Each test names the planted bug
 * it catches.
 */
#include "config.h"

#include "client.h"
#include "distrust.h"
#include "modeld.h"
#include "seg.h"
#include "shmalloc.h"
#include "sizeclass.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define OBJ 64
#define MANY 600

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

/* n blocks of size bytes from malloc: every one inside the heap's range,
 * past its first page, and no two overlapping. */
static void assert_sane(void **p, unsigned n, size_t size)
{
	for (unsigned i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(p[i]);
		uint64_t off = (uint64_t)((char *)p[i] - map_view.base);
		ck_assert_msg(off > 0 && off < map_view.range, "block %u at ref %#llx: outside the heap",
			      i, (unsigned long long)off);
	}
	qsort(p, n, sizeof *p, cmp_ptr);
	for (unsigned i = 1; i < n; i++)
		ck_assert_msg((char *)p[i] - (char *)p[i - 1] >= (ptrdiff_t)size,
			      "blocks %p and %p overlap", p[i - 1], p[i]);
}

/* Starts the model, and one malloc of OBJ bytes (p[0]) gives the thread its
 * cache and its bin of the class a refill: the thread's cache. */
static struct tcache *first_block(struct modeld *m, void **p)
{
	modeld_start(m, 3600000);
	p[0] = shma_malloc(OBJ);
	ck_assert_ptr_nonnull(p[0]);
	ck_assert_ptr_nonnull(tcache_self);
	return tcache_self;
}

/* The rest of p[MANY] from malloc, each block sane; the model stopped. */
static void malloc_rest(struct modeld *m, void **p)
{
	for (unsigned i = 1; i < MANY; i++)
		p[i] = shma_malloc(OBJ);
	assert_sane(p, MANY, OBJ);
	modeld_stop(m);
}

/* A bin's count set past its reserved refs in the control block, over
 * refs of a block handed out already: the bin is emptied (its blocks
 * leaked), the next mallocs refill, and every block is sane.  Catches: the
 * fast path's old bound (n <= low only), which popped the refs past the
 * room: the same block 8 times. */
START_TEST(a_count_past_the_room_is_refused)
{
	static void *p[MANY];
	struct modeld m;
	struct tcache *t = first_block(&m, p);
	unsigned cls = sizeclass_of(OBJ);
	uint32_t room = t->hot[cls].room;
	ck_assert_uint_gt(room, 0);
	uint64_t before = distrust_seen(DISTRUST_COUNT);
	/* What a broken daemon could leave: a count past the bin's reserved
	 * refs, over refs (the next bin's, say) of a block handed out. */
	for (uint32_t i = room; i < room + 7; i++)
		t->hot[cls].stack[i] = shma_ref(p[0]);
	__atomic_store_n(&t->slot->bins[cls].count, room + 7, __ATOMIC_RELEASE);
	malloc_rest(&m, p);
	ck_assert_uint_eq(distrust_seen(DISTRUST_COUNT), before + 1);
}
END_TEST

/* Refs of 0 and past the heap's range on top of a bin whose count is
 * within its room: neither is handed out (dropped, counted).  Catches: no
 * range test in fast_pop() (malloc returned the heap's base, then a
 * pointer past the heap). */
START_TEST(refs_outside_the_heap_in_a_bin_are_dropped)
{
	static void *p[MANY];
	struct modeld m;
	struct tcache *t = first_block(&m, p);
	unsigned cls = sizeclass_of(OBJ);
	uint32_t *count = &t->slot->bins[cls].count;
	uint32_t n = __atomic_load_n(count, __ATOMIC_ACQUIRE);
	ck_assert_uint_lt(n + 3, t->hot[cls].room);
	uint64_t before = distrust_seen(DISTRUST_BIN_REF);
	t->hot[cls].stack[n] = 0;
	t->hot[cls].stack[n + 1] = map_view.range + 4096;
	t->hot[cls].stack[n + 2] = UINT64_MAX - 7;
	__atomic_store_n(count, n + 3, __ATOMIC_RELEASE);
	malloc_rest(&m, p);
	ck_assert_uint_eq(distrust_seen(DISTRUST_BIN_REF), before + 3);
}
END_TEST

/* A full entry of the process's transfer cache, as a sibling thread's put
 * would leave it (slot 0's, not the daemon's first batch), holding a ref
 * inside a block handed out, one of another class, one in a page that is
 * no span's and 0: none enters the bin (each counted), every block sane.
 * Catches: take() checking only the daemon's first batches (slot
 * SHMA_XFER_NO_SLOT), which it did: malloc returned p[0] + 16. */
START_TEST(bad_refs_in_a_siblings_transfer_entry_are_dropped)
{
	static void *p[MANY];
	struct modeld m;
	struct tcache *t = first_block(&m, p);
	unsigned cls = sizeclass_of(OBJ);
	ck_assert_uint_eq(t->pending[cls], 0);
	void *other = shma_malloc(4 * OBJ);
	ck_assert_ptr_nonnull(other);
	struct control_block *cb = conn_control();
	uint64_t bad[] = {shma_ref(p[0]) + 16, shma_ref(other), SHMA_PAGE_SIZE, 0};
	uint32_t n = sizeof bad / sizeof bad[0];
	memcpy(cb->xfer_refs[cls][0], bad, sizeof bad);
	cb->hdr.xfer_bytes += n * sizeclass_size(cls); /* what a put takes of the budget */
	__atomic_store_n(&cb->hdr.xfer[cls].reserved, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&cb->hdr.xfer[cls].state[0], layout_xfer_word(SHMA_XFER_FULL, n, 0, 0),
			 __ATOMIC_RELEASE);
	uint64_t before = distrust_seen(DISTRUST_XFER_REF);
	malloc_rest(&m, p);
	ck_assert_uint_eq(distrust_seen(DISTRUST_XFER_REF), before + n);
	ck_assert_uint_eq(__atomic_load_n(&cb->hdr.xfer[cls].state[0], __ATOMIC_ACQUIRE),
			  SHMA_XFER_EMPTY);
}
END_TEST

/* The page entry of a freed block's page changed to a class of 256-byte
 * objects whose span, by the entry, ends before that page: the block goes
 * straight back to the daemon (counted), never into a bin, and no malloc of 256 bytes returns the 64-byte block
 * (which would overlap its neighbours).  Catches: check_fast_ok() without
 * its span bound (the free pushed the block on the 256-byte bin), and
 * judge_small() letting such a free go on. */
START_TEST(a_page_entry_whose_span_misses_the_page_is_not_believed)
{
	static void *p[MANY];
	struct modeld m;
	first_block(&m, p);
	unsigned big = sizeclass_of(256);
	ck_assert_uint_eq(sizeclass_size(big), 256);
	uint32_t pages = sizeclass_table[big].span_pages;
	for (unsigned i = 1; i < MANY; i++)
		p[i] = shma_malloc(OBJ);
	void *b = shma_malloc(256); /* the 256-byte bin made ready */
	ck_assert_ptr_nonnull(b);
	shma_free(b);
	/* A block at a 256-byte boundary on a page past the first few. */
	unsigned k = MANY;
	for (unsigned i = 0; i < MANY && k == MANY; i++) {
		uint64_t off = shma_ref(p[i]);
		if (off % 256 == 0 && ((off & (map_view.arena_size - 1)) >> SHMA_PAGE_SHIFT) > pages)
			k = i;
	}
	ck_assert_uint_lt(k, MANY);
	uint64_t off = shma_ref(p[k]);
	uint64_t msize;
	char *meta = modeld_map_meta(m.instance, &m.g, MODELD_ARENAS, &msize);
	ck_assert_ptr_nonnull(meta);
	struct page_entry *e = &modeld_page_map(meta, &m.g, 0)[off >> SHMA_PAGE_SHIFT];
	uint32_t page = (uint32_t)(off >> SHMA_PAGE_SHIFT);
	e->cls = (uint8_t)big;
	e->span_start = page - pages; /* the page is just past that span */
	uint64_t before = distrust_seen(DISTRUST_PAGE_MAP);
	modeld_sync(&m);
	uint64_t flushed = m.log->flushed_refs;
	shma_free(p[k]);
	ck_assert_uint_eq(distrust_seen(DISTRUST_PAGE_MAP), before + 1);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->flushed_refs, flushed + 1); /* the daemon's to judge */
	for (unsigned i = 0; i < 8; i++)
		ck_assert_ptr_ne(shma_malloc(256), p[k]);
	munmap(meta, msize);
	modeld_stop(&m);
}
END_TEST

/* A file of n bytes (a memfd), or -1. */
static int file_of(uint64_t n)
{
	int fd = memfd_create("distrust", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, (off_t)n) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* On a reconnection the segments the Hello passes are checked whole
 * against what is mapped of them: 'M' a page short and 'p' a page short
 * are refused, whole ones taken.  Catches: distrust_size_ok() believing
 * any size (the process mapped on and died of SIGBUS at its next touch
 * past the cut). */
START_TEST(segments_cut_short_are_refused_at_a_reconnection)
{
	static void *p[1];
	struct modeld m;
	first_block(&m, p);
	int fd = file_of(map_view.meta_size - SHMA_PAGE_SIZE);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(backing_keep(2, fd), 1) /* the reply's metadata */;
	ck_assert_int_eq(distrust_segments_whole(), 0);
	fd = file_of(map_view.meta_size);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(backing_keep(2, fd), 1) /* the reply's metadata */;
	ck_assert_int_eq(distrust_segments_whole(), 1);
	fd = file_of(map_view.range - SHMA_PAGE_SIZE);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(distrust_size_ok(fd, map_view.range), 0);
	ck_assert_int_eq(distrust_size_ok(fd, map_view.range - SHMA_PAGE_SIZE), 1);
	close(fd);
	modeld_stop(&m);
}
END_TEST

/* A bin's count set past its room, then a free of the class: the free
 * finds the bin emptied (its blocks leaked) and sends the daemon nothing
 * of the refs past the room.  Catches: tcache_free_slow() and flush_bin()
 * believing the count (the free flushed half of it: some 1 000 refs read
 * past the bin, the block freed among them). */
START_TEST(a_free_into_a_bin_counted_past_its_room_flushes_nothing_of_it)
{
	static void *p[1];
	struct modeld m;
	struct tcache *t = first_block(&m, p);
	unsigned cls = sizeclass_of(OBJ);
	uint32_t room = t->hot[cls].room;
	for (uint32_t i = room; i < room + 2000; i++)
		t->hot[cls].stack[i] = shma_ref(p[0]);
	modeld_sync(&m);
	uint64_t flushed = m.log->flushed_refs, before = distrust_seen(DISTRUST_COUNT);
	__atomic_store_n(&t->slot->bins[cls].count, room + 2000, __ATOMIC_RELEASE);
	shma_free(p[0]);
	modeld_sync(&m);
	ck_assert_uint_eq(m.log->flushed_refs, flushed);
	ck_assert_uint_eq(distrust_seen(DISTRUST_COUNT), before + 1);
	ck_assert_uint_eq(t->slot->bins[cls].count, 1); /* the block freed, alone */
	modeld_stop(&m);
}
END_TEST

Suite *make_distrust_suite(void);
Suite *make_distrust_suite(void)
{
	Suite *s = suite_create("distrust");
	TCase *tc = tcase_create("distrust");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_count_past_the_room_is_refused);
	tcase_add_test(tc, refs_outside_the_heap_in_a_bin_are_dropped);
	tcase_add_test(tc, bad_refs_in_a_siblings_transfer_entry_are_dropped);
	tcase_add_test(tc, a_page_entry_whose_span_misses_the_page_is_not_believed);
	tcase_add_test(tc, segments_cut_short_are_refused_at_a_reconnection);
	tcase_add_test(tc, a_free_into_a_bin_counted_past_its_room_flushes_nothing_of_it);
	suite_add_tcase(s, tc);
	return s;
}
