/* SPDX-License-Identifier: MIT */
/*
 * A raw peer: speaks the protocol to a daemon by hand, sending exactly the
 * bytes or requests a test builds (valid or not; requests through the
 * proto/wire.h builders) and reading the answers; and a look at the
 * daemon's side (its log, memory and CPU time).  Used by the suites that
 * play hostile, greedy or dying clients.
 *
 * Each helper asserts (Check) on a failure it does not report.  A response
 * returned is the caller's to free with shma__response__free_unpacked(r,
 * NULL), unless the helper says it frees it.
 */
#ifndef SHMA_TESTS_RAW_H
#define SHMA_TESTS_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "e2e.h"
#include "shmalloc.pb-c.h"
#include "wire.h"

#define ARENA ((uint64_t)1 << 62) /* a ref's kind bits: an arena object */
#define LARGE ((uint64_t)2 << 62) /* a large block */

/* ---- bytes ---- */

/* A connection to the daemon's socket; -1 on failure. */
int raw_connect(const char *socket);
/* Writes all n bytes. */
void raw_send_bytes(int fd, const void *p, size_t n);
/* Reads one frame's body (up to cap) with a 5 s timeout: its length, 0 if
 * the daemon closed, -1 on timeout or a frame longer than cap. */
int raw_read_frame(int fd, uint8_t *buf, size_t cap);
/* 1 if the daemon closed fd (read returns 0 or ECONNRESET within 5 s). */
int raw_closed(int fd);

/* ---- requests ---- */

/* Sends req as it is (its id too), framed. */
void raw_send(int fd, const Shma__Request *req);
/* Gives req the next id of this process's raw peers, then sends it. */
void raw_send_next(int fd, Shma__Request *req);
/* One response; asserts it decodes. */
Shma__Response *raw_read(int fd);
/* raw_send_next() then raw_read(); asserts the answer has req's id. */
Shma__Response *raw_call(int fd, Shma__Request *req);
/* A Hello with id 1, this version and size-class checksum. */
void raw_hello(int fd, uint32_t version, uint64_t checksum);
/* A connection that said a proper Hello and had its answer. */
int raw_peer(const char *socket);
/* The same, asking for a region in its Hello (as the preload library
 * does): the fd, or -1. */
int raw_region_peer(const char *socket);

/* The answer must be an Error with code and a message; frees it. */
void raw_expect_error(Shma__Response *r, int code);
/* The answer must be Ok; frees it. */
void raw_expect_ok(Shma__Response *r);

Shma__Response *raw_refill(int fd, uint32_t cls, uint32_t count);
/* Refills class cls and writes the refs (runs spelt out) to out: how many. */
size_t raw_refill_refs(int fd, uint32_t cls, uint32_t count, uint64_t *out);
/* Flushes refs with a reply; asserts how many were accepted and rejected. */
void raw_flush(int fd, uint64_t *refs, size_t n, uint32_t accepted, uint32_t rejected);
Shma__Response *raw_alloc_large(int fd, uint64_t size);
Shma__Response *raw_free_large(int fd, uint64_t ref);
Shma__Response *raw_publish(int fd, const char *name, uint64_t ref);
Shma__Response *raw_lookup(int fd, const char *name);
Shma__Response *raw_unpublish(int fd, const char *name);
/* A Stats request must be answered with stats. */
void raw_stats_ok(int fd);
/* Asks stats on fd until the daemon lists want connections of process pid
 * (it has read the others' ends: a wait on state, 5 s at most); returns
 * the last count it listed. */
int raw_wait_connections_of(int fd, pid_t pid, int want);

/* ---- the daemon's side ---- */

/* Lines of d's log that contain needle. */
int raw_log_lines(const struct e2e_daemon *d, const char *needle);
/* Refusals logged for this process so far ("pid N: ..."). */
int raw_refusals_logged(const struct e2e_daemon *d);
/* The daemon logs asynchronously to us: waits until the count reaches want
 * (1 s at most) and asserts it is exactly want. */
void raw_expect_logged(const struct e2e_daemon *d, int want);
/* The daemon's anonymous resident memory (KiB) and CPU time (user + system,
 * clock ticks). */
long raw_daemon_rss_kib(const struct e2e_daemon *d);
/* A field of the daemon's /proc/<pid>/status in KiB ("VmSize", "RssAnon"). */
long raw_daemon_status_kib(const struct e2e_daemon *d, const char *field);
long raw_daemon_cpu_ticks(const struct e2e_daemon *d);
/* The end of every hostile test: a new client is served, by the raw
 * protocol and by the library. */
void raw_still_serves(const struct e2e_daemon *d);

#endif
