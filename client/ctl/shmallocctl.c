/* SPDX-License-Identifier: MIT */
/*
 * shmallocctl: what the heap is doing.  Talks to the daemon with the
 * library's own connection code (linked statically, not through the .so's
 * exported names); the views of a StatsReply are in ctl_table.c and
 * ctl_prom.c.
 *
 * Exit status, one per thing that can be wrong, so that scripts can tell
 * them apart (doc/shmallocctl.1 lists them):
 *   0 the daemon answered;
 *   1 it answered with an error, or the connection broke;
 *   2 a usage error;
 *   3 no daemon listens on the socket (ENOENT, ECONNREFUSED);
 *   4 permission denied (EACCES, EPERM): by the file system or the daemon;
 *   5 the daemon speaks another protocol (EPROTONOSUPPORT, EPROTO).
 * The errno -> status mapping is the wire contract's error table (wire.h).
 */
#include "config.h"

#include "client.h"
#include "connerr.h"
#include "ctl.h"
#include "seg.h"
#include "shmalloc.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum format { FORMAT_TABLE, FORMAT_JSON, FORMAT_PROMETHEUS };

struct args {
	const char *socket;
	const char *cmd;
	enum format format;
	double watch;   /* seconds between redraws; 0: draw once */
	long count;     /* redraws with --watch; 0: until SIGINT */
};

static const char usage_text[] =
	"Usage: shmallocctl [--socket PATH] COMMAND [OPTIONS]\n"
	"Show what a shmallocd heap is doing.\n"
	"\n"
	"Commands:\n"
	"  stats               totals, fragmentation, service time, arenas, size\n"
	"                      classes and clients as a table\n"
	"  clients             connected clients: pid, uid, held, cached, since\n"
	"  roots               published names and their refs\n"
	"  heaps               named heaps (and shmalloc-run processes' regions):\n"
	"                      name, lifetime, bytes, blocks, processes\n"
	"  ping                print \"ok\" and exit 0 when the daemon answers\n"
	"\n"
	"Options:\n"
	"  -s, --socket PATH   the daemon's socket (default: $SHMALLOC_SOCKET, else\n"
	"                      the daemon's default)\n"
	"  -j, --json          stats or heaps as JSON\n"
	"  -p, --prometheus    stats in the Prometheus text exposition format\n"
	"  -w, --watch SECONDS redraw stats or clients every SECONDS until SIGINT\n"
	"  -n, --count N       with --watch: stop after N draws\n"
	"  -h, --help          show this help\n"
	"  -V, --version       show the version\n"
	"\n"
	"Exit status: 0 ok, 1 the daemon answered with an error, 2 usage error,\n"
	"3 no daemon listens, 4 permission denied, 5 protocol version mismatch.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("shmallocctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (try --help)\n", stderr);
	va_end(ap);
	return WIRE_EXIT_USAGE;
}

/* The path shma_connect() will use, for messages. */
static void socket_path(const struct args *a, char *buf, size_t n)
{
	const char *env = getenv("SHMALLOC_SOCKET");
	if (a->socket)
		snprintf(buf, n, "%s", a->socket);
	else if (env && env[0])
		snprintf(buf, n, "%s", env);
	else if (seg_default_socket(buf, n) != 0)
		snprintf(buf, n, "(the default socket)");
}

/* Says what is wrong with rc and returns the exit status that names it
 * (the error table's, wire.h). */
static int fail(const struct args *a, const char *what, int rc)
{
	char path[PATH_MAX];
	socket_path(a, path, sizeof path);
	int status = wire_exit_status(rc);
	switch (status) {
	case WIRE_EXIT_NO_DAEMON:
		fprintf(stderr, "shmallocctl: no shmallocd listens on %s (%s)\n", path,
			wire_strerror(rc));
		break;
	case WIRE_EXIT_DENIED:
		fprintf(stderr, "shmallocctl: permission denied on %s: %s (see shmallocd "
				"--allow-uid and --allow-gid)\n", path, wire_strerror(rc));
		break;
	case WIRE_EXIT_VERSION:
		fprintf(stderr, "shmallocctl: shmallocd on %s speaks another protocol (this "
				"shmallocctl speaks version %u): %s\n", path,
			SHMA_PROTOCOL_VERSION, wire_strerror(rc));
		break;
	default:
		fprintf(stderr, "shmallocctl: %s: %s\n", what, wire_strerror(rc));
		status = WIRE_EXIT_ERROR;
		break;
	}
	return status;
}

static void show_stats(const struct args *a, Shma__StatsReply *r)
{
	ctl_drop_pid(r, (uint32_t)getpid());
	int heaps = strcmp(a->cmd, "heaps") == 0;
	if (a->format == FORMAT_JSON)
		stats_json_write(stdout, r, heaps);
	else if (a->format == FORMAT_PROMETHEUS)
		ctl_print_prometheus(stdout, r);
	else if (heaps)
		ctl_print_heaps(stdout, r, time(NULL));
	else if (strcmp(a->cmd, "clients") == 0)
		ctl_print_clients(stdout, r, time(NULL));
	else
		ctl_print_stats(stdout, r, time(NULL));
}

static int cmd_stats(const struct args *a)
{
	Shma__Response *resp;
	conn_lock();
	int rc = stats_fetch(&resp);
	if (rc == 0)
		show_stats(a, resp->stats);
	if (resp)
		conn_done();
	conn_unlock();
	fflush(stdout);
	return rc == 0 ? 0 : fail(a, "stats", rc);
}

/* Sleeps s seconds; returns early on SIGINT. */
static void pause_for(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s};
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Like top: clear the screen (on a terminal), draw, wait; until SIGINT or
 * --count draws.  SIGINT is the normal way out and exits 0. */
static int cmd_watch(const struct args *a)
{
	struct sigaction sa = {.sa_handler = on_sigint};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	int tty = isatty(STDOUT_FILENO);
	for (long n = 0; !interrupted && (a->count == 0 || n < a->count); n++) {
		if (n > 0)
			pause_for(a->watch);
		if (interrupted)
			break;
		fputs(tty ? "\033[H\033[2J" : (n > 0 ? "\n" : ""), stdout);
		int rc = cmd_stats(a);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int cmd_roots(const struct args *a)
{
	Shma__Request req;
	Shma__Roots roots;
	wire_roots(&req, &roots);
	Shma__Response *resp;
	conn_lock();
	int rc = conn_call(&req, &resp);
	if (rc == 0 && resp->body_case != SHMA__RESPONSE__BODY_ROOTS)
		rc = -EPROTO;
	if (rc == 0) {
		printf("%-40s %s\n", "name", "ref");
		for (size_t i = 0; i < resp->roots->n_roots; i++)
			printf("%-40s 0x%016llx\n", resp->roots->roots[i]->name,
			       (unsigned long long)resp->roots->roots[i]->ref);
	}
	if (resp)
		conn_done();
	conn_unlock();
	return rc == 0 ? 0 : fail(a, "roots", rc);
}

static int parse_watch(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(v > 0) || v > 86400)
		return -1;
	*out = v;
	return 0;
}

static int parse_count(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v < 1)
		return -1;
	*out = v;
	return 0;
}

/* Options may come before or after the command.  0, -1 (exit 0: --help or
 * --version printed), or WIRE_EXIT_USAGE. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"prometheus", no_argument, NULL, 'p'},   {"watch", required_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'n'},  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:jpw:n:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 's': a->socket = optarg; break;
		case 'j': a->format = FORMAT_JSON; break;
		case 'p': a->format = FORMAT_PROMETHEUS; break;
		case 'w':
			if (parse_watch(optarg, &a->watch) != 0)
				return usage_error("--watch wants seconds > 0, not '%s'", optarg);
			break;
		case 'n':
			if (parse_count(optarg, &a->count) != 0)
				return usage_error("--count wants a number >= 1, not '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); return -1;
		case 'V': printf("shmallocctl %s\n", PACKAGE_VERSION); return -1;
		case ':': return usage_error("%s wants an argument", argv[optind - 1]);
		default: return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	a->cmd = argv[optind];
	if (optind + 1 < argc)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	return 0;
}

/* Which options go with which command. */
static int check_args(const struct args *a)
{
	const char *c = a->cmd;
	int stats = strcmp(c, "stats") == 0, clients = strcmp(c, "clients") == 0;
	int heaps = strcmp(c, "heaps") == 0;
	if (!stats && !clients && !heaps && strcmp(c, "roots") && strcmp(c, "ping"))
		return usage_error("unknown command '%s'", c);
	if (a->format == FORMAT_JSON && !stats && !heaps)
		return usage_error("--json goes with stats or heaps, not %s", c);
	if (a->format == FORMAT_PROMETHEUS && !stats)
		return usage_error("--prometheus goes with stats, not %s", c);
	if (a->watch > 0 && !stats && !clients)
		return usage_error("--watch goes with stats or clients, not %s", c);
	if (a->watch > 0 && a->format != FORMAT_TABLE)
		return usage_error("--watch draws the table; --json and --prometheus print once");
	if (a->count > 0 && a->watch == 0)
		return usage_error("--count goes with --watch");
	return 0;
}

static int run(const struct args *a)
{
	if (a->watch > 0)
		return cmd_watch(a);
	if (strcmp(a->cmd, "roots") == 0)
		return cmd_roots(a);
	if (strcmp(a->cmd, "ping") == 0) {
		puts("ok");
		return 0;
	}
	return cmd_stats(a);
}

int main(int argc, char **argv)
{
	struct args a = {0};
	int rc = parse_args(argc, argv, &a);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = check_args(&a);
	if (rc != 0)
		return rc;
	connerr_quiet(); /* fail() says it, with the exit status */
	rc = shma_connect(a.socket);
	if (rc != 0)
		return fail(&a, "cannot reach the daemon", rc);
	rc = run(&a);
	shma_disconnect();
	return rc;
}
