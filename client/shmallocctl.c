/*
 * shmallocctl: what the heap is doing.  Talks to the daemon with the
 * library's own connection code (linked statically, not through the .so's
 * exported names).
 *
 * Exit codes: 0 ok, 1 the daemon answered with an error or is not there,
 * 2 a usage error.
 */
#include "config.h"

#include "client.h"
#include "shmalloc.h"
#include "stats_json.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
	"Usage: shmallocctl [--socket PATH] COMMAND [OPTIONS]\n"
	"Show what a shmallocd heap is doing.\n"
	"\n"
	"Commands:\n"
	"  ping                exit 0 when the daemon answers\n"
	"  stats [--json]      arenas, size classes, clients, large blocks\n"
	"  clients             connected clients\n"
	"  roots               published names and their refs\n"
	"\n"
	"  -s, --socket PATH   the daemon's socket (default: $SHMALLOC_SOCKET, else\n"
	"                      the daemon's default)\n"
	"  -h, --help          show this help\n"
	"  -V, --version       show the version\n";

static void human(char *buf, size_t n, uint64_t bytes)
{
	const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
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

static int fail(const char *what, int rc)
{
	fprintf(stderr, "shmallocctl: %s: %s\n", what, shma_strerror(rc));
	return 1;
}

static int connect_daemon(const char *path)
{
	int rc = shma_connect(path);
	if (rc != 0) {
		fail("cannot reach the daemon", rc);
		return -1;
	}
	return 0;
}

static void print_table(const Shma__StatsReply *r)
{
	char a[32], b[32], c[32], d[32], e[32];
	human(a, sizeof a, r->mapped_bytes);
	human(b, sizeof b, r->resident_bytes);
	human(c, sizeof c, r->in_use_bytes);
	human(d, sizeof d, r->peak_in_use_bytes);
	human(e, sizeof e, r->returned_bytes);
	printf("shmallocd pid %u, instance %s\n", r->pid, r->instance);
	printf("  mapped %s   resident %s   in use %s   peak %s   returned to OS %s\n", a, b,
	       c, d, e);
	human(a, sizeof a, r->large_bytes);
	printf("  large blocks %llu (%s)   roots %llu   requests %llu   rejected %llu\n",
	       (unsigned long long)r->large_count, a, (unsigned long long)r->roots,
	       (unsigned long long)r->requests, (unsigned long long)r->rejected);
	printf("  external fragmentation %.1f%%\n\n", r->external_fragmentation * 100);
	printf("%-6s %10s %10s %10s %12s %10s\n", "arena", "size", "free", "spans", "largest run",
	       "resident");
	for (size_t i = 0; i < r->n_arenas; i++) {
		const Shma__ArenaStats *ar = r->arenas[i];
		human(a, sizeof a, ar->size);
		human(b, sizeof b, ar->free_pages * 8192);
		human(c, sizeof c, ar->span_pages * 8192);
		human(d, sizeof d, ar->largest_free_run * 8192);
		human(e, sizeof e, ar->resident_bytes);
		printf("%-6u %10s %10s %10s %12s %10s\n", ar->id, a, b, c, d, e);
	}
	printf("\n%-6s %9s %7s %12s %12s %9s %9s\n", "class", "size", "spans", "objects out",
	       "objects", "refills", "flushes");
	for (size_t i = 0; i < r->n_classes; i++) {
		const Shma__ClassStats *k = r->classes[i];
		printf("%-6u %9llu %7llu %12llu %12llu %9llu %9llu\n", k->size_class,
		       (unsigned long long)k->size, (unsigned long long)k->spans,
		       (unsigned long long)k->objects_out, (unsigned long long)k->objects_total,
		       (unsigned long long)k->refills, (unsigned long long)k->flushes);
	}
}

static void print_clients(const Shma__StatsReply *r)
{
	printf("%-6s %8s %6s %-16s %12s %10s %9s %s\n", "id", "pid", "uid", "name", "held",
	       "requests", "rejected", "connected since");
	for (size_t i = 0; i < r->n_clients; i++) {
		const Shma__ClientStats *c = r->clients[i];
		char held[32], when[32];
		time_t t = (time_t)c->connected_since;
		struct tm tm;
		human(held, sizeof held, c->bytes_held);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		printf("%-6llu %8u %6u %-16s %12s %10llu %9llu %s\n",
		       (unsigned long long)c->client_id, c->pid, c->uid, c->name ? c->name : "",
		       held, (unsigned long long)c->requests, (unsigned long long)c->rejected,
		       when);
	}
}

static int cmd_stats(int json, int clients)
{
	Shma__Response *resp;
	conn_lock();
	int rc = stats_fetch(&resp);
	if (rc == 0) {
		if (json)
			stats_json_write(stdout, resp->stats);
		else if (clients)
			print_clients(resp->stats);
		else
			print_table(resp->stats);
	}
	if (resp)
		conn_done(resp);
	conn_unlock();
	return rc == 0 ? 0 : fail("stats", rc);
}

static int cmd_roots(void)
{
	Shma__Request req = SHMA__REQUEST__INIT;
	Shma__Roots roots = SHMA__ROOTS__INIT;
	req.body_case = SHMA__REQUEST__BODY_ROOTS;
	req.roots = &roots;
	Shma__Response *resp;
	conn_lock();
	int rc = conn_call(&req, &resp);
	if (rc == 0 && resp->body_case != SHMA__RESPONSE__BODY_ROOTS)
		rc = -EPROTO;
	if (rc == 0) {
		printf("%-40s %s\n", "name", "ref");
		for (size_t i = 0; i < resp->roots->n_roots; i++)
			printf("%-40s 0x%016llx\n", resp->roots->roots[i]->name,
			       (unsigned long long)resp->roots->roots[i]->ref);
	}
	if (resp)
		conn_done(resp);
	conn_unlock();
	return rc == 0 ? 0 : fail("roots", rc);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int json = 0, opt;
	while ((opt = getopt_long(argc, argv, "+s:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'j': json = 1; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'V': printf("shmallocctl %s\n", PACKAGE_VERSION); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *cmd = argv[optind++];
	while ((opt = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (opt == 'j')
			json = 1;
		else if (opt == 's')
			path = optarg;
		else
			return fputs(usage_text, stderr), 2;
	}
	if (strcmp(cmd, "ping") && strcmp(cmd, "stats") && strcmp(cmd, "clients") &&
	    strcmp(cmd, "roots")) {
		fprintf(stderr, "shmallocctl: unknown command '%s' (try --help)\n", cmd);
		return 2;
	}
	if (connect_daemon(path) != 0)
		return 1;
	int rc = 0;
	if (strcmp(cmd, "stats") == 0)
		rc = cmd_stats(json, 0);
	else if (strcmp(cmd, "clients") == 0)
		rc = cmd_stats(json, 1);
	else if (strcmp(cmd, "roots") == 0)
		rc = cmd_roots();
	else
		puts("ok");
	shma_disconnect();
	return rc;
}
