/* SPDX-License-Identifier: MIT */
/*
 * Named heaps: the registry (doc/architecture.md, "Named heaps").
 *
 * A named heap is a region of the heap (heap.h: Regions) whose owner word
 * says SHMA_OWNER_REGION | SHMA_OWNER_HEAP | its id, with a name, a lifetime,
 * a byte limit and the clients that have it open.  The registry is a segment
 * of its own ('h', the daemon's), each entry written whole before its state
 * says it is used, so that a daemon killed at any instant leaves each heap
 * made or not; a heap's id is live for the library in page 0 of segment 'M'
 * (SHMA_HEAP_LIVE_OFF) while the heap lives.  A destroy clears the live word,
 * marks the entry destroying, ends the region and frees the entry: killed in
 * between, heaps_open() finishes it from the metadata.
 *
 * Ids: (sequence << 9) | slot, never reused in the instance's life (the
 * sequence is kept in the registry's header), so an id finds its entry at
 * once and an id of a destroyed heap finds none.
 */
#ifndef SHMA_SERVER_HEAPS_H
#define SHMA_SERVER_HEAPS_H

#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "rootname.h"

#define HEAPS_CAPACITY SHMA_HEAP_SLOTS /* heaps live at once */
#define HEAPS_USERS_MAX 64             /* processes that have one heap open */

enum heaps_lifetime { HEAPS_PERSISTENT = 0, HEAPS_PROCESS = 1, HEAPS_LAST_USER = 2 };

struct heap;
struct heap_region;
struct heaps;

struct heaps_info {
	uint64_t id;
	uint32_t lifetime;
	uint64_t max_bytes;
	uint64_t creator_client;
	uint32_t creator_uid, creator_pid;
	int64_t created;
	uint32_t nusers;
	const char *name; /* in the registry: valid until the heap goes */
	uint64_t bytes;   /* out: objects (class size) and large blocks */
	uint64_t blocks;  /* objects out and large blocks */
	uint64_t spans, large_count;
};

/* What heaps_open() found and did. */
struct heaps_recovered {
	uint32_t heaps;         /* live */
	uint32_t destroys_done; /* destroys a killed daemon left half done */
	uint32_t orphans_ended; /* regions of a heap no entry names */
	uint64_t bytes_freed;
};

/* Opens (or makes) the registry of instance over heap h, after h's
 * recovery: finishes what a killed destroy left, ends heap regions no entry
 * names, and sets the live words.  0 or -errno. */
int heaps_open(struct heaps **out, struct heap *h, const char *instance, mode_t mode,
	       struct heaps_recovered *rec);
void heaps_close(struct heaps *r, int unlink);

/* A new heap: 0 and *id; -EINVAL (name, lifetime), -ENAMETOOLONG, -EEXIST,
 * -ENOSPC (registry full) or -ENOMEM (no region). */
int heaps_create(struct heaps *r, const char *name, uint32_t lifetime, uint64_t max_bytes,
		 uint64_t client, uid_t uid, pid_t pid, int64_t now, uint64_t *id);
/* 0 and *id of the heap named name, or -ENOENT (-EINVAL...). */
int heaps_find(const struct heaps *r, const char *name, uint64_t *id);
/* 0 and *info of heap id, or -ENOENT. */
int heaps_info(const struct heaps *r, uint64_t id, struct heaps_info *info);
/* The region of live heap id, or NULL. */
struct heap_region *heaps_region(struct heaps *r, uint64_t id);
/* How many objects of size bytes heap id may still take under its
 * max_bytes (UINT64_MAX: no limit). */
uint64_t heaps_room(struct heaps *r, uint64_t id, uint64_t size);

/* Client opens heap id: 0 (also if it had), -ENOENT, -ENOSPC. */
int heaps_user_add(struct heaps *r, uint64_t id, uint64_t client);
/* 1 if client has heap id open. */
int heaps_user_has(const struct heaps *r, uint64_t id, uint64_t client);
/* Client closes heap id: the users it has left, or -ENOENT (not open). A
 * last-user heap left with none is destroyed (*freed its bytes). */
int heaps_user_remove(struct heaps *r, uint64_t id, uint64_t client, uint64_t *freed);
/* Client is gone for good: it closes every heap it had open, and the heaps
 * of process lifetime it made are destroyed.  Returns the heaps destroyed;
 * *freed their bytes. */
unsigned heaps_client_gone(struct heaps *r, uint64_t client, uint64_t *freed);

/* Destroys heap id: its blocks freed at once, whatever is out, in time of
 * its spans and large blocks.  0 and *freed, or -ENOENT. */
int heaps_destroy(struct heaps *r, uint64_t id, uint64_t *freed);

/* For tests: leaves heap id as a daemon killed inside heaps_destroy() would
 * -- step 1: its live word cleared and its entry destroying; 2: also
 * spans of its region freed (up to spans of them); 3: its entry freed too,
 * the rest of its region still tagged in the metadata. */
void heaps_destroy_cut(struct heaps *r, uint64_t id, int step, uint64_t spans);

/* Heaps live, made by uid (for the per-uid limit). */
unsigned heaps_count_uid(const struct heaps *r, uid_t uid);
/* The live heaps: heaps_next() from *pos = 0 gives each id once, 0 at the end. */
uint64_t heaps_next(const struct heaps *r, uint32_t *pos);

#endif
