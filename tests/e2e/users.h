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

/*
 * A suite's cast of users, made once in the runner (an unchecked fixture:
 * cast_create/cast_remove): its groups first, then each user with one of
 * them as primary group and, if `also` names one, that as a supplementary
 * group (usermod -aG, as the README's setup does).  Without root or the
 * shadow tools, ready stays 0 and why_not says why.
 */
#define CAST_MAX 8
struct cast_group {
	char *name; /* where its name goes (CAST_NAME bytes) */
	const char *tag;
};
#define CAST_NAME 32
struct cast_user {
	struct user *who;
	const char *tag;
	int group; /* index in groups: the primary group */
	int also;  /* index + 1 of a supplementary group; 0: none */
};
struct cast {
	struct cast_group groups[CAST_MAX];
	struct cast_user users[CAST_MAX];
	int ready;
	char why_not[128];
};
void cast_create(struct cast *c);
void cast_remove(struct cast *c);
/* 1 if c is ready, else "SKIP: <test>: <why>" on stderr and 0. */
int cast_or_skip(const struct cast *c, const char *test);

/* The fixture functions of a suite over its cast c: users_create() and
 * users_remove() (for tcase_add_unchecked_fixture) and
 * users_or_skip(test). */
#define CAST_FIXTURE(c)                                                  \
	static void users_create(void)                                   \
	{                                                                \
		cast_create(&(c));                                       \
	}                                                                \
	static void users_remove(void)                                   \
	{                                                                \
		cast_remove(&(c));                                       \
	}                                                                \
	static __attribute__((unused)) int users_or_skip(const char *test) \
	{                                                                \
		return cast_or_skip(&(c), test);                         \
	}

#endif
