/*
 * The heap: see heap.h.  This file ties the parts together -- the heap's two
 * segments, arenas (arena.c), free runs (pageheap.c), spans and their bitmaps
 * (span.c), large blocks (large.c) -- and does the system calls they leave to
 * it: reserving backing store before pages go out, punching it when decay
 * says so.  It also keeps the counters.  Reopening a heap an earlier daemon
 * left is recovery.c's.
 *
 * max_memory bounds the arenas made (large blocks live in arenas).
 */
#include "heap_internal.h"
#include "large.h"
#include "ref.h"
#include "seg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t heap_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void heap_say(struct heap *h, const char *fmt, ...)
{
	if (h->cfg.why == NULL || h->cfg.why_size == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->cfg.why, h->cfg.why_size, fmt, ap);
	va_end(ap);
}

void heap_quarantine(struct heap *h, struct arena *a, const char *why)
{
	if (a->quarantined != NULL)
		return;
	a->quarantined = why;
	h->nquarantined++;
	if (h->cfg.on_quarantine != NULL)
		h->cfg.on_quarantine(h->cfg.on_quarantine_arg, a->id, why);
}

int heap_withhold(struct heap *h, struct page_run *r)
{
	if (h->nheld == h->held_cap) {
		uint32_t cap = h->held_cap ? h->held_cap * 2 : 16;
		struct page_run **n = realloc(h->held, cap * sizeof *n);
		if (n == NULL) {
			pageheap_free(h->ph, r, heap_now_ms());
			return -ENOMEM;
		}
		h->held = n;
		h->held_cap = cap;
	}
	h->held[h->nheld++] = r;
	return 0;
}

uint32_t heap_quarantined(const struct heap *h)
{
	return h->nquarantined;
}

int heap_grow_arena_array(struct heap *h)
{
	if (h->narenas < h->arenas_cap)
		return 0;
	uint32_t cap = h->arenas_cap ? h->arenas_cap * 2 : 4;
	struct arena **n = realloc(h->arenas, cap * sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	h->arenas = n;
	h->arenas_cap = cap;
	return 0;
}

static int add_arena(struct heap *h)
{
	struct arena *a;
	if (h->narenas >= h->max_arenas)
		return -ENOMEM;
	int rc = heap_grow_arena_array(h);
	if (rc < 0)
		return rc;
	uint32_t id = h->narenas;
	uint64_t off = layout_meta_offset(h->g.meta_bytes, id);
	rc = arena_create(&a, h->meta_fd, h->meta + off, off, h->instance, id, &h->g,
			  time(NULL));
	if (rc < 0)
		return rc;
	rc = pageheap_add_region(h->ph, a->id, h->g.npages, h->g.meta_pages);
	if (rc < 0) {
		arena_destroy(a);
		return rc;
	}
	h->arenas[h->narenas++] = a;
	/* Last: an arena counts once its metadata is whole (recovery.c). */
	__atomic_store_n(&h->hdr->narenas, h->narenas, __ATOMIC_RELEASE);
	return 0;
}

static int check_config(const struct heap_config *cfg, struct arena_geometry *g)
{
	if (cfg->instance == NULL || !seg_instance_valid(cfg->instance))
		return -EINVAL;
	if (layout_geometry(cfg->arena_size, g) < 0)
		return -EINVAL;
	if (cfg->max_memory != 0 && cfg->max_memory < cfg->arena_size)
		return -EINVAL;
	if (cfg->base % SHMA_PAGE_SIZE != 0)
		return -EINVAL;
	return 0;
}

/* Arenas the heap may make: as many as --max-memory holds (rounded up, so a
 * cap below one arena still allows one), or else SHMA_DEFAULT_RANGE's worth.
 * The range is that many arenas. */
static uint32_t max_arenas(const struct heap_config *cfg)
{
	uint64_t n = cfg->max_memory != 0
			     ? (cfg->max_memory + cfg->arena_size - 1) / cfg->arena_size
			     : SHMA_DEFAULT_RANGE / cfg->arena_size;
	if (n == 0)
		n = 1;
	if (n > REF_RANGE_MAX / cfg->arena_size)
		n = REF_RANGE_MAX / cfg->arena_size;
	if (n > REF_ARENAS_MAX)
		n = REF_ARENAS_MAX;
	return (uint32_t)n;
}

/* The default base of an instance: a slot of the base area chosen by its
 * name, so that two instances rarely want the same addresses. */
static uint64_t default_base(const char *instance)
{
	uint64_t x = UINT64_C(14695981039346656037);
	for (const char *p = instance; *p; p++) {
		x ^= (uint8_t)*p;
		x *= UINT64_C(1099511628211);
	}
	return SHMA_BASE_FIRST + (x % SHMA_BASE_SLOTS) * SHMA_BASE_STRIDE;
}

static void unlink_segment(const char *instance, char kind)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, instance, kind, 0) == 0)
		seg_unlink(name);
}

int heap_map_segments(struct heap *h)
{
	h->meta = seg_map_sparse(h->meta_fd, h->meta_size, 1, SHMA_PAGE_SIZE);
	if (h->meta == NULL)
		return -errno;
	h->pages = seg_map_sparse(h->pages_fd, h->range, 1, SHMA_PAGE_SIZE);
	if (h->pages == NULL)
		return -errno;
	h->hdr = (struct heap_header *)h->meta;
	return 0;
}

/* Makes the segments of a fresh heap, 'M' first (it carries the instance's
 * lock, and its header's magic, written last, says the heap is whole). */
static int create_heap(struct heap *h)
{
	char name[SEG_NAME_MAX];
	/* Metadata: writable by the daemon's uid alone, whatever the mode. */
	mode_t meta_mode = seg_kind_mode('M', h->cfg.mode);
	int rc = seg_name(name, sizeof name, h->instance, 'M', 0);
	if (rc < 0)
		return rc;
	h->meta_fd = seg_create(name, h->meta_size, meta_mode);
	if (h->meta_fd < 0)
		return h->meta_fd;
	rc = seg_lock(h->meta_fd);
	if (rc == 0)
		rc = seg_reserve(h->meta_fd, 0, SHMA_PAGE_SIZE);
	if (rc < 0)
		return rc;
	rc = seg_name(name, sizeof name, h->instance, 'p', 0);
	if (rc < 0)
		return rc;
	h->pages_fd = seg_create(name, h->range, h->cfg.mode);
	if (h->pages_fd == -EEXIST && !seg_foreign(name, h->cfg.mode)) {
		/* Left by a creation cut short ('M' had no magic): ours to drop.
		 * Someone else's file stays, and the instance moves (-EEXIST). */
		seg_unlink(name);
		h->pages_fd = seg_create(name, h->range, h->cfg.mode);
	}
	if (h->pages_fd < 0)
		return h->pages_fd;
	rc = heap_map_segments(h);
	if (rc < 0)
		return rc;
	struct heap_header *hh = h->hdr;
	hh->layout_version = SHMA_LAYOUT_VERSION;
	hh->page_shift = SHMA_PAGE_SHIFT;
	memcpy(hh->instance, h->instance, strlen(h->instance) + 1);
	hh->base = h->cfg.base ? h->cfg.base : default_base(h->instance);
	hh->range = h->range;
	hh->arena_size = h->g.arena_size;
	hh->meta_bytes = h->g.meta_bytes;
	hh->class_checksum = sizeclass_checksum();
	hh->max_arenas = h->max_arenas;
	hh->narenas = 0;
	hh->created = time(NULL);
	__atomic_store_n(&hh->magic, SHMA_HEAP_MAGIC, __ATOMIC_RELEASE);
	return add_arena(h);
}

/* 1 if segment kind exists and is ours (a file someone else made under the
 * name is not). */
static int segment_exists(const char *instance, char kind, uint64_t id, mode_t mode)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, instance, kind, id) < 0)
		return 0;
	int fd = seg_adopt(name, mode, NULL);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Opens the heap's segments: those an earlier daemon left, or new ones. */
static int open_segments(struct heap *h)
{
	char name[SEG_NAME_MAX];
	int rc = seg_name(name, sizeof name, h->instance, 'M', 0);
	if (rc < 0)
		return rc;
	const char *why = NULL;
	h->meta_fd = seg_adopt(name, seg_kind_mode('M', h->cfg.mode), &why);
	if (h->meta_fd == -EPERM)
		return heap_say(h, "%s is not ours (%s)", name, why ? why : "?"), -EPERM;
	if (h->meta_fd == -ENOENT) {
		if (segment_exists(h->instance, 'a', 0, h->cfg.mode))
			return heap_say(h, "instance %s holds a heap of layout 1 (segment "
				    "/shmalloc.%s.a0); this shmallocd reads layout %u only", h->instance,
				    h->instance, SHMA_LAYOUT_VERSION), -EPROTO;
		return create_heap(h);
	}
	if (h->meta_fd < 0)
		return heap_say(h, "segment %s: %s", name, strerror(-h->meta_fd)), h->meta_fd;
	if (seg_lock(h->meta_fd) < 0)
		return -EBUSY;
	int64_t size = seg_size(h->meta_fd);
	struct heap_header hh = {0};
	if (size >= (int64_t)sizeof hh && pread(h->meta_fd, &hh, sizeof hh, 0) != (ssize_t)sizeof hh)
		return -errno;
	if (hh.magic == 0) {
		/* Its creation was cut short: nothing in it was handed out. */
		close(h->meta_fd);
		h->meta_fd = -1;
		seg_unlink(name);
		unlink_segment(h->instance, 'p');
		return create_heap(h);
	}
	return heap_recover(h);
}

int heap_open(struct heap **out, const struct heap_config *cfg)
{
	struct arena_geometry g;
	int rc = check_config(cfg, &g);
	if (rc < 0)
		return rc;
	struct heap *h = calloc(1, sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	strcpy(h->instance, cfg->instance);
	h->cfg = *cfg;
	h->cfg.instance = h->instance;
	h->g = g;
	h->arena_shift = (unsigned)__builtin_ctzll(g.arena_size);
	h->pages_fd = h->meta_fd = -1;
	h->max_arenas = max_arenas(cfg);
	h->range = (uint64_t)h->max_arenas * g.arena_size;
	h->meta_size = layout_meta_size(g.meta_bytes, h->max_arenas);
	rc = pageheap_create(&h->ph);
	if (rc == 0)
		rc = open_segments(h);
	if (rc == 0 && h->narenas == 0)
		rc = add_arena(h);
	if (rc == -EBUSY)
		heap_say(h, "another shmallocd holds instance %s", h->instance);
	if (rc < 0) {
		heap_close(h, 0);
		return rc;
	}
	*out = h;
	return 0;
}

/* Frees the private structs of an arena's spans and blocks (teardown). */
static void forget_spans(struct arena *a)
{
	for (uint32_t p = 0; p < a->g->npages; p++) {
		struct span *s = a->span_of_page[p];
		if (s != NULL) {
			pageheap_forget(s->run);
			free(s);
		}
		if (a->large_of_page[p] != NULL)
			pageheap_forget(a->large_of_page[p]);
	}
}

void heap_close(struct heap *h, int unlink)
{
	if (h == NULL)
		return;
	heap_regions_close(h);
	for (uint32_t i = 0; i < h->narenas; i++) {
		forget_spans(h->arenas[i]);
		arena_destroy(h->arenas[i]);
	}
	free(h->arenas);
	for (uint32_t i = 0; i < h->nheld; i++)
		pageheap_forget(h->held[i]);
	free(h->held);
	if (h->ph != NULL)
		pageheap_destroy(h->ph);
	if (h->pages != NULL)
		seg_unmap(h->pages, h->range);
	if (h->meta != NULL)
		seg_unmap(h->meta, h->meta_size);
	if (h->pages_fd >= 0)
		close(h->pages_fd);
	if (h->meta_fd >= 0)
		close(h->meta_fd);
	if (unlink) {
		unlink_segment(h->instance, 'p');
		unlink_segment(h->instance, 'M');
	}
	free(h);
}

/* ---- page runs ---- */

/* Offset in 'p' of page p of region (arena) r. */
static uint64_t pages_offset(const struct heap *h, uint32_t r, uint32_t p)
{
	return h->arenas[r]->ref_base + arena_page_offset(p);
}

/* A run of npages pages, backing store reserved (unless lazy: a region's,
 * whose pages come on first touch): from the free runs, else from a new
 * arena. */
static int alloc_pages(struct heap *h, uint32_t npages, int lazy, struct page_run **out)
{
	if (npages == 0 || npages > h->g.npages - h->g.meta_pages)
		return -ENOMEM;
	int rc;
	for (;;) {
		rc = pageheap_alloc(h->ph, npages, out);
		if (rc == -ENOMEM) {
			rc = add_arena(h);
			if (rc == 0)
				rc = pageheap_alloc(h->ph, npages, out);
		}
		if (rc < 0)
			return rc;
		/* A quarantined arena's free runs leave the page heap as they
		 * come up, one at a time: a bounded number of them. */
		if (h->arenas[(*out)->region]->quarantined == NULL)
			break;
		rc = heap_withhold(h, *out);
		if (rc < 0)
			return rc;
	}
	struct page_run *r = *out;
	/* Pages freed and not yet decayed hold their store: no system call. */
	if (lazy || pageheap_backed(h->ph, r->region, r->start, r->npages) == r->npages)
		return 0;
	rc = seg_reserve(h->pages_fd, pages_offset(h, r->region, r->start),
			 arena_page_offset(r->npages));
	if (rc == -ENOMEM && heap_release_free(h) > 0)
		rc = seg_reserve(h->pages_fd, pages_offset(h, r->region, r->start),
				 arena_page_offset(r->npages));
	if (rc < 0) {
		pageheap_free(h->ph, r, heap_now_ms());
		return rc;
	}
	pageheap_mark_backed(h->ph, r->region, r->start, r->npages);
	return 0;
}

static int new_span(struct heap *h, unsigned cls, struct heap_region *rg, struct span **out)
{
	struct page_run *r;
	int rc = alloc_pages(h, sizeclass_table[cls].span_pages, rg != NULL, &r);
	if (rc < 0)
		return rc;
	*out = span_create(h->arenas[r->region], r, cls, rg ? rg->id | SHMA_OWNER_REGION : 0);
	if (*out == NULL) {
		if (rg != NULL)
			heap_settle_lazy(h, r->region, r->start, r->npages);
		pageheap_free(h->ph, r, heap_now_ms());
		return -ENOMEM;
	}
	if (rg != NULL)
		heap_region_add_span(rg, *out);
	h->counters[cls].spans++;
	return 0;
}

static uint64_t punch_decayed(struct heap *h, const struct pageheap_decayed *d);

/* Punches the oldest free runs while more free pages hold backing store
 * than HEAP_FREE_RESERVED_MIN or an eighth of the bytes in use. */
static void trim_reserved(struct heap *h)
{
	uint64_t cap = h->in_use / 8 > HEAP_FREE_RESERVED_MIN ? h->in_use / 8
							      : HEAP_FREE_RESERVED_MIN;
	struct pageheap_decayed d;
	while (arena_page_offset(pageheap_free_backed(h->ph)) > cap &&
	       pageheap_decay_next(h->ph, UINT64_MAX / 2, 0, &d))
		h->returned += punch_decayed(h, &d);
}

void heap_release_span(struct heap *h, struct span *s)
{
	struct page_run *r = s->run;
	struct heap_region *rg = s->region;
	h->counters[s->cls].spans--;
	span_list_remove(heap_partial(h, s), s);
	if (rg != NULL) {
		if (s->rprev != NULL)
			s->rprev->rnext = s->rnext;
		else
			rg->spans = s->rnext;
		if (s->rnext != NULL)
			s->rnext->rprev = s->rprev;
	}
	int lazy = s->owner != 0;
	span_destroy(s);
	if (lazy)
		heap_settle_lazy(h, r->region, r->start, r->npages);
	pageheap_free(h->ph, r, heap_now_ms());
	trim_reserved(h);
}

void heap_settle_lazy(struct heap *h, uint32_t region_id, uint32_t start, uint32_t npages)
{
	uint64_t off = pages_offset(h, region_id, start), len = arena_page_offset(npages);
	if (pageheap_backed(h->ph, region_id, start, npages) == npages)
		return;
	if (len < HEAP_PUNCH_AT && seg_reserve(h->pages_fd, off, len) == 0) {
		pageheap_mark_backed(h->ph, region_id, start, npages);
		return;
	}
	/* Too large to keep, or /dev/shm is full: nothing of it stays. */
	if (seg_punch(h->pages_fd, off, len) == 0)
		h->returned += arena_page_offset(pageheap_unback(h->ph, region_id, start, npages));
}

/* ---- refill ---- */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Takes up to want objects from the class's partial spans, as refs. */
static uint32_t take_partial(struct span_list *l, uint32_t want, struct heap_batch *b)
{
	uint32_t got = 0;
	struct span *s;
	while (got < want && b->nrefs < b->refs_cap && (s = span_list_first(l)) != NULL) {
		if (s->arena->quarantined != NULL) {
			span_list_remove(l, s);
			continue;
		}
		uint32_t room = min_u32(want - got, b->refs_cap - b->nrefs);
		uint32_t n = span_take(s, room, b->refs + b->nrefs);
		b->nrefs += n;
		got += n;
		/* A listed span has a free object, so n > 0; should the bitmap
		 * and nout ever disagree, unlist the span rather than spin. */
		if (s->nout == s->objects || n == 0)
			span_list_remove(l, s);
		else
			span_list_update(l, s);
	}
	return got;
}

/* Takes up to want objects from a fresh span: as one run if the batch has
 * room for a run, else as refs.  The rest of the span joins the partial
 * list.  The count, or a negative errno. */
static int take_fresh(struct heap *h, struct heap_region *rg, unsigned cls, uint32_t want,
		      struct heap_batch *b)
{
	struct span *s;
	int rc = new_span(h, cls, rg, &s);
	if (rc < 0)
		return rc;
	uint32_t n = min_u32(want, s->objects);
	if (b->nruns < b->runs_cap) {
		span_take_front(s, n);
		b->runs[b->nruns].first = span_ref(s, 0);
		b->runs[b->nruns++].count = n;
	} else {
		n = span_take(s, min_u32(n, b->refs_cap - b->nrefs), b->refs + b->nrefs);
		b->nrefs += n;
	}
	if (s->nout < s->objects)
		span_list_push(heap_partial(h, s), s);
	return (int)n;
}

int heap_refill(struct heap *h, struct heap_region *rg, unsigned cls, uint32_t want,
		struct heap_batch *batch)
{
	if (cls >= SIZECLASS_COUNT || want == 0)
		return -EINVAL;
	batch->nrefs = batch->nruns = 0;
	uint32_t got = take_partial(rg ? &rg->partial[cls] : &h->partial[cls], want, batch);
	int err = 0;
	while (got < want && err == 0) {
		if (batch->nrefs >= batch->refs_cap && batch->nruns >= batch->runs_cap)
			break;
		int n = take_fresh(h, rg, cls, want - got, batch);
		if (n < 0)
			err = n;
		else
			got += (uint32_t)n;
	}
	if (got == 0)
		return err != 0 ? err : -EINVAL;
	h->counters[cls].refills++;
	h->counters[cls].objects_out += got;
	uint64_t bytes = (uint64_t)got * sizeclass_table[cls].size;
	h->in_use += bytes;
	if (h->in_use > h->peak)
		h->peak = h->in_use;
	if (rg != NULL) {
		rg->bytes += bytes;
		h->region_bytes += bytes;
	}
	return (int)got;
}

/* ---- free ---- */

/* The arena ref lies in, or NULL. */
static struct arena *arena_of(const struct heap *h, uint64_t ref)
{
	uint64_t id = ref >> h->arena_shift;
	return id < h->narenas ? h->arenas[id] : NULL;
}

static int locate(struct heap *h, uint64_t ref, struct span **s, uint32_t *idx)
{
	struct arena *a = arena_of(h, ref);
	if (a == NULL)
		return -EINVAL;
	if (a->quarantined != NULL)
		return -EUCLEAN;
	int rc = span_locate(a, ref_arena_offset(ref, h->arena_shift), s, idx);
	if (rc == -EUCLEAN)
		heap_quarantine(h, a, "a page map entry names no span of the daemon's");
	return rc;
}

int heap_object_class(struct heap *h, uint64_t ref)
{
	struct span *s;
	uint32_t idx;
	int rc = locate(h, ref, &s, &idx);
	if (rc < 0)
		return rc;
	return span_is_out(s, idx) ? (int)s->cls : -EALREADY;
}

/* A large block of got bytes is out: the counters say so. */
static void large_counted(struct heap *h, uint64_t got)
{
	h->large_count++;
	h->large_bytes += got;
	h->in_use += got;
	if (h->in_use > h->peak)
		h->peak = h->in_use;
}

int heap_free_object(struct heap *h, uint64_t ref, unsigned *cls)
{
	struct span *s;
	uint32_t idx;
	int rc = locate(h, ref, &s, &idx);
	if (rc == 0) {
		rc = span_put(s, idx);
		if (rc == -EUCLEAN)
			heap_quarantine(h, s->arena, "a bitmap bit set that the daemon never set");
	}
	if (rc < 0)
		return rc;
	unsigned c = s->cls;
	h->counters[c].objects_out--;
	h->counters[c].flushes++;
	h->in_use -= s->size;
	if (s->region != NULL) {
		s->region->bytes -= s->size;
		h->region_bytes -= s->size;
	}
	if (cls != NULL)
		*cls = c;
	if (s->nout == 0)
		heap_release_span(h, s);
	else if (!s->listed)
		span_list_push(heap_partial(h, s), s);
	else
		span_list_update(heap_partial(h, s), s);
	return 0;
}

void *heap_object_address(struct heap *h, uint64_t ref)
{
	int rc = heap_object_class(h, ref);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	return h->pages + ref;
}

/* ---- large blocks ---- */

/* Reserves [off, off + len) of the pages, punching free pages first if
 * /dev/shm is full. */
static int reserve_pages(struct heap *h, uint64_t off, uint64_t len)
{
	int rc = seg_reserve(h->pages_fd, off, len);
	if (rc == -ENOMEM && heap_release_free(h) > 0)
		rc = seg_reserve(h->pages_fd, off, len);
	return rc;
}

/* Writes the page map of a block of npages pages from page meta_pages of
 * arena first into the arenas after it (see PAGE_JUMBO), last arena first;
 * with kind PAGE_FREE, writes them back (metadata page numbers to
 * PAGE_META). */
static void jumbo_tail_map(struct heap *h, uint32_t first, uint64_t npages, int make)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages;
	uint64_t left = npages - (per - meta);
	uint32_t k = (uint32_t)((left + per - 1) / per);
	for (uint32_t j = k; j >= 1; j--) {
		struct arena *a = h->arenas[first + j];
		uint64_t covered = left - (uint64_t)(j - 1) * per;
		if (covered > per)
			covered = per;
		for (uint32_t p = 0; p < covered; p++) {
			struct page_entry *pe = &a->page_map[p];
			pe->cls = 0;
			pe->span_start = make ? PAGE_JUMBO : p < meta ? p : 0;
			__atomic_store_n(&pe->kind,
					 make ? PAGE_LARGE_CONT : p < meta ? PAGE_META : PAGE_FREE,
					 __ATOMIC_RELEASE);
		}
	}
}

/* The arenas after the first that a block of npages pages from page
 * meta_pages of an arena runs into. */
static uint32_t jumbo_more(const struct heap *h, uint64_t npages)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages;
	if (npages <= per - meta)
		return 0;
	return (uint32_t)((npages - (per - meta) + per - 1) / per);
}

/* A block larger than an arena's free pages: fresh arenas at the end of the
 * heap, whole, the block from the first one's first free page on. */
static int alloc_jumbo(struct heap *h, uint64_t npages, uint64_t owner, uint64_t *ref)
{
	int lazy = (owner & SHMA_OWNER_REGION) != 0;
	uint32_t per = h->g.npages, meta = h->g.meta_pages, k = 1 + jumbo_more(h, npages);
	if (npages > UINT32_MAX - 1 || k > h->max_arenas - h->narenas)
		return -ENOMEM;
	uint32_t first = h->narenas;
	for (uint32_t j = 0; j < k; j++) {
		int rc = add_arena(h);
		if (rc < 0)
			return rc; /* the arenas made stay, empty */
	}
	uint64_t start = h->arenas[first]->ref_base + arena_page_offset(meta);
	int rc = lazy ? 0 : reserve_pages(h, start, npages << SHMA_PAGE_SHIFT);
	if (rc < 0)
		return rc;
	for (uint32_t j = 0; j < k; j++) {
		struct page_run *r;
		rc = pageheap_claim(h->ph, first + j, meta, per - meta, &r);
		if (rc < 0) {
			for (uint32_t i = 0; i < j; i++) {
				struct arena *b = h->arenas[first + i];
				pageheap_free(h->ph, b->large_of_page[meta], heap_now_ms());
				b->large_of_page[meta] = NULL;
			}
			seg_punch(h->pages_fd, start, npages << SHMA_PAGE_SHIFT);
			return rc;
		}
		if (!lazy)
			pageheap_mark_backed(h->ph, first + j, meta, per - meta);
		h->arenas[first + j]->large_of_page[meta] = r;
	}
	/* The later arenas first, then the first one's pages, its first page
	 * last (recovery.c). */
	jumbo_tail_map(h, first, npages, 1);
	struct arena *a = h->arenas[first];
	struct page_run *r0 = a->large_of_page[meta];
	*layout_owner(a->meta, a->g, meta) = owner;
	for (uint32_t p = meta + 1; p < per; p++) {
		a->page_map[p].cls = 0;
		a->page_map[p].span_start = meta;
		__atomic_store_n(&a->page_map[p].kind, PAGE_LARGE_CONT, __ATOMIC_RELEASE);
	}
	a->page_map[meta].cls = 0;
	a->page_map[meta].flags = lazy ? SHMA_PAGE_REGION : 0;
	a->page_map[meta].span_start = (uint32_t)npages;
	__atomic_store_n(&a->page_map[meta].kind, PAGE_LARGE, __ATOMIC_RELEASE);
	(void)r0;
	*ref = start;
	return 0;
}

static void free_jumbo(struct heap *h, struct arena *a, uint64_t npages)
{
	uint32_t per = h->g.npages, meta = h->g.meta_pages, k = 1 + jumbo_more(h, npages);
	uint64_t start = a->ref_base + arena_page_offset(meta);
	__atomic_store_n(&a->page_map[meta].kind, PAGE_FREE, __ATOMIC_RELEASE);
	a->page_map[meta].span_start = 0;
	a->page_map[meta].flags = 0;
	*layout_owner(a->meta, a->g, meta) = 0;
	for (uint32_t p = meta + 1; p < per; p++) {
		__atomic_store_n(&a->page_map[p].kind, PAGE_FREE, __ATOMIC_RELEASE);
		a->page_map[p].span_start = 0;
	}
	jumbo_tail_map(h, a->id, npages, 0);
	uint64_t now = heap_now_ms();
	for (uint32_t j = 0; j < k; j++) {
		struct arena *b = h->arenas[a->id + j];
		struct page_run *r = b->large_of_page[meta];
		b->large_of_page[meta] = NULL;
		if (r != NULL)
			pageheap_free(h->ph, r, now);
	}
	if (seg_punch(h->pages_fd, start, npages << SHMA_PAGE_SHIFT) == 0)
		for (uint32_t j = 0; j < k; j++)
			h->returned += arena_page_offset(
				pageheap_unback(h->ph, a->id + j, meta, per - meta));
}

/* heap_alloc_large() with the owner word as it is kept (a region's: lazy). */
static int alloc_large(struct heap *h, uint64_t size, uint64_t owner, uint64_t *ref,
		       uint64_t *got)
{
	if (size == 0)
		return -EINVAL;
	if (size > h->range)
		return -ENOMEM;
	uint64_t npages = (size + SHMA_PAGE_SIZE - 1) >> SHMA_PAGE_SHIFT;
	if (npages > h->g.npages - h->g.meta_pages) {
		int rc = alloc_jumbo(h, npages, owner, ref);
		if (rc < 0)
			return rc;
		*got = npages << SHMA_PAGE_SHIFT;
		large_counted(h, *got);
		return 0;
	}
	struct page_run *r;
	int rc = alloc_pages(h, (uint32_t)npages, (owner & SHMA_OWNER_REGION) != 0, &r);
	if (rc < 0)
		return rc;
	struct arena *a = h->arenas[r->region];
	large_make(a, r, owner);
	*ref = a->ref_base + arena_page_offset(r->start);
	*got = arena_page_offset(r->npages);
	large_counted(h, *got);
	return 0;
}

int heap_alloc_large(struct heap *h, struct heap_region *rg, uint64_t size, uint64_t owner,
		     uint64_t *ref, uint64_t *got)
{
	if (rg == NULL)
		return alloc_large(h, size, owner & ~SHMA_OWNER_REGION, ref, got);
	owner = rg->id | SHMA_OWNER_REGION;
	int rc = alloc_large(h, size, owner, ref, got);
	if (rc == 0 && heap_region_note_large(h, owner, *ref, *got, 1) != 0) {
		heap_free_large(h, *ref, NULL);
		rc = -ENOMEM;
	}
	return rc;
}

int heap_free_large(struct heap *h, uint64_t ref, uint64_t *size)
{
	struct arena *a = arena_of(h, ref);
	if (a != NULL && a->quarantined != NULL)
		return -EUCLEAN;
	struct page_run *r = a ? large_at(a, ref_arena_offset(ref, h->arena_shift)) : NULL;
	if (r == NULL)
		return -EINVAL;
	uint32_t len = a->page_map[r->start].span_start;
	uint64_t owner = large_owner(a, r->start);
	if (len > r->npages) {
		uint64_t bytes = (uint64_t)len << SHMA_PAGE_SHIFT;
		heap_region_note_large(h, owner, ref, bytes, 0);
		free_jumbo(h, a, len);
		h->large_count--;
		h->large_bytes -= bytes;
		h->in_use -= bytes;
		if (size != NULL)
			*size = bytes;
		return 0;
	}
	uint64_t sz = arena_page_offset(r->npages);
	uint32_t region = r->region, start = r->start, npages = r->npages;
	heap_region_note_large(h, owner, ref, sz, 0);
	large_unmake(a, r);
	if (owner & SHMA_OWNER_REGION)
		heap_settle_lazy(h, region, start, npages);
	pageheap_free(h->ph, r, heap_now_ms());
	if (sz >= HEAP_PUNCH_AT &&
	    seg_punch(h->pages_fd, pages_offset(h, region, start), sz) == 0)
		h->returned += arena_page_offset(pageheap_unback(h->ph, region, start, npages));
	h->large_count--;
	h->large_bytes -= sz;
	h->in_use -= sz;
	if (size != NULL)
		*size = sz;
	return 0;
}

uint64_t heap_large_owner(const struct heap *h, uint64_t ref)
{
	struct arena *a = arena_of(h, ref);
	struct page_run *r = a ? large_at(a, ref_arena_offset(ref, h->arena_shift)) : NULL;
	return r != NULL ? large_owner(a, r->start) & ~SHMA_OWNER_REGION : 0;
}

uint64_t heap_large_size(const struct heap *h, uint64_t ref, uint64_t *start)
{
	struct arena *a = arena_of(h, ref);
	if (a == NULL)
		return 0;
	uint64_t off = ref_arena_offset(ref, h->arena_shift);
	/* A page of a block that began in an earlier arena: go back to it. */
	while (a->page_map[off >> SHMA_PAGE_SHIFT].kind == PAGE_LARGE_CONT &&
	       a->page_map[off >> SHMA_PAGE_SHIFT].span_start == PAGE_JUMBO && a->id > 0) {
		a = h->arenas[a->id - 1];
		off = arena_page_offset(h->g.npages - 1);
	}
	struct page_run *r = large_containing(a, off);
	if (r == NULL)
		return 0;
	uint64_t len = a->page_map[r->start].span_start;
	uint64_t first = a->ref_base + arena_page_offset(r->start);
	if (ref >= first + (len << SHMA_PAGE_SHIFT))
		return 0;
	if (start != NULL)
		*start = first;
	return len << SHMA_PAGE_SHIFT;
}

/* ---- decay ---- */

/* Punches a run decay chose; the bytes of backing store it released. */
static uint64_t punch_decayed(struct heap *h, const struct pageheap_decayed *d)
{
	int rc = seg_punch(h->pages_fd, pages_offset(h, d->region, d->start),
			   arena_page_offset(d->npages));
	return rc == 0 ? arena_page_offset(d->backed_pages) : 0;
}

uint64_t heap_decay(struct heap *h, uint64_t now_ms)
{
	struct pageheap_decayed d;
	uint64_t bytes = 0;
	while (pageheap_decay_next(h->ph, now_ms, h->cfg.decay_ms, &d))
		bytes += punch_decayed(h, &d);
	h->returned += bytes;
	return bytes;
}

uint64_t heap_release_free(struct heap *h)
{
	uint64_t decay = h->cfg.decay_ms;
	h->cfg.decay_ms = 0;
	uint64_t bytes = heap_decay(h, UINT64_MAX / 2);
	h->cfg.decay_ms = decay;
	return bytes;
}

/* ---- counters ---- */

static uint64_t arena_resident(const struct heap *h, uint32_t i)
{
	return h->g.meta_bytes +
	       arena_page_offset(pageheap_backed(h->ph, i, 0, h->g.npages));
}

void heap_totals(const struct heap *h, struct heap_totals *t)
{
	memset(t, 0, sizeof *t);
	t->mapped_bytes = (uint64_t)h->narenas * h->g.arena_size;
	int64_t p = seg_resident(h->pages_fd), m = seg_resident(h->meta_fd);
	t->resident_bytes = (p > 0 ? (uint64_t)p : 0) + (m > 0 ? (uint64_t)m : 0);
	t->in_use_bytes = h->in_use;
	t->peak_in_use_bytes = h->peak;
	t->returned_bytes = h->returned;
	t->large_count = h->large_count;
	t->large_bytes = h->large_bytes;
	pageheap_stats(h->ph, UINT32_MAX, &t->free_pages, &t->largest_free_run);
	t->narenas = h->narenas;
}

unsigned heap_arena_count(const struct heap *h)
{
	return h->narenas;
}

void heap_arena_stats(const struct heap *h, unsigned i, struct heap_arena_stats *s)
{
	memset(s, 0, sizeof *s);
	if (i >= h->narenas)
		return;
	const struct arena *a = h->arenas[i];
	s->id = a->id;
	s->size = h->g.arena_size;
	s->pages = h->g.npages;
	pageheap_stats(h->ph, a->id, &s->free_pages, &s->largest_free_run);
	s->span_pages = s->pages - h->g.meta_pages - s->free_pages;
	s->resident_bytes = arena_resident(h, i);
	s->quarantined = a->quarantined != NULL;
}

void heap_class_stats(const struct heap *h, unsigned cls, struct heap_class_stats *s)
{
	memset(s, 0, sizeof *s);
	if (cls >= SIZECLASS_COUNT)
		return;
	const struct class_counters *c = &h->counters[cls];
	s->spans = c->spans;
	s->objects_out = c->objects_out;
	s->objects_total = c->spans * sizeclass_table[cls].objects;
	s->refills = c->refills;
	s->flushes = c->flushes;
}

const struct arena_geometry *heap_geometry(const struct heap *h)
{
	return &h->g;
}

const struct heap_header *heap_header(const struct heap *h)
{
	return h->hdr;
}

uint64_t heap_client_ids(const struct heap *h)
{
	return h->hdr->client_ids;
}

void heap_note_client_id(struct heap *h, uint64_t id)
{
	if (id > h->hdr->client_ids)
		h->hdr->client_ids = id;
}

uint32_t heap_max_arenas(const struct heap *h)
{
	return h->max_arenas;
}

void heap_recovery(const struct heap *h, struct heap_recovery *r)
{
	*r = h->rec;
}
