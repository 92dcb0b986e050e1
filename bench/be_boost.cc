/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory peer: Boost.Interprocess managed_shared_memory.
 *
 * Each run creates one segment (/dev/shm/<name>) before the workers are
 * forked; they inherit its mapping and allocate from it with allocate() and
 * deallocate(), under the segment's process-shared mutex.  A block passes
 * between processes as its offset in the segment (a handle), as it must when
 * the segment is mapped at different addresses.  The footprint is the
 * segment's backing store.  Boost never gives pages back to the OS.
 */
#include "config.h"

#include "bench.h"

#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/version.hpp>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <string>

#include <unistd.h>

namespace bip = boost::interprocess;

namespace {

/* Big enough for (e)'s live set at its worst fragmentation; tmpfs only
 * spends what is touched. */
const std::size_t segment_size = std::size_t(512) << 20;

bip::managed_shared_memory *segment;
std::string segment_name;

} // namespace

extern "C" const char *be_name(void)
{
	return "boost";
}

extern "C" int be_shared(void)
{
	return 1;
}

extern "C" int be_setup(char *why, size_t len)
{
	segment_name = "shmalloc-bench-boost." + std::to_string(getpid()) + ".heap";
	bip::shared_memory_object::remove(segment_name.c_str());
	try {
		segment = new bip::managed_shared_memory(bip::create_only,
							 segment_name.c_str(), segment_size);
	} catch (const std::exception &e) {
		std::snprintf(why, len, "managed_shared_memory: %s", e.what());
		return -EIO;
	}
	return 0;
}

/* The driver that exec'd us made the segment: its name has that pid. */
extern "C" int be_attach(void)
{
	segment_name = "shmalloc-bench-boost." + std::to_string(getppid()) + ".heap";
	try {
		segment = new bip::managed_shared_memory(bip::open_only, segment_name.c_str());
	} catch (const std::exception &) {
		return -ENOENT;
	}
	return 0;
}

extern "C" void be_teardown(void)
{
	delete segment;
	segment = nullptr;
	bip::shared_memory_object::remove(segment_name.c_str());
}

extern "C" void *be_malloc(size_t size)
{
	return segment->allocate(size, std::nothrow);
}

extern "C" void be_free(void *p)
{
	if (p != nullptr)
		segment->deallocate(p);
}

extern "C" uint64_t be_to_msg(void *p)
{
	return segment->get_handle_from_address(p);
}

extern "C" void *be_from_msg(uint64_t msg)
{
	return segment->get_address_from_handle(
		static_cast<bip::managed_shared_memory::handle_t>(msg));
}

extern "C" int64_t be_footprint(void)
{
	return bench_shm_bytes(segment_name.c_str());
}

extern "C" int be_detach(void)
{
	return 0;
}

extern "C" void be_describe(char *out, size_t len)
{
	std::snprintf(out, len, "version\t%d.%d.%d\nheap\tone managed_shared_memory of %zu MiB\n",
		      BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100,
		      segment_size >> 20);
}

extern "C" void be_counters_begin(void)
{
}

extern "C" void be_counters_end(struct bench_counters *c)
{
	c->mallocs = 0;
	c->waits = 0;
}
