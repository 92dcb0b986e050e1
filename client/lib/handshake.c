/* SPDX-License-Identifier: MIT */
/*
 * The handshake: connect, check the peer, say Hello, map what the reply
 * names -- and do it all again after a daemon was lost.
 *
 * A new connection may carry one request right behind the Hello, in the same
 * write (conn_ensure_behind(): the call layer's first refill, call.c), so a
 * program's first malloc waits for one round trip to the daemon, not two.
 *
 * A connection lost without a goodbye (the daemon was killed or restarted)
 * is made anew on the next request, retrying with growing sleeps for a few
 * seconds while nobody listens.  The Hello then names the client id we had,
 * and the daemon gives us our control block back when it still exists
 * (control.c).  After fork() the child drops the inherited connection
 * without a word (the socket is its parent's) and connects anew on first
 * use.
 *
 * A Hello reply's geometry, size classes and large threshold are checked
 * before anything is mapped (here and in maps.c), and the control block's
 * descriptor must be a regular file of its size (control.c).
 */
#include "config.h"

#include "call.h"
#include "conn.h"
#include "connerr.h"
#include "debug.h"
#include "seg.h"
#include "sizeclass.h"
#include "xfer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RECONNECT_MS 4000u
/* After a reconnection that failed for RECONNECT_MS, the next attempts are
 * single tries, at most one per RETRY_GAP_MS: a program whose daemon is gone
 * waits once, not on every free that would have flushed. */
#define RETRY_GAP_MS 1000u

static struct {
	int lost;            /* the last connection ended without a goodbye */
	int gave_up;         /* a reconnection failed for RECONNECT_MS since */
	uint64_t failed_ms;  /* when the last reconnection attempt failed */
	int failed_rc;
	char path[108];
	int atfork_done;
	int want_region;     /* ask for a region in every Hello */
	int want_batches;    /* ask for first batches in the first Hello (conn_want_first_batches) */
	uint64_t life;       /* HelloReply.daemon_life of the current (or last) daemon */
} hs;

/*
 * Refills in flight when the daemon died.  A thread asks for a refill ahead
 * of need; if the daemon is killed after sending the answer and before the
 * thread took it in, the objects are out in the heap's bitmaps yet in no
 * cache.  A daemon we merely lost (a timeout) takes such refills back itself
 * when we re-adopt our control block (server/inflight.h); a NEW daemon -- a
 * restart -- cannot know them.  So when a connection is lost, the refill
 * answers already read, parked or waiting in the socket are kept here, and
 * flushed back once we are connected again, if and only if the daemon there
 * is another life (HelloReply.daemon_life).  No thread can take them in
 * meanwhile: their ids belong to a connection that is gone.  At most
 * SALVAGE_MAX refs; past that they leak, as before.
 */
#define SALVAGE_MAX ((size_t)1 << 20)

static struct {
	uint64_t *refs;
	size_t n, cap, maplen;
	uint64_t life; /* of the daemon that sent them */
	uint64_t returned; /* objects flushed back, over the process's life */
} salvage;

static void salvage_add(uint64_t ref)
{
	if (salvage.n == salvage.cap) {
		size_t cap = salvage.cap ? salvage.cap * 2 : 4096;
		if (cap > SALVAGE_MAX)
			return;
		uint64_t *p = prim_alloc(cap * sizeof *p);
		if (p == NULL)
			return;
		if (salvage.refs != NULL) {
			memcpy(p, salvage.refs, salvage.n * sizeof *p);
			prim_free(salvage.refs, salvage.maplen);
		}
		salvage.refs = p;
		salvage.cap = cap;
		salvage.maplen = cap * sizeof *p;
	}
	salvage.refs[salvage.n++] = ref;
}

/* Keeps the objects of body if it is a refill answer (of this connection:
 * tp_each_unread() says). */
static void salvage_frame(const uint8_t *body, uint32_t len)
{
	Shma__Response *r = shma__response__unpack(pballoc_get(), len, body);
	if (r == NULL || r->body_case != SHMA__RESPONSE__BODY_REFILL ||
	    r->refill->size_class >= SIZECLASS_COUNT)
		return;
	const Shma__RefillReply *f = r->refill;
	uint64_t size = sizeclass_size(f->size_class);
	for (size_t i = 0; i < f->n_refs; i++)
		salvage_add(f->refs[i]);
	for (size_t i = 0; i < f->n_runs; i++)
		for (uint32_t k = 0; k < f->runs[i]->count && k < WIRE_REFILL_MAX; k++)
			salvage_add(f->runs[i]->first + k * size);
}

/* Connected again: a new daemon gets the salvaged objects back. */
static void salvage_return(void)
{
	if (salvage.n > 0 && salvage.life != 0 && salvage.life != hs.life) {
		for (size_t at = 0; at < salvage.n; at += WIRE_FLUSH_CHUNK) {
			size_t k = salvage.n - at < WIRE_FLUSH_CHUNK ? salvage.n - at : WIRE_FLUSH_CHUNK;
			call_flush_in_flight(salvage.refs + at, k);
		}
		salvage.returned += salvage.n;
	}
	salvage.n = 0;
}

uint64_t conn_salvaged(void)
{
	return salvage.returned;
}

/* Closes the connection.  lost: it broke under us, and the control block
 * stays ours to re-adopt; else (goodbye, fork) it is given up. */
void conn_drop(int lost)
{
	if (lost && conn_connected()) {
		/* The connection is lost: what it brought that nobody took in. */
		salvage.n = 0;
		salvage.life = hs.life;
		tp_each_unread(salvage_frame);
	}
	tp_detach();
	if (lost && conn_control() != NULL) {
		hs.lost = 1;
		return;
	}
	ctl_forget();
	hs.lost = 0;
}

static void atfork_prepare(void)
{
	conn_lock();
}

static void atfork_parent(void)
{
	conn_unlock();
}

static void atfork_child(void)
{
	conn_lock_reinit();
	conn_drop(0);
	tcache_forget();
	lcache_forget();
}

static const char *socket_path(void)
{
	if (hs.path[0])
		return hs.path;
	const char *env = getenv("SHMALLOC_SOCKET");
	if (env && env[0] && strlen(env) < sizeof hs.path)
		strcpy(hs.path, env);
	else if (seg_default_socket(hs.path, sizeof hs.path) != 0)
		hs.path[0] = '\0';
	return hs.path;
}

int conn_open_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* After a lost connection: the daemon may be restarting, so nobody listens
 * (ECONNREFUSED) or the socket is not there yet (ENOENT) for a while.
 * Retries with growing sleeps, about RECONNECT_MS in all. */
static int open_socket_retrying(const char *path)
{
	unsigned slept = 0, sleep_ms = 10;
	for (;;) {
		int fd = conn_open_socket(path);
		if (fd >= 0 || (fd != -ECONNREFUSED && fd != -ENOENT) || slept >= RECONNECT_MS)
			return fd;
		usleep(sleep_ms * 1000);
		slept += sleep_ms;
		sleep_ms = sleep_ms * 2 > 500 ? 500 : sleep_ms * 2;
	}
}

void conn_want_first_batches(int on)
{
	hs.want_batches = on;
}

void conn_set_region(void)
{
	hs.want_region = 1;
	map_view.region_flags = SHMA_PAGE_REGION;
}

/* The reply's word on the heap, for map_setup(). */
static void heap_shape_of(const Shma__HelloReply *h, struct heap_shape *s)
{
	s->arena_size = h->arena_size;
	s->max_arenas = h->max_arenas;
	s->range = h->heap_range;
	s->base = h->heap_base;
	s->meta_bytes = h->meta_bytes;
	s->large_threshold = h->large_threshold;
	s->instance = h->instance;
}

/* Says Hello (and behind it, in the same write, behind if not NULL and the
 * control block will be new), checks the reply and maps what it names. */
static int handshake(Shma__Request *behind, uint64_t *behind_id)
{
	Shma__Request req;
	Shma__Hello hello;
	extern char *program_invocation_short_name;
	wire_hello(&req, &hello, program_invocation_short_name, hs.lost ? ctl_client_id() : 0);
	if (hs.want_region)
		wire_hello_region(&req);
	/* Not in debug mode: its mallocs never take from the transfer cache
	 * (debug.c), so first batches would only sit there, cached. */
	if (hs.want_batches && !hs.lost && !debug_flags)
		wire_hello_first_batches(&req);
	Shma__Response *resp;
	/* Only with a new block (not when re-adopting ours): the request
	 * behind is for a slot of the block the reply brings.  Answered after
	 * the Hello reply, read with it. */
	Shma__Request *reqs[2] = {&req, behind};
	unsigned nreq = behind != NULL && !hs.lost ? 2 : 1;
	/* A daemon that refuses us says why before we speak, then hangs up:
	 * read its answer even when our Hello could not be written. */
	tp_send_all(reqs, nreq);
	int rc = conn_wait(req.id, &resp);
	if (rc == 0 && resp->body_case != SHMA__RESPONSE__BODY_HELLO)
		rc = -EPROTO;
	if (rc == 0 && resp->hello->version != SHMA_PROTOCOL_VERSION)
		rc = -EPROTONOSUPPORT;
	if (rc == 0 && (resp->hello->max_frame < WIRE_MIN_MAX_FRAME || resp->hello->control_slots != SHMA_CONTROL_SLOTS))
		rc = -EPROTO;
	/* The size classes are ours (the daemon checked the table's checksum
	 * in our Hello): a threshold past the largest class would take sizes
	 * no class has to the small path, 0 every size to the large one. */
	if (rc == 0 && (resp->hello->nclasses != SIZECLASS_COUNT || resp->hello->large_threshold < 16 ||
			resp->hello->large_threshold > SIZECLASS_MAX_SIZE))
		rc = -EPROTO;
	if (rc == 0) {
		struct heap_shape shape;
		heap_shape_of(resp->hello, &shape);
		tp_set_max_frame(resp->hello->max_frame);
		lcache_set_decay(resp->hello->decay_ms);
		rc = map_setup(&shape);
	}
	if (rc == 0)
		rc = ctl_map(resp->hello->instance, resp->hello->client_id, tp_take_passed_fd(),
			     hs.lost);
	{
		int area = backing_take_area(); /* the uid's transfer area (xfer.c) */
		if (rc == 0)
			xfer_uid_attach(area);
		else if (area >= 0)
			close(area);
	}
	backing_drop();
	if (rc == 0) {
		hs.lost = 0;
		hs.life = resp->hello->daemon_life;
	}
	conn_done();
	if (rc == 0)
		salvage_return();
	if (behind_id != NULL)
		*behind_id = rc == 0 && nreq == 2 ? behind->id : 0;
	return rc;
}

/* One attempt: connect (retrying while nobody listens, when reconnecting)
 * and say Hello.  0 or -errno. */
static int connect_and_greet(int retrying, Shma__Request *behind, uint64_t *behind_id)
{
	int fd = retrying ? open_socket_retrying(socket_path()) : conn_open_socket(socket_path());
	if (fd < 0)
		return connerr_note(socket_path(), fd);
	/* Before a byte goes out or a segment is mapped: is it our daemon? */
	int rc = peer_check(fd, socket_path());
	if (rc != 0) {
		close(fd);
		return connerr_note(socket_path(), rc);
	}
	tp_attach(fd);
	rc = handshake(behind, behind_id);
	if (rc != 0) {
		conn_drop(1);
		rc = connerr_note(socket_path(), rc);
	}
	return rc;
}

int conn_ensure(void)
{
	return conn_ensure_behind(NULL, NULL);
}

int conn_ensure_behind(Shma__Request *behind, uint64_t *behind_id)
{
	if (behind_id != NULL)
		*behind_id = 0;
	if (conn_connected())
		return 0;
	if (!hs.atfork_done) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		hs.atfork_done = 1;
	}
	debug_init();
	int rc = tp_buffers();
	if (rc != 0)
		return rc;
	if (!hs.lost)
		return connect_and_greet(0, behind, behind_id);
	/* The daemon went away: a new one may take a moment to listen, and the
	 * dying one may still take a connection and reset it before our Hello
	 * is answered.  Either way, try again, for about RECONNECT_MS -- once:
	 * after that, one quick try per RETRY_GAP_MS. */
	uint64_t now = monotonic_ms();
	if (hs.gave_up && now - hs.failed_ms < RETRY_GAP_MS)
		return hs.failed_rc;
	unsigned slept = 0, sleep_ms = 10;
	for (;;) {
		rc = connect_and_greet(!hs.gave_up, NULL, NULL);
		if (rc == 0) {
			hs.gave_up = 0;
			return 0;
		}
		if ((rc != -ECONNRESET && rc != -EPIPE) || slept >= RECONNECT_MS || hs.gave_up) {
			hs.gave_up = 1;
			hs.failed_ms = monotonic_ms();
			hs.failed_rc = rc;
			return rc;
		}
		usleep(sleep_ms * 1000);
		slept += sleep_ms;
		sleep_ms = sleep_ms * 2 > 500 ? 500 : sleep_ms * 2;
	}
}

const char *conn_socket_path(void)
{
	return socket_path();
}

int conn_set_path(const char *path)
{
	if (path == NULL) {
		hs.path[0] = '\0';
		return 0;
	}
	if (strlen(path) >= sizeof hs.path)
		return -ENAMETOOLONG;
	strcpy(hs.path, path);
	return 0;
}

/* With the lock held. */
void conn_close(int goodbye)
{
	if (conn_connected() && goodbye)
		call_goodbye();
	conn_drop(0);
}
