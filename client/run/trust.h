/* SPDX-License-Identifier: MIT */
/*
 * What shmalloc-run believes before it runs a program on a daemon (issue
 * 21, case 13): the daemon on a socket, the private directory it made, the
 * name its private daemon's segments carry.
 */
#ifndef SHMA_RUN_TRUST_H
#define SHMA_RUN_TRUST_H

#include <stddef.h>

/* 0 if a daemon the library trusts (its uid, Hello answer and heap: see
 * trust.c) serves on path; else the library's negative errno, with why
 * (size n) saying it in words. */
int trust_daemon(const char *path, char *why, size_t n);

/* 1 if trust_daemon()'s rc means nobody listens on the path at all. */
int trust_nobody_listens(int rc);

/* 0 if dir is a real directory of our effective uid that nobody else may
 * enter (mode 0700 or tighter); else a negative errno and why. */
int trust_private_dir(const char *dir, char *why, size_t n);

/* An instance name nobody can compute ahead ("run-" and 16 random hex
 * digits) in buf (size n): 0, or a negative errno. */
int trust_instance_name(char *buf, size_t n);

#endif
