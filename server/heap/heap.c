/*
 * The heap: see heap.h.  This file ties the parts together -- arenas
 * (arena.c), free runs (pageheap.c), spans and their bitmaps (span.c), large
 * blocks (large.c) -- and does the system calls they leave to it: reserving
 * backing store before pages go out, punching it when decay says so.  It
 * also keeps the counters.
 *
 * max_memory bounds the mapped bytes: arenas (whole) plus large blocks.
 */
#include "heap.h"
#include "arena.h"
#include "large.h"
#include "pageheap.h"
#include "ref.h"
#include "seg.h"
#include "span.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct class_counters {
	uint64_t spans, objects_out, refills, flushes;
};

struct heap {
	char instance[SHMA_INSTANCE_MAX];
	struct heap_config cfg;
	struct arena_geometry g;
	struct arena **arenas;
	uint32_t narenas, arenas_cap, max_arenas;
	struct pageheap *ph;
	struct large_set *large;
	struct span_list partial[SIZECLASS_COUNT];
	struct class_counters counters[SIZECLASS_COUNT];
	uint64_t in_use, peak, returned;
	struct heap_recovery rec;
};

uint64_t heap_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mapped_bytes(const struct heap *h)
{
	return (uint64_t)h->narenas * h->g.arena_size + large_set_bytes(h->large) +
	       large_set_kept_bytes(h->large);
}

/* 1 if max_memory leaves room for bytes more. */
static int fits_cap(const struct heap *h, uint64_t bytes)
{
	return h->cfg.max_memory == 0 || mapped_bytes(h) + bytes <= h->cfg.max_memory;
}

/* Whether bytes more fit --max-memory, giving the kept large blocks back
 * first if that makes the room. */
static int within_cap(struct heap *h, uint64_t bytes)
{
	if (fits_cap(h, bytes))
		return 1;
	h->returned += large_set_release_kept(h->large, h->instance, UINT64_MAX, 0);
	return fits_cap(h, bytes);
}

static int grow_arena_array(struct heap *h)
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
	if (h->narenas >= h->max_arenas || !within_cap(h, h->g.arena_size))
		return -ENOMEM;
	int rc = grow_arena_array(h);
	if (rc < 0)
		return rc;
	rc = arena_create(&a, h->instance, h->narenas, &h->g, h->cfg.mode, time(NULL));
	if (rc < 0)
		return rc;
	rc = pageheap_add_region(h->ph, a->id, h->g.npages, h->g.meta_pages);
	if (rc < 0) {
		arena_destroy(a, h->instance, 1);
		return rc;
	}
	h->arenas[h->narenas++] = a;
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
	return 0;
}

/* Arenas the heap may create: as many as --max-memory holds (rounded up, so
 * a cap below one arena still allows one), or else SHMA_MAX_ARENA_VA's worth.
 * Clients reserve address space for all of them. */
static uint32_t max_arenas(const struct heap_config *cfg)
{
	uint64_t n = cfg->max_memory != 0
			     ? (cfg->max_memory + cfg->arena_size - 1) / cfg->arena_size
			     : SHMA_MAX_ARENA_VA / cfg->arena_size;
	if (n == 0)
		n = 1;
	if (n > (uint64_t)REF_ID_MAX + 1)
		n = (uint64_t)REF_ID_MAX + 1;
	return (uint32_t)n;
}

static void say(struct heap *h, const char *fmt, ...)
{
	if (h->cfg.why == NULL || h->cfg.why_size == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->cfg.why, h->cfg.why_size, fmt, ap);
	va_end(ap);
}

static int recover(struct heap *h);

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
	h->max_arenas = max_arenas(cfg);
	rc = pageheap_create(&h->ph);
	if (rc == 0)
		rc = large_set_create(&h->large);
	if (rc == 0)
		rc = recover(h);
	if (rc == 0 && h->narenas == 0)
		rc = add_arena(h);
	if (rc == -EBUSY)
		say(h, "another shmallocd holds instance %s", h->instance);
	if (rc < 0) {
		heap_close(h, 0);
		return rc;
	}
	*out = h;
	return 0;
}

/* Frees the private structs of an arena's spans (teardown only). */
static void forget_spans(struct arena *a)
{
	for (uint32_t p = 0; p < a->g->npages; p++) {
		struct span *s = a->span_of_page[p];
		if (s != NULL) {
			pageheap_forget(s->run);
			free(s);
		}
	}
}

void heap_close(struct heap *h, int unlink)
{
	if (h == NULL)
		return;
	for (uint32_t i = 0; i < h->narenas; i++) {
		forget_spans(h->arenas[i]);
		arena_destroy(h->arenas[i], h->instance, unlink);
	}
	free(h->arenas);
	if (h->ph != NULL)
		pageheap_destroy(h->ph);
	if (h->large != NULL)
		large_set_destroy(h->large, h->instance, unlink);
	free(h);
}

/* ---- spans ---- */

/* A run of npages pages, backing store reserved: from the free runs, else
 * from a new arena. */
static int alloc_pages(struct heap *h, uint32_t npages, struct page_run **out)
{
	if (npages > h->g.npages - h->g.meta_pages)
		return -ENOMEM;
	int rc = pageheap_alloc(h->ph, npages, out);
	if (rc == -ENOMEM) {
		rc = add_arena(h);
		if (rc == 0)
			rc = pageheap_alloc(h->ph, npages, out);
	}
	if (rc < 0)
		return rc;
	struct page_run *r = *out;
	rc = seg_reserve(h->arenas[r->region]->fd, arena_page_offset(r->start),
			 arena_page_offset(r->npages));
	if (rc < 0) {
		pageheap_free(h->ph, r, heap_now_ms());
		return rc;
	}
	pageheap_mark_backed(h->ph, r->region, r->start, r->npages);
	return 0;
}

static int new_span(struct heap *h, unsigned cls, struct span **out)
{
	struct page_run *r;
	int rc = alloc_pages(h, sizeclass_table[cls].span_pages, &r);
	if (rc < 0)
		return rc;
	*out = span_create(h->arenas[r->region], r, cls);
	if (*out == NULL) {
		pageheap_free(h->ph, r, heap_now_ms());
		return -ENOMEM;
	}
	h->counters[cls].spans++;
	return 0;
}

static void release_span(struct heap *h, struct span *s)
{
	struct page_run *r = s->run;
	h->counters[s->cls].spans--;
	span_list_remove(&h->partial[s->cls], s);
	span_destroy(s);
	pageheap_free(h->ph, r, heap_now_ms());
}

/* ---- refill ---- */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Takes up to want objects from the class's partial spans, as refs. */
static uint32_t take_partial(struct heap *h, unsigned cls, uint32_t want,
			     struct heap_batch *b)
{
	struct span_list *l = &h->partial[cls];
	uint32_t got = 0;
	while (got < want && b->nrefs < b->refs_cap && l->head != NULL) {
		struct span *s = l->head;
		uint32_t room = min_u32(want - got, b->refs_cap - b->nrefs);
		uint32_t n = span_take(s, room, b->refs + b->nrefs);
		b->nrefs += n;
		got += n;
		/* A listed span has a free object, so n > 0; should the bitmap
		 * and nout ever disagree, unlist the span rather than spin. */
		if (s->nout == s->objects || n == 0)
			span_list_remove(l, s);
	}
	return got;
}

/* Takes up to want objects from a fresh span: as one run if the batch has
 * room for a run, else as refs.  The rest of the span joins the partial
 * list.  The count, or a negative errno. */
static int take_fresh(struct heap *h, unsigned cls, uint32_t want, struct heap_batch *b)
{
	struct span *s;
	int rc = new_span(h, cls, &s);
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
		span_list_push(&h->partial[cls], s);
	return (int)n;
}

int heap_refill(struct heap *h, unsigned cls, uint32_t want, struct heap_batch *batch)
{
	if (cls >= SIZECLASS_COUNT || want == 0)
		return -EINVAL;
	batch->nrefs = batch->nruns = 0;
	uint32_t got = take_partial(h, cls, want, batch);
	int err = 0;
	while (got < want && err == 0) {
		if (batch->nrefs >= batch->refs_cap && batch->nruns >= batch->runs_cap)
			break;
		int n = take_fresh(h, cls, want - got, batch);
		if (n < 0)
			err = n;
		else
			got += (uint32_t)n;
	}
	if (got == 0)
		return err != 0 ? err : -EINVAL;
	h->counters[cls].refills++;
	h->counters[cls].objects_out += got;
	h->in_use += (uint64_t)got * sizeclass_table[cls].size;
	if (h->in_use > h->peak)
		h->peak = h->in_use;
	return (int)got;
}

/* ---- free ---- */

static int locate(const struct heap *h, uint64_t ref, struct span **s, uint32_t *idx)
{
	if (ref_kind(ref) != REF_ARENA || ref_id(ref) >= h->narenas)
		return -EINVAL;
	return span_locate(h->arenas[ref_id(ref)], ref_offset(ref), s, idx);
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

int heap_free_object(struct heap *h, uint64_t ref, unsigned *cls)
{
	struct span *s;
	uint32_t idx;
	int rc = locate(h, ref, &s, &idx);
	if (rc == 0)
		rc = span_put(s, idx);
	if (rc < 0)
		return rc;
	unsigned c = s->cls;
	h->counters[c].objects_out--;
	h->counters[c].flushes++;
	h->in_use -= s->size;
	if (cls != NULL)
		*cls = c;
	if (s->nout == 0)
		release_span(h, s);
	else if (!s->listed)
		span_list_push(&h->partial[c], s);
	return 0;
}

void *heap_object_address(struct heap *h, uint64_t ref)
{
	int rc = heap_object_class(h, ref);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	return (char *)h->arenas[ref_id(ref)]->base + ref_offset(ref);
}

/* ---- large blocks ---- */

int heap_alloc_large(struct heap *h, uint64_t size, uint64_t *ref, uint64_t *seg_size)
{
	uint32_t id;
	if (size == 0 || size > REF_OFFSET_MASK + 1)
		return -EINVAL;
	uint64_t rounded = (size + SHMA_PAGE_SIZE - 1) & ~(uint64_t)(SHMA_PAGE_SIZE - 1);
	if (!within_cap(h, rounded))
		return -ENOMEM;
	uint64_t got;
	int rc = large_set_alloc(h->large, h->instance, h->cfg.mode, rounded, &id, &got);
	if (rc < 0)
		return rc;
	*ref = ref_make(REF_LARGE, id, 0);
	*seg_size = got;
	h->in_use += got;
	if (h->in_use > h->peak)
		h->peak = h->in_use;
	return 0;
}

int heap_free_large(struct heap *h, uint64_t ref, uint64_t *size)
{
	uint64_t sz;
	if (ref_kind(ref) != REF_LARGE || ref_offset(ref) != 0)
		return -EINVAL;
	int rc = large_set_free(h->large, h->instance, ref_id(ref), &sz, heap_now_ms());
	if (rc < 0)
		return rc;
	h->in_use -= sz;
	if (size != NULL)
		*size = sz;
	return 0;
}

uint64_t heap_large_size(const struct heap *h, uint64_t ref)
{
	if (ref_kind(ref) != REF_LARGE)
		return 0;
	uint64_t size = large_set_size(h->large, ref_id(ref));
	return ref_offset(ref) < size ? size : 0;
}

/* ---- decay ---- */

uint64_t heap_decay(struct heap *h, uint64_t now_ms)
{
	struct pageheap_decayed d;
	uint64_t bytes = 0;
	while (pageheap_decay_next(h->ph, now_ms, h->cfg.decay_ms, &d)) {
		int rc = seg_punch(h->arenas[d.region]->fd, arena_page_offset(d.start),
				   arena_page_offset(d.npages));
		if (rc == 0)
			bytes += arena_page_offset(d.backed_pages);
	}
	bytes += large_set_release_kept(h->large, h->instance, now_ms, h->cfg.decay_ms);
	h->returned += bytes;
	return bytes;
}

/* ---- counters ---- */

static uint64_t arena_resident(const struct arena *a)
{
	int64_t r = seg_resident(a->fd);
	return r > 0 ? (uint64_t)r : 0;
}

void heap_totals(const struct heap *h, struct heap_totals *t)
{
	memset(t, 0, sizeof *t);
	t->mapped_bytes = mapped_bytes(h);
	for (uint32_t i = 0; i < h->narenas; i++)
		t->resident_bytes += arena_resident(h->arenas[i]);
	/* Large blocks are reserved whole until freed. */
	t->resident_bytes += large_set_bytes(h->large) + large_set_kept_bytes(h->large);
	t->in_use_bytes = h->in_use;
	t->peak_in_use_bytes = h->peak;
	t->returned_bytes = h->returned;
	t->large_count = large_set_count(h->large);
	t->large_bytes = large_set_bytes(h->large);
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
	s->resident_bytes = arena_resident(a);
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

uint32_t heap_max_arenas(const struct heap *h)
{
	return h->max_arenas;
}

/* ---- recovery ----
 *
 * Why the state a daemon killed at any instant leaves is one we accept:
 *
 * - An arena's header is written last, magic last of all, after its
 *   metadata pages are reserved and marked PAGE_META; the next arena is
 *   created only after it.  So only the last arena may lack its magic (or its
 *   size), and nothing in it was handed out: it is removed.
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
 * - Backing store is reserved before the pages become a span; free pages may
 *   hold some, so every free stretch is punched here.
 * - A large block's segment is created at its full size and reserved before
 *   its ref goes out, and unlinked before it is punched: a segment of size 0
 *   was never handed out, any other is a live block (or a block in flight).
 */

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
		pageheap_free(h->ph, r, heap_now_ms());
		return -ENOMEM;
	}
	h->counters[cls].spans++;
	if (s->nout == 0) {
		release_span(h, s);
		return 0;
	}
	h->rec.spans++;
	h->rec.objects_out += s->nout;
	h->counters[cls].objects_out += s->nout;
	h->in_use += (uint64_t)s->nout * s->size;
	if (s->nout < s->objects)
		span_list_push(&h->partial[cls], s);
	return 0;
}

static void punch_free(struct arena *a, uint32_t from, uint32_t to)
{
	if (to > from)
		seg_punch(a->fd, arena_page_offset(from), arena_page_offset(to - from));
}

/* Rebuilds the page heap region and the spans of arena a from its page map. */
static int rebuild_arena(struct heap *h, struct arena *a)
{
	int rc = pageheap_add_region(h->ph, a->id, h->g.npages, h->g.meta_pages);
	if (rc < 0)
		return rc;
	for (uint32_t p = 0; p < h->g.meta_pages; p++)
		if (a->page_map[p].kind != PAGE_META)
			return say(h, "arena a%u: metadata page %u not marked so", a->id, p), -EINVAL;
	uint32_t p = h->g.meta_pages, free_from = p;
	while (p < h->g.npages) {
		struct page_entry *pe = &a->page_map[p];
		if (pe->kind == PAGE_SPAN && pe->span_start == p && pe->cls < SIZECLASS_COUNT &&
		    span_whole(a, p, pe->cls)) {
			punch_free(a, free_from, p);
			rc = adopt_span(h, a, p, pe->cls);
			if (rc < 0)
				return rc;
			p += sizeclass_table[pe->cls].span_pages;
			free_from = p;
			continue;
		}
		if (pe->kind == PAGE_SPAN) {
			/* A span cut short: its bitmap is clear (see above). */
			__atomic_store_n(&pe->kind, PAGE_FREE, __ATOMIC_RELEASE);
			h->rec.repaired_pages++;
		} else if (pe->kind != PAGE_FREE) {
			return say(h, "arena a%u: page %u of unknown kind %u", a->id, p,
				   pe->kind), -EINVAL;
		}
		p++;
	}
	punch_free(a, free_from, p);
	return 0;
}

/* 1 if arena id exists and is ours (a file someone else made under the
 * name is not an arena). */
static int arena_exists(const struct heap *h, uint32_t id)
{
	char name[SEG_NAME_MAX];
	if (seg_name(name, sizeof name, h->instance, 'a', id) < 0)
		return 0;
	int fd = seg_adopt(name, h->cfg.mode, NULL);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Opens arena id if it exists: 1 if it did, 0 if not, or -errno. */
static int recover_arena(struct heap *h, uint32_t id)
{
	struct arena *a;
	const char *why = "?";
	int rc = arena_open(&a, h->instance, id, &h->g, h->cfg.mode, &why);
	/* Ours were made in order, so a name taken by someone else past arena 0
	 * is where ours end. */
	if (rc == -ENOENT || (rc == -EPERM && id > 0))
		return 0;
	if (rc == -EAGAIN && !arena_exists(h, id + 1)) {
		char name[SEG_NAME_MAX];
		if (seg_name(name, sizeof name, h->instance, 'a', id) == 0)
			seg_unlink(name);
		return 0;
	}
	if (rc == -EBUSY)
		return rc;
	if (rc < 0)
		return say(h, "segment /shmalloc.%s.a%u: %s", h->instance, id, why), rc;
	rc = grow_arena_array(h);
	if (rc < 0) {
		arena_destroy(a, h->instance, 0);
		return rc;
	}
	h->arenas[h->narenas++] = a;
	rc = rebuild_arena(h, a);
	return rc < 0 ? rc : 1;
}

static int recover(struct heap *h)
{
	int rc = 1;
	for (uint32_t id = 0; rc == 1 && id < h->max_arenas; id++)
		rc = recover_arena(h, id);
	if (rc < 0)
		return rc;
	if (rc == 1 && arena_exists(h, h->max_arenas))
		return say(h, "segment /shmalloc.%s.a%u lies past --max-memory", h->instance,
			   h->max_arenas), -EINVAL;
	h->rec.arenas = h->narenas;
	rc = large_set_recover(h->large, h->instance, h->cfg.mode);
	if (rc < 0)
		return rc;
	h->rec.large_blocks = (uint64_t)rc;
	h->in_use += large_set_bytes(h->large);
	h->peak = h->in_use;
	return 0;
}

void heap_recovery(const struct heap *h, struct heap_recovery *r)
{
	*r = h->rec;
}
