/* SPDX-License-Identifier: MIT */
/*
 * Bad frees (client/lib/freecheck.c): each one made by a program of its own
 * (tests/badfree), which must die of SIGABRT with a line naming the pointer
 * by default, and with SHMALLOC_CHECK=warn go on and allocate 3000 blocks
 * (16 B to 1 MiB, all live) none of which overlaps another or a live one.
 * The same under SHMALLOC_DEBUG=1.  Each case passed silently before
 * freecheck.c: the next malloc returned p + 8, or a block twice.
 */
#include "config.h"
#include "e2e.h"
#include "shmalloc.h"
#include "skip.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

static char out[65536];

/* The pointer the program said it frees wrongly ("pointer 0x..."). */
static const char *pointer_of(const char *text)
{
	static char p[40];
	const char *at = strstr(text, "pointer 0x");
	ck_assert_msg(at != NULL, "the program named no pointer: %.2000s", text);
	sscanf(at + 8, "%39s", p);
	return p;
}

/* Runs tests/badfree with args, SHMALLOC_CHECK=check (NULL: unset). */
static int run(const char *check, const char *a, const char *b)
{
	if (check != NULL)
		setenv("SHMALLOC_CHECK", check, 1);
	else
		unsetenv("SHMALLOC_CHECK");
	const char *const argv[] = {BADFREE_PATH, a, b, NULL};
	int st = e2e_run(argv, out, sizeof out);
	unsetenv("SHMALLOC_CHECK");
	return st;
}

/* The line freecheck.c writes: "shmalloc[PID]: free(): <what> <pointer>...". */
static void expect_line(const char *what, const char *fn)
{
	const char *p = pointer_of(out);
	char want[128];
	snprintf(want, sizeof want, "%s(): %s", fn, what);
	const char *line = strstr(out, want);
	ck_assert_msg(line != NULL, "no \"%s\" line: %.2000s", want, out);
	const char *eol = strchr(line, '\n');
	ck_assert_msg(eol != NULL && memmem(line, (size_t)(eol - line), p, strlen(p)) != NULL,
		      "the line does not name %s: %.2000s", p, out);
}

/* One case: aborted by default, refused and harmless with warn. */
static void bad_free(const char *c, const char *what, const char *fn)
{
	int st = run(NULL, c, NULL);
	ck_assert_msg(st == 128 + SIGABRT, "%s: exit %d, not SIGABRT: %.2000s", c, st, out);
	expect_line(what, fn);
	ck_assert_msg(strstr(out, "; aborting") != NULL, "%.2000s", out);
	st = run("warn", c, NULL);
	ck_assert_msg(st == 0, "%s with SHMALLOC_CHECK=warn: exit %d: %.2000s", c, st, out);
	expect_line(what, fn);
	ck_assert_msg(strstr(out, "no overlap in") != NULL, "%.2000s", out);
}

static int under_valgrind(void)
{
#ifdef HAVE_VALGRIND_VALGRIND_H
	return RUNNING_ON_VALGRIND;
#else
	return 0;
#endif
}

/* Each case of tests/badfree, what its line must say, and in which call. */
static const struct {
	const char *name, *what, *fn;
} cases[] = {
	{"interior", "invalid pointer", "free"},       /* p + 8 of a live 64-byte block */
	{"interior16", "invalid pointer", "free"},     /* p + 16: aligned, still inside */
	{"double", "double free detected", "free"},    /* 64 bytes, twice */
	{"double-after-flush", "double free detected", "free"}, /* free in the heap */
	{"large-double", "double free detected", "free"},   /* 1 MiB, twice */
	{"large-interior", "invalid pointer", "free"}, /* 1 MiB, p + 8 */
	{"local", "invalid pointer", "free"},          /* &local: not the heap's */
	{"realloc-freed", "double free detected", "realloc"},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

START_TEST(each_bad_free)
{
	bad_free(cases[_i].name, cases[_i].what, cases[_i].fn);
}
END_TEST

/* SHMALLOC_CHECK=0: no line, and still nothing handed out twice. */
START_TEST(check_0_refuses_without_a_word)
{
	for (int i = 0; i < NCASES; i++) {
		int st = run("0", cases[i].name, NULL);
		ck_assert_msg(st == 0 && strstr(out, "shmalloc[") == NULL &&
				      strstr(out, "no overlap in") != NULL,
			      "%s: exit %d: %.2000s", cases[i].name, st, out);
	}
}
END_TEST

/* The freed mark of a block handed out again is gone, by every call that
 * hands blocks out (else a good free later finds it: "carries the freed
 * mark", refused), in plain and debug mode. */
START_TEST(good_frees_say_nothing)
{
	int st = run(NULL, "clean", NULL);
	ck_assert_msg(st == 0 && strstr(out, "shmalloc[") == NULL, "exit %d: %.2000s", st, out);
	setenv("SHMALLOC_DEBUG", "1", 1);
	st = run(NULL, "clean", NULL);
	unsetenv("SHMALLOC_DEBUG");
	ck_assert_msg(st == 0 && strstr(out, "shmalloc[") == NULL, "debug: exit %d: %.2000s", st,
		      out);
}
END_TEST

/* Process A frees a block (it sits in A's cache); B frees it again. */
static void across_processes(const char *check, int want)
{
	int to_a[2], from_a[2];
	ck_assert_int_eq(pipe(to_a), 0);
	ck_assert_int_eq(pipe(from_a), 0);
	char name[64];
	snprintf(name, sizeof name, "badfree-%ld-%s", (long)getpid(), check ? check : "abort");
	pid_t a = fork();
	ck_assert_int_ge(a, 0);
	if (a == 0) {
		dup2(to_a[0], 0);
		dup2(from_a[1], 1);
		close(to_a[1]);
		close(from_a[0]);
		setenv("SHMALLOC_SOCKET", e2e.socket, 1);
		execl(BADFREE_PATH, BADFREE_PATH, "hold", name, (char *)NULL);
		_exit(127);
	}
	close(to_a[0]);
	close(from_a[1]);
	char buf[64] = "";
	ssize_t n = read(from_a[0], buf, sizeof buf - 1); /* "freed": A's cache has it */
	ck_assert_msg(n > 0 && strncmp(buf, "freed", 5) == 0, "A said: %s", buf);
	int st = run(check, "refree", name);
	ck_assert_msg(st == want, "B exited %d, not %d: %.2000s", st, want, out);
	expect_line("double free detected", "free");
	ck_assert_msg(strstr(out, "in the cache of pid") != NULL, "%.2000s", out);
	close(to_a[1]);
	close(from_a[0]);
	ck_assert_int_eq(e2e_wait(a), 0);
}

START_TEST(a_block_freed_here_and_by_another_process)
{
	across_processes(NULL, 128 + SIGABRT);
	across_processes("warn", 0);
	ck_assert_msg(strstr(out, "no overlap in") != NULL, "%.2000s", out);
}
END_TEST

START_TEST(debug_mode_catches_them_too)
{
	if (under_valgrind()) {
		TEST_SKIP("under Valgrind memcheck reports these frees itself");
		return;
	}
	setenv("SHMALLOC_DEBUG", "1", 1);
	for (int i = 0; i < NCASES; i++)
		bad_free(cases[i].name, cases[i].what, cases[i].fn);
	unsetenv("SHMALLOC_DEBUG");
}
END_TEST

Suite *make_badfree_suite(void);
Suite *make_badfree_suite(void)
{
	Suite *s = suite_create("badfree");
	TCase *tc = tcase_create("badfree");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, each_bad_free, 0, NCASES);
	tcase_add_test(tc, good_frees_say_nothing);
	tcase_add_test(tc, check_0_refuses_without_a_word);
	tcase_add_test(tc, a_block_freed_here_and_by_another_process);
	tcase_add_test(tc, debug_mode_catches_them_too);
	suite_add_tcase(s, tc);
	return s;
}
