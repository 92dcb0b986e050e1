/*
 * Who may reach the daemon.  It serves a peer whose SO_PEERCRED uid or gid
 * it lists (access_peer_allowed()); before that the peer must reach the
 * socket through the file system, and once served it must open the segments.
 * Both are files owned by the daemon, so with --allow-gid they belong to
 * the first group listed and carry its bits: the socket's directory 02750
 * (the set-group-ID bit makes the socket that bind() creates in it take
 * the directory's group), the socket and every segment 0660.  Without
 * --allow-gid everything stays the daemon's own: directory 0700, socket
 * and segments 0600.  A directory that exists already is the operator's
 * and is left as it is.  Layer: session (no libuv).
 */
#include "access.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int access_peer_allowed(const struct options *o, uid_t uid, gid_t gid)
{
	for (unsigned i = 0; i < o->nallow_uid; i++)
		if (o->allow_uid[i] == uid)
			return 1;
	for (unsigned i = 0; i < o->nallow_gid; i++)
		if (o->allow_gid[i] == gid)
			return 1;
	return 0;
}

/* Creates dir as 02750 in group gid; 0 if it exists already. */
static int make_group_dir(const char *dir, gid_t gid)
{
	if (mkdir(dir, 0750) != 0)
		return errno == EEXIST ? 0 : -errno;
	if (chown(dir, (uid_t)-1, gid) != 0 || chmod(dir, 02750) != 0) {
		int e = errno;
		rmdir(dir);
		return -e;
	}
	return 0;
}

int access_prepare(const struct options *o)
{
	if (o->nallow_gid == 0)
		return 0;
	gid_t gid = o->allow_gid[0];
	char dir[sizeof o->socket_path];
	strcpy(dir, o->socket_path);
	char *slash = strrchr(dir, '/');
	int rc = 0;
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		rc = make_group_dir(dir, gid);
	}
	if (rc != 0) {
		log_msg(SLOG_ERROR, "cannot create the socket directory %s in group %lu: %s", dir,
			(unsigned long)gid, strerror(-rc));
		return rc;
	}
	seg_set_group(gid);
	return 0;
}
