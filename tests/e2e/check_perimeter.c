/* SPDX-License-Identifier: MIT */
/*
 * The perimeter (doc/architecture.md, Security): attacks by another user on the socket's
 * directory, and by a daemon of another user on the clients.  Each test creates the real users it needs (useradd,
 * unique names per run, removed at the end) and forks processes that become
 * them, so it proves the real thing; without root or useradd it prints
 * "SKIP: <test>: <why>" to stderr and proves nothing.
 *
 * The attacks, each of which worked before the perimeter:
 *   - a squatter's directory where the socket goes (0777, 0700 of his, a
 *     symlink to his): the daemon listened inside it;
 *   - a squatter's own daemon on the victim's socket path: the library
 *     connected and trusted it.
 * The attacks on segment names are in check_squat.c.
 */
#include "e2e.h"
#include "raw.h"
#include "instance.h"
#include "shmalloc.h"
#include "users.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* attacker: a group of his own; daemon and victim: the group "served". */
static struct user attacker, sysd, victim;
static char attacker_group[CAST_NAME], served_group[CAST_NAME];
static struct cast cast = {
	.groups = {{attacker_group, "ga"}, {served_group, "gs"}},
	.users = {{&attacker, "a", 0, 0}, {&sysd, "d", 1, 0}, {&victim, "v", 1, 0}},
};

/* Unchecked fixture (in the runner, once): the users. */
CAST_FIXTURE(cast)

/* The daemon of a test, in a scratch directory (users.h). */
static struct e2e_daemon d;

static char arg_path[128];

static int make_dir_0777(void *arg)
{
	(void)arg;
	return mkdir(arg_path, 0777) == 0 && chmod(arg_path, 0777) == 0 ? 0 : 1;
}

static int make_dir_0700(void *arg)
{
	(void)arg;
	return mkdir(arg_path, 0700) == 0 ? 0 : 1;
}

static char link_target[128];

static int make_symlink(void *arg)
{
	(void)arg;
	return mkdir(link_target, 0777) == 0 && chmod(link_target, 0777) == 0 &&
			       symlink(link_target, arg_path) == 0
		       ? 0
		       : 1;
}

static void socket_dir_of(char *out, size_t size)
{
	snprintf(out, size, "%s/sq", d.dir);
}

/* The daemon, root, must refuse the directory: exit non-zero, one line why,
 * no socket anywhere the squatter can reach. */
static void assert_refused(const char *why)
{
	int status = e2e_restart_daemon(&d, NULL);
	ck_assert_msg(status != 0, "shmallocd listened in a squatted directory (%s)", d.socket);
	ck_assert_msg(e2e_log_has(&d, why), "no \"%s\" in %s", why, d.log);
	ck_assert_int_eq(e2e_log_count(&d, "refusing to start"), 1);
	struct stat st;
	ck_assert_int_ne(lstat(d.socket, &st), 0);
	if (link_target[0]) {
		char in_target[256];
		snprintf(in_target, sizeof in_target, "%s/s.sock", link_target);
		ck_assert_int_ne(lstat(in_target, &st), 0);
	}
	/* It refused before it made any segment. */
	ck_assert_int_eq(test_segments_left(d.instance), 0);
}

START_TEST(a_squatters_open_directory_is_refused)
{
	if (!users_or_skip("a_squatters_open_directory_is_refused"))
		return;
	scratch_daemon(&d, "sq");
	socket_dir_of(arg_path, sizeof arg_path);
	link_target[0] = '\0';
	ck_assert_int_eq(run_as(&attacker, make_dir_0777, NULL), 0);
	assert_refused("belongs to uid");
	scratch_daemon_remove(&d);
}
END_TEST

START_TEST(a_squatters_private_directory_is_refused)
{
	if (!users_or_skip("a_squatters_private_directory_is_refused"))
		return;
	scratch_daemon(&d, "sq");
	socket_dir_of(arg_path, sizeof arg_path);
	link_target[0] = '\0';
	ck_assert_int_eq(run_as(&attacker, make_dir_0700, NULL), 0);
	assert_refused("belongs to uid");
	scratch_daemon_remove(&d);
}
END_TEST

START_TEST(a_squatters_symlink_is_refused)
{
	if (!users_or_skip("a_squatters_symlink_is_refused"))
		return;
	scratch_daemon(&d, "sq");
	socket_dir_of(arg_path, sizeof arg_path);
	snprintf(link_target, sizeof link_target, "%s/evil", d.dir);
	ck_assert_int_eq(run_as(&attacker, make_symlink, NULL), 0);
	assert_refused("is a symlink");
	link_target[0] = '\0';
	scratch_daemon_remove(&d);
}
END_TEST

/* Our own directory, but one anybody may write: refused as well (no user
 * needed: the mode alone is wrong). */
START_TEST(an_open_directory_of_our_own_is_refused)
{
	scratch_daemon(&d, "sq");
	socket_dir_of(arg_path, sizeof arg_path);
	link_target[0] = '\0';
	ck_assert_int_eq(mkdir(arg_path, 0700), 0);
	ck_assert_int_eq(chmod(arg_path, 0777), 0);
	assert_refused("lets others in");
	scratch_daemon_remove(&d);
}
END_TEST

/* ---- a daemon of another user on the socket path ---- */

/* Execs shmallocd as whoever runs this, on d.socket, logging to d.log, with
 * the options in arg (a NULL-terminated list). */
static int exec_daemon(void *arg)
{
	const char *const *extra = arg;
	const char *argv[16] = {SHMALLOCD_PATH, "--socket", d.socket, "--name", d.instance,
				"--cleanup", "--log-level", "debug"};
	int argc = 8;
	for (; extra != NULL && *extra != NULL && argc < 15; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	if (freopen(d.log, "a", stderr) == NULL)
		return 126;
	execv(SHMALLOCD_PATH, (char *const *)argv);
	return 127;
}

/* Waits up to 5 s for d's socket to take connections. */
static void wait_listening(void)
{
	for (int i = 0; i < 500; i++) {
		int fd = raw_connect(d.socket);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	ck_abort_msg("the daemon did not listen; see %s", d.log);
}

static void stop_foreign_daemon(void)
{
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	ck_assert_int_eq(e2e_wait(d.pid), 0);
	d.pid = 0;
}

/* A victim process: connect must say EPERM, and so must malloc's errno. */
static int victim_refuses(void *arg)
{
	(void)arg;
	int rc = shma_connect(d.socket);
	if (rc != -EPERM)
		return 10;
	if (strstr(shma_strerror(rc), "SHMALLOC_DAEMON_UID") == NULL)
		return 11;
	setenv("SHMALLOC_SOCKET", d.socket, 1);
	errno = 0;
	void *p = shma_malloc(64);
	if (p != NULL || errno != EPERM)
		return 12;
	return 0;
}

/* With SHMALLOC_DAEMON_UID naming the daemon's user, the victim goes on. */
static int victim_trusts(void *arg)
{
	setenv("SHMALLOC_DAEMON_UID", arg, 1);
	int rc = shma_connect(d.socket);
	if (rc != 0)
		return 20;
	void *p = shma_malloc(64);
	if (p == NULL)
		return 21;
	memset(p, 1, 64);
	shma_free(p);
	shma_disconnect();
	return 0;
}

static int open_up_socket_dir(void *arg)
{
	(void)arg;
	return chmod(arg_path, 0755) == 0 ? 0 : 1;
}

START_TEST(a_daemon_of_another_user_is_not_trusted)
{
	if (!users_or_skip("a_daemon_of_another_user_is_not_trusted"))
		return;
	scratch_daemon(&d, "sq");
	/* The squatter's daemon, on the path the victim uses, serving the
	 * victim (its uid listed, the socket, segments and directory open). */
	char uid[16];
	snprintf(uid, sizeof uid, "%lu", (unsigned long)victim.uid);
	const char *const opts[] = {"--allow-uid", uid, "--socket-mode", "0666", NULL};
	d.pid = fork_as(&attacker, exec_daemon, (void *)opts);
	wait_listening();
	socket_dir_of(arg_path, sizeof arg_path);
	ck_assert_int_eq(run_as(&attacker, open_up_socket_dir, NULL), 0);
	ck_assert_int_eq(run_as(&victim, victim_refuses, NULL), 0);
	/* Named, by user name or uid, the same daemon is trusted. */
	ck_assert_int_eq(run_as(&victim, victim_trusts, attacker.name), 0);
	snprintf(uid, sizeof uid, "%lu", (unsigned long)attacker.uid);
	ck_assert_int_eq(run_as(&victim, victim_trusts, uid), 0);
	stop_foreign_daemon();
	scratch_daemon_remove(&d);
}
END_TEST

/* The production setup: a system user's daemon in a directory the operator
 * made for it (owned by it, 02750, in a parent only root writes): its
 * clients trust it with no variable set, since nobody else could have made
 * that directory. */
START_TEST(a_system_daemon_in_its_own_directory_is_trusted)
{
	if (!users_or_skip("a_system_daemon_in_its_own_directory_is_trusted"))
		return;
	scratch_daemon(&d, "run");
	ck_assert_int_eq(chmod(d.dir, 0755), 0);
	char dir[128];
	snprintf(dir, sizeof dir, "%s/run", d.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, sysd.uid, sysd.gid), 0);
	ck_assert_int_eq(chmod(dir, 02750), 0);
	/* The log in a file the daemon's user may write. */
	int fd = open(d.log, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchown(fd, sysd.uid, sysd.gid), 0);
	close(fd);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)sysd.gid);
	const char *const opts[] = {"--allow-gid", gid, NULL};
	d.pid = fork_as(&sysd, exec_daemon, (void *)opts);
	wait_listening();
	unsetenv("SHMALLOC_DAEMON_UID");
	ck_assert_int_eq(run_as(&victim, victim_trusts, (void *)""), 0);
	stop_foreign_daemon();
	ck_assert_int_eq(chmod(d.dir, 01777), 0);
	scratch_daemon_remove(&d);
}
END_TEST


Suite *make_perimeter_suite(void);
Suite *make_perimeter_suite(void)
{
	Suite *s = suite_create("perimeter");
	TCase *tc = tcase_create("socket");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_squatters_open_directory_is_refused);
	tcase_add_test(tc, a_squatters_private_directory_is_refused);
	tcase_add_test(tc, a_squatters_symlink_is_refused);
	tcase_add_test(tc, an_open_directory_of_our_own_is_refused);
	tcase_add_test(tc, a_daemon_of_another_user_is_not_trusted);
	tcase_add_test(tc, a_system_daemon_in_its_own_directory_is_trusted);
	suite_add_tcase(s, tc);
	return s;
}
