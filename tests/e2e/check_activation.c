/* SPDX-License-Identifier: MIT */
/*
 * Socket activation (server/activation.c, systemd/shmallocd.socket): the
 * test plays systemd's part.  It makes the listening socket itself, lets a
 * client connect and send its Hello while no daemon runs (the connection
 * waits in the socket's queue, as on a system where shmallocd.socket
 * listens from boot), then execs shmallocd with the socket as descriptor 3
 * and LISTEN_FDS=1, LISTEN_PID=its pid, as systemd does.  The waiting
 * client is served, later ones too, and the daemon leaves the socket in
 * place when it stops: it is systemd's, and the next connect starts the
 * daemon again on it.
 */
#include "config.h"

#include "e2e.h"
#include "instance.h"
#include "raw.h"
#include "sizeclass.h"
#include "skip.h"
#include "shmalloc.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct activated {
	char dir[64];
	char sockdir[96];
	char socket[128];
	char instance[48];
	char log[128];
	int listen_fd;
	pid_t pid;
};

static void make_socket(struct activated *a)
{
	memset(a, 0, sizeof *a);
	strcpy(a->dir, "/tmp/shma-act-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(a->dir));
	snprintf(a->sockdir, sizeof a->sockdir, "%s/sock", a->dir);
	ck_assert_int_eq(mkdir(a->sockdir, 0700), 0);
	snprintf(a->socket, sizeof a->socket, "%s/s.sock", a->sockdir);
	snprintf(a->log, sizeof a->log, "%s/daemon.log", a->dir);
	test_instance(a->instance, sizeof a->instance);
	a->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(a->listen_fd, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, a->socket);
	ck_assert_int_eq(bind(a->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(a->listen_fd, 16), 0);
}

/* Execs the daemon as systemd would: the socket as descriptor 3, and
 * LISTEN_FDS / LISTEN_PID naming it for the daemon's own pid.  fd is the
 * descriptor to pass (the listening socket, or another to see it refused);
 * path the --socket the daemon is told. */
static void spawn_activated(struct activated *a, int fd, const char *path)
{
	a->pid = fork();
	ck_assert_int_ge(a->pid, 0);
	if (a->pid == 0) {
		if (freopen(a->log, "a", stderr) == NULL)
			_exit(126);
		if (fd != 3 && (dup2(fd, 3) != 3 || close(fd) != 0))
			_exit(126);
		char pid[24];
		snprintf(pid, sizeof pid, "%ld", (long)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid, 1);
		execl(SHMALLOCD_PATH, SHMALLOCD_PATH, "--socket", path, "--name", a->instance,
		      "--log-level", "debug", "--cleanup", (char *)NULL);
		_exit(127);
	}
}

static int stop(struct activated *a)
{
	ck_assert_int_eq(kill(a->pid, SIGTERM), 0);
	return e2e_wait(a->pid);
}

static void remove_all(struct activated *a)
{
	close(a->listen_fd);
	unlink(a->socket);
	rmdir(a->sockdir);
	unlink(a->log);
	rmdir(a->dir);
}

/* e2e_log_has() on a's log. */
static int log_has(const struct activated *a, const char *text)
{
	struct e2e_daemon d = {0};
	snprintf(d.log, sizeof d.log, "%s", a->log);
	return e2e_log_has(&d, text);
}

/* A client in its own process: connects, writes and reads back a block,
 * publishes it under name; 0 if all went well. */
static int client(const char *socket, const char *name)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (shma_connect(socket) != 0)
			_exit(10);
		char *p = shma_malloc(4096);
		if (p == NULL)
			_exit(11);
		memset(p, 0x5a, 4096);
		if (shma_publish(name, shma_ref(p)) != 0)
			_exit(12);
		shma_disconnect();
		_exit(0);
	}
	return e2e_wait(pid);
}

#ifdef HAVE_LIBSYSTEMD
START_TEST(a_client_waiting_on_the_passed_socket_is_served)
{
	struct activated a;
	make_socket(&a);
	/* The first connect comes before any daemon: it is queued, its Hello
	 * waits unread. */
	int early = raw_connect(a.socket);
	ck_assert_int_ge(early, 0);
	raw_hello(early, SHMA_PROTOCOL_VERSION, sizeclass_checksum());
	spawn_activated(&a, a.listen_fd, a.socket);
	uint8_t buf[4096];
	int n = raw_read_frame(early, buf, sizeof buf);
	ck_assert_msg(n > 0, "the client queued before the daemon started had no answer (%d); see %s",
		      n, a.log);
	close(early);
	ck_assert_int_eq(client(a.socket, "activated"), 0);
	ck_assert(log_has(&a, "socket activation: serving the socket systemd passed"));
	ck_assert_int_eq(stop(&a), 0);
	/* The socket is systemd's: still there, still listening (connects
	 * queue for the next start). */
	struct stat st;
	ck_assert_int_eq(stat(a.socket, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	int later = raw_connect(a.socket);
	ck_assert_int_ge(later, 0);
	close(later);
	/* Started again on the same socket, by the next connect. */
	spawn_activated(&a, a.listen_fd, a.socket);
	ck_assert_int_eq(client(a.socket, "again"), 0);
	ck_assert_int_eq(stop(&a), 0);
	remove_all(&a);
}
END_TEST

START_TEST(a_passed_socket_on_another_path_is_refused)
{
	struct activated a;
	make_socket(&a);
	char other[160];
	snprintf(other, sizeof other, "%s/other.sock", a.sockdir);
	spawn_activated(&a, a.listen_fd, other);
	int status = e2e_wait(a.pid);
	ck_assert_msg(status != 0, "the daemon served a socket that is not its --socket");
	ck_assert(log_has(&a, "not a listening Unix stream socket"));
	ck_assert_int_ne(access(other, F_OK), 0); /* and bound nothing of its own */
	remove_all(&a);
}
END_TEST

START_TEST(a_passed_descriptor_that_is_not_a_listening_socket_is_refused)
{
	struct activated a;
	make_socket(&a);
	int pair[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	spawn_activated(&a, pair[0], a.socket);
	int status = e2e_wait(a.pid);
	ck_assert_int_ne(status, 0);
	ck_assert(log_has(&a, "not a listening Unix stream socket"));
	close(pair[0]);
	close(pair[1]);
	remove_all(&a);
}
END_TEST
#else
START_TEST(a_client_waiting_on_the_passed_socket_is_served)
{
	TEST_SKIP("built without libsystemd: no socket activation");
}
END_TEST

START_TEST(a_passed_socket_on_another_path_is_refused)
{
	TEST_SKIP("built without libsystemd: no socket activation");
}
END_TEST

START_TEST(a_passed_descriptor_that_is_not_a_listening_socket_is_refused)
{
	struct activated a;
	make_socket(&a);
	spawn_activated(&a, a.listen_fd, a.socket);
	int status = e2e_wait(a.pid);
	ck_assert_int_ne(status, 0);
	ck_assert(log_has(&a, "built without libsystemd"));
	remove_all(&a);
}
END_TEST
#endif

Suite *make_activation_suite(void);
Suite *make_activation_suite(void)
{
	Suite *s = suite_create("activation");
	TCase *tc = tcase_create("systemd");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_client_waiting_on_the_passed_socket_is_served);
	tcase_add_test(tc, a_passed_socket_on_another_path_is_refused);
	tcase_add_test(tc, a_passed_descriptor_that_is_not_a_listening_socket_is_refused);
	suite_add_tcase(s, tc);
	return s;
}
