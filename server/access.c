/* SPDX-License-Identifier: MIT */
/*
 * Who may reach the daemon.  It serves a peer whose SO_PEERCRED uid it
 * lists, or whose primary group (SO_PEERCRED) or any supplementary group
 * (SO_PEERGROUPS) it lists (access_peer_level()): a member added to the
 * daemon's group with `usermod -aG` is served like one whose primary group
 * it is.  Root, when not listed, is served as an observer: it may read the
 * stats and the roots, nothing that changes the heap (root can read every
 * segment anyway, so looking costs the trust model nothing; allocating in a
 * heap that users write would put root's data where they can change it).
 *
 * Before that the peer must reach the socket through the file system, and
 * once served it must open the segments.  Both are files owned by the
 * daemon, so with --allow-gid they belong to the first group listed and
 * carry its bits: the socket's directory 02750 (the set-group-ID bit makes
 * the socket that bind() creates in it take the directory's group), the
 * socket and every segment 0660.  Without --allow-gid everything stays the
 * daemon's own: directory 0700, socket and segments 0600.  The directory
 * itself is made and checked by the perimeter (perimeter.c): here, who may
 * connect and the group segments are created in.  Layer: session (no libuv).
 */
#include "access.h"
#include "seg.h"
#include "shmalloc.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59 /* Linux 4.13; older headers lack the name */
#endif

/* SO_PEERGROUPS into cr->local, or into memory of its size when the peer
 * has more groups than that.  On any failure, no supplementary groups. */
static void read_groups(int fd, struct access_creds *cr)
{
	socklen_t len = sizeof cr->local;
	cr->groups = cr->local;
	cr->ngroups = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, cr->local, &len) == 0) {
		cr->ngroups = (unsigned)(len / sizeof(gid_t));
		return;
	}
	if (errno != ERANGE || len == 0)
		return;
	gid_t *big = malloc(len);
	if (big == NULL)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big, &len) != 0) {
		free(big);
		return;
	}
	cr->groups = big;
	cr->ngroups = (unsigned)(len / sizeof(gid_t));
}

int access_creds_read(int fd, struct access_creds *cr)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	memset(cr, 0, sizeof *cr);
	cr->groups = cr->local;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	cr->pid = cred.pid;
	cr->uid = cred.uid;
	cr->gid = cred.gid;
	read_groups(fd, cr);
	return 0;
}

void access_creds_free(struct access_creds *cr)
{
	if (cr->groups != cr->local)
		free(cr->groups);
	cr->groups = cr->local;
	cr->ngroups = 0;
}

static int gid_listed(const struct options *o, gid_t gid)
{
	for (unsigned i = 0; i < o->nallow_gid; i++)
		if (o->allow_gid[i] == gid)
			return 1;
	return 0;
}

enum access_level access_peer_level(const struct options *o, const struct access_creds *cr)
{
	for (unsigned i = 0; i < o->nallow_uid; i++)
		if (o->allow_uid[i] == cr->uid)
			return ACCESS_FULL;
	if (gid_listed(o, cr->gid))
		return ACCESS_FULL;
	for (unsigned i = 0; i < cr->ngroups; i++)
		if (gid_listed(o, cr->groups[i]))
			return ACCESS_FULL;
	return cr->uid == 0 ? ACCESS_OBSERVER : ACCESS_DENIED;
}

int access_observer_may(int body_case)
{
	switch (body_case) {
	case SHMA__REQUEST__BODY_HELLO:
	case SHMA__REQUEST__BODY_STATS:
	case SHMA__REQUEST__BODY_ROOTS:
	case SHMA__REQUEST__BODY_LOOKUP:
	case SHMA__REQUEST__BODY_GOODBYE:
		return 1;
	default:
		return 0;
	}
}

int access_prepare(const struct options *o)
{
	if (o->nallow_gid > 0)
		seg_set_group(o->allow_gid[0]);
	return 0;
}
