/* SPDX-License-Identifier: MIT */
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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define CANNOT_SWITCH 77

struct user {
	char name[32];
	uid_t uid;
	gid_t gid;
};

/* Runs "<tool> <args> name" quietly; its status. */
int tool(const char *tool, const char *args, const char *name);

/* A group "shp<pid><tag>"; 0 or -1. */
int make_group(char *name, size_t size, const char *tag);

/* A user "shp<pid><tag>" whose primary group is group; 0 or -1. */
int make_user(struct user *u, const char *tag, const char *group);

void remove_user(struct user *u);

void remove_group(char *name);

/* Forks a process that becomes u (its primary group only) and runs fn. */
pid_t fork_as(const struct user *u, int (*fn)(void *), void *arg);

int run_as(const struct user *u, int (*fn)(void *), void *arg);

/* A scratch directory like /tmp (root's, 01777) where users meet: any of
 * them may make names in it, none may take another's.  d's socket goes in
 * <dir>/<sub>/, its log in <dir>, its instance is a fresh one. */
void scratch_daemon(struct e2e_daemon *d, const char *sub);

/* Stops d if it runs and removes the scratch directory, whoever made what
 * is in it. */
void scratch_daemon_remove(struct e2e_daemon *d);

#endif
