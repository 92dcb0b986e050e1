/*
 * Stats as JSON: shma_stats_json() asks the daemon for its StatsReply and
 * writes it out.  The result is the caller's, freed with free(3), so this is
 * the one place of the library that uses the process's malloc (through
 * open_memstream); shma_malloc never reaches it.
 */
#include "config.h"

#include "client.h"
#include "shmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void write_arenas(FILE *f, const Shma__StatsReply *r)
{
	fputs("\"arenas\":[", f);
	for (size_t i = 0; i < r->n_arenas; i++) {
		const Shma__ArenaStats *a = r->arenas[i];
		fprintf(f, "%s{\"id\":%u,\"size\":%llu,\"pages\":%llu,\"free_pages\":%llu,"
			   "\"span_pages\":%llu,\"largest_free_run\":%llu,\"resident_bytes\":%llu,"
			   "\"quarantined\":%s}",
			i ? "," : "", a->id, (unsigned long long)a->size,
			(unsigned long long)a->pages, (unsigned long long)a->free_pages,
			(unsigned long long)a->span_pages, (unsigned long long)a->largest_free_run,
			(unsigned long long)a->resident_bytes, a->quarantined ? "true" : "false");
	}
	fputs("]", f);
}

static void write_classes(FILE *f, const Shma__StatsReply *r)
{
	fputs("\"classes\":[", f);
	for (size_t i = 0; i < r->n_classes; i++) {
		const Shma__ClassStats *c = r->classes[i];
		fprintf(f, "%s{\"class\":%u,\"size\":%llu,\"spans\":%llu,\"objects_out\":%llu,"
			   "\"objects_total\":%llu,\"refills\":%llu,\"flushes\":%llu,"
			   "\"requested_bytes\":%llu}",
			i ? "," : "", c->size_class, (unsigned long long)c->size,
			(unsigned long long)c->spans, (unsigned long long)c->objects_out,
			(unsigned long long)c->objects_total, (unsigned long long)c->refills,
			(unsigned long long)c->flushes, (unsigned long long)c->requested_bytes);
	}
	fputs("]", f);
}

static void write_clients(FILE *f, const Shma__StatsReply *r)
{
	fputs("\"clients\":[", f);
	for (size_t i = 0; i < r->n_clients; i++) {
		const Shma__ClientStats *c = r->clients[i];
		fprintf(f, "%s{\"id\":%llu,\"pid\":%u,\"uid\":%u,\"name\":", i ? "," : "",
			(unsigned long long)c->client_id, c->pid, c->uid);
		json_string(f, c->name);
		fprintf(f, ",\"connected_since\":%lld,\"bytes_held\":%llu,\"cached_bytes\":%llu,"
			   "\"requests\":%llu,\"rejected\":%llu,\"mallocs\":%llu,\"waits\":%llu,"
			   "\"same_address\":%u,\"region\":%s,\"region_bytes\":%llu}",
			(long long)c->connected_since, (unsigned long long)c->bytes_held,
			(unsigned long long)c->cached_bytes,
			(unsigned long long)c->requests, (unsigned long long)c->rejected,
			(unsigned long long)c->malloc_calls, (unsigned long long)c->malloc_waits,
			c->same_address, c->region ? "true" : "false",
			(unsigned long long)c->region_bytes);
	}
	fputs("]", f);
}

void stats_json_write(FILE *f, const Shma__StatsReply *r)
{
	fputs("{\"instance\":", f);
	json_string(f, r->instance);
	fprintf(f, ",\"pid\":%u,\"started\":%lld,\"arena_size\":%llu,\"mapped_bytes\":%llu,"
		   "\"resident_bytes\":%llu,\"in_use_bytes\":%llu,\"peak_in_use_bytes\":%llu,"
		   "\"returned_bytes\":%llu,\"max_memory\":%llu,\"large_count\":%llu,"
		   "\"large_bytes\":%llu,\"requests\":%llu,\"rejected\":%llu,\"roots\":%llu,"
		   "\"reclaimed_objects\":%llu,\"inflight_returned\":%llu,\"cached_bytes\":%llu,"
		   "\"requested_bytes\":%llu,\"external_fragmentation\":%.4f,",
		r->pid, (long long)r->started, (unsigned long long)r->arena_size,
		(unsigned long long)r->mapped_bytes, (unsigned long long)r->resident_bytes,
		(unsigned long long)r->in_use_bytes, (unsigned long long)r->peak_in_use_bytes,
		(unsigned long long)r->returned_bytes, (unsigned long long)r->max_memory,
		(unsigned long long)r->large_count, (unsigned long long)r->large_bytes,
		(unsigned long long)r->requests, (unsigned long long)r->rejected,
		(unsigned long long)r->roots, (unsigned long long)r->reclaimed_objects,
		(unsigned long long)r->inflight_returned, (unsigned long long)r->cached_bytes, (unsigned long long)r->requested_bytes,
		r->external_fragmentation);
	/* Only here, once: per client the same counters are "mallocs" and
	 * "waits", so a reader that sums every occurrence of a key is right. */
	fprintf(f, "\"malloc_calls\":%llu,\"malloc_waits\":%llu,",
		(unsigned long long)r->malloc_calls, (unsigned long long)r->malloc_waits);
	fprintf(f, "\"regions\":%llu,\"region_in_use_bytes\":%llu,",
		(unsigned long long)r->regions, (unsigned long long)r->region_in_use_bytes);
	fputs("\"service_ns_histogram\":[", f);
	for (size_t i = 0; i < r->n_service_ns_histogram; i++)
		fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)r->service_ns_histogram[i]);
	fputs("],", f);
	write_arenas(f, r);
	fputc(',', f);
	write_classes(f, r);
	fputc(',', f);
	write_clients(f, r);
	fputs("}\n", f);
}

SHMA_EXPORT int shma_stats_json(char **json)
{
	char *buf = NULL;
	size_t len = 0;
	Shma__Response *resp;
	conn_lock();
	int rc = stats_fetch(&resp);
	if (rc == 0) {
		FILE *f = open_memstream(&buf, &len);
		if (f == NULL)
			rc = -ENOMEM;
		else {
			stats_json_write(f, resp->stats);
			if (fclose(f) != 0)
				rc = -ENOMEM;
		}
	}
	if (resp)
		conn_done();
	conn_unlock();
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*json = buf;
	return 0;
}
