/* SPDX-License-Identifier: MIT */
/*
 * The preload suite: unmodified programs under shmalloc-run.
 *
 * Real Debian programs (python3, sqlite3, sort, bash, gcc, git) give the
 * same output and exit status under shmalloc-run as without it; each test
 * skips (SKIP: on stderr) when its program is absent.  Small programs of
 * tests/e2e/preload/ check what a program cannot show on its own: no
 * deadlock on re-entry with many pthread keys, free() keeping errno, fork()
 * giving the child a copy.  And shmalloc-run itself: a dead --socket fails
 * before COMMAND starts, no daemon at all starts a private one and removes
 * it, COMMAND's status comes back, the library without a daemon falls back
 * to the C library's malloc.
 *
 * After each program the daemon's in-use bytes are back to what they were
 * before it: a shmalloc-run process is a region client, and what it still
 * holds when it ends goes with it (tests/e2e/preload/region.c shows the
 * rest: a SIGKILL, lazy reservation, a block freed by another process).
 * Built with sanitizers, the suite skips: an ASan library cannot be
 * preloaded into programs built without it.
 */
#include "e2e.h"
#include "instance.h"
#include "layout.h"
#include "raw.h"
#include "seg.h"
#include "shmalloc.h"
#include "wire.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SHMALLOC_RUN_PATH
#error "SHMALLOC_RUN_PATH, PRELOAD_LIB_PATH and TESTS_BUILDDIR come from tests/e2e/preload.mk"
#endif


#define TIMEOUT_S 40

static char work[256]; /* a directory of the test's own */

static void setup(void)
{
	e2e_preload_setup(work, sizeof work, "work");
}

static void teardown(void)
{
	e2e_preload_teardown(work);
}

static int skipped(const char *name, const char *program)
{
	if (SANITIZED) {
		fprintf(stderr, "SKIP: %s: built with sanitizers (the library cannot be preloaded)\n",
			name);
		return 1;
	}
	if (program != NULL && access(program, X_OK) != 0) {
		fprintf(stderr, "SKIP: %s: %s is not installed\n", name, program);
		return 1;
	}
	return 0;
}

static char *path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", work, name);
	return buf;
}

/* Runs argv (under shmalloc-run if shm) in work/, stdin from in, stdout and
 * stderr to files; returns its status (128 + signal if killed), or fails
 * the test when it runs past TIMEOUT_S. */
static int run(int shm, const char *const *argv, const char *in, const char *out,
	       const char *err)
{
	const char *full[64];
	int n = 0;
	if (shm)
		full[n++] = SHMALLOC_RUN_PATH;
	for (; *argv && n < 63; argv++)
		full[n++] = *argv;
	full[n] = NULL;
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd0 = open(in ? in : "/dev/null", O_RDONLY);
		int fd1 = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fd2 = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd0 < 0 || fd1 < 0 || fd2 < 0 || dup2(fd0, 0) < 0 || dup2(fd1, 1) < 0 ||
		    dup2(fd2, 2) < 0 || chdir(work) != 0)
			_exit(120);
		execvp(full[0], (char *const *)full);
		_exit(127);
	}
	for (int waited = 0;; waited++) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (waited >= TIMEOUT_S * 100) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("%s did not end within %d s", full[shm], TIMEOUT_S);
		}
		usleep(10000);
	}
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs argv without and then under shmalloc-run; asserts the same status
 * and the same stdout, and that the status is want. */
static void same_both_ways(const char *name, const char *const *argv, const char *in, int want)
{
	char in_path[300], out0[300], out1[300], err0[300], err1[300];
	const char *inp = in ? path_in(in_path, sizeof in_path, in) : NULL;
	uint64_t base = e2e_stat("\"in_use_bytes\":");
	path_in(out0, sizeof out0, "out.glibc");
	path_in(out1, sizeof out1, "out.shm");
	path_in(err0, sizeof err0, "err.glibc");
	path_in(err1, sizeof err1, "err.shm");
	double t0 = now_s();
	int st0 = run(0, argv, inp, out0, err0);
	double t1 = now_s();
	int st1 = run(1, argv, inp, out1, err1);
	double t2 = now_s();
	size_t n0, n1;
	char *a = slurp(out0, &n0), *b = slurp(out1, &n1), *e1 = slurp(err1, NULL);
	ck_assert_msg(st0 == want, "%s without shmalloc-run exited %d, not %d", name, st0, want);
	ck_assert_msg(st1 == st0, "%s exited %d under shmalloc-run, %d without; stderr: %.500s",
		      name, st1, st0, e1);
	ck_assert_msg(n0 > 0, "%s printed nothing", name);
	ck_assert_msg(n0 == n1 && memcmp(a, b, n0) == 0,
		      "%s printed other things under shmalloc-run (%zu bytes, %zu without); "
		      "stderr: %.500s", name, n1, n0, e1);
	ck_assert_msg(strstr(e1, "shmalloc") == NULL, "%s: shmalloc complained: %.500s", name, e1);
	free(a);
	free(b);
	free(e1);
	uint64_t after = e2e_wait_in_use_at_most(base);
	fprintf(stderr, "preload: %s: %.2f s with glibc, %.2f s under shmalloc-run; "
		"daemon in use before: %llu bytes, after: %llu\n", name, t1 - t0, t2 - t1,
		(unsigned long long)base, (unsigned long long)after);
	ck_assert_msg(after <= base, "%s left %llu bytes in use (%llu before it)", name,
		      (unsigned long long)after, (unsigned long long)base);
}

/* ---- real programs ---- */

START_TEST(python3_dicts_and_lists)
{
	if (skipped("python3", "/usr/bin/python3"))
		return;
	const char *argv[] = {"/usr/bin/python3", "-c",
			      "import collections\n"
			      "d = {i: str(i) * 3 for i in range(200000)}\n"
			      "l = [x * 2 for x in range(300000)]\n"
			      "c = collections.Counter(v[:2] for v in d.values())\n"
			      "s = sorted(set(map(lambda x: x % 9973, l)))\n"
			      "big = [bytearray(1000 + i) for i in range(300)]\n"
			      "print(len(d), sum(l), c.most_common(3), len(s), sum(map(len, big)))\n",
			      NULL};
	same_both_ways("python3", argv, NULL, 0);
}
END_TEST

START_TEST(sqlite3_inserts_and_queries)
{
	if (skipped("sqlite3", "/usr/bin/sqlite3"))
		return;
	char sql[300];
	write_file(path_in(sql, sizeof sql, "t.sql"),
		   "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);\n"
		   "BEGIN;\n"
		   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)\n"
		   "INSERT INTO t SELECT x, 'name' || (x * 7919 % 100003), x * 0.5 FROM c;\n"
		   "COMMIT;\n"
		   "CREATE INDEX ti ON t(name);\n"
		   "SELECT count(*), sum(v), min(name), max(name) FROM t;\n"
		   "SELECT substr(name, 1, 6), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;\n"
		   "SELECT count(*) FROM t a JOIN t b ON a.name = b.name WHERE a.id < 20000;\n"
		   "DELETE FROM t WHERE id % 3 = 0;\n"
		   "VACUUM;\n"
		   "SELECT count(*), total(v) FROM t;\n");
	const char *argv[] = {"/usr/bin/sqlite3", ":memory:", NULL};
	same_both_ways("sqlite3", argv, "t.sql", 0);
}
END_TEST

START_TEST(sort_large_file)
{
	if (skipped("sort", "/usr/bin/sort"))
		return;
	char path[300];
	FILE *f = fopen(path_in(path, sizeof path, "lines.txt"), "w");
	ck_assert_ptr_nonnull(f);
	uint64_t x = 88172645463325252u;
	for (int i = 0; i < 300000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		fprintf(f, "%016llx %.*s\n", (unsigned long long)x, (int)(x % 40),
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP");
	}
	ck_assert_int_eq(fclose(f), 0);
	const char *argv[] = {"/usr/bin/sort", "-S", "64M", "lines.txt", NULL};
	same_both_ways("sort", argv, NULL, 0);
}
END_TEST

/* Needs fork() to give the child its own heap: $(...) and subshells write
 * and free blocks they inherited. */
START_TEST(bash_subshells_and_pipes)
{
	if (skipped("bash", "/bin/bash"))
		return;
	char path[300];
	write_file(path_in(path, sizeof path, "t.sh"),
		   "total=0\n"
		   "for i in $(seq 1 60); do\n"
		   "  x=$(echo \"$i\" | tr 0-9 a-j)\n"
		   "  y=$( (echo \"$x\"; echo \"$i\") | sort | head -1 )\n"
		   "  arr[$i]=\"$x-$y\"\n"
		   "  total=$((total + ${#arr[$i]}))\n"
		   "done\n"
		   "f() { local s=''; for j in 1 2 3; do s=\"$s$(printf '%s' \"$1$j\")\"; done; echo \"$s\"; }\n"
		   "for i in 1 2 3 4 5; do r=$(f \"$i\"); echo \"$r\"; done\n"
		   "declare -A h; for k in $(seq 1 300); do h[k$k]=$(( k * k )); done\n"
		   "echo \"${#h[@]} ${h[k17]} total=$total\"\n"
		   "( cd / && echo \"sub: $(pwd)\" ) | cat\n"
		   "echo \"${arr[@]}\" | wc -c\n"
		   "exit 3\n");
	const char *argv[] = {"/bin/bash", "t.sh", NULL};
	same_both_ways("bash", argv, NULL, 3);
}
END_TEST

START_TEST(gcc_multi_file_program)
{
	if (skipped("gcc", "/usr/bin/gcc"))
		return;
	char path[300];
	for (int i = 1; i <= 4; i++) {
		char name[32], text[512];
		snprintf(name, sizeof name, "f%d.c", i);
		snprintf(text, sizeof text,
			 "#include <stdlib.h>\n#include <string.h>\n"
			 "struct s%d { int a[%d]; char *name; };\n"
			 "int f%d(int x) { struct s%d v; memset(&v, 0, sizeof v);\n"
			 "  for (int i = 0; i < %d; i++) v.a[i] = x * i;\n"
			 "  int t = 0; for (int i = 0; i < %d; i++) t += v.a[i]; return t; }\n",
			 i, i * 10, i, i, i * 10, i * 10);
		write_file(path_in(path, sizeof path, name), text);
	}
	write_file(path_in(path, sizeof path, "main.c"),
		   "#include <stdio.h>\nint f1(int); int f2(int); int f3(int); int f4(int);\n"
		   "int main(void) { printf(\"%d\\n\", f1(1) + f2(2) + f3(3) + f4(4)); return 0; }\n");
	/* Compiling, then running what was built, both ways. */
	const char *argv[] = {"/bin/sh", "-c",
			      "/usr/bin/gcc -O2 -Wall -o prog f1.c f2.c f3.c f4.c main.c && ./prog "
			      "&& rm prog",
			      NULL};
	same_both_ways("gcc", argv, NULL, 0);
}
END_TEST

START_TEST(git_repository_round_trip)
{
	if (skipped("git", "/usr/bin/git") || skipped("git (bash)", "/bin/bash"))
		return;
	const char *argv[] = {
		"/bin/bash", "-c",
		"set -e; rm -rf repo; mkdir repo; cd repo\n"
		"export GIT_AUTHOR_DATE='@1767225600 +0000' GIT_COMMITTER_DATE='@1767225600 +0000'\n"
		"export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1\n"
		"g() { git -c user.name=t -c user.email=t@example.org -c init.defaultBranch=main \"$@\"; }\n"
		"g init -q .\n"
		"for i in $(seq 300); do printf 'file %s\\n%s\\n' $i \"$(seq $i)\" > f$i.txt; done\n"
		"g add . && g commit -qm first\n"
		"for i in $(seq 1 3 300); do echo change >> f$i.txt; done\n"
		"g commit -qam second\n"
		"g log --format='%H %s'\n"
		"g fsck --strict 2>&1\n"
		"g gc -q 2>&1 && g count-objects -v | grep -v size\n",
		NULL};
	same_both_ways("git", argv, NULL, 0);
}
END_TEST

/* ---- what a program cannot show on its own ---- */

/* Runs program (with arg, may be NULL) under shmalloc-run; asserts it says
 * ok, and that the daemon's in-use bytes are back to what they were. */
static void helper_says_ok_with(const char *name, const char *program, const char *arg)
{
	char out[300], err[300];
	const char *argv[] = {program, arg, NULL};
	uint64_t base = e2e_stat("\"in_use_bytes\":");
	int st = run(1, argv, NULL, path_in(out, sizeof out, "out"), path_in(err, sizeof err, "err"));
	char *o = slurp(out, NULL), *e = slurp(err, NULL);
	ck_assert_msg(st == 0 && strcmp(o, "ok\n") == 0, "%s: status %d, out '%s', err '%s'", name,
		      st, o, e);
	free(o);
	free(e);
	uint64_t after = e2e_wait_in_use_at_most(base);
	ck_assert_msg(after <= base, "%s left %llu bytes in use (%llu before it)", name,
		      (unsigned long long)after, (unsigned long long)base);
}

static void helper_says_ok(const char *name, const char *program)
{
	helper_says_ok_with(name, program, NULL);
}

/* The library calls pthread_setspecific under its connection lock; past 32
 * keys glibc callocs there, which came back into the library and waited for
 * that lock for ever. */
START_TEST(many_pthread_keys_no_deadlock)
{
	if (skipped("keys", NULL))
		return;
	helper_says_ok("keys", TESTS_BUILDDIR "/preload_keys");
}
END_TEST

START_TEST(free_keeps_errno)
{
	if (skipped("errno", NULL))
		return;
	helper_says_ok("errno", TESTS_BUILDDIR "/preload_errno");
	/* Again on a daemon the program kills: its frees then fail inside. */
	struct e2e_daemon victim;
	e2e_start_daemon_kept(&victim, NULL);
	char pid[32];
	snprintf(pid, sizeof pid, "%ld", (long)victim.pid);
	setenv("PRELOAD_KILL", pid, 1);
	setenv("SHMALLOC_SOCKET", victim.socket, 1);
	helper_says_ok("errno (daemon killed)", TESTS_BUILDDIR "/preload_errno");
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
	unsetenv("PRELOAD_KILL");
	e2e_cleanup_daemon(&victim);
}
END_TEST

START_TEST(fork_gives_the_child_a_copy)
{
	if (skipped("fork", NULL))
		return;
	helper_says_ok("fork", TESTS_BUILDDIR "/preload_fork");
}
END_TEST

/* Issue 22 item 4: a child that execs at once gets no copy of the arenas'
 * metadata (before: every arena's, its resident pages, at every fork) and
 * no more of the heap than its parent has in its page table. */
START_TEST(fork_copies_no_metadata_for_a_child_that_execs)
{
	if (skipped("fork then exec", "/bin/true"))
		return;
	helper_says_ok("fork then exec", TESTS_BUILDDIR "/preload_forkexec");
}
END_TEST

/* Issue 21 case 9: a program that lost its daemon and serves from the C
 * library forks: the child still gets a copy of the heap blocks the parent
 * holds (before, the prepare handler copied only while the heap served, and
 * the child overwrote the parent's 2000 blocks). */
START_TEST(fork_after_losing_the_daemon_gives_the_child_a_copy)
{
	if (skipped("fork after the daemon died", NULL))
		return;
	struct e2e_daemon victim;
	e2e_start_daemon_kept(&victim, NULL);
	char pid[32], out[300], err[300];
	snprintf(pid, sizeof pid, "%ld", (long)victim.pid);
	setenv("PRELOAD_KILL", pid, 1);
	setenv("SHMALLOC_SOCKET", victim.socket, 1);
	const char *argv[] = {TESTS_BUILDDIR "/preload_forkfall", NULL};
	int st = run(1, argv, NULL, path_in(out, sizeof out, "out"), path_in(err, sizeof err, "err"));
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
	unsetenv("PRELOAD_KILL");
	char *o = slurp(out, NULL), *e = slurp(err, NULL);
	ck_assert_msg(st == 0 && strcmp(o, "ok\n") == 0, "status %d, out '%s', err '%s'", st, o, e);
	/* It did fall back: the test is of a process on the C library. */
	ck_assert_msg(strstr(e, "lost the daemon") != NULL, "no fallback said: '%s'", e);
	free(o);
	free(e);
	e2e_cleanup_daemon(&victim);
}
END_TEST

/* ---- a program's heap dies with it (regions) ---- */

#define REGION_HELPER TESTS_BUILDDIR "/preload_region"

/* A program that allocates and exits without freeing: everything it held
 * goes (before, ~130 MB of it stayed allocated for good). */
START_TEST(region_exit_without_free_leaves_nothing)
{
	if (skipped("region exit", NULL))
		return;
	helper_says_ok_with("region hold", REGION_HELPER, "hold");
}
END_TEST

/* The same program killed with SIGKILL before it could say anything. */
START_TEST(region_sigkill_leaves_nothing)
{
	if (skipped("region kill", NULL))
		return;
	uint64_t base = e2e_stat("\"in_use_bytes\":");
	const char *argv[] = {REGION_HELPER, "kill", NULL};
	ck_assert_int_eq(run(1, argv, NULL, NULL, NULL), 128 + SIGKILL);
	uint64_t after = e2e_wait_in_use_at_most(base);
	ck_assert_msg(after <= base, "a killed program left %llu bytes in use (%llu before)",
		      (unsigned long long)after, (unsigned long long)base);
}
END_TEST

/* Bytes of the daemon's pages segment in tmpfs. */
static long long pages_segment_bytes(void)
{
	char name[SEG_NAME_MAX], path[SEG_NAME_MAX + 16];
	ck_assert_int_eq(seg_name(name, sizeof name, e2e.instance, SEG_PAGES, 0), 0);
	snprintf(path, sizeof path, "/dev/shm%s", name);
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return (long long)st.st_blocks * 512;
}

/* A preload program's pages come on first touch (4 GiB asked, 1 MiB
 * touched: it took 4 GiB of /dev/shm before); a library client's are
 * reserved whole, so it never takes SIGBUS. */
START_TEST(region_pages_come_on_first_touch)
{
	if (skipped("region lazy", NULL))
		return;
	char out[300], err[300];
	const char *argv[] = {REGION_HELPER, "big", NULL};
	int st = run(1, argv, NULL, path_in(out, sizeof out, "out"), path_in(err, sizeof err, "err"));
	char *o = slurp(out, NULL), *e = slurp(err, NULL);
	ck_assert_msg(st == 0, "big: status %d, err %s", st, e);
	long long grew = strtoll(o, NULL, 10);
	fprintf(stderr, "preload: 4 GiB malloc'd, 1 MiB touched: the segment grew %lld bytes\n",
		grew);
	ck_assert_msg(grew < (64ll << 20), "the pages segment grew %lld bytes", grew);
	free(o);
	free(e);
	long long before = pages_segment_bytes();
	void *p = shma_malloc((size_t)1 << 30);
	ck_assert_ptr_nonnull(p);
	long long after = pages_segment_bytes();
	fprintf(stderr, "preload: shma_malloc(1 GiB): the segment grew %lld bytes\n",
		after - before);
	ck_assert_msg(after - before >= (1ll << 30), "a library client's 1 GiB took %lld bytes",
		      after - before);
	shma_free(p);
}
END_TEST

/* Starts REGION_HELPER "share" under shmalloc-run (on socket, or the
 * environment's when NULL), reads the four blocks it prints into blocks[],
 * and leaves it waiting for *in_w to close (it then exits). */
static pid_t start_region_sharer(const char *socket, void *blocks[4], int *in_w)
{
	int to[2], from[2];
	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		if (socket != NULL)
			execl(SHMALLOC_RUN_PATH, SHMALLOC_RUN_PATH, "--socket", socket,
			      REGION_HELPER, "share", (char *)NULL);
		else
			execl(SHMALLOC_RUN_PATH, SHMALLOC_RUN_PATH, REGION_HELPER, "share",
			      (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	FILE *f = fdopen(from[0], "r");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(fscanf(f, "%p", &blocks[i]), 1);
	fclose(f);
	*in_w = to[1];
	return pid;
}

/* A block of a region client freed by another client (a library client:
 * this process through the library, and a raw peer) while its owner lives is
 * accepted; after the owner ended, it is not out any more: refused, the
 * daemon and its counters untouched. */
START_TEST(region_block_freed_by_another_client)
{
	if (skipped("region share", NULL))
		return;
	uint64_t base = e2e_stat("\"in_use_bytes\":");
	void *blocks[4];
	int in_w;
	pid_t pid = start_region_sharer(NULL, blocks, &in_w);
	uint64_t refs[4];
	for (int i = 0; i < 4; i++) {
		refs[i] = shma_ref(blocks[i]);
		ck_assert_msg(refs[i] != 0, "block %d (%p) is not in the heap here", i, blocks[i]);
	}
	uint64_t during = e2e_stat("\"in_use_bytes\":");
	/* The stats show it: one region, its blocks in it. */
	ck_assert_uint_eq(e2e_stat("\"regions\":"), 1);
	ck_assert_uint_ge(e2e_stat("\"region_in_use_bytes\":"), (uint64_t)2 << 20);
	int peer = raw_peer(e2e.socket);
	/* While the owner lives: this library's free and a raw Flush. */
	shma_free(blocks[0]);
	raw_flush(peer, &refs[1], 1, 1, 0);
	shma_free(blocks[2]);
	uint64_t freed = 2 * 64 + ((uint64_t)1 << 20);
	uint64_t now = e2e_wait_in_use_at_most(during - freed);
	ck_assert_msg(now == during - freed, "in use %llu, %llu before the frees",
		      (unsigned long long)now, (unsigned long long)during);
	/* The owner ends: the rest of its region goes with it. */
	close(in_w);
	ck_assert_int_eq(e2e_wait(pid), 0);
	now = e2e_wait_in_use_at_most(base);
	ck_assert_msg(now <= base, "in use %llu after the owner ended, %llu before it",
		      (unsigned long long)now, (unsigned long long)base);
	ck_assert_uint_eq(e2e_stat("\"regions\":"), 0);
	ck_assert_uint_eq(e2e_stat("\"region_in_use_bytes\":"), 0);
	/* Its blocks are not out any more: refused, nothing else changes. */
	raw_flush(peer, refs, 2, 0, 2);
	Shma__Request req;
	Shma__FreeLarge fl;
	wire_free_large(&req, &fl, refs[3]);
	raw_expect_error(raw_call(peer, &req), EINVAL);
	setenv("SHMALLOC_CHECK", "warn", 1); /* read at the first bad free (freecheck.c) */
	shma_free(blocks[1]); /* the library: not a block of the heap now, refused */
	ck_assert_uint_eq(e2e_stat("\"in_use_bytes\":"), now);
	void *p = shma_malloc(64);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	close(peer);
}
END_TEST

/* The in_use_bytes of the daemon on socket, asked by a raw peer. */
static uint64_t raw_in_use(const char *socket)
{
	int fd = raw_peer(socket);
	Shma__Request req;
	Shma__Stats st;
	wire_stats(&req, &st);
	Shma__Response *r = raw_call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_STATS);
	uint64_t v = r->stats->in_use_bytes;
	shma__response__free_unpacked(r, NULL);
	close(fd);
	return v;
}

/* A region client whose daemon was killed under it and that ended while no
 * daemon ran: the next daemon finds its region in the metadata and ends it
 * with its orphaned control block. */
START_TEST(region_ends_across_a_daemon_restart)
{
	if (skipped("region restart", NULL))
		return;
	struct e2e_daemon d;
	e2e_start_daemon_kept(&d, NULL);
	ck_assert_uint_eq(raw_in_use(d.socket), 0);
	void *blocks[4];
	int in_w;
	pid_t pid = start_region_sharer(d.socket, blocks, &in_w);
	ck_assert_uint_ge(raw_in_use(d.socket), (uint64_t)2 << 20);
	e2e_kill_daemon(&d);
	close(in_w);
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	uint64_t v = raw_in_use(d.socket);
	for (int i = 0; i < 100 && v != 0; i++) {
		usleep(50000);
		v = raw_in_use(d.socket);
	}
	ck_assert_msg(v == 0, "%llu bytes in use after the restart", (unsigned long long)v);
	ck_assert(e2e_log_has(&d, "its region ended"));
	e2e_cleanup_daemon(&d);
}
END_TEST

/* ---- shmalloc-run itself ---- */

START_TEST(dead_socket_fails_before_command)
{
	char dead[300], marker[300], err[300];
	path_in(dead, sizeof dead, "dead.sock");
	path_in(marker, sizeof marker, "started");
	const char *argv[] = {"--socket", dead, "touch", marker, NULL};
	int st = run(1, argv, NULL, NULL, path_in(err, sizeof err, "err"));
	char *e = slurp(err, NULL);
	ck_assert_int_eq(st, 125);
	ck_assert_msg(access(marker, F_OK) != 0, "COMMAND ran");
	ck_assert_msg(strstr(e, "no shmallocd listens on") && strstr(e, dead), "stderr: %s", e);
	free(e);
	/* $SHMALLOC_SOCKET naming a dead daemon: the same. */
	setenv("SHMALLOC_SOCKET", dead, 1);
	const char *argv2[] = {"touch", marker, NULL};
	ck_assert_int_eq(run(1, argv2, NULL, NULL, NULL), 125);
	ck_assert_msg(access(marker, F_OK) != 0, "COMMAND ran");
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
}
END_TEST

START_TEST(no_daemon_starts_a_private_one)
{
	if (skipped("private daemon", NULL))
		return;
	char runtime[300], tmp[300], out[300], err[300];
	ck_assert_int_eq(mkdir(path_in(runtime, sizeof runtime, "xdg"), 0700), 0);
	ck_assert_int_eq(mkdir(path_in(tmp, sizeof tmp, "tmp"), 0700), 0);
	unsetenv("SHMALLOC_SOCKET");
	setenv("XDG_RUNTIME_DIR", runtime, 1); /* a default socket nobody listens on */
	setenv("TMPDIR", tmp, 1);
	const char *argv[] = {"/bin/sh", "-c", "echo \"$SHMALLOC_SOCKET\"; seq 1000 | sort -n | tail -1; exit 7",
			      NULL};
	int st = run(1, argv, NULL, path_in(out, sizeof out, "out"), path_in(err, sizeof err, "err"));
	char *o = slurp(out, NULL), *e = slurp(err, NULL);
	ck_assert_msg(st == 7, "status %d, stderr %s", st, e);
	ck_assert_msg(strstr(e, "started a private one on ") != NULL, "stderr: %s", e);
	ck_assert_msg(strncmp(o, tmp, strlen(tmp)) == 0, "COMMAND's socket: %s", o);
	ck_assert_msg(strstr(o, "\n1000\n") != NULL, "out: %s", o);
	/* Gone: its directory, its socket, its segments. */
	char *nl = strchr(o, '\n');
	*nl = '\0';
	ck_assert_msg(access(o, F_OK) != 0, "the private socket %s is still there", o);
	char *slash = strrchr(o, '/');
	*slash = '\0';
	ck_assert_msg(access(o, F_OK) != 0, "the private directory %s is still there", o);
	*slash = '/';
	char inst[SHMA_INSTANCE_MAX];
	seg_instance_from_path(o, inst, sizeof inst);
	ck_assert_int_eq(test_segments_left(inst), 0);
	free(o);
	free(e);
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("TMPDIR");
}
END_TEST

START_TEST(exit_status_passes_through)
{
	if (skipped("exit status", NULL))
		return;
	const char *exit5[] = {"/bin/sh", "-c", "exit 5", NULL};
	ck_assert_int_eq(run(1, exit5, NULL, NULL, NULL), 5);
	const char *killed[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
	ck_assert_int_eq(run(1, killed, NULL, NULL, NULL), 128 + SIGTERM);
	const char *missing[] = {"/nonexistent/program", NULL};
	ck_assert_int_eq(run(1, missing, NULL, NULL, NULL), 127);
	const char *noargs[] = {NULL};
	ck_assert_int_eq(run(1, noargs, NULL, NULL, NULL), 125);
	/* The same with a private daemon, where shmalloc-run waits for COMMAND. */
	char runtime[300];
	ck_assert_int_eq(mkdir(path_in(runtime, sizeof runtime, "xdg"), 0700), 0);
	unsetenv("SHMALLOC_SOCKET");
	setenv("XDG_RUNTIME_DIR", runtime, 1);
	ck_assert_int_eq(run(1, exit5, NULL, NULL, NULL), 5);
	ck_assert_int_eq(run(1, killed, NULL, NULL, NULL), 128 + SIGTERM);
	ck_assert_int_eq(run(1, missing, NULL, NULL, NULL), 127);
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
	unsetenv("XDG_RUNTIME_DIR");
}
END_TEST

START_TEST(share_fork_reaches_the_program)
{
	if (skipped("share-fork", NULL))
		return;
	char out[300];
	const char *argv[] = {"--share-fork", "printenv", "SHMALLOC_SHARE_FORK", "LD_PRELOAD", NULL};
	setenv("LD_PRELOAD", "libc.so.6", 1); /* kept, after ours */
	ck_assert_int_eq(run(1, argv, NULL, path_in(out, sizeof out, "out"), NULL), 0);
	unsetenv("LD_PRELOAD");
	char *o = slurp(out, NULL);
	ck_assert_str_eq(o, "1\n" PRELOAD_LIB_PATH ":libc.so.6\n");
	free(o);
}
END_TEST

/* The library alone, no daemon: the C library's malloc, said once. */
START_TEST(library_without_daemon_uses_libc)
{
	if (skipped("no daemon", "/bin/bash"))
		return;
	char dead[300], out[300], err[300];
	setenv("SHMALLOC_SOCKET", path_in(dead, sizeof dead, "dead.sock"), 1);
	setenv("LD_PRELOAD", PRELOAD_LIB_PATH, 1);
	const char *argv[] = {"/bin/bash", "-c", "x=$(seq 100 | sort -rn | head -1); echo $x", NULL};
	int st = run(0, argv, NULL, path_in(out, sizeof out, "out"), path_in(err, sizeof err, "err"));
	unsetenv("LD_PRELOAD");
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
	char *o = slurp(out, NULL), *e = slurp(err, NULL);
	ck_assert_msg(st == 0, "status %d, stderr %s", st, e);
	ck_assert_str_eq(o, "100\n");
	ck_assert_msg(strstr(e, "uses the C library's malloc") != NULL, "stderr: %s", e);
	/* Once per process: bash, seq, sort and head each say it once. */
	int lines = 0;
	for (const char *p = e; (p = strstr(p, "uses the C library's malloc")) != NULL; p++)
		lines++;
	ck_assert_int_le(lines, 4);
	free(o);
	free(e);
}
END_TEST

Suite *make_preload_suite(void);
Suite *make_preload_suite(void)
{
	Suite *s = suite_create("preload");
	TCase *tc = tcase_create("programs");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, python3_dicts_and_lists);
	tcase_add_test(tc, sqlite3_inserts_and_queries);
	tcase_add_test(tc, sort_large_file);
	tcase_add_test(tc, bash_subshells_and_pipes);
	tcase_add_test(tc, gcc_multi_file_program);
	tcase_add_test(tc, git_repository_round_trip);
	suite_add_tcase(s, tc);
	tc = tcase_create("library");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, many_pthread_keys_no_deadlock);
	tcase_add_test(tc, free_keeps_errno);
	tcase_add_test(tc, fork_gives_the_child_a_copy);
	tcase_add_test(tc, fork_after_losing_the_daemon_gives_the_child_a_copy);
	tcase_add_test(tc, fork_copies_no_metadata_for_a_child_that_execs);
	tcase_add_test(tc, library_without_daemon_uses_libc);
	suite_add_tcase(s, tc);
	tc = tcase_create("region");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, region_exit_without_free_leaves_nothing);
	tcase_add_test(tc, region_sigkill_leaves_nothing);
	tcase_add_test(tc, region_pages_come_on_first_touch);
	tcase_add_test(tc, region_block_freed_by_another_client);
	tcase_add_test(tc, region_ends_across_a_daemon_restart);
	suite_add_tcase(s, tc);
	tc = tcase_create("shmalloc-run");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, dead_socket_fails_before_command);
	tcase_add_test(tc, no_daemon_starts_a_private_one);
	tcase_add_test(tc, exit_status_passes_through);
	tcase_add_test(tc, share_fork_reaches_the_program);
	suite_add_tcase(s, tc);
	return s;
}
