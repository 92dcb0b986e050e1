/* SPDX-License-Identifier: MIT */
/*
 * Large blocks: runs of whole pages of an arena, one block each.
 *
 * A large block's truth is the page map, where a restarted daemon (and every
 * client, read-only) finds it: its first page says PAGE_LARGE and its length
 * in pages, each other page PAGE_LARGE_CONT and the first page.  The
 * continuation pages are written before the first page and cleared after it,
 * so a block whose pages do not all agree was being made or unmade when a
 * daemon died: never handed out, or freed.  Beside it, in private memory, the
 * arena remembers the page run the block holds, by its first page.
 *
 * The pages are reserved (backing store) before a block goes out, and are
 * not given back when it is freed: the run returns to the page heap, still
 * reserved and still mapped in every process that touched it, so the next
 * large block of about that size costs no system call and no page fault --
 * as jemalloc reuses its extents.  Decay gives the pages back to the OS later
 * (heap.c), at once for blocks of HEAP_PUNCH_AT or more.  The heap's large
 * blocks (heap_alloc_large() and the rest, heap.h), jumbo blocks that take
 * whole arenas among them, are large.c's too.
 */
#ifndef SHMA_SERVER_LARGE_H
#define SHMA_SERVER_LARGE_H

#include <stdint.h>

#include "arena.h"
#include "pageheap.h"

/* Makes run (of arena a, reserved unless it is a region's) a large block
 * asked for by owner (kept in the metadata, so it survives a restart; with
 * SHMA_OWNER_REGION, a region's block, its first page flagged
 * SHMA_PAGE_REGION). */
void large_make(struct arena *a, struct page_run *run, uint64_t owner);

/* The owner of the block starting at first page p. */
uint64_t large_owner(const struct arena *a, uint32_t p);

/* Writes the block's pages back to PAGE_FREE and forgets it; the run is the
 * caller's to give back. */
void large_unmake(struct arena *a, struct page_run *run);

/* The large block starting exactly at byte off of arena a, or NULL. */
struct page_run *large_at(const struct arena *a, uint64_t off);

/* The large block byte off of arena a lies in, or NULL. */
struct page_run *large_containing(const struct arena *a, uint64_t off);

/* Recovery: the length in pages of the large block the page map says starts
 * at page p, or 0 if its pages in this arena do not all agree (a longer one
 * runs on into later arenas: recovery.c checks those). */
uint32_t large_whole(const struct arena *a, uint32_t p);

#endif
