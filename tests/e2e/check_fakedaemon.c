/* SPDX-License-Identifier: MIT */
/*
 * A library that survives its daemon: a FAKE daemon (a forked process of
 * the test's own uid, so the library's peer check lets it in) listens on a
 * temporary socket, reads the library's Hello and answers it with hostile
 * values, answers with the wrong id, sends a frame's header and then
 * nothing, or says nothing at all.  Each time the program must get an error
 * (a negative errno from shma_connect(), NULL and errno from shma_malloc()),
 * within the reply timeout (SHMALLOC_REPLY_TIMEOUT_MS, 500 ms here), never
 * a crash or a hang.  The fake serves a real-looking heap (segments 'M' and
 * 'p' it made, a control block passed with SCM_RIGHTS: tests/unit/modeld.h
 * makes them, as for the model daemon), so the values it
 * spoils are the only thing wrong; after a good Hello it answers refills
 * with refs in an arena's metadata, inside an object, of another class,
 * past the heap, or a run of 2^31 objects.  Each case is one test; CK_FORK gives each a fresh
 * library.
 */
#include "e2e.h"
#include "frame.h"
#include "layout.h"
#include "modeld.h"
#include "raw.h"
#include "shmalloc.h"
#include "shmalloc.pb-c.h"
#include "sizeclass.h"
#include "wire.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
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
	FAKE_EMPTY_CONTROL,   /* the control block passed is 0 bytes */
	/* A good Hello; then each Refill answered with: */
	FAKE_REFILL_META,     /* a ref in arena 0's metadata pages */
	FAKE_REFILL_INSIDE,   /* a ref inside an object of the class */
	FAKE_REFILL_CLASS,    /* a ref of a span of another class */
	FAKE_REFILL_PAST,     /* a ref past the heap */
	FAKE_REFILL_HUGE_RUN, /* a run of 2^31 objects from a good first ref */
	/* A good Hello, answered only once a Refill for slot 0 came behind it
	 * (or after a second); refills then get a good ref if one did, else a
	 * ref past the heap (so the malloc fails). */
	FAKE_FIRST_REFILL_BEHIND,
	/* A good Hello whose control block holds a first batch of FAKE_CLASS
	 * (as a daemon's: slot SHMA_XFER_NO_SLOT) of refs in the metadata,
	 * inside an object, of another class and past the heap; refills get a
	 * good ref. */
	FAKE_FIRST_BATCH_BAD,
};

#define FAKE_ARENA ((uint64_t)4 << 20)
#define FAKE_ARENAS 2u
#define FAKE_CLASS 16u /* the class of the span the fake's page map shows (288 B: above
                          * the classes a new block comes with, layout_prefilled()) */

struct fake {
	char dir[64], socket[128];
	char instance[32];
	struct arena_geometry g;
	pid_t pid;
	int ctl_fd;
};

/* The heap a daemon would have made (modeld_make_segments(): header,
 * arena 0's metadata pages, the control block), with one span of FAKE_CLASS
 * at arena 0's first user page and another class's span right after it. */
static void make_heap(struct fake *f)
{
	f->ctl_fd = modeld_make_segments(f->instance, FAKE_ARENA, FAKE_ARENAS, 0x320000000000ull,
					 &f->g);
	uint64_t msize;
	char *m = modeld_map_meta(f->instance, &f->g, FAKE_ARENAS, &msize);
	struct page_entry *pm = modeld_page_map(m, &f->g, 0);
	uint32_t first = f->g.meta_pages, n = sizeclass_table[FAKE_CLASS].span_pages;
	for (uint32_t p = first; p < first + n; p++) {
		pm[p].cls = FAKE_CLASS;
		pm[p].span_start = first;
		pm[p].kind = PAGE_SPAN;
	}
	for (uint32_t p = first + n; p < first + n + sizeclass_table[FAKE_CLASS + 1].span_pages; p++) {
		pm[p].cls = FAKE_CLASS + 1;
		pm[p].span_start = first + n;
		pm[p].kind = PAGE_SPAN;
	}
	munmap(m, msize);
}

/* Writes n bytes with fd passed alongside (SCM_RIGHTS). */
static void send_with_fd(int sock, const void *p, size_t n, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)p, n};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			   .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	ck_assert_int_eq(sendmsg(sock, &m, 0), (ssize_t)n);
}

static void send_response(int fd, const Shma__Response *resp, int pass_fd)
{
	uint8_t buf[4096];
	size_t n = shma__response__get_packed_size(resp);
	ck_assert_uint_le(n + FRAME_HEADER, sizeof buf);
	frame_put_header(buf, (uint32_t)n);
	shma__response__pack(resp, buf + FRAME_HEADER);
	if (pass_fd >= 0)
		send_with_fd(fd, buf, n + FRAME_HEADER, pass_fd);
	else
		raw_send_bytes(fd, buf, n + FRAME_HEADER);
}

/* The refill answer mode spoils, for class cls. */
static void send_refill_reply(const struct fake *f, int fd, uint64_t id, unsigned cls,
			      enum fake_mode mode)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__RefillReply r = SHMA__REFILL_REPLY__INIT;
	Shma__Run run = SHMA__RUN__INIT, *runs[1] = {&run};
	uint64_t span = (uint64_t)f->g.meta_pages << SHMA_PAGE_SHIFT;
	uint64_t size = sizeclass_table[cls].size;
	uint64_t ref = 0;
	switch (mode) {
	case FAKE_REFILL_META: ref = 64 * size; break;
	case FAKE_REFILL_INSIDE: ref = span + size + 8; break;
	case FAKE_REFILL_CLASS:
		ref = span + ((uint64_t)sizeclass_table[FAKE_CLASS].span_pages << SHMA_PAGE_SHIFT);
		break;
	case FAKE_REFILL_PAST: ref = FAKE_ARENA * FAKE_ARENAS + span; break;
	default: ref = span; break;
	}
	resp.id = id;
	resp.body_case = SHMA__RESPONSE__BODY_REFILL;
	resp.refill = &r;
	r.size_class = cls;
	if (mode == FAKE_REFILL_HUGE_RUN) {
		run.first = span;
		run.count = UINT32_C(1) << 31;
		r.n_runs = 1;
		r.runs = runs;
	} else {
		r.n_refs = 1;
		r.refs = &ref;
	}
	send_response(fd, &resp, -1);
}

/* A Hello reply that a real daemon could send, but for what mode spoils. */
static void send_hello_reply(const struct fake *f, int fd, uint64_t id, enum fake_mode mode)
{
	Shma__Response resp = SHMA__RESPONSE__INIT;
	Shma__HelloReply h = SHMA__HELLO_REPLY__INIT;
	resp.id = mode == FAKE_WRONG_ID ? id + 1000 : id;
	resp.body_case = SHMA__RESPONSE__BODY_HELLO;
	resp.hello = &h;
	h.version = SHMA_PROTOCOL_VERSION;
	char instance[sizeof f->instance];
	strcpy(instance, f->instance);
	h.instance = instance;
	h.arena_size = FAKE_ARENA;
	h.max_arenas = FAKE_ARENAS;
	h.meta_bytes = (uint32_t)f->g.meta_bytes;
	h.heap_range = h.arena_size * h.max_arenas;
	h.large_threshold = 128u << 10;
	h.nclasses = SIZECLASS_COUNT;
	h.client_id = 1;
	h.control_slots = SHMA_CONTROL_SLOTS;
	h.max_frame = 1u << 20;
	h.heap_base = 0x320000000000ull;
	switch (mode) {
	case FAKE_THRESHOLD_ZERO: h.large_threshold = 0; break;
	case FAKE_THRESHOLD_HUGE: h.large_threshold = UINT64_MAX; break;
	case FAKE_NO_CLASSES: h.nclasses = 0; break;
	case FAKE_BAD_GEOMETRY: h.arena_size = 3; h.heap_range = UINT64_C(1) << 63; break;
	default: break;
	}
	int pass = f->ctl_fd;
	if (mode == FAKE_EMPTY_CONTROL) {
		pass = memfd_create("empty", MFD_CLOEXEC);
		ck_assert_int_ge(pass, 0);
	}
	send_response(fd, &resp, pass);
}

/* The fake daemon's process: one connection, one answer as mode says,
 * then it holds the connection open until killed. */
static void fake_serve(const struct fake *f, int lfd, enum fake_mode mode)
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
	if (mode == FAKE_FIRST_REFILL_BEHIND) {
		/* One round trip for both: the Refill must come before any reply. */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int behind = 0;
		uint64_t rid = 0;
		unsigned cls = 0;
		if (poll(&p, 1, 1000) == 1 && (n = raw_read_frame(fd, buf, sizeof buf)) > 0) {
			req = shma__request__unpack(NULL, (size_t)n, buf);
			if (req != NULL && req->body_case == SHMA__REQUEST__BODY_REFILL &&
			    req->refill->slot == 1) {
				behind = 1;
				rid = req->id;
				cls = req->refill->size_class;
			}
			if (req != NULL)
				shma__request__free_unpacked(req, NULL);
		}
		send_hello_reply(f, fd, id, mode);
		if (behind)
			send_refill_reply(f, fd, rid, cls, mode);
		/* Only the refill behind the Hello gets a good ref: a library
		 * that sent it but dropped its answer and asked again must
		 * fail the malloc, not pass on the second answer. */
		while ((n = raw_read_frame(fd, buf, sizeof buf)) > 0) {
			req = shma__request__unpack(NULL, (size_t)n, buf);
			if (req != NULL && req->body_case == SHMA__REQUEST__BODY_REFILL)
				send_refill_reply(f, fd, req->id, req->refill->size_class,
						  FAKE_REFILL_PAST);
			if (req != NULL)
				shma__request__free_unpacked(req, NULL);
		}
		for (;;)
			pause();
	}
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
		send_hello_reply(f, fd, id, mode);
	}
	/* Refills get mode's answer; anything else, none. */
	while ((n = raw_read_frame(fd, buf, sizeof buf)) > 0) {
		req = shma__request__unpack(NULL, (size_t)n, buf);
		if (req == NULL)
			continue;
		if (req->body_case == SHMA__REQUEST__BODY_REFILL)
			send_refill_reply(f, fd, req->id, req->refill->size_class, mode);
		shma__request__free_unpacked(req, NULL);
	}
	for (;;)
		pause();
}

/* The bad refs of FAKE_FIRST_BATCH_BAD, in entry 0 of FAKE_CLASS. */
static void plant_bad_first_batch(const struct fake *f)
{
	uint64_t span = (uint64_t)f->g.meta_pages << SHMA_PAGE_SHIFT;
	uint64_t size = sizeclass_table[FAKE_CLASS].size;
	uint64_t refs[4] = {64 * size, span + size + 8,
			    span + ((uint64_t)sizeclass_table[FAKE_CLASS].span_pages << SHMA_PAGE_SHIFT),
			    FAKE_ARENA * FAKE_ARENAS + span};
	off_t at = (off_t)offsetof(struct control_block, xfer_refs[FAKE_CLASS][0]);
	ck_assert_int_eq(pwrite(f->ctl_fd, refs, sizeof refs, at), (ssize_t)sizeof refs);
	uint64_t w = layout_xfer_word(SHMA_XFER_FULL, 4, 0, SHMA_XFER_NO_SLOT);
	at = (off_t)offsetof(struct control_block, hdr.xfer[FAKE_CLASS].state[0]);
	ck_assert_int_eq(pwrite(f->ctl_fd, &w, sizeof w, at), (ssize_t)sizeof w);
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
	strcpy(f->dir, "/tmp/shma-fake-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->socket, sizeof f->socket, "%s/sock", f->dir);
	snprintf(f->instance, sizeof f->instance, "fake%ld", (long)getpid());
	modeld_unlink_segments(f->instance);
	make_heap(f);
	if (mode == FAKE_FIRST_BATCH_BAD)
		plant_bad_first_batch(f);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, f->socket);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0)
		fake_serve(f, lfd, mode);
	close(lfd);
}

static void fake_stop(struct fake *f)
{
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	unlink(f->socket);
	rmdir(f->dir);
	close(f->ctl_fd);
	modeld_unlink_segments(f->instance);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connects to a fake daemon answering as mode says: shma_connect() must
 * fail with want (any error when want is 0), and a malloc after it must
 * fail too, with errno set.  A hang is the tcase's timeout to catch, not a
 * clock here (a bound of 3 s failed on a loaded machine); a timeout
 * (-ETIMEDOUT) must have waited the library's timeout at least, which no
 * load makes false. */
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
	if (rc == -ETIMEDOUT)
		ck_assert_uint_ge(took, 500);
	/* The fake is gone for good: the next call reconnects and fails. */
	fake_stop(&f);
	errno = 0;
	ck_assert_ptr_null(shma_malloc(64));
	ck_assert_int_ne(errno, 0);
}

START_TEST(a_control_block_of_0_bytes_is_refused)
{
	expect_refused(FAKE_EMPTY_CONTROL, -EPROTO);
}
END_TEST

/* A good Hello, then refills answered as mode says: every malloc of the
 * class fails (NULL and errno), none returns the ref the fake sent. */
static void expect_refill_refused(enum fake_mode mode)
{
	setenv("SHMALLOC_REPLY_TIMEOUT_MS", "500", 1);
	struct fake f;
	fake_start(&f, mode);
	ck_assert_int_eq(shma_connect(f.socket), 0);
	size_t size = sizeclass_table[FAKE_CLASS].size;
	for (int i = 0; i < 4; i++) {
		errno = 0;
		void *p = shma_malloc(size);
		ck_assert_msg(p == NULL, "malloc %d took the fake's ref %p", i, p);
		ck_assert_int_ne(errno, 0);
	}
	fake_stop(&f);
}

START_TEST(a_refill_ref_in_the_metadata_is_refused)
{
	expect_refill_refused(FAKE_REFILL_META);
}
END_TEST

START_TEST(a_refill_ref_inside_an_object_is_refused)
{
	expect_refill_refused(FAKE_REFILL_INSIDE);
}
END_TEST

START_TEST(a_refill_ref_of_another_class_is_refused)
{
	expect_refill_refused(FAKE_REFILL_CLASS);
}
END_TEST

START_TEST(a_refill_ref_past_the_heap_is_refused)
{
	expect_refill_refused(FAKE_REFILL_PAST);
}
END_TEST

START_TEST(a_refill_run_of_2_to_the_31_objects_is_refused)
{
	expect_refill_refused(FAKE_REFILL_HUGE_RUN);
}
END_TEST

/* A new process's first malloc asks its first refill right behind its
 * Hello, without waiting for the reply: one round trip, not two -- and
 * takes its answer: any later refill gets a ref past the heap.  (Failed
 * before: the refill came only once the Hello was answered; and with the
 * answer dropped (tcache.c's first_refill() always drop_refill()), as the
 * fake answered later refills well.) */
START_TEST(the_first_refill_rides_behind_the_hello)
{
	setenv("SHMALLOC_REPLY_TIMEOUT_MS", "3000", 1);
	struct fake f;
	fake_start(&f, FAKE_FIRST_REFILL_BEHIND);
	setenv("SHMALLOC_SOCKET", f.socket, 1);
	errno = 0;
	/* No shma_connect(): the malloc connects, as under the preload library. */
	char *p = shma_malloc(sizeclass_table[FAKE_CLASS].size);
	ck_assert_msg(p != NULL, "the first malloc failed (errno %d): its refill came "
		      "after the Hello reply, or its answer was not used", errno);
	uint64_t span = (uint64_t)f.g.meta_pages << SHMA_PAGE_SHIFT;
	ck_assert_uint_eq(shma_ref(p), span);
	fake_stop(&f);
}
END_TEST

/* A first batch the daemon left in the control block is checked as a
 * refill is: none of its bad refs is handed out, and the malloc is served
 * by the refill that follows.  (Without the check: a block in the heap's
 * metadata.) */
START_TEST(a_bad_first_batch_in_the_control_block_is_refused)
{
	setenv("SHMALLOC_REPLY_TIMEOUT_MS", "3000", 1);
	struct fake f;
	fake_start(&f, FAKE_FIRST_BATCH_BAD);
	ck_assert_int_eq(shma_connect(f.socket), 0);
	char *p = shma_malloc(sizeclass_table[FAKE_CLASS].size);
	ck_assert_ptr_nonnull(p);
	uint64_t span = (uint64_t)f.g.meta_pages << SHMA_PAGE_SHIFT;
	ck_assert_uint_eq(shma_ref(p), span);
	fake_stop(&f);
}
END_TEST

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
	tcase_add_test(tc, a_control_block_of_0_bytes_is_refused);
	tcase_add_test(tc, a_refill_ref_in_the_metadata_is_refused);
	tcase_add_test(tc, a_refill_ref_inside_an_object_is_refused);
	tcase_add_test(tc, a_refill_ref_of_another_class_is_refused);
	tcase_add_test(tc, a_refill_ref_past_the_heap_is_refused);
	tcase_add_test(tc, a_refill_run_of_2_to_the_31_objects_is_refused);
	tcase_add_test(tc, the_first_refill_rides_behind_the_hello);
	tcase_add_test(tc, a_bad_first_batch_in_the_control_block_is_refused);
	suite_add_tcase(s, tc);
	return s;
}
