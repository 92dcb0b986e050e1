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
	XX(lists) \
	XX(span) \
	XX(regionkeep) \
	XX(inflight_unit) \
	XX(quota_unit) \
	XX(roots) \
	XX(sizeclass) \
	XX(dispatch) \
	XX(table) \
	XX(wire) \
	XX(libcache) \
	XX(distrust) \
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
	XX(uidarea) \
	XX(redis) \
	XX(activation) \
	XX(setup) \
	XX(errors) \
	XX(backing) \
	XX(harden) \
	XX(guard) \
	XX(region) \
	XX(restart_live) \
	XX(run_trust) \
	XX(largeblocks) \
	XX(sizes) \
	XX(heaps) \
	XX(heaps_registry)
