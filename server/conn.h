/* SPDX-License-Identifier: MIT */
/*
 * Connections: each peer's socket, its read buffer and write queue, and the
 * session (struct client, daemon.h) it carries.  Layer: loop -- with
 * server.c the only files that see libuv.  The session layer decides what
 * to answer; a connection reads frames, writes answers and closes.
 */
#ifndef SHMA_SERVER_CONN_H
#define SHMA_SERVER_CONN_H

#include <uv.h>

#include "daemon.h"

struct conn;

/* The connections of one loop, and what they serve. */
struct conn_list {
	uv_loop_t *loop;
	struct daemon *d;
	struct conn *head;
};

/* Accepts the pending connection of listener into l: reads the peer's
 * credentials, opens its session and starts reading, or refuses it with an
 * Error (a peer not allowed, too many clients).  Failures cost the
 * connection only. */
void conn_accept(struct conn_list *l, uv_stream_t *listener);

/* Shutdown: stops reading everywhere; each connection closes once what it
 * has queued is written.  The loop ends when the last has closed. */
void conn_close_all(struct conn_list *l);

/* Writes frame (malloc'ed; taken over) to the connection that carries c, if
 * it is still open (lookupwait.h's deliver function; ctx is the list). */
void conn_deliver(void *ctx, struct client *c, uint8_t *frame, size_t len);

/* Closes the connections without Hello past --handshake-timeout (told so)
 * and those whose answers stayed unread past --write-timeout. */
void conn_check_timeouts(struct conn_list *l);

#endif
