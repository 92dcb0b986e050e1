/* SPDX-License-Identifier: MIT */
/*
 * Standard C++ containers shared by two programs: the shmalloc.hpp demo.
 *
 *   containers write [WORD...]  counts the words (of a built-in text when
 *                               none are given) into a
 *                               std::unordered_map<shma::string, int> and
 *                               lists them by count in a
 *                               std::map<int, shma::vector<shma::string>>;
 *                               both live in one struct in the shared heap,
 *                               published under the root "demo.words"
 *   containers read             looks the struct up, prints the words by
 *                               count, counts one word more, and destroys
 *                               it all
 *
 * Every byte the containers use comes from shma::allocator, and the struct
 * itself from shma::make, so the reader finds them at the addresses the
 * writer left them: this needs the heap at one base in every process
 * (shma_same_address(3)); the reader checks and says so.  Run both against
 * one shmallocd (SHMALLOC_SOCKET names its socket).
 */
#include <shmalloc.hpp>

#include <cstdio>
#include <cstring>
#include <exception>

namespace {

const char ROOT[] = "demo.words";

struct catalog {
	/* Where the writer made it: the reader compares with where it found it. */
	const catalog *self = this;
	std::unordered_map<shma::string, int, shma::hash<shma::string>, std::equal_to<shma::string>,
			   shma::allocator<std::pair<const shma::string, int>>>
		counts;
	std::map<int, shma::vector<shma::string>, std::greater<int>,
		 shma::allocator<std::pair<const int, shma::vector<shma::string>>>>
		by_count;

	void index()
	{
		by_count.clear();
		for (const auto &[word, n] : counts)
			by_count[n].push_back(word);
	}
};

const char *const TEXT[] = {"the", "heap", "is", "shared", "and", "the", "map", "is", "in",
			    "the", "heap", "and", "so", "is", "the", "string", nullptr};

int write_words(int argc, char **argv)
{
	catalog *c = shma::make<catalog>();
	if (argc > 0)
		for (int i = 0; i < argc; i++)
			c->counts[argv[i]]++;
	else
		for (int i = 0; TEXT[i] != nullptr; i++)
			c->counts[TEXT[i]]++;
	c->index();
	int rc = shma::publish(ROOT, c);
	if (rc != 0) {
		std::fprintf(stderr, "containers: publish %s: %s\n", ROOT, shma_strerror(rc));
		shma::destroy(c);
		return 1;
	}
	std::printf("wrote %zu words under \"%s\"\n", c->counts.size(), ROOT);
	return 0;
}

void print(const catalog &c)
{
	for (const auto &[n, words] : c.by_count) {
		std::printf("%3d:", n);
		for (const auto &w : words)
			std::printf(" %s", w.c_str());
		std::printf("\n");
	}
}

int read_words()
{
	catalog *c = shma::root<catalog>(ROOT);
	if (c == nullptr) {
		std::fprintf(stderr, "containers: no root \"%s\": run 'containers write'\n", ROOT);
		return 1;
	}
	if (c->self != c) {
		std::fprintf(stderr, "containers: the heap is not at the writer's address in this "
				     "process, so its pointers are not valid here\n");
		return 2;
	}
	print(*c);
	c->counts["shmalloc"]++;
	c->index();
	std::printf("after counting \"shmalloc\" once more:\n");
	print(*c);
	shma_unpublish(ROOT);
	shma::destroy(c);
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
			std::fprintf(stderr, "usage: containers write [WORD...] | containers read\n");
	} catch (const std::exception &e) {
		std::fprintf(stderr, "containers: %s\n", e.what());
		rc = 1;
	}
	shma_disconnect();
	return rc;
}
