/* SPDX-License-Identifier: MIT */
/*
 * The connection's insides: what its three files and the call layer share,
 * and nothing else of the library includes (the library's other files speak
 * to the daemon through call.h).
 *
 * transport.c  framing, request ids, answers parked for another thread,
 *              the deadline of every wait
 * handshake.c  connect, Hello, reconnect after a lost daemon, salvage of
 *              the refills a dead daemon's answers carried, goodbye, fork
 * control.c    the control block: mapped from the Hello's descriptor,
 *              re-adopted after a reconnection, reserved as slots grow
 *
 * Everything here runs with the connection's lock held (conn_lock()).
 */
#ifndef SHMA_CONN_H
#define SHMA_CONN_H

#include "call.h"

/* ---- transport.c ---- */
/* Sends req and does not wait: its id, or 0 (not connected, or the write
 * failed and the connection is dropped). */
SHMA_HIDDEN uint64_t conn_send(Shma__Request *req);
/* Sends req whose answer (an Ok, or an Error nobody could act on) is
 * dropped when read.  0, or -EAGAIN when too many are out (send it the
 * ordinary way), -ECONNRESET. */
SHMA_HIDDEN int conn_send_unanswered(Shma__Request *req);
/* Waits for the response to an id sent earlier, *resp valid until
 * conn_done(): 0, or a negative errno (the daemon's Error code too). */
SHMA_HIDDEN int conn_wait(uint64_t id, Shma__Response **resp);
/* 1 if request id was sent on the current connection (its answer may come). */
SHMA_HIDDEN int conn_id_current(uint64_t id);
/* 1 if an answer is there to read without waiting. */
SHMA_HIDDEN int conn_readable(void);
/* After fork, in the child: the lock as new (its holder is not here). */
SHMA_HIDDEN void conn_lock_reinit(void);
/* A new connection on fd (peer-checked): its requests' ids start after
 * every id sent before, and its frames are the default size until the
 * Hello says otherwise. */
SHMA_HIDDEN void tp_attach(int fd);
SHMA_HIDDEN void tp_set_max_frame(uint32_t max_frame);
/* Room for the longest answer: 0 or -ENOMEM (once per process). */
SHMA_HIDDEN int tp_buffers(void);
/* Gives each of reqs[0, n) the next id and writes them all in one go; 0 or
 * -errno (the connection is left as it is: the caller reads what the
 * daemon may still say). */
SHMA_HIDDEN int tp_send_all(Shma__Request *const *reqs, unsigned n);
/* Calls fn on each answer of this connection read or waiting in the socket
 * and not taken in by anyone (the connection is being lost). */
SHMA_HIDDEN void tp_each_unread(void (*fn)(const uint8_t *body, uint32_t len));
/* Closes the socket and forgets every answer and id of it. */
SHMA_HIDDEN void tp_detach(void);
/* The descriptor the daemon passed with an answer (SCM_RIGHTS), now the
 * caller's, or -1. */
SHMA_HIDDEN int tp_take_passed_fd(void);
SHMA_HIDDEN int tp_take_passed_fd2(void); /* the second: the uid's transfer area */

/* ---- handshake.c ---- */
/* The connection broke under the transport (lost: the control block stays
 * ours to re-adopt), or is given up (goodbye, fork). */
SHMA_HIDDEN void conn_drop(int lost);
/* conn_ensure(), with behind (not NULL) written right after the Hello, in
 * the same write, when the connection made is new and so is its control
 * block (never when re-adopting ours): *behind_id gets its id, or 0 when it
 * was not sent. */
SHMA_HIDDEN int conn_ensure_behind(Shma__Request *behind, uint64_t *behind_id);

/* ---- control.c ---- */
/* Maps the control block of client_id of instance that the Hello reply
 * brought (its descriptor fd, or by name when fd < 0): 0, or -errno.
 * readopt: the connection was lost and the reply names the block we map
 * already: it is kept, caches intact. */
SHMA_HIDDEN int ctl_map(const char *instance, uint64_t client_id, int fd, int readopt);
/* Forgets the block (its mapping stays: a thread may use its slot there
 * until it sees the new generation). */
SHMA_HIDDEN void ctl_forget(void);
/* The client id of the block mapped, 0 if none. */
SHMA_HIDDEN uint64_t ctl_client_id(void);

#endif
