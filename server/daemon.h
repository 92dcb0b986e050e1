/*
 * The daemon's state as the session layer sees it: the heap, the roots, the
 * clients and the counters that the dispatcher, the control blocks and the
 * stats share.  Layer: session (no libuv types; the loop keeps its handles
 * and each connection's socket and buffers in server.c and conn.c).  One
 * thread owns all of it; nothing here takes a lock.
 */
#ifndef SHMA_SERVER_DAEMON_H
#define SHMA_SERVER_DAEMON_H

#include <stdint.h>
#include <sys/types.h>

#include "heap.h"
#include "inflight.h"
#include "layout.h"
#include "quota.h"
#include "options.h"
#include "perimeter.h"
#include "roots.h"

#define DAEMON_HIST_BUCKETS 32 /* service time, power-of-two ns buckets */
#define DAEMON_MAX_CLIENTS 4096

/* One peer's session: who it is, what it holds, what it has said.  The
 * connection that carries it (conn.c) points to it; it does not point back. */
struct client {
	struct client *prev, *next;
	uint64_t id;
	pid_t pid;
	uid_t uid;
	int64_t connected_since;
	char name[64];
	int hello_done;
	int said_goodbye;
	int mapping_logged;      /* where it mapped the heap was logged */
	uint64_t bytes_held;     /* small objects and large blocks it took, net */
	uint64_t requests, rejected;
	int ctl_fd;
	struct control_block *ctl;
	struct inflight_set *inflight; /* its refills not yet collected (inflight.h) */
	struct quota_account *user, *proc; /* its uid's and its process's (quota.c) */
	/* Its region, if it asked for one in Hello (heap.h: Regions): refills
	 * and large blocks come from it, and it ends when the client's control
	 * block is settled (daemon_control_release(), daemon_control_sweep()). */
	struct heap_region *region;
};

/* Control blocks made ahead of the Hellos that take them (control.c). */
#define DAEMON_CONTROL_SPARES 2

struct control_spare {
	uint64_t id;
	int fd;
	struct control_block *ctl;
};

struct daemon {
	struct options opt;
	struct perimeter perimeter; /* the socket's directory, checked and held */
	struct heap *heap;
	struct roots *roots;
	struct client *clients;
	struct orphan *orphans;  /* control blocks whose connection ended (control.c) */
	struct quota_account *accounts;  /* per uid and per process (quota.c) */
	struct quota_root *root_owners;  /* who published each root (quota.c) */
	unsigned nclients;
	uint64_t next_client_id;
	int64_t started;
	uint64_t life;           /* random, new each start: HelloReply.daemon_life */
	uint64_t requests, rejected, reclaimed_objects;
	uint64_t inflight_returned; /* Flush.in_flight objects taken back */
	uint64_t retired_mallocs, retired_waits; /* of clients gone */
	uint64_t hist[DAEMON_HIST_BUCKETS];
	struct control_spare spares[DAEMON_CONTROL_SPARES]; /* oldest first */
	unsigned nspares;
	int spares_wanted;       /* make spares (a Hello came lately, or we just started) */
	int spares_used;         /* a Hello made or took a block since the last trim */
};

/* Gives client c a new control block and its id (c->id): a spare if one is
 * ready, else one made now (segment 'c<id>'; ids move past those whose
 * blocks still exist); 0 or -errno. */
int daemon_control_create(struct daemon *d, struct client *c);

/* Fills a new block's first batches (shm/layout.h: layout_prefilled()) in
 * its transfer cache, from c's region if it has one, before the Hello reply:
 * the client's first malloc of those classes needs no refill. */
void daemon_control_prefill(struct daemon *d, struct client *c);

/* The bytes of the objects in cb's transfer cache (full entries), read
 * while the client runs: the client's word, for stats only. */
uint64_t daemon_control_xfer_bytes(const struct control_block *cb);

/* 1 while spare control blocks should be made: fewer than
 * DAEMON_CONTROL_SPARES, and Hellos came lately (or we just started). */
int daemon_control_spares_wanted(const struct daemon *d);

/* Off the Hello's path (the loop calls it a moment after a Hello took one):
 * makes one spare if they are wanted -- a whole block, reserved, its client
 * id taken, no pid yet.  Returns daemon_control_spares_wanted() after. */
int daemon_control_spare_make(struct daemon *d);

/* On the decay timer: with no Hello since the last call, the spares go (their
 * memory back to the OS); the next Hello makes its own and wants them again. */
void daemon_control_spares_trim(struct daemon *d);

/* c's connection ended.  If its process is gone, takes back what its caches
 * hold, ends its region (heap_region_end(): everything it still held) and
 * removes the control block; else keeps the block as an orphan
 * until the process is gone (daemon_control_sweep()) or re-adopts it
 * (reclaim 1: it lost its connection) -- after a goodbye (reclaim 0) it may
 * not.  Returns the objects taken back now. */
uint64_t daemon_control_release(struct daemon *d, struct client *c, int reclaim);

/* Gives c the orphaned control block id, if c's process (SO_PEERCRED pid)
 * is the one it belongs to: 0, -ENOENT (no such orphan) or -EPERM. */
int daemon_control_adopt(struct daemon *d, struct client *c, uint64_t id);

/* Takes back the caches of orphans whose process is gone, and ends their
 * regions; bounded by their cached objects and their regions' spans and
 * blocks.  Returns the objects taken back. */
uint64_t daemon_control_sweep(struct daemon *d);

/* At start, after the heap is open: the control blocks an earlier daemon
 * left become orphans (the dead ones' caches taken back at once) and client
 * ids start past theirs.  0 or -errno. */
int daemon_control_recover(struct daemon *d);

/* At exit: forgets the orphans; with unlink, removes their segments.  The
 * spares are removed either way: they are nobody's. */
void daemon_control_close(struct daemon *d, int unlink);

#endif
