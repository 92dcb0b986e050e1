/* SPDX-License-Identifier: MIT */
/*
 * Refills in flight at a client's death: one the client marked collected in
 * its control block stays out (its objects may be the program's), one it
 * never marked is taken back (nobody can have its objects).
 */
#include "e2e.h"
#include "raw.h"
#include "frame.h"
#include "layout.h"
#include "seg.h"
#include "shmalloc.h"
#include "sizeclass.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { CLS_KEPT = 3, CLS_LOST = 4, COUNT = 500 };

static uint32_t refill(int fd, uint64_t id, unsigned cls)
{
	Shma__Request req;
	Shma__Refill rf;
	wire_refill(&req, &rf, cls, COUNT, 1 /* slot 0 */);
	req.id = id;
	raw_send(fd, &req);
	Shma__Response *r = raw_read(fd);
	uint32_t n = 0;
	if (r->body_case == SHMA__RESPONSE__BODY_REFILL) {
		n = (uint32_t)r->refill->n_refs;
		for (size_t i = 0; i < r->refill->n_runs; i++)
			n += r->refill->runs[i]->count;
	}
	shma__response__free_unpacked(r, NULL);
	return n;
}

/* A raw client: connects, says Hello and maps the control block the daemon
 * made for it; NULL if any of that fails. */
static struct control_block *raw_client(int *fd)
{
	*fd = raw_connect(e2e.socket);
	raw_hello(*fd, SHMA_PROTOCOL_VERSION, sizeclass_checksum());
	Shma__Response *h = raw_read(*fd);
	if (h->body_case != SHMA__RESPONSE__BODY_HELLO) {
		shma__response__free_unpacked(h, NULL);
		return NULL;
	}
	char name[SEG_NAME_MAX];
	seg_name(name, sizeof name, h->hello->instance, SEG_CONTROL, h->hello->client_id);
	shma__response__free_unpacked(h, NULL);
	int cfd = seg_open(name, 1);
	return cfd >= 0 ? seg_map(cfd, 0, sizeof(struct control_block), 1, NULL) : NULL;
}

/* raw_client() with slot 0 taken, as a thread's first allocation takes it. */
static struct control_block *raw_client_slot0(int *fd)
{
	struct control_block *cb = raw_client(fd);
	if (cb != NULL) {
		cb->hdr.slots_taken = 1;
		cb->slots[0].in_use = 1;
	}
	return cb;
}

/* A client that takes two refills, marks only the first collected, dies. */
static int take_two_and_die(void *arg)
{
	(void)arg;
	int fd;
	struct control_block *cb = raw_client_slot0(&fd);
	if (cb == NULL)
		return 2;
	if (refill(fd, 2, CLS_KEPT) != COUNT || refill(fd, 3, CLS_LOST) != COUNT)
		return 3;
	__atomic_store_n(&cb->slots[0].bins[CLS_KEPT].collected, 2, __ATOMIC_RELEASE);
	kill(getpid(), SIGKILL);
	return 4;
}

/* The same past 2^32 ids: the kept refill's id is 2^32 + 2 and its mark
 * says so; the lost one's id is 2^32 + 3 and its bin's mark says 3 (an
 * older refill of the class), which only a 32-bit comparison could take for
 * it.  No wrap may turn a collected refill into an uncollected one, or the
 * reverse. */
#define WIDE (UINT64_C(1) << 32)
static int take_two_past_2_to_the_32_and_die(void *arg)
{
	(void)arg;
	int fd;
	struct control_block *cb = raw_client_slot0(&fd);
	if (cb == NULL)
		return 2;
	if (refill(fd, WIDE + 2, CLS_KEPT) != COUNT || refill(fd, WIDE + 3, CLS_LOST) != COUNT)
		return 3;
	__atomic_store_n(&cb->slots[0].bins[CLS_KEPT].collected, WIDE + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&cb->slots[0].bins[CLS_LOST].collected, 3, __ATOMIC_RELEASE);
	kill(getpid(), SIGKILL);
	return 4;
}

static void expect_only_the_kept_one_out(int (*client)(void *))
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(client(NULL));
	ck_assert_int_eq(e2e_wait(pid), 128 + SIGKILL);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t kept = (uint64_t)COUNT * sizeclass_size(CLS_KEPT);
	uint64_t in_use = 0;
	for (int i = 0; i < 100; i++) {
		in_use = e2e_stat("\"in_use_bytes\":");
		if (in_use <= kept)
			break;
		usleep(50000);
	}
	/* Exactly the collected refill is still out; the other came back. */
	ck_assert_uint_eq(in_use, kept);
	ck_assert_uint_ge(e2e_stat("\"reclaimed_objects\":"), COUNT);
}

START_TEST(request_ids_past_2_to_the_32_keep_collected_refills_apart)
{
	expect_only_the_kept_one_out(take_two_past_2_to_the_32_and_die);
}
END_TEST

START_TEST(uncollected_refills_come_back_when_their_client_dies)
{
	expect_only_the_kept_one_out(take_two_and_die);
}
END_TEST

static uint64_t alloc_large(int fd, uint64_t id)
{
	Shma__Request req;
	Shma__AllocLarge al;
	wire_alloc_large(&req, &al, 1 << 20);
	req.id = id;
	raw_send(fd, &req);
	Shma__Response *r = raw_read(fd);
	uint64_t ref = r->body_case == SHMA__RESPONSE__BODY_ALLOC_LARGE ? r->alloc_large->ref : 0;
	shma__response__free_unpacked(r, NULL);
	return ref;
}

/* Two large blocks; the first answer marked read, the second not; dies. */
static int two_large_and_die(void *arg)
{
	(void)arg;
	int fd;
	struct control_block *cb = raw_client(&fd);
	if (cb == NULL || alloc_large(fd, 2) == 0)
		return 2;
	__atomic_store_n(&cb->hdr.large_collected, 2, __ATOMIC_RELEASE);
	if (alloc_large(fd, 3) == 0)
		return 3;
	kill(getpid(), SIGKILL);
	return 4;
}

START_TEST(a_large_block_whose_answer_was_never_read_comes_back)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(two_large_and_die(NULL));
	ck_assert_int_eq(e2e_wait(pid), 128 + SIGKILL);
	ck_assert_int_eq(shma_connect(e2e.socket), 0);
	uint64_t n = 0;
	for (int i = 0; i < 100 && (n = e2e_stat("\"large_count\":")) > 1; i++)
		usleep(50000);
	/* The block whose answer was read may be the program's: it stays. */
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(e2e_stat("\"large_bytes\":"), 1 << 20);
}
END_TEST

Suite *make_inflight_suite(void);
Suite *make_inflight_suite(void)
{
	Suite *s = suite_create("inflight");
	TCase *tc = tcase_create("inflight");
	tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, uncollected_refills_come_back_when_their_client_dies);
	tcase_add_test(tc, a_large_block_whose_answer_was_never_read_comes_back);
	tcase_add_test(tc, request_ids_past_2_to_the_32_keep_collected_refills_apart);
	suite_add_tcase(s, tc);
	return s;
}
