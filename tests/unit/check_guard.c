/* SPDX-License-Identifier: MIT */
/*
 * server/guard.c alone: a read of a registered mapping whose file was cut
 * under it reads zeros (and says so) instead of killing the process; a
 * SIGBUS outside any registered mapping still kills; guard_reserved() tells
 * a hole from a page.  Planted bugs it catches: no handler (the first test
 * dies of SIGBUS), a handler that swallows every SIGBUS (the second passes
 * no more), a reservation check that looks at nothing (the third).
 */
#include "guard.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEN (64u << 12)

static int tmpfs_file(void)
{
	char name[64];
	snprintf(name, sizeof name, "/shmalloc-guard-test-%ld", (long)getpid());
	int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
	ck_assert_int_ge(fd, 0);
	shm_unlink(name);
	ck_assert_int_eq(ftruncate(fd, LEN), 0);
	return fd;
}

START_TEST(a_cut_registered_mapping_reads_zeros)
{
	int fd = tmpfs_file();
	volatile uint64_t *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne((void *)p, MAP_FAILED);
	p[0] = 7;
	p[LEN / 8 - 1] = 9;
	ck_assert_int_eq(guard_add((void *)p, LEN), 0);
	unsigned long f0 = guard_faults();
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	ck_assert_uint_eq(p[0], 7);           /* before the cut: the file's */
	ck_assert_uint_eq(p[LEN / 8 - 1], 0); /* past it: zeros, not SIGBUS */
	p[LEN / 8 - 2] = 5;                   /* and writable, privately */
	ck_assert_uint_eq(p[LEN / 8 - 2], 5);
	ck_assert(guard_broken((void *)p));
	ck_assert_uint_eq(guard_faults(), f0 + 1);
	guard_remove((void *)p);
	munmap((void *)p, LEN);
	close(fd);
}
END_TEST

START_TEST(a_sigbus_elsewhere_still_kills)
{
	int fd = tmpfs_file();
	void *reg = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(reg, MAP_FAILED);
	ck_assert_int_eq(guard_add(reg, LEN), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		volatile uint64_t *other = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
		if (ftruncate(fd, 0) != 0)
			_exit(2);
		uint64_t v = other[10];
		_exit(v == 0 ? 0 : 1);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGBUS);
	guard_remove(reg);
	munmap(reg, LEN);
	close(fd);
}
END_TEST

START_TEST(reserved_tells_holes_from_pages)
{
	int fd = tmpfs_file();
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	p[4096] = 1;
	p[8192] = 1;
	ck_assert(guard_reserved(fd, p, p + 4096, 8192));
	ck_assert(guard_reserved(-1, p, p + 4096, 8192));
	ck_assert(!guard_reserved(fd, p, p + 4096, 8193));
	ck_assert(!guard_reserved(-1, p, p + 4096, 8193));
	ck_assert(!guard_reserved(fd, p, p, 1));
	ck_assert(guard_reserved(fd, p, p, 0));
	/* Reserved, never written: tmpfs cannot tell it from a hole. */
	ck_assert_int_eq(fallocate(fd, 0, 16384, 4096), 0);
	ck_assert(!guard_reserved(fd, p, p + 16384, 8));
	/* Past the end. */
	ck_assert_int_eq(ftruncate(fd, 4 * 4096), 0);
	ck_assert(!guard_reserved(fd, p, p + 4096, 4 * 4096));
	ck_assert(!guard_reserved(-1, p, p + 4096, 4 * 4096));
	munmap(p, LEN);
	close(fd);
}
END_TEST

Suite *make_guard_suite(void);
Suite *make_guard_suite(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("guard");
	tcase_add_test(tc, a_cut_registered_mapping_reads_zeros);
	tcase_add_test(tc, a_sigbus_elsewhere_still_kills);
	tcase_add_test(tc, reserved_tells_holes_from_pages);
	suite_add_tcase(s, tc);
	return s;
}
