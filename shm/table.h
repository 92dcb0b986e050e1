/* SPDX-License-Identifier: MIT */
/*
 * An open-addressing hash table of 64-bit keys to 64-bit values: the one
 * the library, the daemon and the heap use wherever they look something up
 * by a number (a pointer, a slot and class, a root's slot).
 *
 * Linear probing in a power-of-two array; a key of 0 marks an empty entry,
 * so 0 is never a key.  Removal shifts the entries after it back (no
 * tombstones): a table never slows down with churn and never needs a
 * rebuild.  The table keeps at most half its entries full when it can grow,
 * and always one empty, so a probe ends.
 *
 * Nothing here allocates on its own (libc only, no malloc): the caller
 * gives the table its memory, fixed (table_init) or through an allocator
 * callback (table_init_growing) that returns zeroed memory -- mmap for the
 * library, calloc for the daemon.
 *
 * By default a key is its own hash.  A table whose keys stand for something
 * else (the roots directory keys slot numbers, but looks names up) gives a
 * hash callback, and finds with table_find_hashed() and a match callback.
 *
 * Not thread-safe: the caller locks.  Pointers to entries are valid until
 * the next insertion or removal.
 */
#ifndef SHMA_TABLE_H
#define SHMA_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct table_entry {
	uint64_t key; /* 0: empty */
	uint64_t value;
};

/* Zeroed memory for n bytes, or NULL; and its release. */
typedef void *table_alloc_fn(size_t bytes, void *ctx);
typedef void table_free_fn(void *p, size_t bytes, void *ctx);
/* The hash of key (the table mixes it further). */
typedef uint64_t table_hash_fn(uint64_t key, const void *ctx);
/* 1 if key is the one arg describes. */
typedef int table_match_fn(uint64_t key, const void *arg);

struct table {
	struct table_entry *e; /* cap entries; the caller may read them */
	size_t cap;            /* a power of two, or 0 before the first insertion */
	size_t used;
	table_hash_fn *hash;   /* NULL: a key is its own hash */
	const void *hash_ctx;
	table_alloc_fn *alloc; /* NULL: a fixed table */
	table_free_fn *release;
	void *alloc_ctx;
};

/* A fixed table over cap (a power of two, >= 2) zeroed entries at mem,
 * which the caller owns. */
void table_init(struct table *t, struct table_entry *mem, size_t cap);

/* An empty table that takes memory from alloc as it grows (from 16 entries,
 * doubling) and gives it back with release. */
void table_init_growing(struct table *t, table_alloc_fn *alloc, table_free_fn *release,
			void *ctx);

/* Keys that stand for something else: their hash (see the top). */
void table_set_hash(struct table *t, table_hash_fn *hash, const void *ctx);

/* The entry of key, or NULL. */
struct table_entry *table_find(const struct table *t, uint64_t key);

/* The entry whose key match() accepts, probing from hash (what the table's
 * hash callback gives for the key sought); NULL if none. */
struct table_entry *table_find_hashed(const struct table *t, uint64_t hash,
				      table_match_fn *match, const void *arg);

/* The entry of key, added with value 0 if it was not there (*added says
 * which, may be NULL).  NULL for key 0, or when the table is full and cannot
 * grow (errno is not touched: the caller knows it means ENOMEM). */
struct table_entry *table_insert(struct table *t, uint64_t key, int *added);

/* Removes key: 0, or -ENOENT.  table_remove_entry() removes the entry a
 * find or insert returned. */
int table_remove(struct table *t, uint64_t key);
void table_remove_entry(struct table *t, struct table_entry *e);

/* The next full entry at or after *i, advancing *i past it; NULL at the end.
 * Start with *i = 0.  Removing while iterating may skip or repeat entries. */
struct table_entry *table_next(const struct table *t, size_t *i);

/* Empties the table, keeping its memory.  The caller may have rearranged
 * the entries in place (sorted them, say) just before. */
void table_clear(struct table *t);

/* Empties a growing table and gives its memory back; a fixed one is only
 * emptied. */
void table_release(struct table *t);

#endif
