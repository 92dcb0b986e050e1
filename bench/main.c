/* SPDX-License-Identifier: MIT */
/*
 * The harness of every benchmark driver: runs the tests asked for, each
 * several times, and prints the medians as tab-separated lines.
 *
 * Every run is a forked child that sets up a fresh heap (be_setup), runs one
 * workload and sends its figures back through a pipe, so one run's leftovers
 * never flatter or burden the next and a crash costs one test, not the
 * driver.  The lines printed, for run-bench.sh to collect:
 *
 *   metric	METRIC	UNIT	LABEL
 *   result	ALLOC	METRIC	UNIT	MEDIAN	MIN	MAX	RUNS
 *   waits	ALLOC	TEST	FRACTION	(when the backend counts them)
 *   info	ALLOC	KEY	VALUE
 *   unavailable	ALLOC	TEST	REASON
 *
 * Usage: bench_ALLOC [--runs N] [--idle-runs N] [--scale F] [--idle-wait MS]
 *                    TEST...   (a b1 b2 b4 c d e; none = all)
 */
#include "config.h"

#include "bench.h"
#include "tests.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUNS_MAX 31

struct run_report {
	int rc;
	double out[TEST_METRICS_MAX];
	struct bench_counters counters;
	char why[200];
};

struct options {
	int runs;
	int idle_runs;
	struct test_params params;
};

int64_t bench_rss(void)
{
	long long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (f == NULL)
		return -errno;
	n = fscanf(f, "%lld %lld", &size, &resident);
	fclose(f);
	return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -EIO;
}

int64_t bench_shm_bytes(const char *prefix)
{
	DIR *d = opendir("/dev/shm");
	size_t plen = strlen(prefix);
	int64_t sum = 0;
	struct dirent *e;
	struct stat st;

	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, prefix, plen) == 0 &&
		    fstatat(dirfd(d), e->d_name, &st, 0) == 0)
			sum += (int64_t)st.st_blocks * 512;
	closedir(d);
	return sum;
}

/* In the child: one run of t, its report written to fd. */
static void run_child(const struct test *t, const struct test_params *p, int fd)
{
	struct run_report r = { 0 };

	r.rc = be_setup(r.why, sizeof r.why);
	if (r.rc == 0) {
		be_counters_begin();
		r.rc = t->run(t, p, r.out, r.why, sizeof r.why);
		be_counters_end(&r.counters);
		be_teardown();
	}
	if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(3);
	_exit(r.rc == 0 ? 0 : 1);
}

static int read_report(int fd, pid_t pid, struct run_report *r)
{
	ssize_t n = read(fd, r, sizeof *r);
	int st = 0;

	waitpid(pid, &st, 0);
	if (n == (ssize_t)sizeof *r)
		return r->rc == 0 ? 0 : -1;
	if (WIFSIGNALED(st))
		snprintf(r->why, sizeof r->why, "run killed by signal %d", WTERMSIG(st));
	else
		snprintf(r->why, sizeof r->why, "run exited %d without a report",
			 WEXITSTATUS(st));
	return -1;
}

static int run_once(const struct test *t, const struct test_params *p, struct run_report *r)
{
	int fd[2];
	pid_t pid;
	int rc;

	memset(r, 0, sizeof *r);
	if (pipe(fd) < 0)
		return snprintf(r->why, sizeof r->why, "pipe: %s", strerror(errno)), -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		snprintf(r->why, sizeof r->why, "fork: %s", strerror(errno));
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		close(fd[0]);
		run_child(t, p, fd[1]);
	}
	close(fd[1]);
	rc = read_report(fd[0], pid, r);
	close(fd[0]);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_metric(const struct test *t, int m, double *v, int n)
{
	double med = median(v, n);

	printf("result\t%s\t%s\t%s\t%.6g\t%.6g\t%.6g\t%d\n", be_name(), t->metric[m],
	       t->unit[m], med, v[0], v[n - 1], n);
}

static void print_waits(const struct test *t, const struct bench_counters *c)
{
	if (c->mallocs > 0)
		printf("waits\t%s\t%s\t%.6g\n", be_name(), t->id, c->waits / c->mallocs);
}

/* Runs t n times; prints its medians, or why it could not run. */
static int run_test(const struct test *t, const struct test_params *p, int n)
{
	double v[TEST_METRICS_MAX][RUNS_MAX];
	struct bench_counters total = { 0, 0 };
	struct run_report r;

	for (int m = 0; m < t->nmetrics; m++)
		printf("metric\t%s\t%s\t%s\n", t->metric[m], t->unit[m], t->label[m]);
	for (int i = 0; i < n; i++) {
		if (run_once(t, p, &r) < 0) {
			printf("unavailable\t%s\t%s\t%s\n", be_name(), t->id, r.why);
			return -1;
		}
		for (int m = 0; m < t->nmetrics; m++)
			v[m][i] = r.out[m];
		total.mallocs += r.counters.mallocs;
		total.waits += r.counters.waits;
	}
	for (int m = 0; m < t->nmetrics; m++)
		print_metric(t, m, v[m], n);
	print_waits(t, &total);
	return 0;
}

static void describe(void)
{
	char buf[1024] = "";
	char *line, *save = NULL;

	be_describe(buf, sizeof buf);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		printf("info\t%s\t%s\n", be_name(), line);
}

static long scaled(long n, double scale)
{
	long v = (long)((double)n * scale);

	return v > 0 ? v : 1;
}

static int clamp_runs(const char *s)
{
	int n = atoi(s);

	return n < 1 ? 1 : n > RUNS_MAX ? RUNS_MAX : n;
}

/* Parses the options; returns the index of the first test argument. */
static int parse(int argc, char **argv, struct options *o)
{
	double scale = 1.0;
	int i;

	o->runs = 5;
	o->idle_runs = 3;
	o->params.idle_wait_ms = 3000;
	for (i = 1; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--runs") == 0)
			o->runs = clamp_runs(argv[i + 1]);
		else if (strcmp(argv[i], "--idle-runs") == 0)
			o->idle_runs = clamp_runs(argv[i + 1]);
		else if (strcmp(argv[i], "--scale") == 0)
			scale = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--idle-wait") == 0)
			o->params.idle_wait_ms = atol(argv[i + 1]);
		else
			break;
	}
	o->params.batches = scaled(10000, scale);
	o->params.messages = scaled(1000000, scale);
	o->params.large_ops = scaled(2000, scale);
	o->params.churn_slots = 8192;
	o->params.churn_ops = scaled(100000, scale);
	return i;
}

int main(int argc, char **argv)
{
	struct options o;
	int first, failed = 0;

	if (argc == 3 && strcmp(argv[1], "--fm-child") == 0)
		return test_fm_child(argv[2]); /* exec'd by (fm) */
	first = parse(argc, argv, &o);

	if (first < argc && strncmp(argv[first], "--", 2) == 0) {
		fprintf(stderr, "usage: %s [--runs N] [--idle-runs N] [--scale F] "
			"[--idle-wait MS] [TEST...]\n", argv[0]);
		return 2;
	}
	for (int i = first; i < argc; i++) {
		if (test_find(argv[i]) == NULL) {
			fprintf(stderr, "%s: no test named %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	describe();
	for (const struct test *t = test_table; t->id; t++) {
		int wanted = first == argc;

		for (int i = first; i < argc; i++)
			wanted |= strcmp(argv[i], t->id) == 0;
		if (wanted)
			failed |= run_test(t, &o.params, t->idles ? o.idle_runs : o.runs);
	}
	return failed ? 1 : 0;
}
