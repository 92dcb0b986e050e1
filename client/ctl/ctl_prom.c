/*
 * `shmallocctl stats --prometheus`: one StatsReply in the Prometheus text
 * exposition format (version 0.0.4), for node_exporter's textfile collector
 * or any scraper that reads a file.
 *
 * Guarantees: every metric is named shmalloc_*, is preceded once by its
 * # HELP and # TYPE lines, and has its samples together; counters end in
 * _total; sizes are in bytes and times in seconds (base units); label values
 * are escaped (backslash, double quote, newline).  Per-arena, per-class and
 * per-client metrics carry arena="ID", class="ID" (with size="BYTES"), and
 * client="ID" (with pid, uid, name) labels.
 */
#include "config.h"

#include "ctl.h"

#include <stdio.h>

#define PAGE_BYTES 8192u /* SHMA_PAGE_SIZE: arena stats count pages */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP shmalloc_%s %s\n# TYPE shmalloc_%s %s\n", name, help, name, type);
}

static void scalar(FILE *f, const char *name, const char *type, const char *help,
		   unsigned long long v)
{
	family(f, name, type, help);
	fprintf(f, "shmalloc_%s %llu\n", name, v);
}

static void label_value(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void totals(FILE *f, const Shma__StatsReply *r)
{
	family(f, "info", "gauge", "The daemon answering: its instance and pid.");
	fputs("shmalloc_info{instance=", f);
	label_value(f, r->instance);
	fprintf(f, ",pid=\"%u\"} 1\n", r->pid);
	scalar(f, "start_time_seconds", "gauge", "When the daemon started, unix time.",
	       (unsigned long long)r->started);
	scalar(f, "mapped_bytes", "gauge", "Arenas plus large blocks, mapped.", r->mapped_bytes);
	scalar(f, "resident_bytes", "gauge", "Backing store held in /dev/shm.",
	       r->resident_bytes);
	scalar(f, "in_use_bytes", "gauge", "Objects out (at their class size) plus large blocks.",
	       r->in_use_bytes);
	scalar(f, "peak_in_use_bytes", "gauge", "Highest in_use_bytes since the start.",
	       r->peak_in_use_bytes);
	scalar(f, "cached_bytes", "gauge", "Of in_use_bytes, what sits in clients' caches.",
	       r->cached_bytes);
	scalar(f, "max_memory_bytes", "gauge", "The cap on arenas plus large blocks (0: none).",
	       r->max_memory);
	scalar(f, "returned_bytes_total", "counter", "Bytes given back to the OS by decay.",
	       r->returned_bytes);
	scalar(f, "large_blocks", "gauge", "Large blocks (one segment each) alive.",
	       r->large_count);
	scalar(f, "large_bytes", "gauge", "Bytes in large blocks.", r->large_bytes);
	scalar(f, "roots", "gauge", "Names published.", r->roots);
	scalar(f, "clients", "gauge", "Clients connected.", r->n_clients);
	scalar(f, "requests_total", "counter", "Requests answered.", r->requests);
	scalar(f, "rejected_requests_total", "counter", "Requests refused or invalid.",
	       r->rejected);
	scalar(f, "reclaimed_objects_total", "counter",
	       "Objects taken back from clients that died.", r->reclaimed_objects);
}

static void fragmentation(FILE *f, const Shma__StatsReply *r)
{
	family(f, "external_fragmentation_ratio", "gauge",
	       "1 - largest free run / free pages, over all arenas.");
	fprintf(f, "shmalloc_external_fragmentation_ratio %.6f\n", r->external_fragmentation);
	double fi = ctl_internal_fragmentation(r);
	if (fi < 0)
		return; /* not known: no sample rather than a false 0 */
	family(f, "internal_fragmentation_ratio", "gauge",
	       "1 - bytes requested / bytes granted, of the blocks out.");
	fprintf(f, "shmalloc_internal_fragmentation_ratio %.6f\n", fi);
}

static void service_histogram(FILE *f, const Shma__StatsReply *r)
{
	size_t n = r->n_service_ns_histogram;
	uint64_t seen = 0;
	if (n == 0)
		return;
	family(f, "request_duration_seconds", "histogram",
	       "Time the daemon took to serve a request (no _sum: only buckets are kept).");
	for (size_t b = 0; b + 1 < n; b++) {
		seen += r->service_ns_histogram[b];
		fprintf(f, "shmalloc_request_duration_seconds_bucket{le=\"%.9g\"} %llu\n",
			(double)ctl_bucket_ns((unsigned)b) / 1e9, (unsigned long long)seen);
	}
	seen += r->service_ns_histogram[n - 1];
	fprintf(f, "shmalloc_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		(unsigned long long)seen);
	fprintf(f, "shmalloc_request_duration_seconds_count %llu\n", (unsigned long long)seen);
}

/* One per-arena metric: value(arena) for each arena. */
static void arena_metric(FILE *f, const Shma__StatsReply *r, const char *name,
			 const char *help, int which)
{
	family(f, name, "gauge", help);
	for (size_t i = 0; i < r->n_arenas; i++) {
		const Shma__ArenaStats *a = r->arenas[i];
		uint64_t v = which == 0 ? a->size
			   : which == 1 ? a->free_pages * PAGE_BYTES
			   : which == 2 ? a->span_pages * PAGE_BYTES
			   : which == 3 ? a->largest_free_run * PAGE_BYTES
					: a->resident_bytes;
		fprintf(f, "shmalloc_%s{arena=\"%u\"} %llu\n", name, a->id, (unsigned long long)v);
	}
}

static void arenas(FILE *f, const Shma__StatsReply *r)
{
	arena_metric(f, r, "arena_size_bytes", "Size of the arena.", 0);
	arena_metric(f, r, "arena_free_bytes", "Free pages of the arena, bytes.", 1);
	arena_metric(f, r, "arena_span_bytes", "Pages of the arena in spans, bytes.", 2);
	arena_metric(f, r, "arena_largest_free_run_bytes", "Largest run of free pages, bytes.",
		     3);
	arena_metric(f, r, "arena_resident_bytes", "Backing store the arena holds.", 4);
}

static void class_metric(FILE *f, const Shma__StatsReply *r, const char *name,
			 const char *type, const char *help, int which)
{
	family(f, name, type, help);
	for (size_t i = 0; i < r->n_classes; i++) {
		const Shma__ClassStats *k = r->classes[i];
		uint64_t v = which == 0 ? k->spans
			   : which == 1 ? k->objects_out
			   : which == 2 ? k->objects_total
			   : which == 3 ? k->refills
					: k->flushes;
		fprintf(f, "shmalloc_%s{class=\"%u\",size=\"%llu\"} %llu\n", name, k->size_class,
			(unsigned long long)k->size, (unsigned long long)v);
	}
}

static void classes(FILE *f, const Shma__StatsReply *r)
{
	class_metric(f, r, "class_spans", "gauge", "Spans of the size class.", 0);
	class_metric(f, r, "class_objects_out", "gauge",
		     "Objects of the class out of the daemon's hands (in use or cached).", 1);
	class_metric(f, r, "class_objects", "gauge", "Objects the class's spans hold.", 2);
	class_metric(f, r, "class_refills_total", "counter", "Refills served for the class.", 3);
	class_metric(f, r, "class_flushed_objects_total", "counter",
		     "Objects of the class given back by clients.", 4);
}

static void client_labels(FILE *f, const Shma__ClientStats *c)
{
	fprintf(f, "{client=\"%llu\",pid=\"%u\",uid=\"%u\",name=",
		(unsigned long long)c->client_id, c->pid, c->uid);
	label_value(f, c->name);
	fputc('}', f);
}

static void client_metric(FILE *f, const Shma__StatsReply *r, const char *name,
			  const char *type, const char *help, int which)
{
	family(f, name, type, help);
	for (size_t i = 0; i < r->n_clients; i++) {
		const Shma__ClientStats *c = r->clients[i];
		uint64_t v = which == 0 ? c->bytes_held
			   : which == 1 ? c->cached_bytes
			   : which == 2 ? c->requests
			   : which == 3 ? c->rejected
					: (uint64_t)c->connected_since;
		fprintf(f, "shmalloc_%s", name);
		client_labels(f, c);
		fprintf(f, " %llu\n", (unsigned long long)v);
	}
}

static void clients(FILE *f, const Shma__StatsReply *r)
{
	client_metric(f, r, "client_held_bytes", "gauge",
		      "Bytes the client took (objects and large blocks), net.", 0);
	client_metric(f, r, "client_cached_bytes", "gauge",
		      "Of the client's held bytes, what sits in its caches.", 1);
	client_metric(f, r, "client_requests_total", "counter", "Requests of the client.", 2);
	client_metric(f, r, "client_rejected_requests_total", "counter",
		      "Requests of the client refused or invalid.", 3);
	client_metric(f, r, "client_connected_since_seconds", "gauge",
		      "When the client connected, unix time.", 4);
}

void ctl_print_prometheus(FILE *f, const Shma__StatsReply *r)
{
	totals(f, r);
	fragmentation(f, r);
	service_histogram(f, r);
	arenas(f, r);
	classes(f, r);
	clients(f, r);
}
