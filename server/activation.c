/* SPDX-License-Identifier: MIT */
/*
 * Socket activation (see activation.h).  systemd opens the socket of
 * shmallocd.socket itself (owner, group and mode from the unit) and starts
 * the daemon on the first connect; the daemon takes the descriptor from
 * sd_listen_fds() and keeps it after the connections queued on it are
 * served.  The socket is systemd's: the daemon never removes it
 * (perimeter.bound stays 0), so the next start, by the next connect, finds
 * it as it was.
 */
#include "config.h"

#include "activation.h"
#include "backing.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

int activation_listen_fd(const char *path)
{
	int n = sd_listen_fds(1);
	if (n < 0) {
		log_msg(SLOG_ERROR, "socket activation: cannot read the passed sockets: %s",
			strerror(-n));
		return -2;
	}
	n -= (int)backing_stored_fds(); /* after the sockets: the segments it kept */
	if (n == 0)
		return -1;
	if (n != 1) {
		log_msg(SLOG_ERROR, "socket activation: %d sockets passed; shmallocd.socket "
			"gives one (ListenStream=%s)", n, path);
		return -2;
	}
	int fd = SD_LISTEN_FDS_START;
	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, path, 0) <= 0) {
		log_msg(SLOG_ERROR, "socket activation: the passed socket is not a listening "
			"Unix stream socket on %s (ListenStream= and --socket must name the same "
			"path)", path);
		return -2;
	}
	return fd;
}

void activation_ready(void)
{
	sd_notify(0, "READY=1");
}

void activation_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

#else

int activation_listen_fd(const char *path)
{
	(void)path;
	if (getenv("LISTEN_FDS") == NULL)
		return -1;
	log_msg(SLOG_ERROR, "socket activation: this shmallocd was built without libsystemd "
		"and cannot take a passed socket; start it from shmallocd.service alone");
	return -2;
}

void activation_ready(void)
{
}

void activation_stopping(void)
{
}

#endif
