/* SPDX-License-Identifier: MIT */
/*
 * Issue 21: an allowed client of another uid attacks the files the daemon
 * gave it (its control block), and the daemon must live on and serve the
 * other uid.  Real users (users.h): the daemon is root's, started with
 * --allow-gid of a group "served" that holds an attacker and a victim.
 * Without root or the shadow tools each test says "SKIP: ..." and proves
 * nothing.
 */
#include "e2e.h"
#include "raw.h"
#include "users.h"
#include "skip.h"
#include "shmalloc.h"
#include "layout.h"
#include "sizeclass.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct user attacker, victim, outsider;
static char served_group[CAST_NAME], outsider_group[CAST_NAME];
static struct cast cast = {
	.groups = {{served_group, "hs"}, {outsider_group, "ho"}},
	.users = {{&attacker, "ha", 0, 0}, {&victim, "hv", 0, 0}, {&outsider, "ho", 1, 0}},
};
#define have_users (cast.ready)
#define why_not (cast.why_not)

CAST_FIXTURE(cast)

/* Without the users: says why and returns, proving nothing. */
#define USERS_OR_SKIP()                                                                    \
	do {                                                                               \
		if (!have_users) {                                                         \
			TEST_SKIP("%s", why_not);                                          \
			return;                                                            \
		}                                                                          \
	} while (0)

static struct e2e_daemon d;
static void start_with(const char *o1, const char *v1, const char *o2, const char *v2);

static void start(void)
{
	start_with(NULL, NULL, NULL, NULL);
}

/* What tmpfs holds of a block, measured by a child that keeps its descriptor. */
static struct hole_report {
	int64_t before, after;
} *holes;

/* Pipes: child -> test ("done"), test -> child ("go on"). */
static int up[2], down[2];

static void start_with(const char *o1, const char *v1, const char *o2, const char *v2)
{
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)victim.gid);
	const char *const opts[] = {"--allow-gid", gid, "--allow-uid", "0", o1, v1, o2, v2, NULL};
	e2e_start_daemon(&d, opts);
	holes = mmap(NULL, sizeof *holes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	ck_assert_ptr_ne(holes, MAP_FAILED);
	ck_assert_int_eq(chmod(d.dir, 0711), 0);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
}

static void say(int fd)
{
	char c = 1;
	(void)!write(fd, &c, 1);
}

static int hear(int fd)
{
	char c;
	return read(fd, &c, 1) == 1;
}

/* Waits (5 s at most) for a line of the daemon's log with needle. */
static int logged(const char *needle)
{
	for (int i = 0; i < 500; i++) {
		if (e2e_log_has(&d, needle))
			return 1;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* The daemon runs (not dead, not a zombie) and serves the victim's uid. */
static int allocate_a_little(void *arg)
{
	return shma_connect(d.socket) != 0 ? 10 : e2e_allocate_a_little(arg);
}

static void still_serves_the_victim(void)
{
	ck_assert_int_eq(waitpid(d.pid, NULL, WNOHANG), 0);
	ck_assert_int_eq(run_as(&victim, allocate_a_little, NULL), 0);
	raw_still_serves(&d);
}

static void finish(void)
{
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	munmap(holes, sizeof *holes);
	e2e_stop_daemon(&d);
}

/* The descriptor of this process's control block (the library keeps it). */
static int control_fd(void)
{
	char want[96], link[256], path[300];
	snprintf(want, sizeof want, "/dev/shm/shmalloc.%s.c", d.instance);
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL)
		return -1;
	struct dirent *e;
	int fd = -1;
	while (fd < 0 && (e = readdir(dir)) != NULL) {
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strncmp(link, want, strlen(want)) == 0)
			fd = atoi(e->d_name);
	}
	closedir(dir);
	return fd;
}

/* Connects, allocates (the caches exist), and finds the block's descriptor:
 * it, or -10, -1, -2 for what failed. */
static int connect_for_block(void)
{
	if (shma_connect(d.socket) != 0)
		return -10;
	if (shma_malloc(64) == NULL)
		return -1;
	int fd = control_fd();
	return fd < 0 ? -2 : fd;
}

/* ---- (1) ftruncate of its own control block ---- */

static int truncate_own_block(void *arg)
{
	(void)arg;
	int fd = connect_for_block();
	if (fd < 0)
		return -fd;
	if (ftruncate(fd, 0) != 0)
		return 3;
	say(up[1]);
	/* The daemon reads the block for a Stats (the test's); then we go,
	 * and it reads it again to take our caches back. */
	hear(down[0]);
	_exit(0);
}

START_TEST(a_client_truncating_its_control_block_stops_nobody)
{
	USERS_OR_SKIP();
	start();
	pid_t pid = fork_as(&attacker, truncate_own_block, NULL);
	ck_assert(hear(up[0]));
	int fd = raw_peer(d.socket);
	raw_stats_ok(fd); /* today: SIGBUS in the daemon, no answer */
	close(fd);
	say(down[1]);
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert(logged("control block was cut short"));
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (3) bins marked full over refs it never reserved ---- */

static int64_t resident(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (int64_t)st.st_blocks * 512 : -1;
}

#define LIAR_SLOT (SHMA_CONTROL_SLOTS_RESERVED - 1) /* its header reserved, its refs not */


/* Marks every bin of a slot it never used full and claims every slot,
 * then leaves; a child that
 * keeps the block's descriptor measures what tmpfs holds of it after the
 * daemon took the caches back. */
static int lie_about_bins(void *arg)
{
	(void)arg;
	int fd = connect_for_block();
	if (fd < 0)
		return -fd;
	size_t len = offsetof(struct control_block, refs);
	struct control_block *cb = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (cb == MAP_FAILED)
		return 3;
	struct control_slot *sl = &cb->slots[LIAR_SLOT];
	for (unsigned cls = 0; cls < SIZECLASS_COUNT; cls++)
		sl->bins[cls].count = layout_bin_capacity(cls);
	__atomic_store_n(&sl->in_use, 1, __ATOMIC_RELEASE);
	/* And every slot there is taken, none of their headers reserved. */
	__atomic_store_n(&cb->hdr.slots_taken, SHMA_CONTROL_SLOTS, __ATOMIC_RELEASE);
	holes->before = resident(fd);
	pid_t keeper = fork();
	if (keeper < 0)
		return 4;
	if (keeper == 0) {
		hear(down[0]);
		holes->after = resident(fd);
		say(up[1]);
		_exit(0);
	}
	_exit(0); /* no goodbye: the daemon walks the caches of the dead */
}

START_TEST(bins_over_unreserved_refs_make_no_tmpfs_pages)
{
	USERS_OR_SKIP();
	start();
	ck_assert_int_eq(run_as(&attacker, lie_about_bins, NULL), 0);
	/* Every ref of the liar's slot is refused (today: read as zeros, after
	 * tmpfs made a page for each). */
	ck_assert(logged("refs of its caches refused"));
	say(down[1]);
	ck_assert(hear(up[0]));
	ck_assert_int_gt(holes->before, 0);
	/* Today: + 432 KiB (one slot's refs: 55296 of 8 bytes) and 29 MiB
	 * (the headers of slots 64..16383). */
	ck_assert_int_eq(holes->after, holes->before);
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (4) fallocate of its own control block ---- */

#define GRAB ((off_t)256 << 20)

/* Fills 256 MiB of its block's pages with fallocate (inside its size: no
 * seal would stop it); a child keeps the descriptor and measures. */
static int fallocate_own_block(void *arg)
{
	(void)arg;
	int fd = connect_for_block();
	if (fd < 0)
		return -fd;
	if (fallocate(fd, 0, 0, GRAB) != 0)
		return 3;
	holes->before = resident(fd);
	say(up[1]);
	hear(down[0]);
	holes->after = resident(fd);
	say(up[1]);
	_exit(0);
}

START_TEST(a_client_filling_its_control_block_is_emptied)
{
	USERS_OR_SKIP();
	start_with("--client-max-memory", "16M", "--decay", "0.2");
	pid_t pid = fork_as(&attacker, fallocate_own_block, NULL);
	ck_assert(hear(up[0]));
	ck_assert_int_ge(holes->before, GRAB / 2);
	/* Today: nothing is said, the 256 MiB stay. */
	ck_assert(logged("its control block holds"));
	say(down[1]);
	ck_assert(hear(up[0]));
	ck_assert_int_lt(holes->after, (int64_t)1 << 20);
	ck_assert_int_eq(e2e_wait(pid), 0);
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (2) ftruncate of the pages segment ---- */

static int cut_pages(void *arg)
{
	(void)arg;
	char name[128];
	snprintf(name, sizeof name, "/shmalloc.%s.p", d.instance);
	int fd = shm_open(name, O_RDWR, 0);
	if (fd < 0)
		return 1;
	int rc = ftruncate(fd, 0) == 0 ? 0 : 2;
	close(fd);
	return rc;
}

START_TEST(a_client_cutting_the_pages_segment_is_undone)
{
	USERS_OR_SKIP();
	start();
	ck_assert_int_eq(run_as(&victim, allocate_a_little, NULL), 0);
	ck_assert_int_eq(run_as(&attacker, cut_pages, NULL), 0);
	/* The next Hello finds it first (no --decay tick: 2.5 s away);
	 * today: EPROTO for every new client from then on. */
	still_serves_the_victim();
	ck_assert(logged("was cut to 0 bytes by a client"));
	/* Cut while the daemon is down: today the restart refuses the heap. */
	e2e_kill_daemon(&d);
	ck_assert_int_eq(run_as(&attacker, cut_pages, NULL), 0);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)victim.gid);
	const char *const opts[] = {"--allow-gid", gid, "--allow-uid", "0", "--cleanup", NULL};
	ck_assert_int_eq(e2e_restart_daemon(&d, opts), 0);
	ck_assert(logged("cut to 0 bytes while the daemon was down"));
	still_serves_the_victim();
	finish();
}
END_TEST

/* A daemon SIGKILLed between a control block's open and its truncate (a
 * spare made 2 ms after a Hello) leaves an empty file of its own, of root's
 * group rather than the served one: the restarted daemon removes it, and a
 * --cleanup stop leaves no segment.  Planted bug: recovery leaving every
 * file not of the configured group alone (seg_drop_stillborn() not asked)
 * -- a_client_cutting_the_pages_segment_is_undone failed so now and then
 * in CI with "test_segments_left == 1". */
START_TEST(a_control_block_cut_short_by_a_kill_is_removed_at_the_restart)
{
	USERS_OR_SKIP();
	start();
	ck_assert_int_eq(run_as(&victim, allocate_a_little, NULL), 0);
	e2e_kill_daemon(&d);
	char name[128];
	snprintf(name, sizeof name, "/shmalloc.%s.c%u", d.instance, 999999u);
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)victim.gid);
	const char *const opts[] = {"--allow-gid", gid, "--allow-uid", "0", "--cleanup", NULL};
	ck_assert_int_eq(e2e_restart_daemon(&d, opts), 0);
	ck_assert(logged("empty, its creation cut short: removed"));
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (11) an outsider's empty files under the names the daemon tries ---- */

#define SQUATTED 40 /* the name and base-1..base-40: past the 16 it tried */

static char squat_instance[48];

static int squat_names(void *arg)
{
	(void)arg;
	char name[128];
	for (unsigned n = 0; n <= SQUATTED; n++) {
		if (n == 0)
			snprintf(name, sizeof name, "/shmalloc.%s.M", squat_instance);
		else
			snprintf(name, sizeof name, "/shmalloc.%s-%u.M", squat_instance, n);
		int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0644);
		if (fd < 0)
			return 1;
		close(fd);
	}
	return 0;
}

static int serve_at(void *arg)
{
	const char *socket = arg;
	if (shma_connect(socket) != 0)
		return 10;
	void *p = shma_malloc(100);
	if (p == NULL)
		return 1;
	shma_free(p);
	shma_disconnect();
	return 0;
}

START_TEST(squatted_names_past_the_first_sixteen_do_not_stop_a_start)
{
	USERS_OR_SKIP();
	struct e2e_daemon sd;
	scratch_daemon(&sd, "sock");
	strcpy(squat_instance, sd.instance);
	ck_assert_int_eq(run_as(&outsider, squat_names, NULL), 0);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)victim.gid);
	const char *const opts[] = {"--allow-gid", gid, NULL};
	/* Today: "refusing to start: other users' files sit under ...". */
	ck_assert_int_eq(e2e_restart_daemon(&sd, opts), 0);
	char moved[128];
	snprintf(moved, sizeof moved, "using instance %s-%u", sd.instance, SQUATTED + 1);
	ck_assert(e2e_log_has(&sd, moved));
	ck_assert_int_eq(chmod(sd.dir, 01777), 0);
	ck_assert_int_eq(run_as(&victim, serve_at, sd.socket), 0);
	/* Restarted, it finds its own heap under the name it moved to. */
	e2e_kill_daemon(&sd);
	ck_assert_int_eq(e2e_restart_daemon(&sd, opts), 0);
	ck_assert_int_eq(e2e_log_count(&sd, moved), 2);
	ck_assert(e2e_log_has(&sd, "recovered instance"));
	ck_assert_int_eq(run_as(&victim, serve_at, sd.socket), 0);
	e2e_kill_daemon(&sd);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -f /dev/shm/shmalloc.%s.* /dev/shm/shmalloc.%s-*",
		 sd.instance, sd.instance);
	ck_assert_int_eq(system(cmd), 0);
	scratch_daemon_remove(&sd);
}
END_TEST

/* ---- (5) a new connection each time one reaches --client-max-memory ---- */

#define ROUNDS 17
#define CAP5 ((uint64_t)16 << 20)

/* Refills 4 KiB objects on fd until ENOMEM: the bytes it got. */
static uint64_t refill_until_refused(int fd)
{
	unsigned cls = sizeclass_of(4096);
	uint64_t size = sizeclass_size(cls), got = 0;
	for (;;) {
		Shma__Response *r = raw_refill(fd, cls, 64);
		int done = r->body_case != SHMA__RESPONSE__BODY_REFILL;
		if (!done) {
			uint64_t n = r->refill->n_refs;
			for (size_t k = 0; k < r->refill->n_runs; k++)
				n += r->refill->runs[k]->count;
			got += n * size;
		}
		shma__response__free_unpacked(r, NULL);
		if (done)
			return got;
	}
}

/* 16 rounds of: a connection, refills to the cap, the connection closed
 * (no goodbye) and seen closed; the total in holes->after. */
static int reconnect_at_the_cap(void *arg)
{
	(void)arg;
	int watch = raw_peer(d.socket); /* takes nothing: it sees the others' ends */
	uint64_t total = 0;
	for (int i = 0; i < ROUNDS; i++) {
		int fd = raw_peer(d.socket);
		total += refill_until_refused(fd);
		close(fd);
		if (raw_wait_connections_of(watch, getpid(), 1) != 1)
			return 2;
	}
	holes->after = (int64_t)total;
	close(watch);
	return 0;
}

START_TEST(reconnecting_at_the_cap_gains_nothing)
{
	USERS_OR_SKIP();
	start_with("--client-max-memory", "16M", "--max-memory", "256M");
	ck_assert_int_eq(run_as(&attacker, reconnect_at_the_cap, NULL), 0);
	/* Today: 249 MiB, all of --max-memory, taken 16 MiB at a time. */
	ck_assert_msg((uint64_t)holes->after <= CAP5, "one process took %lld bytes under a cap "
		      "of 16 MiB", (long long)holes->after);
	ck_assert_int_ge(holes->after, (int64_t)(CAP5 - ((uint64_t)256 << 10)));
	printf("case 5: one pid, %d connections, took %lld bytes of --client-max-memory 16M\n",
	       ROUNDS, (long long)holes->after);
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (6) per-uid counts across a restart ---- */

static const char *const *restart_opts(void)
{
	static char gid[16];
	static const char *opts[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)victim.gid);
	const char *const o[] = {"--allow-gid", gid, "--allow-uid", "0", "--uid-max-roots", "4",
				 "--uid-max-orphans", "3", "--cleanup", NULL};
	memcpy(opts, o, sizeof o);
	return opts;
}

static Shma__Response *publish_one(int fd, unsigned i, uint64_t ref)
{
	char name[32];
	snprintf(name, sizeof name, "h21-case6-%u", i);
	return raw_publish(fd, name, ref);
}

/* Before the restart: 4 roots (the 5th refused), one orphan; after: the 5th
 * root and a Hello past 3 orphans must be refused still. */
static int counts_across_a_restart(void *arg)
{
	(void)arg;
	uint64_t refs[8];
	int fd = raw_peer(d.socket);
	if (raw_refill_refs(fd, sizeclass_of(64), 8, refs) < 5)
		return 2;
	for (unsigned i = 0; i < 4; i++)
		raw_expect_ok(publish_one(fd, i, refs[i]));
	raw_expect_error(publish_one(fd, 4, refs[4]), EAGAIN);
	int orphan = raw_peer(d.socket);
	close(orphan);
	say(up[1]);
	hear(down[0]); /* the daemon was killed and restarted: fd is dead */
	close(fd);
	int c1 = raw_peer(d.socket);
	Shma__Response *r = publish_one(c1, 4, refs[4]);
	int roots_held = r->body_case == SHMA__RESPONSE__BODY_ERROR && r->error->code == EAGAIN;
	shma__response__free_unpacked(r, NULL);
	close(c1); /* a third orphan: fd's and orphan's blocks came back as two */
	say(up[1]);
	hear(down[0]);
	int c2 = raw_connect(d.socket);
	Shma__Request req;
	Shma__Hello h;
	wire_hello(&req, &h, NULL, 0);
	r = raw_call(c2, &req);
	int orphans_held = r->body_case == SHMA__RESPONSE__BODY_ERROR && r->error->code == EAGAIN;
	shma__response__free_unpacked(r, NULL);
	close(c2);
	return (roots_held ? 0 : 4) | (orphans_held ? 0 : 8);
}

START_TEST(per_user_counts_survive_a_restart)
{
	USERS_OR_SKIP();
	start_with("--uid-max-roots", "4", "--uid-max-orphans", "3");
	pid_t pid = fork_as(&attacker, counts_across_a_restart, NULL);
	ck_assert(hear(up[0]));
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, restart_opts()), 0);
	say(down[1]);
	ck_assert(hear(up[0]));
	int fd = raw_peer(d.socket);
	ck_assert_int_eq(raw_wait_connections_of(fd, pid, 0), 0);
	close(fd);
	say(down[1]);
	/* Today 12: the 5th root published and the Hello served (the counts
	 * began at 0 after the restart: four restarts x 1024 roots filled the
	 * instance's 4096). */
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert(logged("4 roots of an earlier run counted on their publishers"));
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (7) connections that never read; orphans' address space ---- */

#define SILENT 64
#define LONG_NAME 240

/* Publishes 1024 roots of long names (a Roots answer is then ~270 KiB), then
 * opens 64 connections that each ask 64 Roots and never read. */
static int never_read(void *arg)
{
	(void)arg;
	static uint64_t refs[1024];
	int fd = raw_peer(d.socket);
	if (raw_refill_refs(fd, sizeclass_of(16), 1024, refs) != 1024)
		return 2;
	for (unsigned i = 0; i < 1024; i++) {
		char name[LONG_NAME + 1];
		memset(name, 'r', LONG_NAME);
		snprintf(name + LONG_NAME - 8, 9, "%08u", i);
		raw_expect_ok(raw_publish(fd, name, refs[i]));
	}
	int conns[SILENT];
	for (int i = 0; i < SILENT; i++) {
		conns[i] = raw_peer(d.socket);
		for (int k = 0; k < 64; k++) {
			Shma__Request req;
			Shma__Roots rr;
			wire_roots(&req, &rr);
			raw_send_next(conns[i], &req);
		}
	}
	say(up[1]);
	hear(down[0]);
	for (int i = 0; i < SILENT; i++)
		close(conns[i]);
	close(fd);
	return 0;
}

START_TEST(connections_that_never_read_cost_one_bound)
{
	USERS_OR_SKIP();
	start();
	long before = raw_daemon_rss_kib(&d);
	pid_t pid = fork_as(&attacker, never_read, NULL);
	ck_assert(hear(up[0]));
	/* The daemon has read what it will once it answers us after them. */
	int fd = raw_peer(d.socket);
	long grown = 0;
	for (int i = 0; i < 20; i++) {
		raw_stats_ok(fd);
		long now = raw_daemon_rss_kib(&d) - before;
		grown = now > grown ? now : grown;
	}
	close(fd);
	printf("case 7: %d connections that never read: the daemon grew %ld KiB\n", SILENT,
	       grown);
	/* Today: 595 MiB (8 MiB of answers each, and their read buffers);
	 * --uid-max-buffers 64M, and one answer a connection past it. */
	ck_assert_int_lt(grown, 128 << 10);
	say(down[1]);
	ck_assert_int_eq(e2e_wait(pid), 0);
	still_serves_the_victim();
	finish();
}
END_TEST

#define ORPHANS 64

/* 64 connections ended without a goodbye while the process lives on: 64
 * orphans, until it exits. */
static int leave_orphans(void *arg)
{
	(void)arg;
	for (int i = 0; i < ORPHANS; i++)
		close(raw_peer(d.socket));
	say(up[1]);
	hear(down[0]);
	return 0;
}

START_TEST(orphaned_control_blocks_take_no_address_space)
{
	USERS_OR_SKIP();
	start_with("--decay", "0.2", NULL, NULL);
	long before = raw_daemon_status_kib(&d, "VmSize");
	pid_t pid = fork_as(&attacker, leave_orphans, NULL);
	ck_assert(hear(up[0]));
	int fd = raw_peer(d.socket);
	ck_assert_int_eq(raw_wait_connections_of(fd, pid, 0), 0);
	long grown = raw_daemon_status_kib(&d, "VmSize") - before;
	printf("case 7: %d orphaned control blocks: the daemon's address space grew %ld KiB\n",
	       ORPHANS, grown);
	/* Today: 64 x 6.8 GiB = 435 GiB (1024 of one user: 7 TiB). */
	ck_assert_int_lt(grown, 1L << 20);
	say(down[1]);
	ck_assert_int_eq(e2e_wait(pid), 0);
	/* Gone, their blocks are mapped again to be walked, and removed. */
	char name[128];
	int left = 1;
	for (int i = 0; i < 500 && left; i++) {
		left = 0;
		DIR *dir = opendir("/dev/shm");
		ck_assert_ptr_nonnull(dir);
		snprintf(name, sizeof name, "shmalloc.%s.c", d.instance);
		struct dirent *e;
		while ((e = readdir(dir)) != NULL)
			left += strncmp(e->d_name, name, strlen(name)) == 0;
		closedir(dir);
		left = left > 3; /* the test's own connection and two spares */
		if (left)
			usleep(10000);
	}
	ck_assert(!left);
	ck_assert(!e2e_log_has(&d, "cannot be mapped again"));
	raw_stats_ok(fd);
	close(fd);
	still_serves_the_victim();
	finish();
}
END_TEST

/* ---- (12) squatted control-block names ---- */

#define SQUATTED_CTL 140000

/* The names after the running daemon's last ids, c1..c140000 (c1 and c2,
 * the spares it made at start, are its own). */
static int squat_control_names(void *arg)
{
	(void)arg;
	char name[128];
	for (unsigned n = 1; n <= SQUATTED_CTL; n++) {
		snprintf(name, sizeof name, "/shmalloc.%s.c%u", d.instance, n);
		int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0644);
		if (fd >= 0)
			close(fd);
		else if (errno != EEXIST)
			return 1;
	}
	return 0;
}

/* Removes the outsider's files under control-block names of d's instance
 * (not with find(1): other programs' files vanishing under its walk of
 * /dev/shm make it fail). */
static void remove_squats(void)
{
	char prefix[96];
	int n = snprintf(prefix, sizeof prefix, "shmalloc.%s.c", d.instance);
	DIR *dir = opendir("/dev/shm");
	ck_assert_ptr_nonnull(dir);
	struct dirent *e;
	struct stat st;
	while ((e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, prefix, (size_t)n) == 0 &&
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_uid == outsider.uid)
			ck_assert(unlinkat(dirfd(dir), e->d_name, 0) == 0 || errno == ENOENT);
	closedir(dir);
}

START_TEST(squatted_control_block_names_neither_refuse_nor_stall)
{
	USERS_OR_SKIP();
	start();
	ck_assert_int_eq(run_as(&outsider, squat_control_names, NULL), 0);
	/* Today: the first Hello takes a spare, the next spare tries 65 536
	 * names (~300 ms of the loop), the second Hello takes the other spare,
	 * and the third tries 65 537 more and is refused. */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(run_as(&victim, allocate_a_little, NULL), 0);
	/* One jump, one more shm_open: the next id is nobody's guess. */
	ck_assert(logged("was taken: ids jumped"));
	ck_assert(e2e_log_has(&d, "(1 tries)"));
	still_serves_the_victim();
	remove_squats();
	finish();
}
END_TEST

Suite *make_harden_suite(void);
Suite *make_harden_suite(void)
{
	Suite *s = suite_create("harden");
	TCase *tc = tcase_create("attacks");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_client_truncating_its_control_block_stops_nobody);
	tcase_add_test(tc, bins_over_unreserved_refs_make_no_tmpfs_pages);
	tcase_add_test(tc, a_client_filling_its_control_block_is_emptied);
	tcase_add_test(tc, a_client_cutting_the_pages_segment_is_undone);
	tcase_add_test(tc, a_control_block_cut_short_by_a_kill_is_removed_at_the_restart);
	tcase_add_test(tc, squatted_names_past_the_first_sixteen_do_not_stop_a_start);
	tcase_add_test(tc, reconnecting_at_the_cap_gains_nothing);
	tcase_add_test(tc, per_user_counts_survive_a_restart);
	tcase_add_test(tc, connections_that_never_read_cost_one_bound);
	tcase_add_test(tc, orphaned_control_blocks_take_no_address_space);
	suite_add_tcase(s, tc);
	/* 140 000 files made in /dev/shm take their time. */
	tc = tcase_create("squatted_names");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, squatted_control_block_names_neither_refuse_nor_stall);
	suite_add_tcase(s, tc);
	return s;
}
