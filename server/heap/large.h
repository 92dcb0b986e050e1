/*
 * Large blocks: one segment each.
 *
 * A large block is a segment 'l<id>' of a whole number of pages whose
 * backing store is reserved before its ref goes out, so touching it never
 * faults.  Ids of new segments come from a counter and are never reused in
 * the life of the instance (an id whose segment already exists, left by
 * another life, is skipped).
 *
 * Reserving a block means zeroing it (posix_fallocate on tmpfs), which costs
 * about a millisecond per 4 MiB; so a freed block is kept, still reserved,
 * in a small pool (at most LARGE_KEEP_MAX segments, LARGE_KEEP_BYTES in all),
 * and an allocation that fits (at most a quarter larger) takes it back
 * instead of making a new one -- as jemalloc keeps freed extents.  A kept
 * segment is marked by a size one byte past its pages, which recovery takes
 * for "never handed out" and removes.  What stays in the pool longer than the
 * decay is punched and unlinked, and so is all of it at shutdown or when
 * --max-memory needs the room: the memory goes back to the OS.
 *
 * The daemon does not keep the segments open (a busy heap would run out of
 * descriptors); it remembers id -> size in a private hash table.
 */
#ifndef SHMA_SERVER_LARGE_H
#define SHMA_SERVER_LARGE_H

#include <stdint.h>
#include <sys/types.h>

struct large_set;

/* 0 and *out, or -ENOMEM. */
int large_set_create(struct large_set **out);

/* Forgets every block; with unlink, removes their segments too. */
void large_set_destroy(struct large_set *ls, const char *instance, int unlink);

/* Recovery: adds every block segment 'l<id>' of instance that exists, with
 * its size, and sets the next id past them.  A segment whose size was never
 * set (its creation was cut short) is removed; a file under such a name that
 * is not ours (seg_adopt()) is left alone and not counted.  The count, or
 * -errno. */
int large_set_recover(struct large_set *ls, const char *instance, mode_t mode);

#define LARGE_KEEP_MAX 16
#define LARGE_KEEP_BYTES ((uint64_t)64 << 20)

/* A block of at least size bytes (a multiple of the page size): a kept one
 * that fits, else a new segment, reserved.  0, *id and *got (its size);
 * -ENOMEM when /dev/shm is full or ids ran out; another negative errno from
 * shm_open. */
int large_set_alloc(struct large_set *ls, const char *instance, mode_t mode,
		    uint64_t size, uint32_t *id, uint64_t *got);

/* Frees block id: into the pool, or punched and unlinked.  *size (may be
 * NULL) gets its size.  0, or -EINVAL if id is no live block. */
int large_set_free(struct large_set *ls, const char *instance, uint32_t id, uint64_t *size,
		   uint64_t now_ms);

/* Punches and unlinks the kept blocks freed before now_ms - decay_ms (all
 * of them with decay_ms 0 and now_ms UINT64_MAX); returns their bytes. */
uint64_t large_set_release_kept(struct large_set *ls, const char *instance, uint64_t now_ms,
				uint64_t decay_ms);

/* Bytes in the pool. */
uint64_t large_set_kept_bytes(const struct large_set *ls);

/* The size of live block id, or 0. */
uint64_t large_set_size(const struct large_set *ls, uint32_t id);

/* Live blocks and their bytes. */
uint64_t large_set_count(const struct large_set *ls);
uint64_t large_set_bytes(const struct large_set *ls);

#endif
