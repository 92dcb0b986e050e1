/*
 * The server: the event loop, the listening socket, signals and timers (the
 * connections are conn.c's).  Layer: loop; this header itself shows no
 * libuv type, so main.c needs none.  server_run() returns when a SIGTERM or
 * SIGINT has been handled and every connection closed.
 */
#ifndef SHMA_SERVER_SERVER_H
#define SHMA_SERVER_SERVER_H

#include "daemon.h"

/* Runs the loop until shutdown; the process's exit code. */
int server_run(struct daemon *d);

#endif
