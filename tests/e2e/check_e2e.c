/* SPDX-License-Identifier: MIT */
/*
 * End to end, the foundation: a real daemon, real client processes, and
 * every kind of bad input the framing can meet.
 */
#include "e2e.h"
#include "raw.h"
#include "frame.h"
#include "instance.h"
#include "seg.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(connect_and_stats)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_int_eq(shma_connect(e2e.socket), 0); /* again: a no-op */
	char *json = NULL;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	ck_assert_ptr_nonnull(strstr(json, e2e.instance));
	ck_assert_ptr_nonnull(strstr(json, "\"arenas\":[{\"id\":0,"));
	free(json);
}
END_TEST

struct shared_msg {
	shma_ref_t ref;
	char expect[64];
};

static int child_reads_and_answers(void *arg)
{
	struct shared_msg *m = arg;
	char *p = shma_ptr(m->ref);
	if (p == NULL)
		return 1;
	if (strcmp(p, m->expect) != 0)
		return 2;
	strcpy(p, "pong from the child");
	return 0;
}

START_TEST(ref_gives_same_bytes_in_another_process)
{
	char *p = shma_malloc(200);
	ck_assert_ptr_nonnull(p);
	strcpy(p, "ping from the parent");
	struct shared_msg m = {.ref = shma_ref(p)};
	strcpy(m.expect, p);
	ck_assert_uint_ne(m.ref, 0);
	ck_assert_ptr_eq(shma_ptr(m.ref), p);
	ck_assert_int_eq(e2e_wait(e2e_fork(child_reads_and_answers, &m)), 0);
	ck_assert_str_eq(p, "pong from the child");
	shma_free(p);
}
END_TEST

START_TEST(refs_that_name_nothing_give_null)
{
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	ck_assert_ptr_null(shma_ptr(0));
	/* Arena 4000 does not exist; kind 3 is not a segment kind. */
	ck_assert_ptr_null(shma_ptr(((uint64_t)1 << 62) | ((uint64_t)4000 << 40) | 65536));
	ck_assert_ptr_null(shma_ptr(((uint64_t)3 << 62) | 8192));
	ck_assert_ptr_null(shma_ptr(((uint64_t)2 << 62) | ((uint64_t)77 << 40)));
	int local;
	ck_assert_uint_eq(shma_ref(&local), 0);
	ck_assert_uint_eq(shma_ref(NULL), 0);
}
END_TEST

START_TEST(two_daemons_never_share_segments)
{
	struct e2e_daemon other;
	e2e_start_daemon(&other, NULL);
	ck_assert_str_ne(other.instance, e2e.instance);
	ck_assert_int_gt(test_segments_left(other.instance), 0);
	ck_assert_int_gt(test_segments_left(e2e.instance), 0);
	e2e_stop_daemon(&other);
	ck_assert_int_gt(test_segments_left(e2e.instance), 0);
	/* The names derived from two socket paths differ too. */
	char a[48], b[48];
	seg_instance_from_path("/tmp/x/one.sock", a, sizeof a);
	seg_instance_from_path("/tmp/x/two.sock", b, sizeof b);
	ck_assert_str_ne(a, b);
	ck_assert(seg_instance_valid(a));
}
END_TEST

/* ---- bad input ---- */

static void expect_error_and_close(int fd, int code)
{
	Shma__Response *r = raw_read(fd);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_int_eq(r->error->code, code);
	ck_assert_ptr_nonnull(r->error->message);
	shma__response__free_unpacked(r, NULL);
	ck_assert(raw_closed(fd));
	close(fd);
}

/* The daemon still serves a well-behaved client: the end of every bad-input
 * test. */
static void daemon_still_serves(void)
{
	int fd = raw_connect(e2e.socket);
	ck_assert_int_ge(fd, 0);
	raw_hello(fd, SHMA_PROTOCOL_VERSION, sizeclass_checksum());
	Shma__Response *r = raw_read(fd);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_HELLO);
	shma__response__free_unpacked(r, NULL);
	close(fd);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	void *p = shma_malloc(64);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
}

START_TEST(oversized_length_gets_error_and_close)
{
	int fd = raw_connect(e2e.socket);
	uint8_t hdr[4];
	frame_put_header(hdr, (1u << 20) + 1);
	raw_send_bytes(fd, hdr, 4);
	expect_error_and_close(fd, EMSGSIZE);
	daemon_still_serves();
}
END_TEST

START_TEST(zero_length_gets_error_and_close)
{
	int fd = raw_connect(e2e.socket);
	uint8_t hdr[4] = {0};
	raw_send_bytes(fd, hdr, 4);
	expect_error_and_close(fd, EPROTO);
	daemon_still_serves();
}
END_TEST

START_TEST(undecodable_bytes_get_error_and_close)
{
	int fd = raw_connect(e2e.socket);
	uint8_t junk[4 + 12] = {0};
	frame_put_header(junk, 12);
	memset(junk + 4, 0xff, 12);
	raw_send_bytes(fd, junk, sizeof junk);
	expect_error_and_close(fd, EPROTO);
	daemon_still_serves();
}
END_TEST

START_TEST(truncated_frame_then_hangup)
{
	int fd = raw_connect(e2e.socket);
	uint8_t part[4 + 3];
	frame_put_header(part, 100);
	memcpy(part + 4, "abc", 3);
	raw_send_bytes(fd, part, sizeof part);
	close(fd);
	daemon_still_serves();
}
END_TEST

START_TEST(request_before_hello_is_refused)
{
	int fd = raw_connect(e2e.socket);
	Shma__Request req;
	Shma__Stats st;
	wire_stats(&req, &st);
	req.id = 7;
	raw_send(fd, &req);
	expect_error_and_close(fd, EPROTO);
	daemon_still_serves();
}
END_TEST

START_TEST(version_mismatch_is_refused)
{
	int fd = raw_connect(e2e.socket);
	raw_hello(fd, SHMA_PROTOCOL_VERSION + 1, sizeclass_checksum());
	expect_error_and_close(fd, EPROTONOSUPPORT);
	fd = raw_connect(e2e.socket);
	raw_hello(fd, SHMA_PROTOCOL_VERSION, sizeclass_checksum() ^ 1);
	expect_error_and_close(fd, EPROTO);
	daemon_still_serves();
}
END_TEST

START_TEST(empty_request_is_refused)
{
	int fd = raw_connect(e2e.socket);
	raw_hello(fd, SHMA_PROTOCOL_VERSION, sizeclass_checksum());
	Shma__Response *r = raw_read(fd);
	shma__response__free_unpacked(r, NULL);
	uint8_t frame[4 + 2] = {0, 0, 0, 0, 0x08, 0x05}; /* id 5, no body */
	frame_put_header(frame, 2);
	raw_send_bytes(fd, frame, sizeof frame);
	expect_error_and_close(fd, EPROTO);
	daemon_still_serves();
}
END_TEST

START_TEST(unlisted_user_is_refused)
{
	struct e2e_daemon strict;
	const char *const extra[] = {"--allow-uid", "54321", NULL};
	e2e_start_daemon(&strict, extra);
	if (geteuid() == 0) {
		/* Root, not listed, is served as an observer (server/access.c):
		 * it may look, but every request that would change the heap is
		 * refused.  Another user refused at the door: the access suite. */
		ck_assert_int_eq(shma_connect(strict.socket), 0);
		errno = 0;
		ck_assert_ptr_null(shma_malloc(64));
		ck_assert_int_eq(errno, EACCES);
		ck_assert_int_eq(shma_publish("x", 64), -EACCES);
		shma_disconnect();
		e2e_stop_daemon(&strict);
		return;
	}
	int fd = raw_connect(strict.socket);
	ck_assert_int_ge(fd, 0);
	expect_error_and_close(fd, EACCES);
	ck_assert_int_eq(shma_connect(strict.socket), -EACCES);
	e2e_stop_daemon(&strict);
}
END_TEST

Suite *make_e2e_suite(void);
Suite *make_e2e_suite(void)
{
	Suite *s = suite_create("e2e");
	TCase *tc = tcase_create("foundation");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, connect_and_stats);
	tcase_add_test(tc, ref_gives_same_bytes_in_another_process);
	tcase_add_test(tc, refs_that_name_nothing_give_null);
	tcase_add_test(tc, two_daemons_never_share_segments);
	tcase_add_test(tc, oversized_length_gets_error_and_close);
	tcase_add_test(tc, zero_length_gets_error_and_close);
	tcase_add_test(tc, undecodable_bytes_get_error_and_close);
	tcase_add_test(tc, truncated_frame_then_hangup);
	tcase_add_test(tc, request_before_hello_is_refused);
	tcase_add_test(tc, version_mismatch_is_refused);
	tcase_add_test(tc, empty_request_is_refused);
	tcase_add_test(tc, unlisted_user_is_refused);
	suite_add_tcase(s, tc);
	return s;
}
