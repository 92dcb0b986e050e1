/* SPDX-License-Identifier: MIT */
/*
 * Limits under load: --max-memory and --client-max-memory with several
 * processes allocating at once, and /dev/shm itself full.
 *
 * Past a cap, allocation returns NULL with ENOMEM -- in every process, for
 * small objects and large blocks alike -- and nothing else breaks: the
 * daemon answers, other clients are served, and what is given back can be
 * had again.  When the tmpfs under /dev/shm is full, the same: ENOMEM,
 * never SIGBUS (the daemon reserves backing store before it hands out
 * pages).  That test mounts a small tmpfs in a mount namespace of its own
 * and says it is skipped where that is not permitted.
 */
#include "e2e.h"
#include "raw.h"
#include "shmalloc.h"
#include "skip.h"

#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#define HOLDERS 4
#define HELD_MAX 4096

/* A process that allocates mixed sizes until the daemon says ENOMEM,
 * writing every byte it got; tells the parent how much on `report`, waits
 * for a byte on `go`, frees everything and exits 0 (else a code saying
 * what went wrong). */
struct holder {
	const char *socket;
	int report, go;
};

static int hold_until_enomem(const struct holder *h)
{
	static const size_t sizes[] = {64, 1000, 9000, 100000, 300000};
	static void *held[HELD_MAX];
	unsigned n = 0;
	uint64_t bytes = 0;
	if (shma_connect(h->socket) != 0)
		return 10;
	/* Until even the smallest size fails: a span of a big class is a few
	 * pages now, so the first failure can leave room for smaller ones. */
	size_t top = sizeof sizes / sizeof sizes[0];
	for (;;) {
		size_t size = sizes[n % top];
		void *p = n < HELD_MAX ? shma_malloc(size) : NULL;
		if (p == NULL && n < HELD_MAX && errno == ENOMEM && --top > 0)
			continue;
		if (p == NULL)
			break;
		memset(p, 0xa5, size);
		held[n++] = p;
		bytes += size;
	}
	if (n == HELD_MAX)
		return 11; /* the cap never came */
	if (errno != ENOMEM)
		return 12;
	if (write(h->report, &bytes, sizeof bytes) != (ssize_t)sizeof bytes)
		return 13;
	char b;
	if (read(h->go, &b, 1) != 1)
		return 14;
	for (unsigned i = 0; i < n; i++)
		shma_free(held[i]);
	shma_disconnect();
	return 0;
}

/* Starts HOLDERS holders on d, waits until each is at its cap, and fills
 * got[] with what each holds. */
static void start_holders(const struct e2e_daemon *d, pid_t *pids, uint64_t *got, int *go_w)
{
	int rep[2], go[2];
	ck_assert_int_eq(pipe(rep), 0);
	ck_assert_int_eq(pipe(go), 0);
	for (int i = 0; i < HOLDERS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			close(rep[0]);
			close(go[1]);
			struct holder h = {d->socket, rep[1], go[0]};
			_exit(hold_until_enomem(&h));
		}
	}
	close(rep[1]);
	close(go[0]);
	for (int i = 0; i < HOLDERS; i++)
		ck_assert_int_eq(read(rep[0], &got[i], sizeof got[i]), (ssize_t)sizeof got[i]);
	close(rep[0]);
	*go_w = go[1];
}

static void release_holders(pid_t *pids, int go_w)
{
	char b[HOLDERS] = {0};
	ck_assert_int_eq(write(go_w, b, HOLDERS), HOLDERS);
	close(go_w);
	for (int i = 0; i < HOLDERS; i++)
		ck_assert_int_eq(e2e_wait(pids[i]), 0);
}

START_TEST(max_memory_holds_under_load)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--arena-size", "1M", "--max-memory", "16M", NULL};
	e2e_start_daemon(&d, extra);
	pid_t pids[HOLDERS];
	uint64_t got[HOLDERS], total = 0;
	int go;
	start_holders(&d, pids, got, &go);
	for (int i = 0; i < HOLDERS; i++)
		total += got[i];
	ck_assert_uint_le(total, 16u << 20);
	ck_assert_uint_ge(total, 8u << 20);
	/* Everyone is at the cap: a newcomer is refused cleanly and served. */
	int fd = raw_peer(d.socket);
	raw_expect_error(raw_alloc_large(fd, 1u << 20), ENOMEM);
	raw_stats_ok(fd);
	close(fd);
	release_holders(pids, go);
	/* What they gave back can be had again.  (Small blocks: an arena, once
	 * created, counts against --max-memory even when empty, so whether a
	 * large block fits again depends on how the holders' load fell.) */
	ck_assert_int_eq(shma_connect(d.socket), 0);
	void *blocks[64];
	for (int i = 0; i < 64; i++) {
		/* The holders' last flushes may still be on their way. */
		for (int tries = 0; (blocks[i] = shma_malloc(65536)) == NULL && tries < 100; tries++)
			usleep(20000);
		ck_assert_ptr_nonnull(blocks[i]);
	}
	for (int i = 0; i < 64; i++)
		shma_free(blocks[i]);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

START_TEST(client_max_memory_holds_under_load)
{
	struct e2e_daemon d;
	const char *const extra[] = {"--client-max-memory", "3M", NULL};
	e2e_start_daemon(&d, extra);
	pid_t pids[HOLDERS];
	uint64_t got[HOLDERS];
	int go;
	start_holders(&d, pids, got, &go);
	for (int i = 0; i < HOLDERS; i++) {
		ck_assert_uint_le(got[i], 3u << 20);
		ck_assert_uint_ge(got[i], 1u << 20);
	}
	/* Each is at its own cap, not the daemon's: another client is served. */
	raw_still_serves(&d);
	release_holders(pids, go);
	e2e_stop_daemon(&d);
}
END_TEST

/* In a mount namespace of its own with a 16 MiB tmpfs on /dev/shm: a daemon
 * without --max-memory and a client that allocates and writes until ENOMEM.
 * 0, 77 when the namespace or the mount is not permitted, else a failure
 * (128 + signal if the client died of one: SIGBUS is what must not be). */
static int full_tmpfs_child(void)
{
	if (unshare(CLONE_NEWNS) != 0)
		return 77;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("shma-test", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777") != 0)
		return 77;
	struct statfs fs;
	if (statfs("/dev/shm", &fs) != 0 || (uint64_t)fs.f_blocks * fs.f_bsize != 16u << 20)
		return 30;
	struct e2e_daemon d;
	const char *const extra[] = {"--arena-size", "4M", NULL};
	e2e_start_daemon(&d, extra);
	int rep[2], go[2];
	if (pipe(rep) != 0 || pipe(go) != 0)
		return 31;
	pid_t pid = fork();
	if (pid == 0) {
		struct holder h = {d.socket, rep[1], go[0]};
		_exit(hold_until_enomem(&h));
	}
	uint64_t bytes = 0;
	if (read(rep[0], &bytes, sizeof bytes) != (ssize_t)sizeof bytes)
		return e2e_wait(pid);
	/* Most of the 16 MiB, never more. */
	if (bytes < (6u << 20) || bytes > (16u << 20))
		return 32;
	/* Full: a newcomer cannot have a control block; it is told so.  The
	 * daemon's two spares, made and reserved before /dev/shm filled, may go
	 * to the first two newcomers; the third finds none and no room. */
	int fds[3], n = 0, told = 0;
	while (n < 3 && !told) {
		int fd = fds[n++] = raw_connect(d.socket);
		Shma__Request req;
		Shma__Hello hh;
		wire_hello(&req, &hh, NULL, 0);
		Shma__Response *r = raw_call(fd, &req);
		if (r->body_case == SHMA__RESPONSE__BODY_ERROR &&
		    (r->error->code == ENOMEM || r->error->code == ENOSPC))
			told = 1;
		else if (r->body_case != SHMA__RESPONSE__BODY_HELLO)
			return 34;
		shma__response__free_unpacked(r, NULL);
	}
	if (!told)
		return 34;
	while (n > 0)
		close(fds[--n]);
	if (write(go[1], "g", 1) != 1)
		return 33;
	int rc = e2e_wait(pid);
	if (rc != 0)
		return rc;
	raw_still_serves(&d);
	e2e_stop_daemon(&d);
	return 0;
}

START_TEST(full_tmpfs_is_enomem_not_sigbus)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(full_tmpfs_child());
	int rc = e2e_wait(pid);
	if (rc == 77) {
		TEST_SKIP("cannot mount a tmpfs in a mount namespace here (needs CAP_SYS_ADMIN)");
		return;
	}
	ck_assert_msg(rc == 0, "the tmpfs run ended with %d (135 is SIGBUS)", rc);
}
END_TEST

Suite *make_limits_suite(void);
Suite *make_limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, max_memory_holds_under_load);
	tcase_add_test(tc, client_max_memory_holds_under_load);
	tcase_add_test(tc, full_tmpfs_is_enomem_not_sigbus);
	suite_add_tcase(s, tc);
	return s;
}
