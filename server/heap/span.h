/* SPDX-License-Identifier: MIT */
/*
 * Spans: runs of pages carved into objects of one size class.
 *
 * A span's truth is in shared memory, where a restarted daemon finds it: the
 * page map says of each of its pages "span of class k starting at page s",
 * and the object bitmap at slot s has bit i set while object i is out.  The
 * daemon keeps beside it, in private memory, a struct span: how many objects
 * are out, where to look for a free one, and its place in its class's list of
 * partial spans.  span_create() clears the bitmap before it writes the page
 * map, and a bit is set before its object's ref leaves the daemon.
 */
#ifndef SHMA_SERVER_SPAN_H
#define SHMA_SERVER_SPAN_H

#include <stdint.h>

#include "arena.h"
#include "pageheap.h"

struct span {
	struct arena *arena;
	struct page_run *run;   /* the pages, held from the page heap */
	uint32_t start, npages; /* first page, pages */
	uint32_t size, objects; /* of each object, objects in the span */
	uint32_t nout;          /* objects out */
	uint32_t hint;          /* no free object in bitmap words before this */
	uint8_t cls, listed;
	uint8_t bucket; /* of its list, while listed */
	uint8_t kept;   /* listed with no object out: counted in its list's kept */
	struct span *prev, *next;
	/* A region's span (heap.h: Regions): its owner word (the client id with
	 * SHMA_OWNER_REGION, 0 for none, kept in the metadata too), the region
	 * and its place in the region's list of spans. */
	uint64_t owner;
	struct heap_region *region;
	struct span *rprev, *rnext;
};

/* A class's partial spans: some objects out, some free, in buckets by the
 * share of their objects that is free (bucket 0: the fullest).  Refills
 * take from the fullest first, so the emptiest spans drain and go back to
 * the page heap rather than every span staying a little used. */
#define SPAN_LIST_BUCKETS 8
struct span_list {
	struct span *head[SPAN_LIST_BUCKETS];
	uint32_t kept; /* objects of its listed spans that have none out */
};

/* Makes the run (reserved by the caller, unless it is a region's) a span of
 * class cls of arena a: clears its bitmap, writes its owner word (owner: 0,
 * or a region's owner with SHMA_OWNER_REGION, whose pages the page map then
 * flags SHMA_PAGE_REGION) and its page map, registers it in
 * a->span_of_page.  NULL with errno ENOMEM if the struct cannot be had. */
struct span *span_create(struct arena *a, struct page_run *run, unsigned cls, uint64_t owner);

/* Recovery: makes a struct span for a span whose page map (pages of the run,
 * class cls), owner word and bitmap a previous daemon wrote; nout is counted
 * from the bitmap, which is left as it is.  NULL with errno ENOMEM. */
struct span *span_adopt(struct arena *a, struct page_run *run, unsigned cls);

/* Writes the span's pages back to PAGE_FREE and frees the struct; its run
 * is the caller's to give back. */
void span_destroy(struct span *s);

/* Takes up to want free objects, setting their bits; writes their refs to
 * refs and returns how many. */
uint32_t span_take(struct span *s, uint32_t want, uint64_t *refs);

/* Takes every object back (a region's end): clears the bitmap, returns how
 * many were out. */
uint32_t span_clear(struct span *s);

/* Takes objects [0, n) of a span with none out. */
void span_take_front(struct span *s, uint32_t n);

/* The ref of object idx. */
uint64_t span_ref(const struct span *s, uint32_t idx);

/* The span and object index at byte offset off of arena a.  0, or -EINVAL if
 * off is not on an object boundary of a span, -EUCLEAN if the page map (shared
 * memory) says a span holds the page but the daemon's own spans disagree (a
 * span start out of range or not a span covering the page, another class). */
int span_locate(const struct arena *a, uint64_t off, struct span **s, uint32_t *idx);

/* 1 if object idx is out. */
int span_is_out(const struct span *s, uint32_t idx);

/* Takes object idx back: 0, or -EALREADY if it is not out, -EUCLEAN if its
 * bit is set while the span counts no object out (the bitmap was written by
 * someone else). */
int span_put(struct span *s, uint32_t idx);

void span_list_push(struct span_list *l, struct span *s);
void span_list_remove(struct span_list *l, struct span *s);

/* The fullest listed span (fewest free objects, by bucket), or NULL. */
struct span *span_list_first(const struct span_list *l);

/* Moves a listed span to the bucket its count of objects out now says;
 * call after its count changed. */
void span_list_update(struct span_list *l, struct span *s);

#endif
