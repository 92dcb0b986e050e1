/* SPDX-License-Identifier: MIT */
/*
 * systemd's part: the listening socket a socket unit passes
 * (shmallocd.socket), and the readiness notice for Type=notify.  Built on
 * libsystemd where configure found it; without it, a passed socket is
 * refused with one log line and both calls do nothing else.
 */
#ifndef SHMA_SERVER_ACTIVATION_H
#define SHMA_SERVER_ACTIVATION_H

/* The listening socket systemd passed for path: a Unix stream socket that
 * listens on exactly that path.  -1 when none was passed (bind our own);
 * -2 when one was passed that is not that socket, or that this build cannot
 * take (logged: the daemon must not listen somewhere else than its unit
 * says). */
int activation_listen_fd(const char *path);

/* Tells systemd the daemon serves (READY=1) or stops (STOPPING=1); nothing
 * when it was not started by systemd. */
void activation_ready(void);
void activation_stopping(void);

#endif
