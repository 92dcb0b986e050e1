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
 * shma::heap_allocator<T> is the same over a named heap (below).
 *
 * The containers are no more thread-safe, or process-safe, than usual:
 * whoever shares one serialises access to it.
 */
#ifndef SHMALLOC_HPP
#define SHMALLOC_HPP

#include "shmalloc.h"

#include <cstddef>
#include <cstdint>
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

/*
 * heap_allocator<T>: the same over a named heap (shma_heap_create(3)).  Its
 * only state is the heap's id (shma_heap_id()), which names the heap in
 * every process of the instance, so a container holding one may itself live
 * in the shared heap and be used from any process: each resolves the id to
 * its own handle with shma_heap_from_id() (opening the heap there the first
 * time), which a one-entry cache per thread keeps cheap.  Two allocators are
 * equal iff they name the same heap; what one allocates any process frees
 * (shma_free()).  allocate() throws std::bad_alloc when the heap cannot give
 * the block: full (its max_bytes), destroyed, or not to be opened here.
 *
 * Propagation: a container keeps its heap when copy-assigned to (the
 * elements are copied into its own heap), and takes the other's heap, with
 * its storage, when move-assigned or swapped -- so that a move never copies
 * and never throws.  A copy-constructed container is in the same heap.
 */
template <class T>
class heap_allocator {
public:
	using value_type = T;
	using size_type = std::size_t;
	using difference_type = std::ptrdiff_t;
	using propagate_on_container_copy_assignment = std::false_type;
	using propagate_on_container_move_assignment = std::true_type;
	using propagate_on_container_swap = std::true_type;
	using is_always_equal = std::false_type;

	template <class U>
	struct rebind {
		using other = heap_allocator<U>;
	};

	/* Over heap, open in this process. */
	explicit heap_allocator(const shma_heap_t *heap) noexcept : id_(shma_heap_id(heap))
	{
	}
	/* Over the heap of id (shma_heap_id()), from any process. */
	explicit heap_allocator(std::uint64_t id) noexcept : id_(id)
	{
	}
	template <class U>
	heap_allocator(const heap_allocator<U> &other) noexcept : id_(other.id())
	{
	}

	/* The heap's id: the allocator's whole state. */
	std::uint64_t id() const noexcept
	{
		return id_;
	}

	/* This process's handle of the heap, opened here if need be; NULL with
	 * errno set (ENOENT: destroyed). */
	shma_heap_t *heap() const noexcept
	{
		/* Handles live in the library's own table and a closed one says id
		 * 0, so the cached one is checked, never trusted blindly. */
		static thread_local std::uint64_t cached_id;
		static thread_local shma_heap_t *cached;
		if (cached_id != id_ || cached == nullptr || shma_heap_id(cached) != id_) {
			cached = shma_heap_from_id(id_);
			cached_id = cached != nullptr ? id_ : 0;
		}
		return cached;
	}

	/* Room for n objects of T in the heap, aligned for T; never NULL. */
	[[nodiscard]] T *allocate(std::size_t n)
	{
		if (n > max_size())
			throw std::bad_array_new_length();
		shma_heap_t *h = heap();
		if (h == nullptr)
			throw std::bad_alloc();
		std::size_t bytes = n == 0 ? 1 : n * sizeof(T);
		void *p;
		if constexpr (alignof(T) > alignof(std::max_align_t))
			p = shma_heap_aligned_alloc(h, alignof(T), bytes);
		else
			p = shma_heap_malloc(h, bytes);
		if (p == nullptr)
			throw std::bad_alloc();
		return static_cast<T *>(p);
	}

	/* Frees p, which any instance over the heap, in any process, may have
	 * allocated. */
	void deallocate(T *p, std::size_t) noexcept
	{
		shma_free(p);
	}

	constexpr size_type max_size() const noexcept
	{
		return std::numeric_limits<size_type>::max() / sizeof(T);
	}

private:
	std::uint64_t id_;
};

template <class T, class U>
bool operator==(const heap_allocator<T> &a, const heap_allocator<U> &b) noexcept
{
	return a.id() == b.id();
}

template <class T, class U>
bool operator!=(const heap_allocator<T> &a, const heap_allocator<U> &b) noexcept
{
	return a.id() != b.id();
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

template <class C, class Traits>
struct hash<std::basic_string<C, Traits, heap_allocator<C>>> {
	std::size_t operator()(const std::basic_string<C, Traits, heap_allocator<C>> &s) const noexcept
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

/* The same, kept in a named heap: each takes a heap_allocator. */
namespace heap {
using string = std::basic_string<char, std::char_traits<char>, heap_allocator<char>>;

template <class T>
using vector = std::vector<T, heap_allocator<T>>;

template <class K, class V, class Compare = std::less<K>>
using map = std::map<K, V, Compare, heap_allocator<std::pair<const K, V>>>;

template <class K, class V, class Hash = shma::hash<K>, class Equal = std::equal_to<K>>
using unordered_map = std::unordered_map<K, V, Hash, Equal, heap_allocator<std::pair<const K, V>>>;
} // namespace heap

namespace detail {
/* A T constructed from args in what allocator a gives; the block freed if
 * the constructor throws. */
template <class T, class A, class... Args>
T *construct(A &a, Args &&...args)
{
	T *p = a.allocate(1);
	try {
		::new (static_cast<void *>(p)) T(std::forward<Args>(args)...);
	} catch (...) {
		a.deallocate(p, 1);
		throw;
	}
	return p;
}
} // namespace detail

/* A T constructed from args in the shared heap; throws what allocate() or
 * T's constructor throws (the block is then freed).  shma::destroy() ends it. */
template <class T, class... Args>
T *make(Args &&...args)
{
	allocator<T> a;
	return detail::construct<T>(a, std::forward<Args>(args)...);
}

/* A T constructed from args in the named heap of where (any heap_allocator
 * of it); throws as make() does.  shma::destroy() ends it too. */
template <class T, class U, class... Args>
T *make_in(const heap_allocator<U> &where, Args &&...args)
{
	heap_allocator<T> a(where);
	return detail::construct<T>(a, std::forward<Args>(args)...);
}

/* Destroys and frees what shma::make() or shma::make_in() made, in this or
 * another process; nullptr is ignored. */
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
