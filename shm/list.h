/* SPDX-License-Identifier: MIT */
/*
 * Intrusive doubly linked lists, the one way the project writes them.
 *
 * A list is a pointer to its first element (NULL: empty), and optionally one
 * to its last; each element carries its own two links, named by the caller
 * (an element may be on several lists: a page run is on a size bin, the age
 * list and its arena's list at once).  Every operation is O(1) and touches
 * only the element and its neighbours.  The links of an element that is on
 * no list are not looked at, and removing clears them.
 *
 *   DLIST_PUSH(&ph->bins[b], r, bin_prev, bin_next);
 *   DLIST_REMOVE(&ph->bins[b], r, bin_prev, bin_next);
 *   DLIST_APPEND(&ph->age_head, &ph->age_tail, r, age_prev, age_next);
 *   DLIST_REMOVE_TAILED(&ph->age_head, &ph->age_tail, r, age_prev, age_next);
 */
#ifndef SHMA_LIST_H
#define SHMA_LIST_H

/* Puts elm first on the list *headp. */
#define DLIST_PUSH(headp, elm, prev, next)               \
	do {                                             \
		(elm)->prev = NULL;                      \
		(elm)->next = *(headp);                  \
		if (*(headp) != NULL)                    \
			(*(headp))->prev = (elm);        \
		*(headp) = (elm);                        \
	} while (0)

/* Takes elm off the list *headp, which it is on. */
#define DLIST_REMOVE(headp, elm, prev, next)                       \
	do {                                                       \
		if ((elm)->prev != NULL)                           \
			(elm)->prev->next = (elm)->next;           \
		else                                               \
			*(headp) = (elm)->next;                    \
		if ((elm)->next != NULL)                           \
			(elm)->next->prev = (elm)->prev;           \
		(elm)->prev = (elm)->next = NULL;                  \
	} while (0)

/* Puts elm last on the list *headp whose last element is *tailp. */
#define DLIST_APPEND(headp, tailp, elm, prev, next)      \
	do {                                             \
		(elm)->next = NULL;                      \
		(elm)->prev = *(tailp);                  \
		if (*(tailp) != NULL)                    \
			(*(tailp))->next = (elm);        \
		else                                     \
			*(headp) = (elm);                \
		*(tailp) = (elm);                        \
	} while (0)

/* Takes elm off the list *headp whose last element is *tailp. */
#define DLIST_REMOVE_TAILED(headp, tailp, elm, prev, next)         \
	do {                                                       \
		if ((elm)->next == NULL)                           \
			*(tailp) = (elm)->prev;                    \
		DLIST_REMOVE(headp, elm, prev, next);              \
	} while (0)

#endif
