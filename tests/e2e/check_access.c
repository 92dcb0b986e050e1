/* SPDX-License-Identifier: MIT */
/*
 * Access control (doc/architecture.md, Security): who may use a daemon, and what the file
 * system lets them reach.  The test runs as root and forks clients that
 * drop to another uid and gid, so it proves the real thing: a peer the
 * daemon does not list is refused with one EACCES Error and nothing else
 * happens; a listed uid, or a member of an --allow-gid group, allocates,
 * frees, and hands a block to root by ref; and the socket's directory, the
 * socket and every segment carry exactly the documented modes and group.
 * Without the right to change uid (not root, or a sandbox), each test says
 * so and passes without proving anything.
 */
#include "e2e.h"
#include "raw.h"
#include "instance.h"
#include "skip.h"
#include "shmalloc.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define OTHER_UID 65534 /* nobody */
#define OTHER_GID 65534
#define SHARED_GID 4242 /* the group a test lets in; no need to exist */
#define CANNOT_SWITCH 77

/* What a client under another uid reports back to the test. */
struct report {
	char socket[128];
	shma_ref_t ref; /* a block it left allocated for root */
	uint32_t size;
};

static struct report *report;

static uint8_t pattern(uint64_t seed, size_t i)
{
	return (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(seed, i);
}

static int intact(const uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern(seed, i))
			return 0;
	return 1;
}

/* Forks a process that becomes uid:gid (no supplementary groups) and runs
 * fn(arg); its exit status is fn's, or CANNOT_SWITCH. */
static pid_t fork_as(uid_t uid, gid_t gid, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
			_exit(CANNOT_SWITCH);
		_exit(fn(arg));
	}
	return pid;
}

static int do_nothing(void *arg)
{
	(void)arg;
	return 0;
}

/* 1 if this process may run children under another uid. */
static int can_switch_user(void)
{
	return geteuid() == 0 && e2e_wait(fork_as(OTHER_UID, OTHER_GID, do_nothing, NULL)) == 0;
}

static void setup(void)
{
	report = mmap(NULL, sizeof *report, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	ck_assert_ptr_ne(report, MAP_FAILED);
	memset(report, 0, sizeof *report);
}

static void teardown(void)
{
	munmap(report, sizeof *report);
}

/* Starts d with extra options and lets everyone traverse the test's own
 * temporary directory (mkdtemp makes it 0700): what is then in the way is
 * the daemon's business. */
static void start(struct e2e_daemon *d, const char *const *extra)
{
	e2e_start_daemon(d, extra);
	ck_assert_int_eq(chmod(d->dir, 0711), 0);
	snprintf(report->socket, sizeof report->socket, "%s", d->socket);
}

static void socket_dir(const struct e2e_daemon *d, char *out, size_t size)
{
	snprintf(out, size, "%s/sock", d->dir);
}

/* ---- (a) an unlisted uid ---- */

/* Speaks raw bytes: the daemon must answer EACCES before we say anything,
 * then close; the library reports the same. */
static int expect_refusal(void *arg)
{
	(void)arg;
	int fd = raw_connect(report->socket);
	if (fd < 0)
		return 2; /* the file system stopped us, not the daemon */
	uint8_t buf[512];
	int n = raw_read_frame(fd, buf, sizeof buf);
	if (n <= 0)
		return 3;
	Shma__Response *r = shma__response__unpack(NULL, (size_t)n, buf);
	int ok = r != NULL && r->body_case == SHMA__RESPONSE__BODY_ERROR &&
		 r->error->code == EACCES;
	if (r != NULL)
		shma__response__free_unpacked(r, NULL);
	if (!ok)
		return 4;
	if (!raw_closed(fd))
		return 5;
	close(fd);
	return shma_connect(report->socket) == -EACCES ? 0 : 6;
}

static int allocate_a_little(void *arg)
{
	(void)arg;
	void *p[64];
	for (unsigned i = 0; i < 64; i++)
		if ((p[i] = shma_malloc(16 + i * 40)) == NULL)
			return 1;
	for (unsigned i = 0; i < 64; i++)
		shma_free(p[i]);
	return 0;
}

START_TEST(an_unlisted_uid_gets_eacces_and_nothing_else)
{
	if (!can_switch_user()) {
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	struct e2e_daemon d;
	static const char *const open_socket[] = {"--socket-mode", "0666", NULL};
	start(&d, open_socket);
	char dir[128];
	socket_dir(&d, dir, sizeof dir);
	ck_assert_int_eq(chmod(dir, 0711), 0); /* the operator opened the way */
	/* The daemon listens before it makes its spare control blocks, and
	 * drops them on a timer when no Hello comes: the count of all segments
	 * once read 5, then 4.  So: once it said it listens (the spares are
	 * made), the segments that are not control blocks, the control blocks
	 * a client took, and the client ids given, none of which the spares
	 * change. */
	ck_assert(e2e_wait_log(&d, "listening on"));
	int segments = test_segments_not_control(d.instance);
	unsigned long long ids = test_client_ids_given(d.instance);
	ck_assert_int_eq(test_control_blocks_taken(d.instance), 0);
	ck_assert_int_eq(e2e_wait(fork_as(OTHER_UID, OTHER_GID, expect_refusal, NULL)), 0);
	/* One line per refused connection (the raw one and the library's), no
	 * control block given to anyone, and root is still served. */
	ck_assert_int_eq(e2e_log_count(&d, "refused pid"), 2);
	ck_assert_int_eq(e2e_log_count(&d, "uid 65534: this user may not use"), 2);
	ck_assert_int_eq(e2e_log_count(&d, "connected: pid"), 0);
	ck_assert_int_eq(test_segments_not_control(d.instance), segments);
	ck_assert_int_eq(test_control_blocks_taken(d.instance), 0);
	ck_assert_uint_eq(test_client_ids_given(d.instance), ids);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	ck_assert_int_eq(allocate_a_little(NULL), 0);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

/* ---- (b), (c): a listed uid, a member of a listed group ---- */

/* Allocates and frees blocks of every kind, then leaves one filled block
 * for root to read by ref. */
static int work_and_leave_a_block(void *arg)
{
	(void)arg;
	int rc = shma_connect(report->socket);
	if (rc != 0) {
		fprintf(stderr, "access: connect as uid %ld: %s\n", (long)getuid(),
			shma_strerror(rc));
		return 10;
	}
	if (allocate_a_little(NULL) != 0)
		return 11;
	void *large = shma_malloc(300000);
	if (large == NULL)
		return 12;
	memset(large, 0x5a, 300000);
	shma_free(large);
	uint8_t *p = shma_malloc(1000);
	if (p == NULL)
		return 13;
	report->size = 1000;
	report->ref = shma_ref(p);
	fill(p, report->size, report->ref);
	shma_disconnect();
	return 0;
}

/* As root: the block the other uid left is there, intact, and ours to free. */
static void root_reads_the_block(const struct e2e_daemon *d)
{
	ck_assert_uint_ne(report->ref, 0);
	ck_assert_int_eq(shma_connect(d->socket), 0);
	uint8_t *p = shma_ptr(report->ref);
	ck_assert_ptr_nonnull(p);
	ck_assert(intact(p, report->size, report->ref));
	shma_free(p);
	shma_disconnect();
}

START_TEST(a_listed_uid_allocates_and_passes_a_block_to_root)
{
	if (!can_switch_user()) {
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	struct e2e_daemon d;
	/* One other uid, without a group: the operator opens the directory,
	 * the socket and the segments to everyone; the daemon's list is the
	 * gate. */
	static const char *const listed[] = {"--allow-uid", "0", "--allow-uid", "65534",
					     "--socket-mode", "0666", "--segment-mode", "0666",
					     NULL};
	start(&d, listed);
	char dir[128];
	socket_dir(&d, dir, sizeof dir);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	ck_assert_int_eq(e2e_wait(fork_as(OTHER_UID, OTHER_GID, work_and_leave_a_block, NULL)), 0);
	ck_assert_int_eq(e2e_log_count(&d, "refused pid"), 0);
	ck_assert(e2e_log_has(&d, "uid 65534"));
	root_reads_the_block(&d);
	e2e_stop_daemon(&d);
}
END_TEST

/* ---- (e) another uid scribbles on everything it can open ---- */

struct scribble {
	char instance[48];
	unsigned writable;   /* segments it could open for writing */
	char last[300];      /* the name of the last one */
};

static struct scribble *scribbled;

/* As the other uid: allocates and frees (its caches hold blocks), writes
 * random bytes over every segment of the instance it can open for writing,
 * and dies by SIGKILL, so the daemon takes its caches back. */
static int scribble_and_die(void *arg)
{
	(void)arg;
	if (shma_connect(report->socket) != 0 || allocate_a_little(NULL) != 0)
		return 20;
	char prefix[96], path[400];
	snprintf(prefix, sizeof prefix, "shmalloc.%s.", scribbled->instance);
	DIR *dir = opendir("/dev/shm");
	if (dir == NULL)
		return 21;
	uint64_t x = 0x9E3779B97F4A7C15u;
	static uint64_t junk[8192];
	for (struct dirent *e; (e = readdir(dir)) != NULL;) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
		int fd = open(path, O_RDWR);
		if (fd < 0)
			continue;
		scribbled->writable++;
		snprintf(scribbled->last, sizeof scribbled->last, "%s", e->d_name);
		struct stat st;
		fstat(fd, &st);
		for (off_t off = 0; off < st.st_size; off += (off_t)sizeof junk) {
			for (unsigned i = 0; i < 8192; i++)
				junk[i] = (x = x * 6364136223846793005u + 1442695040888963407u);
			if (pwrite(fd, junk, sizeof junk, off) < 0)
				break;
		}
		close(fd);
	}
	closedir(dir);
	kill(getpid(), SIGKILL);
	return 22;
}

#define UNIQUE 20000

/* Allocates UNIQUE blocks of mixed sizes into out (kept). */
static int allocate_many(void *arg)
{
	void **out = arg;
	if (shma_connect(report->socket) != 0)
		return 30;
	for (unsigned i = 0; i < UNIQUE; i++)
		if ((out[i] = shma_malloc(16 + (i % 40) * 24)) == NULL)
			return 31;
	return 0;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
	return x < y ? -1 : x > y;
}

START_TEST(another_uid_scribbling_every_segment_it_opens_changes_nothing)
{
	if (!can_switch_user()) {
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	struct e2e_daemon d;
	static const char *const listed[] = {"--allow-uid", "0", "--allow-uid", "65534",
					     "--socket-mode", "0666", "--segment-mode", "0666",
					     "--arena-size", "4M", "--max-memory", "96M", NULL};
	start(&d, listed);
	char dir[128];
	socket_dir(&d, dir, sizeof dir);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	scribbled = mmap(NULL, sizeof *scribbled, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(scribbled, MAP_FAILED);
	memset(scribbled, 0, sizeof *scribbled);
	snprintf(scribbled->instance, sizeof scribbled->instance, "%s", d.instance);
	/* Root holds blocks of its own, and a control block, first. */
	ck_assert_int_eq(shma_connect(d.socket), 0);
	void **all = mmap(NULL, 3 * UNIQUE * sizeof *all, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(all, MAP_FAILED);
	for (unsigned i = 0; i < UNIQUE; i++)
		ck_assert_ptr_nonnull(all[i] = shma_malloc(16 + (i % 40) * 24));
	ck_assert_int_eq(e2e_wait(fork_as(OTHER_UID, OTHER_GID, scribble_and_die, NULL)),
			 128 + SIGKILL);
	/* The pages are all it could write: not the metadata, not the roots,
	 * no control block. */
	ck_assert_uint_eq(scribbled->writable, 1);
	ck_assert_msg(scribbled->last[strlen(scribbled->last) - 1] == 'p' &&
		      scribbled->last[strlen(scribbled->last) - 2] == '.',
		      "it could write %s", scribbled->last);
	/* The daemon serves on, and hands no block out twice: root's, those of
	 * a new process and root's new ones are all distinct. */
	ck_assert_int_eq(kill(d.pid, 0), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(allocate_many(all + UNIQUE));
	ck_assert_int_eq(e2e_wait(pid), 0);
	ck_assert_int_eq(allocate_many(all + 2 * UNIQUE), 0);
	qsort(all, 3 * UNIQUE, sizeof *all, cmp_ptr);
	for (unsigned i = 1; i < 3 * UNIQUE; i++)
		ck_assert_msg(all[i] != all[i - 1], "block %p handed out twice", all[i]);
	munmap(all, 3 * UNIQUE * sizeof *all);
	munmap(scribbled, sizeof *scribbled);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

/* The group, and root to read what its members leave. */
static const char *const group_listed[] = {"--allow-gid", "4242", "--allow-uid", "0", NULL};

START_TEST(a_member_of_an_allowed_group_gets_in)
{
	if (!can_switch_user()) {
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	struct e2e_daemon d;
	start(&d, group_listed);
	/* Nothing opened by hand: the group modes must be enough. */
	ck_assert_int_eq(e2e_wait(fork_as(OTHER_UID, SHARED_GID, work_and_leave_a_block, NULL)),
			 0);
	ck_assert_int_eq(e2e_log_count(&d, "refused pid"), 0);
	root_reads_the_block(&d);
	e2e_stop_daemon(&d);
}
END_TEST

/* Runs as a non-member: neither the file system nor the daemon lets it in. */
static int expect_no_entry(void *arg)
{
	(void)arg;
	return shma_connect(report->socket) == -EACCES ? 0 : 1;
}

START_TEST(a_non_member_stays_out)
{
	if (!can_switch_user()) {
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	struct e2e_daemon d;
	start(&d, group_listed);
	ck_assert_int_eq(e2e_wait(fork_as(OTHER_UID, OTHER_GID, expect_no_entry, NULL)), 0);
	ck_assert_int_eq(e2e_log_count(&d, "connected: pid"), 0);
	e2e_stop_daemon(&d);
}
END_TEST

/* ---- (d) modes ---- */

static void assert_mode(const char *path, mode_t mode, gid_t gid)
{
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	ck_assert_msg((st.st_mode & 07777) == mode, "%s has mode %04o, not %04o", path,
		      (unsigned)(st.st_mode & 07777), (unsigned)mode);
	ck_assert_msg(st.st_uid == geteuid(), "%s is owned by uid %ld", path, (long)st.st_uid);
	ck_assert_msg(st.st_gid == gid, "%s has group %ld, not %ld", path, (long)st.st_gid,
		      (long)gid);
}

/* Every segment of the instance: the pages, the metadata, the manifest and
 * a control block at least.  Metadata ('M', 'm', 'h') is writable by its owner
 * alone, whatever the mode: no client may change what is allocated; a
 * control block is 0600 (its client gets its descriptor from the daemon). */
static void assert_segment_modes(const struct e2e_daemon *d, mode_t mode, gid_t gid)
{
	char prefix[96], path[400];
	snprintf(prefix, sizeof prefix, "shmalloc.%s.", d->instance);
	DIR *dir = opendir("/dev/shm");
	ck_assert_ptr_nonnull(dir);
	unsigned kinds = 0;
	for (struct dirent *e; (e = readdir(dir)) != NULL;) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
		const char *kind = strchr("pMcm", e->d_name[strlen(prefix)]);
		int meta = (kind != NULL && (*kind == 'M' || *kind == 'm')) ||
			   e->d_name[strlen(prefix)] == 'h'; /* the named heaps' registry */
		/* A control block is its client's alone: it gets the fd. */
		if (kind != NULL && *kind == 'c')
			assert_mode(path, 0600, gid);
		else
			assert_mode(path, meta ? mode & ~(mode_t)022 : mode, gid);
		if (kind != NULL)
			kinds |= 1u << (kind - "pMcm");
	}
	closedir(dir);
	ck_assert_uint_eq(kinds, 15);
}

/* Makes a client of every kind of segment and keeps it connected. */
static void hold_every_kind(void **large)
{
	ck_assert_int_eq(allocate_a_little(NULL), 0);
	*large = shma_malloc(300000);
	ck_assert_ptr_nonnull(*large);
}

START_TEST(default_modes_are_owner_only)
{
	struct e2e_daemon d;
	e2e_start_daemon(&d, NULL);
	ck_assert_int_eq(shma_connect(d.socket), 0);
	void *large;
	hold_every_kind(&large);
	char dir[128];
	socket_dir(&d, dir, sizeof dir);
	assert_mode(dir, 0700, getegid());
	assert_mode(d.socket, 0600, getegid());
	assert_segment_modes(&d, 0600, getegid());
	shma_free(large);
	shma_disconnect();
	e2e_stop_daemon(&d);
}
END_TEST

static int hold_and_report_modes(void *arg)
{
	(void)arg;
	if (shma_connect(report->socket) != 0)
		return 1;
	void *large;
	hold_every_kind(&large);
	report->size = 1; /* holding */
	pause();
	return 0;
}

START_TEST(group_modes_with_allow_gid)
{
	if (!can_switch_user()) {
		TEST_SKIP("this process may not change its uid (not root?)");
		return;
	}
	struct e2e_daemon d;
	start(&d, group_listed);
	pid_t member = fork_as(OTHER_UID, SHARED_GID, hold_and_report_modes, NULL);
	for (int i = 0; i < 500 && report->size == 0; i++)
		usleep(10000);
	ck_assert_uint_eq(report->size, 1);
	char dir[128];
	socket_dir(&d, dir, sizeof dir);
	/* The set-group-ID bit gives the socket the directory's group. */
	assert_mode(dir, 02750, SHARED_GID);
	assert_mode(d.socket, 0660, SHARED_GID);
	assert_segment_modes(&d, 0660, SHARED_GID);
	kill(member, SIGKILL);
	e2e_wait(member);
	e2e_stop_daemon(&d);
}
END_TEST

Suite *make_access_suite(void);
Suite *make_access_suite(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("access");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, an_unlisted_uid_gets_eacces_and_nothing_else);
	tcase_add_test(tc, a_listed_uid_allocates_and_passes_a_block_to_root);
	tcase_add_test(tc, a_member_of_an_allowed_group_gets_in);
	tcase_add_test(tc, a_non_member_stays_out);
	tcase_add_test(tc, default_modes_are_owner_only);
	tcase_add_test(tc, group_modes_with_allow_gid);
	tcase_add_test(tc, another_uid_scribbling_every_segment_it_opens_changes_nothing);
	suite_add_tcase(s, tc);
	return s;
}
