/* SPDX-License-Identifier: MIT */
/*
 * The server: the libuv loop, the listening socket, the signals and the
 * timers.  Layer: loop -- with conn.c the only files that see libuv; the
 * daemon's state (daemon.h) holds no libuv type, and the handles live here.
 *
 * A signal only marks the daemon stopping and closes the handles; the loop
 * ends once every connection has written what it queued and closed.  When
 * the process runs out of file descriptors, libuv accepts and drops the
 * pending connections with a reserve descriptor (uv__emfile_trick) rather
 * than spinning on accept; we only ignore the error it reports.  At start
 * the soft descriptor limit is raised so that the client cap, not the
 * default 1024 descriptors, is what limits clients.
 */
#include "config.h"
#include "clock.h"

#include "server.h"
#include "ctlcap.h"
#include "kept.h"
#include "conn.h"
#include "log.h"
#include "activation.h"
#include "control.h"
#include "lookupwait.h"
#include "perimeter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* The loop's handles, and the daemon they serve. */
struct server {
	struct daemon *d;
	struct perimeter *perimeter; /* the socket's directory, checked and held */
	uv_loop_t *loop;
	uv_pipe_t listener;
	uv_signal_t sigterm, sigint;
	uv_timer_t decay_timer;
	uv_timer_t conn_timer;   /* closes connections without Hello, or that never read */
	uv_timer_t spares_timer; /* makes a spare control block (control.c) */
	uv_check_t spares_check; /* arms it while spares are wanted */
	uv_timer_t lookup_timer; /* the next deadline of a waiting lookup */
	uv_check_t lookup_check; /* arms it after each turn (lookupwait.h) */
	struct conn_list conns;
	int stopping;
};

static void on_connection(uv_stream_t *listener, int status)
{
	struct server *srv = listener->data;
	if (status < 0 || srv->stopping)
		return;
	conn_accept(&srv->conns, listener);
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void begin_shutdown(struct server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = 1;
	log_msg(SLOG_INFO, "stopping: finishing requests in flight");
	uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
	uv_close((uv_handle_t *)&srv->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&srv->sigint, on_handle_closed);
	uv_close((uv_handle_t *)&srv->decay_timer, on_handle_closed);
	uv_close((uv_handle_t *)&srv->conn_timer, on_handle_closed);
	uv_close((uv_handle_t *)&srv->spares_timer, on_handle_closed);
	uv_close((uv_handle_t *)&srv->spares_check, on_handle_closed);
	uv_close((uv_handle_t *)&srv->lookup_timer, on_handle_closed);
	uv_close((uv_handle_t *)&srv->lookup_check, on_handle_closed);
	conn_close_all(&srv->conns);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct server *srv = s->data;
	log_msg(SLOG_INFO, "got signal %d", signum);
	activation_stopping();
	begin_shutdown(srv);
}

/* A spare control block is made SPARES_DELAY_MS after a Hello took one, one
 * per tick: right after the reply it would run while the client that just
 * got it maps the heap (on this CPU, as often as not, since the daemon was
 * woken there) and delay its first malloc by as long as the making takes. */
#define SPARES_DELAY_MS 2

static void on_spares_timer(uv_timer_t *h)
{
	struct server *srv = h->data;
	daemon_control_spare_make(srv->d);
}

/* After each turn of the loop (a Hello may have taken a spare). */
static void on_spares_check(uv_check_t *h)
{
	struct server *srv = h->data;
	if (!srv->stopping && daemon_control_spares_wanted(srv->d) &&
	    !uv_is_active((uv_handle_t *)&srv->spares_timer))
		uv_timer_start(&srv->spares_timer, on_spares_timer, SPARES_DELAY_MS, 0);
}

static void on_lookup_timer(uv_timer_t *h)
{
	struct server *srv = h->data;
	lookupwait_expire(srv->d);
}

/* After each turn of the loop (a lookup may have been parked or answered):
 * the timer is set for the earliest deadline, or stopped. */
static void on_lookup_check(uv_check_t *h)
{
	struct server *srv = h->data;
	int64_t next = srv->stopping ? -1 : lookupwait_next_ms(srv->d);
	if (next < 0)
		uv_timer_stop(&srv->lookup_timer);
	else
		uv_timer_start(&srv->lookup_timer, on_lookup_timer, (uint64_t)next, 0);
}

static void on_decay_timer(uv_timer_t *t)
{
	struct server *srv = t->data;
	daemon_control_spares_trim(srv->d);
	daemon_control_sweep(srv->d);
	quota_sweep(srv->d);
	ctlcap_check(srv->d);
	ctlcap_heal_pages(srv->d);
	daemon_kept_decay(srv->d, monotonic_ms());
	uint64_t bytes = heap_decay(srv->d->heap, monotonic_ms());
	if (bytes)
		log_msg(SLOG_DEBUG, "decay gave %llu bytes back to the OS",
			(unsigned long long)bytes);
}

static void on_conn_timer(uv_timer_t *t)
{
	struct server *srv = t->data;
	conn_check_timeouts(&srv->conns);
}

/* Ticks at a quarter of the shorter timeout, between 50 ms and 1 s. */
static void start_conn_timer(struct server *srv)
{
	const struct options *o = &srv->d->opt;
	uint64_t shortest = o->handshake_timeout_ms;
	if (shortest == 0 || (o->write_timeout_ms && o->write_timeout_ms < shortest))
		shortest = o->write_timeout_ms;
	uv_timer_init(srv->loop, &srv->conn_timer);
	srv->conn_timer.data = srv;
	if (shortest == 0)
		return;
	uint64_t every = shortest / 4;
	if (every < 50)
		every = 50;
	if (every > 1000)
		every = 1000;
	uv_timer_start(&srv->conn_timer, on_conn_timer, every, every);
}

/* Listens on the socket systemd passed (shmallocd.socket), else on the one
 * perimeter_bind() makes in the checked directory. */
static int listen_socket(struct server *srv)
{
	struct daemon *d = srv->d;
	int fd = activation_listen_fd(d->opt.socket_path);
	if (fd == -1)
		fd = perimeter_bind(srv->perimeter, d->opt.socket_mode);
	else if (fd >= 0)
		log_msg(SLOG_INFO, "socket activation: serving the socket systemd passed");
	if (fd < 0)
		return -1;
	uv_pipe_init(srv->loop, &srv->listener, 0);
	srv->listener.data = srv;
	int rc = uv_pipe_open(&srv->listener, fd);
	if (rc != 0)
		close(fd);
	else
		rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
	if (rc != 0) {
		log_msg(SLOG_ERROR, "cannot listen on %s: %s", d->opt.socket_path, uv_strerror(rc));
		uv_close((uv_handle_t *)&srv->listener, NULL);
		return -1;
	}
	return 0;
}

static void start_handles(struct server *srv)
{
	uv_signal_init(srv->loop, &srv->sigterm);
	uv_signal_init(srv->loop, &srv->sigint);
	srv->sigterm.data = srv->sigint.data = srv;
	uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	uv_signal_start(&srv->sigint, on_signal, SIGINT);
	uv_timer_init(srv->loop, &srv->decay_timer);
	srv->decay_timer.data = srv;
	uint64_t every = srv->d->opt.decay_ms / 4;
	if (every < 100)
		every = 100;
	if (every > 1000)
		every = 1000;
	uv_timer_start(&srv->decay_timer, on_decay_timer, every, every);
	start_conn_timer(srv);
	uv_timer_init(srv->loop, &srv->spares_timer);
	uv_check_init(srv->loop, &srv->spares_check);
	srv->spares_timer.data = srv->spares_check.data = srv;
	uv_check_start(&srv->spares_check, on_spares_check);
	uv_timer_init(srv->loop, &srv->lookup_timer);
	uv_check_init(srv->loop, &srv->lookup_check);
	srv->lookup_timer.data = srv->lookup_check.data = srv;
	uv_check_start(&srv->lookup_check, on_lookup_check);
	lookupwait_set_deliver(conn_deliver, &srv->conns);
	/* The first clients may come at once: make the spares now. */
	srv->d->spares_wanted = 1;
	while (daemon_control_spare_make(srv->d))
		;
}

/* A client costs two descriptors (its socket and its control block): raise
 * the soft limit so that DAEMON_MAX_CLIENTS of them fit, as far as the hard limit
 * lets us, and say how many fit when it does not. */
static void raise_fd_limit(void)
{
	const rlim_t want = 2 * DAEMON_MAX_CLIENTS + 256;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		log_msg(SLOG_WARN,
			"only %llu file descriptors (hard limit): about %llu clients fit",
			(unsigned long long)rl.rlim_cur,
			(unsigned long long)(rl.rlim_cur > 256 ? (rl.rlim_cur - 256) / 2 : 0));
}

int server_run(struct daemon *d, struct perimeter *p)
{
	struct server srv = {.d = d, .perimeter = p, .loop = uv_default_loop()};
	srv.conns.loop = srv.loop;
	srv.conns.d = d;
	d->started = (int64_t)time(NULL);
	raise_fd_limit();
	if (listen_socket(&srv) != 0)
		return 1;
	start_handles(&srv);
	log_msg(SLOG_INFO, "listening on %s (instance %s, arenas of %llu MiB)",
		d->opt.socket_path, d->opt.instance,
		(unsigned long long)(d->opt.arena_size >> 20));
	activation_ready();
	uv_run(srv.loop, UV_RUN_DEFAULT);
	perimeter_close(p);
	uv_loop_close(srv.loop);
	log_msg(SLOG_INFO, "stopped");
	return 0;
}
