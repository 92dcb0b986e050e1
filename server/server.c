/*
 * The server: the libuv loop, the listening socket, connections and frames.
 *
 * Each connection keeps a buffer of bytes read; the read callback takes
 * every whole frame out of it, hands each decoded request to the dispatcher
 * and writes what the dispatcher decided, then compacts the buffer.  A frame
 * over the limit, a message that does not decode, or a request the
 * dispatcher refuses with "close" gets an Error, one log line, and the
 * connection is closed once the Error is written; nothing else notices.
 *
 * A client that reads nothing while sending requests makes its write queue
 * grow: past a cap we stop taking frames from its buffer and stop reading
 * from it until the queue drains, so one slow client costs memory bounded
 * by the cap (plus its read buffer), and others nothing.
 *
 * A connection that has not said Hello within --handshake-timeout gets an
 * ETIMEDOUT Error and is closed, so that idle or half-open peers cannot sit
 * on file descriptors and client slots; one whose answers stay unread past
 * the cap for --write-timeout is closed too, so the memory it pins is freed.  A client that said Hello may stay
 * idle as long as it likes.  When the process runs out of file descriptors,
 * libuv accepts and drops the pending connections with a reserve descriptor
 * (uv__emfile_trick) rather than spinning on accept; we only ignore the
 * error it reports.  At start the soft descriptor limit is raised so that
 * the client cap, not the default 1024 descriptors, is what limits clients.
 */
#include "config.h"

#include "server.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "perimeter.h"
#include "seg.h"
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define WRITE_QUEUE_CAP ((size_t)8 << 20)
/* Before Hello a peer has not shown it speaks our protocol: its frames are
 * held to this (a Hello is well under it) and its buffer to about twice
 * that, so thousands of silent connections cost little until they time out. */
#define PREHELLO_FRAME_MAX 4096u
#define MAX_CLIENTS 4096

struct write_req {
	uv_write_t req;
	uv_buf_t buf;
};

static void on_client_closed(uv_handle_t *h);
static void start_reading(struct client *c);
static void take_frames(struct client *c);

static int queue_full(struct client *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > WRITE_QUEUE_CAP;
}

static int64_t now_seconds(void)
{
	return (int64_t)time(NULL);
}

static void close_client(struct client *c)
{
	if (uv_is_closing((uv_handle_t *)&c->pipe))
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_client_closed(uv_handle_t *h)
{
	struct client *c = (struct client *)h;
	struct daemon *d = c->d;
	stats_retire_client(d, c);
	uint64_t back = daemon_control_release(d, c, !c->said_goodbye);
	quota_disconnect(d, c);
	if (c->hello_done)
		log_msg(LOG_INFO, "client %llu (pid %ld) %s%s",
			(unsigned long long)c->id, (long)c->pid,
			c->said_goodbye ? "said goodbye" : "disconnected without goodbye",
			back ? ", cached objects taken back" : "");
	if (back)
		log_msg(LOG_INFO, "client %llu: took back %llu cached objects",
			(unsigned long long)c->id, (unsigned long long)back);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->nclients--;
	free(c->buf);
	free(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct client *c = req->handle->data;
	free(w->buf.base);
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		close_client(c);
		return;
	}
	if (c->closing) {
		if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) == 0)
			close_client(c);
		return;
	}
	if (!c->reading &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) < WRITE_QUEUE_CAP / 2) {
		/* Frames already read wait in the buffer: take them first. */
		c->stalled_ms = 0;
		take_frames(c);
		if (!c->closing && !queue_full(c))
			start_reading(c);
	}
}

/* Queues a frame the caller malloc'ed; takes it over.  0 or a negative errno. */
static int send_frame(struct client *c, uint8_t *frame, size_t len)
{
	struct write_req *w = malloc(sizeof *w);
	if (w == NULL) {
		free(frame);
		return -ENOMEM;
	}
	w->buf = uv_buf_init((char *)frame, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &w->buf, 1, on_written);
	if (rc != 0) {
		free(frame);
		free(w);
	}
	return rc;
}

static int send_response(struct client *c, const Shma__Response *resp)
{
	uint8_t *frame;
	size_t len;
	int rc = dispatch_pack(resp, &frame, &len);
	return rc != 0 ? rc : send_frame(c, frame, len);
}

static void send_error_and_close(struct client *c, int code, const char *what)
{
	Shma__Response resp;
	struct dispatch_scratch s = {0};
	dispatch_error(&resp, &s, 0, code, "%s", what);
	c->rejected++;
	c->d->rejected++;
	log_msg(LOG_WARN, "refused pid %ld uid %lu: %s", (long)c->pid, (unsigned long)c->uid,
		what);
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->reading = 0;
	c->closing = 1;
	if (send_response(c, &resp) != 0)
		close_client(c);
	dispatch_done(&s);
}

static unsigned hist_bucket(uint64_t ns)
{
	unsigned b = ns ? 64u - (unsigned)__builtin_clzll(ns) : 0;
	return b < DAEMON_HIST_BUCKETS ? b : DAEMON_HIST_BUCKETS - 1;
}

/* Stops reading and closes once what is queued is written. */
static void close_after_writes(struct client *c)
{
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->reading = 0;
	c->closing = 1;
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) == 0)
		close_client(c);
}

/* One frame's body: the dispatcher decides, we write.  0 to go on, -1 to stop. */
static int handle_frame(struct client *c, const uint8_t *body, uint32_t len)
{
	struct daemon *d = c->d;
	uint64_t t0 = uv_hrtime();
	uint8_t *frame;
	size_t n;
	enum dispatch_action act = dispatch_frame(d, c, body, len, &frame, &n);
	if (frame != NULL && send_frame(c, frame, n) != 0)
		act = DISPATCH_REPLY_CLOSE;
	d->hist[hist_bucket(uv_hrtime() - t0)]++;
	if (act == DISPATCH_REPLY_CLOSE) {
		close_after_writes(c);
		return -1;
	}
	return 0;
}

/* The longest frame c may send now. */
static uint32_t frame_limit(const struct client *c)
{
	return c->hello_done ? c->d->opt.max_frame : PREHELLO_FRAME_MAX;
}

static void take_frames(struct client *c)
{
	size_t off = 0;
	while (!c->closing && !queue_full(c)) {
		const uint8_t *body;
		uint32_t n;
		size_t used;
		enum frame_status st = frame_next(c->buf + off, c->len - off, frame_limit(c),
						  &body, &n, &used);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			send_error_and_close(c, st == FRAME_TOO_BIG ? EMSGSIZE : EPROTO,
					     frame_status_str(st));
			return;
		}
		off += used;
		if (handle_frame(c, body, n) != 0)
			return;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	if (!c->closing && queue_full(c)) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
		if (c->stalled_ms == 0)
			c->stalled_ms = uv_now(c->d->loop) | 1;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = (struct client *)h;
	size_t slack = c->hello_done ? 65536 : 4096;
	size_t limit = (size_t)frame_limit(c) + FRAME_HEADER + slack;
	(void)suggested;
	if (c->cap - c->len < 4096 && c->cap < limit) {
		size_t ncap = c->cap ? c->cap * 2 : slack;
		if (ncap > limit)
			ncap = limit;
		uint8_t *nb = realloc(c->buf, ncap);
		if (nb != NULL) {
			c->buf = nb;
			c->cap = ncap;
		}
	}
	*buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = (struct client *)s;
	(void)buf;
	if (nread < 0) {
		close_client(c);
		return;
	}
	if (c->closing)
		return;
	c->len += (size_t)nread;
	take_frames(c);
	if (!c->closing && c->reading && c->len == c->cap &&
	    c->cap >= (size_t)frame_limit(c) + FRAME_HEADER) {
		/* Full buffer at its largest and still no whole frame: cannot
		 * happen within the limit.  (Below its largest, a full buffer
		 * only means on_alloc() grows it next time.) */
		send_error_and_close(c, EMSGSIZE, "frame does not fit the read buffer");
	}
}

static void start_reading(struct client *c)
{
	if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
		c->reading = 1;
}

static int peer_allowed(const struct options *o, uid_t uid, gid_t gid)
{
	for (unsigned i = 0; i < o->nallow_uid; i++)
		if (o->allow_uid[i] == uid)
			return 1;
	for (unsigned i = 0; i < o->nallow_gid; i++)
		if (o->allow_gid[i] == gid)
			return 1;
	return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct daemon *d = server->data;
	if (status < 0 || d->stopping)
		return;
	struct client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->d = d;
	c->ctl_fd = -1;
	c->connected_since = now_seconds();
	c->accepted_ms = uv_now(d->loop);
	uv_pipe_init(d->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = d->clients;
	if (d->clients)
		d->clients->prev = c;
	d->clients = c;
	d->nclients++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
		close_client(c);
		return;
	}
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		log_msg(LOG_WARN, "cannot read the peer's credentials: %s", strerror(errno));
		close_client(c);
		return;
	}
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	if (!peer_allowed(&d->opt, cred.uid, cred.gid)) {
		send_error_and_close(c, EACCES, "this user may not use this daemon (see --allow-uid)");
		return;
	}
	if (d->nclients > MAX_CLIENTS) {
		send_error_and_close(c, EAGAIN, "too many clients");
		return;
	}
	int rc = quota_connect(d, c);
	if (rc != 0) {
		send_error_and_close(c, -rc, rc == -EAGAIN ? "too many connections of this user "
				     "(--uid-max-connections)" : "out of memory");
		return;
	}
	start_reading(c);
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void begin_shutdown(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	log_msg(LOG_INFO, "stopping: finishing requests in flight");
	uv_close((uv_handle_t *)&d->listener, on_handle_closed);
	uv_close((uv_handle_t *)&d->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&d->sigint, on_handle_closed);
	uv_close((uv_handle_t *)&d->decay_timer, on_handle_closed);
	uv_close((uv_handle_t *)&d->conn_timer, on_handle_closed);
	for (struct client *c = d->clients; c; c = c->next) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
		c->closing = 1;
		if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) == 0)
			close_client(c);
	}
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	log_msg(LOG_INFO, "got signal %d", signum);
	begin_shutdown(d);
}

static void on_decay_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	daemon_control_sweep(d);
	uint64_t bytes = heap_decay(d->heap, uv_now(d->loop));
	if (bytes)
		log_msg(LOG_DEBUG, "decay gave %llu bytes back to the OS",
			(unsigned long long)bytes);
}

/* No Hello within --handshake-timeout: told so, and closed. */
static int handshake_overdue(const struct client *c, uint64_t now)
{
	uint64_t limit = c->d->opt.handshake_timeout_ms;
	return !c->hello_done && limit != 0 && now - c->accepted_ms >= limit;
}

/* Answers unread past the cap for --write-timeout: closed without a word
 * (it would not read one), which frees what its queue pins. */
static int write_overdue(const struct client *c, uint64_t now)
{
	uint64_t limit = c->d->opt.write_timeout_ms;
	return c->stalled_ms != 0 && limit != 0 && now - c->stalled_ms >= limit;
}

static void on_conn_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;
	uint64_t now = uv_now(d->loop);
	for (struct client *c = d->clients; c; c = c->next) {
		if (c->closing)
			continue;
		if (handshake_overdue(c, now)) {
			send_error_and_close(c, ETIMEDOUT, "no hello within --handshake-timeout");
		} else if (write_overdue(c, now)) {
			c->rejected++;
			d->rejected++;
			log_msg(LOG_WARN, "pid %ld: its answers stayed unread past --write-timeout: closed",
				(long)c->pid);
			c->closing = 1;
			close_client(c);
		}
	}
}

/* Ticks at a quarter of the shorter timeout, between 50 ms and 1 s. */
static void start_conn_timer(struct daemon *d)
{
	uint64_t shortest = d->opt.handshake_timeout_ms;
	if (shortest == 0 || (d->opt.write_timeout_ms && d->opt.write_timeout_ms < shortest))
		shortest = d->opt.write_timeout_ms;
	uv_timer_init(d->loop, &d->conn_timer);
	d->conn_timer.data = d;
	if (shortest == 0)
		return;
	uint64_t every = shortest / 4;
	if (every < 50)
		every = 50;
	if (every > 1000)
		every = 1000;
	uv_timer_start(&d->conn_timer, on_conn_timer, every, every);
}

/* Listens on the socket perimeter_bind() made in the checked directory. */
static int listen_socket(struct daemon *d)
{
	int fd = perimeter_bind(&d->perimeter, d->opt.socket_mode);
	if (fd < 0)
		return -1;
	uv_pipe_init(d->loop, &d->listener, 0);
	d->listener.data = d;
	int rc = uv_pipe_open(&d->listener, fd);
	if (rc != 0)
		close(fd);
	else
		rc = uv_listen((uv_stream_t *)&d->listener, 128, on_connection);
	if (rc != 0) {
		log_msg(LOG_ERROR, "cannot listen on %s: %s", d->opt.socket_path, uv_strerror(rc));
		uv_close((uv_handle_t *)&d->listener, NULL);
		return -1;
	}
	return 0;
}

static void start_handles(struct daemon *d)
{
	uv_signal_init(d->loop, &d->sigterm);
	uv_signal_init(d->loop, &d->sigint);
	d->sigterm.data = d->sigint.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	uv_timer_init(d->loop, &d->decay_timer);
	d->decay_timer.data = d;
	uint64_t every = d->opt.decay_ms / 4;
	if (every < 100)
		every = 100;
	if (every > 1000)
		every = 1000;
	uv_timer_start(&d->decay_timer, on_decay_timer, every, every);
	start_conn_timer(d);
}

/* A client costs two descriptors (its socket and its control block): raise
 * the soft limit so that MAX_CLIENTS of them fit, as far as the hard limit
 * lets us, and say how many fit when it does not. */
static void raise_fd_limit(void)
{
	const rlim_t want = 2 * MAX_CLIENTS + 256;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		log_msg(LOG_WARN, "only %llu file descriptors (hard limit): about %llu clients fit",
			(unsigned long long)rl.rlim_cur,
			(unsigned long long)(rl.rlim_cur > 256 ? (rl.rlim_cur - 256) / 2 : 0));
}

int server_run(struct daemon *d)
{
	d->loop = uv_default_loop();
	d->started = now_seconds();
	raise_fd_limit();
	if (listen_socket(d) != 0)
		return 1;
	start_handles(d);
	log_msg(LOG_INFO, "listening on %s (instance %s, arenas of %llu MiB)",
		d->opt.socket_path, d->opt.instance,
		(unsigned long long)(d->opt.arena_size >> 20));
	uv_run(d->loop, UV_RUN_DEFAULT);
	perimeter_close(&d->perimeter);
	uv_loop_close(d->loop);
	log_msg(LOG_INFO, "stopped");
	return 0;
}
