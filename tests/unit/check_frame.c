/* SPDX-License-Identifier: MIT */
/*
 * Framing: whole frames, partial frames, and every length a hostile peer
 * might send.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"

START_TEST(whole_frame)
{
	uint8_t buf[16];
	frame_put_header(buf, 3);
	memcpy(buf + 4, "abc", 3);
	const uint8_t *body;
	uint32_t n;
	size_t used;
	ck_assert_int_eq(frame_next(buf, 7, 100, &body, &n, &used), FRAME_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(used, 7);
	ck_assert_mem_eq(body, "abc", 3);
}
END_TEST

START_TEST(partial_frames_need_more)
{
	uint8_t buf[16];
	frame_put_header(buf, 5);
	const uint8_t *body;
	uint32_t n;
	size_t used;
	for (size_t len = 0; len < 9; len++)
		ck_assert_int_eq(frame_next(buf, len, 100, &body, &n, &used),
				 FRAME_NEED_MORE);
}
END_TEST

START_TEST(length_is_little_endian)
{
	uint8_t buf[4] = {0x01, 0x02, 0x03, 0x00};
	uint8_t out[4];
	frame_put_header(out, 0x030201);
	ck_assert_mem_eq(buf, out, 4);
	const uint8_t *body;
	uint32_t n;
	size_t used;
	/* One byte over the limit is refused from the header alone. */
	ck_assert_int_eq(frame_next(buf, 4, 0x030200, &body, &n, &used), FRAME_TOO_BIG);
}
END_TEST

START_TEST(zero_and_oversized_lengths_are_errors)
{
	uint8_t buf[8] = {0};
	const uint8_t *body;
	uint32_t n;
	size_t used;
	ck_assert_int_eq(frame_next(buf, 8, 100, &body, &n, &used), FRAME_EMPTY);
	frame_put_header(buf, 101);
	ck_assert_int_eq(frame_next(buf, 8, 100, &body, &n, &used), FRAME_TOO_BIG);
	frame_put_header(buf, UINT32_MAX);
	ck_assert_int_eq(frame_next(buf, 8, UINT32_MAX - 1, &body, &n, &used),
			 FRAME_TOO_BIG);
	frame_put_header(buf, 100);
	ck_assert_int_eq(frame_next(buf, 8, 100, &body, &n, &used), FRAME_NEED_MORE);
	ck_assert_str_eq(frame_status_str(FRAME_TOO_BIG), "frame longer than the limit");
}
END_TEST

START_TEST(two_frames_back_to_back)
{
	uint8_t buf[16];
	frame_put_header(buf, 1);
	buf[4] = 'x';
	frame_put_header(buf + 5, 2);
	buf[9] = 'y';
	buf[10] = 'z';
	const uint8_t *body;
	uint32_t n;
	size_t used;
	ck_assert_int_eq(frame_next(buf, 11, 100, &body, &n, &used), FRAME_OK);
	ck_assert_uint_eq(used, 5);
	ck_assert_int_eq(frame_next(buf + used, 11 - used, 100, &body, &n, &used), FRAME_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_mem_eq(body, "yz", 2);
}
END_TEST

Suite *make_frame_suite(void);
Suite *make_frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, whole_frame);
	tcase_add_test(tc, partial_frames_need_more);
	tcase_add_test(tc, length_is_little_endian);
	tcase_add_test(tc, zero_and_oversized_lengths_are_errors);
	tcase_add_test(tc, two_frames_back_to_back);
	suite_add_tcase(s, tc);
	return s;
}
