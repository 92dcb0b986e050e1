/* SPDX-License-Identifier: MIT */
/*
 * Run under shmalloc-run by the preload suite: 40 pthread keys made before
 * the first allocation, then threads that allocate.  The library's own key
 * then has an index past glibc's first 32, so pthread_setspecific, which the
 * library calls under its connection lock, callocs -- a re-entry that must
 * not wait for that lock.  Prints "ok" and exits 0 unless it hangs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS 40
#define THREADS 8

static pthread_key_t keys[KEYS];

static void *work(void *arg)
{
	long id = (long)arg;
	for (int k = 0; k < KEYS; k++)
		if (pthread_setspecific(keys[k], (void *)(id + 1)) != 0)
			return (void *)1;
	for (int round = 0; round < 2000; round++) {
		char *p = malloc(16 + (size_t)(round % 200) * 8);
		if (p == NULL)
			return (void *)1;
		memset(p, (int)id, 16);
		free(p);
	}
	return NULL;
}

int main(void)
{
	for (int k = 0; k < KEYS; k++)
		if (pthread_key_create(&keys[k], NULL) != 0)
			return 2;
	int bad = 0;
	for (int wave = 0; wave < 4; wave++) {
		pthread_t t[THREADS];
		for (long i = 0; i < THREADS; i++)
			if (pthread_create(&t[i], NULL, work, (void *)i) != 0)
				return 3;
		for (int i = 0; i < THREADS; i++) {
			void *rc;
			pthread_join(t[i], &rc);
			bad += rc != NULL;
		}
	}
	printf("%s\n", bad ? "failed" : "ok");
	return bad ? 1 : 0;
}
