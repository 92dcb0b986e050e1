/* SPDX-License-Identifier: MIT */
/*
 * Which daemon the library trusts.
 *
 * The socket path is only a name: whoever listens there first -- a user
 * who made /tmp/shmalloc-$UID before the real daemon, say -- would hand the
 * program its memory, see every block it writes and could make it follow
 * refs anywhere.  So right after connect, before a byte is sent or a
 * segment mapped, the library asks the kernel who the peer is (SO_PEERCRED)
 * and goes on only when its uid is
 *   - the process's own (real or effective) uid, or root;
 *   - the uid SHMALLOC_DAEMON_UID names (a number or a user name: a system
 *     daemon running as its own user); or
 *   - the owner of the socket's directory, when that directory is a real
 *     directory nobody else can write, in a parent only root or we can
 *     write (/run/shmalloc of a packaged daemon: its owner put the socket
 *     there, and nobody could have made the directory in his place).
 * Any other peer: -EPERM, and the connection is closed unused.
 *
 * A user name is looked up in /etc/passwd by hand (mapped, not read with
 * stdio): getpwnam() may call malloc, which may be this library.
 */
#include "config.h"

#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A decimal uid; 0 or -EINVAL. */
static int parse_uid(const char *s, size_t n, uid_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 10)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX - 1)
		return -EINVAL;
	*out = (uid_t)v;
	return 0;
}

/* The uid of user name in /etc/passwd ("name:x:uid:..."); 0 or -ENOENT. */
static int passwd_uid(const char *name, uid_t *out)
{
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	struct stat st;
	char *p = NULL;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			p = NULL;
	}
	close(fd);
	if (p == NULL)
		return -ENOENT;
	size_t len = (size_t)st.st_size, nlen = strlen(name);
	int rc = -ENOENT;
	for (size_t at = 0; at < len && rc != 0;) {
		const char *line = p + at;
		const char *end = memchr(line, '\n', len - at);
		size_t llen = end ? (size_t)(end - line) : len - at;
		at += llen + 1;
		if (llen <= nlen + 1 || memcmp(line, name, nlen) != 0 || line[nlen] != ':')
			continue;
		/* name:password:uid: */
		const char *pw = memchr(line + nlen + 1, ':', llen - nlen - 1);
		if (pw == NULL)
			continue;
		const char *uid = pw + 1;
		const char *uend = memchr(uid, ':', (size_t)(line + llen - uid));
		if (uend != NULL && parse_uid(uid, (size_t)(uend - uid), out) == 0)
			rc = 0;
	}
	munmap(p, len);
	return rc;
}

/* 1 if SHMALLOC_DAEMON_UID names uid. */
static int env_names(uid_t uid)
{
	const char *env = getenv("SHMALLOC_DAEMON_UID");
	uid_t want;
	if (env == NULL || env[0] == '\0')
		return 0;
	if (parse_uid(env, strlen(env), &want) != 0 && passwd_uid(env, &want) != 0)
		return 0;
	return want == uid;
}

/* 1 if path's directory belongs to uid and nobody else could have made or
 * filled it: a real directory only its owner can write, in a parent only
 * root or this process's uid can write. */
static int directory_vouches(const char *path, uid_t uid)
{
	char dir[108];
	size_t n = strlen(path);
	if (n >= sizeof dir)
		return 0;
	memcpy(dir, path, n + 1);
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	struct stat st, pst;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid ||
	    (st.st_mode & 022) != 0)
		return 0;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &pst) != 0 || (pst.st_uid != 0 && pst.st_uid != getuid()) ||
	    (pst.st_mode & 022) != 0)
		return 0;
	return 1;
}

int peer_check(int fd, const char *path)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	if (cred.uid == 0 || cred.uid == getuid() || cred.uid == geteuid())
		return 0;
	if (env_names(cred.uid) || directory_vouches(path, cred.uid))
		return 0;
	return -EPERM;
}
