/* SPDX-License-Identifier: MIT */
/*
 * Every suite of the test runner, one XX line each: the runner declares and
 * runs them in this order.  Add a line when adding tests/check_<module>.c.
 */
#define SHMA_SUITES(XX) \
	XX(frame) \
	XX(options) \
	XX(heap) \
	XX(pageheap) \
	XX(span) \
	XX(inflight_unit) \
	XX(quota_unit) \
	XX(roots) \
	XX(sizeclass) \
	XX(dispatch) \
	XX(table) \
	XX(wire) \
	XX(libcache) \
	XX(largecache) \
	XX(e2e) \
	XX(alloc) \
	XX(stress) \
	XX(ctl) \
	XX(hostile) \
	XX(debug) \
	XX(badfree) \
	XX(reclaim) \
	XX(restart) \
	XX(quarantine) \
	XX(fakedaemon) \
	XX(disconnect) \
	XX(reconnect) \
	XX(inflight) \
	XX(access) \
	XX(limits) \
	XX(contract) \
	XX(perimeter) \
	XX(squat) \
	XX(liveness) \
	XX(quota) \
	XX(memory) \
	XX(preload) \
	XX(cxx) \
	XX(threads) \
	XX(xfer) \
	XX(redis) \
	XX(activation) \
	XX(setup) \
	XX(errors) \
	XX(harden) \
	XX(guard) \
	XX(region) \
	XX(largeblocks) \
	XX(sizes) \
	XX(heaps) \
	XX(heaps_registry)
