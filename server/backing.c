/* SPDX-License-Identifier: MIT */
/*
 * The backing (see backing.h and shm/seg.h).
 *
 * memfd: the segments have no names; clients get their descriptors with
 * the Hello, and a restart finds them again only if someone kept them.
 * Under systemd that is the unit's file-descriptor store
 * (FileDescriptorStoreMax= in shmallocd.service): every memfd made is sent
 * there (FDSTORE=1, FDNAME= the segment's name), every one unlinked is
 * taken out (FDSTOREREMOVE=1), and the next start gets them back after the
 * sockets (LISTEN_FDNAMES), to recover the heap as from /dev/shm.  Without
 * a store (no libsystemd, no NOTIFY_SOCKET), a restart starts a new heap:
 * the old one dies with the last process that maps it.
 *
 * Huge pages: hugetlb (MFD_HUGETLB) needs the memfd backing, free hugetlb
 * pages for at least one arena, an arena size that is a multiple of the
 * huge page, and a kernel that zeroes the partial huge pages a hole punch
 * leaves (6.3): decay punches 8 KiB pages.  Else transparent huge pages,
 * where the shmem under the backing takes them at allocation: the daemon
 * reserves pages with fallocate, which no madvise reaches, so shmem_enabled
 * (memfd) or /dev/shm's huge= (shm) must be always, within_size or force.
 * Else none, said once in the log; stats say which (huge_pages).
 */
#include "config.h"

#include "backing.h"
#include "daemon.h"
#include "heap.h"
#include "log.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

static struct {
	unsigned huge;   /* HEAP_HUGE_* */
	unsigned stored; /* descriptors of ours the service manager passed */
} bk;

unsigned backing_huge_mode(void)
{
	return bk.huge;
}

unsigned backing_stored_fds(void)
{
	return bk.stored;
}

unsigned backing_hello_fds(const struct daemon *d, int ctl_fd, int area_fd,
			   int pass[BACKING_HELLO_FDS])
{
	int pages, meta;
	heap_segment_fds(d->heap, &pages, &meta);
	pass[0] = ctl_fd;
	if (pages < 0 || meta < 0)
		return 1; /* and no area: its place is the fourth */
	pass[1] = pages;
	pass[2] = meta;
	if (area_fd < 0)
		return 3;
	pass[3] = area_fd;
	return 4;
}

void backing_heap_opened(struct daemon *d)
{
	int pages, meta;
	heap_segment_fds(d->heap, &pages, &meta);
	int hsize = pages >= 0 ? seg_huge_page_size(pages) : 0;
	if (hsize > 0)
		snprintf(d->opt.huge_got, sizeof d->opt.huge_got, "hugetlb %dK", hsize >> 10);
	else if (bk.huge == HEAP_HUGE_TLB)
		snprintf(d->opt.huge_got, sizeof d->opt.huge_got, "none");
	if (bk.huge == HEAP_HUGE_TLB && hsize <= 0)
		log_msg(SLOG_WARN, "--huge-pages: the heap recovered has ordinary pages (made so "
			"by an earlier run); they stay so until --discard");
}

/* ---- huge pages ---- */

/* A number from /proc/meminfo's line key ("HugePages_Free:"), or 0. */
static unsigned long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (f == NULL)
		return 0;
	char line[128];
	unsigned long v = 0;
	size_t n = strlen(key);
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, key, n) == 0) {
			v = strtoul(line + n, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* 1 if the kernel is at least major.minor. */
static int kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname u;
	unsigned a = 0, b = 0;
	if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &a, &b) != 2)
		return 0;
	return a > major || (a == major && b >= minor);
}

/* The bracketed word of shmem_enabled ("[never]"), into out. */
static void shmem_enabled(char *out, size_t size)
{
	snprintf(out, size, "unknown");
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	if (f == NULL)
		return;
	char line[256];
	if (fgets(line, sizeof line, f) != NULL) {
		char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
		if (b != NULL) {
			*b = '\0';
			snprintf(out, size, "%s", a + 1);
		}
	}
	fclose(f);
}

/* The huge= option of the tmpfs on dir ("never" when none is set). */
static void mount_huge(const char *dir, char *out, size_t size)
{
	snprintf(out, size, "never");
	FILE *f = setmntent("/proc/self/mounts", "r");
	if (f == NULL)
		return;
	struct mntent *m;
	while ((m = getmntent(f)) != NULL) {
		if (strcmp(m->mnt_dir, dir) != 0)
			continue;
		const char *h = hasmntopt(m, "huge");
		snprintf(out, size, "never");
		if (h != NULL && h[4] == '=')
			snprintf(out, size, "%.*s", (int)strcspn(h + 5, ","), h + 5);
	}
	endmntent(f);
}

static int thp_takes(const char *mode)
{
	return strcmp(mode, "always") == 0 || strcmp(mode, "within_size") == 0 ||
	       strcmp(mode, "force") == 0;
}

/* What --huge-pages gets here: a HEAP_HUGE_*, its words in o->huge_got, and
 * why not in why when none. */
static unsigned decide_huge(struct options *o, char *why, size_t size)
{
	unsigned long hsize = meminfo("Hugepagesize:") << 10;
	unsigned long hfree = meminfo("HugePages_Free:");
	char mode[32];
	if (o->backing == SEG_BACKING_MEMFD && hsize != 0 && hfree * hsize >= o->arena_size &&
	    o->arena_size % hsize == 0 && kernel_at_least(6, 3)) {
		snprintf(o->huge_got, sizeof o->huge_got, "hugetlb %luK", hsize >> 10);
		return HEAP_HUGE_TLB;
	}
	if (o->backing == SEG_BACKING_FILE) {
		snprintf(why, size, "a file backing has no huge pages");
	} else {
		if (o->backing == SEG_BACKING_MEMFD)
			shmem_enabled(mode, sizeof mode);
		else
			mount_huge("/dev/shm", mode, sizeof mode);
		if (thp_takes(mode)) {
			snprintf(o->huge_got, sizeof o->huge_got, "thp (%s)", mode);
			return HEAP_HUGE_THP;
		}
		snprintf(why, size, "%lu free hugetlb pages of %lu KiB (an arena needs %llu%s), "
			 "and %s is '%s' (always, within_size or force would do)", hfree,
			 hsize >> 10, hsize ? (unsigned long long)(o->arena_size / hsize) : 0ull,
			 o->backing == SEG_BACKING_MEMFD ? "" : ", with --backing memfd",
			 o->backing == SEG_BACKING_MEMFD
				 ? "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
				 : "/dev/shm's huge=", mode);
	}
	snprintf(o->huge_got, sizeof o->huge_got, "none");
	return HEAP_HUGE_NONE;
}

/* ---- systemd's file-descriptor store ---- */

#ifdef HAVE_LIBSYSTEMD
static void store_added(const char *name, int fd)
{
	char msg[SEG_NAME_MAX + 32];
	snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s", name + 1);
	int rc = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	static int said;
	if (rc <= 0 && !said) {
		said = 1;
		log_msg(SLOG_WARN, "memfd backing: the service manager did not take segment %s "
			"into its file-descriptor store (%s): a restart will lose the heap "
			"(FileDescriptorStoreMax= in the unit)", name, rc < 0 ? strerror(-rc) : "no store");
	}
}

static void store_removed(const char *name)
{
	sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", name + 1);
}

/* The descriptors an earlier run stored, passed back after the sockets. */
static void take_stored(const struct options *o)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(0, &names);
	for (int i = 0; i < n && names != NULL; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (names[i] == NULL || strncmp(names[i], "shmalloc.", 9) != 0)
			continue;
		bk.stored++;
		char name[SEG_NAME_MAX];
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (o->backing != SEG_BACKING_MEMFD ||
		    snprintf(name, sizeof name, "/%s", names[i]) >= (int)sizeof name ||
		    seg_store_put(name, fd) != 0) {
			close(fd);
			sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", names[i]);
		}
	}
	for (int i = 0; i < n && names != NULL; i++)
		free(names[i]);
	free(names);
	if (bk.stored > 0)
		log_msg(SLOG_INFO, "the service manager kept %u segments for us", bk.stored);
}
#endif

int backing_setup(struct options *o)
{
	int rc = seg_set_backing((enum seg_backing)o->backing, o->backing_dir);
	if (rc < 0) {
		log_msg(SLOG_ERROR, "--backing file:%s: %s", o->backing_dir,
			rc == -EPERM ? "not a directory of ours" : strerror(-rc));
		return -1;
	}
#ifdef HAVE_LIBSYSTEMD
	take_stored(o);
	if (o->backing == SEG_BACKING_MEMFD && getenv("NOTIFY_SOCKET") != NULL)
		seg_set_store_hooks(store_added, store_removed);
#endif
	char why[512] = "";
	bk.huge = HEAP_HUGE_NONE;
	snprintf(o->huge_got, sizeof o->huge_got, "off");
	if (o->huge_pages) {
		bk.huge = decide_huge(o, why, sizeof why);
		if (bk.huge == HEAP_HUGE_NONE)
			log_msg(SLOG_WARN, "--huge-pages: none to be had here (%s); the heap has "
				"ordinary pages", why);
		else
			log_msg(SLOG_INFO, "--huge-pages: the heap's pages are %s", o->huge_got);
	}
	return 0;
}
