/* SPDX-License-Identifier: MIT */
/*
 * shmalloc: one heap shared by many processes on one host.
 *
 * The daemon shmallocd owns the heap; this library maps it and allocates from
 * per-thread caches without locks or system calls, asking the daemon only to
 * refill or drain a cache in large batches, for large blocks, roots and stats.
 * The heap sits at the same address in every process: a pointer to a block
 * is valid as it is in every process (linked structures built in the heap
 * work unchanged), and any process may read, write or free it.  A process
 * that could not map the heap at its base (shma_same_address() says 0) uses
 * refs instead: shma_ref() in one process, shma_ptr() in another.
 *
 * Errors: functions returning int return 0 or a negative errno, which
 * shma_strerror() names.  Allocation functions return NULL and set errno, as
 * their libc namesakes do.
 *
 * Threads: every function may be called from any thread.  fork(): the child
 * discards the caches it inherited and reconnects on first use.
 */
#ifndef SHMALLOC_H
#define SHMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version.  configure.ac reads these lines (its version is
 * theirs), so they are the one place the version is written. */
#define SHMA_VERSION_MAJOR 0
#define SHMA_VERSION_MINOR 1
#define SHMA_VERSION_PATCH 0

#if defined(__GNUC__)
#define SHMA_EXPORT __attribute__((visibility("default")))
#else
#define SHMA_EXPORT
#endif

/* What the allocation functions promise the compiler, as libc's do: a fresh
 * pointer that aliases nothing (SHMA_MALLOC), of the size argument(s) named
 * (SHMA_ALLOC_SIZE), aligned as argument n says (SHMA_ALLOC_ALIGN).  Other
 * compilers see nothing. */
#if defined(__has_attribute)
#if __has_attribute(malloc)
#define SHMA_MALLOC __attribute__((malloc))
#endif
#if __has_attribute(alloc_size)
#define SHMA_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#endif
#if __has_attribute(alloc_align)
#define SHMA_ALLOC_ALIGN(n) __attribute__((alloc_align(n)))
#endif
#endif
#ifndef SHMA_MALLOC
#define SHMA_MALLOC
#endif
#ifndef SHMA_ALLOC_SIZE
#define SHMA_ALLOC_SIZE(...)
#endif
#ifndef SHMA_ALLOC_ALIGN
#define SHMA_ALLOC_ALIGN(n)
#endif

/* A reference to shared memory that is valid in every process; 0 is null. */
typedef uint64_t shma_ref_t;

/*
 * Connects to the daemon on socket_path; NULL means $SHMALLOC_SOCKET, else
 * $XDG_RUNTIME_DIR/shmalloc/shmallocd.sock, else /tmp/shmalloc-$UID/shmallocd.sock.
 * Optional: the first allocation connects on its own.  Returns 0 (also when
 * already connected), -ECONNREFUSED when no daemon listens there (the socket
 * is missing or stale), -EACCES when the daemon (or the file system on the
 * way to its socket) refuses this user, -EPERM when the daemon runs as a
 * user this process does not trust, -EPROTONOSUPPORT/-EPROTO on a version
 * mismatch.  shma_strerror() of these names the socket; the first failure
 * in a process also says so in one line on stderr.
 */
SHMA_EXPORT int shma_connect(const char *socket_path);

/* Flushes every cache of this process back to the daemon and says goodbye.
 * Blocks already handed to the application stay valid and mapped. */
SHMA_EXPORT void shma_disconnect(void);

/* As malloc(3), calloc(3), realloc(3), aligned_alloc(3), free(3): NULL with
 * errno = ENOMEM on failure.  shma_free() takes a block from any process. */
SHMA_EXPORT void *shma_malloc(size_t size) SHMA_MALLOC SHMA_ALLOC_SIZE(1);
SHMA_EXPORT void *shma_calloc(size_t n, size_t size) SHMA_MALLOC SHMA_ALLOC_SIZE(1, 2);
/* Not SHMA_MALLOC: the block it returns may be p's, moved or not. */
SHMA_EXPORT void *shma_realloc(void *p, size_t size) SHMA_ALLOC_SIZE(2);
SHMA_EXPORT void *shma_aligned_alloc(size_t alignment, size_t size)
	SHMA_MALLOC SHMA_ALLOC_SIZE(2) SHMA_ALLOC_ALIGN(1);
SHMA_EXPORT void shma_free(void *p);

/* Bytes usable at p (at least what was asked for); 0 for NULL or a pointer
 * that is not the start of a shared block. */
SHMA_EXPORT size_t shma_usable_size(const void *p);

/* The ref of the block p points into (any byte inside it), or 0 if p is not
 * in the shared heap. */
SHMA_EXPORT shma_ref_t shma_ref(const void *p);

/* The address of ref in this process (base + ref); NULL (errno EINVAL) if
 * ref is 0, past the heap, or on a page that holds no block.  A ref into a
 * page of blocks gets its address whether or not its block is still live: a
 * block freed into a cache looks live to every process (shma_ptr(3)).
 * shma_ptr(shma_ref(p)) == p. */
SHMA_EXPORT void *shma_ptr(shma_ref_t ref);

/* 1 if this process maps the heap at the instance's base (pointers are the
 * same as in every other such process), 0 if it had to map it elsewhere
 * (refs work, other processes' raw pointers do not), or a negative errno
 * when it cannot connect. */
SHMA_EXPORT int shma_same_address(void);

/* Named roots: a small directory of name -> ref kept by the daemon.  Names
 * are 1..255 bytes of UTF-8 without control characters.  shma_publish: 0, -EEXIST, -EINVAL, -ENAMETOOLONG.
 * shma_lookup: 0, -ENOENT (only: no such name).  shma_unpublish: 0, -ENOENT.
 * Each may also fail as shma_connect() does (-ECONNREFUSED: no daemon, ...). */
SHMA_EXPORT int shma_publish(const char *name, shma_ref_t ref);
SHMA_EXPORT int shma_lookup(const char *name, shma_ref_t *ref);
/* As shma_lookup, but when the name is not published yet, waits until it
 * is (the daemon answers at the Publish: no polling) or timeout_ms have
 * passed (-1: no timeout; 0: do not wait).  0 and *ref, -ETIMEDOUT, or an
 * error of shma_connect()'s (-ECONNREFUSED: no daemon; -ECONNRESET: the
 * daemon went away during the wait). */
SHMA_EXPORT int shma_lookup_wait(const char *name, shma_ref_t *ref, int timeout_ms);
SHMA_EXPORT int shma_unpublish(const char *name);

/* The daemon's statistics as a JSON document in *json, which the caller
 * frees with free(3).  0 or a negative errno. */
SHMA_EXPORT int shma_stats_json(char **json);

/* A message for an error code (negative or positive errno); never NULL. */
SHMA_EXPORT const char *shma_strerror(int err);

/*
 * Named heaps: pools with a lifetime of their own inside the instance
 * (shma_heap_create(3)).  A shma_heap_t is this process's handle; the heap
 * itself is shared, and its id (shma_heap_id()) names it in every process.
 * Blocks of a heap are freed with shma_free() from any process;
 * shma_heap_destroy() frees all of them at once.
 */
typedef struct shma_heap shma_heap_t;

enum shma_heap_lifetime {
	SHMA_HEAP_PERSISTENT, /* until shma_heap_destroy (survives its creator and daemon restarts) */
	SHMA_HEAP_PROCESS,    /* destroyed when the process that created it exits or dies */
	SHMA_HEAP_LAST_USER,  /* destroyed when the last process that has it open closes it or dies */
};

typedef struct {
	enum shma_heap_lifetime lifetime;
	size_t max_bytes; /* 0: no limit of its own; past it, allocation fails with ENOMEM */
} shma_heap_opts_t;

/* 0, -EEXIST, -EINVAL (a bad name or options), -EACCES, -EDQUOT, ...;
 * opts NULL: persistent, no limit. */
SHMA_EXPORT int shma_heap_create(const char *name, const shma_heap_opts_t *opts, shma_heap_t **heap);
/* 0, -ENOENT, ...  Opening a heap this process has open gives the same handle. */
SHMA_EXPORT int shma_heap_open(const char *name, shma_heap_t **heap);
SHMA_EXPORT void *shma_heap_malloc(shma_heap_t *heap, size_t size);
SHMA_EXPORT void *shma_heap_calloc(shma_heap_t *heap, size_t n, size_t size);
SHMA_EXPORT void *shma_heap_realloc(shma_heap_t *heap, void *p, size_t size);
SHMA_EXPORT void *shma_heap_aligned_alloc(shma_heap_t *heap, size_t alignment, size_t size);
/* Frees every block of the heap at once, in every process, and closes the
 * handle.  0 or a negative errno. */
SHMA_EXPORT int shma_heap_destroy(shma_heap_t *heap);
SHMA_EXPORT void shma_heap_close(shma_heap_t *heap);
/* The heap a block belongs to; NULL: the default heap (or not a block). */
SHMA_EXPORT shma_heap_t *shma_heap_of(const void *p);
SHMA_EXPORT int shma_heap_in_use(shma_heap_t *heap, size_t *bytes, size_t *blocks);
/* The heap's id: the same in every process of the instance, never reused. */
SHMA_EXPORT uint64_t shma_heap_id(const shma_heap_t *heap);
/* This process's handle of heap id, opened if it is not open here yet (as
 * shma_heap_allocator<T> needs); NULL with errno set (ENOENT: destroyed). */
SHMA_EXPORT shma_heap_t *shma_heap_from_id(uint64_t id);

#ifdef __cplusplus
}
#endif

#endif
