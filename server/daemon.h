/*
 * The daemon's state: what the event loop, the dispatcher and the stats
 * share.  One libuv loop owns all of it; nothing here takes a lock.
 */
#ifndef SHMA_SERVER_DAEMON_H
#define SHMA_SERVER_DAEMON_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "heap.h"
#include "inflight.h"
#include "layout.h"
#include "quota.h"
#include "options.h"
#include "perimeter.h"
#include "roots.h"

#define DAEMON_HIST_BUCKETS 32 /* service time, power-of-two ns buckets */

struct client {
	uv_pipe_t pipe;          /* first: the handle's address is the client's */
	struct daemon *d;
	struct client *prev, *next;
	uint8_t *buf;            /* bytes read, not yet a whole frame */
	size_t len, cap;
	uint64_t id;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int64_t connected_since;
	uint64_t accepted_ms;    /* uv_now() at accept: the handshake timeout's start */
	uint64_t stalled_ms;     /* uv_now() when its unread answers passed the cap; 0: not */
	char name[64];
	int hello_done;
	int closing;             /* no more reads; close once the writes are out */
	int said_goodbye;
	int reading;
	uint64_t bytes_held;     /* small objects and large blocks it took, net */
	uint64_t requests, rejected;
	int ctl_fd;
	struct control_block *ctl;
	struct inflight_set *inflight; /* its refills not yet collected (inflight.h) */
	struct quota_account *user, *proc; /* its uid's and its process's (quota.c) */
};

struct daemon {
	struct options opt;
	struct perimeter perimeter; /* the socket's directory, checked and held */
	struct heap *heap;
	struct roots *roots;
	uv_loop_t *loop;
	uv_pipe_t listener;
	uv_signal_t sigterm, sigint;
	uv_timer_t decay_timer;
	uv_timer_t conn_timer;   /* closes connections without Hello, or that never read */
	struct client *clients;
	struct orphan *orphans;  /* control blocks whose connection ended (control.c) */
	struct quota_account *accounts;  /* per uid and per process (quota.c) */
	struct quota_root *root_owners;  /* who published each root (quota.c) */
	unsigned nclients;
	uint64_t next_client_id;
	int stopping;
	int64_t started;
	uint64_t requests, rejected, reclaimed_objects;
	uint64_t retired_mallocs, retired_waits; /* of clients gone */
	uint64_t hist[DAEMON_HIST_BUCKETS];
};

/* Creates the control block of client c (segment 'c<id>'; c->id moves past
 * ids whose blocks still exist); 0 or -errno. */
int daemon_control_create(struct daemon *d, struct client *c);

/* c's connection ended.  If its process is gone, takes back what its caches
 * hold and removes the control block; else keeps the block as an orphan
 * until the process is gone (daemon_control_sweep()) or re-adopts it
 * (reclaim 1: it lost its connection) -- after a goodbye (reclaim 0) it may
 * not.  Returns the objects taken back now. */
uint64_t daemon_control_release(struct daemon *d, struct client *c, int reclaim);

/* Gives c the orphaned control block id, if c's process (SO_PEERCRED pid)
 * is the one it belongs to: 0, -ENOENT (no such orphan) or -EPERM. */
int daemon_control_adopt(struct daemon *d, struct client *c, uint64_t id);

/* Takes back the caches of orphans whose process is gone; bounded by their
 * cached objects.  Returns the objects taken back. */
uint64_t daemon_control_sweep(struct daemon *d);

/* At start, after the heap is open: the control blocks an earlier daemon
 * left become orphans (the dead ones' caches taken back at once) and client
 * ids start past theirs.  0 or -errno. */
int daemon_control_recover(struct daemon *d);

/* At exit: forgets the orphans; with unlink, removes their segments. */
void daemon_control_close(struct daemon *d, int unlink);

#endif
