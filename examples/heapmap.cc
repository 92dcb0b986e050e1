/* SPDX-License-Identifier: MIT */
/*
 * A std::map in a named heap, built by one program and read by another:
 * the shma::heap_allocator demo (shmalloc.hpp, shma_heap_create(3)).
 *
 *   heapmap write [WORD...]  creates the persistent heap "demo.heapmap" (at
 *                            most 1 MiB), builds in it a std::map of each
 *                            word (of a built-in text when none are given)
 *                            to its count -- the map itself too -- and
 *                            publishes the map under the root of that name;
 *                            the heap outlives the program
 *   heapmap read             looks the map up, prints it, and destroys the
 *                            heap: every node and string of it goes at once,
 *                            with no destructor run
 *
 * The allocator's only state is the heap's id, so the map it sits in works in
 * the reader too: the reader's first allocation in it (or shma_heap_from_id)
 * opens the heap there.  Raw pointers need the heap at one base in every
 * process (shma_same_address(3)).  Run both against one shmallocd
 * (SHMALLOC_SOCKET names its socket); shmallocctl heaps shows the heap
 * between the two.
 */
#include <shmalloc.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

namespace {

const char NAME[] = "demo.heapmap";

using words = std::map<shma::heap::string, int, std::less<shma::heap::string>,
		       shma::heap_allocator<std::pair<const shma::heap::string, int>>>;

const char *const TEXT[] = {"a", "heap", "of", "its", "own", "and", "a", "map", "in", "the",
			    "heap", nullptr};

int write_words(int argc, char **argv)
{
	shma_heap_opts_t opts = {SHMA_HEAP_PERSISTENT, 1 << 20};
	shma_heap_t *h;
	int rc = shma_heap_create(NAME, &opts, &h);
	if (rc != 0) {
		std::fprintf(stderr, "heapmap: shma_heap_create %s: %s\n", NAME, shma_strerror(rc));
		return 1;
	}
	shma::heap_allocator<char> a(h);
	words *m = shma::make_in<words>(a, a);
	for (int i = 0; argc > 0 ? i < argc : TEXT[i] != nullptr; i++)
		(*m)[shma::heap::string(argc > 0 ? argv[i] : TEXT[i], a)]++;
	rc = shma::publish(NAME, m);
	if (rc != 0) {
		std::fprintf(stderr, "heapmap: publish %s: %s\n", NAME, shma_strerror(rc));
		shma_heap_destroy(h);
		return 1;
	}
	std::printf("wrote %zu words in heap \"%s\" (id %llu)\n", m->size(), NAME,
		    (unsigned long long)a.id());
	return 0;
}

int read_words()
{
	words *m = shma::root<words>(NAME);
	if (m == nullptr) {
		std::fprintf(stderr, "heapmap: no root \"%s\": run 'heapmap write'\n", NAME);
		return 1;
	}
	if (shma_same_address() != 1) {
		std::fprintf(stderr, "heapmap: the heap is not at its base in this process, so "
				     "the map's pointers are not valid here\n");
		return 2;
	}
	for (const auto &[w, n] : *m)
		std::printf("%3d %s\n", n, w.c_str());
	shma_heap_t *h = m->get_allocator().heap();
	shma_unpublish(NAME);
	int rc = h != nullptr ? shma_heap_destroy(h) : -errno;
	if (rc != 0) {
		std::fprintf(stderr, "heapmap: shma_heap_destroy: %s\n", shma_strerror(rc));
		return 1;
	}
	std::printf("heap \"%s\" destroyed\n", NAME);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	int rc = 64;
	try {
		if (argc >= 2 && std::strcmp(argv[1], "write") == 0)
			rc = write_words(argc - 2, argv + 2);
		else if (argc == 2 && std::strcmp(argv[1], "read") == 0)
			rc = read_words();
		else
			std::fprintf(stderr, "usage: heapmap write [WORD...] | heapmap read\n");
	} catch (const std::exception &e) {
		std::fprintf(stderr, "heapmap: %s\n", e.what());
		rc = 1;
	}
	shma_disconnect();
	return rc;
}
