/* SPDX-License-Identifier: MIT */
/*
 * Standard containers in the shared heap, through shma::allocator
 * (shmalloc.hpp), driven by tests/e2e/check_cxx.c against a real daemon
 * ($SHMALLOC_SOCKET).  One program, a mode per run:
 *
 *   build                  builds a std::map<int, vector> and a
 *                          std::unordered_map<string, int>, places them
 *                          and a long string in the heap, publishes them
 *   verify-change-destroy  looks them up, checks every element, grows them
 *                          (vectors, buckets and string all reallocate),
 *                          checks again, unpublishes and destroys them
 *   both                   the two in one process
 *   fork                   build, then the second in a fork()ed child
 *   throws                 allocate() of impossible sizes throws
 *
 * Exit status 0 when all held; otherwise a message on stderr and the status
 * of the step that failed.  The allocator's traits are checked at compile
 * time, below.
 */
#include "shmalloc.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

using lvec = shma::vector<long>;
/* Spelled out, as a user without the aliases would. */
using imap = std::map<int, lvec, std::less<int>, shma::allocator<std::pair<const int, lvec>>>;
using smap = std::unordered_map<shma::string, int, shma::hash<shma::string>,
				std::equal_to<shma::string>,
				shma::allocator<std::pair<const shma::string, int>>>;

using traits = std::allocator_traits<shma::allocator<int>>;
static_assert(std::is_same_v<traits::value_type, int>);
static_assert(traits::is_always_equal::value);
static_assert(traits::propagate_on_container_copy_assignment::value);
static_assert(traits::propagate_on_container_move_assignment::value);
static_assert(traits::propagate_on_container_swap::value);
static_assert(std::is_same_v<traits::rebind_alloc<long>, shma::allocator<long>>);
static_assert(std::is_same_v<shma::allocator<int>::rebind<char>::other, shma::allocator<char>>);
static_assert(std::is_empty_v<shma::allocator<int>>);
static_assert(std::is_nothrow_default_constructible_v<shma::allocator<int>>);
static_assert(std::is_nothrow_copy_constructible_v<shma::allocator<int>>);
static_assert(std::is_nothrow_constructible_v<shma::allocator<int>, shma::allocator<long>>);
static_assert(shma::allocator<int>() == shma::allocator<long>());
static_assert(!(shma::allocator<int>() != shma::allocator<char>()));
static_assert(shma::allocator<char>().max_size() == SIZE_MAX);
static_assert(shma::allocator<long>().max_size() == SIZE_MAX / sizeof(long));
static_assert(noexcept(shma::allocator<int>().deallocate(nullptr, 1)));
static_assert(std::is_same_v<shma::string::allocator_type, shma::allocator<char>>);
static_assert(std::is_same_v<lvec, std::vector<long, shma::allocator<long>>>);
static_assert(std::is_same_v<imap, shma::map<int, lvec>>);
static_assert(std::is_same_v<smap, shma::unordered_map<shma::string, int>>);

const char MAP_ROOT[] = "cxx.map";
const char UMAP_ROOT[] = "cxx.umap";
const char NOTE_ROOT[] = "cxx.note";
/* The builder's addresses of the three, to tell a heap at another base from
 * containers that lost their contents. */
const char WHERE_ROOT[] = "cxx.where";
struct where {
	const void *map, *umap, *note;
};

constexpr int KEYS = 64;         /* map keys 0..63, vector k of 5k+1 longs */
constexpr int WORDS = 300;       /* unordered_map entries */
constexpr int MORE_WORDS = 2000; /* added by the second program: a rehash */
constexpr int GROWTH = 700;      /* longs appended to each vector */

int fail(int status, const char *what)
{
	std::fprintf(stderr, "cxx_containers: %s\n", what);
	return status;
}

long value(int k, int i)
{
	return (long)k * 1000003L + i;
}

std::size_t length(int k)
{
	return (std::size_t)(5 * k + 1);
}

/* Even words are past any small-string buffer (15 chars in libstdc++), so
 * their characters are a block of their own. */
shma::string word(int i)
{
	shma::string w = i % 2 ? "w" : "a word long enough to live outside the string object, #";
	w += std::to_string(i);
	return w;
}

shma::string note_text(std::size_t n)
{
	shma::string s;
	for (std::size_t i = 0; i < n; i++)
		s.push_back((char)('a' + i % 26));
	return s;
}

bool in_heap(const void *p)
{
	return shma_ref(p) != 0;
}

int build()
{
	imap *m = shma::make<imap>();
	for (int k = 0; k < KEYS; k++) {
		lvec &v = (*m)[k];
		for (std::size_t i = 0; i < length(k); i++)
			v.push_back(value(k, (int)i));
	}
	smap *u = shma::make<smap>();
	for (int i = 0; i < WORDS; i++)
		u->emplace(word(i), 7 * i);
	shma::string *note = shma::make<shma::string>(note_text(200));

	/* Not only the objects: their nodes, buckets' elements and characters. */
	if (!in_heap(m) || !in_heap(&*m->begin()) || !in_heap(m->begin()->second.data()) ||
	    !in_heap(&*m->rbegin()) || !in_heap(m->rbegin()->second.data()))
		return fail(2, "the map or its storage is not in the shared heap");
	if (!in_heap(u) || !in_heap(&*u->begin()) || !in_heap(u->find(word(0))->first.data()))
		return fail(2, "the unordered_map or its storage is not in the shared heap");
	if (!in_heap(note) || !in_heap(note->data()))
		return fail(2, "the string or its characters are not in the shared heap");

	where *w = shma::make<where>(where{m, u, note});
	if (shma::publish(MAP_ROOT, m) != 0 || shma::publish(UMAP_ROOT, u) != 0 ||
	    shma::publish(NOTE_ROOT, note) != 0 || shma::publish(WHERE_ROOT, w) != 0)
		return fail(3, "publish failed");
	return 0;
}

/* The map as build() left it, or with the second program's changes. */
bool map_holds(const imap &m, bool changed)
{
	std::size_t want_keys = changed ? KEYS / 2 + 8 : KEYS;
	if (m.size() != want_keys)
		return false;
	for (const auto &[k, v] : m) {
		if (k >= KEYS) {
			if (!changed || k < 1000 || k >= 1000 + 8 || v.size() != 1 || v[0] != -k)
				return false;
			continue;
		}
		if (changed && k % 2)
			return false;
		std::size_t n = length(k) + (changed ? GROWTH : 0);
		if (v.size() != n)
			return false;
		for (std::size_t i = 0; i < n; i++)
			if (v[i] != value(k, (int)i))
				return false;
	}
	return true;
}

bool umap_holds(const smap &u, bool changed)
{
	int n = changed ? WORDS + MORE_WORDS : WORDS;
	if (u.size() != (std::size_t)(changed ? n - (WORDS + 2) / 3 : n))
		return false;
	for (int i = 0; i < n; i++) {
		auto it = u.find(word(i));
		bool gone = changed && i < WORDS && i % 3 == 0;
		if (gone != (it == u.end()))
			return false;
		if (!gone && it->second != 7 * i)
			return false;
	}
	return true;
}

bool note_holds(const shma::string &note, bool changed)
{
	return note == note_text(changed ? 5000 : 200);
}

/* Grows every vector past its capacity, so each moves to a new block. */
int change_map(imap &m)
{
	for (auto &[k, v] : m) {
		const long *before = v.data();
		for (int i = 0; i < GROWTH; i++)
			v.push_back(value(k, (int)v.size()));
		if (v.data() == before || !in_heap(v.data()))
			return fail(5, "a vector grew in place, or out of the shared heap");
	}
	for (int k = 1; k < KEYS; k += 2)
		m.erase(k);
	for (int k = 1000; k < 1000 + 8; k++)
		m[k].push_back(-k);
	return 0;
}

int change_umap(smap &u)
{
	std::size_t buckets = u.bucket_count();
	for (int i = 0; i < WORDS; i += 3)
		u.erase(word(i));
	for (int i = WORDS; i < WORDS + MORE_WORDS; i++)
		u.emplace(word(i), 7 * i);
	if (u.bucket_count() <= buckets)
		return fail(5, "the unordered_map did not rehash");
	return 0;
}

int change_note(shma::string &note)
{
	const char *before = note.data();
	while (note.size() < 5000)
		note.push_back((char)('a' + note.size() % 26));
	if (note.data() == before || !in_heap(note.data()))
		return fail(5, "the string grew in place, or out of the shared heap");
	return 0;
}

int verify_change_destroy()
{
	imap *m = shma::root<imap>(MAP_ROOT);
	smap *u = shma::root<smap>(UMAP_ROOT);
	shma::string *note = shma::root<shma::string>(NOTE_ROOT);
	where *w = shma::root<where>(WHERE_ROOT);
	if (m == nullptr || u == nullptr || note == nullptr || w == nullptr)
		return fail(4, "a root is missing");
	if (w->map != m || w->umap != u || w->note != note)
		return fail(4, "the heap is not at the builder's address in this process: the "
			       "containers' pointers are not valid here");
	if (!map_holds(*m, false) || !umap_holds(*u, false) || !note_holds(*note, false))
		return fail(4, "the containers do not hold what the builder put in");
	int rc = change_map(*m);
	if (rc == 0)
		rc = change_umap(*u);
	if (rc == 0)
		rc = change_note(*note);
	if (rc != 0)
		return rc;
	if (!map_holds(*m, true) || !umap_holds(*u, true) || !note_holds(*note, true))
		return fail(6, "the containers do not hold what was changed");
	if (shma_unpublish(MAP_ROOT) != 0 || shma_unpublish(UMAP_ROOT) != 0 ||
	    shma_unpublish(NOTE_ROOT) != 0 || shma_unpublish(WHERE_ROOT) != 0)
		return fail(7, "unpublish failed");
	shma::destroy(m);
	shma::destroy(u);
	shma::destroy(note);
	shma::destroy(w);
	return 0;
}

int both()
{
	int rc = build();
	return rc != 0 ? rc : verify_change_destroy();
}

int across_fork()
{
	int rc = build();
	if (rc != 0)
		return rc;
	pid_t pid = fork();
	if (pid < 0)
		return fail(8, "fork failed");
	if (pid == 0) {
		rc = verify_change_destroy();
		shma_disconnect();
		_exit(rc);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return fail(8, "the child died");
	if (WEXITSTATUS(status) != 0)
		return WEXITSTATUS(status);
	if (shma::root<imap>(MAP_ROOT) != nullptr)
		return fail(8, "the child's unpublish is not seen by its parent");
	return 0;
}

/* Past what shma_malloc() aligns to (16), and past a page. */
template <std::size_t A>
struct alignas(A) wide {
	char bytes[A];
};

/* 0 if blocks of 1..4 wide<A> come aligned and in the shared heap. */
template <std::size_t A>
int aligned_alike()
{
	shma::allocator<wide<A>> a;
	wide<A> *held[16];
	int bad = 0;
	for (int i = 0; i < 16; i++) {
		held[i] = a.allocate((std::size_t)(i % 4 + 1));
		bad |= (std::uintptr_t)held[i] % A != 0 || !in_heap(held[i]);
	}
	for (int i = 0; i < 16; i++)
		a.deallocate(held[i], (std::size_t)(i % 4 + 1));
	return bad ? fail(10, "an over-aligned allocation is misaligned or not shared") : 0;
}

struct throws_in_constructor {
	long payload[8];
	throws_in_constructor()
	{
		throw 42;
	}
};

/* 0 if allocate(n) throws exactly E (and nothing derived from it). */
template <class E, class T>
int throws_exactly(std::size_t n_, const char *what)
{
	/* Through a volatile, so that the compiler cannot see the impossible
	 * size reach shma_malloc's alloc_size attribute and refuse to build. */
	volatile std::size_t n = n_;
	try {
		(void)shma::allocator<T>().allocate(n);
	} catch (const std::bad_array_new_length &) {
		if constexpr (std::is_same_v<E, std::bad_array_new_length>)
			return 0;
	} catch (const std::bad_alloc &) {
		if constexpr (std::is_same_v<E, std::bad_alloc>)
			return 0;
	}
	return fail(9, what);
}

int throws()
{
	std::size_t max = shma::allocator<long>().max_size();
	int rc = throws_exactly<std::bad_array_new_length, long>(max + 1, "n * size overflow");
	rc = rc ? rc : throws_exactly<std::bad_array_new_length, long>(SIZE_MAX, "SIZE_MAX longs");
	rc = rc ? rc : throws_exactly<std::bad_alloc, long>(max, "all of memory, in longs");
	rc = rc ? rc : throws_exactly<std::bad_alloc, char>(SIZE_MAX, "all of memory, in chars");
	rc = rc ? rc : throws_exactly<std::bad_alloc, wide<64>>(SIZE_MAX / 64, "all of memory, aligned");
	if (rc != 0)
		return rc;

	rc = aligned_alike<64>();
	rc = rc ? rc : aligned_alike<8192>();
	rc = rc ? rc : aligned_alike<65536>();
	if (rc != 0)
		return rc;
	char *z = shma::allocator<char>().allocate(0);
	if (z == nullptr || !in_heap(z))
		return fail(10, "allocate(0) gave no shared block");
	shma::allocator<char>().deallocate(z, 0);

	/* make() frees its block when the constructor throws: the check test
	 * sees in_use_bytes come back to where it was. */
	try {
		(void)shma::make<throws_in_constructor>();
		return fail(11, "the constructor's exception was lost");
	} catch (int) {
	}
	shma::destroy<imap>(nullptr);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 2)
		return fail(64, "usage: cxx_containers build|verify-change-destroy|both|fork|throws");
	int rc;
	try {
		if (std::strcmp(argv[1], "build") == 0)
			rc = build();
		else if (std::strcmp(argv[1], "verify-change-destroy") == 0)
			rc = verify_change_destroy();
		else if (std::strcmp(argv[1], "both") == 0)
			rc = both();
		else if (std::strcmp(argv[1], "fork") == 0)
			rc = across_fork();
		else if (std::strcmp(argv[1], "throws") == 0)
			rc = throws();
		else
			return fail(64, "unknown mode");
	} catch (const std::exception &e) {
		std::fprintf(stderr, "cxx_containers: %s: %s\n", argv[1], e.what());
		return 12;
	}
	shma_disconnect();
	return rc;
}
