/* SPDX-License-Identifier: MIT */
/*
 * The daemon's stats, walked (call.h: the call layer): a StatsReply, fetched
 * or given, is handed to a sink value by value in proto/stats_fields.h's
 * order -- each field as a plain number, text or histogram under its JSON
 * key, each list as its rows, each row as an object of its fields -- so that
 * what writes the stats out (stats_json.c) never sees a protobuf-c type.
 * Retired fields are not handed on.
 */
#include "config.h"

#include "call.h"

static void put(stats_sink_fn *sink, void *arg, const struct stats_value *v)
{
	sink(arg, v);
}

static void event(stats_sink_fn *sink, void *arg, enum stats_event ev, const char *k, size_t n)
{
	put(sink, arg, &(struct stats_value){.event = ev, .key = k, .n = n});
}

static void put_u(stats_sink_fn *sink, void *arg, enum stats_kind kind, const char *k,
		  uint64_t u)
{
	put(sink, arg, &(struct stats_value){.event = STATS_EV_VALUE, .kind = kind, .key = k,
					     .u = u});
}

/* A field of kind K, member m of *r, under JSON key k. */
#define W_COUNT(k, r, m) put_u(sink, arg, STATS_COUNT, k, (uint64_t)(r)->m);
#define W_BYTES(k, r, m) put_u(sink, arg, STATS_BYTES, k, (uint64_t)(r)->m);
#define W_PAGES(k, r, m) put_u(sink, arg, STATS_PAGES, k, (uint64_t)(r)->m);
#define W_TOTAL(k, r, m) put_u(sink, arg, STATS_TOTAL, k, (uint64_t)(r)->m);
#define W_TOTAL_BYTES(k, r, m) put_u(sink, arg, STATS_TOTAL_BYTES, k, (uint64_t)(r)->m);
#define W_NS(k, r, m) put_u(sink, arg, STATS_NS, k, (uint64_t)(r)->m);
#define W_ID(k, r, m) put_u(sink, arg, STATS_ID, k, (uint64_t)(r)->m);
#define W_LIFETIME(k, r, m) put_u(sink, arg, STATS_LIFETIME, k, (uint64_t)(r)->m);
#define W_FLAG(k, r, m) put_u(sink, arg, STATS_FLAG, k, (r)->m != 0);
#define W_TIME(k, r, m) \
	put(sink, arg, &(struct stats_value){.event = STATS_EV_VALUE, .kind = STATS_TIME, \
					     .key = k, .i = (int64_t)(r)->m});
#define W_RATIO(k, r, m) \
	put(sink, arg, &(struct stats_value){.event = STATS_EV_VALUE, .kind = STATS_RATIO, \
					     .key = k, .d = (r)->m});
#define W_TEXT(k, r, m) \
	put(sink, arg, &(struct stats_value){.event = STATS_EV_VALUE, .kind = STATS_TEXT, \
					     .key = k, .s = (r)->m});
#define W_HIST(k, r, m) \
	put(sink, arg, &(struct stats_value){.event = STATS_EV_VALUE, .kind = STATS_HIST, \
					     .key = k, .hist = (r)->m, .n = (r)->n_##m});
#define W_LIST(k, r, m) walk_##m(sink, arg, k, (r)->m, (r)->n_##m);
#define W_RETIRED(k, r, m)
#define W_FIELD(m, kind, src, json, label, line, prom, help) W_##kind(json, r, m)

/* One list field: its rows, each an object of its fields. */
#define W_LIST_WALKER(fn, type, FIELDS) \
	static void fn(stats_sink_fn *sink, void *arg, const char *k, type *const *rows, \
		       size_t n) \
	{ \
		event(sink, arg, STATS_EV_LIST, k, n); \
		for (size_t i = 0; i < n; i++) { \
			const type *r = rows[i]; \
			event(sink, arg, STATS_EV_OBJECT, NULL, 0); \
			FIELDS(W_FIELD) \
			event(sink, arg, STATS_EV_OBJECT_END, NULL, 0); \
		} \
		event(sink, arg, STATS_EV_LIST_END, k, n); \
	}

W_LIST_WALKER(walk_arenas, Shma__ArenaStats, ARENA_STATS_FIELDS)
W_LIST_WALKER(walk_classes, Shma__ClassStats, CLASS_STATS_FIELDS)
W_LIST_WALKER(walk_clients, Shma__ClientStats, CLIENT_STATS_FIELDS)
W_LIST_WALKER(walk_former_clients, Shma__FormerClientStats, FORMER_CLIENT_STATS_FIELDS)
W_LIST_WALKER(walk_heaps, Shma__HeapStats, HEAP_STATS_FIELDS)

void call_stats_walk(const Shma__StatsReply *r, stats_sink_fn *sink, void *arg)
{
	event(sink, arg, STATS_EV_OBJECT, NULL, 0);
	STATS_REPLY_FIELDS(W_FIELD)
	event(sink, arg, STATS_EV_OBJECT_END, NULL, 0);
}

void call_stats_walk_heaps(const Shma__StatsReply *r, stats_sink_fn *sink, void *arg)
{
	event(sink, arg, STATS_EV_OBJECT, NULL, 0);
	walk_heaps(sink, arg, "heaps", r->heaps, r->n_heaps);
	event(sink, arg, STATS_EV_OBJECT_END, NULL, 0);
}

int call_stats(stats_sink_fn *sink, void *arg)
{
	Shma__Response *resp;
	int rc = stats_fetch(&resp);
	if (rc == 0)
		call_stats_walk(resp->stats, sink, arg);
	if (resp)
		conn_done();
	return rc;
}

void stats_json_write(FILE *f, const Shma__StatsReply *r, int heaps_only)
{
	struct stats_json j;
	stats_json_init(&j, f);
	if (heaps_only)
		call_stats_walk_heaps(r, stats_json_sink, &j);
	else
		call_stats_walk(r, stats_json_sink, &j);
}
