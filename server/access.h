/*
 * The file-system side of access control: the socket's directory and the
 * group of every segment (see access.c).
 */
#ifndef SHMA_SERVER_ACCESS_H
#define SHMA_SERVER_ACCESS_H

#include "options.h"

/* With --allow-gid: makes every segment created from now on belong to the
 * first allowed group.  Without, does nothing.  0. */
int access_prepare(const struct options *o);

#endif
