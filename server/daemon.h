/* SPDX-License-Identifier: MIT */
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
#include "roots.h"

#define DAEMON_HIST_BUCKETS 32 /* service time, power-of-two ns buckets */
#define DAEMON_MAX_CLIENTS 4096

/* One peer's session: who it is, what it holds, what it has said.  The
 * connection that carries it (conn.c) points to it; it does not point back. */
struct heaps;

#define DAEMON_HEAP_CHARGES 8

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
	int observer;            /* root, not listed: reads only (access.h) */
	uint64_t bytes_held;     /* small objects and large blocks it took, net */
	uint64_t buffered;       /* bytes the daemon buffers for it (quota_buffer()) */
	uint64_t requests, rejected;
	int ctl_fd;
	struct control_block *ctl;
	struct inflight_set *inflight; /* its refills not yet collected (inflight.h) */
	struct quota_account *user, *proc; /* its uid's and its process's (quota.c) */
	/* Its region, if it asked for one in Hello (heap.h: Regions): refills
	 * and large blocks come from it, and it ends when the client's control
	 * block is settled (daemon_control_release(), daemon_control_sweep()). */
	struct heap_region *region;
	/* What the daemon last saw in each entry of the large blocks it
	 * keeps, and since when (kept.c). */
	struct {
		uint64_t ref, since_ms;
	} kept[SHMA_LARGE_KEEP];
	/* What it holds of each named heap it allocated from (heaps_req.c):
	 * bytes and large blocks charged to it, given back when the heap ends
	 * whole (a destroy frees them without a word from the client). */
	struct {
		uint64_t heap_id, bytes;
		uint32_t large;
	} heap_charge[DAEMON_HEAP_CHARGES];
};

/* Control blocks made ahead of the Hellos that take them (control.c,
 * whose functions control.h declares). */
#define DAEMON_CONTROL_SPARES 2

struct control_spare {
	uint64_t id;
	int fd;
	struct control_block *ctl;
};

struct daemon {
	struct options opt;
	struct heap *heap;
	struct roots *roots;
	struct heaps *heaps;     /* named heaps (server/heap/heaps.h) */
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
	/* Per class, allocations and bytes asked for, of clients gone. */
	uint64_t retired_class_mallocs[SIZECLASS_COUNT], retired_class_requested[SIZECLASS_COUNT];
	uint64_t large_requested_bytes, large_granted_bytes; /* AllocLarge served */
	uint64_t hist[DAEMON_HIST_BUCKETS];
	uint64_t service_ns_total; /* of every request the histogram counts */
	struct former *formers;  /* clients gone whose blocks are out (stats.c) */
	struct control_spare spares[DAEMON_CONTROL_SPARES]; /* oldest first */
	unsigned nspares;
	int spares_wanted;       /* make spares (a Hello came lately, or we just started) */
	int spares_used;         /* a Hello made or took a block since the last trim */
};

#endif
