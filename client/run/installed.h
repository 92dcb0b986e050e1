/* SPDX-License-Identifier: MIT */
/*
 * Where shmalloc-run finds what `make install` put beside it: see
 * installed.c.
 */
#ifndef SHMA_RUN_INSTALLED_H
#define SHMA_RUN_INSTALLED_H

#include <stddef.h>

/* The file that was configured as configured_path (under configured_dir,
 * e.g. $(libdir)), looked for first where it is relative to this program
 * (configured_bindir is where the program was configured to go), then at
 * configured_path itself.  buf holds the result (size n); returns buf, or
 * configured_path when neither exists (the caller's check then names it). */
const char *installed_path(const char *configured_bindir, const char *configured_path,
			   char *buf, size_t n);

/* The relative path from directory from to path to ("../lib/x.so" from
 * "/usr/bin" to "/usr/lib/x.so"); both absolute and without "." or ".."
 * components.  0, or -1 when out (size n) is too small. */
int installed_relative(const char *from, const char *to, char *out, size_t n);

#endif
