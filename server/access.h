/* SPDX-License-Identifier: MIT */
/*
 * Access control: which peers the daemon serves and how far, and the
 * file-system side (the group every segment is created in; see access.c).
 * Layer: session (no libuv).
 */
#ifndef SHMA_SERVER_ACCESS_H
#define SHMA_SERVER_ACCESS_H

#include <sys/types.h>

#include "options.h"

/* A peer's credentials as the kernel reports them on its socket:
 * SO_PEERCRED's uid and primary gid, and SO_PEERGROUPS' supplementary
 * groups (as they were when it connected).  groups points into local or to
 * memory access_creds_read() allocated; access_creds_free() releases it. */
#define ACCESS_GROUPS_LOCAL 32
struct access_creds {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	unsigned ngroups;
	gid_t local[ACCESS_GROUPS_LOCAL];
};

/* Fills cr from the connected Unix socket fd: 0, or a negative errno when
 * SO_PEERCRED cannot be read.  A kernel without SO_PEERGROUPS (before 4.13)
 * leaves ngroups 0: the primary group alone counts then. */
int access_creds_read(int fd, struct access_creds *cr);
void access_creds_free(struct access_creds *cr);

/* How far a peer is served. */
enum access_level {
	ACCESS_DENIED = 0,
	/* Root, not listed: it may look (Hello, Stats, Roots, Lookup, Goodbye)
	 * but not allocate, free or name anything (access_observer_may()). */
	ACCESS_OBSERVER,
	ACCESS_FULL,    /* its uid, primary or a supplementary group is listed */
};

/* The level o gives a peer of cr: its uid in --allow-uid, or its primary
 * group or any supplementary group in --allow-gid: ACCESS_FULL; else root:
 * ACCESS_OBSERVER; else ACCESS_DENIED. */
enum access_level access_peer_level(const struct options *o, const struct access_creds *cr);

/* 1 if an observer may make a request of this body case (a
 * Shma__Request__BodyCase): the ones that read, never the ones that change
 * the heap or its roots. */
int access_observer_may(int body_case);

/* With --allow-gid: makes every segment created from now on belong to the
 * first allowed group.  Without, does nothing.  0. */
int access_prepare(const struct options *o);

#endif
