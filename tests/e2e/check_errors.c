/* SPDX-License-Identifier: MIT */
/*
 * Errors that say what is wrong (issue 20), each tried as a user would: an
 * exec'd program (tests/probe, shmalloc's own programs) against a real
 * daemon or none, and what it printed read back.
 *   - no daemon: the errno says so (ECONNREFUSED, not ENOENT), and both
 *     shma_strerror() and one line on stderr name the socket tried;
 *   - shma_lookup: ENOENT only for "no such name"; no daemon is another;
 *   - shma_lookup_wait: answered at the Publish (one parked lookup, no
 *     polling), ETIMEDOUT at the end of the wait, ECONNREFUSED without a
 *     daemon;
 *   - shma_ptr of a freed block's ref: what shma_ptr(3) says;
 *   - shmallocd --max-memory below one arena says the least it takes;
 *   - a normal exit without shma_disconnect, and shmallocctl calls, leave
 *     nothing in the daemon's log at its default level.
 */
#include "e2e.h"
#include "exec.h"
#include "raw.h"
#include "instance.h"
#include "shmalloc.h"
#include "skip.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PROBE_PATH
#error "PROBE_PATH must name tests/probe"
#endif

static char out[16384];
static char sock_env[200];

/* Runs probe ARGS... against socket; its exit status, its output in out. */
static int probe(const char *socket, const char *a1, const char *a2, const char *a3)
{
	snprintf(sock_env, sizeof sock_env, "SHMALLOC_SOCKET=%s", socket);
	const char *const env[] = {sock_env, "SHMALLOC_DEBUG", NULL};
	const char *const argv[] = {PROBE_PATH, a1, a2, a3, NULL};
	return exec_capture(NULL, EXEC_ALL_GROUPS, env, argv, out, sizeof out);
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *at = text; (at = strstr(at, what)) != NULL; at++)
		n++;
	return n;
}

/* A socket path in a fresh directory where nothing listens. */
static void nowhere(char *dir, size_t dsize, char *path, size_t psize)
{
	snprintf(dir, dsize, "/tmp/shma-err-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, psize, "%s/shmallocd.sock", dir);
}

START_TEST(no_daemon_is_econnrefused_and_the_socket_is_named)
{
	char dir[64], path[128];
	nowhere(dir, sizeof dir, path, sizeof path);
	/* The README's first example, no daemon: malloc fails. */
	int rc = probe(path, "malloc", NULL, NULL);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	char want[200];
	snprintf(want, sizeof want, "malloc: -%d ECONNREFUSED: no shmallocd listens on %s",
		 ECONNREFUSED, path);
	ck_assert_msg(strstr(out, want) != NULL, "not \"%s\" in: %s", want, out);
	/* And one line on stderr, once, with what to do. */
	snprintf(want, sizeof want, "]: no shmallocd listens on %s; start shmallocd", path);
	ck_assert_msg(count(out, want) == 1, "not once \"%s\" in: %s", want, out);
	/* A socket left by a daemon that is gone: the same. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	rc = probe(path, "connect", NULL, NULL);
	ck_assert_msg(rc == 1 && strstr(out, "connect: -111 ECONNREFUSED") != NULL, "%s", out);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(lookup_enoent_means_only_no_such_name)
{
	char dir[64], path[128];
	nowhere(dir, sizeof dir, path, sizeof path);
	int rc = probe(path, "lookup", "ring", NULL);
	ck_assert_msg(rc == 1 && strstr(out, "lookup: -111 ECONNREFUSED") != NULL, "%s", out);
	rmdir(dir);
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	rc = probe(d.socket, "lookup", "ring", NULL);
	ck_assert_msg(rc == 1 && strstr(out, "lookup: -2 ENOENT: no such name") != NULL, "%s", out);
	/* A daemon that answers says nothing on stderr. */
	ck_assert_int_eq(count(out, "shmalloc["), 0);
	e2e_stop_daemon(&d);
}
END_TEST

/* Waits (5 s at most) until d's log has text: a wait on state. */
static void wait_for_log(const struct e2e_daemon *d, const char *text)
{
	for (int i = 0; i < 500 && !e2e_log_has(d, text); i++)
		usleep(10000);
	ck_assert_msg(e2e_log_has(d, text), "no \"%s\" in %s", text, d->log);
}

START_TEST(lookup_wait_is_answered_at_the_publish)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	/* The waiter, exec'd on its own, waits up to a minute. */
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t waiter = fork();
	ck_assert_int_ge(waiter, 0);
	if (waiter == 0) {
		close(p[0]);
		dup2(p[1], 1);
		setenv("SHMALLOC_SOCKET", d.socket, 1);
		execl(PROBE_PATH, PROBE_PATH, "wait", "ring", "60000", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* Parked at the daemon: then published by another program. */
	wait_for_log(&d, "its lookup of \"ring\" waits up to 60000 ms");
	int rc = probe(d.socket, "publish", "ring", NULL);
	ck_assert_msg(rc == 0, "%s", out);
	char got[512];
	ssize_t n = 0, r;
	while ((r = read(p[0], got + n, sizeof got - 1 - (size_t)n)) > 0)
		n += r;
	got[n] = '\0';
	close(p[0]);
	ck_assert_int_eq(e2e_wait(waiter), 0);
	ck_assert_msg(strstr(got, "found: root ring") != NULL && strstr(got, "wait: 0 OK") != NULL,
		      "%s", got);
	/* One lookup waited; nobody asked again and again. */
	ck_assert_int_eq(e2e_log_count(&d, "its lookup of \"ring\" waits"), 1);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(lookup_wait_times_out_and_tells_no_daemon_apart)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	int rc = probe(d.socket, "wait", "never", "100");
	ck_assert_msg(rc == 1 && strstr(out, "wait: -110 ETIMEDOUT") != NULL, "%s", out);
	ck_assert_int_eq(e2e_log_count(&d, "its lookup of \"never\" waits up to 100 ms"), 1);
	/* Published already: answered at once, over the process's connection. */
	ck_assert_int_eq(probe(d.socket, "publish", "there", NULL), 0);
	rc = probe(d.socket, "wait", "there", "-1");
	ck_assert_msg(rc == 0 && strstr(out, "found: root there") != NULL, "%s", out);
	ck_assert_int_eq(e2e_log_count(&d, "its lookup of \"there\" waits"), 0);
	e2e_stop_daemon(&d);
	char dir[64], path[128];
	nowhere(dir, sizeof dir, path, sizeof path);
	rc = probe(path, "wait", "never", "100");
	ck_assert_msg(rc == 1 && strstr(out, "wait: -111 ECONNREFUSED") != NULL, "%s", out);
	rmdir(dir);
}
END_TEST

/* A raw client parks up to LOOKUPWAIT_PER_CLIENT (16) lookups; the next is
 * answered EAGAIN at once.  Its end drops its waits: a later Publish of a
 * name one waited for answers nobody and the daemon serves on. */
/* Each shma_lookup_wait that waits says Hello on a connection of its own;
 * its control block, never a cache, goes at its goodbye.  Before, each
 * stayed an orphan until the process exited, and the third wait of a
 * process under --uid-max-orphans 2 was refused (EAGAIN), as was every
 * other connection of its user.  Catches: unused blocks kept as orphans
 * after a goodbye. */
static int many_waits(void *arg)
{
	(void)arg;
	shma_ref_t ref;
	for (int i = 0; i < 6; i++) {
		int rc = shma_lookup_wait("never", &ref, 20);
		if (rc != -ETIMEDOUT) {
			fprintf(stderr, "wait %d: %d\n", i, rc);
			return 10 + i;
		}
	}
	/* shma_connect() and shma_disconnect() with no malloc: no orphan either. */
	for (int i = 0; i < 4; i++) {
		shma_disconnect();
		if (shma_connect(e2e.socket) != 0)
			return 20 + i;
	}
	void *p = shma_malloc(64);
	if (p == NULL)
		return 30;
	shma_free(p);
	return 0;
}

START_TEST(waits_and_unused_connections_leave_no_orphans)
{
	const char *const opts[] = {"--uid-max-orphans", "2", NULL};
	e2e_start_daemon(&e2e, opts);
	pid_t pid = e2e_fork(many_waits, NULL);
	ck_assert_int_eq(e2e_wait(pid), 0);
	e2e_stop_daemon(&e2e);
}
END_TEST

START_TEST(parked_lookups_are_bounded_and_go_with_their_client)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	int fd = raw_peer(d.socket);
	Shma__Request req;
	Shma__Lookup l;
	char name[16];
	for (unsigned i = 0; i < 16; i++) {
		snprintf(name, sizeof name, "w%u", i);
		wire_lookup(&req, &l, name);
		l.wait_ms = 60000;
		raw_send_next(fd, &req);
	}
	wire_lookup(&req, &l, "w16");
	l.wait_ms = 60000;
	raw_expect_error(raw_call(fd, &req), EAGAIN);
	close(fd);
	int p = raw_peer(d.socket);
	uint64_t ref;
	ck_assert_uint_eq(raw_refill_refs(p, 1, 1, &ref), 1);
	raw_expect_ok(raw_publish(p, "w0", ref));
	raw_stats_ok(p);
	close(p);
	ck_assert_int_eq(e2e_log_count(&d, "waits up to 60000 ms"), 16);
	e2e_stop_daemon(&d);
}
END_TEST

/* shma_ptr(3): a ref into a block gives its address whether or not the
 * block is live (nothing in the process can tell a block freed into a
 * cache from a live one); NULL for refs that point into no block. */
START_TEST(shma_ptr_of_a_freed_block_is_as_documented)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	int rc = probe(d.socket, "ptr-freed", NULL, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "ptr-freed: the block's address") != NULL, "%s", out);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(max_memory_below_an_arena_says_the_least)
{
	char dir[64], path[128];
	nowhere(dir, sizeof dir, path, sizeof path);
	char name[48];
	test_instance(name, sizeof name);
	const char *const argv[] = {SHMALLOCD_PATH, "--socket", path, "--name", name,
				    "--cleanup", "--max-memory", "1M", NULL};
	int rc = exec_capture(NULL, EXEC_ALL_GROUPS, NULL, argv, out, sizeof out);
	ck_assert_int_ne(rc, 0);
	ck_assert_msg(strstr(out, "the least is --arena-size, 64 MiB") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, "Invalid argument"));
	/* And with arenas of 1 MiB, 1M is enough. */
	const char *const small[] = {SHMALLOCD_PATH, "--socket", path, "--name", name,
				     "--cleanup", "--max-memory", "1M", "--arena-size", "1M",
				     "--version", NULL};
	ck_assert_int_eq(exec_capture(NULL, EXEC_ALL_GROUPS, NULL, small, out, sizeof out), 0);
	rmdir(dir);
}
END_TEST

/* The daemon at its default level (info): a program that exits without
 * shma_disconnect (as every README example does) and shmallocctl calls
 * leave no line in the log. */
START_TEST(normal_exits_and_shmallocctl_leave_the_log_quiet)
{
	struct e2e_daemon d;
	static const char *const info[] = {"--log-level", "info", NULL};
	e2e_start_daemon(&d, info);
	ck_assert_int_eq(probe(d.socket, "malloc", NULL, NULL), 0);
	ck_assert_int_eq(probe(d.socket, "publish", "kept", NULL), 0);
	const char *const ctl[] = {SHMALLOCCTL_PATH, "--socket", d.socket, "stats", NULL};
	ck_assert_int_eq(exec_capture(NULL, EXEC_ALL_GROUPS, NULL, ctl, out, sizeof out), 0);
	const char *const ping[] = {SHMALLOCCTL_PATH, "--socket", d.socket, "ping", NULL};
	ck_assert_int_eq(exec_capture(NULL, EXEC_ALL_GROUPS, NULL, ping, out, sizeof out), 0);
	/* Stopped by hand, so that the log is read before it is removed. */
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	ck_assert_int_eq(e2e_wait(d.pid), 0);
	d.pid = 0;
	ck_assert_int_eq(e2e_log_count(&d, "client "), 0);
	ck_assert_int_eq(e2e_log_count(&d, "goodbye"), 0);
	ck_assert_int_eq(e2e_log_count(&d, "warn"), 0);
	ck_assert_int_eq(e2e_log_count(&d, "error"), 0);
	ck_assert(e2e_log_has(&d, "listening on"));
	e2e_cleanup_daemon(&d);
}
END_TEST

Suite *make_errors_suite(void);
Suite *make_errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("errors");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, no_daemon_is_econnrefused_and_the_socket_is_named);
	tcase_add_test(tc, lookup_enoent_means_only_no_such_name);
	tcase_add_test(tc, lookup_wait_is_answered_at_the_publish);
	tcase_add_test(tc, lookup_wait_times_out_and_tells_no_daemon_apart);
	tcase_add_test(tc, waits_and_unused_connections_leave_no_orphans);
	tcase_add_test(tc, parked_lookups_are_bounded_and_go_with_their_client);
	tcase_add_test(tc, shma_ptr_of_a_freed_block_is_as_documented);
	tcase_add_test(tc, max_memory_below_an_arena_says_the_least);
	tcase_add_test(tc, normal_exits_and_shmallocctl_leave_the_log_quiet);
	suite_add_tcase(s, tc);
	return s;
}
