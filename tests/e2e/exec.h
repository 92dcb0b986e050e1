/* SPDX-License-Identifier: MIT */
/*
 * Exec'd programs for the errors and setup suites: a program run as a user
 * would run it -- maybe as another user, with or without that user's
 * supplementary groups, with some environment -- and everything it wrote
 * (stdout and stderr, in order) read back.
 */
#ifndef SHMA_TESTS_EXEC_H
#define SHMA_TESTS_EXEC_H

#include "e2e.h"
#include "users.h"

#include <check.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How the child becomes u: as a login would (initgroups: its primary and
 * every supplementary group), or with its primary group only. */
enum exec_groups { EXEC_ALL_GROUPS, EXEC_PRIMARY_ONLY };

/* Runs argv[0] (a path) with env applied ("NAME=value" sets, "NAME" unsets),
 * as u (NULL: this process's user), its output into out (cap bytes,
 * NUL-terminated).  Its exit status, 128 + a signal, or CANNOT_SWITCH. */
static inline int exec_capture(const struct user *u, enum exec_groups groups,
			       const char *const *env, const char *const *argv, char *out,
			       size_t cap)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[1]);
		for (; env && *env; env++) {
			if (strchr(*env, '=') != NULL)
				putenv((char *)*env);
			else
				unsetenv(*env);
		}
		if (u != NULL) {
			int rc = groups == EXEC_ALL_GROUPS ? initgroups(u->name, u->gid)
							   : setgroups(0, NULL);
			if (rc != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0)
				_exit(CANNOT_SWITCH);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(p[0], out + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap - 1) {
			char sink[256];
			while (read(p[0], sink, sizeof sink) > 0)
				;
			break;
		}
	}
	out[n] = '\0';
	close(p[0]);
	return e2e_wait(pid);
}

#endif
