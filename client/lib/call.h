/* SPDX-License-Identifier: MIT */
/*
 * The library's calls to its daemon, typed (call.c), over the transport
 * (transport.c): the one place besides the connection's own files that
 * builds a request, reads an answer or knows a request id.  tcache.c,
 * api.c and largecache.c ask for "a refill of class k for this slot", "a
 * large block of n bytes" and get refs back -- and only refs the page map
 * vouches for (the daemon is believed only so far).  As mimalloc's os.c
 * sits over prim.h, so this sits over the transport.
 *
 * Everything here runs with the connection's lock held (conn_lock()).
 */
#ifndef SHMA_CALL_H
#define SHMA_CALL_H

#include "client.h"
#include "rootname.h"
#include "stats_fields.h"

#include <stdio.h>

/* ---- refills ---- */
/* A refill asked of the daemon and not taken in yet: 0 is none.  Good for
 * the connection it was asked on only. */
typedef uint64_t call_ticket;

/* Asks for count objects of class cls for the bin of control-block slot
 * `slot` and does not wait: the ticket, or 0 if nothing could be sent. */
SHMA_HIDDEN call_ticket call_refill_ask(unsigned slot, unsigned cls, uint32_t count);
/* Connects a process that is not connected, asking in the same write as
 * the Hello for a refill of count objects of class cls for slot 0 of the
 * control block the reply brings (only when that block is new): 0 or
 * -errno, and *ticket the refill's, or 0 when none was asked. */
SHMA_HIDDEN int call_connect_refill(unsigned cls, uint32_t count, call_ticket *ticket);
/* 1 if ticket was asked on the current connection (its answer may come). */
SHMA_HIDDEN int call_ticket_live(call_ticket ticket);
/* 1 if ticket is live and some answer is there to read without waiting. */
SHMA_HIDDEN int call_ticket_ready(call_ticket ticket);
/* Where a refill's objects go, one at a time: 1 if taken, 0 if it must go
 * back to the daemon (no room). */
typedef int (*call_put_fn)(void *arg, uint64_t ref);
/* Waits for the answer to ticket, a refill of class cls: every object the
 * page map vouches for goes to put (the last first, so that the first ends
 * on top of a stack), those it refuses back to the daemon, then the ticket
 * into *collected (the daemon's record that the answer was taken in,
 * server/inflight.h) unless collected is NULL.  put NULL: every object goes
 * back, whatever class the answer says.  0 or -errno. */
SHMA_HIDDEN int call_refill_take(call_ticket ticket, unsigned cls, call_put_fn put, void *arg,
				 uint64_t *collected);
/* One object of class cls straight from the daemon (a thread with no
 * cache): its ref, or 0 with errno set. */
SHMA_HIDDEN uint64_t call_object(unsigned cls);

/* ---- frees ---- */
/* Sends n refs of small objects back in one message nobody waits for
 * (lost with the connection: in flight, they leak). */
SHMA_HIDDEN void call_flush(uint64_t *refs, size_t n);
/* The same for objects of named heap heap_id (the daemon takes back only
 * those that are: client/lib/heap.c). */
SHMA_HIDDEN void call_flush_heap(uint64_t heap_id, uint64_t *refs, size_t n);
/* A refill of count objects of class cls from named heap heap_id, recorded
 * in no slot (call_refill_take() collects it, collected NULL). */
SHMA_HIDDEN call_ticket call_heap_refill_ask(uint64_t heap_id, unsigned cls, uint32_t count);
/* The same for refs of refills in flight when a daemon died (salvage). */
SHMA_HIDDEN void call_flush_in_flight(uint64_t *refs, size_t n);

/* ---- large blocks ---- */
/* A large block of at least size bytes: 0 with *ref its first page, or
 * -errno.  The daemon's answer is believed once the page map says a block
 * of that size starts there (else the block goes back: -EPROTO). */
SHMA_HIDDEN int call_alloc_large(uint64_t size, uint64_t *ref);
/* The same from named heap heap_id (0: the default heap). */
SHMA_HIDDEN int call_alloc_large_in(uint64_t heap_id, uint64_t size, uint64_t *ref);
/* Gives large block ref back and waits for the daemon to take it. */
SHMA_HIDDEN void call_free_large(uint64_t ref);
/* The same, without waiting unless too many answers are out already. */
SHMA_HIDDEN void call_free_large_unanswered(uint64_t ref);

/* ---- roots, goodbye ---- */
SHMA_HIDDEN int call_publish(const char *name, uint64_t ref);
SHMA_HIDDEN int call_lookup(const char *name, uint64_t *ref);
SHMA_HIDDEN int call_unpublish(const char *name);
/* Says goodbye and waits for the daemon's word (the connection then ends). */
SHMA_HIDDEN void call_goodbye(void);

/* ---- a side connection: one of the caller's own, beside the process's ---- */
struct side_conn; /* conn.h */
/* Connects to path, checks the daemon and says Hello: 0 or -errno; *s
 * is for call_side_close() either way (NULL when there was no memory). */
SHMA_HIDDEN int call_side_open(const char *path, struct side_conn **s);
/* One Lookup the daemon may park up to wait_ms: 0 and *ref, -ETIMEDOUT
 * (the wait ended; s->silent if the daemon said nothing in time), or
 * -errno. */
SHMA_HIDDEN int call_side_lookup(struct side_conn *s, const char *name, uint32_t wait_ms,
				 uint64_t *ref);
/* 1 if the last wait ended with the daemon silent past its deadline. */
SHMA_HIDDEN int call_side_silent(const struct side_conn *s);
/* Says Goodbye (not waited for), closes and frees s (NULL: nothing). */
SHMA_HIDDEN void call_side_close(struct side_conn *s);

/* ---- named heaps (call_heap.c) ---- */
/* What the daemon says of a heap it created or opened. */
struct call_heap {
	uint64_t id;
	uint32_t lifetime;
	uint64_t max_bytes;
	char name[ROOT_NAME_MAX + 1];
};
/* HeapCreate / HeapOpen: 0 and *out, or -errno (the daemon's Error too). */
SHMA_HIDDEN int call_heap_create(const char *name, uint32_t lifetime, uint64_t max_bytes,
				 struct call_heap *out);
SHMA_HIDDEN int call_heap_open(const char *name, struct call_heap *out);
/* HeapDestroy (destroy) or HeapClose of heap id: 0 or -errno. */
SHMA_HIDDEN int call_heap_end(uint64_t id, int destroy);
/* Heaps of one id: its bytes, blocks and name (each NULL: not wanted). */
SHMA_HIDDEN int call_heap_stats(uint64_t id, uint64_t *bytes, uint64_t *blocks, char *name,
				size_t size);

/* ---- stats ---- */
/* The daemon's StatsReply, in (*resp)->stats, valid until conn_done(). */
SHMA_HIDDEN int stats_fetch(Shma__Response **resp);

/* The stats handed out value by value (call_stats.c), in the order and
 * under the JSON keys of proto/stats_fields.h: the reply is an OBJECT, its
 * fields VALUEs, a list field a LIST of n OBJECTs (its rows) ended by
 * LIST_END.  Every pointer is valid for the call only. */
enum stats_event { STATS_EV_VALUE, STATS_EV_OBJECT, STATS_EV_OBJECT_END, STATS_EV_LIST,
		   STATS_EV_LIST_END };
struct stats_value {
	enum stats_event event;
	enum stats_kind kind;   /* of a VALUE */
	const char *key;        /* a VALUE's or LIST's JSON key */
	uint64_t u;             /* numbers, ids, flags (0 or 1), LIFETIME */
	int64_t i;              /* TIME */
	double d;               /* RATIO */
	const char *s;          /* TEXT; may be NULL */
	const uint64_t *hist;   /* HIST: n buckets */
	size_t n;               /* HIST: buckets; LIST: rows */
};
typedef void stats_sink_fn(void *arg, const struct stats_value *v);
/* Hands r to sink. */
SHMA_HIDDEN void call_stats_walk(const Shma__StatsReply *r, stats_sink_fn *sink, void *arg);
/* The same, but of the reply only its heaps: an OBJECT of one LIST. */
SHMA_HIDDEN void call_stats_walk_heaps(const Shma__StatsReply *r, stats_sink_fn *sink, void *arg);
/* Asks the daemon for its stats and hands them to sink: 0 or -errno. */
SHMA_HIDDEN int call_stats(stats_sink_fn *sink, void *arg);

/* stats_json.c: a sink that writes the stats as JSON to f, one object and a
 * newline. */
struct stats_json {
	FILE *f;
	unsigned depth;   /* objects open */
	unsigned rows;    /* rows written of the list open */
	unsigned n[3];    /* members written of each object open */
};
SHMA_HIDDEN void stats_json_init(struct stats_json *j, FILE *f);
SHMA_HIDDEN void stats_json_sink(void *arg, const struct stats_value *v);
/* The StatsReply as JSON (shmallocctl stats --json); with heaps_only,
 * {"heaps":[...]} (shmallocctl heaps --json). */
SHMA_HIDDEN void stats_json_write(FILE *f, const Shma__StatsReply *r, int heaps_only);

/* ---- any request ---- */
/* Sends req and waits for its response, *resp valid until conn_done():
 * connecting first, and once more on a new connection when the daemon died
 * with a request that may be resent (may_repeat()).  0, or a negative errno
 * (the daemon's Error code too).  For the requests the library has no call
 * of its own for (shmallocctl's Roots). */
SHMA_HIDDEN int conn_call(Shma__Request *req, Shma__Response **resp);

#endif
