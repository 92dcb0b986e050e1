/* SPDX-License-Identifier: MIT */
/*
 * Segments: see seg.h.  This is the only file of shm/ that makes system calls.
 *
 * Three backings sit behind the same names (seg_set_backing()): POSIX shm
 * (files in /dev/shm), files in a directory of a real filesystem (the same
 * calls relative to that directory), and memfds, which have no name anyone
 * can open: the daemon keeps each one's descriptor in a table here (the
 * memfd table), under the name it would have had, so that everything above
 * -- adopt, list, unlink -- reads the same whatever the backing.  The table
 * lives in mmap'd memory (the library never calls malloc) and is used by
 * the daemon alone.
 */
#include "seg.h"
#include "layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#define HUGETLBFS_MAGIC_NUMBER 0x958458f6

/* ---- the backing: where segments live ---- */

static struct {
	enum seg_backing kind;
	char dir[PATH_MAX];  /* SHM: /dev/shm; FILE: the directory */
	int dirfd;           /* FILE: the directory, held open */
	void (*added)(const char *name, int fd);
	void (*removed)(const char *name);
} backing = {.kind = SEG_BACKING_SHM, .dir = "/dev/shm", .dirfd = -1};

/* The memfd table: name -> descriptor, for SEG_BACKING_MEMFD. */
struct memfd_entry {
	char name[SEG_NAME_MAX];
	int fd;
};

static struct {
	struct memfd_entry *e;
	size_t n, cap; /* cap entries fit in the mapping */
} memfds;

int seg_set_backing(enum seg_backing kind, const char *dir)
{
	if (kind == SEG_BACKING_FILE) {
		if (dir == NULL || dir[0] != '/' || strlen(dir) >= sizeof backing.dir)
			return -EINVAL;
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return -errno;
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		struct stat st;
		if (fstat(fd, &st) != 0 || st.st_uid != geteuid()) {
			close(fd);
			return -EPERM;
		}
		if (backing.dirfd >= 0)
			close(backing.dirfd);
		backing.dirfd = fd;
		strcpy(backing.dir, dir);
	} else if (kind == SEG_BACKING_SHM) {
		strcpy(backing.dir, "/dev/shm");
	}
	backing.kind = kind;
	return 0;
}

enum seg_backing seg_backing(void)
{
	return backing.kind;
}

const char *seg_backing_dir(void)
{
	return backing.dir;
}

void seg_set_store_hooks(void (*added)(const char *name, int fd), void (*removed)(const char *name))
{
	backing.added = added;
	backing.removed = removed;
}

static struct memfd_entry *memfd_find(const char *name)
{
	for (size_t i = 0; i < memfds.n; i++)
		if (strcmp(memfds.e[i].name, name) == 0)
			return &memfds.e[i];
	return NULL;
}

/* Keeps fd (ours from now on) under name in the table. */
static int memfd_add(const char *name, int fd)
{
	if (strlen(name) >= SEG_NAME_MAX)
		return -ENAMETOOLONG;
	if (memfds.n == memfds.cap) {
		size_t cap = memfds.cap ? memfds.cap * 2 : 64;
		void *p = memfds.e == NULL
				  ? mmap(NULL, cap * sizeof *memfds.e, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
				  : mremap(memfds.e, memfds.cap * sizeof *memfds.e,
					   cap * sizeof *memfds.e, MREMAP_MAYMOVE);
		if (p == MAP_FAILED)
			return -ENOMEM;
		memfds.e = p;
		memfds.cap = cap;
	}
	struct memfd_entry *e = &memfds.e[memfds.n++];
	strcpy(e->name, name);
	e->fd = fd;
	return 0;
}

static void memfd_remove(struct memfd_entry *e)
{
	close(e->fd);
	if (backing.removed != NULL)
		backing.removed(e->name);
	*e = memfds.e[--memfds.n];
}

int seg_store_put(const char *name, int fd)
{
	struct memfd_entry *e = memfd_find(name);
	if (e != NULL) {
		close(fd);
		return -EEXIST;
	}
	return memfd_add(name, fd);
}

int seg_reopen_ro(int fd)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (ro < 0 && errno == ELOOP)
		ro = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	return ro < 0 ? -errno : ro;
}

/* Opens name in the backing's directory (SHM, FILE). */
static int dir_open(const char *name, int flags, mode_t mode)
{
	if (backing.kind == SEG_BACKING_FILE)
		return openat(backing.dirfd, name + 1, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	return shm_open(name, flags, mode);
}

int seg_name(char *buf, size_t size, const char *instance, enum seg_kind kind, uint64_t id)
{
	int n;
	if (kind == SEG_MANIFEST || kind == SEG_META || kind == SEG_PAGES)
		n = snprintf(buf, size, "/shmalloc.%s.%c", instance, kind);
	else
		n = snprintf(buf, size, "/shmalloc.%s.%c%llu", instance, kind,
			     (unsigned long long)id);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

int seg_instance_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= SHMA_INSTANCE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void seg_instance_from_path(const char *socket_path, char *out, size_t size)
{
	char abs[PATH_MAX];
	const char *p = socket_path;
	/* The socket may not exist yet; its directory does once the daemon runs,
	 * but hashing the path as given, made absolute, is stable either way. */
	if (socket_path[0] != '/' && getcwd(abs, sizeof abs) != NULL &&
	    strlen(abs) + 1 + strlen(socket_path) < sizeof abs) {
		strcat(abs, "/");
		strcat(abs, socket_path);
		p = abs;
	}
	uint64_t h = UINT64_C(14695981039346656037);
	for (; *p; p++) {
		h ^= (uint8_t)*p;
		h *= UINT64_C(1099511628211);
	}
	snprintf(out, size, "%016llx", (unsigned long long)h);
}

int seg_default_socket(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, size, "%s/shmalloc/shmallocd.sock", xdg);
	else
		n = snprintf(buf, size, "/tmp/shmalloc-%lu/shmallocd.sock",
			     (unsigned long)getuid());
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* The group of every segment created, or -1 for the creator's own. */
static gid_t segment_group = (gid_t)-1;

void seg_set_group(gid_t gid)
{
	segment_group = gid;
}

/* A new memfd under name, sealed at size: nobody who holds it -- a client
 * given it with the Hello -- can shrink it under the others or grow it. */
static int memfd_create_sealed(const char *name, uint64_t size, mode_t mode, unsigned flags)
{
	if (memfd_find(name) != NULL)
		return -EEXIST;
	unsigned mfd = MFD_CLOEXEC | MFD_ALLOW_SEALING | (flags & SEG_HUGETLB ? MFD_HUGETLB : 0);
	int fd = memfd_create(name + 1, mfd);
	if (fd < 0)
		return -errno;
	int keep = -1;
	if ((segment_group != (gid_t)-1 && fchown(fd, (uid_t)-1, segment_group) != 0) ||
	    fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)size) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0 ||
	    (keep = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int rc = memfd_add(name, keep);
	if (rc < 0) {
		close(keep);
		close(fd);
		return rc;
	}
	if (backing.added != NULL)
		backing.added(name, keep);
	return fd;
}

int seg_create_flags(const char *name, uint64_t size, mode_t mode, unsigned flags)
{
	if (backing.kind == SEG_BACKING_MEMFD)
		return memfd_create_sealed(name, size, mode, flags);
	int fd = dir_open(name, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == EEXIST || errno == ELOOP ? -EEXIST : -errno;
	/* shm_open honours the umask; the mode we were given is the contract.
	 * The group first: a change of group may clear mode bits. */
	if ((segment_group != (gid_t)-1 && fchown(fd, (uid_t)-1, segment_group) != 0) ||
	    fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)size) != 0) {
		int e = errno;
		close(fd);
		seg_unlink(name);
		return -e;
	}
	return fd;
}

int seg_create(const char *name, uint64_t size, mode_t mode)
{
	return seg_create_flags(name, size, mode, 0);
}

int seg_open(const char *name, int writable)
{
	if (backing.kind == SEG_BACKING_MEMFD) {
		struct memfd_entry *e = memfd_find(name);
		if (e == NULL)
			return -ENOENT;
		if (!writable)
			return seg_reopen_ro(e->fd);
		int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	/* O_NONBLOCK: a FIFO someone put under the name must not hang us. */
	int fd = dir_open(name, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK |
				       O_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

/* Why st is not a segment of ours with mode, or NULL. */
static const char *not_ours(const struct stat *st, mode_t mode)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_uid != geteuid())
		return "another user's";
	if ((st->st_mode & 07777) != (mode & 07777))
		return "not of the configured mode";
	if (segment_group != (gid_t)-1 && st->st_gid != segment_group)
		return "not of the configured group";
	return NULL;
}

int seg_adopt(const char *name, mode_t mode, const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	*why = NULL;
	int fd;
	if (backing.kind == SEG_BACKING_MEMFD) {
		struct memfd_entry *e = memfd_find(name);
		fd = e != NULL ? fcntl(e->fd, F_DUPFD_CLOEXEC, 3) : -1;
		if (e == NULL)
			errno = ENOENT;
	} else {
		fd = dir_open(name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		*why = errno == ELOOP ? "a symlink" : "cannot be opened";
		return -EPERM;
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		*why = "cannot be examined";
	else
		*why = not_ours(&st, mode);
	if (*why != NULL) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

int seg_foreign(const char *name, mode_t mode)
{
	struct stat st;
	char path[PATH_MAX + SEG_NAME_MAX];
	if (backing.kind == SEG_BACKING_MEMFD)
		return 0; /* nobody else puts a memfd in our table */
	snprintf(path, sizeof path, "%s%s", backing.dir, name);
	if (lstat(path, &st) != 0)
		return 0;
	return not_ours(&st, mode) != NULL;
}

int seg_drop_stillborn(const char *name)
{
	if (backing.kind == SEG_BACKING_MEMFD)
		return 0;
	int fd = dir_open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct stat st;
	int stillborn = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
			st.st_size == 0;
	close(fd);
	return stillborn && seg_unlink(name) == 0;
}

int seg_unlink(const char *name)
{
	if (backing.kind == SEG_BACKING_MEMFD) {
		struct memfd_entry *e = memfd_find(name);
		if (e == NULL)
			return -ENOENT;
		memfd_remove(e);
		return 0;
	}
	if (backing.kind == SEG_BACKING_FILE)
		return unlinkat(backing.dirfd, name + 1, 0) == 0 ? 0 : -errno;
	return shm_unlink(name) == 0 ? 0 : -errno;
}

/* "shmalloc.<instance>." into prefix[SEG_NAME_MAX], the start of every
 * segment name of the instance: its length, or -ENAMETOOLONG. */
static int instance_prefix(char *prefix, const char *instance)
{
	int n = snprintf(prefix, SEG_NAME_MAX, "shmalloc.%s.", instance);
	return n < 0 || n >= SEG_NAME_MAX ? -ENAMETOOLONG : n;
}

int seg_instance_segments(const char *instance, int remove)
{
	char prefix[SEG_NAME_MAX];
	int n = instance_prefix(prefix, instance);
	if (n < 0)
		return n;
	if (backing.kind == SEG_BACKING_MEMFD) {
		int count = 0;
		for (size_t i = memfds.n; i-- > 0;) {
			if (strncmp(memfds.e[i].name + 1, prefix, (size_t)n) != 0)
				continue;
			if (remove)
				memfd_remove(&memfds.e[i]);
			count++;
		}
		return count;
	}
	DIR *dir = opendir(backing.dir);
	if (dir == NULL)
		return -errno;
	int count = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, prefix, (size_t)n) != 0)
			continue;
		if (!remove) {
			count++;
			continue;
		}
		/* Only our own: another user's file is his to remove. */
		struct stat st;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    st.st_uid != geteuid())
			continue;
		if (unlinkat(dirfd(dir), e->d_name, 0) == 0)
			count++;
	}
	closedir(dir);
	return count;
}

mode_t seg_kind_mode(enum seg_kind kind, mode_t mode)
{
	if (kind == SEG_META || kind == SEG_MANIFEST || kind == SEG_HEAPS)
		return mode & ~(mode_t)(S_IWGRP | S_IWOTH);
	if (kind == SEG_CONTROL)
		return 0600;
	return mode;
}

int seg_instance_census(const char *instance, mode_t mode, const char *skip, unsigned *own,
			unsigned *foreign)
{
	char prefix[SEG_NAME_MAX];
	int n = instance_prefix(prefix, instance);
	if (n < 0)
		return n;
	*own = *foreign = 0;
	if (backing.kind == SEG_BACKING_MEMFD) {
		for (size_t i = 0; i < memfds.n; i++) {
			const char *nm = memfds.e[i].name + 1;
			struct stat st;
			if (strncmp(nm, prefix, (size_t)n) != 0 || nm[n] == '\0' ||
			    strchr(skip, nm[n]) != NULL || fstat(memfds.e[i].fd, &st) != 0)
				continue;
			if (not_ours(&st, seg_kind_mode((enum seg_kind)nm[n], mode)) == NULL)
				(*own)++;
			else
				(*foreign)++;
		}
		return 0;
	}
	DIR *dir = opendir(backing.dir);
	if (dir == NULL)
		return -errno;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, prefix, (size_t)n) != 0 || e->d_name[n] == '\0' ||
		    strchr(skip, e->d_name[n]) != NULL)
			continue;
		struct stat st;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (not_ours(&st, seg_kind_mode((enum seg_kind)e->d_name[n], mode)) == NULL)
			(*own)++;
		else
			(*foreign)++;
	}
	closedir(dir);
	return 0;
}

/* The id of a name "<prefix><kind><digits>", or -1. */
static int64_t parse_id(const char *name, const char *prefix, size_t n, enum seg_kind kind)
{
	if (strncmp(name, prefix, n) != 0 || name[n] != (char)kind || name[n + 1] == '\0')
		return -1;
	uint64_t id = 0;
	for (const char *p = name + n + 1; *p; p++) {
		if (*p < '0' || *p > '9' || id > (UINT64_C(1) << 40))
			return -1;
		id = id * 10 + (uint64_t)(*p - '0');
	}
	return (int64_t)id;
}

int seg_instance_list(const char *instance, enum seg_kind kind,
		      int (*fn)(void *arg, uint64_t id), void *arg)
{
	char prefix[SEG_NAME_MAX];
	int n = instance_prefix(prefix, instance);
	if (n < 0)
		return n;
	if (backing.kind == SEG_BACKING_MEMFD) {
		/* fn may add or remove entries: walk a copy of the ids. */
		int count = 0, rc = 0;
		size_t total = memfds.n;
		for (size_t i = 0; rc >= 0 && i < total && i < memfds.n; i++) {
			int64_t id = parse_id(memfds.e[i].name + 1, prefix, (size_t)n, kind);
			if (id < 0)
				continue;
			size_t before = memfds.n;
			rc = fn(arg, (uint64_t)id);
			count++;
			if (memfds.n < before)
				i--; /* this entry was removed: another took its place */
		}
		return rc < 0 ? rc : count;
	}
	DIR *dir = opendir(backing.dir);
	if (dir == NULL)
		return -errno;
	int count = 0, rc = 0;
	struct dirent *e;
	while (rc >= 0 && (e = readdir(dir)) != NULL) {
		int64_t id = parse_id(e->d_name, prefix, (size_t)n, kind);
		if (id < 0)
			continue;
		rc = fn(arg, (uint64_t)id);
		count++;
	}
	closedir(dir);
	return rc < 0 ? rc : count;
}

int seg_lock(int fd)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	return errno == EWOULDBLOCK ? -EBUSY : -errno;
}

int seg_resize(int fd, uint64_t size)
{
	return ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

int64_t seg_size(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (int64_t)st.st_size : -errno;
}

int64_t seg_resident(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (int64_t)st.st_blocks * 512 : -errno;
}

int seg_reserve(int fd, uint64_t off, uint64_t len)
{
	int rc = posix_fallocate(fd, (off_t)off, (off_t)len);
	if (rc == 0)
		return 0;
	return rc == ENOSPC || rc == EFBIG ? -ENOMEM : -rc;
}

int seg_sync(int fd)
{
	if (backing.kind != SEG_BACKING_FILE)
		return 0;
	return fsync(fd) == 0 ? 0 : -errno;
}

int seg_huge_page_size(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) != 0)
		return -errno;
	return (unsigned long)sf.f_type == HUGETLBFS_MAGIC_NUMBER ? (int)sf.f_bsize : 0;
}

int seg_punch(int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) != 0)
		return -errno;
	return 0;
}

void *seg_map(int fd, uint64_t off, size_t len, int writable, void *addr)
{
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	int flags = MAP_SHARED | (addr ? MAP_FIXED : 0);
	void *p = mmap(addr, len, prot, flags, fd, (off_t)off);
	return p == MAP_FAILED ? NULL : p;
}

void *seg_map_at(int fd, size_t len, int writable, void *addr)
{
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *p = mmap(addr, len, prot, MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (p != addr) {
		/* A kernel before 4.17 takes the flag for a hint. */
		munmap(p, len);
		errno = EEXIST;
		return NULL;
	}
	return p;
}

void *seg_map_sparse(int fd, size_t len, int writable, size_t align)
{
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	/* A hugetlb segment maps only at an address of its page size. */
	int huge = seg_huge_page_size(fd);
	if (huge > 0 && (size_t)huge > align)
		align = (size_t)huge;
	if (align <= 4096) {
		/* mmap aligns to the page: no reservation to trim first. */
		void *p = mmap(NULL, len, prot, MAP_SHARED | MAP_NORESERVE, fd, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	char *at = seg_reserve_va(len, align);
	if (at == NULL)
		return NULL;
	void *p = mmap(at, len, prot, MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		munmap(at, len);
		errno = e;
		return NULL;
	}
	return p;
}

void *seg_reserve_va(size_t len, size_t align)
{
	/* mmap aligns to the OS page only: reserve more, trim both ends. */
	size_t extra = align > 4096 ? align : 0;
	char *p = mmap(NULL, len + extra, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (extra == 0)
		return p;
	char *at = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (at > p)
		munmap(p, (size_t)(at - p));
	if (at + len < p + len + extra)
		munmap(at + len, (size_t)(p + len + extra - (at + len)));
	return at;
}

int seg_unmap(void *addr, size_t len)
{
	return munmap(addr, len) == 0 ? 0 : -errno;
}

int seg_advise_huge(void *addr, size_t len)
{
	return madvise(addr, len, MADV_HUGEPAGE) == 0 ? 0 : -errno;
}
