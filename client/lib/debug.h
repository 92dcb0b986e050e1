/* SPDX-License-Identifier: MIT */
/*
 * Debug mode and tool integration: what happens around an allocation when
 * someone is looking.
 *
 * Off (the default) it costs one predictable branch per call.  On, every
 * allocation goes through debug.c:
 *   SHMALLOC_DEBUG=1   freed blocks are poisoned; a canary after each block is
 *                      checked on free (overflows are reported with the
 *                      block's ref, size and the freeing pid); a double free
 *                      into this thread's cache is caught; blocks this process
 *                      allocated and neither freed nor handed on (shma_ref)
 *                      are reported at exit, grouped by size
 *   SHMALLOC_TRACE=F   every allocation and free appended to file F, one line
 *                      each, as mtrace does (read back with shmalloc-trace)
 *   under Valgrind     blocks are described to memcheck with MALLOCLIKE /
 *                      FREELIKE client requests
 *   under ASan         blocks sitting in caches are poisoned
 * so a use-after-free in a user's program is caught by the user's own tools.
 * Reports go to stderr, one line each, "shmalloc[PID]: KIND: ...".
 */
#ifndef SHMA_CLIENT_DEBUG_H
#define SHMA_CLIENT_DEBUG_H

#include <stddef.h>

#include "client.h"

enum {
	DEBUG_CHECKS = 1,   /* SHMALLOC_DEBUG */
	DEBUG_TRACE = 2,    /* SHMALLOC_TRACE */
	DEBUG_VALGRIND = 4, /* running under Valgrind */
	DEBUG_ASAN = 8,     /* AddressSanitizer is in the process */
};

extern int debug_flags SHMA_HIDDEN;

/* Reads the environment and looks for tools; idempotent. */
SHMA_HIDDEN void debug_init(void);

SHMA_HIDDEN void *debug_malloc(size_t size, size_t align);
SHMA_HIDDEN void debug_free(void *p);
/* check_free() of p by what ("free", "realloc") with its freed mark read,
 * the tools told that our code reads (and later writes) that word: 1 if
 * the call may go on. */
SHMA_HIDDEN int debug_check(void *p, const char *what);
SHMA_HIDDEN size_t debug_usable_size(const void *p);
SHMA_HIDDEN void debug_handed_on(const void *p);
/* A block that arrived from another process (shma_ptr): this process's tools
 * may remember it as freed here earlier; it is live now. */
SHMA_HIDDEN void debug_received(void *p);

/* The allocator without the debug layer (api.c), for debug.c. */
SHMA_HIDDEN void *api_alloc(size_t size, size_t align);
SHMA_HIDDEN void api_free(void *p);
SHMA_HIDDEN size_t api_usable_size(const void *p);
SHMA_HIDDEN uint64_t api_ref(const void *p);

#endif
