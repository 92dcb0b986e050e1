/* SPDX-License-Identifier: MIT */
/*
 * A client's session from accept to close: opened when a peer connects,
 * admitted or refused, closed when its connection ends.  Layer: session (no
 * libuv; conn.c calls these and does the I/O).
 */
#ifndef SHMA_SERVER_SESSION_H
#define SHMA_SERVER_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "access.h"
#include "daemon.h"

/* A peer with SO_PEERCRED pid and uid connected: its session, linked into
 * d's clients and counted in d->nclients, its connection time now.  Freed
 * by session_close().  NULL with errno ENOMEM. */
struct client *session_open(struct daemon *d, pid_t pid, uid_t uid);

/* Whether d serves c, whose peer's credentials are cr: 0, or -EACCES
 * (neither its uid nor its primary or a supplementary group is allowed, and
 * it is not root: access.h),  -EAGAIN (more than DAEMON_MAX_CLIENTS, or its uid
 * past --uid-max-connections) or -ENOMEM, and *why says so in words for its
 * Error.  Admitted, c has joined its uid's and process's accounts (quota.h). */
int session_admit(struct daemon *d, struct client *c, const struct access_creds *cr,
		  const char **why);

/* c is refused for a reason of the connection's (code, a positive errno;
 * what, the message): counted, logged, and *frame (the caller frees it with
 * free(3)) is the Error frame to send before closing, or NULL when it could
 * not be packed. */
void session_refuse(struct daemon *d, struct client *c, int code, const char *what,
		    uint8_t **frame, size_t *frame_len);

/* c's connection ended: its counters retire into d's, its control block is
 * settled (daemon_control_release(): taken back if its process is gone),
 * the end is logged, and c is unlinked and freed. */
void session_close(struct daemon *d, struct client *c);

#endif
