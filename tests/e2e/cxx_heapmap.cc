/* SPDX-License-Identifier: MIT */
/*
 * A std::map in a named heap, through shma::heap_allocator (shmalloc.hpp),
 * driven by tests/e2e/check_cxx.c against a real daemon ($SHMALLOC_SOCKET).
 * One program, a mode per run:
 *
 *   build   creates the persistent heap "cxx.heapmap", builds in it (the map
 *           itself too, with shma::make_in) a std::map<int, string> of N
 *           entries, publishes the map, and exits without closing the heap
 *   read    opens nothing by name: looks the map up, checks every entry and
 *           that every node is in the heap the map's allocator names (so the
 *           allocator's id resolved in this process), adds entries (this
 *           process allocates in the heap through the id alone), unpublishes
 *           and destroys the heap: every block of it goes at once
 *
 * Exit status 0 when all held; otherwise a message on stderr and the status
 * of the step that failed.  The allocator's traits are checked at compile
 * time, below.
 */
#include "shmalloc.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>

namespace {

const char HEAP[] = "cxx.heapmap";
const char ROOT[] = "cxx.heapmap.map";
constexpr int N = 2000;
constexpr int MORE = 500;

using hstring = shma::heap::string;
using hmap = std::map<int, hstring, std::less<int>,
		      shma::heap_allocator<std::pair<const int, hstring>>>;

using traits = std::allocator_traits<shma::heap_allocator<int>>;
static_assert(std::is_same_v<traits::value_type, int>);
static_assert(!traits::is_always_equal::value);
static_assert(!traits::propagate_on_container_copy_assignment::value);
static_assert(traits::propagate_on_container_move_assignment::value);
static_assert(traits::propagate_on_container_swap::value);
static_assert(sizeof(shma::heap_allocator<long>) == sizeof(std::uint64_t),
	      "the allocator's state is the heap's id alone");

int fail(int status, const char *what)
{
	std::fprintf(stderr, "cxx_heapmap: %s\n", what);
	return status;
}

/* Entry i's value: long enough that the string has storage of its own. */
std::string value_of(int i)
{
	return "value number " + std::to_string(i) + " of the map in a named heap";
}

int build()
{
	shma_heap_opts_t opts = {SHMA_HEAP_PERSISTENT, 0};
	shma_heap_t *h;
	if (shma_heap_create(HEAP, &opts, &h) != 0)
		return fail(2, "shma_heap_create");
	shma::heap_allocator<char> a(h);
	if (a.id() != shma_heap_id(h) || a.id() == 0)
		return fail(3, "the allocator's id is not the heap's");
	hmap *m = shma::make_in<hmap>(a, a);
	for (int i = 0; i < N; i++)
		m->emplace(i, hstring(value_of(i).c_str(), a));
	if (shma_heap_of(m) != h || shma_heap_of(m->at(7).data()) != h)
		return fail(4, "the map is not in its heap");
	if (shma::publish(ROOT, m) != 0)
		return fail(5, "publish");
	return 0; /* the heap is persistent: it outlives this process */
}

/* Every node of m (and each string's storage) in the heap of id. */
int check(const hmap &m, int n)
{
	shma_heap_t *h = shma_heap_from_id(m.get_allocator().id());
	if (h == nullptr)
		return fail(12, "shma_heap_from_id of the map's allocator");
	if (m.size() != (size_t)n)
		return fail(13, "wrong size");
	int i = 0;
	for (const auto &[k, v] : m) {
		if (k != i || v != value_of(i).c_str())
			return fail(14, "wrong entry");
		if (shma_heap_of(&k) != h || shma_heap_of(v.data()) != h)
			return fail(15, "a node or string not in the map's heap");
		i++;
	}
	return 0;
}

int read_and_destroy()
{
	if (!shma_same_address())
		return fail(10, "the heap is not at its base here: raw pointers are not shared");
	hmap *m = shma::root<hmap>(ROOT);
	if (m == nullptr)
		return fail(11, "no map published");
	int rc = check(*m, N);
	if (rc != 0)
		return rc;
	shma::heap_allocator<char> a(m->get_allocator());
	for (int i = N; i < N + MORE; i++)
		m->emplace(i, hstring(value_of(i).c_str(), a));
	if ((rc = check(*m, N + MORE)) != 0)
		return rc;
	size_t bytes = 0, blocks = 0;
	shma_heap_t *h = a.heap();
	if (shma_heap_in_use(h, &bytes, &blocks) != 0 || blocks < (size_t)(N + MORE))
		return fail(16, "shma_heap_in_use counts fewer blocks than the map's nodes");
	if (shma_unpublish(ROOT) != 0)
		return fail(17, "unpublish");
	/* No destructor runs: the whole heap goes at once. */
	if (shma_heap_destroy(h) != 0)
		return fail(18, "shma_heap_destroy");
	try {
		(void)a.allocate(1);
		return fail(19, "allocate() in a destroyed heap did not throw");
	} catch (const std::bad_alloc &) {
	}
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc == 2 && std::strcmp(argv[1], "build") == 0)
		return build();
	if (argc == 2 && std::strcmp(argv[1], "read") == 0)
		return read_and_destroy();
	return fail(1, "usage: cxx_heapmap build|read");
}
