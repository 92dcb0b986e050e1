/* SPDX-License-Identifier: MIT */
/*
 * Hostile input, end to end: a real daemon and peers that lie.
 *
 * Every field of every request is sent wrong in every way we could think
 * of -- refs outside any segment, of the wrong kind, misaligned, freed
 * twice; sizes of 0, 2^63 and just past the cap; size classes and counts
 * out of range; names empty, too long or with odd bytes -- and each must
 * get a clear Error (or a counted rejection) and exactly one log line,
 * while the connection and the daemon carry on.  Then the peers that do
 * not lie but misbehave: thousands of connections at once, the process out
 * of file descriptors, connections that never say Hello, a frame sent in
 * halves with a sleep between, a client that never reads its answers.
 * Every test ends by showing that a well-behaved client is still served.
 */
#include "e2e.h"
#include "raw.h"
#include "frame.h"
#include "instance.h"
#include "skip.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- refs ---- */

START_TEST(refs_outside_any_segment_are_rejected)
{
	int fd = raw_peer(e2e.socket);
	uint64_t bad[] = {
		0,                                  /* the null ref */
		ARENA | ((uint64_t)4000 << 40) | 65536, /* an arena that does not exist */
		ARENA | (((uint64_t)1 << 40) - 16), /* past the end of arena 0 */
		ARENA | 0,                          /* arena 0's header */
		ARENA | 8192,                       /* its page map */
		((uint64_t)3 << 62) | 65536,        /* kind 3: no such kind */
		LARGE | ((uint64_t)77 << 40),       /* a large block that does not exist */
		UINT64_MAX,
	};
	int before = raw_refusals_logged(&e2e);
	raw_flush(fd, bad, sizeof bad / sizeof bad[0], 0, sizeof bad / sizeof bad[0]);
	raw_expect_logged(&e2e, before + 1); /* one line for the whole flush */
	raw_stats_ok(fd);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(double_free_is_rejected_and_the_rest_taken)
{
	int fd = raw_peer(e2e.socket);
	uint64_t refs[8] = {0};
	ck_assert_uint_eq(raw_refill_refs(fd, 3, 8, refs), 8);
	int before = raw_refusals_logged(&e2e);
	raw_flush(fd, refs, 4, 4, 0);
	raw_flush(fd, refs, 4, 0, 4);       /* all four again */
	raw_flush(fd, refs + 2, 4, 2, 2);   /* two again, two fresh */
	raw_expect_logged(&e2e, before + 2);
	/* The objects freed twice were not handed out twice. */
	uint64_t again[64];
	size_t n = raw_refill_refs(fd, 3, 64, again);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			ck_assert_uint_ne(again[i], again[j]);
	raw_flush(fd, again, n, (uint32_t)n, 0);
	raw_flush(fd, refs + 6, 2, 2, 0);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(misaligned_refs_are_rejected)
{
	int fd = raw_peer(e2e.socket);
	uint64_t ref = 0;
	ck_assert_uint_eq(raw_refill_refs(fd, 10, 1, &ref), 1);
	uint64_t off[] = {ref + 1, ref + 8, ref + sizeclass_size(10) - 1, ref - 1};
	int before = raw_refusals_logged(&e2e);
	raw_flush(fd, off, 4, 0, 4);
	raw_expect_logged(&e2e, before + 1);
	raw_flush(fd, &ref, 1, 1, 0); /* still out: the right ref frees it */
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(refs_of_another_kind_are_refused)
{
	int fd = raw_peer(e2e.socket);
	uint64_t small = 0;
	ck_assert_uint_eq(raw_refill_refs(fd, 0, 1, &small), 1);
	Shma__Response *r = raw_alloc_large(fd, 300000);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ALLOC_LARGE);
	uint64_t large = r->alloc_large->ref;
	shma__response__free_unpacked(r, NULL);
	int before = raw_refusals_logged(&e2e);
	raw_expect_error(raw_free_large(fd, small), EINVAL);     /* a small object as large */
	raw_expect_error(raw_free_large(fd, large + 8192), EINVAL); /* inside the block */
	raw_expect_error(raw_free_large(fd, 0), EINVAL);
	raw_flush(fd, &large, 1, 0, 1);                      /* a large block as small */
	raw_expect_error(raw_publish(fd, "k3", ((uint64_t)3 << 62) | 8192), EINVAL);
	raw_expect_error(raw_publish(fd, "nothing", ARENA | ((uint64_t)9 << 40) | 65536), EINVAL);
	raw_expect_error(raw_publish(fd, "null", 0), EINVAL);
	raw_expect_error(raw_publish(fd, "no-large", LARGE | ((uint64_t)77 << 40)), EINVAL);
	raw_expect_error(raw_publish(fd, "past-large", large + ((uint64_t)1 << 30)), EINVAL);
	raw_expect_ok(raw_publish(fd, "inside-large", large + 4096));
	raw_expect_ok(raw_unpublish(fd, "inside-large"));
	raw_expect_logged(&e2e, before + 9);
	raw_expect_ok(raw_free_large(fd, large));
	raw_expect_error(raw_free_large(fd, large), EINVAL);     /* twice */
	raw_flush(fd, &small, 1, 1, 0);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

/* ---- sizes and counts ---- */

START_TEST(absurd_sizes_are_refused)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--arena-size", "1M", "--max-memory", "8M", NULL};
	e2e_start_daemon(&d, extra);
	int fd = raw_peer(d.socket);
	int before = raw_refusals_logged(&d);
	raw_expect_error(raw_alloc_large(fd, 0), EINVAL);
	raw_expect_error(raw_alloc_large(fd, (uint64_t)1 << 63), ENOMEM);
	raw_expect_error(raw_alloc_large(fd, UINT64_MAX), ENOMEM);
	raw_expect_error(raw_alloc_large(fd, (8u << 20) + 1), ENOMEM); /* just over --max-memory */
	raw_expect_logged(&d, before + 4);
	Shma__Response *r = raw_alloc_large(fd, 1u << 20); /* and a fair one still works */
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ALLOC_LARGE);
	raw_expect_ok(raw_free_large(fd, r->alloc_large->ref));
	shma__response__free_unpacked(r, NULL);
	close(fd);
	raw_still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(refill_class_and_count_out_of_range)
{
	int fd = raw_peer(e2e.socket);
	int before = raw_refusals_logged(&e2e);
	raw_expect_error(raw_refill(fd, SIZECLASS_COUNT, 1), EINVAL);
	raw_expect_error(raw_refill(fd, SIZECLASS_COUNT + 1, 1), EINVAL);
	raw_expect_error(raw_refill(fd, UINT32_MAX, 1), EINVAL);
	raw_expect_error(raw_refill(fd, 0, 0), EINVAL);
	raw_expect_logged(&e2e, before + 4);
	/* A huge count is capped, not refused, and not more than asked. */
	static uint64_t refs[1 << 16];
	size_t n = raw_refill_refs(fd, 0, UINT32_MAX, refs);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(n, 16384);
	raw_flush(fd, refs, n, (uint32_t)n, 0);
	/* Nor in bytes: the largest small class gives 4 MiB at most, not 2 GiB. */
	unsigned big = 0;
	while (big + 1 < SIZECLASS_COUNT && sizeclass_size(big) < (128u << 10))
		big++;
	n = raw_refill_refs(fd, big, UINT32_MAX, refs);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(n * sizeclass_size(big), 4u << 20);
	raw_flush(fd, refs, n, (uint32_t)n, 0);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

/* ---- names ---- */

START_TEST(bad_names_are_refused)
{
	int fd = raw_peer(e2e.socket);
	uint64_t ref = 0;
	ck_assert_uint_eq(raw_refill_refs(fd, 0, 1, &ref), 1);
	char longest[256], too_long[257];
	memset(longest, 'n', 255);
	longest[255] = '\0';
	memset(too_long, 'n', 256);
	too_long[256] = '\0';
	static const char *const odd[] = {"a\nb", "tab\there", "\x01", "del\x7f",
					  "bad utf-8 \xff", "cut \xc3", "esc \x1b[2J"};
	int before = raw_refusals_logged(&e2e);
	raw_expect_error(raw_publish(fd, "", ref), EINVAL);
	raw_expect_error(raw_publish(fd, too_long, ref), ENAMETOOLONG);
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
		raw_expect_error(raw_publish(fd, odd[i], ref), EINVAL);
	raw_expect_logged(&e2e, before + 2 + (int)(sizeof odd / sizeof odd[0]));
	raw_expect_error(raw_lookup(fd, ""), EINVAL);
	raw_expect_error(raw_lookup(fd, too_long), ENAMETOOLONG);
	raw_expect_error(raw_lookup(fd, "a\nb"), EINVAL);
	raw_expect_error(raw_unpublish(fd, ""), EINVAL);
	raw_expect_error(raw_unpublish(fd, "\x01"), EINVAL);
	/* The longest name, and one in UTF-8, are fine. */
	raw_expect_ok(raw_publish(fd, longest, ref));
	raw_expect_ok(raw_publish(fd, "caf\xc3\xa9", ref));
	Shma__Response *r = raw_lookup(fd, longest);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_LOOKUP);
	ck_assert_uint_eq(r->lookup->ref, ref);
	shma__response__free_unpacked(r, NULL);
	raw_expect_ok(raw_unpublish(fd, longest));
	raw_expect_ok(raw_unpublish(fd, "caf\xc3\xa9"));
	raw_flush(fd, &ref, 1, 1, 0);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(name_with_an_embedded_nul_is_refused)
{
	/* "ab\0cd": a string field of 5 bytes that C would read as "ab". */
	int fd = raw_peer(e2e.socket);
	uint8_t frame[] = {0, 0, 0, 0, 0x08, 0x7f,          /* id 127 */
			   0x42, 7, 0x0a, 5, 'a', 'b', 0, 'c', 'd'}; /* lookup { name } */
	frame_put_header(frame, sizeof frame - FRAME_HEADER);
	raw_send_bytes(fd, frame, sizeof frame);
	raw_expect_error(raw_read(fd), EINVAL);
	raw_stats_ok(fd);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(a_hello_name_cannot_forge_log_lines)
{
	int fd = raw_connect(e2e.socket);
	Shma__Request req;
	Shma__Hello h;
	wire_hello(&req, &h, "x\nshmallocd[1]: error: forged line\x1b[2J", 0);
	Shma__Response *r = raw_call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_HELLO);
	shma__response__free_unpacked(r, NULL);
	raw_stats_ok(fd);
	close(fd);
	ck_assert_int_eq(raw_log_lines(&e2e, "x?shmallocd[1]: error: forged line?[2J"), 1);
	FILE *f = fopen(e2e.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	while (fgets(line, sizeof line, f) != NULL)
		ck_assert_msg(strncmp(line, "shmallocd[1]", 12) != 0, "forged: %s", line);
	fclose(f);
}
END_TEST

/* ---- peers that misbehave ---- */

static void raise_fd_limit(rlim_t want)
{
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < want)
		rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Starts a daemon whose descriptor limit is soft:hard.  Lowering the hard
 * limit cannot be undone, so a helper process does it and starts the
 * daemon; we adopt the daemon as a subreaper, to wait for it as usual. */
static void start_limited_daemon(struct e2e_daemon *d, rlim_t soft, rlim_t hard)
{
	int p[2];
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid_t helper = fork();
	ck_assert_int_ge(helper, 0);
	if (helper == 0) {
		struct rlimit rl = {soft, hard};
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(1);
		e2e_start_daemon(d, NULL);
		_exit(write(p[1], d, sizeof *d) == (ssize_t)sizeof *d ? 0 : 1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], d, sizeof *d), (ssize_t)sizeof *d);
	close(p[0]);
	ck_assert_int_eq(e2e_wait(helper), 0);
}

START_TEST(a_flood_of_connections)
{
	/* Started with a soft limit of 256 descriptors, the daemon raises it:
	 * 1000 clients with control blocks take 2000. */
	enum { FLOOD = 2000 };
	struct e2e_daemon d;
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FLOOD * 2 + 512) {
		TEST_SKIP("a hard limit of %llu descriptors", (unsigned long long)rl.rlim_max);
		return;
	}
	start_limited_daemon(&d, 256, rl.rlim_max);
	raise_fd_limit(FLOOD + 256);
	static int fds[FLOOD];
	int n = 0;
	for (; n < FLOOD; n++) {
		fds[n] = raw_connect(d.socket);
		if (fds[n] < 0)
			break;
	}
	ck_assert_int_eq(n, FLOOD);
	/* Half of them say Hello: the daemon answers every one. */
	for (int i = 0; i < n; i += 2) {
		Shma__Request req;
		Shma__Hello h;
		wire_hello(&req, &h, NULL, 0);
		raw_send_next(fds[i], &req);
	}
	for (int i = 0; i < n; i += 2) {
		Shma__Response *r = raw_read(fds[i]);
		ck_assert_msg(r->body_case == SHMA__RESPONSE__BODY_HELLO, "hello %d: %s", i,
			      r->body_case == SHMA__RESPONSE__BODY_ERROR ? r->error->message : "?");
		shma__response__free_unpacked(r, NULL);
	}
	raw_still_serves(&d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	raw_still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(out_of_file_descriptors_does_not_spin)
{
	/* 64 descriptors, hard: the daemon cannot raise it. */
	struct e2e_daemon d;
	start_limited_daemon(&d, 64, 64);
	raise_fd_limit(1024);
	enum { N = 200 };
	int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = raw_connect(d.socket);
	usleep(200000);
	long t0 = raw_daemon_cpu_ticks(&d);
	usleep(1000000);
	long spent = raw_daemon_cpu_ticks(&d) - t0;
	ck_assert_msg(spent < sysconf(_SC_CLK_TCK) / 5, "the daemon used %ld ticks in 1 s", spent);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	usleep(200000);
	raw_still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(no_hello_in_time_is_closed)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--handshake-timeout", "0.5", NULL};
	e2e_start_daemon(&d, extra);
	/* Greeted first: its handshake deadline, had it none, would fall before
	 * those of the two below, so their closing is the proof that it passed
	 * (no sleep).  That they close at all proves the option is used: the
	 * default (10 s) is past raw_read's 5 s. */
	int greeted = raw_peer(d.socket);
	int silent = raw_connect(d.socket);
	int half = raw_connect(d.socket);
	uint8_t part[4 + 2];
	frame_put_header(part, 40);
	raw_send_bytes(half, part, sizeof part);
	raw_expect_error(raw_read(silent), ETIMEDOUT);
	ck_assert(raw_closed(silent));
	raw_expect_error(raw_read(half), ETIMEDOUT);
	ck_assert(raw_closed(half));
	ck_assert_int_eq(raw_log_lines(&d, "no hello within"), 2);
	/* Idle after Hello is allowed, however long. */
	raw_stats_ok(greeted);
	close(silent);
	close(half);
	close(greeted);
	raw_still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(before_hello_frames_are_small)
{
	/* A Hello is tiny: before it, 4 KiB is the limit, not --max-frame. */
	int fd = raw_connect(e2e.socket);
	uint8_t hdr[FRAME_HEADER];
	frame_put_header(hdr, 4097);
	raw_send_bytes(fd, hdr, sizeof hdr);
	raw_expect_error(raw_read(fd), EMSGSIZE);
	ck_assert(raw_closed(fd));
	close(fd);
	/* After it, the limit is --max-frame: a 128 KiB flush is fine. */
	fd = raw_peer(e2e.socket);
	static uint64_t refs[16384];
	size_t n = raw_refill_refs(fd, 0, 16384, refs);
	ck_assert_uint_gt(n, 8192);
	raw_flush(fd, refs, n, (uint32_t)n, 0);
	close(fd);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(half_a_frame_blocks_nobody)
{
	int slow = raw_peer(e2e.socket);
	Shma__Request req;
	Shma__Stats st;
	wire_stats(&req, &st);
	req.id = 4242;
	uint8_t frame[64];
	size_t n = shma__request__get_packed_size(&req);
	frame_put_header(frame, (uint32_t)n);
	shma__request__pack(&req, frame + FRAME_HEADER);
	raw_send_bytes(slow, frame, 3); /* half the header */
	raw_still_serves(&e2e);
	raw_send_bytes(slow, frame + 3, 3);
	raw_still_serves(&e2e);
	raw_send_bytes(slow, frame + 6, n + FRAME_HEADER - 6);
	Shma__Response *r = raw_read(slow);
	ck_assert_uint_eq(r->id, 4242);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_STATS);
	shma__response__free_unpacked(r, NULL);
	close(slow);
}
END_TEST

/* A client that sends Roots requests for a second and never reads: 64
 * roots of the longest names make an answer of some 17 KiB for a request of
 * 8 bytes, so one read of 64 KiB holds 8192 of them. */
static int start_hog(const struct e2e_daemon *d)
{
	int hog = raw_peer(d->socket);
	uint64_t ref = 0;
	ck_assert_uint_eq(raw_refill_refs(hog, 0, 1, &ref), 1);
	char name[256];
	memset(name, 'r', 255);
	name[255] = '\0';
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof name, "%02d", i);
		name[2] = 'r';
		raw_expect_ok(raw_publish(hog, name, ref));
	}
	return hog;
}

static void hog_for_a_second(int hog)
{
	static uint8_t batch[8 * 8192];
	Shma__Request req;
	Shma__Roots ro;
	wire_roots(&req, &ro);
	req.id = 1;
	size_t n = shma__request__get_packed_size(&req);
	ck_assert_uint_eq(n + FRAME_HEADER, 8);
	for (size_t i = 0; i < sizeof batch; i += 8) {
		frame_put_header(batch + i, (uint32_t)n);
		shma__request__pack(&req, batch + i + FRAME_HEADER);
	}
	ck_assert_int_eq(fcntl(hog, F_SETFL, O_NONBLOCK), 0);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (write(hog, batch, sizeof batch) <= 0)
			usleep(1000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 1);
}

START_TEST(a_client_that_never_reads_costs_bounded_memory)
{
	int hog = start_hog(&e2e);
	long rss0 = raw_daemon_rss_kib(&e2e);
	hog_for_a_second(hog);
	raw_still_serves(&e2e);
	long grown = raw_daemon_rss_kib(&e2e) - rss0;
	ck_assert_msg(grown < 48 * 1024, "the daemon grew by %ld KiB", grown);
	close(hog);
	raw_still_serves(&e2e);
}
END_TEST

START_TEST(a_client_that_never_reads_is_closed_after_the_write_timeout)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--write-timeout", "1", NULL};
	e2e_start_daemon(&d, extra);
	int hog = start_hog(&d);
	int reader = raw_peer(d.socket); /* idle, but reads what it asks for */
	hog_for_a_second(hog);
	int n = 0;
	for (int i = 0; i < 300 && (n = raw_log_lines(&d, "past --write-timeout: closed")) == 0; i++)
		usleep(10000);
	ck_assert_int_eq(n, 1);
	raw_stats_ok(reader);
	close(reader);
	close(hog);
	raw_still_serves(&d);
	e2e_stop_daemon(&d);
}
END_TEST

Suite *make_hostile_suite(void);
Suite *make_hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("requests");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, refs_outside_any_segment_are_rejected);
	tcase_add_test(tc, double_free_is_rejected_and_the_rest_taken);
	tcase_add_test(tc, misaligned_refs_are_rejected);
	tcase_add_test(tc, refs_of_another_kind_are_refused);
	tcase_add_test(tc, absurd_sizes_are_refused);
	tcase_add_test(tc, refill_class_and_count_out_of_range);
	tcase_add_test(tc, bad_names_are_refused);
	tcase_add_test(tc, name_with_an_embedded_nul_is_refused);
	tcase_add_test(tc, a_hello_name_cannot_forge_log_lines);
	suite_add_tcase(s, tc);
	tc = tcase_create("peers");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_flood_of_connections);
	tcase_add_test(tc, out_of_file_descriptors_does_not_spin);
	tcase_add_test(tc, no_hello_in_time_is_closed);
	tcase_add_test(tc, before_hello_frames_are_small);
	tcase_add_test(tc, half_a_frame_blocks_nobody);
	tcase_add_test(tc, a_client_that_never_reads_costs_bounded_memory);
	tcase_add_test(tc, a_client_that_never_reads_is_closed_after_the_write_timeout);
	suite_add_tcase(s, tc);
	return s;
}
