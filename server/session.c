/* SPDX-License-Identifier: MIT */
/*
 * Sessions: see session.h.  A session is the daemon's side of one peer, made
 * of what the dispatcher and the stats need and nothing of the socket that
 * carries it; so the whole life of a client, from admission to the
 * settling of its control block, runs without an event loop (the dispatch
 * suite and the fuzz target drive it directly).
 */
#include "session.h"
#include "control.h"
#include "list.h"
#include "quota.h"
#include "access.h"
#include "dispatch.h"
#include "log.h"
#include "lookupwait.h"
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

struct client *session_open(struct daemon *d, pid_t pid, uid_t uid)
{
	struct client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->ctl_fd = -1;
	c->pid = pid;
	c->uid = uid;
	c->connected_since = (int64_t)time(NULL);
	DLIST_PUSH(&d->clients, c, prev, next);
	d->nclients++;
	return c;
}

int session_admit(struct daemon *d, struct client *c, const struct access_creds *cr,
		  const char **why)
{
	enum access_level level = access_peer_level(&d->opt, cr);
	if (level == ACCESS_DENIED) {
		*why = "this user may not use this daemon (see --allow-uid, --allow-gid)";
		return -EACCES;
	}
	c->observer = level == ACCESS_OBSERVER;
	if (d->nclients > DAEMON_MAX_CLIENTS) {
		*why = "too many clients";
		return -EAGAIN;
	}
	int rc = quota_connect(d, c);
	if (rc != 0)
		*why = rc == -EAGAIN ? "too many connections of this user (--uid-max-connections)"
				     : "out of memory";
	return rc;
}

void session_refuse(struct daemon *d, struct client *c, int code, const char *what,
		    uint8_t **frame, size_t *frame_len)
{
	Shma__Response resp;
	struct dispatch_scratch s = {0};
	dispatch_error(&resp, &s, 0, code, "%s", what);
	c->rejected++;
	d->rejected++;
	log_msg(SLOG_WARN, "refused pid %ld uid %lu: %s", (long)c->pid, (unsigned long)c->uid,
		what);
	if (dispatch_pack(&resp, frame, frame_len) != 0) {
		*frame = NULL;
		*frame_len = 0;
	}
	dispatch_done(&s);
}

void session_close(struct daemon *d, struct client *c)
{
	stats_retire_client(d, c);
	lookupwait_forget(d, c);
	uint64_t back = daemon_control_release(d, c, !c->said_goodbye);
	quota_disconnect(d, c);
	if (c->hello_done)
		log_msg(SLOG_DEBUG, "client %llu (pid %ld) %s%s",
			(unsigned long long)c->id, (long)c->pid,
			c->said_goodbye ? "said goodbye" : "disconnected without goodbye",
			back ? ", cached objects taken back" : "");
	if (back)
		log_msg(SLOG_DEBUG, "client %llu: took back %llu cached objects",
			(unsigned long long)c->id, (unsigned long long)back);
	DLIST_REMOVE(&d->clients, c, prev, next);
	d->nclients--;
	free(c);
}
