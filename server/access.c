/*
 * Who may reach the daemon through the file system.  The daemon serves a
 * peer whose SO_PEERCRED uid or gid it lists (server.c); before that the
 * peer must reach the socket, and once served it must open the segments.
 * Both are files owned by the daemon, so with --allow-gid they belong to
 * the first group listed and carry its bits: the socket's directory 02750
 * (the set-group-ID bit makes the socket that bind() creates in it take
 * the directory's group), the socket and every segment 0660.  Without
 * --allow-gid everything stays the daemon's own: directory 0700, socket
 * and segments 0600.  The directory itself is made and checked by the
 * perimeter (perimeter.c): here, only the group segments are created in.
 */
#include "access.h"
#include "seg.h"

int access_prepare(const struct options *o)
{
	if (o->nallow_gid > 0)
		seg_set_group(o->allow_gid[0]);
	return 0;
}
