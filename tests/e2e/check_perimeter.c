/*
 * The perimeter (DESIGN.md §7): attacks by another user on the socket's
 * directory, on the daemon's segment names, and by a daemon of another user
 * on the clients.  Each test creates the real users it needs (useradd,
 * unique names per run, removed at the end) and forks processes that become
 * them, so it proves the real thing; without root or useradd it prints
 * "SKIP: <test>: <why>" to stderr and proves nothing.
 *
 * The attacks, each of which worked before the perimeter:
 *   - a squatter's directory where the socket goes (0777, 0700 of his, a
 *     symlink to his): the daemon listened inside it;
 *   - a squatter's own daemon on the victim's socket path: the library
 *     connected and trusted it;
 *   - segments created under the names the daemon wants: it adopted them,
 *     or refused to start, or failed every Hello.
 */
#include "e2e.h"
#include "instance.h"
#include "layout.h"
#include "seg.h"
#include "shmalloc.h"
#include "sizeclass.h"
#include "users.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* attacker: a group of his own; daemon and victim: the group "served". */
static struct user attacker, sysd, victim;
static char attacker_group[32], served_group[32];
static int have_users;
static char why_not[128];

/* Unchecked fixture (in the runner, once): the users. */
static void users_create(void)
{
	have_users = 0;
	if (geteuid() != 0) {
		snprintf(why_not, sizeof why_not, "not root: cannot create users");
		return;
	}
	if (make_group(attacker_group, sizeof attacker_group, "ga") != 0 ||
	    make_group(served_group, sizeof served_group, "gs") != 0 ||
	    make_user(&attacker, "a", attacker_group) != 0 ||
	    make_user(&sysd, "d", served_group) != 0 || make_user(&victim, "v", served_group) != 0) {
		snprintf(why_not, sizeof why_not, "useradd/groupadd failed (no shadow tools?)");
		return;
	}
	have_users = 1;
}

static void users_remove(void)
{
	remove_user(&attacker);
	remove_user(&sysd);
	remove_user(&victim);
	remove_group(attacker_group);
	remove_group(served_group);
}

static int users_or_skip(const char *test)
{
	if (!have_users)
		fprintf(stderr, "SKIP: %s: %s\n", test, why_not);
	return have_users;
}

/* A scratch directory like /tmp (root's, 01777): any user may make names in
 * it, none may take another's.  The daemon's socket goes in <top>/<sub>/. */
static struct e2e_daemon d;

static void scratch(const char *sub)
{
	memset(&d, 0, sizeof d);
	strcpy(d.dir, "/tmp/shp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d.dir));
	ck_assert_int_eq(chmod(d.dir, 01777), 0);
	snprintf(d.socket, sizeof d.socket, "%s/%s/s.sock", d.dir, sub);
	snprintf(d.log, sizeof d.log, "%s/daemon.log", d.dir);
	test_instance(d.instance, sizeof d.instance);
}

static void scratch_remove(void)
{
	e2e_cleanup_daemon(&d);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", d.dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char arg_path[128];

static int make_dir_0777(void *arg)
{
	(void)arg;
	return mkdir(arg_path, 0777) == 0 && chmod(arg_path, 0777) == 0 ? 0 : 1;
}

static int make_dir_0700(void *arg)
{
	(void)arg;
	return mkdir(arg_path, 0700) == 0 ? 0 : 1;
}

static char link_target[128];

static int make_symlink(void *arg)
{
	(void)arg;
	return mkdir(link_target, 0777) == 0 && chmod(link_target, 0777) == 0 &&
			       symlink(link_target, arg_path) == 0
		       ? 0
		       : 1;
}

static void socket_dir_of(char *out, size_t size)
{
	snprintf(out, size, "%s/sq", d.dir);
}

/* The daemon, root, must refuse the directory: exit non-zero, one line why,
 * no socket anywhere the squatter can reach. */
static void assert_refused(const char *why)
{
	int status = e2e_restart_daemon(&d, NULL);
	ck_assert_msg(status != 0, "shmallocd listened in a squatted directory (%s)", d.socket);
	ck_assert_msg(e2e_log_has(&d, why), "no \"%s\" in %s", why, d.log);
	ck_assert_int_eq(e2e_log_count(&d, "refusing to start"), 1);
	struct stat st;
	ck_assert_int_ne(lstat(d.socket, &st), 0);
	if (link_target[0]) {
		char in_target[256];
		snprintf(in_target, sizeof in_target, "%s/s.sock", link_target);
		ck_assert_int_ne(lstat(in_target, &st), 0);
	}
	/* It refused before it made any segment. */
	ck_assert_int_eq(test_segments_left(d.instance), 0);
}

START_TEST(a_squatters_open_directory_is_refused)
{
	if (!users_or_skip("a_squatters_open_directory_is_refused"))
		return;
	scratch("sq");
	socket_dir_of(arg_path, sizeof arg_path);
	link_target[0] = '\0';
	ck_assert_int_eq(run_as(&attacker, make_dir_0777, NULL), 0);
	assert_refused("belongs to uid");
	scratch_remove();
}
END_TEST

START_TEST(a_squatters_private_directory_is_refused)
{
	if (!users_or_skip("a_squatters_private_directory_is_refused"))
		return;
	scratch("sq");
	socket_dir_of(arg_path, sizeof arg_path);
	link_target[0] = '\0';
	ck_assert_int_eq(run_as(&attacker, make_dir_0700, NULL), 0);
	assert_refused("belongs to uid");
	scratch_remove();
}
END_TEST

START_TEST(a_squatters_symlink_is_refused)
{
	if (!users_or_skip("a_squatters_symlink_is_refused"))
		return;
	scratch("sq");
	socket_dir_of(arg_path, sizeof arg_path);
	snprintf(link_target, sizeof link_target, "%s/evil", d.dir);
	ck_assert_int_eq(run_as(&attacker, make_symlink, NULL), 0);
	assert_refused("is a symlink");
	link_target[0] = '\0';
	scratch_remove();
}
END_TEST

/* Our own directory, but one anybody may write: refused as well (no user
 * needed: the mode alone is wrong). */
START_TEST(an_open_directory_of_our_own_is_refused)
{
	scratch("sq");
	socket_dir_of(arg_path, sizeof arg_path);
	link_target[0] = '\0';
	ck_assert_int_eq(mkdir(arg_path, 0700), 0);
	ck_assert_int_eq(chmod(arg_path, 0777), 0);
	assert_refused("lets others in");
	scratch_remove();
}
END_TEST

/* ---- a daemon of another user on the socket path ---- */

/* Execs shmallocd as whoever runs this, on d.socket, logging to d.log, with
 * the options in arg (a NULL-terminated list). */
static int exec_daemon(void *arg)
{
	const char *const *extra = arg;
	const char *argv[16] = {SHMALLOCD_PATH, "--socket", d.socket, "--name", d.instance,
				"--cleanup", "--log-level", "debug"};
	int argc = 8;
	for (; extra != NULL && *extra != NULL && argc < 15; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	if (freopen(d.log, "a", stderr) == NULL)
		return 126;
	execv(SHMALLOCD_PATH, (char *const *)argv);
	return 127;
}

/* Waits up to 5 s for d's socket to take connections. */
static void wait_listening(void)
{
	for (int i = 0; i < 500; i++) {
		int fd = e2e_raw_connect(d.socket);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	ck_abort_msg("the daemon did not listen; see %s", d.log);
}

static void stop_foreign_daemon(void)
{
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	ck_assert_int_eq(e2e_wait(d.pid), 0);
	d.pid = 0;
}

/* A victim process: connect must say EPERM, and so must malloc's errno. */
static int victim_refuses(void *arg)
{
	(void)arg;
	int rc = shma_connect(d.socket);
	if (rc != -EPERM)
		return 10;
	if (strstr(shma_strerror(rc), "SHMALLOC_DAEMON_UID") == NULL)
		return 11;
	setenv("SHMALLOC_SOCKET", d.socket, 1);
	errno = 0;
	void *p = shma_malloc(64);
	if (p != NULL || errno != EPERM)
		return 12;
	return 0;
}

/* With SHMALLOC_DAEMON_UID naming the daemon's user, the victim goes on. */
static int victim_trusts(void *arg)
{
	setenv("SHMALLOC_DAEMON_UID", arg, 1);
	int rc = shma_connect(d.socket);
	if (rc != 0)
		return 20;
	void *p = shma_malloc(64);
	if (p == NULL)
		return 21;
	memset(p, 1, 64);
	shma_free(p);
	shma_disconnect();
	return 0;
}

static int open_up_socket_dir(void *arg)
{
	(void)arg;
	return chmod(arg_path, 0755) == 0 ? 0 : 1;
}

START_TEST(a_daemon_of_another_user_is_not_trusted)
{
	if (!users_or_skip("a_daemon_of_another_user_is_not_trusted"))
		return;
	scratch("sq");
	/* The squatter's daemon, on the path the victim uses, serving the
	 * victim (its uid listed, the socket, segments and directory open). */
	char uid[16];
	snprintf(uid, sizeof uid, "%lu", (unsigned long)victim.uid);
	const char *const opts[] = {"--allow-uid", uid, "--socket-mode", "0666", NULL};
	d.pid = fork_as(&attacker, exec_daemon, (void *)opts);
	wait_listening();
	socket_dir_of(arg_path, sizeof arg_path);
	ck_assert_int_eq(run_as(&attacker, open_up_socket_dir, NULL), 0);
	ck_assert_int_eq(run_as(&victim, victim_refuses, NULL), 0);
	/* Named, by user name or uid, the same daemon is trusted. */
	ck_assert_int_eq(run_as(&victim, victim_trusts, attacker.name), 0);
	snprintf(uid, sizeof uid, "%lu", (unsigned long)attacker.uid);
	ck_assert_int_eq(run_as(&victim, victim_trusts, uid), 0);
	stop_foreign_daemon();
	scratch_remove();
}
END_TEST

/* The production setup: a system user's daemon in a directory the operator
 * made for it (owned by it, 02750, in a parent only root writes): its
 * clients trust it with no variable set, since nobody else could have made
 * that directory. */
START_TEST(a_system_daemon_in_its_own_directory_is_trusted)
{
	if (!users_or_skip("a_system_daemon_in_its_own_directory_is_trusted"))
		return;
	scratch("run");
	ck_assert_int_eq(chmod(d.dir, 0755), 0);
	char dir[128];
	snprintf(dir, sizeof dir, "%s/run", d.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chown(dir, sysd.uid, sysd.gid), 0);
	ck_assert_int_eq(chmod(dir, 02750), 0);
	/* The log in a file the daemon's user may write. */
	int fd = open(d.log, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchown(fd, sysd.uid, sysd.gid), 0);
	close(fd);
	char gid[16];
	snprintf(gid, sizeof gid, "%lu", (unsigned long)sysd.gid);
	const char *const opts[] = {"--allow-gid", gid, NULL};
	d.pid = fork_as(&sysd, exec_daemon, (void *)opts);
	wait_listening();
	unsetenv("SHMALLOC_DAEMON_UID");
	ck_assert_int_eq(run_as(&victim, victim_trusts, (void *)""), 0);
	stop_foreign_daemon();
	ck_assert_int_eq(chmod(d.dir, 01777), 0);
	scratch_remove();
}
END_TEST


/* ---- segment names in /dev/shm ---- */

/* Removes every file of instance (and of its alternatives, inst-<n>),
 * whoever made it. */
static void remove_all_segments(const char *inst)
{
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -f /dev/shm/shmalloc.%s.* /dev/shm/shmalloc.%s-*", inst, inst);
	ck_assert_int_eq(system(cmd), 0);
}

/* What the squatter made, for the test to check it is untouched. */
static struct squat {
	char instance[48];
	char kinds[8];       /* one file per kind, id below */
	unsigned first, last; /* of 'c' names, with kind 'c' */
	uint32_t dead_pid;    /* a forged control block's "owner" */
	uint64_t refs[64];    /* a survivor's live blocks */
	unsigned nrefs;
	int made;
} *sq;

static void squat_name(char *buf, size_t size, char kind, uint64_t id)
{
	ck_assert_int_eq(seg_name(buf, size, sq->instance, kind, id), 0);
}

/* As the squatter: files (0666, size one page) under the names. */
static int make_squats(void *arg)
{
	(void)arg;
	char name[SEG_NAME_MAX];
	for (const char *k = sq->kinds; *k; k++) {
		unsigned first = *k == 'c' ? sq->first : 0, last = *k == 'c' ? sq->last : 0;
		for (unsigned id = first; id <= last; id++) {
			if (seg_name(name, sizeof name, sq->instance, *k, id) != 0)
				return 1;
			int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0666);
			if (fd < 0 || fchmod(fd, 0666) != 0 || ftruncate(fd, 4096) != 0)
				return 2;
			close(fd);
		}
	}
	sq->made = 1;
	return 0;
}

/* The squatter's files are all still there, still his. */
static void assert_squats_intact(void)
{
	char name[SEG_NAME_MAX], path[SEG_NAME_MAX + 16];
	for (const char *k = sq->kinds; *k; k++) {
		unsigned first = *k == 'c' ? sq->first : 0, last = *k == 'c' ? sq->last : 0;
		for (unsigned id = first; id <= last; id++) {
			squat_name(name, sizeof name, *k, id);
			snprintf(path, sizeof path, "/dev/shm%s", name);
			struct stat st;
			ck_assert_msg(lstat(path, &st) == 0, "%s was removed", path);
			ck_assert_uint_eq(st.st_uid, attacker.uid);
			ck_assert_int_eq(st.st_size, 4096);
		}
	}
}

static void segments_setup(void)
{
	sq = mmap(NULL, sizeof *sq, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sq, MAP_FAILED);
	memset(sq, 0, sizeof *sq);
}

static void segments_teardown(void)
{
	munmap(sq, sizeof *sq);
}

static int allocate_and_check(void *arg)
{
	(void)arg;
	void *p[256];
	for (unsigned i = 0; i < 256; i++) {
		p[i] = shma_malloc(64);
		if (p[i] == NULL)
			return 30;
		e2e_fill(p[i], 64, i);
	}
	for (unsigned i = 0; i < 256; i++) {
		if (!e2e_check_fill(p[i], 64, i))
			return 31;
		shma_free(p[i]);
	}
	return 0;
}

static int connect_and_allocate(void *arg)
{
	(void)arg;
	int rc = shma_connect(d.socket);
	if (rc != 0) {
		fprintf(stderr, "connect: %s\n", shma_strerror(rc));
		return 29;
	}
	rc = allocate_and_check(NULL);
	shma_disconnect();
	return rc;
}

static int in_a_child(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(arg));
	return e2e_wait(pid);
}

/* The next control block names, c1..c100, taken after the daemon started:
 * the Hello skips them (before, it gave up after 64 and every Hello failed). */
START_TEST(taken_control_block_names_are_skipped)
{
	if (!users_or_skip("taken_control_block_names_are_skipped"))
		return;
	scratch("sock");
	ck_assert_int_eq(e2e_restart_daemon(&d, (const char *const[]){"--cleanup", NULL}), 0);
	strcpy(sq->instance, d.instance);
	strcpy(sq->kinds, "c");
	sq->first = 1;
	sq->last = 100;
	ck_assert_int_eq(run_as(&attacker, make_squats, NULL), 0);
	ck_assert_int_eq(in_a_child(connect_and_allocate, NULL), 0);
	ck_assert_int_eq(in_a_child(connect_and_allocate, NULL), 0);
	ck_assert(e2e_log_has(&d, "were taken: skipped"));
	assert_squats_intact();
	remove_all_segments(d.instance);
	scratch_remove();
}
END_TEST

/* Files under the names the daemon starts with (arena 0, the roots, a
 * control block, a large block), made before it starts: it starts anyway,
 * under another instance name, adopts none and removes none (before: "cannot
 * open the heap: File exists").  --discard removes only its own. */
START_TEST(taken_names_at_start_do_not_stop_the_daemon)
{
	if (!users_or_skip("taken_names_at_start_do_not_stop_the_daemon"))
		return;
	scratch("sock");
	strcpy(sq->instance, d.instance);
	strcpy(sq->kinds, "amcl");
	sq->first = 1;
	sq->last = 3;
	ck_assert_int_eq(run_as(&attacker, make_squats, NULL), 0);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert(e2e_log_has(&d, "are taken by files not ours"));
	ck_assert_int_eq(in_a_child(connect_and_allocate, NULL), 0);
	assert_squats_intact();
	/* Restarted, it finds its own heap again under the same name. */
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(in_a_child(connect_and_allocate, NULL), 0);
	e2e_kill_daemon(&d);
	ck_assert_int_eq(e2e_restart_daemon(&d, (const char *const[]){"--discard", NULL}), 0);
	assert_squats_intact();
	remove_all_segments(d.instance);
	scratch_remove();
}
END_TEST

/* A survivor holds blocks while the daemon is down; the squatter drops in a
 * control block naming a dead pid whose caches "hold" the survivor's
 * blocks.  The restarted daemon must not believe it (before: it took the
 * survivor's live blocks back and handed them out again). */
static int survivor(void *arg)
{
	(void)arg;
	if (shma_connect(d.socket) != 0)
		return 40;
	void *p[64];
	for (unsigned i = 0; i < 64; i++) {
		p[i] = shma_malloc(64);
		if (p[i] == NULL)
			return 41;
		e2e_fill(p[i], 64, 1000 + i);
		sq->refs[i] = shma_ref(p[i]);
	}
	__atomic_store_n(&sq->nrefs, 64, __ATOMIC_RELEASE);
	/* Held until the test is done; then checked. */
	while (__atomic_load_n(&sq->made, __ATOMIC_ACQUIRE) != 2)
		usleep(10000);
	for (unsigned i = 0; i < 64; i++)
		if (!e2e_check_fill(p[i], 64, 1000 + i))
			return 42;
	return 0;
}

static int forge_control_block(void *arg)
{
	(void)arg;
	char name[SEG_NAME_MAX];
	squat_name(name, sizeof name, 'c', 1000);
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0666);
	if (fd < 0 || fchmod(fd, 0666) != 0 || ftruncate(fd, sizeof(struct control_block)) != 0)
		return 1;
	struct control_block *cb = mmap(NULL, sizeof *cb, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
					0);
	if (cb == MAP_FAILED)
		return 2;
	cb->hdr.layout_version = SHMA_LAYOUT_VERSION;
	cb->hdr.nslots = SHMA_CONTROL_SLOTS;
	cb->hdr.nclasses = SIZECLASS_COUNT;
	cb->hdr.client_id = 1000;
	cb->hdr.pid = sq->dead_pid;
	for (unsigned i = 0; i < sq->nrefs && i < SHMA_CONTROL_SLOTS; i++)
		for (unsigned c = 0; c < SIZECLASS_COUNT; c++) {
			cb->slots[i].bins[c].head = sq->refs[i];
			cb->slots[i].bins[c].count = 1;
		}
	cb->hdr.magic = SHMA_CONTROL_MAGIC;
	munmap(cb, sizeof *cb);
	close(fd);
	return 0;
}

/* A new client takes many 64-byte blocks: none may be a survivor's. */
static int none_is_the_survivors(void *arg)
{
	(void)arg;
	if (shma_connect(d.socket) != 0)
		return 50;
	for (unsigned i = 0; i < 2048; i++) {
		void *p = shma_malloc(64);
		if (p == NULL)
			return 51;
		shma_ref_t ref = shma_ref(p);
		for (unsigned j = 0; j < sq->nrefs; j++)
			if (sq->refs[j] == ref)
				return 52;
	}
	return 0;
}

START_TEST(a_forged_control_block_is_not_adopted)
{
	if (!users_or_skip("a_forged_control_block_is_not_adopted"))
		return;
	scratch("sock");
	strcpy(sq->instance, d.instance);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	pid_t s = fork();
	ck_assert_int_ge(s, 0);
	if (s == 0)
		_exit(survivor(NULL));
	for (int i = 0; i < 500 && __atomic_load_n(&sq->nrefs, __ATOMIC_ACQUIRE) == 0; i++)
		usleep(10000);
	ck_assert_uint_eq(sq->nrefs, 64);
	e2e_kill_daemon(&d);
	/* A pid that is gone: a child that has exited and been reaped. */
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	e2e_wait(gone);
	sq->dead_pid = (uint32_t)gone;
	ck_assert_int_eq(run_as(&attacker, forge_control_block, NULL), 0);
	ck_assert_int_eq(e2e_restart_daemon(&d, NULL), 0);
	ck_assert_int_eq(in_a_child(none_is_the_survivors, NULL), 0);
	ck_assert(e2e_log_has(&d, "is not ours"));
	__atomic_store_n(&sq->made, 2, __ATOMIC_RELEASE);
	ck_assert_int_eq(e2e_wait(s), 0);
	e2e_kill_daemon(&d);
	remove_all_segments(d.instance);
	scratch_remove();
}
END_TEST

Suite *make_perimeter_suite(void);
Suite *make_perimeter_suite(void)
{
	Suite *s = suite_create("perimeter");
	TCase *tc = tcase_create("socket");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_squatters_open_directory_is_refused);
	tcase_add_test(tc, a_squatters_private_directory_is_refused);
	tcase_add_test(tc, a_squatters_symlink_is_refused);
	tcase_add_test(tc, an_open_directory_of_our_own_is_refused);
	tcase_add_test(tc, a_daemon_of_another_user_is_not_trusted);
	tcase_add_test(tc, a_system_daemon_in_its_own_directory_is_trusted);
	suite_add_tcase(s, tc);
	tc = tcase_create("segments");
	tcase_add_unchecked_fixture(tc, users_create, users_remove);
	tcase_add_checked_fixture(tc, segments_setup, segments_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, taken_control_block_names_are_skipped);
	tcase_add_test(tc, taken_names_at_start_do_not_stop_the_daemon);
	tcase_add_test(tc, a_forged_control_block_is_not_adopted);
	suite_add_tcase(s, tc);
	return s;
}
