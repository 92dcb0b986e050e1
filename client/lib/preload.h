/* SPDX-License-Identifier: MIT */
/*
 * The insides of the preload module (libshmalloc-preload.so) that its two
 * files share: preload.c (the malloc family, the state, the fork handlers)
 * and preload_fork.c (the copy of the heap a forked child gets).
 */
#ifndef SHMA_PRELOAD_H
#define SHMA_PRELOAD_H

#define PAGE 4096u

/* Before the fork, in the parent: copies what this process holds of the
 * heap's mappings (not the arenas' metadata, which the child reads where it
 * is).  0, or the first failure as a negative errno. */
int fork_copy_heap(void);
/* In the parent after the fork: drops the copies (the child's are its). */
void fork_drop_copies(void);
/* In the child: moves the copies over the heap's addresses; *end: the end
 * of the last placed.  0 or the first failure, a negative errno. */
int fork_place_copies(char **end);

#endif
