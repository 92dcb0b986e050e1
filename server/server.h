/* SPDX-License-Identifier: MIT */
/*
 * The server: the event loop, the listening socket, signals and timers (the
 * connections are conn.c's).  Layer: loop; this header itself shows no
 * libuv type, so main.c needs none.  server_run() returns when a SIGTERM or
 * SIGINT has been handled and every connection closed.
 */
#ifndef SHMA_SERVER_SERVER_H
#define SHMA_SERVER_SERVER_H

#include "daemon.h"
#include "perimeter.h"

/* Runs the loop until shutdown, listening on a socket perimeter_bind()
 * makes in p's directory (closed, the socket removed, at the end); the
 * process's exit code. */
int server_run(struct daemon *d, struct perimeter *p);

#endif
