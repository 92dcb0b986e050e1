/* SPDX-License-Identifier: MIT */
/*
 * Roots: publish, look up, unpublish, every error a bad call gets, a full
 * directory, and a reopen (a daemon restart) that keeps every root.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "instance.h"
#include "ref.h"
#include "seg.h"
#include "roots.h"

static char inst[32];
static struct roots *r;

static void open_roots(void)
{
	test_instance(inst, sizeof inst);
	ck_assert_int_eq(roots_open(&r, inst, 0600), 0);
}

static void close_roots(void)
{
	roots_close(r, 1);
	ck_assert_int_eq(test_segments_left(inst), 0);
}

START_TEST(publish_lookup_unpublish)
{
	uint64_t ref = 0;
	uint64_t a = 4096 * 3, b = (UINT64_C(3) << 26) + 8192;
	open_roots();
	ck_assert_uint_eq(roots_count(r), 0);
	ck_assert_int_eq(roots_lookup(r, "queue", &ref), -ENOENT);
	ck_assert_int_eq(roots_publish(r, "queue", a), 0);
	ck_assert_int_eq(roots_publish(r, "table", b), 0);
	ck_assert_int_eq(roots_lookup(r, "queue", &ref), 0);
	ck_assert_uint_eq(ref, a);
	ck_assert_int_eq(roots_lookup(r, "table", &ref), 0);
	ck_assert_uint_eq(ref, b);
	ck_assert_int_eq(roots_lookup(r, "queu", &ref), -ENOENT);
	ck_assert_int_eq(roots_lookup(r, "queue2", &ref), -ENOENT);
	ck_assert_uint_eq(roots_count(r), 2);
	ck_assert_int_eq(roots_unpublish(r, "queue"), 0);
	ck_assert_int_eq(roots_unpublish(r, "queue"), -ENOENT);
	ck_assert_int_eq(roots_lookup(r, "queue", &ref), -ENOENT);
	ck_assert_uint_eq(roots_count(r), 1);
	/* A name unpublished may be published again, to another ref. */
	ck_assert_int_eq(roots_publish(r, "queue", b), 0);
	ck_assert_int_eq(roots_lookup(r, "queue", &ref), 0);
	ck_assert_uint_eq(ref, b);
	close_roots();
}
END_TEST

START_TEST(bad_calls_get_their_errors)
{
	char name[ROOT_NAME_MAX + 2];
	uint64_t ref;
	open_roots();
	ck_assert_int_eq(roots_publish(r, "", 1), -EINVAL);
	ck_assert_int_eq(roots_publish(r, NULL, 1), -EINVAL);
	ck_assert_int_eq(roots_publish(r, "x", 0), -EINVAL);
	memset(name, 'n', sizeof name);
	name[ROOT_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(roots_publish(r, name, 1), -ENAMETOOLONG);
	ck_assert_int_eq(roots_lookup(r, name, &ref), -ENAMETOOLONG);
	ck_assert_int_eq(roots_unpublish(r, name), -ENAMETOOLONG);
	name[ROOT_NAME_MAX] = '\0'; /* exactly the longest */
	ck_assert_int_eq(roots_publish(r, name, 7), 0);
	ck_assert_int_eq(roots_publish(r, name, 8), -EEXIST);
	ck_assert_int_eq(roots_lookup(r, name, &ref), 0);
	ck_assert_uint_eq(ref, 7);
	ck_assert_int_eq(roots_lookup(r, "", &ref), -EINVAL);
	ck_assert_int_eq(roots_unpublish(r, ""), -EINVAL);
	/* The directory keeps the wire's rule for names itself (shm/rootname.h):
	 * a control byte or broken UTF-8 never reaches the segment. */
	ck_assert_int_eq(roots_publish(r, "a\nb", 1), -EINVAL);
	ck_assert_int_eq(roots_publish(r, "\xc0\xaf", 1), -EINVAL);
	ck_assert_int_eq(roots_lookup(r, "a\x1b", &ref), -EINVAL);
	ck_assert_int_eq(roots_publish(r, "caf\xc3\xa9", 9), 0);
	close_roots();
}
END_TEST

START_TEST(reopen_keeps_roots)
{
	char name[32];
	uint64_t ref;
	open_roots();
	for (unsigned i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "root-%u", i);
		ck_assert_int_eq(roots_publish(r, name, 1000 + i), 0);
	}
	for (unsigned i = 0; i < 100; i += 3) {
		snprintf(name, sizeof name, "root-%u", i);
		ck_assert_int_eq(roots_unpublish(r, name), 0);
	}
	roots_close(r, 0);
	ck_assert_int_eq(test_segments_left(inst), 1);
	ck_assert_int_eq(roots_open(&r, inst, 0600), 0);
	ck_assert_uint_eq(roots_count(r), 66);
	for (unsigned i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "root-%u", i);
		int rc = roots_lookup(r, name, &ref);
		ck_assert_int_eq(rc, i % 3 == 0 ? -ENOENT : 0);
		if (rc == 0)
			ck_assert_uint_eq(ref, 1000 + i);
	}
	ck_assert_int_eq(roots_publish(r, "root-1", 5), -EEXIST);
	ck_assert_int_eq(roots_publish(r, "root-0", 5), 0);
	close_roots();
}
END_TEST

/* Planted bug: the publisher not written into the entry (or read back from
 * another field): a restarted daemon then counted every root on no one, and
 * four restarts x 1024 roots filled the instance (issue 21 case 6). */
START_TEST(reopen_keeps_publishers)
{
	uid_t owner;
	const char *name;
	uint64_t ref;
	open_roots();
	ck_assert_int_eq(roots_publish_as(r, "by-1000", 7, 1000), 0);
	ck_assert_int_eq(roots_publish_as(r, "by-root", 8, 0), 0);
	ck_assert_int_eq(roots_publish(r, "by-nobody", 9), 0);
	roots_close(r, 0);
	ck_assert_int_eq(roots_open(&r, inst, 0600), 0);
	ck_assert_uint_eq(roots_count(r), 3);
	unsigned seen = 0;
	for (unsigned i = 0; i < roots_count(r); i++) {
		ck_assert_int_eq(roots_get(r, i, &name, &ref), 0);
		int rc = roots_get_owner(r, i, &owner);
		if (strcmp(name, "by-1000") == 0)
			ck_assert(rc == 0 && owner == 1000 && (seen |= 1));
		else if (strcmp(name, "by-root") == 0)
			ck_assert(rc == 0 && owner == 0 && (seen |= 2));
		else
			ck_assert(rc == -ENOENT && (seen |= 4));
	}
	ck_assert_uint_eq(seen, 7);
	ck_assert_int_eq(roots_get_owner(r, 3, &owner), -ENOENT);
	close_roots();
}
END_TEST

START_TEST(foreign_segments_are_refused)
{
	char seg[SEG_NAME_MAX];
	struct roots *other;
	test_instance(inst, sizeof inst);
	ck_assert_int_eq(seg_name(seg, sizeof seg, inst, SEG_MANIFEST, 0), 0);
	/* Wrong size: not ours. */
	int fd = seg_create(seg, 4096, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(roots_open(&other, inst, 0600), -EINVAL);
	ck_assert_int_eq(seg_unlink(seg), 0);
	/* Right size, someone else's magic. */
	ck_assert_int_eq(roots_open(&r, inst, 0600), 0);
	roots_close(r, 0);
	fd = seg_open(seg, 1);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "garbage!", 8, 0), 8);
	close(fd);
	ck_assert_int_eq(roots_open(&other, inst, 0600), -EINVAL);
	ck_assert_int_eq(seg_unlink(seg), 0);
}
END_TEST

START_TEST(full_directory_is_enospc)
{
	char name[32];
	uint64_t ref;
	open_roots();
	ck_assert_uint_eq(roots_capacity(r), ROOTS_CAPACITY);
	for (unsigned i = 0; i < ROOTS_CAPACITY; i++) {
		snprintf(name, sizeof name, "r%u", i);
		ck_assert_int_eq(roots_publish(r, name, i + 1), 0);
	}
	ck_assert_int_eq(roots_publish(r, "one-more", 1), -ENOSPC);
	ck_assert_int_eq(roots_unpublish(r, "r17"), 0);
	ck_assert_int_eq(roots_publish(r, "one-more", 1), 0);
	ck_assert_int_eq(roots_lookup(r, "r4095", &ref), 0);
	ck_assert_uint_eq(ref, 4096);
	close_roots();
}
END_TEST

START_TEST(churn_keeps_lookups_right)
{
	/* Many publish/unpublish rounds leave tombstones in the index; it is
	 * rebuilt as they pile up, and every answer stays right. */
	char name[32];
	uint64_t ref;
	open_roots();
	for (unsigned round = 0; round < 20; round++) {
		for (unsigned i = 0; i < 1000; i++) {
			snprintf(name, sizeof name, "k%u.%u", round, i);
			ck_assert_int_eq(roots_publish(r, name, round * 1000 + i + 1), 0);
		}
		for (unsigned i = 0; i < 1000; i++) {
			snprintf(name, sizeof name, "k%u.%u", round, i);
			if (i % 10 != 0)
				ck_assert_int_eq(roots_unpublish(r, name), 0);
		}
	}
	ck_assert_uint_eq(roots_count(r), 20 * 100);
	for (unsigned round = 0; round < 20; round++)
		for (unsigned i = 0; i < 1000; i += 7) {
			snprintf(name, sizeof name, "k%u.%u", round, i);
			int rc = roots_lookup(r, name, &ref);
			ck_assert_int_eq(rc, i % 10 == 0 ? 0 : -ENOENT);
		}
	close_roots();
}
END_TEST

START_TEST(get_lists_every_root)
{
	const char *name;
	uint64_t ref, seen = 0;
	char buf[32];
	open_roots();
	for (unsigned i = 0; i < 10; i++) {
		snprintf(buf, sizeof buf, "n%u", i);
		ck_assert_int_eq(roots_publish(r, buf, (uint64_t)1 << i), 0);
	}
	ck_assert_int_eq(roots_unpublish(r, "n3"), 0);
	ck_assert_uint_eq(roots_count(r), 9);
	for (unsigned i = 0; i < roots_count(r); i++) {
		ck_assert_int_eq(roots_get(r, i, &name, &ref), 0);
		ck_assert_int_eq(name[0], 'n');
		ck_assert_uint_eq(ref, (uint64_t)1 << (name[1] - '0'));
		seen |= ref;
	}
	ck_assert_uint_eq(seen, 0x3ff & ~(1u << 3));
	ck_assert_int_eq(roots_get(r, 9, &name, &ref), -ENOENT);
	close_roots();
}
END_TEST

Suite *make_roots_suite(void);
Suite *make_roots_suite(void)
{
	Suite *s = suite_create("roots");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, publish_lookup_unpublish);
	tcase_add_test(tc, bad_calls_get_their_errors);
	tcase_add_test(tc, reopen_keeps_roots);
	tcase_add_test(tc, reopen_keeps_publishers);
	tcase_add_test(tc, foreign_segments_are_refused);
	tcase_add_test(tc, full_directory_is_enospc);
	tcase_add_test(tc, churn_keeps_lookups_right);
	tcase_add_test(tc, get_lists_every_root);
	suite_add_tcase(s, tc);
	return s;
}
