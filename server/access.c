/*
 * Who may reach the daemon.  It serves a peer whose SO_PEERCRED uid or gid
 * it lists (access_peer_allowed()); before that the peer must reach the
 * socket through the file system, and once served it must open the segments.
 * Both are files owned by the daemon, so with --allow-gid they belong to
 * the first group listed and carry its bits: the socket's directory 02750
 * (the set-group-ID bit makes the socket that bind() creates in it take
 * the directory's group), the socket and every segment 0660.  Without
 * --allow-gid everything stays the daemon's own: directory 0700, socket
 * and segments 0600.  The directory itself is made and checked by the
 * perimeter (perimeter.c): here, who may connect and the group segments are
 * created in.  Layer: session (no libuv).
 */
#include "access.h"
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

int access_prepare(const struct options *o)
{
	if (o->nallow_gid > 0)
		seg_set_group(o->allow_gid[0]);
	return 0;
}
