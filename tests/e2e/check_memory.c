/* SPDX-License-Identifier: MIT */
/*
 * The memory model, end to end: one heap at one address in every process,
 * no holes, and caches that nothing written into a freed block can redirect.
 */
#include "e2e.h"
#include "layout.h"
#include "shmalloc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

/* Runs LISTWALK_PATH mode in a child with fds in and out; returns its pid. */
static pid_t exec_listwalk(const struct e2e_daemon *d, const char *mode, int in, int out)
{
	char a[16], b[16];
	snprintf(a, sizeof a, "%d", in);
	snprintf(b, sizeof b, "%d", out);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("SHMALLOC_SOCKET", d->socket, 1);
		execl(LISTWALK_PATH, "listwalk", mode, a, b, (char *)NULL);
		_exit(127);
	}
	return pid;
}

START_TEST(two_execd_programs_share_a_list_by_raw_pointers)
{
	struct e2e_daemon d;
	/* 2 MiB arenas: the largest payloads are blocks of several arenas. */
	const char *const extra[] = {"--arena-size", "2M", NULL};
	e2e_start_daemon(&d, extra);
	int to_reader[2], to_writer[2];
	ck_assert_int_eq(pipe(to_reader), 0);
	ck_assert_int_eq(pipe(to_writer), 0);
	/* The reader connects while the heap has one arena, and allocates
	 * nothing until it has walked what the writer built. */
	pid_t reader = exec_listwalk(&d, "reader", to_reader[0], to_writer[1]);
	uint64_t ready;
	ck_assert_int_eq(read(to_writer[0], &ready, sizeof ready), (ssize_t)sizeof ready);
	pid_t writer = exec_listwalk(&d, "writer", to_writer[0], to_reader[1]);
	ck_assert_int_eq(e2e_wait(writer), 0);
	ck_assert_int_eq(e2e_wait(reader), 0);
	close(to_reader[0]);
	close(to_reader[1]);
	close(to_writer[0]);
	close(to_writer[1]);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	/* Past several arenas, and everything came back. */
	ck_assert_uint_ge(e2e_stat("\"mapped_bytes\":"), 4 * (8u << 20));
	ck_assert_uint_eq(e2e_wait_in_use_at_most(0), 0);
	ck_assert_uint_eq(e2e_stat("\"rejected\":"), 0);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

#define HELD 2000

/* What the parent holds: refs and addresses the child writes into its
 * freed blocks. */
struct held {
	uint64_t ref[HELD];
	void *ptr[HELD];
};

static size_t held_size(unsigned i)
{
	return 16 + (i % 12) * 16;
}

static int scribble_freed_blocks_and_die(void *arg)
{
	const struct held *h = arg;
	static void *mine[HELD];
	for (unsigned i = 0; i < HELD; i++)
		if ((mine[i] = shma_malloc(held_size(i))) == NULL)
			return 10;
	for (unsigned i = 0; i < HELD; i++)
		shma_free(mine[i]);
	/* A use after free of the worst kind: every freed block names a block
	 * another process holds, as a ref and as an address. */
	for (unsigned i = 0; i < HELD; i++) {
		uint64_t *w = mine[i];
#ifdef __SANITIZE_ADDRESS__
		__asan_unpoison_memory_region(w, 16); /* it is the point */
#endif
		w[0] = h->ref[(i * 7) % HELD];
		w[1] = (uint64_t)(uintptr_t)h->ptr[(i * 13) % HELD];
	}
	kill(getpid(), SIGKILL);
	return 11;
}

/* Allocates n blocks of the held sizes; 1 if one of them is a held block. */
static int allocate_and_find_held(const struct held *h, unsigned n)
{
	static void *p[20000];
	int found = 0;
	for (unsigned i = 0; i < n; i++) {
		p[i] = shma_malloc(held_size(i));
		for (unsigned k = 0; p[i] != NULL && k < HELD && !found; k++)
			found = p[i] == h->ptr[k];
	}
	for (unsigned i = 0; i < n; i++)
		shma_free(p[i]);
	return found;
}

static int allocate_elsewhere(void *arg)
{
	return allocate_and_find_held(arg, 20000) ? 20 : 0;
}

START_TEST(what_a_dead_program_wrote_into_freed_blocks_frees_nothing)
{
	struct held *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(h, MAP_FAILED);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	for (unsigned i = 0; i < HELD; i++) {
		h->ptr[i] = shma_malloc(held_size(i));
		ck_assert_ptr_nonnull(h->ptr[i]);
		e2e_fill(h->ptr[i], held_size(i), i);
		h->ref[i] = shma_ref(h->ptr[i]);
	}
	uint64_t in_use = e2e_stat("\"in_use_bytes\":");
	ck_assert_int_eq(e2e_wait(e2e_fork(scribble_freed_blocks_and_die, h)), 128 + SIGKILL);
	for (int i = 0; i < 100 && e2e_stat("\"reclaimed_objects\":") < HELD; i++)
		usleep(50000);
	/* Its caches came back, all of them, and nothing else. */
	ck_assert_uint_ge(e2e_stat("\"reclaimed_objects\":"), HELD);
	ck_assert_uint_le(e2e_stat("\"in_use_bytes\":"), in_use);
	for (unsigned i = 0; i < HELD; i++)
		ck_assert(e2e_check_fill(h->ptr[i], held_size(i), i));
	/* None of the held blocks is handed out again, here or elsewhere. */
	ck_assert_int_eq(allocate_and_find_held(h, 20000), 0);
	ck_assert_int_eq(e2e_wait(e2e_fork(allocate_elsewhere, h)), 0);
	for (unsigned i = 0; i < HELD; i++) {
		ck_assert(e2e_check_fill(h->ptr[i], held_size(i), i));
		shma_free(h->ptr[i]);
	}
	munmap(h, sizeof *h);
}
END_TEST

START_TEST(a_freed_large_block_is_reused_without_a_round_trip)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	shma_free(shma_malloc(64)); /* a thread slot, where waits are counted */
	char *p = shma_malloc(2u << 20);
	ck_assert_ptr_nonnull(p);
	memset(p, 1, 2u << 20);
	shma_free(p);
	uint64_t waits = e2e_stat("\"malloc_waits\":");
	for (int i = 0; i < 100; i++) {
		char *q = shma_malloc((2u << 20) - (size_t)i * 4096);
		ck_assert_ptr_eq(q, p); /* the same pages, faulted in already */
		q[i] = 2;
		shma_free(q);
	}
	ck_assert_uint_eq(e2e_stat("\"malloc_waits\":"), waits);
	/* Kept, not lost: disconnecting gives it back. */
	shma_disconnect();
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_uint_eq(e2e_wait_in_use_at_most(0), 0);
}
END_TEST

#define BASE UINT64_C(0x500000000000)

/* Bytes /dev/shm holds for the segments of kind k of d's instance. */
static uint64_t kind_bytes(const struct e2e_daemon *d, char k)
{
	char prefix[96];
	int n = snprintf(prefix, sizeof prefix, "shmalloc.%s.%c", d->instance, k);
	DIR *dir = opendir("/dev/shm");
	ck_assert_ptr_nonnull(dir);
	uint64_t bytes = 0;
	struct dirent *e;
	struct stat st;
	while ((e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, prefix, (size_t)n) == 0 &&
		    fstatat(dirfd(dir), e->d_name, &st, 0) == 0)
			bytes += (uint64_t)st.st_blocks * 512;
	closedir(dir);
	return bytes;
}

/* Polls (20 s at most; --decay 1 takes 2 to 3) until /dev/shm holds less
 * than bound bytes for d's segments of kind k: what it holds last. */
static uint64_t kind_bytes_below(const struct e2e_daemon *d, char k, uint64_t bound)
{
	uint64_t bytes = kind_bytes(d, k);
	for (int i = 0; i < 400 && bytes >= bound; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		bytes = kind_bytes(d, k);
	}
	return bytes;
}

/* The metadata the arenas of d reserved when they were made. */
static uint64_t arenas_meta_bytes(const struct e2e_daemon *d)
{
	ck_assert_int_eq(shma_connect(d->socket), 0);
	char *json;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	unsigned narenas = 0;
	for (const char *p = json; (p = strstr(p, "\"quarantined\"")) != NULL; p++)
		narenas++;
	free(json);
	shma_disconnect();
	struct arena_geometry g;
	ck_assert_int_eq(layout_geometry((uint64_t)64 << 20, &g), 0);
	return narenas * g.meta_bytes;
}

/* A program that made 256 MiB of small blocks and 8 large ones, freed
 * them and went idle -- asking nothing of the library, so its own decay
 * never runs: the daemon takes back the large blocks it kept (server/kept.h)
 * and decay gives their pages back.  Then it does it again, over bitmaps
 * that decay punched with the pages (arena_bitmap_punch()), and no two of
 * its blocks overlap; once it is gone the metadata holds less than half of
 * what the arenas reserved.  Catches the daemon leaving an idle client's
 * kept blocks alone (32 MiB of 'p' stay) and decay leaving the bitmaps
 * (the metadata stays whole: 648 KiB an arena). */
START_TEST(an_idle_program_and_freed_spans_give_their_store_back)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--decay", "1", NULL};
	e2e_start_daemon(&d, extra);
	int in[2], out[2];
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		setenv("SHMALLOC_SOCKET", d.socket, 1);
		execl(PROBE_PATH, "probe", "burst", "256", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	FILE *said = fdopen(out[0], "r");
	char line[128];
	ck_assert_ptr_nonnull(fgets(line, sizeof line, said));
	ck_assert_str_eq(line, "burst: freed\n");
	uint64_t pages = kind_bytes_below(&d, 'p', 12u << 20);
	ck_assert_msg(pages < (12u << 20), "the idle program's pages hold %llu bytes",
		      (unsigned long long)pages);
	ck_assert_int_eq(write(in[1], "go\n", 3), 3);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, said));
	ck_assert_str_eq(line, "burst: 0 OK: success\n");
	ck_assert_int_eq(e2e_wait(pid), 0);
	fclose(said);
	close(in[1]);
	uint64_t reserved = arenas_meta_bytes(&d);
	uint64_t meta = kind_bytes_below(&d, 'M', reserved / 2);
	ck_assert_msg(meta < reserved / 2, "the metadata holds %llu bytes of the %llu reserved",
		      (unsigned long long)meta, (unsigned long long)reserved);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(the_heap_sits_at_the_base_or_refs_say_where)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--base", "500000000000", NULL};
	e2e_start_daemon(&d, extra);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	ck_assert_int_eq(shma_same_address(), 1);
	char *p = shma_malloc(100), *big = shma_malloc(1u << 20);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(big);
	/* A ref is the offset from the base; the pointer is the same number in
	 * every process mapped there. */
	ck_assert_ptr_eq(p, (char *)(uintptr_t)(BASE + shma_ref(p)));
	ck_assert_ptr_eq(shma_ptr(shma_ref(p)), p);
	ck_assert_ptr_eq(shma_ptr(shma_ref(big + 12345)), big + 12345);
	/* A block larger than an arena (64 MiB): any byte of it is in it. */
	char *huge = shma_malloc(100u << 20);
	ck_assert_ptr_nonnull(huge);
	ck_assert_uint_ge(shma_usable_size(huge), 100u << 20);
	ck_assert_uint_eq(shma_ref(huge + (80u << 20)), shma_ref(huge) + (80u << 20));
	ck_assert_ptr_eq(shma_ptr(shma_ref(huge + (99u << 20))), huge + (99u << 20));
	huge[(100u << 20) - 1] = 1;
	shma_free(huge);
	strcpy(p, "hello from the base");
	ck_assert_int_eq(shma_publish("greeting", shma_ref(p)), 0);
	/* A program that finds the base taken maps elsewhere and says so; refs
	 * work there both ways. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("SHMALLOC_SOCKET", d.socket, 1);
		execl(LISTWALK_PATH, "listwalk", "elsewhere", "500000000000", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(e2e_wait(pid), 0);
	shma_ref_t reply;
	ck_assert_int_eq(shma_lookup("reply", &reply), 0);
	ck_assert_str_eq(shma_ptr(reply), "hello from elsewhere");
	ck_assert(e2e_log_has(&d, "could not map the heap at its base"));
	ck_assert(e2e_stat("\"same_address\":") == 1);
	shma_free(shma_ptr(reply));
	shma_free(p);
	shma_free(big);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

Suite *make_memory_suite(void);
Suite *make_memory_suite(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("model");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, two_execd_programs_share_a_list_by_raw_pointers);
	tcase_add_test(tc, the_heap_sits_at_the_base_or_refs_say_where);
	tcase_add_test(tc, an_idle_program_and_freed_spans_give_their_store_back);
	suite_add_tcase(s, tc);
	tc = tcase_create("reclaim");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_add_test(tc, what_a_dead_program_wrote_into_freed_blocks_frees_nothing);
	tcase_add_test(tc, a_freed_large_block_is_reused_without_a_round_trip);
	suite_add_tcase(s, tc);
	return s;
}
