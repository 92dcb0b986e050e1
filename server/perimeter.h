/* SPDX-License-Identifier: MIT */
/*
 * The perimeter: the socket's directory and the socket in it (see
 * perimeter.c for what is checked and why).
 */
#ifndef SHMA_SERVER_PERIMETER_H
#define SHMA_SERVER_PERIMETER_H

#include "options.h"

/* The socket's directory, held open from the check to the end. */
struct perimeter {
	int dir_fd;        /* -1 until perimeter_open_dir() */
	char dir[108];     /* its path, for messages */
	char name[108];    /* the socket's name in it */
	int bound;         /* perimeter_bind() made the socket: remove it at the end */
};

/* Creates the socket's directory, or checks the one there: it must be a real
 * directory (not a symlink), owned by the daemon's uid, no looser than 0700
 * (02750 with --allow-gid), and its parent must not let anyone else rename
 * it away.  Keeps it open.  0, or a negative errno with one log line that
 * says why and what to do. */
int perimeter_open_dir(struct perimeter *p, const struct options *o);

/* A listening socket on the socket's name in the checked directory, born
 * with mode (umask set around bind(), never a chmod by path); a stale socket
 * of an earlier run is removed first, anything else there is refused.
 * Returns the descriptor or a negative errno (logged). */
int perimeter_bind(struct perimeter *p, mode_t mode);

/* Picks the instance name the daemon's segments carry, trying base, then
 * base-<from>, base-<from+1>, ... (from 0: base first): the first holding
 * segments of ours (a restart finds its heap again), else the first under
 * whose names nobody else has put a file (other than control and large
 * block names, which are skipped one by one).  Sets o->instance and logs
 * a move.  The candidate's number (0 for base), or a negative errno. */
int perimeter_pick_instance(struct options *o, const char *base, unsigned from);

/* Removes the socket perimeter_bind() made (by name in the directory held
 * open, not by path) and closes the directory. */
void perimeter_close(struct perimeter *p);

#endif
