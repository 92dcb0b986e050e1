/*
 * Large blocks: one segment each.
 *
 * A large block is a segment 'l<id>' of a whole number of pages whose
 * backing store is reserved before its ref goes out, so touching it never
 * faults.  Ids come from a counter and are never reused in the life of the
 * instance (an id whose segment already exists, left by another life, is
 * skipped), so a stale mapping in some client can never alias a new block.
 * Freeing punches the whole file, so the memory goes back to the OS at once
 * even while clients still map it, and unlinks it.
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
int large_create(struct large_set **out);

/* Forgets every block; with unlink, removes their segments too. */
void large_destroy(struct large_set *ls, const char *instance, int unlink);

/* Recovery: adds every block segment 'l<id>' of instance that exists, with
 * its size, and sets the next id past them.  A segment whose size was never
 * set (its creation was cut short) is removed.  The count, or -errno. */
int large_recover(struct large_set *ls, const char *instance);

/* Creates and reserves a block of size bytes (a multiple of the page size).
 * 0 and *id; -ENOMEM when /dev/shm is full or ids ran out; another negative
 * errno from shm_open. */
int large_alloc(struct large_set *ls, const char *instance, mode_t mode,
		uint64_t size, uint32_t *id);

/* Punches and unlinks block id; *size (may be NULL) gets its size.  0, or
 * -EINVAL if id is no live block. */
int large_free(struct large_set *ls, const char *instance, uint32_t id, uint64_t *size);

/* The size of live block id, or 0. */
uint64_t large_size(const struct large_set *ls, uint32_t id);

/* Live blocks and their bytes. */
uint64_t large_count(const struct large_set *ls);
uint64_t large_bytes(const struct large_set *ls);

#endif
