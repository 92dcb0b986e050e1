/* SPDX-License-Identifier: MIT */
/*
 * Real users for tests of the trust boundary (see users.h).
 */
#include "users.h"

#include <check.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tool(const char *tool, const char *args, const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "%s %s %s >/dev/null 2>&1", tool, args, name);
	return system(cmd);
}

int make_group(char *name, size_t size, const char *tag)
{
	snprintf(name, size, "shp%ld%s", (long)getpid() % 1000000, tag);
	return tool("groupadd", "-r", name) == 0 ? 0 : -1;
}

int make_user(struct user *u, const char *tag, const char *group)
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

void remove_user(struct user *u)
{
	if (u->name[0])
		tool("userdel", "", u->name);
	u->name[0] = '\0';
}

void remove_group(char *name)
{
	if (name[0])
		tool("groupdel", "", name);
	name[0] = '\0';
}

pid_t fork_as(const struct user *u, int (*fn)(void *), void *arg)
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

int run_as(const struct user *u, int (*fn)(void *), void *arg)
{
	return e2e_wait(fork_as(u, fn, arg));
}

void scratch_daemon(struct e2e_daemon *d, const char *sub)
{
	memset(d, 0, sizeof *d);
	strcpy(d->dir, "/tmp/shp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	ck_assert_int_eq(chmod(d->dir, 01777), 0);
	snprintf(d->socket, sizeof d->socket, "%s/%s/s.sock", d->dir, sub);
	snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
	test_instance(d->instance, sizeof d->instance);
}

void scratch_daemon_remove(struct e2e_daemon *d)
{
	e2e_cleanup_daemon(d);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", d->dir);
	ck_assert_int_eq(system(cmd), 0);
}

void cast_create(struct cast *c)
{
	c->ready = 0;
	if (geteuid() != 0) {
		snprintf(c->why_not, sizeof c->why_not, "not root: cannot create users");
		return;
	}
	for (unsigned i = 0; i < CAST_MAX && c->groups[i].name != NULL; i++)
		if (make_group(c->groups[i].name, CAST_NAME, c->groups[i].tag) != 0)
			goto failed;
	for (unsigned i = 0; i < CAST_MAX && c->users[i].who != NULL; i++) {
		const struct cast_user *u = &c->users[i];
		if (make_user(u->who, u->tag, c->groups[u->group].name) != 0)
			goto failed;
		char args[64];
		snprintf(args, sizeof args, "-aG %s", u->also ? c->groups[u->also - 1].name : "");
		if (u->also && tool("usermod", args, u->who->name) != 0)
			goto failed;
	}
	c->ready = 1;
	return;
failed:
	snprintf(c->why_not, sizeof c->why_not, "useradd/groupadd/usermod failed (no shadow tools?)");
}

void cast_remove(struct cast *c)
{
	for (unsigned i = 0; i < CAST_MAX && c->users[i].who != NULL; i++)
		remove_user(c->users[i].who);
	for (unsigned i = 0; i < CAST_MAX && c->groups[i].name != NULL; i++)
		remove_group(c->groups[i].name);
}

int cast_or_skip(const struct cast *c, const char *test)
{
	if (!c->ready)
		fprintf(stderr, "SKIP: %s: %s\n", test, c->why_not);
	return c->ready;
}
