/* SPDX-License-Identifier: MIT */
/*
 * shmalloc-run: runs an unmodified program with its malloc family in the
 * shared heap.
 *
 *   shmalloc-run [--socket PATH] [--share-fork] [--] COMMAND [ARG...]
 *
 * It puts libshmalloc-preload.so first in LD_PRELOAD (before any value
 * already there) and the daemon's socket in SHMALLOC_SOCKET, so COMMAND and
 * every program it forks or execs allocate from the heap.  The daemon: the
 * one on --socket, else on $SHMALLOC_SOCKET, which must listen (or
 * shmalloc-run fails before COMMAND starts); else the one on the default
 * socket, and if none listens there, a private shmallocd started for the run
 * on a socket in a fresh temporary directory, with --cleanup, stopped and
 * removed when COMMAND ends.  It exits with COMMAND's status (128 + the
 * signal if it was killed, as a shell does); 125 when it fails itself, 126
 * when COMMAND cannot be executed, 127 when it is not found.
 *
 * Trust (issue 21, case 13; trust.c): a socket is used only once the
 * library itself has connected to it -- the peer's uid checked, a Hello
 * answered, the heap mapped -- so that COMMAND never starts on something
 * that merely listens and then runs on the C library's malloc.  A socket
 * named with --socket or $SHMALLOC_SOCKET that fails is refused (125); a
 * default socket that fails is passed over, said on stderr, for a private
 * daemon.  The private daemon's directory is checked to be ours and 0700
 * after mkdtemp, and its segments carry a random instance name (--name),
 * so that nobody who sees the directory appear can take their names first.
 *
 * --share-fork sets SHMALLOC_SHARE_FORK=1: a forked child then shares the
 * heap with its parent instead of getting its own copy (preload.c).
 * $SHMALLOC_PRELOAD and $SHMALLOC_DAEMON name the library and the daemon
 * in place of the installed ones (the tests use the build tree's); the
 * installed ones are found beside this program first, so that an install
 * under another prefix or DESTDIR finds its own (installed.c).
 */
#include "config.h"

#include "installed.h"
#include "trust.h"
#include "seg.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PRELOAD_PATH
#error "PRELOAD_PATH must name the installed libshmalloc-preload.so"
#endif
#ifndef SHMALLOCD_PATH
#error "SHMALLOCD_PATH must name the installed shmallocd"
#endif
#ifndef BINDIR
#error "BINDIR must name where shmalloc-run is installed"
#endif

#define EXIT_SELF 125
#define EXIT_NOEXEC 126
#define EXIT_NOTFOUND 127

struct private_daemon {
	char dir[256];
	char socket[300];
	char log[300];
	pid_t pid;
};

static void usage(FILE *to)
{
	fprintf(to, "Usage: shmalloc-run [--socket PATH] [--share-fork] [--] COMMAND [ARG...]\n"
		    "Runs COMMAND with its malloc family in shmalloc's shared heap.\n"
		    "  -s, --socket PATH   the daemon's socket (default: $SHMALLOC_SOCKET, else\n"
		    "                      the default socket, else a private daemon for the run)\n"
		    "      --share-fork    forked children share the heap with their parent\n"
		    "                      instead of getting their own copy\n"
		    "  -h, --help          this text\n");
}

/* 1 if something accepts a connection on path. */
static int listening(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return 0;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && v[0] ? v : dflt;
}

static void show_log(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	char line[512];
	while (fgets(line, sizeof line, f))
		fprintf(stderr, "  %s", line);
	fclose(f);
}

static void remove_private(struct private_daemon *d)
{
	unlink(d->socket);
	unlink(d->log);
	rmdir(d->dir);
}

/* Starts shmallocd on a socket of its own; 0 once it listens. */
static int start_private(struct private_daemon *d)
{
	char installed[PATH_MAX];
	const char *daemon_path = env_or("SHMALLOC_DAEMON",
					 installed_path(BINDIR, SHMALLOCD_PATH, installed,
							sizeof installed));
	snprintf(d->dir, sizeof d->dir, "%s/shmalloc-run.XXXXXX", env_or("TMPDIR", "/tmp"));
	if (mkdtemp(d->dir) == NULL) {
		fprintf(stderr, "shmalloc-run: mkdtemp %s: %s\n", d->dir, strerror(errno));
		return -1;
	}
	char why[200], name[32];
	if (trust_private_dir(d->dir, why, sizeof why) != 0) {
		fprintf(stderr, "shmalloc-run: the private directory %s: %s\n", d->dir, why);
		return -1;
	}
	if (trust_instance_name(name, sizeof name) != 0) {
		fprintf(stderr, "shmalloc-run: no random instance name: %s\n", strerror(errno));
		rmdir(d->dir);
		return -1;
	}
	snprintf(d->socket, sizeof d->socket, "%s/shmallocd.sock", d->dir);
	snprintf(d->log, sizeof d->log, "%s/shmallocd.log", d->dir);
	d->pid = fork();
	if (d->pid < 0) {
		fprintf(stderr, "shmalloc-run: fork: %s\n", strerror(errno));
		rmdir(d->dir);
		return -1;
	}
	if (d->pid == 0) {
		if (freopen(d->log, "w", stderr) == NULL || freopen("/dev/null", "w", stdout) == NULL)
			_exit(EXIT_SELF);
		/* Not in our process group: a ^C meant for COMMAND must not stop it. */
		setpgid(0, 0);
		unsetenv("LD_PRELOAD");
		execl(daemon_path, "shmallocd", "--socket", d->socket, "--name", name, "--cleanup",
		      "--log-level", "warn", (char *)NULL);
		fprintf(stderr, "shmalloc-run: %s: %s\n", daemon_path, strerror(errno));
		_exit(EXIT_SELF);
	}
	for (int i = 0; i < 500; i++) {
		if (listening(d->socket)) {
			if (trust_daemon(d->socket, why, sizeof why) != 0) {
				fprintf(stderr, "shmalloc-run: the private shmallocd on %s: %s\n",
					d->socket, why);
				break;
			}
			fprintf(stderr, "shmalloc-run: no daemon to use on the default socket: "
					"started a private one on %s\n", d->socket);
			return 0;
		}
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			fprintf(stderr, "shmalloc-run: the private shmallocd (%s) exited at start:\n",
				daemon_path);
			show_log(d->log);
			d->pid = 0;
			remove_private(d);
			return -1;
		}
		usleep(10000);
	}
	if (!listening(d->socket))
		fprintf(stderr, "shmalloc-run: the private shmallocd did not listen within 5 s\n");
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	remove_private(d);
	return -1;
}

static void stop_private(struct private_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	int status;
	while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "shmalloc-run: the private shmallocd ended badly:\n");
		show_log(d->log);
	}
	remove_private(d);
}

/* LD_PRELOAD = lib, then what was there. */
static int set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	if (old == NULL || old[0] == '\0')
		return setenv("LD_PRELOAD", lib, 1);
	size_t n = strlen(lib) + 1 + strlen(old) + 1;
	char *v = malloc(n);
	if (v == NULL)
		return -1;
	snprintf(v, n, "%s:%s", lib, old);
	int rc = setenv("LD_PRELOAD", v, 1);
	free(v);
	return rc;
}

static void exec_command(char **argv)
{
	execvp(argv[0], argv);
	int e = errno;
	fprintf(stderr, "shmalloc-run: %s: %s\n", argv[0], strerror(e));
	_exit(e == ENOENT || e == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC);
}

static pid_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* Runs argv in a child, returns its status as a shell reports it. */
static int run_and_wait(char **argv)
{
	struct sigaction fw = {.sa_handler = forward}, ign = {.sa_handler = SIG_IGN}, oint, oquit;
	sigemptyset(&fw.sa_mask);
	sigemptyset(&ign.sa_mask);
	sigaction(SIGTERM, &fw, NULL);
	sigaction(SIGHUP, &fw, NULL);
	/* ^C and ^\ reach COMMAND from the terminal; we outlive it to clean up. */
	sigaction(SIGINT, &ign, &oint);
	sigaction(SIGQUIT, &ign, &oquit);
	child_pid = fork();
	if (child_pid < 0) {
		fprintf(stderr, "shmalloc-run: fork: %s\n", strerror(errno));
		return EXIT_SELF;
	}
	if (child_pid == 0) {
		sigaction(SIGINT, &oint, NULL);
		sigaction(SIGQUIT, &oquit, NULL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		exec_command(argv);
	}
	int status;
	while (waitpid(child_pid, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_SELF;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"share-fork", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_opt = NULL;
	int share_fork = 0, c;
	while ((c = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': socket_opt = optarg; break;
		case 'f': share_fork = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_SELF;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_SELF;
	}
	char **command = argv + optind;

	char installed[PATH_MAX];
	const char *lib = env_or("SHMALLOC_PRELOAD",
				 installed_path(BINDIR, PRELOAD_PATH, installed, sizeof installed));
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "shmalloc-run: the preload library %s: %s\n", lib, strerror(errno));
		return EXIT_SELF;
	}

	char path[300], why[200];
	const char *explicit_socket = socket_opt ? socket_opt : getenv("SHMALLOC_SOCKET");
	int rc;
	if (explicit_socket != NULL && explicit_socket[0] != '\0') {
		snprintf(path, sizeof path, "%s", explicit_socket);
		rc = trust_daemon(path, why, sizeof why);
		if (trust_nobody_listens(rc)) {
			fprintf(stderr, "shmalloc-run: no shmallocd listens on %s%s; not starting %s\n",
				path, socket_opt ? "" : " ($SHMALLOC_SOCKET)", command[0]);
			return EXIT_SELF;
		}
		if (rc != 0) {
			fprintf(stderr, "shmalloc-run: %s%s is no shmallocd to trust: %s; not "
					"starting %s\n",
				path, socket_opt ? "" : " ($SHMALLOC_SOCKET)", why, command[0]);
			return EXIT_SELF;
		}
	} else if (seg_default_socket(path, sizeof path) != 0) {
		fprintf(stderr, "shmalloc-run: the default socket path is too long\n");
		return EXIT_SELF;
	} else if ((rc = trust_daemon(path, why, sizeof why)) != 0 && !trust_nobody_listens(rc)) {
		fprintf(stderr, "shmalloc-run: the default socket %s is no shmallocd to trust (%s): "
				"not used\n",
			path, why);
	}
	struct private_daemon priv = {.pid = 0};
	int explicit = explicit_socket != NULL && explicit_socket[0] != '\0';
	if (!explicit && rc != 0) {
		if (start_private(&priv) != 0)
			return EXIT_SELF;
		snprintf(path, sizeof path, "%s", priv.socket);
	}

	if (set_preload(lib) != 0 || setenv("SHMALLOC_SOCKET", path, 1) != 0 ||
	    (share_fork && setenv("SHMALLOC_SHARE_FORK", "1", 1) != 0)) {
		fprintf(stderr, "shmalloc-run: setenv: %s\n", strerror(errno));
		stop_private(&priv);
		return EXIT_SELF;
	}
	if (priv.pid == 0)
		exec_command(command); /* nothing to clean up after it */
	int status = run_and_wait(command);
	stop_private(&priv);
	return status;
}
