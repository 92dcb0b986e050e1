/* SPDX-License-Identifier: MIT */
/*
 * The open-addressing table: see table.h.
 */
#include "table.h"

#include <errno.h>
#include <string.h>

#define GROW_FROM 16u

static uint64_t key_hash(const struct table *t, uint64_t key)
{
	return t->hash ? t->hash(key, t->hash_ctx) : key;
}

/* Fibonacci hashing: the high bits of hash * 2^64/phi, so that keys alike
 * in their low bits (aligned pointers) spread. */
static size_t home(const struct table *t, uint64_t hash)
{
	unsigned bits = (unsigned)__builtin_ctzll((unsigned long long)t->cap);
	uint64_t h = hash * UINT64_C(0x9E3779B97F4A7C15);
	return bits ? (size_t)(h >> (64 - bits)) : 0;
}

static size_t next(const struct table *t, size_t i)
{
	return (i + 1) & (t->cap - 1);
}

void table_init(struct table *t, struct table_entry *mem, size_t cap)
{
	memset(t, 0, sizeof *t);
	t->e = mem;
	t->cap = cap;
}

void table_init_growing(struct table *t, table_alloc_fn *alloc, table_free_fn *release,
			void *ctx)
{
	memset(t, 0, sizeof *t);
	t->alloc = alloc;
	t->release = release;
	t->alloc_ctx = ctx;
}

void table_set_hash(struct table *t, table_hash_fn *hash, const void *ctx)
{
	t->hash = hash;
	t->hash_ctx = ctx;
}

struct table_entry *table_find_hashed(const struct table *t, uint64_t hash,
				      table_match_fn *match, const void *arg)
{
	if (t->cap == 0)
		return NULL;
	for (size_t i = home(t, hash);; i = next(t, i)) {
		if (t->e[i].key == 0)
			return NULL;
		if (match(t->e[i].key, arg))
			return &t->e[i];
	}
}

struct table_entry *table_find(const struct table *t, uint64_t key)
{
	if (t->cap == 0 || key == 0)
		return NULL;
	for (size_t i = home(t, key_hash(t, key));; i = next(t, i)) {
		if (t->e[i].key == key)
			return &t->e[i];
		if (t->e[i].key == 0)
			return NULL;
	}
}

/* Puts an entry whose key is not in the table into its first empty place. */
static struct table_entry *place(struct table *t, struct table_entry e)
{
	size_t i = home(t, key_hash(t, e.key));
	while (t->e[i].key != 0)
		i = next(t, i);
	t->e[i] = e;
	return &t->e[i];
}

static int grow(struct table *t)
{
	size_t ncap = t->cap ? t->cap * 2 : GROW_FROM;
	struct table_entry *n = t->alloc(ncap * sizeof *n, t->alloc_ctx);
	if (n == NULL)
		return -ENOMEM;
	struct table_entry *old = t->e;
	size_t ocap = t->cap;
	t->e = n;
	t->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key != 0)
			place(t, old[i]);
	if (old != NULL)
		t->release(old, ocap * sizeof *old, t->alloc_ctx);
	return 0;
}

/* Room for one more: under half full when the table grows, else one entry
 * left empty so that a probe always ends. */
static int room(struct table *t)
{
	if (t->alloc != NULL)
		return (t->used + 1) * 2 <= t->cap || grow(t) == 0;
	return t->used + 1 < t->cap;
}

struct table_entry *table_insert(struct table *t, uint64_t key, int *added)
{
	if (added != NULL)
		*added = 0;
	if (key == 0)
		return NULL;
	struct table_entry *e = table_find(t, key);
	if (e != NULL)
		return e;
	if (!room(t))
		return NULL;
	t->used++;
	if (added != NULL)
		*added = 1;
	return place(t, (struct table_entry){.key = key});
}

/* 1 if home h lies cyclically in (hole, i]: the entry at i may not move to
 * the hole, or a probe from h would no longer reach it. */
static int between(size_t hole, size_t h, size_t i)
{
	return hole <= i ? hole < h && h <= i : hole < h || h <= i;
}

void table_remove_entry(struct table *t, struct table_entry *e)
{
	size_t hole = (size_t)(e - t->e);
	t->e[hole].key = 0;
	t->e[hole].value = 0;
	t->used--;
	/* Backward shift: each entry after the hole that may move to it does,
	 * until an empty entry ends the cluster. */
	for (size_t i = next(t, hole); t->e[i].key != 0; i = next(t, i)) {
		size_t h = home(t, key_hash(t, t->e[i].key));
		if (between(hole, h, i))
			continue;
		t->e[hole] = t->e[i];
		t->e[i].key = 0;
		t->e[i].value = 0;
		hole = i;
	}
}

int table_remove(struct table *t, uint64_t key)
{
	struct table_entry *e = table_find(t, key);
	if (e == NULL)
		return -ENOENT;
	table_remove_entry(t, e);
	return 0;
}

struct table_entry *table_next(const struct table *t, size_t *i)
{
	for (; *i < t->cap; (*i)++)
		if (t->e[*i].key != 0)
			return &t->e[(*i)++];
	return NULL;
}

void table_clear(struct table *t)
{
	if (t->cap != 0)
		memset(t->e, 0, t->cap * sizeof *t->e);
	t->used = 0;
}

void table_release(struct table *t)
{
	if (t->alloc == NULL || t->e == NULL) {
		table_clear(t);
		return;
	}
	t->release(t->e, t->cap * sizeof *t->e, t->alloc_ctx);
	t->e = NULL;
	t->cap = 0;
	t->used = 0;
}
