/* SPDX-License-Identifier: MIT */
/*
 * Refills in flight: see inflight.h.  A set is a table (shm/table.h) keyed
 * by slot and class, in the daemon's private memory; each value is one
 * malloc'd record holding the refill's id, refs and runs.  Layer: session
 * (no libuv).
 */
#include "inflight.h"

#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "table.h"

struct record {
	uint64_t id;
	uint32_t nrefs, nruns;
	uint64_t *refs;        /* in the same block, after the record */
	struct heap_run *runs; /* likewise, after the refs */
};

struct inflight_set {
	struct table t; /* key: slot * SIZECLASS_COUNT + cls + 1; value: a record */
};

/* The key of the large-block record: past every slot and class. */
#define LARGE_KEY (SHMA_CONTROL_SLOTS * SIZECLASS_COUNT + 1)

static void *set_alloc(size_t bytes, void *ctx)
{
	(void)ctx;
	return calloc(1, bytes);
}

static void set_free(void *p, size_t bytes, void *ctx)
{
	(void)bytes;
	(void)ctx;
	free(p);
}

static struct record *record_of(const struct table_entry *e)
{
	return (struct record *)(uintptr_t)e->value;
}

static struct record *record_new(uint64_t id, const uint64_t *refs, uint32_t nrefs,
				 const struct heap_run *runs, uint32_t nruns)
{
	struct record *r = malloc(sizeof *r + nrefs * sizeof *refs + nruns * sizeof *runs);
	if (r == NULL)
		return NULL;
	r->id = id;
	r->nrefs = nrefs;
	r->nruns = nruns;
	r->refs = (uint64_t *)(r + 1);
	r->runs = (struct heap_run *)(r->refs + nrefs);
	if (nrefs)
		memcpy(r->refs, refs, nrefs * sizeof *refs);
	if (nruns)
		memcpy(r->runs, runs, nruns * sizeof *runs);
	return r;
}

/* Puts r under key, replacing (and freeing) what was there; memory trouble
 * only loses the record. */
static void remember(struct inflight_set **set, uint32_t key, struct record *r)
{
	if (r == NULL)
		return;
	if (*set == NULL && (*set = calloc(1, sizeof **set)) != NULL)
		table_init_growing(&(*set)->t, set_alloc, set_free, NULL);
	struct table_entry *e = *set ? table_insert(&(*set)->t, key, NULL) : NULL;
	if (e == NULL) {
		free(r);
		return;
	}
	free(record_of(e));
	e->value = (uintptr_t)r;
}

void inflight_note(struct inflight_set **set, uint32_t slot, uint32_t cls, uint64_t req_id,
		   const struct heap_batch *b)
{
	if (slot >= SHMA_CONTROL_SLOTS || cls >= SIZECLASS_COUNT)
		return;
	remember(set, slot * SIZECLASS_COUNT + cls + 1,
		 record_new(req_id, b->refs, b->nrefs, b->runs, b->nruns));
}

void inflight_note_large(struct inflight_set **set, uint64_t req_id, uint64_t ref)
{
	remember(set, LARGE_KEY, record_new(req_id, &ref, 1, NULL, 0));
}

/* nslots: the slots of ctl that may be read; a refill for a slot past them
 * (one the client named but never reserved) was not collected. */
static int collected(uint64_t key, const struct record *r, const struct control_block *ctl,
		     uint32_t nslots)
{
	if (ctl == NULL)
		return 0;
	if (key == LARGE_KEY)
		return __atomic_load_n(&ctl->hdr.large_collected, __ATOMIC_ACQUIRE) >= r->id;
	uint32_t slot = (uint32_t)(key - 1) / SIZECLASS_COUNT;
	uint32_t cls = (uint32_t)(key - 1) % SIZECLASS_COUNT;
	if (slot >= nslots)
		return 0;
	uint64_t mark = __atomic_load_n(&ctl->slots[slot].bins[cls].collected, __ATOMIC_ACQUIRE);
	/* A process's request ids only grow, across its connections too. */
	return mark != 0 && mark >= r->id;
}

static uint64_t take_back(uint64_t key, const struct record *r, struct heap *h)
{
	uint64_t back = 0;
	if (key == LARGE_KEY) {
		for (uint32_t i = 0; i < r->nrefs; i++)
			back += heap_free_large(h, r->refs[i], NULL) == 0;
		return back;
	}
	for (uint32_t i = 0; i < r->nrefs; i++)
		back += heap_free_object(h, r->refs[i], NULL) == 0;
	for (uint32_t i = 0; i < r->nruns; i++) {
		int cls = heap_object_class(h, r->runs[i].first);
		uint64_t size = cls >= 0 ? sizeclass_size((unsigned)cls) : 0;
		for (uint32_t k = 0; size && k < r->runs[i].count; k++)
			back += heap_free_object(h, r->runs[i].first + k * size, NULL) == 0;
	}
	return back;
}

uint64_t inflight_settle(struct inflight_set **set, struct heap *h,
			 struct control_block *ctl)
{
	struct inflight_set *s = *set;
	uint64_t back = 0;
	if (s == NULL)
		return 0;
	uint32_t nslots = ctl ? layout_slots_readable(ctl) : 0;
	size_t i = 0;
	for (const struct table_entry *e; (e = table_next(&s->t, &i)) != NULL;)
		if (!collected(e->key, record_of(e), ctl, nslots))
			back += take_back(e->key, record_of(e), h);
	inflight_forget(set);
	return back;
}

void inflight_forget(struct inflight_set **set)
{
	struct inflight_set *s = *set;
	if (s == NULL)
		return;
	size_t i = 0;
	for (const struct table_entry *e; (e = table_next(&s->t, &i)) != NULL;)
		free(record_of(e));
	table_release(&s->t);
	free(s);
	*set = NULL;
}
