/* SPDX-License-Identifier: MIT */
/*
 * The end-to-end fixture: see e2e.h.
 */
#include "e2e.h"
#include "instance.h"
#include "raw.h"
#include "seg.h"
#include "shmalloc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SHMALLOCD_PATH
#error "SHMALLOCD_PATH must name the daemon under test"
#endif

struct e2e_daemon e2e;

static int try_connect(const char *path)
{
	int fd = raw_connect(path);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Forks and execs the daemon on d's socket and instance; with cleanup, it
 * removes its segments when it stops. */
static void spawn(struct e2e_daemon *d, const char *const *extra, int cleanup)
{
	const char *argv[32] = {SHMALLOCD_PATH, "--socket", d->socket, "--name", d->instance,
				"--log-level", "debug"};
	int argc = 7;
	if (cleanup)
		argv[argc++] = "--cleanup";
	for (; extra && *extra && argc < 31; extra++)
		argv[argc++] = *extra;
	argv[argc] = NULL;
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		FILE *log = freopen(d->log, "a", stderr);
		(void)log;
		execv(SHMALLOCD_PATH, (char *const *)argv);
		_exit(127);
	}
}

/* 0 once the daemon listens; its exit status + 1 if it exited first. */
static int wait_listening(struct e2e_daemon *d)
{
	for (int i = 0; i < 500; i++) {
		if (try_connect(d->socket))
			return 0;
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return (WIFEXITED(status) ? WEXITSTATUS(status) : 128) + 1;
		}
		usleep(10000);
	}
	ck_abort_msg("shmallocd did not listen within 5 s");
	return -1;
}

static void make_names(struct e2e_daemon *d)
{
	memset(d, 0, sizeof *d);
	strcpy(d->dir, "/tmp/shma-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->socket, sizeof d->socket, "%s/sock/s.sock", d->dir);
	snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
	test_instance(d->instance, sizeof d->instance);
}

void e2e_start_daemon(struct e2e_daemon *d, const char *const *extra)
{
	make_names(d);
	spawn(d, extra, 1);
	int rc = wait_listening(d);
	ck_assert_msg(rc == 0, "shmallocd exited at start (status %d); see %s", rc - 1, d->log);
}

void e2e_start_daemon_kept(struct e2e_daemon *d, const char *const *extra)
{
	make_names(d);
	spawn(d, extra, 0);
	int rc = wait_listening(d);
	ck_assert_msg(rc == 0, "shmallocd exited at start (status %d); see %s", rc - 1, d->log);
}

void e2e_kill_daemon(struct e2e_daemon *d)
{
	if (d->pid <= 0)
		return;
	ck_assert_int_eq(kill(d->pid, SIGKILL), 0);
	e2e_wait(d->pid);
	d->pid = 0;
}

int e2e_restart_daemon(struct e2e_daemon *d, const char *const *extra)
{
	ck_assert_int_le(d->pid, 0);
	spawn(d, extra, 0);
	int rc = wait_listening(d);
	return rc == 0 ? 0 : rc - 1;
}

int e2e_log_count(const struct e2e_daemon *d, const char *text)
{
	static char buf[1 << 20];
	FILE *f = fopen(d->log, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	int count = 0;
	for (const char *at = buf; (at = strstr(at, text)) != NULL; at++)
		count++;
	return count;
}

int e2e_log_has(const struct e2e_daemon *d, const char *text)
{
	return e2e_log_count(d, text) > 0;
}

/* The system call pid sleeps in (the first number of /proc/pid/syscall,
 * which says "running" for a task that runs), or -1. */
static long sleeping_in(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%ld/syscall", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long nr = -1;
	if (fgets(line, sizeof line, f) == NULL || sscanf(line, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

int e2e_wait_blocked_in_poll(pid_t pid)
{
	for (int i = 0; i < 1000; i++) {
		long nr = sleeping_in(pid);
#ifdef SYS_poll
		if (nr == SYS_poll)
			return 1;
#endif
		if (nr == SYS_ppoll)
			return 1;
		usleep(10000);
	}
	return 0;
}

int e2e_wait_log(const struct e2e_daemon *d, const char *text)
{
	for (int i = 0; i < 1000; i++) {
		if (e2e_log_has(d, text))
			return 1;
		usleep(10000);
	}
	return 0;
}

static void remove_dir(const char *dir)
{
	char path[256];
	snprintf(path, sizeof path, "%s/daemon.log", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/sock", dir);
	rmdir(path);
	rmdir(dir);
}

void e2e_stop_daemon(struct e2e_daemon *d)
{
	if (d->pid <= 0)
		return;
	ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
	int status = e2e_wait(d->pid);
	d->pid = 0;
	ck_assert_msg(status == 0, "shmallocd exited with %d after SIGTERM", status);
	ck_assert_msg(access(d->socket, F_OK) != 0, "the socket is still there");
	ck_assert_int_eq(test_segments_left(d->instance), 0);
	remove_dir(d->dir);
}

void e2e_cleanup_daemon(struct e2e_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		e2e_wait(d->pid);
		d->pid = 0;
	}
	seg_instance_segments(d->instance, 1);
	unlink(d->socket);
	remove_dir(d->dir);
}

void e2e_setup(void)
{
	e2e_start_daemon(&e2e, NULL);
	setenv("SHMALLOC_SOCKET", e2e.socket, 1);
}

void e2e_teardown(void)
{
	shma_disconnect();
	e2e_stop_daemon(&e2e);
}

void e2e_preload_setup(char *work, size_t cap, const char *name)
{
	e2e_setup();
	snprintf(work, cap, "%s/%s", e2e.dir, name);
	ck_assert_int_eq(mkdir(work, 0700), 0);
	setenv("SHMALLOC_PRELOAD", PRELOAD_LIB_PATH, 1);
	setenv("SHMALLOC_DAEMON", SHMALLOCD_PATH, 1);
	unsetenv("LD_PRELOAD");
	unsetenv("SHMALLOC_SHARE_FORK");
}

void e2e_preload_teardown(const char *work)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", work);
	e2e_teardown();
}

pid_t e2e_fork(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int rc = shma_connect(e2e.socket);
		if (rc != 0) {
			fprintf(stderr, "child: connect: %s\n", shma_strerror(rc));
			_exit(100);
		}
		rc = fn(arg);
		shma_disconnect();
		_exit(rc);
	}
	return pid;
}

int e2e_wait(pid_t pid)
{
	int status;
	/* Bounded: a hung child fails its test through Check's timeout. */
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int e2e_run(const char *const *argv, char *out, size_t cap)
{
	char path[160];
	snprintf(path, sizeof path, "%s/run-%ld.txt", e2e.dir, (long)getpid());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		setenv("SHMALLOC_SOCKET", e2e.socket, 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int status = e2e_wait(pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(out, 1, cap - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	unlink(path);
	return status;
}

uint64_t e2e_stat(const char *key)
{
	char *json;
	ck_assert_int_eq(shma_stats_json(&json), 0);
	char *at = strstr(json, key);
	ck_assert_ptr_nonnull(at);
	uint64_t v = strtoull(at + strlen(key), NULL, 10);
	free(json);
	return v;
}

uint64_t e2e_my_stat(const char *key)
{
	char *json, pid[32];
	ck_assert_int_eq(shma_stats_json(&json), 0);
	snprintf(pid, sizeof pid, "\"pid\":%ld,", (long)getpid());
	char *clients = strstr(json, "\"clients\":[");
	ck_assert_ptr_nonnull(clients);
	char *me = strstr(clients, pid);
	ck_assert_ptr_nonnull(me);
	char *at = strstr(me, key);
	ck_assert_ptr_nonnull(at);
	uint64_t v = strtoull(at + strlen(key), NULL, 10);
	free(json);
	return v;
}

uint64_t e2e_wait_in_use_at_most(uint64_t want)
{
	uint64_t v = 0;
	for (int i = 0; i < 100; i++) {
		v = e2e_stat("\"in_use_bytes\":");
		if (v <= want)
			break;
		usleep(50000);
	}
	return v;
}

int e2e_ring_put(struct e2e_ring *r, uint64_t ref)
{
	uint64_t head = r->head;
	if (head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) == E2E_RING)
		return 0;
	r->slot[head % E2E_RING] = ref;
	__atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
	return 1;
}

uint64_t e2e_ring_get(struct e2e_ring *r)
{
	uint64_t tail = r->tail;
	if (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == tail)
		return 0;
	uint64_t ref = r->slot[tail % E2E_RING];
	__atomic_store_n(&r->tail, tail + 1, __ATOMIC_RELEASE);
	return ref;
}

static uint8_t pattern(uint64_t seed, size_t i)
{
	return (uint8_t)((seed * 2654435761u) >> 7 ^ i * 31 ^ i >> 8);
}

void e2e_fill(void *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		((uint8_t *)p)[i] = pattern(seed, i);
}

int e2e_check_fill(const void *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (((const uint8_t *)p)[i] != pattern(seed, i))
			return 0;
	return 1;
}

int e2e_allocate_a_little(void *unused)
{
	(void)unused;
	void *p[64];
	for (unsigned i = 0; i < 64; i++)
		if ((p[i] = shma_malloc(16 + i * 40)) == NULL)
			return 1;
	for (unsigned i = 0; i < 64; i++)
		shma_free(p[i]);
	return 0;
}
