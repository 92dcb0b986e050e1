/* SPDX-License-Identifier: MIT */
/*
 * The redis suite: redis-server under shmalloc-run, with a fork that must
 * see a snapshot.
 *
 * redis-server runs under shmalloc-run on a free loopback port; 20000 keys
 * go in (DEBUG POPULATE) and redis-benchmark runs a few thousand requests
 * against it.  Then BGSAVE forks a child that writes the keys out slowly
 * (rdb-key-save-delay), and while it does, the parent deletes half of them,
 * rewrites the other half and adds new ones.  The child's RDB must hold the
 * keys as they were at the fork -- what copy-on-write gives with glibc --
 * so it passes redis-check-rdb and, loaded in a plain redis-server (not
 * under shmalloc-run), has the old DBSIZE and the old values.  A library
 * whose fork child shares its parent's heap (SHMALLOC_SHARE_FORK=1) fails
 * here: the child reads the parent's later writes and frees.
 *
 * Every process it starts dies with the test (PR_SET_PDEATHSIG) or is shut
 * down and reaped by it; its files live in the fixture's directory.  The
 * test skips (SKIP: on stderr) without redis-server, redis-cli,
 * redis-benchmark or redis-check-rdb, and when built with sanitizers.
 */
#include "e2e.h"

#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHMALLOC_RUN_PATH
#error "SHMALLOC_RUN_PATH and PRELOAD_LIB_PATH come from tests/e2e/preload.mk"
#endif


#define KEYS 20000
#define NEW_KEYS 5000

static char work[256];

static void setup(void)
{
	e2e_preload_setup(work, sizeof work, "redis");
}

static void teardown(void)
{
	e2e_preload_teardown(work);
}

static int missing(void)
{
	if (SANITIZED) {
		fprintf(stderr, "SKIP: redis: built with sanitizers (the library cannot be preloaded)\n");
		return 1;
	}
	static const char *const tools[] = {"/usr/bin/redis-server", "/usr/bin/redis-cli",
					    "/usr/bin/redis-benchmark", "/usr/bin/redis-check-rdb"};
	for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
		if (access(tools[i], X_OK) != 0) {
			fprintf(stderr, "SKIP: redis: %s is not installed\n", tools[i]);
			return 1;
		}
	}
	return 0;
}

/* A loopback port nobody listens on now (the kernel's pick for port 0). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

struct redis {
	pid_t pid;
	char port[16];
	char log[300]; /* redis's own log */
	char err[300]; /* its stderr, where shmalloc would speak */
};

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
	return buf;
}

/* Runs redis-cli -p PORT args...; its output (trailing newline cut) into
 * out; returns its status. */
static int cli(const struct redis *r, char *out, size_t cap, const char *const *args)
{
	const char *argv[16] = {"timeout", "20", "/usr/bin/redis-cli", "-p", r->port};
	int n = 5;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	int st = e2e_run(argv, out, cap);
	size_t len = strlen(out);
	if (len > 0 && out[len - 1] == '\n')
		out[len - 1] = '\0';
	return st;
}

/* The reply of redis-cli -p PORT a [b [c [d]]] (NULLs end it), asserted to
 * exit 0. */
static const char *cmd(const struct redis *r, const char *a, const char *b, const char *c,
		       const char *d)
{
	static char out[4096];
	const char *args[] = {a, b, c, d, NULL};
	int st = cli(r, out, sizeof out, args);
	ck_assert_msg(st == 0, "redis-cli %s %s: status %d: %s", a, b ? b : "", st, out);
	return out;
}

/* The number after "field:" in INFO persistence, or -1. */
static long info_field(const struct redis *r, const char *field)
{
	const char *s = cmd(r, "INFO", "persistence", NULL, NULL);
	char key[64];
	snprintf(key, sizeof key, "%s:", field);
	const char *at = strstr(s, key);
	return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

/* Starts redis-server (under shmalloc-run if shm) on a free port with its
 * data in work/name, and waits until it answers PING. */
static void start_redis(struct redis *r, int shm, const char *name)
{
	for (int attempt = 0;; attempt++) {
		snprintf(r->port, sizeof r->port, "%d", free_port());
		snprintf(r->log, sizeof r->log, "%s/%s.log", work, name);
		snprintf(r->err, sizeof r->err, "%s/%s.err", work, name);
		const char *argv[] = {SHMALLOC_RUN_PATH, "/usr/bin/redis-server", "--port", r->port,
				      "--bind", "127.0.0.1", "--dir", work, "--dbfilename", "dump.rdb",
				      "--save", "", "--appendonly", "no", "--daemonize", "no",
				      "--enable-debug-command", "yes", "--logfile", r->log, NULL};
		r->pid = fork();
		ck_assert_int_ge(r->pid, 0);
		if (r->pid == 0) {
			/* Dies with the test, even one Check kills on a timeout. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			int in = open("/dev/null", O_RDONLY);
			int fd = open(r->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (in < 0 || fd < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
				_exit(120);
			setenv("SHMALLOC_SOCKET", e2e.socket, 1);
			execv(argv[shm ? 0 : 1], (char *const *)(argv + (shm ? 0 : 1)));
			_exit(127);
		}
		char out[256];
		const char *ping[] = {"PING", NULL};
		for (int i = 0; i < 200; i++) {
			if (cli(r, out, sizeof out, ping) == 0 && strcmp(out, "PONG") == 0)
				return;
			int status;
			if (waitpid(r->pid, &status, WNOHANG) == r->pid)
				break;
			usleep(50000);
		}
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		const char *log = slurp(r->log);
		/* Someone took the port between our look and its bind: again. */
		if (attempt < 3 && strstr(log, "ddress already in use") != NULL)
			continue;
		ck_abort_msg("redis-server (%s) did not answer; log: %.1500s; stderr: %.500s",
			     shm ? "under shmalloc-run" : "plain", log, slurp(r->err));
	}
}

/* SHUTDOWN NOSAVE; asserts it exits 0 and said nothing on stderr. */
static void stop_redis(struct redis *r)
{
	char out[256];
	const char *args[] = {"SHUTDOWN", "NOSAVE", NULL};
	cli(r, out, sizeof out, args); /* the connection drops: no status to see */
	int st = -1;
	for (int i = 0; i < 400; i++) {
		int status;
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
			st = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			break;
		}
		usleep(25000);
	}
	if (st < 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	ck_assert_msg(st == 0, "redis-server exited %d; log: %.1500s", st, slurp(r->log));
	const char *err = slurp(r->err);
	ck_assert_msg(err[0] == '\0', "redis-server's stderr: %.500s", err);
}

static void expect(const struct redis *r, const char *key, const char *want)
{
	const char *got = cmd(r, "GET", key, NULL, NULL);
	ck_assert_msg(strcmp(got, want) == 0, "GET %s: '%s', not '%s'", key, got, want);
}

START_TEST(bgsave_child_writes_a_snapshot)
{
	if (missing())
		return;
	uint64_t in_use0 = e2e_stat("\"in_use_bytes\":");
	struct redis r;
	start_redis(&r, 1, "shm");
	char n[32];
	snprintf(n, sizeof n, "%d", KEYS);
	ck_assert_str_eq(cmd(&r, "DEBUG", "POPULATE", n, NULL), "OK");
	uint64_t in_use1 = e2e_stat("\"in_use_bytes\":");
	ck_assert_msg(in_use1 >= in_use0 + (1u << 20),
		      "%d keys but the heap grew from %llu to %llu bytes only: is redis on it?", KEYS,
		      (unsigned long long)in_use0, (unsigned long long)in_use1);

	char out[8192];
	const char *bench[] = {"timeout", "60", "/usr/bin/redis-benchmark", "-p", r.port, "-q",
			       "-n", "3000", "-t", "set,get,incr,lpush,lpop,hset", NULL};
	int st = e2e_run(bench, out, sizeof out);
	ck_assert_msg(st == 0, "redis-benchmark: status %d: %s", st, out);
	const char *kinds[] = {"SET: ", "GET: ", "INCR: ", "LPUSH: ", "LPOP: ", "HSET: "};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		ck_assert_msg(strstr(out, kinds[i]) && strstr(strstr(out, kinds[i]), "requests per second"),
			      "redis-benchmark did not report %s: %s", kinds[i], out);
	long keys = strtol(cmd(&r, "DBSIZE", NULL, NULL, NULL), NULL, 10);
	ck_assert_int_ge(keys, KEYS);

	/* The child writes a key per 50 us: a second or more to save, time for
	 * the parent to change every key under it. */
	ck_assert_str_eq(cmd(&r, "CONFIG", "SET", "rdb-key-save-delay", "50"), "OK");
	ck_assert_str_eq(cmd(&r, "BGSAVE", NULL, NULL, NULL), "Background saving started");
	char script[256];
	snprintf(script, sizeof script,
		 "for i = 0, %d do if i %% 2 == 0 then redis.call('DEL', 'key:' .. i) "
		 "else redis.call('SET', 'key:' .. i, 'changed' .. i) end end return 1",
		 KEYS - 1);
	ck_assert_str_eq(cmd(&r, "EVAL", script, "0", NULL), "1");
	snprintf(n, sizeof n, "%d", NEW_KEYS);
	ck_assert_str_eq(cmd(&r, "DEBUG", "POPULATE", n, "new"), "OK");
	ck_assert_msg(info_field(&r, "rdb_bgsave_in_progress") == 1,
		      "the save ended before the parent's changes: they prove nothing");
	for (int i = 0; i < 600 && info_field(&r, "rdb_bgsave_in_progress") != 0; i++)
		usleep(50000);
	ck_assert_int_eq(info_field(&r, "rdb_bgsave_in_progress"), 0);
	ck_assert_msg(strstr(cmd(&r, "INFO", "persistence", NULL, NULL),
			     "rdb_last_bgsave_status:ok") != NULL,
		      "BGSAVE failed; log: %.1500s", slurp(r.log));
	/* The parent sees its own changes. */
	long now = strtol(cmd(&r, "DBSIZE", NULL, NULL, NULL), NULL, 10);
	ck_assert_int_eq(now, keys - KEYS / 2 + NEW_KEYS);
	expect(&r, "key:17", "changed17");
	expect(&r, "key:18", "");
	stop_redis(&r);
	ck_assert_msg(strstr(slurp(r.log), "Background saving terminated with success"),
		      "log: %.1500s", slurp(r.log));

	/* The file is sound... */
	char rdb[300];
	snprintf(rdb, sizeof rdb, "%s/dump.rdb", work);
	const char *check[] = {"/usr/bin/redis-check-rdb", rdb, NULL};
	st = e2e_run(check, out, sizeof out);
	char read_line[64];
	snprintf(read_line, sizeof read_line, "[info] %ld keys read\n", keys);
	ck_assert_msg(st == 0 && strstr(out, "RDB looks OK") && strstr(out, read_line),
		      "redis-check-rdb: status %d, want %ld keys: %s", st, keys, out);

	/* ... and holds the keys as they were at the fork. */
	struct redis plain;
	start_redis(&plain, 0, "plain");
	ck_assert_int_eq(strtol(cmd(&plain, "DBSIZE", NULL, NULL, NULL), NULL, 10), keys);
	expect(&plain, "key:0", "value:0");
	expect(&plain, "key:17", "value:17");
	expect(&plain, "key:18", "value:18");
	snprintf(n, sizeof n, "key:%d", KEYS - 1);
	snprintf(read_line, sizeof read_line, "value:%d", KEYS - 1);
	expect(&plain, n, read_line);
	ck_assert_str_eq(cmd(&plain, "EXISTS", "new:0", NULL, NULL), "0");
	stop_redis(&plain);
	fprintf(stderr, "redis: daemon in use: %llu bytes before, %llu with %d keys, %llu after\n",
		(unsigned long long)in_use0, (unsigned long long)in_use1, KEYS,
		(unsigned long long)e2e_stat("\"in_use_bytes\":"));
}
END_TEST

Suite *make_redis_suite(void);
Suite *make_redis_suite(void)
{
	Suite *s = suite_create("redis");
	TCase *tc = tcase_create("bgsave");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, bgsave_child_writes_a_snapshot);
	suite_add_tcase(s, tc);
	return s;
}
