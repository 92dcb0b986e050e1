/* SPDX-License-Identifier: MIT */
/*
 * A raw peer and a look at the daemon's side: see raw.h.  Requests are
 * built by the proto/wire.h builders, as the library builds its own, so a
 * test says only what it changes.
 */
#include "raw.h"
#include "frame.h"
#include "shmalloc.h"
#include "sizeclass.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CAP ((size_t)1 << 20) /* the longest answer a test reads */

static uint64_t next_id = 100;

/* ---- bytes ---- */

int raw_connect(const char *socket_path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void raw_send_bytes(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

/* How long a read waits for the daemon: long, as every caller expects an
 * answer (or the close) -- a daemon starting on a loaded machine took more
 * than the 5 s this was. */
#define RAW_WAIT_MS 30000

/* 1 once n bytes are read, 0 if the peer closed, -1 on timeout. */
static int read_full(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, RAW_WAIT_MS) <= 0)
			return -1;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return 0;
		got += (size_t)r;
	}
	return 1;
}

int raw_read_frame(int fd, uint8_t *buf, size_t cap)
{
	uint8_t hdr[FRAME_HEADER];
	int rc = read_full(fd, hdr, sizeof hdr);
	if (rc <= 0)
		return rc;
	uint32_t n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
		     (uint32_t)hdr[3] << 24;
	if (n > cap)
		return -1;
	rc = read_full(fd, buf, n);
	return rc <= 0 ? rc : (int)n;
}

int raw_closed(int fd)
{
	uint8_t b[256];
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, RAW_WAIT_MS) <= 0)
			return 0;
		ssize_t r = read(fd, b, sizeof b);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 1;
		if (r < 0)
			return 0;
	}
}

/* ---- requests ---- */

void raw_send(int fd, const Shma__Request *req)
{
	size_t n = shma__request__get_packed_size(req);
	uint8_t *buf = malloc(n + FRAME_HEADER);
	ck_assert_ptr_nonnull(buf);
	frame_put_header(buf, (uint32_t)n);
	shma__request__pack(req, buf + FRAME_HEADER);
	raw_send_bytes(fd, buf, n + FRAME_HEADER);
	free(buf);
}

void raw_send_next(int fd, Shma__Request *req)
{
	req->id = ++next_id;
	raw_send(fd, req);
}

Shma__Response *raw_read(int fd)
{
	uint8_t *buf = malloc(READ_CAP);
	ck_assert_ptr_nonnull(buf);
	int n = raw_read_frame(fd, buf, READ_CAP);
	ck_assert_int_gt(n, 0);
	Shma__Response *r = shma__response__unpack(NULL, (size_t)n, buf);
	free(buf);
	ck_assert_ptr_nonnull(r);
	return r;
}

Shma__Response *raw_call(int fd, Shma__Request *req)
{
	raw_send_next(fd, req);
	Shma__Response *r = raw_read(fd);
	ck_assert_uint_eq(r->id, req->id);
	return r;
}

void raw_hello(int fd, uint32_t version, uint64_t checksum)
{
	Shma__Request req;
	Shma__Hello h;
	wire_hello(&req, &h, NULL, 0);
	h.version = version;
	h.class_checksum = checksum;
	req.id = 1;
	raw_send(fd, &req);
}

/* A connection that said hello (asking for a region with region), or -1. */
static int hello_peer(const char *socket, int region)
{
	int fd = raw_connect(socket);
	if (fd < 0)
		return -1;
	Shma__Request req;
	Shma__Hello h;
	wire_hello(&req, &h, NULL, 0);
	if (region)
		wire_hello_region(&req);
	Shma__Response *r = raw_call(fd, &req);
	int ok = r->body_case == SHMA__RESPONSE__BODY_HELLO;
	shma__response__free_unpacked(r, NULL);
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_peer(const char *socket)
{
	int fd = hello_peer(socket, 0);
	ck_assert_int_ge(fd, 0);
	return fd;
}

int raw_region_peer(const char *socket)
{
	return hello_peer(socket, 1);
}

void raw_expect_error(Shma__Response *r, int code)
{
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_ERROR);
	ck_assert_msg(r->error->code == code, "error %d (%s), wanted %d", r->error->code,
		      r->error->message, code);
	ck_assert_ptr_nonnull(r->error->message);
	ck_assert_int_gt(strlen(r->error->message), 0);
	shma__response__free_unpacked(r, NULL);
}

void raw_expect_ok(Shma__Response *r)
{
	ck_assert_msg(r->body_case == SHMA__RESPONSE__BODY_OK, "body %d: %s", r->body_case,
		      r->body_case == SHMA__RESPONSE__BODY_ERROR ? r->error->message : "");
	shma__response__free_unpacked(r, NULL);
}

Shma__Response *raw_refill(int fd, uint32_t cls, uint32_t count)
{
	Shma__Request req;
	Shma__Refill f;
	wire_refill(&req, &f, cls, count, 0);
	return raw_call(fd, &req);
}

size_t raw_refill_refs(int fd, uint32_t cls, uint32_t count, uint64_t *out)
{
	Shma__Response *r = raw_refill(fd, cls, count);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_REFILL);
	size_t n = 0;
	for (size_t i = 0; i < r->refill->n_refs && n < count; i++)
		out[n++] = r->refill->refs[i];
	for (size_t i = 0; i < r->refill->n_runs; i++)
		for (uint32_t k = 0; k < r->refill->runs[i]->count && n < count; k++)
			out[n++] = r->refill->runs[i]->first + (uint64_t)k * sizeclass_size(cls);
	shma__response__free_unpacked(r, NULL);
	return n;
}

void raw_flush(int fd, uint64_t *refs, size_t n, uint32_t accepted, uint32_t rejected)
{
	Shma__Request req;
	Shma__Flush f;
	wire_flush(&req, &f, refs, n, 1);
	Shma__Response *r = raw_call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_FLUSH);
	ck_assert_uint_eq(r->flush->accepted, accepted);
	ck_assert_uint_eq(r->flush->rejected, rejected);
	shma__response__free_unpacked(r, NULL);
}

Shma__Response *raw_alloc_large(int fd, uint64_t size)
{
	Shma__Request req;
	Shma__AllocLarge a;
	wire_alloc_large(&req, &a, size);
	return raw_call(fd, &req);
}

Shma__Response *raw_free_large(int fd, uint64_t ref)
{
	Shma__Request req;
	Shma__FreeLarge f;
	wire_free_large(&req, &f, ref);
	return raw_call(fd, &req);
}

Shma__Response *raw_publish(int fd, const char *name, uint64_t ref)
{
	Shma__Request req;
	Shma__Publish p;
	wire_publish(&req, &p, name, ref);
	return raw_call(fd, &req);
}

Shma__Response *raw_lookup(int fd, const char *name)
{
	Shma__Request req;
	Shma__Lookup l;
	wire_lookup(&req, &l, name);
	return raw_call(fd, &req);
}

Shma__Response *raw_unpublish(int fd, const char *name)
{
	Shma__Request req;
	Shma__Unpublish u;
	wire_unpublish(&req, &u, name);
	return raw_call(fd, &req);
}

void raw_stats_ok(int fd)
{
	Shma__Request req;
	Shma__Stats st;
	wire_stats(&req, &st);
	Shma__Response *r = raw_call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_STATS);
	shma__response__free_unpacked(r, NULL);
}

static int connections_of(int fd, pid_t pid)
{
	Shma__Request req;
	Shma__Stats st;
	wire_stats(&req, &st);
	Shma__Response *r = raw_call(fd, &req);
	ck_assert_int_eq(r->body_case, SHMA__RESPONSE__BODY_STATS);
	int n = 0;
	for (size_t i = 0; i < r->stats->n_clients; i++)
		n += r->stats->clients[i]->pid == (uint32_t)pid;
	shma__response__free_unpacked(r, NULL);
	return n;
}

int raw_wait_connections_of(int fd, pid_t pid, int want)
{
	int n = connections_of(fd, pid);
	for (int i = 0; i < 500 && n != want; i++) {
		usleep(10000);
		n = connections_of(fd, pid);
	}
	return n;
}

/* ---- the daemon's side ---- */

int raw_log_lines(const struct e2e_daemon *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

int raw_refusals_logged(const struct e2e_daemon *d)
{
	char needle[32];
	snprintf(needle, sizeof needle, "pid %ld:", (long)getpid());
	return raw_log_lines(d, needle);
}

void raw_expect_logged(const struct e2e_daemon *d, int want)
{
	int n = 0;
	for (int i = 0; i < 100 && (n = raw_refusals_logged(d)) < want; i++)
		usleep(10000);
	ck_assert_int_eq(n, want);
}

long raw_daemon_status_kib(const struct e2e_daemon *d, const char *field)
{
	char path[64], line[256];
	long kib = -1;
	size_t n = strlen(field);
	snprintf(path, sizeof path, "/proc/%ld/status", (long)d->pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kib = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

long raw_daemon_rss_kib(const struct e2e_daemon *d)
{
	return raw_daemon_status_kib(d, "RssAnon");
}

long raw_daemon_cpu_ticks(const struct e2e_daemon *d)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)d->pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	unsigned long ut = 0, st = 0;
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st), 2);
	return (long)(ut + st);
}

void raw_still_serves(const struct e2e_daemon *d)
{
	int fd = raw_peer(d->socket);
	raw_stats_ok(fd);
	close(fd);
	ck_assert_int_eq(shma_connect(d->socket), 0);
	void *p = shma_malloc(100);
	ck_assert_ptr_nonnull(p);
	shma_free(p);
	shma_disconnect();
}
