/* SPDX-License-Identifier: MIT */
/*
 * Limits per process and per uid (doc/architecture.md, Security; server/quota.c): a process
 * cannot beat --client-max-memory by opening more connections, and one user
 * at its limits of connections, roots, large blocks and orphaned control
 * blocks gets EAGAIN for what would cross them -- one log line each -- while
 * another user is served as before.  The users are real (tests/e2e/users.h).
 */
#include "e2e.h"
#include "raw.h"
#include "sizeclass.h"
#include "wire.h"
#include "shmalloc.h"
#include "users.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- bytes: per process, however many connections ---- */

#define CONNS 16
#define CAP (4u << 20)

/* One process, 16 connections, each refilling 4 KiB objects until ENOMEM:
 * together they stay within the cap (before, each had a cap of its own and
 * together they took 16 of them). */
START_TEST(client_max_memory_holds_per_process)
{
	struct e2e_daemon d;
	static const char *const opts[] = {"--client-max-memory", "4M", NULL};
	e2e_start_daemon(&d, opts);
	unsigned cls = sizeclass_of(4096);
	uint64_t size = sizeclass_size(cls), total = 0;
	int fds[CONNS];
	for (int i = 0; i < CONNS; i++) {
		fds[i] = raw_peer(d.socket);
		for (;;) {
			Shma__Response *r = raw_refill(fds[i], cls, 64);
			if (r->body_case == SHMA__RESPONSE__BODY_ERROR) {
				ck_assert_int_eq(r->error->code, ENOMEM);
				shma__response__free_unpacked(r, NULL);
				break;
			}
			ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_REFILL);
			uint64_t n = r->refill->n_refs;
			for (size_t k = 0; k < r->refill->n_runs; k++)
				n += r->refill->runs[k]->count;
			total += n * size;
			shma__response__free_unpacked(r, NULL);
			ck_assert_uint_le(total, (uint64_t)CONNS * CAP);
		}
	}
	ck_assert_msg(total <= CAP, "%d connections of one process took %llu bytes past a cap "
		      "of %u", CONNS, (unsigned long long)total, CAP);
	ck_assert_uint_ge(total, CAP - 64 * size);
	/* A connection closed leaves its bytes on its process, which may still
	 * hold the blocks (before, they went back to the budget, and a new
	 * connection each time one reached the cap took the whole heap:
	 * issue 21 case 5, harden:reconnecting_at_the_cap_gains_nothing). */
	close(fds[0]);
	ck_assert_int_eq(raw_wait_connections_of(fds[1], getpid(), CONNS - 1), CONNS - 1);
	Shma__Response *r = raw_refill(fds[1], cls, 1);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_int_eq(r->error->code, ENOMEM);
	shma__response__free_unpacked(r, NULL);
	for (int i = 1; i < CONNS; i++)
		close(fds[i]);
	e2e_stop_daemon(&d);
}
END_TEST

/* ---- per uid ---- */

static struct user hog, other;
static char group[32];
static int have_users;

static void users_create(void)
{
	have_users = geteuid() == 0 && make_group(group, sizeof group, "gq") == 0 &&
		     make_user(&hog, "h", group) == 0 && make_user(&other, "o", group) == 0;
}

static void users_remove(void)
{
	remove_user(&hog);
	remove_user(&other);
	remove_group(group);
}

static struct e2e_daemon qd;

/* The Error a daemon sends before closing a connection it will not take:
 * its code, or -1. */
static int refusal_code(int fd)
{
	uint8_t buf[512];
	int n = raw_read_frame(fd, buf, sizeof buf);
	if (n <= 0)
		return -1;
	Shma__Response *r = shma__response__unpack(NULL, (size_t)n, buf);
	int code = r != NULL && r->body_case == SHMA__RESPONSE__BODY_ERROR ? (int)r->error->code
									   : -1;
	if (r != NULL)
		shma__response__free_unpacked(r, NULL);
	return code;
}

static int error_code(Shma__Response *r)
{
	int code = r->body_case == SHMA__RESPONSE__BODY_ERROR ? (int)r->error->code : 0;
	shma__response__free_unpacked(r, NULL);
	return code;
}

/* A Hello on a fresh connection: 0, or the Error's code. */
static int hello_code(int fd)
{
	Shma__Request req;
	Shma__Hello h;
	wire_hello(&req, &h, NULL, 0);
	return error_code(raw_call(fd, &req));
}

/* The hog: every limit reached, then one past each; exit 0 if each was
 * refused with EAGAIN and everything within the limits worked. */
static int be_the_hog(void *arg)
{
	(void)arg;
	int fds[3];
	for (int i = 0; i < 3; i++)
		fds[i] = raw_peer(qd.socket);
	/* A fourth connection of the user: refused before Hello. */
	int extra = raw_connect(qd.socket);
	if (extra < 0 || refusal_code(extra) != EAGAIN || !raw_closed(extra))
		return 1;
	close(extra);
	uint64_t ref = 0;
	if (raw_refill_refs(fds[0], 0, 1, &ref) != 1)
		return 2;
	/* Two roots from two connections, the third refused. */
	if (error_code(raw_publish(fds[0], "hog-1", ref)) != 0 ||
	    error_code(raw_publish(fds[1], "hog-2", ref)) != 0 ||
	    error_code(raw_publish(fds[2], "hog-3", ref)) != EAGAIN)
		return 3;
	/* One removed: room for one again. */
	if (error_code(raw_unpublish(fds[2], "hog-1")) != 0 ||
	    error_code(raw_publish(fds[2], "hog-3", ref)) != 0)
		return 4;
	/* Three large blocks over the connections, the fourth refused. */
	for (int i = 0; i < 3; i++) {
		Shma__Response *r = raw_alloc_large(fds[i], 1);
		if (r->body_case != SHMA__RESPONSE__BODY_ALLOC_LARGE)
			return 5;
		shma__response__free_unpacked(r, NULL);
	}
	if (error_code(raw_alloc_large(fds[0], 1)) != EAGAIN)
		return 6;
	/* Orphans: connections that end while the process lives leave their
	 * control blocks; at two, the next Hello is refused. */
	close(fds[1]);
	close(fds[2]);
	if (raw_wait_connections_of(fds[0], getpid(), 1) != 1)
		return 8;
	int f = raw_connect(qd.socket);
	if (f < 0 || hello_code(f) != EAGAIN)
		return 7;
	close(f);
	close(fds[0]);
	return 0;
}

/* The other user, while the hog sits at its limits: served in full. */
static int be_the_other(void *arg)
{
	(void)arg;
	int fds[3];
	for (int i = 0; i < 3; i++)
		fds[i] = raw_peer(qd.socket);
	uint64_t ref = 0;
	if (raw_refill_refs(fds[0], 0, 1, &ref) != 1)
		return 11;
	if (error_code(raw_publish(fds[1], "other-1", ref)) != 0 ||
	    error_code(raw_publish(fds[2], "other-2", ref)) != 0)
		return 12;
	Shma__Response *r = raw_alloc_large(fds[0], 1);
	if (r->body_case != SHMA__RESPONSE__BODY_ALLOC_LARGE)
		return 13;
	shma__response__free_unpacked(r, NULL);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	return 0;
}

START_TEST(one_user_at_its_limits_another_served)
{
	if (!have_users) {
		fprintf(stderr, "SKIP: one_user_at_its_limits_another_served: cannot create "
			"users (not root, or no useradd)\n");
		return;
	}
	char hog_uid[16], other_uid[16];
	snprintf(hog_uid, sizeof hog_uid, "%lu", (unsigned long)hog.uid);
	snprintf(other_uid, sizeof other_uid, "%lu", (unsigned long)other.uid);
	const char *const opts[] = {"--allow-uid", hog_uid, "--allow-uid", other_uid,
				    "--allow-uid", "0", "--socket-mode", "0666",
				    "--segment-mode", "0666", "--uid-max-connections", "3",
				    "--uid-max-roots", "2", "--uid-max-large", "3",
				    "--uid-max-orphans", "2", NULL};
	e2e_start_daemon(&qd, opts);
	ck_assert_int_eq(chmod(qd.dir, 0711), 0);
	char dir[160];
	snprintf(dir, sizeof dir, "%s/sock", qd.dir);
	ck_assert_int_eq(chmod(dir, 0711), 0); /* the operator opened the way */
	ck_assert_int_eq(run_as(&hog, be_the_hog, NULL), 0);
	ck_assert_int_eq(run_as(&other, be_the_other, NULL), 0);
	/* One line for each refusal. */
	ck_assert_int_eq(e2e_log_count(&qd, "--uid-max-connections"), 1);
	ck_assert_int_eq(e2e_log_count(&qd, "--uid-max-roots"), 1);
	ck_assert_int_eq(e2e_log_count(&qd, "--uid-max-large"), 1);
	ck_assert_int_eq(e2e_log_count(&qd, "--uid-max-orphans"), 1);
	raw_still_serves(&qd);
	e2e_stop_daemon(&qd);
}
END_TEST

Suite *make_quota_suite(void);
Suite *make_quota_suite(void)
{
	Suite *s = suite_create("quota");
	TCase *tc = tcase_create("quota");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, client_max_memory_holds_per_process);
	tcase_add_test(tc, one_user_at_its_limits_another_served);
	suite_add_tcase(s, tc);
	return s;
}
