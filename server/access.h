/*
 * The file-system side of access control: the socket's directory and the
 * group of every segment (see access.c).
 */
#ifndef SHMA_SERVER_ACCESS_H
#define SHMA_SERVER_ACCESS_H

#include "options.h"

/* With --allow-gid: creates the socket's directory 02750 in the first
 * allowed group (unless it exists) and makes every segment created from now
 * on belong to that group.  Without, does nothing.  0 or a negative errno
 * (logged). */
int access_prepare(const struct options *o);

#endif
