/* SPDX-License-Identifier: MIT */
/*
 * Segments: the OS primitives under the shared heap, in one place.
 *
 * A segment is a POSIX shm object named /shmalloc.<instance>.<kind><id>
 * (kind 'c' client control block, with an id) or /shmalloc.<instance>.<kind>
 * (kind 'p' the heap's pages, 'M' its metadata, 'm' the manifest of roots):
 * enum seg_kind below.
 * The daemon creates them with O_CREAT|O_EXCL|O_NOFOLLOW and its configured
 * mode; clients open the ones that exist.  /dev/shm is everybody's: any user
 * may create a file under a name the daemon will want.  Such a file is never
 * the daemon's: seg_create() reports the name taken (the caller picks
 * another), and seg_adopt() -- the daemon's only way to open a segment it
 * did not just create -- refuses anything that is not a regular file owned
 * by the daemon's uid with exactly the configured mode (and group).  Backing store is reserved with
 * posix_fallocate before memory is handed out, so a full /dev/shm is an
 * ENOMEM here and never a SIGBUS in a process that touches the page later.
 *
 * Every function returns 0 (or a valid fd / count) or a negative errno.
 */
#ifndef SHMA_SEG_H
#define SHMA_SEG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SEG_NAME_MAX 96

/*
 * Where segments live (process-wide, like seg_set_group(): the daemon sets
 * it once, before it creates anything; a client never does, it is given the
 * descriptors):
 *   SEG_BACKING_SHM    files in /dev/shm (shm_open), the default;
 *   SEG_BACKING_FILE   files in a directory of a real filesystem, same names
 *                      without the slash (a heap that outlives a reboot);
 *   SEG_BACKING_MEMFD  memfds: no name anyone can open, each kept in this
 *                      process's memfd table under the name it would have,
 *                      and sealed at its size (F_SEAL_SHRINK|F_SEAL_GROW)
 *                      when made: whoever is given one cannot cut it.
 * Every function below means the configured backing.
 */
enum seg_backing { SEG_BACKING_SHM, SEG_BACKING_MEMFD, SEG_BACKING_FILE };

/* Sets the backing; dir is FILE's directory (absolute; made 0700 if it does
 * not exist; it must be ours).  0 or -EINVAL, -EPERM, -errno. */
int seg_set_backing(enum seg_backing kind, const char *dir);
enum seg_backing seg_backing(void);
/* The directory of SHM and FILE ("/dev/shm" or the one given). */
const char *seg_backing_dir(void);

/* MEMFD: called with the memfd table's own descriptor when a segment is
 * made (added) and with its name when it is unlinked (removed): the daemon
 * hands them to systemd's file-descriptor store.  NULL: none. */
void seg_set_store_hooks(void (*added)(const char *name, int fd),
			 void (*removed)(const char *name));

/* MEMFD: puts fd (a memfd kept by someone else, systemd's store) in the table
 * under name; the table owns it.  0, -EEXIST (fd closed), -ENOMEM. */
int seg_store_put(const char *name, int fd);

/* A new read-only descriptor of what fd is (through /proc/self/fd), or a
 * negative errno. */
int seg_reopen_ro(int fd);

/* seg_create()'s flags. */
#define SEG_HUGETLB 1u /* MEMFD: hugetlb pages (MFD_HUGETLB) */

/* The kinds of segment, each the letter that names it. */
enum seg_kind {
	SEG_PAGES = 'p',    /* the heap's pages: one, mapped read-write by every client */
	SEG_META = 'M',     /* the heap's metadata: one, clients map it read-only */
	SEG_MANIFEST = 'm', /* the manifest of roots: one */
	SEG_CONTROL = 'c',  /* a client's control block: one per id */
	SEG_HEAPS = 'h',    /* the registry of named heaps: one (id 0), the daemon's */
	SEG_ARENA_V1 = 'a', /* an arena of layout 1: only recognised, to refuse it */
};

/* Writes "/shmalloc.<instance>.<kind><id>" into buf; -ENAMETOOLONG if it does
 * not fit. */
int seg_name(char *buf, size_t size, const char *instance, enum seg_kind kind, uint64_t id);

/* A valid instance name: 1..SHMA_INSTANCE_MAX-1 bytes of [A-Za-z0-9_-]. */
int seg_instance_valid(const char *name);

/* The instance name a daemon on socket_path uses when none is given: a hash
 * of the absolute path, so two daemons on two sockets never share segments. */
void seg_instance_from_path(const char *socket_path, char *out, size_t size);

/* The default socket path: $XDG_RUNTIME_DIR/shmalloc/shmallocd.sock, else
 * /tmp/shmalloc-$UID/shmallocd.sock.  0 or -ENAMETOOLONG. */
int seg_default_socket(char *buf, size_t size);

/* Creates a new segment of size bytes (O_EXCL|O_NOFOLLOW) with exactly mode
 * (whatever the umask) and the group set by seg_set_group(); returns its fd,
 * or -EEXIST when the name is taken (by us or by anyone else). */
int seg_create(const char *name, uint64_t size, mode_t mode);
int seg_create_flags(const char *name, uint64_t size, mode_t mode, unsigned flags);

/* FILE: fsync(fd) (the daemon's last word on a heap that outlives a
 * reboot); the others: 0. */
int seg_sync(int fd);

/* The huge page size behind fd if it is hugetlbfs (MFD_HUGETLB), else 0. */
int seg_huge_page_size(int fd);

/* Opens a segment the daemon made earlier, read-write: the fd, -ENOENT if
 * there is none, or -EPERM if the file under that name is not ours (not a
 * regular file, another owner, another mode or group: someone else made it,
 * and it is neither to be trusted nor removed).  why (may be NULL) says
 * which. */
int seg_adopt(const char *name, mode_t mode, const char **why);

/* The mode a segment of kind has when the daemon's segment mode is mode:
 * metadata ('M', 'm') is writable by its owner alone, a control block ('c')
 * is 0600 (its client gets the descriptor), the pages ('p') have mode. */
mode_t seg_kind_mode(enum seg_kind kind, mode_t mode);

/* 1 if a file exists under name that seg_adopt() would refuse. */
int seg_foreign(const char *name, mode_t mode);

/* Makes every segment this process creates from now on belong to group gid
 * ((gid_t)-1: the creator's own, the default).  Process-wide, as the umask
 * is: the daemon sets it once, before it creates anything. */
void seg_set_group(gid_t gid);

/* Opens an existing segment read-write (or read-only); returns its fd. */
int seg_open(const char *name, int writable);

int seg_unlink(const char *name);
/* Removes segment name if it is ours and empty -- a creation cut short
 * (the daemon killed between its open and its truncate, before the group
 * and mode were set): 1 if it did, else 0.  It holds nothing, so nothing is
 * lost; a file of another uid is never touched. */
int seg_drop_stillborn(const char *name);

/* How many segments of the instance exist (in /dev/shm); with remove, unlinks
 * those owned by this process's uid (never another user's) and returns how
 * many it removed.  Negative errno on failure. */
int seg_instance_segments(const char *instance, int remove);

/* Counts the segments of instance, all kinds but those in skip: how many are
 * ours (seg_adopt() would take them, with mode) and how many are not.  0 or
 * a negative errno. */
int seg_instance_census(const char *instance, mode_t mode, const char *skip, unsigned *own,
			unsigned *foreign);

/*
 * Calls fn(arg, id) for each segment /shmalloc.<instance>.<kind><id> that
 * exists (in /dev/shm), in no particular order.  Returns how many it saw, or
 * a negative errno (fn's own, when fn returns one: the walk stops there).
 */
int seg_instance_list(const char *instance, enum seg_kind kind,
		      int (*fn)(void *arg, uint64_t id), void *arg);

/* Takes an exclusive advisory lock on fd without waiting, for the life of the
 * descriptor (the kernel drops it when the holder dies): 0, or -EBUSY if
 * another process holds it. */
int seg_lock(int fd);

/* Sets the size of the segment behind fd (the heap puts a cut pages
 * segment back, heal.c); 0 or -errno. */
int seg_resize(int fd, uint64_t size);

/* Size of the segment behind fd, or a negative errno. */
int64_t seg_size(int fd);

/* Bytes of backing store the segment holds now (st_blocks). */
int64_t seg_resident(int fd);

/* Reserves backing store for [off, off+len): -ENOMEM when /dev/shm is full. */
int seg_reserve(int fd, uint64_t off, uint64_t len);

/* Gives [off, off+len) back to the OS; the range reads as zeros after. */
int seg_punch(int fd, uint64_t off, uint64_t len);

/*
 * Maps len bytes of fd from off at addr (MAP_FIXED when addr is not NULL,
 * which must lie inside a range reserved with seg_reserve_va()).  Returns
 * the address or NULL with errno set.
 */
void *seg_map(int fd, uint64_t off, size_t len, int writable, void *addr);

/*
 * Maps the first len bytes of fd at exactly addr, shared and without
 * reserving swap, never over an existing mapping: the address or NULL with
 * errno set (EEXIST: something is mapped there already).
 */
void *seg_map_at(int fd, size_t len, int writable, void *addr);

/* Maps the first len bytes of fd, shared, without reserving swap, wherever
 * the kernel finds room aligned to align (a power of two).  The address or
 * NULL with errno set. */
void *seg_map_sparse(int fd, size_t len, int writable, size_t align);

/* Reserves len bytes of address space (no memory, no access), aligned to
 * align (a power of two). */
void *seg_reserve_va(size_t len, size_t align);

int seg_unmap(void *addr, size_t len);

/* Asks for transparent huge pages on [addr, addr+len) (MADV_HUGEPAGE); 0
 * or -errno. */
int seg_advise_huge(void *addr, size_t len);

#endif
