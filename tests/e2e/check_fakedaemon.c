/*
 * A library that survives its daemon: a FAKE daemon (a forked process of
 * the test's own uid, so the library's peer check lets it in) listens on a
 * temporary socket, reads the library's Hello and answers it with hostile
 * values, answers with the wrong id, sends a frame's header and then
 * nothing, or says nothing at all.  Each time the program must get an error
 * (a negative errno from shma_connect(), NULL and errno from shma_malloc()),
 * within the reply timeout (SHMALLOC_REPLY_TIMEOUT_MS, 500 ms here), never
 * a crash or a hang.  Each case is one test; CK_FORK gives each a fresh
 * library.
 */
#include "e2e.h"
#include "frame.h"
#include "raw.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"
#include "wire.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum fake_mode {
	FAKE_THRESHOLD_ZERO,  /* large_threshold 0 */
	FAKE_THRESHOLD_HUGE,  /* large_threshold UINT64_MAX */
	FAKE_NO_CLASSES,      /* nclasses 0 */
	FAKE_BAD_GEOMETRY,    /* arena_size 3, range 2^63 */
	FAKE_WRONG_ID,        /* a good-looking reply with an id never sent */
	FAKE_HEADER_SILENCE,  /* 4 bytes saying 100 follow, then nothing */
	FAKE_SILENCE,         /* reads the Hello, answers nothing */
	FAKE_GARBAGE,         /* a frame that does not decode */
};

struct fake {
	char dir[64], socket[128];
	pid_t pid;
};

/* A Hello reply that a real daemon could send, but for what mode spoils. */
static void send_hello_reply(int fd, uint64_t id, enum fake_mode mode)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__HelloReply h = SHMA__HELLO_REPLY__INIT;
	resp.id = mode == FAKE_WRONG_ID ? id + 1000 : id;
	resp.body_case = SHMA__RESPONSE__BODY_HELLO;
	resp.hello = &h;
	h.version = SHMA_PROTOCOL_VERSION;
	char instance[] = "fake";
	h.instance = instance;
	h.arena_size = (uint64_t)64 << 20;
	h.max_arenas = 4;
	h.heap_range = h.arena_size * h.max_arenas;
	h.large_threshold = 128u << 10;
	h.nclasses = SIZECLASS_COUNT;
	h.client_id = 1;
	h.control_slots = 256;
	h.max_frame = 1u << 20;
	h.heap_base = 0x310000000000ull;
	switch (mode) {
	case FAKE_THRESHOLD_ZERO: h.large_threshold = 0; break;
	case FAKE_THRESHOLD_HUGE: h.large_threshold = UINT64_MAX; break;
	case FAKE_NO_CLASSES: h.nclasses = 0; break;
	case FAKE_BAD_GEOMETRY: h.arena_size = 3; h.heap_range = UINT64_C(1) << 63; break;
	default: break;
	}
	uint8_t buf[4096];
	size_t n = shma__response__get_packed_size(&resp);
	ck_assert_uint_le(n + FRAME_HEADER, sizeof buf);
	frame_put_header(buf, (uint32_t)n);
	shma__response__pack(&resp, buf + FRAME_HEADER);
	raw_send_bytes(fd, buf, n + FRAME_HEADER);
}

/* The fake daemon's process: one connection, one answer as mode says,
 * then it holds the connection open until killed. */
static void fake_serve(int lfd, enum fake_mode mode)
{
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	uint8_t buf[65536];
	int n = raw_read_frame(fd, buf, sizeof buf);
	if (n <= 0)
		_exit(2);
	Shma__Request *req = shma__request__unpack(NULL, (size_t)n, buf);
	if (req == NULL || req->body_case != SHMA__REQUEST__BODY_HELLO)
		_exit(3);
	uint64_t id = req->id;
	shma__request__free_unpacked(req, NULL);
	if (mode == FAKE_HEADER_SILENCE) {
		uint8_t hdr[FRAME_HEADER];
		frame_put_header(hdr, 100);
		raw_send_bytes(fd, hdr, sizeof hdr);
	} else if (mode == FAKE_GARBAGE) {
		uint8_t junk[FRAME_HEADER + 6] = {0};
		frame_put_header(junk, 6);
		memset(junk + FRAME_HEADER, 0xff, 6);
		raw_send_bytes(fd, junk, sizeof junk);
	} else if (mode != FAKE_SILENCE) {
		send_hello_reply(fd, id, mode);
	}
	for (;;)
		pause();
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
	strcpy(f->dir, "/tmp/shma-fake-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->socket, sizeof f->socket, "%s/sock", f->dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, f->socket);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0)
		fake_serve(lfd, mode);
	close(lfd);
}

static void fake_stop(struct fake *f)
{
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	unlink(f->socket);
	rmdir(f->dir);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connects to a fake daemon answering as mode says: shma_connect() must
 * fail with want (any error when want is 0) within 3 s (the timeout is
 * 500 ms), and a malloc after it must fail too, with errno set. */
static void expect_refused(enum fake_mode mode, int want)
{
	setenv("SHMALLOC_REPLY_TIMEOUT_MS", "500", 1);
	struct fake f;
	fake_start(&f, mode);
	uint64_t t0 = now_ms();
	int rc = shma_connect(f.socket);
	uint64_t took = now_ms() - t0;
	if (want != 0)
		ck_assert_int_eq(rc, want);
	else
		ck_assert_int_lt(rc, 0);
	ck_assert_uint_lt(took, 3000);
	/* The fake is gone for good: the next call reconnects and fails. */
	fake_stop(&f);
	errno = 0;
	ck_assert_ptr_null(shma_malloc(64));
	ck_assert_int_ne(errno, 0);
}

START_TEST(a_large_threshold_of_0_is_refused)
{
	expect_refused(FAKE_THRESHOLD_ZERO, -EPROTO);
}
END_TEST

START_TEST(a_large_threshold_of_2_to_the_64_is_refused)
{
	expect_refused(FAKE_THRESHOLD_HUGE, -EPROTO);
}
END_TEST

START_TEST(another_number_of_classes_is_refused)
{
	expect_refused(FAKE_NO_CLASSES, -EPROTO);
}
END_TEST

START_TEST(an_impossible_geometry_is_refused)
{
	expect_refused(FAKE_BAD_GEOMETRY, -EPROTO);
}
END_TEST

START_TEST(an_answer_with_the_wrong_id_times_out)
{
	expect_refused(FAKE_WRONG_ID, -ETIMEDOUT);
}
END_TEST

START_TEST(a_header_then_silence_times_out)
{
	expect_refused(FAKE_HEADER_SILENCE, -ETIMEDOUT);
}
END_TEST

START_TEST(no_answer_at_all_times_out)
{
	expect_refused(FAKE_SILENCE, -ETIMEDOUT);
}
END_TEST

START_TEST(an_answer_that_does_not_decode_is_an_error)
{
	expect_refused(FAKE_GARBAGE, -EPROTO);
}
END_TEST

Suite *make_fakedaemon_suite(void);
Suite *make_fakedaemon_suite(void)
{
	Suite *s = suite_create("fakedaemon");
	TCase *tc = tcase_create("hello");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, a_large_threshold_of_0_is_refused);
	tcase_add_test(tc, a_large_threshold_of_2_to_the_64_is_refused);
	tcase_add_test(tc, another_number_of_classes_is_refused);
	tcase_add_test(tc, an_impossible_geometry_is_refused);
	tcase_add_test(tc, an_answer_with_the_wrong_id_times_out);
	tcase_add_test(tc, a_header_then_silence_times_out);
	tcase_add_test(tc, no_answer_at_all_times_out);
	tcase_add_test(tc, an_answer_that_does_not_decode_is_an_error);
	suite_add_tcase(s, tc);
	return s;
}
