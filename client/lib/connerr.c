/* SPDX-License-Identifier: MIT */
/*
 * What the library says when it cannot reach its daemon.
 *
 * The first shma_malloc of a program connects on its own, so a program run
 * without a daemon used to get NULL with errno ENOENT -- "No such file or
 * directory" -- and nothing said which file.  Now:
 *   - the errno says the cause, one each: no daemon listens (ECONNREFUSED,
 *     also when the socket is not there at all), the daemon refuses this
 *     user (EACCES; the file system refusing the way to the socket is
 *     EACCES too), a daemon this process does not trust (EPERM), the
 *     connection lost (ECONNRESET); ENOENT is left to "no such name";
 *   - shma_strerror() of that errno names the socket tried;
 *   - the first failure in a process puts one line on stderr with the
 *     socket and what to do, since a program that only mallocs may never
 *     look at errno.  Later failures are quiet (a program whose daemon is
 *     gone would otherwise say it on every free that flushes).
 *
 * Nothing here allocates: the texts are built into static buffers, two of
 * them so that a thread reading the old text while another writes the new
 * never sees it half made (the pointer is switched once the text is
 * whole).  Writers are serialized by the connection's lock.
 */
#include "config.h"

#include "connerr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TEXT_MAX 256

static char texts[2][TEXT_MAX];
static const char *current;  /* texts[0] or texts[1], or NULL */
static int current_err;      /* positive */
static int said, quiet;

void connerr_quiet(void)
{
	quiet = 1;
}

/* What to say of err on path, in the words of shma_strerror(). */
static void describe(char *out, size_t n, const char *path, int err)
{
	switch (err) {
	case ECONNREFUSED:
		snprintf(out, n, "no shmallocd listens on %s", path);
		break;
	case EACCES:
		snprintf(out, n, "permission denied on %s: the daemon (its --allow-uid, "
			 "--allow-gid) or the file system refuses this user", path);
		break;
	case EPERM:
		snprintf(out, n, "the daemon on %s runs as a user this process does not "
			 "trust (see SHMALLOC_DAEMON_UID)", path);
		break;
	case ECONNRESET:
	case EPIPE:
		snprintf(out, n, "the connection to the daemon on %s was lost", path);
		break;
	case ENAMETOOLONG:
		snprintf(out, n, "the socket path %s is too long", path[0] ? path : "(none)");
		break;
	default:
		snprintf(out, n, "cannot use the daemon on %s: %s", path, strerror(err));
		break;
	}
}

/* What to do about it, for the stderr line. */
static const char *advice(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return "; start shmallocd, or point SHMALLOC_SOCKET at its socket";
	case EACCES:
		return "; see shmallocd(8), Production setup";
	default:
		return "";
	}
}

/* 1 for the errors of a setup that cannot work as it is (no daemon, not
 * allowed, not trusted): said on stderr.  A lost connection or a timeout
 * is met on the way to a reconnection and needs no line of its own. */
static int says_setup(int err)
{
	return err == ECONNREFUSED || err == EACCES || err == EPERM || err == ENAMETOOLONG;
}

int connerr_note(const char *path, int rc)
{
	int err = rc < 0 ? -rc : rc;
	if (err == ENOENT)
		err = ECONNREFUSED;
	if (path == NULL)
		path = "";
	char *t = texts[current == texts[0]];
	describe(t, TEXT_MAX, path, err);
	current_err = err;
	__atomic_store_n(&current, t, __ATOMIC_RELEASE);
	if (!said && !quiet && says_setup(err)) {
		/* snprintf and write(2): stdio's streams may allocate, and the
		 * process's malloc may be this library. */
		char line[TEXT_MAX + 128];
		int n = snprintf(line, sizeof line, "shmalloc[%ld]: %s%s\n", (long)getpid(), t,
				 advice(err));
		said = 1;
		if (n > 0) {
			ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
			(void)w; /* nothing to do if stderr is gone */
		}
	}
	return -err;
}

const char *connerr_text(int err)
{
	if (err < 0)
		err = -err;
	const char *t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
	return t != NULL && err == current_err ? t : NULL;
}
