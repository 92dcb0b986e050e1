/* SPDX-License-Identifier: MIT */
/*
 * What the library says when it cannot reach its daemon: see connerr.c.
 */
#ifndef SHMA_CLIENT_CONNERR_H
#define SHMA_CLIENT_CONNERR_H

#define SHMA_HIDDEN_CE __attribute__((visibility("hidden")))

/* A connection to path failed with rc (a negative errno) before the
 * daemon served us.  Returns the errno the caller reports: rc, except that
 * a socket that is not there (ENOENT) is "no daemon" (ECONNREFUSED), so
 * that ENOENT means only "no such name".  The first time in a process
 * (unless connerr_quiet()), one line on stderr names the socket and what
 * to do; and shma_strerror() of that errno names the socket from now on. */
SHMA_HIDDEN_CE int connerr_note(const char *path, int rc);

/* The text shma_strerror() gives for err when err is what the last failed
 * connection reported (naming its socket), else NULL. */
SHMA_HIDDEN_CE const char *connerr_text(int err);

/* No stderr line: for a program that says it all itself (shmallocctl). */
SHMA_HIDDEN_CE void connerr_quiet(void);

#endif
