/* SPDX-License-Identifier: MIT */
/*
 * Debug mode and tools: a planted overflow, double free and leak are each
 * reported; the trace log reads back; and a use after free is caught by
 * Valgrind and by ASan in a program that uses shared blocks.
 */
#include "e2e.h"
#include "shmalloc.h"
#include "sizeclass.h"
#include "skip.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

static char errpath[128];
static int saved_stderr = -1;

/* Sends this process's stderr to a file, to read reports back. */
static void capture_stderr(void)
{
	snprintf(errpath, sizeof errpath, "%s/stderr.txt", e2e.dir);
	int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *captured(void)
{
	static char buf[16384];
	if (saved_stderr >= 0) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
	FILE *f = fopen(errpath, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(errpath);
	return buf;
}

START_TEST(overflow_is_reported_on_free)
{
	setenv("SHMALLOC_DEBUG", "1", 1);
	capture_stderr();
	char *p = shma_malloc(10);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(shma_usable_size(p), 10);
	char ref[32];
	snprintf(ref, sizeof ref, "ref %#llx", (unsigned long long)shma_ref(p));
	/* One byte too far, through a pointer the compiler cannot follow: it
	 * knows the block's size (alloc_size) and would refuse to build this. */
	char *volatile far = p + 10;
	*far = 'x';
	shma_free(p);
	char *out = captured();
	ck_assert_msg(strstr(out, "overflow") && strstr(out, ref) && strstr(out, "10 bytes"),
		      "no overflow report: %s", out);
}
END_TEST

/* One byte past the end, at the sizes where the canary and the trailer sit
 * differently in the block: n + 16 exactly a class (the canary then ends
 * where the trailer starts), one byte less (a byte of slack), one more (the
 * next class), across the small classes and into large blocks.  (Planted:
 * requested() in debug.c taking a block of n + 16 == usable for one
 * allocated without debug mode: no report at the class size minus 16.) */
START_TEST(overflow_is_reported_at_every_size)
{
	setenv("SHMALLOC_DEBUG", "1", 1);
	size_t sizes[3 * 16 + 4], n = 0;
	for (unsigned cls = 1; cls < SIZECLASS_COUNT && n + 3 <= 3 * 16; cls += SIZECLASS_COUNT / 16) {
		size_t c = sizeclass_size(cls);
		sizes[n++] = c - 17;
		sizes[n++] = c - 16;
		sizes[n++] = c - 15;
	}
	sizes[n++] = ((size_t)256 << 10) - 16; /* large: n + 16 is a page run */
	sizes[n++] = ((size_t)256 << 10) - 17;
	sizes[n++] = ((size_t)1 << 20) - 16;
	sizes[n++] = 300000;
	capture_stderr();
	for (size_t i = 0; i < n; i++) {
		char *p = shma_malloc(sizes[i]);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(shma_usable_size(p), sizes[i]);
		char *volatile far = p + sizes[i];
		*far = 'x';
		shma_free(p);
	}
	char *out = captured();
	int reports = 0;
	for (const char *at = out; (at = strstr(at, "was written past its end")) != NULL; at++)
		reports++;
	ck_assert_msg(reports == (int)n, "%d overflow reports for %zu overflows: %s", reports, n, out);
	for (size_t i = 0; i < n; i++) {
		char bytes[48];
		snprintf(bytes, sizeof bytes, ", %zu bytes)", sizes[i]);
		ck_assert_msg(strstr(out, bytes) != NULL, "no report of a %zu-byte block: %s",
			      sizes[i], out);
	}
}
END_TEST

START_TEST(double_free_is_caught)
{
	setenv("SHMALLOC_DEBUG", "1", 1);
	setenv("SHMALLOC_CHECK", "warn", 1); /* report and go on (freecheck.c) */
	capture_stderr();
	char *p = shma_malloc(32);
	shma_free(p);
	shma_free(p);
	char *q = shma_malloc(32), *r = shma_malloc(32);
	char *out = captured();
	ck_assert_msg(strstr(out, "double free") != NULL, "no double free report: %s", out);
	ck_assert_ptr_ne(q, r); /* the second free did not put it in twice */
	shma_free(q);
	shma_free(r);
}
END_TEST

START_TEST(freed_blocks_are_poisoned)
{
	setenv("SHMALLOC_DEBUG", "1", 1);
	unsigned char *p = shma_malloc(64);
	memset(p, 0, 64);
	shma_free(p);
#ifdef __SANITIZE_ADDRESS__
	__asan_unpoison_memory_region(p, 64); /* this read is the test's own */
#endif
	for (int i = 16; i < 64; i++) /* past the link and the freed mark */
		ck_assert_uint_eq(p[i], 0xDD);
}
END_TEST

static int leaky_child(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++)
		shma_malloc(100);
	shma_malloc(5000);
	void *passed = shma_malloc(100);
	shma_ref(passed); /* handed on: not a leak */
	void *freed = shma_malloc(777);
	shma_free(freed);
	exit(0); /* atexit runs the report */
}

START_TEST(leaks_are_reported_at_exit_by_size)
{
	setenv("SHMALLOC_DEBUG", "1", 1);
	capture_stderr();
	ck_assert_int_eq(e2e_wait(e2e_fork(leaky_child, NULL)), 0);
	char *out = captured();
	ck_assert_msg(strstr(out, "leak: 4 blocks, 5300 bytes"), "no leak summary: %s", out);
	ck_assert_ptr_nonnull(strstr(out, "3 x 100 bytes"));
	ck_assert_ptr_nonnull(strstr(out, "1 x 5000 bytes"));
	ck_assert_ptr_null(strstr(out, "777"));
}
END_TEST

START_TEST(trace_log_reads_back)
{
	char trace[160], cmd[512];
	snprintf(trace, sizeof trace, "%s/trace.log", e2e.dir);
	setenv("SHMALLOC_TRACE", trace, 1);
	void *a = shma_malloc(40), *b = shma_malloc(300000);
	shma_malloc(24); /* never freed */
	shma_free(a);
	shma_free(b);
	snprintf(cmd, sizeof cmd, "python3 %s/scripts/shmalloc-trace %s", SRCDIR, trace);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	char out[4096];
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_msg(strstr(out, "3 allocations, 2 frees") && strstr(out, "1 x 24 bytes"),
		      "trace summary: %s", out);
	unlink(trace);
}
END_TEST

START_TEST(valgrind_sees_a_use_after_free)
{
#ifdef __SANITIZE_ADDRESS__
	TEST_SKIP("this build uses ASan, which Valgrind cannot run");
	return;
#endif
	if (system("valgrind --version >/dev/null 2>&1") != 0) {
		TEST_SKIP("valgrind is not installed");
		return;
	}
	const char *const argv[] = {"valgrind", "-q", "--error-exitcode=9", UAF_PATH, NULL};
	char out[16384];
	int status = e2e_run(argv, out, sizeof out);
	ck_assert_msg(status == 9, "valgrind exit %d: %s", status, out);
	ck_assert_msg(strstr(out, "Invalid read") && strstr(out, "free'd"), "%s", out);
}
END_TEST

START_TEST(asan_sees_a_use_after_free)
{
	const char *const argv[] = {UAF_ASAN_PATH, NULL};
	if (access(UAF_ASAN_PATH, X_OK) != 0) {
		TEST_SKIP("no ASan build of %s", UAF_ASAN_PATH);
		return;
	}
	char out[16384];
	int status = e2e_run(argv, out, sizeof out);
	ck_assert_msg(status != 0 && strstr(out, "AddressSanitizer") &&
			      strstr(out, "use-after-poison"),
		      "exit %d: %s", status, out);
}
END_TEST

Suite *make_debug_suite(void);
Suite *make_debug_suite(void)
{
	Suite *s = suite_create("debug");
	TCase *tc = tcase_create("debug");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, overflow_is_reported_on_free);
	tcase_add_test(tc, overflow_is_reported_at_every_size);
	tcase_add_test(tc, double_free_is_caught);
	tcase_add_test(tc, freed_blocks_are_poisoned);
	tcase_add_test(tc, leaks_are_reported_at_exit_by_size);
	tcase_add_test(tc, trace_log_reads_back);
	tcase_add_test(tc, valgrind_sees_a_use_after_free);
	tcase_add_test(tc, asan_sees_a_use_after_free);
	suite_add_tcase(s, tc);
	return s;
}
