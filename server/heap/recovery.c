/* SPDX-License-Identifier: MIT */
/*
 * Recovery: the heap an earlier daemon left, reopened and rebuilt.
 *
 * Why the state a daemon killed at any instant leaves is one we accept:
 *
 * - Segment 'M' is made first and its header's magic written last, after
 *   'p' exists: an 'M' without the magic was never served from (segments.c
 *   removes it and starts afresh).
 * - An arena's metadata is cleared, reserved and marked, its header written
 *   (magic last), and only then is the heap header's arena count raised.  So
 *   every arena the count includes is whole; one past it is ignored (and is
 *   cleared when it is made again).
 * - A span is made by clearing its bitmap, then writing its page map entries
 *   (kind last, with release order), and only then are bits set and refs
 *   sent.  A span is destroyed only when no bit is set, by writing its pages
 *   back to PAGE_FREE.  So a span whose pages do not all agree (cut short in
 *   creation or destruction) has a clear bitmap: its pages are free, and are
 *   written back to PAGE_FREE here.
 * - A bit is set before its ref leaves the daemon, and cleared only when a
 *   client gave the ref back.  A set bit is an object out: in use, in a
 *   cache, or in a reply or flush in flight at the kill (those leak: the
 *   only loss).  A clear bit was never handed out since, or came back.
 * - A large block's continuation pages are written before its first page
 *   and cleared after it (large.h), and its ref leaves the daemon after both:
 *   a first page whose run agrees is a live block, anything else is free.
 * - Backing store is reserved before pages go out; free pages may hold
 *   some, so every free stretch is punched here.
 *
 * Anything else is not a daemon killed mid-write but metadata someone wrote
 * ('M' is shared memory): a page of unknown kind, metadata pages not marked
 * so, a large block's first page whose run disagrees (never a state a kill
 * leaves: the first page is written last and cleared first), the pages of a
 * span that disagree while a bit of theirs is set.  Such an arena is checked
 * before anything of it is taken in and then quarantined (heap.h): all its
 * pages are withheld, nothing of it is adopted, repaired or punched, and the
 * other arenas are rebuilt and served as usual.
 */
#include "heap_internal.h"
#include "clock.h"
#include "large.h"
#include "ref.h"
#include "seg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* 1 if pages [p, p + span pages) all say "span of class cls from page p". */
static int span_whole(const struct arena *a, uint32_t p, unsigned cls)
{
	uint32_t n = sizeclass_table[cls].span_pages;
	if (n == 0 || p + n > a->g->npages)
		return 0;
	for (uint32_t q = p; q < p + n; q++) {
		const struct page_entry *pe = &a->page_map[q];
		if (pe->kind != PAGE_SPAN || pe->cls != cls || pe->span_start != p)
			return 0;
	}
	return 1;
}

static int adopt_span(struct heap *h, struct arena *a, uint32_t p, unsigned cls)
{
	struct page_run *r;
	uint32_t n = sizeclass_table[cls].span_pages;
	int rc = pageheap_claim(h->ph, a->id, p, n, &r);
	if (rc < 0)
		return rc;
	pageheap_mark_backed(h->ph, a->id, p, n);
	struct span *s = span_adopt(a, r, cls);
	if (s == NULL) {
		pageheap_free(h->ph, r, monotonic_ms());
		return -ENOMEM;
	}
	h->counters[cls].spans++;
	if (s->owner != 0) {
		/* A region's span: its region again (heap.h: Regions). */
		struct heap_region *rg = heap_region(h, s->owner, 1);
		if (rg == NULL) {
			s->owner = 0; /* unknown as a region's: it stays, shared */
		} else {
			/* Lazily reserved: what it holds is not known. */
			if (heap_owner_lazy(s->owner))
				pageheap_unback(h->ph, a->id, p, n);
			heap_region_add_span(rg, s);
			rg->bytes += (uint64_t)s->nout * s->size;
			h->region_bytes += (uint64_t)s->nout * s->size;
		}
	}
	if (s->nout == 0) {
		heap_release_span(h, s);
		return 0;
	}
	h->rec.spans++;
	h->rec.objects_out += s->nout;
	h->counters[cls].objects_out += s->nout;
	h->in_use += (uint64_t)s->nout * s->size;
	/* On its region's list if it is a region's: on the heap's, other
	 * clients' refills took its objects after a restart. */
	if (s->nout < s->objects)
		span_list_push(heap_partial(h, s), s);
	return 0;
}

static int adopt_large(struct heap *h, struct arena *a, uint32_t p, uint32_t n)
{
	struct page_run *r;
	uint32_t here = n > h->g.npages - p ? h->g.npages - p : n;
	if (here < n) {
		/* Runs on into later arenas: they must all be made, and all say
		 * so (checked as they come, rebuild_arena()). */
		uint32_t per = h->g.npages;
		uint64_t more = ((uint64_t)n - here + per - 1) / per;
		if (p != h->g.meta_pages ||
		    a->id + more >= __atomic_load_n(&h->hdr->narenas, __ATOMIC_ACQUIRE))
			return 1; /* not a block: its pages are repaired */
		h->jumbo_left = n - here;
	}
	int rc = pageheap_claim(h->ph, a->id, p, here, &r);
	if (rc < 0)
		return rc;
	if (!heap_owner_lazy(large_owner(a, p)))
		pageheap_mark_backed(h->ph, a->id, p, here);
	a->large_of_page[p] = r;
	uint64_t bytes = arena_page_offset(n);
	heap_region_note_large(h, large_owner(a, p), arena_page_offset(p) + a->ref_base, bytes, 1);
	h->rec.large_blocks++;
	h->large_count++;
	h->large_bytes += bytes;
	h->in_use += bytes;
	return 0;
}

static void punch_free(struct heap *h, struct arena *a, uint32_t from, uint32_t to)
{
	if (to > from)
		seg_punch(h->pages_fd, a->ref_base + arena_page_offset(from),
			  arena_page_offset(to - from));
}

/* A page that belongs to nothing whole: written back to PAGE_FREE. */
static void repair(struct heap *h, struct page_entry *pe)
{
	__atomic_store_n(&pe->kind, PAGE_FREE, __ATOMIC_RELEASE);
	pe->span_start = 0;
	h->rec.repaired_pages++;
}

/* 1 if page p's 64 bytes of bitmap have a bit set. */
static int page_bits_set(const struct arena *a, uint32_t p)
{
	const uint64_t *w = layout_bitmap(a->meta, a->g, p);
	for (unsigned i = 0; i < SHMA_BITMAP_BYTES_PER_PAGE / sizeof *w; i++)
		if (w[i] != 0)
			return 1;
	return 0;
}

/* NULL if arena a's page map is one a daemon (killed at any instant) could
 * have left, else what is wrong with it.  Reads only. */
static const char *arena_inconsistent(const struct arena *a)
{
	const struct arena_geometry *g = a->g;
	for (uint32_t p = 0; p < g->meta_pages; p++)
		if (a->page_map[p].kind != PAGE_META)
			return "a metadata page not marked so";
	uint32_t p = g->meta_pages;
	while (p < g->npages) {
		const struct page_entry *pe = &a->page_map[p];
		uint32_t n = 0;
		if (pe->kind == PAGE_SPAN && pe->span_start == p && pe->cls < SIZECLASS_COUNT &&
		    span_whole(a, p, pe->cls))
			n = sizeclass_table[pe->cls].span_pages;
		else if (pe->kind == PAGE_LARGE && (n = large_whole(a, p)) == 0)
			return "a large block's pages disagree";
		if (n != 0) {
			p = n > g->npages - p ? g->npages : p + n;
			continue;
		}
		if (pe->kind == PAGE_SPAN && page_bits_set(a, p))
			return "a span's pages disagree while objects of it are out";
		if (pe->kind != PAGE_FREE && pe->kind != PAGE_SPAN && pe->kind != PAGE_LARGE_CONT)
			return "a page of unknown kind";
		p++;
	}
	return NULL;
}

/* Arena a, found inconsistent: its region joins the page heap wholly
 * withheld, nothing of it adopted. */
static int quarantine_arena(struct heap *h, struct arena *a, const char *why)
{
	struct page_run *r;
	int rc = pageheap_claim(h->ph, a->id, h->g.meta_pages, h->g.npages - h->g.meta_pages, &r);
	if (rc == 0)
		rc = heap_withhold(h, r);
	if (rc < 0)
		return rc;
	heap_quarantine(h, a, why);
	h->rec.quarantined++;
	return 0;
}

/* An arena a block of an earlier arena runs into (h->jumbo_left pages of it
 * still to come): its pages must say so; the whole region goes to it. */
static int continue_jumbo(struct heap *h, struct arena *a)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages;
	uint64_t covered = h->jumbo_left < per ? h->jumbo_left : per;
	for (uint32_t p = 0; p < covered; p++)
		if (a->page_map[p].kind != PAGE_LARGE_CONT || a->page_map[p].span_start != PAGE_JUMBO)
			return heap_say(h, "arena %u: page %u of a block from an earlier arena "
					"says otherwise", a->id, p), -EINVAL;
	struct page_run *r;
	int rc = pageheap_claim(h->ph, a->id, meta, per - meta, &r);
	if (rc < 0)
		return rc;
	pageheap_mark_backed(h->ph, a->id, meta, per - meta);
	a->large_of_page[meta] = r;
	h->jumbo_left -= covered;
	return 0;
}

/* Pages of a block from an earlier arena whose first page is gone (made or
 * unmade when the daemon died): free again, metadata numbers PAGE_META. */
static void repair_jumbo_tail(struct heap *h, struct arena *a)
{
	for (uint32_t p = 0; p < h->g.npages; p++) {
		struct page_entry *pe = &a->page_map[p];
		if (pe->kind != PAGE_LARGE_CONT || pe->span_start != PAGE_JUMBO)
			continue;
		pe->span_start = p < h->g.meta_pages ? p : 0;
		__atomic_store_n(&pe->kind, p < h->g.meta_pages ? PAGE_META : PAGE_FREE,
				 __ATOMIC_RELEASE);
		h->rec.repaired_pages++;
	}
}

/* Rebuilds the page heap region, the spans and large blocks of arena a from
 * its page map. */
static int rebuild_arena(struct heap *h, struct arena *a)
{
	int rc = pageheap_add_region(h->ph, a->id, h->g.npages, h->g.meta_pages);
	if (rc < 0)
		return rc;
	if (h->jumbo_left > 0)
		return continue_jumbo(h, a);
	repair_jumbo_tail(h, a);
	const char *bad = arena_inconsistent(a);
	if (bad != NULL)
		return quarantine_arena(h, a, bad);
	uint32_t p = h->g.meta_pages, free_from = p;
	while (p < h->g.npages) {
		struct page_entry *pe = &a->page_map[p];
		uint32_t n = 0;
		if (pe->kind == PAGE_SPAN && pe->span_start == p && pe->cls < SIZECLASS_COUNT &&
		    span_whole(a, p, pe->cls)) {
			n = sizeclass_table[pe->cls].span_pages;
			punch_free(h, a, free_from, p);
			rc = adopt_span(h, a, p, pe->cls);
		} else if (pe->kind == PAGE_LARGE && (n = large_whole(a, p)) != 0) {
			rc = adopt_large(h, a, p, n);
			if (rc == 1)
				n = rc = 0; /* runs past the arenas made: not a block */
			else
				punch_free(h, a, free_from, p);
			if (n > h->g.npages - p)
				n = h->g.npages - p;
		}
		if (rc < 0)
			return rc;
		if (n != 0) {
			p += n;
			free_from = p;
			continue;
		}
		if (pe->kind == PAGE_SPAN || pe->kind == PAGE_LARGE_CONT)
			repair(h, pe); /* cut short (see above) */
		p++;
	}
	punch_free(h, a, free_from, p);
	return 0;
}

static int recover_arena(struct heap *h, uint32_t id)
{
	struct arena *a;
	const char *why = "?";
	char *meta = h->meta + layout_meta_offset(h->g.meta_bytes, id);
	int rc = arena_open(&a, meta, h->instance, id, &h->g, &why);
	if (rc < 0)
		return heap_say(h, "arena %u of /shmalloc.%s.M: %s", id, h->instance, why), rc;
	rc = heap_grow_arena_array(h);
	if (rc < 0) {
		arena_destroy(a);
		return rc;
	}
	h->arenas[h->narenas++] = a;
	return rebuild_arena(h, a);
}

/* Checks the header an earlier daemon wrote against this daemon's options;
 * takes the range and arena count it recorded. */
static int check_header(struct heap *h, const struct heap_header *hh, int64_t meta_size)
{
	if (hh->magic != SHMA_HEAP_MAGIC)
		return heap_say(h, "/shmalloc.%s.M is not a shmalloc heap (bad magic)",
				h->instance), -EINVAL;
	if (hh->layout_version != SHMA_LAYOUT_VERSION || hh->page_shift != SHMA_PAGE_SHIFT)
		return heap_say(h, "/shmalloc.%s.M holds a heap of layout %u; this shmallocd "
				"reads layout %u only",
				h->instance, hh->layout_version, SHMA_LAYOUT_VERSION), -EPROTO;
	if (strncmp(hh->instance, h->instance, sizeof hh->instance) != 0)
		return heap_say(h, "/shmalloc.%s.M belongs to another instance", h->instance),
		       -EINVAL;
	if (hh->class_checksum != sizeclass_checksum())
		return heap_say(h, "/shmalloc.%s.M: another size-class table", h->instance),
		       -EPROTO;
	if (hh->arena_size != h->g.arena_size)
		return heap_say(h, "/shmalloc.%s.M: its arena size %llu is not --arena-size",
				h->instance, (unsigned long long)hh->arena_size), -EINVAL;
	if (hh->meta_bytes != h->g.meta_bytes || hh->max_arenas == 0 ||
	    hh->max_arenas > REF_ARENAS_MAX || hh->narenas > hh->max_arenas ||
	    hh->range != (uint64_t)hh->max_arenas * hh->arena_size ||
	    meta_size != (int64_t)layout_meta_size(hh->meta_bytes, hh->max_arenas) ||
	    hh->base % SHMA_PAGE_SIZE != 0)
		return heap_say(h, "/shmalloc.%s.M: corrupt geometry", h->instance), -EINVAL;
	if (hh->narenas > h->max_arenas)
		return heap_say(h, "/shmalloc.%s.M holds %u arenas, past --max-memory",
				h->instance, hh->narenas), -EINVAL;
	/* The range is fixed at the first start: a larger --max-memory later
	 * cannot grow it (clients map it whole). */
	if (h->max_arenas > hh->max_arenas)
		h->max_arenas = hh->max_arenas;
	h->range = hh->range;
	h->meta_size = (uint64_t)meta_size;
	return 0;
}

int heap_recover(struct heap *h)
{
	struct heap_header hh;
	int64_t meta_size = seg_size(h->meta_fd);
	if (meta_size < (int64_t)sizeof hh)
		return heap_say(h, "/shmalloc.%s.M is too small", h->instance), -EINVAL;
	if (pread(h->meta_fd, &hh, sizeof hh, 0) != (ssize_t)sizeof hh)
		return -errno;
	int rc = check_header(h, &hh, meta_size);
	if (rc < 0)
		return rc;
	char name[SEG_NAME_MAX];
	rc = seg_name(name, sizeof name, h->instance, SEG_PAGES, 0);
	if (rc < 0)
		return rc;
	const char *why = NULL;
	h->pages_fd = seg_adopt(name, h->cfg.mode, &why);
	if (h->pages_fd == -EPERM)
		return heap_say(h, "%s is not ours (%s)", name, why ? why : "?"), -EPERM;
	if (h->pages_fd < 0)
		return heap_say(h, "segment %s: %s", name, strerror(-h->pages_fd)), h->pages_fd;
	int64_t was;
	if (heap_pages_heal(h, &was) < 0)
		return heap_say(h, "segment %s: its size is not the heap's range", name), -EINVAL;
	rc = heap_map_segments(h);
	if (rc < 0)
		return rc;
	if (h->cfg.base != 0 && h->cfg.base != h->hdr->base) {
		h->rec.old_base = h->hdr->base;
		__atomic_store_n(&h->hdr->base, h->cfg.base, __ATOMIC_RELEASE);
	}
	uint32_t n = __atomic_load_n(&h->hdr->narenas, __ATOMIC_ACQUIRE);
	for (uint32_t id = 0; id < n; id++) {
		rc = recover_arena(h, id);
		if (rc < 0)
			return rc;
	}
	if (h->jumbo_left > 0)
		return heap_say(h, "a large block runs past the last arena"), -EINVAL;
	h->rec.arenas = h->narenas;
	h->peak = h->in_use;
	return 0;
}
