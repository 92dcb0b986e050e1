/* SPDX-License-Identifier: MIT */
/*
 * C++ containers in the shared heap (shmalloc.hpp): the program
 * tests/cxx_containers builds a std::map of vectors, a std::unordered_map of
 * strings and a long string with shma::allocator, publishes them, and a
 * second run looks them up, checks, grows and destroys them.  Each test
 * runs it against the fixture's daemon and checks that the heap's in-use
 * bytes come back to where they were: nothing leaked, nothing freed twice.
 *
 * The real test execs the two halves as two programs: only when every
 * process maps the heap at one base are the containers' inner pointers
 * valid in the second.  The same halves in one process, and across a fork
 * (which keeps the address layout), check the allocator and the test's own
 * logic apart from that.
 */
#include "e2e.h"
#include "shmalloc.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define IN_USE "\"in_use_bytes\":"

/* Runs the program in mode against the fixture's daemon, its output into
 * out.  Its exit status, or 128 + signal. */
static int run(const char *mode, char *out, size_t cap)
{
	const char *const argv[] = {CXX_CONTAINERS_PATH, mode, NULL};
	return e2e_run(argv, out, cap);
}

static void run_ok(const char *mode)
{
	char out[4096];
	int status = run(mode, out, sizeof out);
	ck_assert_msg(status == 0, "cxx_containers %s: exit %d: %s", mode, status, out);
}

/* in_use_bytes before the programs run; this process allocates nothing. */
static uint64_t in_use_at_start(void)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	return e2e_stat(IN_USE);
}

static void assert_in_use_back_to(uint64_t start)
{
	uint64_t now = e2e_wait_in_use_at_most(start);
	ck_assert_msg(now <= start, "in_use_bytes %llu, %llu at the start",
		      (unsigned long long)now, (unsigned long long)start);
}

START_TEST(containers_across_exec)
{
	uint64_t start = in_use_at_start();
	run_ok("build");
	/* The builder is gone and its containers live on: 64 vectors of 5k+1
	 * longs alone are 81 KB. */
	ck_assert_uint_ge(e2e_stat(IN_USE), start + 80000);
	run_ok("verify-change-destroy");
	assert_in_use_back_to(start);
}
END_TEST

START_TEST(containers_across_fork)
{
	uint64_t start = in_use_at_start();
	run_ok("fork");
	assert_in_use_back_to(start);
}
END_TEST

START_TEST(containers_in_one_process)
{
	uint64_t start = in_use_at_start();
	run_ok("both");
	assert_in_use_back_to(start);
}
END_TEST

START_TEST(allocate_of_an_impossible_size_throws)
{
	uint64_t start = in_use_at_start();
	run_ok("throws");
	assert_in_use_back_to(start);
}
END_TEST

/* A std::map in a named heap (shma::heap_allocator): built by one program,
 * which exits leaving its persistent heap; read, grown and destroyed with
 * the heap by a second, which reaches the heap by the allocator's id alone.
 * Every byte comes back. */
START_TEST(heap_map_across_exec)
{
	uint64_t start = in_use_at_start();
	const char *const build[] = {CXX_HEAPMAP_PATH, "build", NULL};
	const char *const read[] = {CXX_HEAPMAP_PATH, "read", NULL};
	char out[4096];
	int status = e2e_run(build, out, sizeof out);
	ck_assert_msg(status == 0, "cxx_heapmap build: exit %d: %s", status, out);
	/* 2000 nodes and their strings' storage, 100 B each at least. */
	ck_assert_uint_ge(e2e_stat(IN_USE), start + 200000);
	status = e2e_run(read, out, sizeof out);
	ck_assert_msg(status == 0, "cxx_heapmap read: exit %d: %s", status, out);
	assert_in_use_back_to(start);
}
END_TEST

Suite *make_cxx_suite(void);
Suite *make_cxx_suite(void)
{
	Suite *s = suite_create("cxx");
	TCase *tc = tcase_create("cxx");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, containers_in_one_process);
	tcase_add_test(tc, heap_map_across_exec);
	tcase_add_test(tc, containers_across_fork);
	tcase_add_test(tc, allocate_of_an_impossible_size_throws);
	tcase_add_test(tc, containers_across_exec);
	suite_add_tcase(s, tc);
	return s;
}
