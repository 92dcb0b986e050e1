/* SPDX-License-Identifier: MIT */
/*
 * The wire contract: what the daemon and its clients agree on beyond the
 * schema (shmalloc.proto) and the framing (frame.h).
 *
 * - the protocol's version and the caps each side holds the other to;
 * - the one rule for a root's name (shm/rootname.h, libc only so that the
 *   roots directory keeps it too), which the library checks before it
 *   sends and the daemon checks again when it receives;
 * - one builder per request kind: the only code that fills a Shma__Request,
 *   so that every request the library, the CLI and the tests send is built
 *   the same way;
 * - one table of the errors the protocol carries: the errno a daemon's
 *   Error reply holds, the text shma_strerror() gives for it, and the exit
 *   status shmallocctl gives for it.
 *
 * Nothing here allocates: a builder fills the request and the body struct
 * its caller owns, and points the request at the body and at the caller's
 * strings and arrays, which must outlive the request's packing.
 */
#ifndef SHMA_WIRE_H
#define SHMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "rootname.h" /* a root's name: ROOT_NAME_MAX, rootname_check() */
#include "shmalloc.pb-c.h"

/* ---- versions and caps ---- */

#define SHMA_PROTOCOL_VERSION 2u
/* Objects in one refill reply, and their bytes: the library asks for 1 MiB
 * at most (8 objects of the largest class); more is a peer trying to grab
 * the heap in one go. */
#define WIRE_REFILL_MAX 16384u
/* Refs in one Flush the library sends (a frame of about 40 KiB). */
#define WIRE_FLUSH_CHUNK 4096u
#define WIRE_REFILL_BYTES_MAX ((uint64_t)4 << 20)
/* Runs (first ref + count) in one refill reply. */
#define WIRE_RUNS_MAX 64u
/* The longest response a client reads, and the least --max-frame a daemon
 * may announce in its HelloReply (a smaller one is a protocol error). */
#define WIRE_RESPONSE_MAX ((uint32_t)64 << 20)
#define WIRE_MIN_MAX_FRAME 4096u

/* ---- one builder per request ----
 * Each initialises req and body, sets the body's fields and points req at
 * body.  req->id is 0: the sender numbers its requests. */

/* Hello with this process's pid, the size-class checksum and the protocol
 * version; name (may be NULL) only labels the client in logs and listings. */
void wire_hello(Shma__Request *req, Shma__Hello *body, const char *name,
		uint64_t previous_client_id);
/* Makes a Hello built by wire_hello() ask for a region (Hello.region). */
void wire_hello_region(Shma__Request *req);
/* Makes a Hello built by wire_hello() ask for its first batches in the new
 * control block (Hello.first_batches). */
void wire_hello_first_batches(Shma__Request *req);
/* slot: the control-block slot + 1 whose bin the refill goes to, 0 for none. */
void wire_refill(Shma__Request *req, Shma__Refill *body, uint32_t size_class,
		 uint32_t count, uint32_t slot);
void wire_flush(Shma__Request *req, Shma__Flush *body, uint64_t *refs, size_t n,
		int want_reply);
void wire_alloc_large(Shma__Request *req, Shma__AllocLarge *body, uint64_t size);
void wire_free_large(Shma__Request *req, Shma__FreeLarge *body, uint64_t ref);
void wire_publish(Shma__Request *req, Shma__Publish *body, const char *name, uint64_t ref);
void wire_lookup(Shma__Request *req, Shma__Lookup *body, const char *name);
void wire_unpublish(Shma__Request *req, Shma__Unpublish *body, const char *name);
void wire_roots(Shma__Request *req, Shma__Roots *body);
void wire_stats(Shma__Request *req, Shma__Stats *body);
void wire_goodbye(Shma__Request *req, Shma__Goodbye *body);

/* ---- the errors the protocol carries ---- */

/* shmallocctl's exit statuses (doc/shmallocctl.1). */
enum wire_exit {
	WIRE_EXIT_OK = 0,
	WIRE_EXIT_ERROR = 1,     /* the daemon answered with an error, or the connection broke */
	WIRE_EXIT_USAGE = 2,
	WIRE_EXIT_NO_DAEMON = 3, /* nobody listens on the socket */
	WIRE_EXIT_DENIED = 4,    /* by the file system or the daemon */
	WIRE_EXIT_VERSION = 5,   /* the daemon speaks another protocol */
};

/*
 * XX(errno, text, exit status): every error a daemon's Error reply may
 * carry, and those the library meets on its way to the daemon.  The text is
 * what shma_strerror() says and what follows the request's name in the
 * daemon's Error message ("publish: the name is taken").
 */
#define WIRE_ERRORS(XX)                                                                  \
	XX(EPROTO, "protocol error (the daemon and the library disagree)", WIRE_EXIT_VERSION) \
	XX(EPROTONOSUPPORT, "the daemon speaks another protocol version", WIRE_EXIT_VERSION)  \
	XX(ECONNREFUSED, "no daemon listens on the socket", WIRE_EXIT_NO_DAEMON)              \
	XX(ENOENT, "no such name", WIRE_EXIT_NO_DAEMON)                                       \
	XX(EACCES, "the daemon refuses this user", WIRE_EXIT_DENIED)                          \
	XX(EPERM, "not permitted (a daemon of a user this process does not trust: not its own, " \
		  "not root; see SHMALLOC_DAEMON_UID)", WIRE_EXIT_DENIED)                      \
	XX(ENOMEM, "out of shared memory", WIRE_EXIT_ERROR)                                   \
	XX(EEXIST, "the name is taken", WIRE_EXIT_ERROR)                                      \
	XX(ENAMETOOLONG, "name too long", WIRE_EXIT_ERROR)                                    \
	XX(ECONNRESET, "the connection to the daemon was lost", WIRE_EXIT_ERROR)              \
	XX(ETIMEDOUT, "timed out (the daemon did not answer in time, or a name waited for " \
		      "was not published)", WIRE_EXIT_ERROR)                                  \
	XX(EINVAL, "Invalid argument", WIRE_EXIT_ERROR)                                       \
	XX(ENOSPC, "No space left on device", WIRE_EXIT_ERROR)                                \
	XX(EALREADY, "Operation already in progress", WIRE_EXIT_ERROR)

/* The text for err (positive or negative errno): the table's, else
 * strerror()'s; "success" for 0.  Never NULL; static storage. */
const char *wire_strerror(int err);
/* shmallocctl's exit status for a failure err (negative or positive):
 * the table's, else WIRE_EXIT_ERROR.  WIRE_EXIT_OK for 0. */
int wire_exit_status(int err);
/* err as the code of an Error reply: a positive errno, EPROTO for a value
 * no errno has. */
int wire_error_code(int err);

#endif
