/* SPDX-License-Identifier: MIT */
/*
 * The daemon's options table (server/options.c) and what is written about
 * it: the defaults each option gives through its own parser, a config file
 * and the command line through the same parsers, and the documentation held
 * against the table -- every option of the table is described under OPTIONS
 * in doc/shmallocd.8 with the value it takes, every option described there
 * is in the table, every option README.md's "Running the daemon" names
 * exists, and every per-uid limit is named there.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "seg.h"

static enum options_result parse(struct options *o, int argc, char **argv)
{
	FILE *null = fopen("/dev/null", "w");
	ck_assert_ptr_nonnull(null);
	enum options_result r = options_parse(o, argc, argv, null, null);
	fclose(null);
	return r;
}

static const struct options_def *find(const char *name)
{
	size_t n;
	const struct options_def *t = options_table(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

/* Planted bug: a default dropped from (or mistyped in) the table. */
START_TEST(defaults_come_from_the_table)
{
	struct options o;
	char *argv[] = {(char *)"shmallocd", NULL};
	ck_assert_int_eq(parse(&o, 1, argv), OPTIONS_RUN);
	ck_assert_uint_eq(o.arena_size, 64u << 20);
	ck_assert_uint_eq(o.large_threshold, 128u << 10);
	ck_assert_uint_eq(o.decay_ms, 10000);
	ck_assert_uint_eq(o.max_frame, 1u << 20);
	ck_assert_uint_eq(o.handshake_timeout_ms, 10000);
	ck_assert_uint_eq(o.write_timeout_ms, 60000);
	ck_assert_uint_eq(o.uid_max.connections, 2048);
	ck_assert_uint_eq(o.uid_max.orphans, 1024);
	ck_assert_uint_eq(o.uid_max.roots, 1024);
	ck_assert_uint_eq(o.uid_max.large, 4096);
	ck_assert_uint_eq(o.socket_mode, 0600);
	ck_assert_uint_eq(o.segment_mode, 0600);
	ck_assert_int_eq(o.log_level, SLOG_INFO);
	ck_assert_uint_eq(o.max_memory, 0);
	ck_assert_uint_eq(o.nallow_uid, 1);
	ck_assert_uint_eq(o.allow_uid[0], getuid());
	ck_assert_int_eq(o.daemonize | o.cleanup | o.discard, 0);
}
END_TEST

/* Planted bug: a table line pointing at the wrong field. */
START_TEST(config_file_then_command_line)
{
	char path[] = "/tmp/shma-options-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs("# a comment\n\nuid-max-roots = 7\nuid-max-large 9\ncleanup\ndecay = 2.5\n", f);
	fclose(f);
	struct options o;
	char *argv[] = {(char *)"shmallocd", (char *)"--uid-max-large", (char *)"11",
			(char *)"-c", path, (char *)"-d", NULL};
	ck_assert_int_eq(parse(&o, 6, argv), OPTIONS_RUN);
	ck_assert_uint_eq(o.uid_max.roots, 7);
	ck_assert_uint_eq(o.uid_max.large, 11); /* the command line wins */
	ck_assert_uint_eq(o.uid_max.connections, 2048);
	ck_assert_int_eq(o.cleanup, 1);
	ck_assert_int_eq(o.daemonize, 1);
	ck_assert_uint_eq(o.decay_ms, 2500);
	/* --help is no option of a config file; a bad value fails the parse. */
	f = fopen(path, "w");
	fputs("help\n", f);
	fclose(f);
	ck_assert_int_eq(parse(&o, 6, argv), OPTIONS_ERROR);
	char *bad[] = {(char *)"shmallocd", (char *)"--uid-max-roots", (char *)"-1", NULL};
	ck_assert_int_eq(parse(&o, 3, bad), OPTIONS_ERROR);
	char *missing[] = {(char *)"shmallocd", (char *)"--socket", NULL};
	ck_assert_int_eq(parse(&o, 2, missing), OPTIONS_ERROR);
	unlink(path);
}
END_TEST

static char *slurp(const char *rel)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", SRCDIR, rel);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	static char buf[1 << 17];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	ck_assert_uint_lt(n, sizeof buf - 1);
	buf[n] = '\0';
	return buf;
}

/* The "--name" options a man page line names ("\-\-arena\-size"), each
 * handed to fn with the line. */
static void man_options(const char *line, void (*fn)(const char *name, const char *line))
{
	for (const char *p = strstr(line, "\\-\\-"); p != NULL; p = strstr(p, "\\-\\-")) {
		char name[64];
		size_t k = 0;
		for (p += 4; k + 1 < sizeof name; p++) {
			if (p[0] == '\\' && p[1] == '-')
				name[k++] = '-', p++;
			else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
				name[k++] = *p;
			else
				break;
		}
		name[k] = '\0';
		fn(name, line);
	}
}

static unsigned described;

static void described_one(const char *name, const char *line)
{
	const struct options_def *def = find(name);
	ck_assert_msg(def != NULL, "shmallocd(8) describes --%s, which is no option", name);
	if (def->arg != NULL)
		ck_assert_msg(strstr(line, def->arg) != NULL,
			      "shmallocd(8): --%s takes %s, the page says: %s", name, def->arg, line);
	described++;
}

/* Planted bug: an option added to the table and not to the man page, or
 * one the page still describes after it left the table. */
START_TEST(man_page_matches_the_table)
{
	char *page = slurp("doc/shmallocd.8");
	char *s = strstr(page, "\n.SH OPTIONS\n");
	ck_assert_ptr_nonnull(s);
	char *end = strstr(s + 1, "\n.SH ");
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	size_t n;
	const struct options_def *t = options_table(&n);
	/* Each item: ".TP", then the line naming the option and its value. */
	described = 0;
	for (char *tp = strstr(s, "\n.TP\n"); tp != NULL; tp = strstr(tp + 1, "\n.TP\n")) {
		char *line = tp + 5, *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		man_options(line, described_one);
		*nl = '\n';
	}
	for (size_t i = 0; i < n; i++) {
		char item[128], *q = item;
		for (const char *p = t[i].name; *p && q < item + sizeof item - 3; p++) {
			if (*p == '-')
				*q++ = '\\';
			*q++ = *p;
		}
		*q = '\0';
		char needle[160];
		snprintf(needle, sizeof needle, "\\-\\-%s", item);
		ck_assert_msg(strstr(s, needle) != NULL,
			      "--%s is in the table, not under OPTIONS in shmallocd(8)", t[i].name);
	}
	ck_assert_uint_eq(described, n);
}
END_TEST

/* Planted bug: README naming an option the daemon does not have, or a new
 * per-uid limit left out of its paragraph on limits. */
START_TEST(readme_matches_the_table)
{
	char *readme = slurp("README.md");
	char *s = strstr(readme, "\n## Running the daemon\n");
	ck_assert_ptr_nonnull(s);
	char *end = strstr(s + 1, "\n#");
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	unsigned named = 0;
	for (char *p = strstr(s, "--"); p != NULL; p = strstr(p + 2, "--")) {
		if (p[2] < 'a' || p[2] > 'z')
			continue; /* " -- " in a sentence */
		char name[64];
		size_t k = 0;
		for (const char *q = p + 2; k + 1 < sizeof name &&
		     ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-'); q++)
			name[k++] = *q;
		name[k] = '\0';
		ck_assert_msg(find(name) != NULL, "README.md names --%s, which is no option", name);
		named++;
	}
	ck_assert_uint_gt(named, 0);
	size_t n;
	const struct options_def *t = options_table(&n);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(t[i].name, "uid-max-", 8) != 0)
			continue;
		char needle[80];
		snprintf(needle, sizeof needle, "`--%s`", t[i].name);
		ck_assert_msg(strstr(s, needle) != NULL, "README.md does not name the limit --%s",
			      t[i].name);
	}
}
END_TEST

/* Planted bug: --backing's value lost between the config file and the
 * options (the default, shm, taken instead), or --huge-pages not set. */
START_TEST(backing_and_huge_pages_from_config_and_command_line)
{
	char path[] = "/tmp/shma-options-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	fputs("backing = file:/var/lib/shmalloc/heap\nhuge-pages\n", f);
	fclose(f);
	struct options o;
	char *argv[] = {(char *)"shmallocd", (char *)"-c", path, NULL};
	ck_assert_int_eq(parse(&o, 3, argv), OPTIONS_RUN);
	ck_assert_int_eq(o.backing, SEG_BACKING_FILE);
	ck_assert_str_eq(o.backing_dir, "/var/lib/shmalloc/heap");
	ck_assert_str_eq(o.backing_name, "file:/var/lib/shmalloc/heap");
	ck_assert_int_eq(o.huge_pages, 1);
	char *memfd[] = {(char *)"shmallocd", (char *)"-c", path, (char *)"--backing",
			 (char *)"memfd", NULL};
	ck_assert_int_eq(parse(&o, 5, memfd), OPTIONS_RUN);
	ck_assert_int_eq(o.backing, SEG_BACKING_MEMFD);
	ck_assert_str_eq(o.backing_dir, "");
	char *plain[] = {(char *)"shmallocd", NULL};
	ck_assert_int_eq(parse(&o, 1, plain), OPTIONS_RUN);
	ck_assert_int_eq(o.backing, SEG_BACKING_SHM);
	ck_assert_str_eq(o.backing_name, "shm");
	ck_assert_int_eq(o.huge_pages, 0);
	unlink(path);
}
END_TEST

Suite *make_options_suite(void);
Suite *make_options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("options");
	tcase_add_test(tc, defaults_come_from_the_table);
	tcase_add_test(tc, config_file_then_command_line);
	tcase_add_test(tc, man_page_matches_the_table);
	tcase_add_test(tc, readme_matches_the_table);
	tcase_add_test(tc, backing_and_huge_pages_from_config_and_command_line);
	suite_add_tcase(s, tc);
	return s;
}
