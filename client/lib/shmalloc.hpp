/* SPDX-License-Identifier: MIT */
/*
 * shmalloc.hpp: the C++ face of shmalloc (C++17, header only).
 *
 * shma::allocator<T> is a standard allocator over shma_malloc()/shma_free():
 * a container given it keeps its elements, nodes, buckets and characters in
 * the shared heap.  It holds no state, so every instance is equal to every
 * other, of any T: a block allocated by one instance (or one process) may be
 * freed by any other, and containers may swap or move their storage freely.
 * allocate() throws std::bad_alloc when the heap cannot give the block, and
 * std::bad_array_new_length when n * sizeof(T) cannot be represented.
 *
 * A container whose storage is shared is not yet shared itself: its own few
 * words (a vector's three pointers, a map's header node) are wherever it was
 * declared.  Construct it in the heap with shma::make<T>(), publish it under
 * a root with shma::publish(), and another process finds it with
 * shma::root<T>().  The pointers inside it are plain addresses, so they are
 * valid in every process that maps the heap at the instance's base
 * (shma_same_address(), API.md); everything reachable from it must come from
 * the shared heap too: use shma::string and shma::vector, not std::string.
 * Unordered containers must hash alike in every process; shma::hash does.
 *
 * The containers are no more thread-safe, or process-safe, than usual:
 * whoever shares one serialises access to it.
 */
#ifndef SHMALLOC_HPP
#define SHMALLOC_HPP

#include "shmalloc.h"

#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace shma {

template <class T>
class allocator {
public:
	using value_type = T;
	using size_type = std::size_t;
	using difference_type = std::ptrdiff_t;
	/* Stateless: nothing to carry along, and any instance frees any block. */
	using propagate_on_container_copy_assignment = std::true_type;
	using propagate_on_container_move_assignment = std::true_type;
	using propagate_on_container_swap = std::true_type;
	using is_always_equal = std::true_type;

	template <class U>
	struct rebind {
		using other = allocator<U>;
	};

	constexpr allocator() noexcept = default;
	template <class U>
	constexpr allocator(const allocator<U> &) noexcept
	{
	}

	/* Room for n objects of T in the shared heap, aligned for T; never
	 * NULL.  Connects to the daemon on the first call, as shma_malloc()
	 * does ($SHMALLOC_SOCKET, else the default socket). */
	[[nodiscard]] T *allocate(std::size_t n)
	{
		if (n > max_size())
			throw std::bad_array_new_length();
		std::size_t bytes = n == 0 ? 1 : n * sizeof(T);
		void *p;
		if constexpr (alignof(T) > alignof(std::max_align_t))
			p = shma_aligned_alloc(alignof(T), bytes);
		else
			p = shma_malloc(bytes);
		if (p == nullptr)
			throw std::bad_alloc();
		return static_cast<T *>(p);
	}

	/* Frees p, which any instance, in any process, may have allocated. */
	void deallocate(T *p, std::size_t) noexcept
	{
		shma_free(p);
	}

	constexpr size_type max_size() const noexcept
	{
		return std::numeric_limits<size_type>::max() / sizeof(T);
	}
};

template <class T, class U>
constexpr bool operator==(const allocator<T> &, const allocator<U> &) noexcept
{
	return true;
}

template <class T, class U>
constexpr bool operator!=(const allocator<T> &, const allocator<U> &) noexcept
{
	return false;
}

/* std::hash for everything but strings in the shared heap, which C++17's
 * std::hash does not take; those hash as the std::string_view of their
 * characters.  libstdc++'s and libc++'s std::hash are not seeded, so every
 * process of one build hashes alike. */
template <class T>
struct hash : std::hash<T> {
};

template <class C, class Traits>
struct hash<std::basic_string<C, Traits, allocator<C>>> {
	std::size_t operator()(const std::basic_string<C, Traits, allocator<C>> &s) const noexcept
	{
		return std::hash<std::basic_string_view<C, Traits>>()(s);
	}
};

/* The usual containers, kept in the shared heap. */
using string = std::basic_string<char, std::char_traits<char>, allocator<char>>;

template <class T>
using vector = std::vector<T, allocator<T>>;

template <class K, class V, class Compare = std::less<K>>
using map = std::map<K, V, Compare, allocator<std::pair<const K, V>>>;

template <class K, class V, class Hash = shma::hash<K>, class Equal = std::equal_to<K>>
using unordered_map = std::unordered_map<K, V, Hash, Equal, allocator<std::pair<const K, V>>>;

/* A T constructed from args in the shared heap; throws what allocate() or
 * T's constructor throws (the block is then freed).  shma::destroy() ends it. */
template <class T, class... Args>
T *make(Args &&...args)
{
	allocator<T> a;
	T *p = a.allocate(1);
	try {
		::new (static_cast<void *>(p)) T(std::forward<Args>(args)...);
	} catch (...) {
		a.deallocate(p, 1);
		throw;
	}
	return p;
}

/* Destroys and frees what shma::make() made, in this or another process;
 * nullptr is ignored. */
template <class T>
void destroy(T *p) noexcept
{
	if (p == nullptr)
		return;
	p->~T();
	allocator<T>().deallocate(p, 1);
}

/* Publishes p, an object in the shared heap, under name: 0, -EEXIST, -EINVAL
 * (p is not in the shared heap), -ENAMETOOLONG, as shma_publish(). */
template <class T>
int publish(const char *name, const T *p) noexcept
{
	return shma_publish(name, shma_ref(p));
}

/* The object published under name, as T *; nullptr if no such root (or its
 * ref no longer names live memory).  The caller vouches that it is a T. */
template <class T>
T *root(const char *name) noexcept
{
	shma_ref_t ref;
	if (shma_lookup(name, &ref) != 0)
		return nullptr;
	return static_cast<T *>(shma_ptr(ref));
}

} // namespace shma

#endif
