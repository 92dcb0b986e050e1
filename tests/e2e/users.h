/*
 * Real users for tests of the trust boundary: created with useradd/groupadd
 * under names unique to the run (removed at the end), and processes forked
 * to become them.  Without root or the shadow tools a test says
 * "SKIP: <test>: <why>" on stderr and proves nothing.
 */
#ifndef SHMA_TESTS_USERS_H
#define SHMA_TESTS_USERS_H

#include "e2e.h"
#include "instance.h"

#include <check.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CANNOT_SWITCH 77

struct user {
	char name[32];
	uid_t uid;
	gid_t gid;
};

/* Runs "<tool> <args> name" quietly; its status. */
static inline int tool(const char *tool, const char *args, const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "%s %s %s >/dev/null 2>&1", tool, args, name);
	return system(cmd);
}

/* A group "shp<pid><tag>"; 0 or -1. */
static inline int make_group(char *name, size_t size, const char *tag)
{
	snprintf(name, size, "shp%ld%s", (long)getpid() % 1000000, tag);
	return tool("groupadd", "-r", name) == 0 ? 0 : -1;
}

/* A user "shp<pid><tag>" whose primary group is group; 0 or -1. */
static inline int make_user(struct user *u, const char *tag, const char *group)
{
	snprintf(u->name, sizeof u->name, "shp%ld%s", (long)getpid() % 1000000, tag);
	char args[64];
	snprintf(args, sizeof args, "-r -M -N -s /bin/false -g %s", group);
	if (tool("useradd", args, u->name) != 0)
		return -1;
	struct passwd *pw = getpwnam(u->name);
	if (pw == NULL)
		return -1;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

static inline void remove_user(struct user *u)
{
	if (u->name[0])
		tool("userdel", "", u->name);
	u->name[0] = '\0';
}

static inline void remove_group(char *name)
{
	if (name[0])
		tool("groupdel", "", name);
	name[0] = '\0';
}

/* Forks a process that becomes u (its primary group only) and runs fn. */
static inline pid_t fork_as(const struct user *u, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0)
			_exit(CANNOT_SWITCH);
		_exit(fn(arg));
	}
	return pid;
}

static inline int run_as(const struct user *u, int (*fn)(void *), void *arg)
{
	return e2e_wait(fork_as(u, fn, arg));
}

/* A scratch directory like /tmp (root's, 01777) where users meet: any of
 * them may make names in it, none may take another's.  d's socket goes in
 * <dir>/<sub>/, its log in <dir>, its instance is a fresh one. */
static inline void scratch_daemon(struct e2e_daemon *d, const char *sub)
{
	memset(d, 0, sizeof *d);
	strcpy(d->dir, "/tmp/shp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	ck_assert_int_eq(chmod(d->dir, 01777), 0);
	snprintf(d->socket, sizeof d->socket, "%s/%s/s.sock", d->dir, sub);
	snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
	test_instance(d->instance, sizeof d->instance);
}

/* Stops d if it runs and removes the scratch directory, whoever made what
 * is in it. */
static inline void scratch_daemon_remove(struct e2e_daemon *d)
{
	e2e_cleanup_daemon(d);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", d->dir);
	ck_assert_int_eq(system(cmd), 0);
}

#endif
