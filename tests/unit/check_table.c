/* SPDX-License-Identifier: MIT */
/*
 * The open-addressing table (shm/table.h): finds what was put and nothing
 * else, across collisions, wrap-around and removals in the middle of a
 * cluster; a fixed table refuses past its room, a growing one grows and
 * gives every byte back; a custom hash and match find keys by what they
 * stand for.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

/* ---- an allocator that counts, and can refuse ---- */

struct counting {
	size_t allocs, frees, live_bytes;
	int refuse;
};

static void *count_alloc(size_t bytes, void *ctx)
{
	struct counting *c = ctx;
	if (c->refuse)
		return NULL;
	c->allocs++;
	c->live_bytes += bytes;
	return calloc(1, bytes);
}

static void count_free(void *p, size_t bytes, void *ctx)
{
	struct counting *c = ctx;
	c->frees++;
	c->live_bytes -= bytes;
	free(p);
}

/* Every key hashes alike: one long cluster, the worst case. */
static uint64_t same_hash(uint64_t key, const void *ctx)
{
	(void)key;
	(void)ctx;
	return 42;
}

START_TEST(finds_what_was_put)
{
	struct table_entry mem[64] = {{0}};
	struct table t;
	table_init(&t, mem, 64);
	ck_assert_ptr_null(table_find(&t, 7));
	int added;
	struct table_entry *e = table_insert(&t, 7, &added);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(added, 1);
	ck_assert_uint_eq(e->value, 0);
	e->value = 700;
	ck_assert_ptr_eq(table_insert(&t, 7, &added), e);
	ck_assert_int_eq(added, 0);
	ck_assert_uint_eq(table_find(&t, 7)->value, 700);
	ck_assert_ptr_null(table_find(&t, 8));
	ck_assert_uint_eq(t.used, 1);
	ck_assert_int_eq(table_remove(&t, 7), 0);
	ck_assert_int_eq(table_remove(&t, 7), -ENOENT);
	ck_assert_ptr_null(table_find(&t, 7));
	ck_assert_uint_eq(t.used, 0);
}
END_TEST

START_TEST(key_zero_is_never_a_key)
{
	struct table_entry mem[8] = {{0}};
	struct table t;
	table_init(&t, mem, 8);
	ck_assert_ptr_null(table_insert(&t, 0, NULL));
	ck_assert_ptr_null(table_find(&t, 0));
	ck_assert_int_eq(table_remove(&t, 0), -ENOENT);
	ck_assert_uint_eq(t.used, 0);
}
END_TEST

START_TEST(a_fixed_table_keeps_one_entry_empty)
{
	struct table_entry mem[8] = {{0}};
	struct table t;
	table_init(&t, mem, 8);
	for (uint64_t k = 1; k <= 7; k++)
		ck_assert_ptr_nonnull(table_insert(&t, k * 1000, NULL));
	ck_assert_ptr_null(table_insert(&t, 99, NULL)); /* full */
	ck_assert_ptr_null(table_find(&t, 99));          /* and a miss still ends */
	for (uint64_t k = 1; k <= 7; k++)
		ck_assert_ptr_nonnull(table_find(&t, k * 1000));
	ck_assert_ptr_nonnull(table_insert(&t, 1000, NULL)); /* present: found, not added */
	ck_assert_int_eq(table_remove(&t, 3000), 0);
	ck_assert_ptr_nonnull(table_insert(&t, 99, NULL));
}
END_TEST

START_TEST(removal_in_a_cluster_keeps_the_rest_reachable)
{
	struct table_entry mem[16] = {{0}};
	struct table t;
	table_init(&t, mem, 16);
	table_set_hash(&t, same_hash, NULL);
	/* One cluster of 10 that wraps past the end of the array. */
	for (uint64_t k = 1; k <= 10; k++)
		table_insert(&t, k, NULL)->value = k * 10;
	for (uint64_t gone = 1; gone <= 10; gone += 3) {
		ck_assert_int_eq(table_remove(&t, gone), 0);
		for (uint64_t k = 1; k <= 10; k++) {
			int removed = k <= gone && (k - 1) % 3 == 0;
			struct table_entry *e = table_find(&t, k);
			if (removed)
				ck_assert_ptr_null(e);
			else
				ck_assert_msg(e && e->value == k * 10, "key %llu lost after %llu",
					      (unsigned long long)k, (unsigned long long)gone);
		}
	}
	ck_assert_uint_eq(t.used, 6);
}
END_TEST

/* Random churn against a plain array: what the table says is always true. */
START_TEST(churn_matches_a_model)
{
	enum { KEYS = 200, OPS = 20000 };
	static uint64_t model[KEYS + 1]; /* value + 1 of key k, 0: absent */
	memset(model, 0, sizeof model);
	struct table_entry mem[256] = {{0}};
	struct table t;
	table_init(&t, mem, 256);
	srand(12345);
	size_t present = 0;
	for (int op = 0; op < OPS; op++) {
		/* Keys 1..KEYS, multiplied so that they collide in the low bits. */
		uint64_t k = (uint64_t)(rand() % KEYS) + 1;
		uint64_t key = k << 20;
		if (rand() % 2) {
			struct table_entry *e = table_insert(&t, key, NULL);
			ck_assert_ptr_nonnull(e);
			present += model[k] == 0;
			e->value = (uint64_t)op;
			model[k] = (uint64_t)op + 1;
		} else {
			int rc = table_remove(&t, key);
			ck_assert_int_eq(rc, model[k] ? 0 : -ENOENT);
			present -= model[k] != 0;
			model[k] = 0;
		}
		if (op % 97 == 0)
			for (uint64_t j = 1; j <= KEYS; j++) {
				struct table_entry *e = table_find(&t, j << 20);
				ck_assert_int_eq(e != NULL, model[j] != 0);
				if (e)
					ck_assert_uint_eq(e->value + 1, model[j]);
			}
		ck_assert_uint_eq(t.used, present);
	}
}
END_TEST

START_TEST(a_growing_table_grows_and_gives_back)
{
	struct counting c = {0};
	struct table t;
	table_init_growing(&t, count_alloc, count_free, &c);
	ck_assert_ptr_null(table_find(&t, 1)); /* no memory yet */
	for (uint64_t k = 1; k <= 1000; k++)
		table_insert(&t, k * 16, NULL)->value = k;
	ck_assert_uint_eq(t.used, 1000);
	ck_assert_uint_ge(t.cap, 2000); /* at most half full */
	for (uint64_t k = 1; k <= 1000; k++)
		ck_assert_uint_eq(table_find(&t, k * 16)->value, k);
	ck_assert_uint_eq(c.allocs, c.frees + 1); /* only the current array is out */
	table_release(&t);
	ck_assert_uint_eq(c.allocs, c.frees);
	ck_assert_uint_eq(c.live_bytes, 0);
	ck_assert_uint_eq(t.cap, 0);
	ck_assert_ptr_null(table_find(&t, 16));
}
END_TEST

START_TEST(no_memory_means_no_insertion)
{
	struct counting c = {.refuse = 1};
	struct table t;
	table_init_growing(&t, count_alloc, count_free, &c);
	ck_assert_ptr_null(table_insert(&t, 5, NULL));
	c.refuse = 0;
	for (uint64_t k = 1; k <= 8; k++) /* 16 entries, half full */
		ck_assert_ptr_nonnull(table_insert(&t, k, NULL));
	c.refuse = 1;
	ck_assert_ptr_null(table_insert(&t, 9, NULL)); /* would grow: refused */
	for (uint64_t k = 1; k <= 8; k++)             /* and nothing was lost */
		ck_assert_ptr_nonnull(table_find(&t, k));
	ck_assert_ptr_nonnull(table_insert(&t, 3, NULL)); /* present: no room needed */
	table_release(&t);
	ck_assert_uint_eq(c.live_bytes, 0);
}
END_TEST

/* Keys are indexes into names; lookups are by name. */
static const char *const names[] = {"", "alpha", "beta", "gamma", "delta"};

static uint64_t name_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
	return h;
}

static uint64_t key_name_hash(uint64_t key, const void *ctx)
{
	const char *const *n = ctx;
	return name_hash(n[key]);
}

static int key_is_name(uint64_t key, const void *arg)
{
	return strcmp(names[key], arg) == 0;
}

START_TEST(custom_hash_finds_by_what_keys_stand_for)
{
	struct table_entry mem[8] = {{0}};
	struct table t;
	table_init(&t, mem, 8);
	table_set_hash(&t, key_name_hash, names);
	for (uint64_t k = 1; k <= 4; k++)
		table_insert(&t, k, NULL);
	for (uint64_t k = 1; k <= 4; k++) {
		struct table_entry *e = table_find_hashed(&t, name_hash(names[k]), key_is_name,
							  names[k]);
		ck_assert_ptr_nonnull(e);
		ck_assert_uint_eq(e->key, k);
	}
	ck_assert_ptr_null(table_find_hashed(&t, name_hash("epsilon"), key_is_name, "epsilon"));
	ck_assert_int_eq(table_remove(&t, 2), 0);
	ck_assert_ptr_null(table_find_hashed(&t, name_hash("beta"), key_is_name, "beta"));
	ck_assert_ptr_nonnull(table_find_hashed(&t, name_hash("delta"), key_is_name, "delta"));
}
END_TEST

START_TEST(iteration_sees_each_entry_once)
{
	struct table_entry mem[64] = {{0}};
	struct table t;
	table_init(&t, mem, 64);
	uint64_t sum = 0;
	for (uint64_t k = 1; k <= 20; k++) {
		table_insert(&t, k, NULL)->value = k;
		sum += k;
	}
	size_t i = 0, n = 0;
	for (struct table_entry *e; (e = table_next(&t, &i)) != NULL; n++)
		sum -= e->value;
	ck_assert_uint_eq(n, 20);
	ck_assert_uint_eq(sum, 0);
	table_clear(&t);
	ck_assert_uint_eq(t.used, 0);
	i = 0;
	ck_assert_ptr_null(table_next(&t, &i));
	ck_assert_ptr_null(table_find(&t, 5));
}
END_TEST

Suite *make_table_suite(void);
Suite *make_table_suite(void)
{
	Suite *s = suite_create("table");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, finds_what_was_put);
	tcase_add_test(tc, key_zero_is_never_a_key);
	tcase_add_test(tc, a_fixed_table_keeps_one_entry_empty);
	tcase_add_test(tc, removal_in_a_cluster_keeps_the_rest_reachable);
	tcase_add_test(tc, churn_matches_a_model);
	tcase_add_test(tc, a_growing_table_grows_and_gives_back);
	tcase_add_test(tc, no_memory_means_no_insertion);
	tcase_add_test(tc, custom_hash_finds_by_what_keys_stand_for);
	tcase_add_test(tc, iteration_sees_each_entry_once);
	suite_add_tcase(s, tc);
	return s;
}
