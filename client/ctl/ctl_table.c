/*
 * The readable table of `shmallocctl stats` and `shmallocctl clients`.
 *
 * One StatsReply, drawn in sections that answer the questions users ask
 * first: how much memory the heap holds and where it is (totals, arenas), who
 * holds it (clients, large blocks), how well it is used (size classes,
 * fragmentation) and how fast the daemon answers (service-time quantiles).
 * Sizes are humanized in powers of 1024; counts are exact.  Nothing here
 * talks to the daemon.
 */
#include "config.h"

#include "ctl.h"

#include <stdio.h>
#include <time.h>

#define PAGE_BYTES 8192u /* SHMA_PAGE_SIZE: arena stats count pages */

void ctl_bytes(char *buf, size_t n, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	unsigned u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
}

uint64_t ctl_bucket_ns(unsigned b)
{
	return b < 64 ? (uint64_t)1 << b : UINT64_MAX;
}

int ctl_quantile_bucket(const uint64_t *hist, size_t n, double p)
{
	uint64_t total = 0, seen = 0;
	for (size_t i = 0; i < n; i++)
		total += hist[i];
	if (total == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		seen += hist[i];
		if ((double)seen >= p * (double)total)
			return (int)i;
	}
	return (int)n - 1;
}

double ctl_internal_fragmentation(const Shma__StatsReply *r)
{
	uint64_t granted = 0;
	for (size_t i = 0; i < r->n_classes; i++)
		granted += r->classes[i]->objects_out * r->classes[i]->size;
	granted += r->large_bytes;
	if (r->requested_bytes == 0 || granted == 0 || r->requested_bytes > granted)
		return -1;
	return 1.0 - (double)r->requested_bytes / (double)granted;
}

static void duration(char *buf, size_t n, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.2f s", (double)ns / 1e9);
}

static void uptime(char *buf, size_t n, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 3600)
		snprintf(buf, n, "%lldm %llds", (long long)secs / 60, (long long)secs % 60);
	else if (secs < 86400)
		snprintf(buf, n, "%lldh %lldm", (long long)secs / 3600, (long long)secs / 60 % 60);
	else
		snprintf(buf, n, "%lldd %lldh", (long long)secs / 86400, (long long)secs / 3600 % 24);
}

static void quantile(char *buf, size_t n, const Shma__StatsReply *r, double p)
{
	int b = ctl_quantile_bucket(r->service_ns_histogram, r->n_service_ns_histogram, p);
	char d[24];
	if (b < 0) {
		snprintf(buf, n, "-");
		return;
	}
	if ((size_t)b + 1 == r->n_service_ns_histogram) {
		duration(d, sizeof d, ctl_bucket_ns((unsigned)b - 1));
		snprintf(buf, n, ">= %s", d);
		return;
	}
	duration(d, sizeof d, ctl_bucket_ns((unsigned)b));
	snprintf(buf, n, "< %s", d);
}

static void print_header(FILE *f, const Shma__StatsReply *r, time_t now)
{
	char up[32];
	uptime(up, sizeof up, (int64_t)now - r->started);
	fprintf(f, "shmallocd pid %u   instance %s   up %s   %zu clients   %llu roots\n", r->pid,
		r->instance, up, r->n_clients, (unsigned long long)r->roots);
}

static void print_memory(FILE *f, const Shma__StatsReply *r)
{
	char a[32], b[32], c[32], d[32], e[32], g[32];
	ctl_bytes(a, sizeof a, r->mapped_bytes);
	ctl_bytes(b, sizeof b, r->resident_bytes);
	ctl_bytes(c, sizeof c, r->in_use_bytes);
	ctl_bytes(d, sizeof d, r->peak_in_use_bytes);
	fprintf(f, "memory      mapped %s   resident %s   in use %s   peak %s\n", a, b, c, d);
	ctl_bytes(a, sizeof a, r->cached_bytes);
	ctl_bytes(b, sizeof b, r->returned_bytes);
	if (r->max_memory)
		ctl_bytes(c, sizeof c, r->max_memory);
	else
		snprintf(c, sizeof c, "none");
	ctl_bytes(e, sizeof e, r->arena_size);
	ctl_bytes(g, sizeof g, r->large_bytes);
	fprintf(f, "            cached in clients %s   returned to OS %s   max %s   arena %s\n",
		a, b, c, e);
	fprintf(f, "large       %llu blocks, %s\n", (unsigned long long)r->large_count, g);
}

static void print_fragmentation(FILE *f, const Shma__StatsReply *r)
{
	uint64_t free_pages = 0, largest = 0;
	for (size_t i = 0; i < r->n_arenas; i++) {
		free_pages += r->arenas[i]->free_pages;
		if (r->arenas[i]->largest_free_run > largest)
			largest = r->arenas[i]->largest_free_run;
	}
	char in[64], a[32], b[32];
	double fi = ctl_internal_fragmentation(r);
	if (fi < 0)
		snprintf(in, sizeof in, "not known");
	else
		snprintf(in, sizeof in, "%.1f%%", fi * 100);
	ctl_bytes(a, sizeof a, largest * PAGE_BYTES);
	ctl_bytes(b, sizeof b, free_pages * PAGE_BYTES);
	fprintf(f, "fragment.   internal %s   external %.1f%% (largest free run %s of %s free)\n",
		in, r->external_fragmentation * 100, a, b);
}

static void print_service(FILE *f, const Shma__StatsReply *r)
{
	char p50[32], p99[32], max[32];
	quantile(p50, sizeof p50, r, 0.50);
	quantile(p99, sizeof p99, r, 0.99);
	quantile(max, sizeof max, r, 1.0);
	fprintf(f, "requests    %llu (%llu rejected)   service time p50 %s   p99 %s   max %s\n",
		(unsigned long long)r->requests, (unsigned long long)r->rejected, p50, p99, max);
}

static void print_arenas(FILE *f, const Shma__StatsReply *r)
{
	fprintf(f, "\n%-6s %10s %10s %10s %12s %10s\n", "arena", "size", "free", "in spans",
		"largest run", "resident");
	for (size_t i = 0; i < r->n_arenas; i++) {
		const Shma__ArenaStats *ar = r->arenas[i];
		char a[32], b[32], c[32], d[32], e[32];
		ctl_bytes(a, sizeof a, ar->size);
		ctl_bytes(b, sizeof b, ar->free_pages * PAGE_BYTES);
		ctl_bytes(c, sizeof c, ar->span_pages * PAGE_BYTES);
		ctl_bytes(d, sizeof d, ar->largest_free_run * PAGE_BYTES);
		ctl_bytes(e, sizeof e, ar->resident_bytes);
		fprintf(f, "%-6u %10s %10s %10s %12s %10s%s\n", ar->id, a, b, c, d, e,
			ar->quarantined ? "  QUARANTINED" : "");
	}
}

/* A class's internal fragmentation, or "-" while requested bytes are not
 * counted. */
static void class_waste(char *buf, size_t n, const Shma__ClassStats *k)
{
	uint64_t granted = k->objects_out * k->size;
	if (k->requested_bytes == 0 || granted == 0 || k->requested_bytes > granted)
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.1f%%", 100.0 * (1.0 - (double)k->requested_bytes /
							   (double)granted));
}

static void print_classes(FILE *f, const Shma__StatsReply *r)
{
	fprintf(f, "\n%-6s %9s %7s %12s %10s %7s %9s %9s %8s\n", "class", "size", "spans",
		"objects out", "of", "used", "refills", "flushed", "internal");
	for (size_t i = 0; i < r->n_classes; i++) {
		const Shma__ClassStats *k = r->classes[i];
		char sz[32], waste[16];
		double used = k->objects_total ? 100.0 * (double)k->objects_out /
							 (double)k->objects_total : 0;
		ctl_bytes(sz, sizeof sz, k->size);
		class_waste(waste, sizeof waste, k);
		fprintf(f, "%-6u %9s %7llu %12llu %10llu %6.1f%% %9llu %9llu %8s\n",
			k->size_class, sz, (unsigned long long)k->spans,
			(unsigned long long)k->objects_out, (unsigned long long)k->objects_total,
			used, (unsigned long long)k->refills, (unsigned long long)k->flushes,
			waste);
	}
}

void ctl_print_clients(FILE *f, const Shma__StatsReply *r)
{
	fprintf(f, "%-5s %8s %6s %-16s %10s %10s %9s %8s  %s\n", "id", "pid", "uid", "name",
		"held", "cached", "requests", "rejected", "connected since");
	for (size_t i = 0; i < r->n_clients; i++) {
		const Shma__ClientStats *c = r->clients[i];
		char held[32], cached[32], when[32];
		time_t t = (time_t)c->connected_since;
		struct tm tm;
		ctl_bytes(held, sizeof held, c->bytes_held);
		ctl_bytes(cached, sizeof cached, c->cached_bytes);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		fprintf(f, "%-5llu %8u %6u %-16.16s %10s %10s %9llu %8llu  %s\n",
			(unsigned long long)c->client_id, c->pid, c->uid, c->name ? c->name : "",
			held, cached, (unsigned long long)c->requests,
			(unsigned long long)c->rejected, when);
	}
}

void ctl_print_stats(FILE *f, const Shma__StatsReply *r, time_t now)
{
	print_header(f, r, now);
	print_memory(f, r);
	print_fragmentation(f, r);
	print_service(f, r);
	print_arenas(f, r);
	print_classes(f, r);
	fputc('\n', f);
	ctl_print_clients(f, r);
}
