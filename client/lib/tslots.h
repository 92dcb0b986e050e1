/* SPDX-License-Identifier: MIT */
/*
 * Thread slots (tslots.c) and the two things of tcache.c they use.  With
 * the connection's lock held.
 */
#ifndef SHMA_TSLOTS_H
#define SHMA_TSLOTS_H

#include "client.h"

/* A slot of the control block for the calling thread: the last one a
 * thread left, else one never used, else any free one.  NULL when there is
 * none (or no memory for our side of them). */
SHMA_HIDDEN struct tcache *tslots_take(void);
/* Leaves slot t to the next thread: stocked (bins and pending refills kept,
 * the slot in use still) while few are, else emptied.  The connection is
 * current. */
SHMA_HIDDEN void tslots_park(struct tcache *t);
/* Slot i is no live thread's any more. */
SHMA_HIDDEN void tslots_leave(unsigned i);
/* 1 if no thread of ours holds a slot of any control block, old or new. */
SHMA_HIDDEN int tslots_none_owned(void);
/* Sends back what the stocked parked slots hold (we leave the block). */
SHMA_HIDDEN void tslots_flush_parked(void);
/* After fork: no slot is ours, none parked. */
SHMA_HIDDEN void tslots_forget(void);

/* tcache.c: a fresh cache t on slot i of cb, its bins empty; room[] kept
 * if the slot's bins are reserved already (a slot some thread used). */
SHMA_HIDDEN struct tcache *tcache_fresh(struct tcache *t, struct control_block *cb, unsigned i,
					int reserved);
/* tcache.c: collects the refills asked ahead of need, then sends every bin
 * of t back; the connection is current. */
SHMA_HIDDEN void tcache_flush_everything(struct tcache *t);

#endif
