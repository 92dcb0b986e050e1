/* SPDX-License-Identifier: MIT */
/*
 * Limits per uid and per process (server/quota.c) alone: a daemon state with
 * no heap and no socket, clients made by hand as session.c makes them, and
 * each limit asserted at its edge -- the request that would cross it refused
 * with -EAGAIN, the one before it served, another user untouched, 0 lifting
 * it -- and the byte accounts of a process over several connections.  The
 * end-to-end suite (tests/e2e/check_quota.c) shows the same through a real
 * daemon; this one names the planted bug each test catches.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "quota.h"

static struct daemon d;

static void setup(void)
{
	memset(&d, 0, sizeof d);
}

static void teardown(void)
{
	quota_close(&d);
	ck_assert_ptr_null(d.accounts);
	ck_assert_ptr_null(d.root_owners);
}

static struct client client(uid_t uid, pid_t pid)
{
	struct client c;
	memset(&c, 0, sizeof c);
	c.uid = uid;
	c.pid = pid;
	return c;
}

/* Planted bug: `u->conns > limit` (one connection past the limit). */
START_TEST(connections_per_uid)
{
	d.opt.uid_max.connections = 2;
	struct client a = client(1000, 10), b = client(1000, 11), c = client(1000, 12);
	struct client other = client(2000, 20);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &b), 0);
	ck_assert_int_eq(quota_connect(&d, &c), -EAGAIN);
	ck_assert_ptr_null(c.user); /* a refused client joins no account */
	ck_assert_int_eq(quota_connect(&d, &other), 0);
	quota_disconnect(&d, &c); /* safe on one quota_connect() refused */
	quota_disconnect(&d, &a);
	ck_assert_int_eq(quota_connect(&d, &c), 0); /* a slot came free */
	quota_disconnect(&d, &b);
	quota_disconnect(&d, &c);
	quota_disconnect(&d, &other);
	d.opt.uid_max.connections = 0; /* no limit */
	struct client many[8];
	for (int i = 0; i < 8; i++) {
		many[i] = client(1000, 30);
		ck_assert_int_eq(quota_connect(&d, &many[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		quota_disconnect(&d, &many[i]);
}
END_TEST

/* Planted bug: quota_room() reading the connection's bytes (c->bytes_held)
 * instead of its process's, so that two connections double the cap. */
START_TEST(client_max_memory_spans_a_process)
{
	d.opt.client_max_memory = 1000;
	struct client a = client(1000, 10), b = client(1000, 10), c = client(1000, 11);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &b), 0);
	ck_assert_int_eq(quota_connect(&d, &c), 0);
	ck_assert_uint_eq(quota_room(&d, &a, 100), 10);
	quota_held(&a, 600);
	ck_assert_uint_eq(quota_room(&d, &b, 100), 4); /* b's process holds 600 */
	ck_assert_uint_eq(quota_room(&d, &c, 100), 10); /* another process */
	quota_held(&b, 400);
	ck_assert_uint_eq(quota_room(&d, &a, 1), 0);
	ck_assert_uint_eq(quota_room(&d, &b, 1), 0);
	/* b gives back more than it took (a block a took, freed through b): b's
	 * count stops at zero, its process's goes down by all of it. */
	quota_held(&b, -500);
	ck_assert_uint_eq(b.bytes_held, 0);
	ck_assert_uint_eq(quota_room(&d, &a, 100), 5);
	/* A connection that ends leaves its bytes on its process (issue 21
	 * case 5). */
	quota_disconnect(&d, &a);
	ck_assert_uint_eq(quota_room(&d, &b, 100), 5);
	quota_disconnect(&d, &b);
	quota_disconnect(&d, &c);
	d.opt.client_max_memory = 0;
	ck_assert_uint_eq(quota_room(&d, &c, 100), UINT64_MAX);
}
END_TEST

/* Planted bug: quota_disconnect() taking the connection's bytes off its
 * process (as before issue 21 case 5: a new connection each time one
 * reached the cap), or quota_sweep() dropping the account of a live process
 * (or keeping a dead one's: a recycled pid would inherit its bytes). */
START_TEST(a_process_keeps_its_bytes_across_connections_while_it_lives)
{
	d.opt.client_max_memory = 1000;
	pid_t self = getpid(), dead = fork();
	ck_assert_int_ge(dead, 0);
	if (dead == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
	struct client a = client(1000, self), b = client(1000, dead);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &b), 0);
	quota_held(&a, 1000);
	quota_held(&b, 1000);
	quota_disconnect(&d, &a);
	quota_disconnect(&d, &b);
	ck_assert_uint_eq(quota_sweep(&d), 1); /* the dead one's */
	struct client a2 = client(1000, self), b2 = client(1000, dead);
	ck_assert_int_eq(quota_connect(&d, &a2), 0);
	ck_assert_int_eq(quota_connect(&d, &b2), 0);
	ck_assert_uint_eq(quota_room(&d, &a2, 1), 0);   /* the same process: at its cap */
	ck_assert_uint_eq(quota_room(&d, &b2, 100), 10); /* a pid gone: a fresh account */
	quota_held(&a2, -1000); /* freed through the new connection */
	ck_assert_uint_eq(quota_room(&d, &a2, 100), 10);
	quota_disconnect(&d, &a2);
	quota_disconnect(&d, &b2);
	ck_assert_uint_eq(quota_sweep(&d), 0); /* nothing held: gone with its connection */
}
END_TEST

/* Planted bug: quota_buffers_full() comparing against the connection's
 * bytes instead of its uid's (64 connections then hold 64 caps), or
 * quota_disconnect() leaving a closed connection's buffers on its uid. */
START_TEST(buffers_per_uid)
{
	d.opt.uid_max.buffers = 1000;
	struct client a = client(1000, 10), b = client(1000, 11), other = client(2000, 20);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &b), 0);
	ck_assert_int_eq(quota_connect(&d, &other), 0);
	quota_buffer(&a, 600);
	ck_assert(!quota_buffers_full(&d, &b));
	quota_buffer(&b, 400);
	ck_assert(quota_buffers_full(&d, &a));
	ck_assert(quota_buffers_full(&d, &b));
	ck_assert(!quota_buffers_full(&d, &other));
	ck_assert(!quota_buffers_over(&d, &a));
	quota_buffer(&b, 1000);
	ck_assert(quota_buffers_over(&d, &a));
	quota_disconnect(&d, &b);
	ck_assert(!quota_buffers_full(&d, &a));
	quota_buffer(&a, -600);
	ck_assert_uint_eq(a.buffered, 0);
	d.opt.uid_max.buffers = 0;
	quota_buffer(&a, 1 << 30);
	ck_assert(!quota_buffers_full(&d, &a));
	quota_disconnect(&d, &a);
	quota_disconnect(&d, &other);
}
END_TEST

/* Planted bug: quota_large_give() not counting down (the limit then holds
 * the user to his first N blocks for ever), or counting below zero. */
START_TEST(large_blocks_per_uid)
{
	d.opt.uid_max.large = 2;
	struct client a = client(1000, 10), b = client(1000, 11), other = client(2000, 20);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &b), 0);
	ck_assert_int_eq(quota_connect(&d, &other), 0);
	ck_assert_int_eq(quota_large_take(&d, &a), 0);
	ck_assert_int_eq(quota_large_take(&d, &b), 0);
	ck_assert_int_eq(quota_large_take(&d, &a), -EAGAIN); /* the uid's, not a's */
	ck_assert_int_eq(quota_large_take(&d, &other), 0);
	quota_large_give(&b);
	ck_assert_int_eq(quota_large_take(&d, &a), 0);
	for (int i = 0; i < 5; i++)
		quota_large_give(&a); /* freed more than taken: stays at 0 */
	ck_assert_int_eq(quota_large_take(&d, &a), 0);
	ck_assert_int_eq(quota_large_take(&d, &a), 0);
	ck_assert_int_eq(quota_large_take(&d, &a), -EAGAIN);
	quota_disconnect(&d, &a);
	quota_disconnect(&d, &b);
	quota_disconnect(&d, &other);
}
END_TEST

/* Planted bug: an orphan of an earlier run ((uid_t)-1) counted against a
 * user, or quota_orphan(-1) leaving the count up. */
START_TEST(orphans_per_uid)
{
	d.opt.uid_max.orphans = 1;
	struct client a = client(1000, 10), other = client(2000, 20);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &other), 0);
	quota_orphan(&d, (uid_t)-1, 1);
	ck_assert_int_eq(quota_orphans_check(&d, &a), 0);
	quota_orphan(&d, 1000, 1);
	ck_assert_int_eq(quota_orphans_check(&d, &a), -EAGAIN);
	ck_assert_int_eq(quota_orphans_check(&d, &other), 0);
	quota_orphan(&d, 1000, -1);
	ck_assert_int_eq(quota_orphans_check(&d, &a), 0);
	quota_orphan(&d, 1000, 1);
	d.opt.uid_max.orphans = 0;
	ck_assert_int_eq(quota_orphans_check(&d, &a), 0);
	quota_disconnect(&d, &a);
	quota_disconnect(&d, &other);
}
END_TEST

/* Planted bug: quota_root_gone() forgetting the root without counting its
 * publisher's uid down (the user then stays at his limit for ever), or
 * counting down another uid's. */
START_TEST(roots_per_publisher)
{
	d.opt.uid_max.roots = 1;
	struct client a = client(1000, 10), other = client(2000, 20);
	ck_assert_int_eq(quota_connect(&d, &a), 0);
	ck_assert_int_eq(quota_connect(&d, &other), 0);
	ck_assert_int_eq(quota_root_check(&d, &a), 0);
	quota_root_published(&d, &a, "a/one");
	ck_assert_int_eq(quota_root_check(&d, &a), -EAGAIN);
	ck_assert_int_eq(quota_root_check(&d, &other), 0);
	quota_root_published(&d, &other, "b/one");
	quota_root_gone(&d, "no/such"); /* nobody's: nothing moves */
	ck_assert_int_eq(quota_root_check(&d, &a), -EAGAIN);
	/* Unpublished by anyone: it leaves its publisher's count. */
	quota_root_gone(&d, "a/one");
	ck_assert_int_eq(quota_root_check(&d, &a), 0);
	ck_assert_int_eq(quota_root_check(&d, &other), -EAGAIN);
	quota_disconnect(&d, &a);
	quota_disconnect(&d, &other);
}
END_TEST

Suite *make_quota_unit_suite(void);
Suite *make_quota_unit_suite(void)
{
	Suite *s = suite_create("quota_unit");
	TCase *tc = tcase_create("quota_unit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, connections_per_uid);
	tcase_add_test(tc, client_max_memory_spans_a_process);
	tcase_add_test(tc, a_process_keeps_its_bytes_across_connections_while_it_lives);
	tcase_add_test(tc, buffers_per_uid);
	tcase_add_test(tc, large_blocks_per_uid);
	tcase_add_test(tc, orphans_per_uid);
	tcase_add_test(tc, roots_per_publisher);
	suite_add_tcase(s, tc);
	return s;
}
