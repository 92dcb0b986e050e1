/*
 * Access control: which peers the daemon serves, and the file-system side
 * (the socket's directory and the group of every segment; see access.c).
 * Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_ACCESS_H
#define SHMA_SERVER_ACCESS_H

#include <sys/types.h>

#include "options.h"

/* 1 if o lets a peer of uid or gid (SO_PEERCRED) be served, else 0. */
int access_peer_allowed(const struct options *o, uid_t uid, gid_t gid);

/* With --allow-gid: makes every segment created from now on belong to the
 * first allowed group.  Without, does nothing.  0. */
int access_prepare(const struct options *o);

#endif
