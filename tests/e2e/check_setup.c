/* SPDX-License-Identifier: MIT */
/*
 * The setup as the README and the man pages describe it, done for real:
 *   - "Production setup": a user added to the daemon's group with
 *     `usermod -aG` (a supplementary group) runs a program against a daemon
 *     started with --allow-gid of that group, and is served;
 *   - root reads the stats of a daemon of another user (not listing root)
 *     with shmallocctl, and may do nothing else there;
 *   - the whole production setup as the unit runs it (a system user's
 *     daemon in its own 0750 directory, an application user in its group
 *     by usermod -aG, root's shmallocctl), without systemd;
 *   - `make install DESTDIR=...` and `make install prefix=...`, then the
 *     installed shmalloc-run, unit, shmalloc.pc and a program built with
 *     pkg-config as the README says (tests/e2e/install.sh).
 * Each creates the real users it needs (users.h) and execs real programs
 * (tests/probe, shmallocctl); without root or useradd it says SKIP.
 */
#include "e2e.h"
#include "exec.h"
#include "raw.h"
#include "instance.h"
#include "skip.h"
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

#ifndef PROBE_PATH
#error "PROBE_PATH must name tests/probe"
#endif

static char out[16384];

/* The users and groups of the tests, made once by the runner (an unchecked
 * fixture, in its own process) and removed by it, so that a test that fails
 * -- its process ends at the failed check -- leaves none behind:
 *   u    a user in its own group "own", and in "served" by usermod -aG;
 *   r    a user in its own group, whose daemon root looks at;
 *   o    another user, in its own group;
 *   sysd the daemon's system user, in "sysgroup"; app, in "appgroup" and in
 *        "sysgroup" by usermod -aG (the production setup). */
static struct user u, r, o, sysd, app;
static char served[CAST_NAME], own[CAST_NAME], rgroup[CAST_NAME], ogroup[CAST_NAME],
	sysgroup[CAST_NAME], appgroup[CAST_NAME];
static struct e2e_daemon d, foreign;
static struct cast cast = {
	.groups = {{served, "gv"}, {own, "gm"}, {rgroup, "gr"}, {ogroup, "gx"}, {sysgroup, "gs"},
		   {appgroup, "ga"}},
	.users = {{&u, "m", 1, 1}, {&r, "r", 2, 0}, {&o, "x", 3, 0}, {&sysd, "s", 4, 0},
		  {&app, "a", 5, 5}},
};

CAST_FIXTURE(cast)

/* ---- a member by usermod -aG ---- */

START_TEST(a_member_added_with_usermod_aG_is_served)
{
	if (!users_or_skip("a_member_added_with_usermod_aG_is_served"))
		return;
	/* As the README says: the user's primary group is its own, the
	 * daemon's group is added (usermod -aG, in users_create()). */
	struct group *g = getgrnam(served);
	ck_assert_ptr_nonnull(g);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)g->gr_gid);
	const char *const opts[] = {"--allow-gid", gid, NULL};
	e2e_start_daemon(&d, opts);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	char sock[160];
	snprintf(sock, sizeof sock, "SHMALLOC_SOCKET=%s", d.socket);
	const char *const env[] = {sock, NULL};
	const char *const argv[] = {PROBE_PATH, "malloc", NULL};
	/* Logged in (initgroups): in the group by its supplementary list only. */
	int rc = exec_capture(&u, EXEC_ALL_GROUPS, env, argv, out, sizeof out);
	ck_assert_msg(rc == 0 && strstr(out, "malloc: 0 OK") != NULL,
		      "a member by usermod -aG was not served (exit %d): %s", rc, out);
	ck_assert_int_eq(e2e_log_count(&d, "refused pid"), 0);
	/* The same user without its supplementary groups is not a member. */
	rc = exec_capture(&u, EXEC_PRIMARY_ONLY, env, argv, out, sizeof out);
	ck_assert_msg(rc == 1 && strstr(out, "EACCES") != NULL, "exit %d: %s", rc, out);
	e2e_stop_daemon(&d);
	d.dir[0] = '\0';
}
END_TEST

/* ---- root and another user's daemon ---- */

static int exec_foreign_daemon(void *arg)
{
	(void)arg;
	const char *argv[] = {SHMALLOCD_PATH, "--socket", foreign.socket, "--name",
			      foreign.instance, "--cleanup", "--log-level", "debug", NULL};
	if (freopen(foreign.log, "a", stderr) == NULL)
		return 126;
	execv(SHMALLOCD_PATH, (char *const *)argv);
	return 127;
}

/* Waits (5 s at most) for the socket to take connections: a wait on state. */
static void wait_listening(const struct e2e_daemon *which)
{
	for (int i = 0; i < 500; i++) {
		int fd = raw_connect(which->socket);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	ck_abort_msg("the daemon did not listen; see %s", which->log);
}

START_TEST(root_reads_the_stats_of_another_users_daemon_and_nothing_more)
{
	if (!users_or_skip("root_reads_the_stats_of_another_users_daemon_and_nothing_more"))
		return;
	scratch_daemon(&foreign, "s");
	foreign.pid = fork_as(&r, exec_foreign_daemon, NULL);
	wait_listening(&foreign);
	char sock[160], trust[48];
	snprintf(sock, sizeof sock, "SHMALLOC_SOCKET=%s", foreign.socket);
	/* The library trusts a daemon of another user only when told which
	 * (its socket is in /tmp, where anybody could have put one). */
	snprintf(trust, sizeof trust, "SHMALLOC_DAEMON_UID=%lu", (unsigned long)r.uid);
	const char *const env[] = {sock, trust, NULL};
	const char *const stats[] = {SHMALLOCCTL_PATH, "stats", NULL};
	int rc = exec_capture(NULL, EXEC_ALL_GROUPS, env, stats, out, sizeof out);
	ck_assert_msg(rc == 0, "root's shmallocctl stats exited %d: %s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "in use"));
	const char *const json[] = {SHMALLOCCTL_PATH, "stats", "--json", NULL};
	ck_assert_int_eq(exec_capture(NULL, EXEC_ALL_GROUPS, env, json, out, sizeof out), 0);
	const char *const roots[] = {SHMALLOCCTL_PATH, "roots", NULL};
	ck_assert_int_eq(exec_capture(NULL, EXEC_ALL_GROUPS, env, roots, out, sizeof out), 0);
	/* Looking only: an allocation is refused, by the daemon, with EACCES. */
	const char *const probe[] = {PROBE_PATH, "malloc", NULL};
	rc = exec_capture(NULL, EXEC_ALL_GROUPS, env, probe, out, sizeof out);
	ck_assert_msg(rc == 1 && strstr(out, "EACCES") != NULL, "exit %d: %s", rc, out);
	ck_assert(e2e_log_has(&foreign, "root is not in --allow-uid"));
	/* Another user (not root) is refused at the door. */
	rc = exec_capture(&o, EXEC_ALL_GROUPS, env, stats, out, sizeof out);
	ck_assert_msg(rc == 4, "another user's shmallocctl stats exited %d: %s", rc, out);
	ck_assert_int_eq(kill(foreign.pid, SIGTERM), 0);
	ck_assert_int_eq(e2e_wait(foreign.pid), 0);
	foreign.pid = 0;
	scratch_daemon_remove(&foreign);
	foreign.dir[0] = '\0';
}
END_TEST

/* ---- the README's production setup, as the unit runs it ---- */

static int exec_system_daemon(void *arg)
{
	const char *gid = arg;
	const char *argv[] = {SHMALLOCD_PATH, "--socket", foreign.socket, "--name", foreign.instance,
			      "--cleanup", "--log-level", "debug", "--allow-gid", gid, NULL};
	if (freopen(foreign.log, "a", stderr) == NULL)
		return 126;
	execv(SHMALLOCD_PATH, (char *const *)argv);
	return 127;
}

/* The daemon runs as a system user of its own, in its own group, in a
 * directory like the unit's RuntimeDirectory (its own, 0750, in a parent
 * only root writes); an application user gets the group with usermod -aG.
 * Its program is served with no variable but the socket, and root's
 * shmallocctl stats reads the daemon. */
START_TEST(the_production_setup_works)
{
	if (!users_or_skip("the_production_setup_works"))
		return;
	scratch_daemon(&foreign, "run");
	ck_assert_int_eq(chmod(foreign.dir, 0755), 0);
	char dir[96];
	snprintf(dir, sizeof dir, "%s/run", foreign.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, sysd.uid, sysd.gid), 0);
	ck_assert_int_eq(chmod(dir, 0750), 0);
	snprintf(foreign.socket, sizeof foreign.socket, "%s/shmallocd.sock", dir);
	int fd = open(foreign.log, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchown(fd, sysd.uid, sysd.gid), 0);
	close(fd);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)sysd.gid);
	foreign.pid = fork_as(&sysd, exec_system_daemon, gid);
	wait_listening(&foreign);
	char sock[160];
	snprintf(sock, sizeof sock, "SHMALLOC_SOCKET=%s", foreign.socket);
	const char *const env[] = {sock, "SHMALLOC_DAEMON_UID", NULL};
	const char *const probe[] = {PROBE_PATH, "publish", "from-app", NULL};
	int rc = exec_capture(&app, EXEC_ALL_GROUPS, env, probe, out, sizeof out);
	ck_assert_msg(rc == 0, "the application user's program (exit %d): %s", rc, out);
	const char *const stats[] = {SHMALLOCCTL_PATH, "roots", NULL};
	rc = exec_capture(NULL, EXEC_ALL_GROUPS, env, stats, out, sizeof out);
	ck_assert_msg(rc == 0 && strstr(out, "from-app") != NULL, "root's shmallocctl roots (exit %d): %s",
		      rc, out);
	ck_assert_int_eq(kill(foreign.pid, SIGTERM), 0);
	ck_assert_int_eq(e2e_wait(foreign.pid), 0);
	foreign.pid = 0;
	ck_assert_int_eq(chmod(foreign.dir, 01777), 0);
	scratch_daemon_remove(&foreign);
	foreign.dir[0] = '\0';
}
END_TEST

/* ---- make install ---- */

START_TEST(make_install_under_a_destdir_and_a_prefix_works)
{
	if (SANITIZED) {
		TEST_SKIP("an ASan build's library does not link into a plain program");
		return;
	}
	const char *const argv[] = {"/bin/sh", SRCDIR "/tests/e2e/install.sh", ABS_BUILDDIR, SRCDIR,
				    NULL};
	const char *const env[] = {"SHMALLOC_SOCKET", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", NULL};
	int rc = exec_capture(NULL, EXEC_ALL_GROUPS, env, argv, out, sizeof out);
	if (rc == 77) {
		TEST_SKIP("%s", out);
		return;
	}
	ck_assert_msg(rc == 0, "install.sh exited %d: %s", rc, out);
}
END_TEST

Suite *make_setup_suite(void);
Suite *make_setup_suite(void)
{
	Suite *s = suite_create("setup");
	TCase *tc = tcase_create("setup");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_member_added_with_usermod_aG_is_served);
	tcase_add_test(tc, root_reads_the_stats_of_another_users_daemon_and_nothing_more);
	tcase_add_test(tc, the_production_setup_works);
	suite_add_tcase(s, tc);
	TCase *inst = tcase_create("install");
	tcase_set_timeout(inst, 300);
	tcase_add_test(inst, make_install_under_a_destdir_and_a_prefix_works);
	suite_add_tcase(s, inst);
	return s;
}
