/* SPDX-License-Identifier: MIT */
/*
 * Past the first candidates of perimeter_pick_instance(): one listing of
 * /dev/shm says which numbered names base-<n> (n >= from) carry files, so
 * that an outsider who squats any number of them only moves the daemon on,
 * never stops it, and the look costs one pass however many he made.
 */
#ifndef SHMA_SERVER_PICK_H
#define SHMA_SERVER_PICK_H

/* Sets *own to the smallest n >= from whose names hold a file of ours (a
 * regular file of this euid; -1 if none) and *unused to the smallest
 * n >= from under whose names there is no file at all (control and large
 * block names, kinds 'c' and 'l', do not count).  0 or -errno. */
int pick_beyond(const char *base, unsigned from, long *own, long *unused);

#endif
