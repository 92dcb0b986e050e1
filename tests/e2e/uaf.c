/* SPDX-License-Identifier: MIT */
/*
 * A deliberate use after free, for the tests that prove Valgrind and ASan see
 * shared blocks: allocate, free, read.  Exit 0 means nobody noticed.
 */
#include <shmalloc.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	volatile char *p = shma_malloc(100);
	if (p == NULL) {
		perror("uaf: shma_malloc");
		return 2;
	}
	memset((char *)p, 'x', 100);
	shma_free((void *)p);
	char c = p[50]; /* the bug */
	printf("read %d after free\n", c);
	shma_disconnect();
	return 0;
}
