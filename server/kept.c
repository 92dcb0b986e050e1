/* SPDX-License-Identifier: MIT */
/*
 * Kept large blocks of idle clients: see kept.h.
 */
#include "kept.h"
#include "daemon.h"
#include "log.h"
#include "quota.h"
#include "stats.h"

static unsigned decay_client(struct daemon *d, struct client *c, uint64_t now_ms)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SHMA_LARGE_KEEP; i++) {
		uint64_t *entry = &c->ctl->hdr.large[i].ref;
		uint64_t ref = __atomic_load_n(entry, __ATOMIC_ACQUIRE);
		if (ref == 0 || ref != c->kept[i].ref) {
			c->kept[i].ref = ref;
			c->kept[i].since_ms = now_ms;
			continue;
		}
		if (now_ms - c->kept[i].since_ms < d->opt.decay_ms)
			continue;
		c->kept[i].ref = 0;
		if (!__atomic_compare_exchange_n(entry, &ref, 0, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			continue; /* the client took it in the meantime */
		uint64_t size, owner = heap_large_owner(d->heap, ref);
		if (owner != c->id || heap_free_large(d->heap, ref, &size) != 0) {
			log_msg(SLOG_WARN, "client %llu: a kept large block %#llx that is not one "
				"of its live blocks: dropped from its cache",
				(unsigned long long)c->id, (unsigned long long)ref);
			continue;
		}
		stats_freed_by(d, c, size, owner);
		quota_held(c, -(int64_t)size);
		quota_large_give(c);
		n++;
	}
	return n;
}

unsigned daemon_kept_decay(struct daemon *d, uint64_t now_ms)
{
	unsigned n = 0;
	for (struct client *c = d->clients; c != NULL; c = c->next)
		if (c->ctl != NULL && c->hello_done && !c->observer)
			n += decay_client(d, c, now_ms);
	return n;
}
