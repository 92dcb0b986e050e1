/* SPDX-License-Identifier: MIT */
/*
 * The perimeter: the directory the socket lives in, and the socket.
 *
 * Whoever controls the socket's directory controls who the clients talk to
 * (a socket of his own there) and what the daemon binds (a symlink swapped
 * in).  The default directory, /tmp/shmalloc-$UID without XDG_RUNTIME_DIR,
 * is a name any user can create first.  So the daemon trusts the directory
 * only when it is a real directory (opened O_NOFOLLOW|O_DIRECTORY), owned by
 * its own uid, no looser than 0700 (02750 with --allow-gid: group members
 * may enter, nobody else), and when its parent does not let anyone else
 * rename it away (owned by us or root, and sticky when others may write
 * it).  Anything else is refused with one log line saying why and what to
 * do, and the daemon exits non-zero.
 *
 * Everything after the check goes through the descriptor of the directory
 * it checked, never the path: the modes of a directory we created are set
 * with fchown/fchmod, a stale socket is looked at and removed with
 * fstatat/unlinkat, and the socket is bound as /proc/self/fd/<dir>/<name>
 * (the directory we hold, whatever the path names by then) with the umask
 * set so it is born with its mode: no chmod by path, which a root daemon
 * would follow into a symlink swapped in after bind().
 *
 * /dev/shm is everybody's too: any user may create a file under a name the
 * daemon's segments will carry.  Such files are never adopted (seg_adopt()),
 * a control or large block name taken is skipped for the next id, and when
 * the names the heap starts with are taken, the daemon moves its whole
 * instance to another name (the clients learn it in Hello), preferring one
 * that holds its own segments of an earlier run.
 */
#include "perimeter.h"
#include "pick.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Splits o->socket_path into its directory and its name. */
static int split_path(struct perimeter *p, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t dlen = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
	if (name[0] == '\0' || strlen(name) >= sizeof p->name || dlen >= sizeof p->dir)
		return -ENAMETOOLONG;
	if (slash == NULL)
		strcpy(p->dir, ".");
	else
		memcpy(p->dir, path, dlen), p->dir[dlen] = '\0';
	strcpy(p->name, name);
	return 0;
}

/* Why the directory behind fd is not to be trusted, or NULL. */
static const char *dir_problem(int fd, mode_t loose, char *why, size_t size)
{
	struct stat st, pst;
	if (fstat(fd, &st) != 0)
		return snprintf(why, size, "cannot stat it: %s", strerror(errno)), why;
	if (st.st_uid != geteuid())
		return snprintf(why, size, "it belongs to uid %lu, not to this daemon's uid %lu "
				"(another user may have made it to catch the socket)",
				(unsigned long)st.st_uid, (unsigned long)geteuid()), why;
	if ((st.st_mode & loose) != 0)
		return snprintf(why, size, "its mode %04o lets others in or write it (at most %04o)",
				(unsigned)(st.st_mode & 07777), (unsigned)(0777 & ~loose)),
		       why;
	int parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0 || fstat(parent, &pst) != 0) {
		int e = errno;
		if (parent >= 0)
			close(parent);
		return snprintf(why, size, "cannot stat its parent: %s", strerror(e)), why;
	}
	close(parent);
	if (pst.st_uid != geteuid() && pst.st_uid != 0)
		return snprintf(why, size, "its parent belongs to uid %lu, who can rename it away",
				(unsigned long)pst.st_uid), why;
	if ((pst.st_mode & 022) != 0 && (pst.st_mode & S_ISVTX) == 0)
		return snprintf(why, size, "its parent (mode %04o) lets others rename it away",
				(unsigned)(pst.st_mode & 07777)), why;
	return NULL;
}

int perimeter_open_dir(struct perimeter *p, const struct options *o)
{
	p->dir_fd = -1;
	p->bound = 0;
	if (split_path(p, o->socket_path) != 0) {
		log_msg(SLOG_ERROR, "refusing to start: the socket path %s has no name", o->socket_path);
		return -EINVAL;
	}
	int group = o->nallow_gid > 0;
	mode_t want = group ? 02750 : 0700;
	mode_t loose = group ? 027 : 077;
	int made = mkdir(p->dir, 0700) == 0;
	if (!made && errno != EEXIST) {
		int e = errno;
		log_msg(SLOG_ERROR, "refusing to start: cannot create the socket directory %s: %s",
			p->dir, strerror(e));
		return -e;
	}
	int fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		log_msg(SLOG_ERROR, "refusing to start: the socket directory %s %s; remove it (or "
			"give another --socket) and start again", p->dir,
			e == ELOOP || e == ENOTDIR ? "is a symlink or not a directory"
						   : strerror(e));
		return -e;
	}
	/* A directory we just made (0700, nobody else can enter) gets its
	 * group and mode through the descriptor: the group first, as a change
	 * of group may clear the set-group-ID bit. */
	if (made && ((group && fchown(fd, (uid_t)-1, o->allow_gid[0]) != 0) ||
		     fchmod(fd, want) != 0)) {
		int e = errno;
		log_msg(SLOG_ERROR, "refusing to start: cannot set the mode of the socket directory "
			"%s: %s", p->dir, strerror(e));
		close(fd);
		return -e;
	}
	char why[200];
	if (dir_problem(fd, loose, why, sizeof why) != NULL) {
		log_msg(SLOG_ERROR, "refusing to start: the socket directory %s is not safe: %s; "
			"remove it (or give another --socket) and start again: the daemon makes it "
			"%04o itself", p->dir, why, (unsigned)want);
		close(fd);
		return -EPERM;
	}
	p->dir_fd = fd;
	return 0;
}

/* The socket's address through the directory we hold; the path itself when
 * /proc is not there or the name does not fit. */
static void address(const struct perimeter *p, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	int n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", p->dir_fd,
			 p->name);
	if (n > 0 && (size_t)n < sizeof sa->sun_path && access("/proc/self/fd", X_OK) == 0)
		return;
	/* The options held the whole path in a sun_path's size: it fits. */
	size_t dl = strlen(p->dir), nl = strlen(p->name);
	if (dl + 1 + nl < sizeof sa->sun_path) {
		memcpy(sa->sun_path, p->dir, dl);
		sa->sun_path[dl] = '/';
		memcpy(sa->sun_path + dl + 1, p->name, nl + 1);
	}
}

/* Another daemon already listening there?  1 yes, 0 no (a stale socket). */
static int in_use(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	close(fd);
	return rc == 0;
}

int perimeter_bind(struct perimeter *p, mode_t mode)
{
	struct sockaddr_un sa;
	struct stat st;
	address(p, &sa);
	if (fstatat(p->dir_fd, p->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_msg(SLOG_ERROR, "refusing to start: %s/%s exists and is not a socket; "
				"remove it and start again", p->dir, p->name);
			return -EEXIST;
		}
		if (in_use(&sa)) {
			log_msg(SLOG_ERROR, "another shmallocd listens on %s/%s", p->dir, p->name);
			return -EADDRINUSE;
		}
		unlinkat(p->dir_fd, p->name, 0);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		log_msg(SLOG_ERROR, "cannot make a socket: %s", strerror(e));
		return -e;
	}
	mode_t old = umask(0777 & ~mode);
	int rc = bind(fd, (const struct sockaddr *)&sa, sizeof sa);
	int e = errno;
	umask(old);
	if (rc != 0) {
		log_msg(SLOG_ERROR, "cannot listen on %s/%s: %s", p->dir, p->name, strerror(e));
		close(fd);
		return -e;
	}
	p->bound = 1;
	return fd;
}

#define PICK_MAX 16

static int candidate(char *out, size_t size, const char *base, unsigned n)
{
	int len = n == 0 ? snprintf(out, size, "%s", base) : snprintf(out, size, "%s-%u", base, n);
	return len > 0 && (size_t)len < size && seg_instance_valid(out) ? 0 : -ENAMETOOLONG;
}

/* 1 if candidate n holds segments of ours (mine) or no file of anyone's. */
static int census_says(struct options *o, const char *base, unsigned n, int mine)
{
	char name[sizeof o->instance];
	unsigned own, foreign;
	if (candidate(name, sizeof name, base, n) != 0 ||
	    seg_instance_census(name, o->segment_mode, "cl", &own, &foreign) != 0)
		return 0;
	return mine ? own > 0 : own == 0 && foreign == 0;
}

/* Past the first PICK_MAX candidates, however many an outsider took: the
 * first of ours there (a restart after a move), else clean (the first clean
 * one of the first candidates, if any), else the first nobody's (pick.h);
 * confirmed by a census. */
static int pick_past(struct options *o, const char *base, unsigned from, int clean)
{
	long own = -1, unused = -1;
	if (pick_beyond(base, from, &own, &unused) != 0)
		own = unused = -1;
	if (own >= 0 && census_says(o, base, (unsigned)own, 1))
		return (int)own;
	if (clean >= 0)
		return clean;
	return unused >= 0 && census_says(o, base, (unsigned)unused, 0) ? (int)unused : -1;
}

int perimeter_pick_instance(struct options *o, const char *base, unsigned from)
{
	char name[sizeof o->instance];
	int clean = -1, chosen = -1;
	unsigned squatted = 0;
	for (unsigned n = from; n < from + PICK_MAX && chosen < 0; n++) {
		unsigned own, foreign;
		if (candidate(name, sizeof name, base, n) != 0 ||
		    seg_instance_census(name, o->segment_mode, "cl", &own, &foreign) != 0)
			break;
		if (own > 0)
			chosen = (int)n;
		else if (foreign == 0 && clean < 0)
			clean = (int)n;
		else if (foreign > 0)
			squatted++;
	}
	if (chosen < 0)
		chosen = pick_past(o, base, from + PICK_MAX, clean);
	if (chosen < 0) {
		log_msg(SLOG_ERROR, "refusing to start: other users' files sit under the segment "
			"names of instance %s and of its alternatives (/dev/shm/shmalloc.%s*); "
			"remove them or give another --name", base, base);
		return -EEXIST;
	}
	candidate(name, sizeof name, base, (unsigned)chosen);
	if (chosen != 0 || squatted > 0)
		log_msg(SLOG_WARN, "segment names of instance %s are taken by files not ours (left "
			"alone): using instance %s", base, name);
	strcpy(o->instance, name);
	return chosen;
}

void perimeter_close(struct perimeter *p)
{
	if (p->dir_fd < 0)
		return;
	if (p->bound)
		unlinkat(p->dir_fd, p->name, 0);
	close(p->dir_fd);
	p->dir_fd = -1;
	p->bound = 0;
}
