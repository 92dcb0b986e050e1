/* SPDX-License-Identifier: MIT */
/*
 * shmalloc-run and a socket it cannot trust (issue 21, case 13;
 * client/run/trust.c): something that listens but is no daemon, or a
 * daemon of another user, on the default socket is passed over for a
 * private daemon, and on --socket refused (125, COMMAND not started); the
 * private daemon's segments carry a name nobody could compute from its
 * directory.  Each COMMAND shows from its own /proc/self/maps that it runs
 * on the heap, not on the C library's malloc.
 */
#include "e2e.h"
#include "users.h"
#include "seg.h"
#include "skip.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char work[128];

static void setup(void)
{
	strcpy(work, "/tmp/shp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(work));
	ck_assert_int_eq(chmod(work, 01777), 0); /* like /tmp: anyone makes names */
	setenv("SHMALLOC_PRELOAD", PRELOAD_LIB_PATH, 1);
	setenv("SHMALLOC_DAEMON", SHMALLOCD_PATH, 1);
	unsetenv("SHMALLOC_SOCKET");
	unsetenv("LD_PRELOAD");
	setenv("XDG_RUNTIME_DIR", work, 1); /* the default socket: <work>/shmalloc/ */
	setenv("TMPDIR", work, 1);
}

static void teardown(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", work);
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("TMPDIR");
}

/* What a squatter runs: binds path (its directory made first), says so on
 * ready, then takes each connection and closes it unanswered. */
struct squat {
	char path[200];
	int ready;
};

static int squat_on(void *arg)
{
	struct squat *q = arg;
	char dir[200];
	snprintf(dir, sizeof dir, "%s", q->path);
	*strrchr(dir, '/') = '\0';
	mkdir(dir, 0755);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(q->path) >= sizeof sa.sun_path)
		return 1;
	memcpy(sa.sun_path, q->path, strlen(q->path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0)
		return 1;
	char c = 1;
	if (write(q->ready, &c, 1) != 1)
		return 1;
	for (;;) {
		int c2 = accept(fd, NULL, NULL);
		if (c2 >= 0)
			close(c2);
	}
}

/* Starts a squatter on path (as user u, or as we are with u NULL). */
static pid_t squat(const char *path, const struct user *u)
{
	struct squat q;
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	snprintf(q.path, sizeof q.path, "%s", path);
	q.ready = p[1];
	pid_t pid;
	if (u != NULL) {
		pid = fork_as(u, squat_on, &q);
	} else {
		pid = fork();
		if (pid == 0)
			_exit(squat_on(&q));
	}
	ck_assert_int_gt(pid, 0);
	close(p[1]);
	char c;
	ck_assert_msg(read(p[0], &c, 1) == 1, "the squatter did not listen");
	close(p[0]);
	return pid;
}

static void unsquat(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Runs shmalloc-run with args, then a shell COMMAND printing the socket it
 * was given and the heap segment its grep maps; stdout in out, stderr in
 * err (size n each); the status. */
static int run(const char *const *args, char *out, char *err, size_t n)
{
	char o[200], e[200];
	snprintf(o, sizeof o, "%s/out", work);
	snprintf(e, sizeof e, "%s/err", work);
	const char *argv[16] = {SHMALLOC_RUN_PATH};
	int k = 1;
	for (; args != NULL && *args != NULL && k < 10; args++)
		argv[k++] = *args;
	argv[k++] = "/bin/sh";
	argv[k++] = "-c";
	argv[k++] = "echo \"$SHMALLOC_SOCKET\"; grep -o '/dev/shm/shmalloc\\.[A-Za-z0-9_-]*\\.p' "
		    "/proc/self/maps | head -1";
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int status = e2e_wait(pid);
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(i ? e : o, "r");
		char *to = i ? err : out;
		size_t got = f ? fread(to, 1, n - 1, f) : 0;
		to[got] = '\0';
		if (f)
			fclose(f);
	}
	return status;
}

/* COMMAND's output says it ran on a daemon other than on path, on the heap;
 * its instance name is returned in inst (size n). */
static void ran_on_the_heap_not(const char *path, const char *out, const char *err,
				char *inst, size_t n)
{
	ck_assert_msg(strncmp(out, path, strlen(path)) != 0, "COMMAND got %s; stderr: %s", out,
		      err);
	const char *seg = strstr(out, "/dev/shm/shmalloc.");
	ck_assert_msg(seg != NULL, "COMMAND ran on the C library's malloc: %s; stderr: %s", out,
		      err);
	seg += strlen("/dev/shm/shmalloc.");
	size_t len = strcspn(seg, ".");
	ck_assert_uint_lt(len, n);
	memcpy(inst, seg, len);
	inst[len] = '\0';
}

/* Planted bug it catches: shmalloc-run taking whatever accepts a
 * connection for a daemon (listening(), as before trust.c): COMMAND then
 * gets the squatter's socket and runs on glibc's malloc; with --socket it
 * starts at all. */
START_TEST(a_listener_that_is_no_daemon_is_not_used)
{
	char path[200], out[1024], err[1024], inst[64];
	snprintf(path, sizeof path, "%s/shmalloc/shmallocd.sock", work);
	pid_t sq = squat(path, NULL);
	int st = run(NULL, out, err, sizeof out);
	ck_assert_msg(st == 0, "status %d; stderr: %s", st, err);
	ran_on_the_heap_not(path, out, err, inst, sizeof inst);
	ck_assert_msg(strstr(err, "is no shmallocd to trust") && strstr(err, "not used"),
		      "stderr: %s", err);
	/* Named with --socket: refused, COMMAND never started. */
	const char *explicit[] = {"--socket", path, NULL};
	st = run(explicit, out, err, sizeof out);
	ck_assert_int_eq(st, 125);
	ck_assert_msg(out[0] == '\0', "COMMAND ran: %s", out);
	ck_assert_msg(strstr(err, "is no shmallocd to trust") && strstr(err, path), "stderr: %s",
		      err);
	unsquat(sq);
}
END_TEST

/* Planted bug it catches: the same, with the squatter another user (the
 * library refuses its uid, so COMMAND ran on glibc's malloc: the report of
 * case 13). */
START_TEST(another_users_listener_on_the_default_socket_is_passed_over)
{
	if (geteuid() != 0) {
		TEST_SKIP("not root: cannot create users");
		return;
	}
	char group[32], path[200], out[1024], err[1024], inst[64];
	struct user sq_user;
	if (make_group(group, sizeof group, "ts") != 0 || make_user(&sq_user, "ts", group) != 0) {
		TEST_SKIP("useradd/groupadd failed (no shadow tools?)");
		return;
	}
	snprintf(path, sizeof path, "%s/shmalloc/shmallocd.sock", work);
	pid_t sq = squat(path, &sq_user);
	int st = run(NULL, out, err, sizeof out);
	unsquat(sq);
	remove_user(&sq_user);
	remove_group(group);
	ck_assert_msg(st == 0, "status %d; stderr: %s", st, err);
	ran_on_the_heap_not(path, out, err, inst, sizeof inst);
}
END_TEST

/* Planted bug it catches: the private daemon started without --name (its
 * instance then the hash of a socket path anyone watching the temporary
 * directory sees appear, so its segment names can be taken first). */
START_TEST(the_private_daemon_has_a_name_nobody_can_compute)
{
	char path[200], out[1024], err[1024], inst[64], hashed[64];
	snprintf(path, sizeof path, "%s/shmalloc/shmallocd.sock", work);
	int st = run(NULL, out, err, sizeof out);
	ck_assert_msg(st == 0, "status %d; stderr: %s", st, err);
	ck_assert_msg(strstr(err, "started a private one on ") != NULL, "stderr: %s", err);
	ran_on_the_heap_not(path, out, err, inst, sizeof inst);
	char sock[300];
	snprintf(sock, sizeof sock, "%.*s", (int)strcspn(out, "\n"), out);
	seg_instance_from_path(sock, hashed, sizeof hashed);
	ck_assert_str_ne(inst, hashed);
	ck_assert_msg(strncmp(inst, "run-", 4) == 0 && strlen(inst) == 20, "instance %s", inst);
}
END_TEST

Suite *make_run_trust_suite(void);
Suite *make_run_trust_suite(void)
{
	Suite *s = suite_create("run_trust");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	if (!SANITIZED) {
		tcase_add_test(tc, a_listener_that_is_no_daemon_is_not_used);
		tcase_add_test(tc, another_users_listener_on_the_default_socket_is_passed_over);
		tcase_add_test(tc, the_private_daemon_has_a_name_nobody_can_compute);
	} else {
		fprintf(stderr, "SKIP: run_trust: built with sanitizers (the library cannot be "
				"preloaded)\n");
	}
	suite_add_tcase(s, tc);
	return s;
}
