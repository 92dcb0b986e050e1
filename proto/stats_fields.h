/* SPDX-License-Identifier: MIT */
/*
 * The stats fields, once: every field of StatsReply and of the messages it
 * lists (ArenaStats, ClassStats, ClientStats, FormerClientStats, HeapStats)
 * with what it is, where the daemon takes it from and how each view names it.  The
 * daemon's filling (server/stats.c), the JSON of shma_stats_json()
 * (client/lib/stats_json.c), the table of `shmallocctl stats` / `clients`
 * (client/ctl/ctl_table.c) and the Prometheus text of `--prometheus`
 * (client/ctl/ctl_prom.c) all expand these lists; none names a field by hand
 * but for what it derives (quantiles, fragmentation ratios).  The ctl suite
 * checks, from the protobuf-c descriptors, that every field of the schema is
 * here and in each view (tests/e2e/check_ctl.c, stats_fields_in_every_view).
 *
 * XX(member, kind, source, json, label, line, prom, help):
 *   member  the protobuf-c member (a repeated one has n_<member> too);
 *   kind    COUNT (a number now), BYTES, PAGES (8 KiB pages; bytes in
 *           Prometheus), TOTAL and TOTAL_BYTES (only ever grow: Prometheus
 *           counters), TIME (unix seconds), RATIO (a double in [0,1]), FLAG,
 *           TEXT, ID (names a row: a Prometheus label), HIST (counts per
 *           power-of-two bucket of ns), NS (a total of ns: the histogram's
 *           _sum in Prometheus), LIST (a repeated message, drawn as its
 *           own table), RETIRED (never set: in no view), LIFETIME (a
 *           heap's enum shma_heap_lifetime: a word; a Prometheus label);
 *   source  where stats_build() takes it: HEAP (the heap's stats struct, same
 *           name), DAEMON (struct daemon, same name), CLIENT (struct client,
 *           same name) or SELF (written out in stats.c);
 *   json    its key in shma_stats_json();
 *   label   its name in the table (a line's word, or a column's head);
 *   line    the table line it is on (instance fields; lists: COL);
 *   prom    its Prometheus name after "shmalloc_" (NULL: none, and the
 *           help says why; ID and TEXT fields are labels of that name);
 *   help    one sentence: the Prometheus # HELP text.
 */
#ifndef SHMA_PROTO_STATS_FIELDS_H
#define SHMA_PROTO_STATS_FIELDS_H

#define STATS_REPLY_FIELDS(XX) \
	XX(instance, TEXT, SELF, "instance", "instance", HEAD, "instance", \
	   "The instance the daemon serves (a label of shmalloc_info).") \
	XX(pid, ID, SELF, "pid", "pid", HEAD, "pid", \
	   "The daemon's pid (a label of shmalloc_info).") \
	XX(backing, TEXT, SELF, "backing", "backing", HEAD, "backing", \
	   "Where the heap lives: shm, memfd or file:DIR (a label of shmalloc_info).") \
	XX(huge_pages, TEXT, SELF, "huge_pages", "huge pages", HEAD, "huge_pages", \
	   "What --huge-pages got: off, none, hugetlb SIZE or thp (MODE) (a label of " \
	   "shmalloc_info).") \
	XX(started, TIME, DAEMON, "started", "up", HEAD, "start_time_seconds", \
	   "When the daemon started, unix time.") \
	XX(arena_size, BYTES, SELF, "arena_size", "arena", MEMORY, "heap_arena_size_bytes", \
	   "The size of every arena of the heap.") \
	XX(mapped_bytes, BYTES, HEAP, "mapped_bytes", "mapped", MEMORY, "mapped_bytes", \
	   "Arenas plus large blocks, mapped.") \
	XX(resident_bytes, BYTES, HEAP, "resident_bytes", "resident", MEMORY, "resident_bytes", \
	   "Backing store held in /dev/shm.") \
	XX(in_use_bytes, BYTES, HEAP, "in_use_bytes", "in use", MEMORY, "in_use_bytes", \
	   "Objects out (at their class size) plus large blocks.") \
	XX(peak_in_use_bytes, BYTES, HEAP, "peak_in_use_bytes", "peak", MEMORY, \
	   "peak_in_use_bytes", "Highest in_use_bytes since the start.") \
	XX(returned_bytes, TOTAL_BYTES, HEAP, "returned_bytes", "returned to OS", MEMORY, \
	   "returned_bytes_total", "Bytes given back to the OS by decay.") \
	XX(max_memory, BYTES, SELF, "max_memory", "max", MEMORY, "max_memory_bytes", \
	   "The cap on arenas plus large blocks (0: none).") \
	XX(large_count, COUNT, HEAP, "large_count", "blocks", LARGE, "large_blocks", \
	   "Large blocks alive.") \
	XX(large_bytes, BYTES, HEAP, "large_bytes", "bytes", LARGE, "large_bytes", \
	   "Bytes in large blocks.") \
	XX(requests, TOTAL, DAEMON, "requests", "requests", REQUESTS, "requests_total", \
	   "Requests answered.") \
	XX(rejected, TOTAL, DAEMON, "rejected", "rejected", REQUESTS, "rejected_requests_total", \
	   "Requests refused or invalid.") \
	XX(roots, COUNT, SELF, "roots", "roots", HEAD, "roots", "Names published.") \
	XX(reclaimed_objects, TOTAL, DAEMON, "reclaimed_objects", "reclaimed objects", CLIENTS, \
	   "reclaimed_objects_total", "Objects taken back from the caches of clients gone.") \
	XX(inflight_returned, TOTAL, DAEMON, "inflight_returned", "in-flight returned", CLIENTS, \
	   "inflight_returned_objects_total", \
	   "Objects of refills in flight at an earlier daemon's death, flushed back to this one.") \
	XX(cached_bytes, BYTES, SELF, "cached_bytes", "cached in clients", MEMORY, \
	   "cached_bytes", "Of in_use_bytes, what sits in clients' caches.") \
	XX(requested_bytes, RETIRED, SELF, "requested_bytes", "requested", NONE, NULL, \
	   "Never set: the size asked for is not known at a block's free.") \
	XX(external_fragmentation, RATIO, SELF, "external_fragmentation", "external", FRAG, \
	   "external_fragmentation_ratio", "1 - largest free run / free pages, over all arenas.") \
	XX(malloc_calls, TOTAL, SELF, "malloc_calls", "mallocs", CLIENTS, "malloc_calls_total", \
	   "Allocations by clients, connected and gone (the clients count them).") \
	XX(malloc_waits, TOTAL, SELF, "malloc_waits", "of them waited", CLIENTS, \
	   "malloc_waits_total", "Of malloc_calls, those that waited on the daemon.") \
	XX(regions, COUNT, SELF, "regions", "regions", REGIONS, "regions", \
	   "Regions of clients connected or not yet settled.") \
	XX(region_in_use_bytes, BYTES, SELF, "region_in_use_bytes", "in regions", REGIONS, \
	   "region_in_use_bytes", "Of in_use_bytes, what is in regions (freed when they end).") \
	XX(former_bytes, BYTES, SELF, "former_bytes", "held by clients gone", CLIENTS, \
	   "former_bytes", "Of in_use_bytes, what clients that are gone took and did not give back.") \
	XX(malloc_requested_bytes, TOTAL_BYTES, SELF, "malloc_requested_bytes", "small asked", \
	   FRAG, "malloc_requested_bytes_total", \
	   "Bytes small allocations asked for, connected clients and gone.") \
	XX(malloc_granted_bytes, TOTAL_BYTES, SELF, "malloc_granted_bytes", "small granted", FRAG, \
	   "malloc_granted_bytes_total", "Bytes small allocations were given (their class size).") \
	XX(large_requested_bytes, TOTAL_BYTES, DAEMON, "large_requested_bytes", "large asked", \
	   FRAG, "large_requested_bytes_total", "Bytes large blocks the daemon served asked for.") \
	XX(large_granted_bytes, TOTAL_BYTES, DAEMON, "large_granted_bytes", "large granted", FRAG, \
	   "large_granted_bytes_total", "Bytes of those large blocks (whole pages).") \
	XX(service_ns_histogram, HIST, SELF, "service_ns_histogram", "service time", REQUESTS, \
	   "request_duration_seconds", "Time the daemon took to serve a request.") \
	XX(service_ns_total, NS, DAEMON, "service_ns_total", "serving", REQUESTS, \
	   "request_duration_seconds_sum", \
	   "The histogram's _sum: every request's service time, summed (seconds).") \
	XX(arenas, LIST, SELF, "arenas", "arenas", NONE, "arenas", "Arenas made.") \
	XX(classes, LIST, SELF, "classes", "size classes", NONE, "classes", "Size classes in use.") \
	XX(clients, LIST, SELF, "clients", "clients connected", NONE, "clients", \
	   "Clients connected (the asking shmallocctl left out).") \
	XX(former_clients, LIST, SELF, "former_clients", "clients gone, blocks still out", NONE, \
	   "former_clients", "Clients gone that still hold blocks.") \
	XX(heaps, LIST, SELF, "heaps", "heaps", NONE, "heaps", \
	   "Named heaps, and regions of shmalloc-run processes (heaps of process lifetime).")

#define ARENA_STATS_FIELDS(XX) \
	XX(id, ID, HEAP, "id", "arena", COL, "arena", "The arena's number.") \
	XX(size, BYTES, HEAP, "size", "size", COL, "arena_size_bytes", "Size of the arena.") \
	XX(pages, COUNT, HEAP, "pages", "pages", COL, "arena_pages", "Pages of the arena.") \
	XX(free_pages, PAGES, HEAP, "free_pages", "free", COL, "arena_free_bytes", \
	   "Free pages of the arena, bytes.") \
	XX(span_pages, PAGES, HEAP, "span_pages", "in spans", COL, "arena_span_bytes", \
	   "Pages of the arena in spans, bytes.") \
	XX(largest_free_run, PAGES, HEAP, "largest_free_run", "largest run", COL, \
	   "arena_largest_free_run_bytes", "Largest run of free pages, bytes.") \
	XX(resident_bytes, BYTES, HEAP, "resident_bytes", "resident", COL, \
	   "arena_resident_bytes", "Backing store the arena holds.") \
	XX(quarantined, FLAG, HEAP, "quarantined", "quarantined", COL, "arena_quarantined", \
	   "1 if the arena's metadata was found inconsistent: nothing new comes from it.")

#define CLASS_STATS_FIELDS(XX) \
	XX(size_class, ID, SELF, "class", "class", COL, "class", "The size class's number.") \
	XX(size, ID, SELF, "size", "size", COL, "size", "The size class's object size, bytes.") \
	XX(spans, COUNT, HEAP, "spans", "spans", COL, "class_spans", "Spans of the size class.") \
	XX(objects_out, COUNT, HEAP, "objects_out", "objects out", COL, "class_objects_out", \
	   "Objects of the class out of the daemon's hands (in use or cached).") \
	XX(objects_total, COUNT, HEAP, "objects_total", "of", COL, "class_objects", \
	   "Objects the class's spans hold.") \
	XX(refills, TOTAL, HEAP, "refills", "refills", COL, "class_refills_total", \
	   "Refills served for the class.") \
	XX(flushes, TOTAL, HEAP, "flushes", "flushed", COL, "class_flushed_objects_total", \
	   "Objects of the class given back by clients.") \
	XX(requested_bytes, RETIRED, SELF, "requested_bytes", "requested", COL, NULL, \
	   "Never set: the size asked for is not known at a block's free.") \
	XX(malloc_calls, TOTAL, SELF, "mallocs", "mallocs", COL, "class_malloc_calls_total", \
	   "Allocations of the class by clients connected and gone.") \
	XX(malloc_requested_bytes, TOTAL_BYTES, SELF, "requested_bytes_total", "asked", COL, \
	   "class_malloc_requested_bytes_total", "Bytes those allocations asked for.")

#define CLIENT_STATS_FIELDS(XX) \
	XX(client_id, ID, SELF, "id", "id", COL, NULL, \
	   "Not a Prometheus label: a new connection is a new id, so series would churn.") \
	XX(pid, ID, CLIENT, "pid", "pid", COL, "pid", "The client's pid.") \
	XX(uid, ID, CLIENT, "uid", "uid", COL, "uid", "The client's uid.") \
	XX(name, TEXT, CLIENT, "name", "name", COL, "name", "The name the client gave.") \
	XX(connected_since, TIME, CLIENT, "connected_since", "connected since", COL, \
	   "client_connected_since_seconds", "When the client connected, unix time.") \
	XX(bytes_held, BYTES, CLIENT, "bytes_held", "held", COL, "client_held_bytes", \
	   "Bytes the client took (objects and large blocks), net.") \
	XX(requests, TOTAL, CLIENT, "requests", "requests", COL, "client_requests_total", \
	   "Requests of the client.") \
	XX(rejected, TOTAL, CLIENT, "rejected", "rejected", COL, \
	   "client_rejected_requests_total", "Requests of the client refused or invalid.") \
	XX(cached_bytes, BYTES, SELF, "cached_bytes", "cached", COL, "client_cached_bytes", \
	   "Of the client's held bytes, what sits in its caches.") \
	XX(malloc_calls, TOTAL, SELF, "mallocs", "mallocs", COL, "client_malloc_calls_total", \
	   "Allocations by the client.") \
	XX(malloc_waits, TOTAL, SELF, "waits", "waits", COL, "client_malloc_waits_total", \
	   "Of the client's allocations, those that waited on the daemon.") \
	XX(same_address, COUNT, SELF, "same_address", "same addr", COL, \
	   "client_same_address", "1 if the client maps the heap at its base (raw pointers work).") \
	XX(region_bytes, BYTES, SELF, "region_bytes", "region", COL, "client_region_bytes", \
	   "Bytes of the client's region, freed when it ends.") \
	XX(region, FLAG, SELF, "region", "has region", COL, "client_region", \
	   "1 if the client has a region (the preload library's processes).")

#define FORMER_CLIENT_STATS_FIELDS(XX) \
	XX(client_id, ID, SELF, "id", "id", COL, NULL, \
	   "Not a Prometheus label: a new connection is a new id, so series would churn.") \
	XX(pid, ID, SELF, "pid", "pid", COL, "pid", "The former client's pid.") \
	XX(uid, ID, SELF, "uid", "uid", COL, "uid", "The former client's uid.") \
	XX(name, TEXT, SELF, "name", "name", COL, "name", "The name the former client gave.") \
	XX(connected_since, TIME, SELF, "connected_since", "connected since", COL, \
	   "former_client_connected_since_seconds", "When the former client connected, unix time.") \
	XX(ended, TIME, SELF, "ended", "ended", COL, "former_client_ended_seconds", \
	   "When the former client's connection ended, unix time.") \
	XX(bytes_held, BYTES, SELF, "bytes_held", "held", COL, "former_client_held_bytes", \
	   "Bytes the former client took and did not give back.") \
	XX(unsettled, FLAG, SELF, "unsettled", "unsettled", COL, "former_client_unsettled", \
	   "1 while its process lives on: its caches go back when it exits.")

/* A named heap (shma_heap_create(3)), or a shmalloc-run process's region
 * shown as a heap of process lifetime ("run:<pid>").  Source HEAP here is
 * the registry's struct heaps_info (server/heap/heaps.h). */
#define HEAP_STATS_FIELDS(XX) \
	XX(name, TEXT, SELF, "name", "name", COL, "heap", "The heap's name.") \
	XX(heap_id, ID, SELF, "id", "id", COL, "heap_id", \
	   "The heap's id: the same in every process, never reused (0: a region).") \
	XX(lifetime, LIFETIME, HEAP, "lifetime", "lifetime", COL, "lifetime", \
	   "persistent, process (its creator's) or last-user (the last process that has it open).") \
	XX(max_bytes, BYTES, HEAP, "max_bytes", "max", COL, "heap_max_bytes", \
	   "The heap's own limit (0: none).") \
	XX(bytes, BYTES, HEAP, "bytes", "bytes", COL, "heap_bytes", \
	   "Bytes of the heap out: objects (class size) and large blocks.") \
	XX(blocks, COUNT, HEAP, "blocks", "blocks", COL, "heap_blocks", \
	   "Blocks of the heap out (in use or in caches).") \
	XX(processes, COUNT, SELF, "processes", "processes", COL, "heap_processes", \
	   "Processes that have the heap open.") \
	XX(creator_pid, ID, HEAP, "creator_pid", "creator", COL, "creator_pid", \
	   "The pid that created the heap.") \
	XX(creator_uid, ID, HEAP, "creator_uid", "uid", COL, "uid", \
	   "The uid that created the heap.") \
	XX(created, TIME, HEAP, "created", "created", COL, "heap_created_seconds", \
	   "When the heap was created, unix time.") \
	XX(spans, COUNT, HEAP, "spans", "spans", COL, "heap_spans", "Spans of the heap.") \
	XX(large_count, COUNT, HEAP, "large_count", "large", COL, "heap_large_blocks", \
	   "Large blocks of the heap.")

/* A LIFETIME's word (enum shma_heap_lifetime). */
static inline const char *stats_lifetime_name(unsigned long long lifetime)
{
	return lifetime == 0 ? "persistent" : lifetime == 1 ? "process"
	       : lifetime == 2 ? "last-user" : "?";
}

/* Each kind, for code that looks a field up at run time (the test). */
enum stats_kind {
	STATS_COUNT, STATS_BYTES, STATS_PAGES, STATS_TOTAL, STATS_TOTAL_BYTES, STATS_TIME,
	STATS_RATIO, STATS_FLAG, STATS_TEXT, STATS_ID, STATS_HIST, STATS_NS, STATS_LIST,
	STATS_RETIRED, STATS_LIFETIME,
};

struct stats_field {
	const char *member, *json, *label, *prom, *help;
	enum stats_kind kind;
};

/* { STATS_REPLY_FIELDS(STATS_FIELD_ENTRY) } is a struct stats_field array. */
#define STATS_FIELD_ENTRY(m, kind, src, json, label, line, prom, help) \
	{#m, json, label, prom, help, STATS_##kind},

#endif
