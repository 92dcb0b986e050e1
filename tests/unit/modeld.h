/* SPDX-License-Identifier: MIT */
/*
 * A model daemon for the library's own suites (libcache, largecache): a
 * forked process of the test's uid (so the library's peer check lets it
 * in) on a temporary socket, serving a heap it made itself -- segments 'M'
 * and 'p', and a control block passed with SCM_RIGHTS, as the fake daemon
 * of tests/e2e/check_fakedaemon.c does -- and answering what the library
 * asks the simplest correct way: refills from fresh spans of the class
 * (never reusing an object), large blocks from fresh pages, flushes and
 * frees counted and never reused.  What it was asked is counted in a log
 * shared with the test (struct modeld_log); a shma_lookup() is answered
 * after everything sent before it, so modeld_sync() is the test's one
 * synchronisation (no sleep).
 *
 * No shmallocd: what the library does is all there is to see.
 */
#ifndef SHMA_TESTS_MODELD_H
#define SHMA_TESTS_MODELD_H

#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

#define MODELD_ARENA ((uint64_t)256 << 20)
#define MODELD_ARENAS 2u
#define MODELD_LARGE_THRESHOLD ((uint64_t)128 << 10)

/* What the model was asked, as it saw it (written by the model, read by the
 * test after modeld_sync()). */
struct modeld_log {
	uint64_t refills;         /* Refill requests */
	uint64_t refill_objects;  /* objects handed out by them */
	uint64_t first_refill_id; /* of the first Refill answered */
	uint64_t flushes;
	uint64_t flushed_refs;
	uint64_t alloc_large;
	uint64_t last_large_id;   /* of the last AllocLarge answered */
	uint64_t free_large;
	uint64_t free_large_bytes;
	uint64_t goodbyes;
	uint64_t requests;        /* of any kind, Hello included */
};

struct modeld {
	char dir[64], socket[128], instance[32];
	struct arena_geometry g;
	pid_t pid;
	int ctl_fd;
	struct modeld_log *log;   /* shared with the model's process */
	uint64_t premade_large;   /* ref of a large block made at the start */
	uint64_t premade_size;
};

/* Starts a model whose Hello says decay_ms, and connects the library to it
 * (shma_connect()). */
void modeld_start(struct modeld *m, uint64_t decay_ms);
void modeld_stop(struct modeld *m);
/* Returns once the model has answered everything the library sent. */
void modeld_sync(struct modeld *m);
/* ---- a daemon's segments made by hand (the model's, and the fake's of
 * tests/e2e/check_fakedaemon.c) ---- */
/* Segments 'M' (the header of a heap of arenas of arena_size at base, one
 * of them made, its metadata pages marked), 'p' and control block 1 of
 * instance: *g their geometry, the control block's descriptor returned. */
int modeld_make_segments(const char *instance, uint64_t arena_size, uint32_t arenas,
			 uint64_t base, struct arena_geometry *g);
void modeld_unlink_segments(const char *instance);
/* Segment 'M' of instance mapped read-write, *size bytes. */
char *modeld_map_meta(const char *instance, const struct arena_geometry *g, uint32_t arenas,
		      uint64_t *size);
/* Arena a's page map in meta. */
struct page_entry *modeld_page_map(char *meta, const struct arena_geometry *g, uint32_t arena);

/* Arena 1's metadata is made: a span of class cls at its first user page,
 * and the header says two arenas (what a daemon does when it makes one).
 * The ref of the span's first object. */
/* (Its first object is marked out in the bitmaps, as if allocated.) */
uint64_t modeld_make_arena1(struct modeld *m, unsigned cls);

#endif
