// The caching allocator behind every owned array buffer.
//
// On these virtual machines the first touch of fresh anonymous memory costs 13-20 us per 4 KiB page, so freed
// buffers are kept by size class and handed out again; a request of 2 MiB or more may take a cached block of
// up to twice its class. Buffers of 2 MiB and more are 2 MiB aligned, and the whole 2 MiB pages of the bytes
// first asked for are advised for transparent huge pages. Thread-safe.
#pragma once

#include <cstddef>
#include <span>

namespace mlxd::allocator {

// At least `nbytes` (may be 0) of 64-byte-aligned memory; throws std::bad_alloc when the system has none.
void* allocate(size_t nbytes);
// Returns a block from allocate() with the same `nbytes`.
void release(void* p, size_t nbytes);

struct stats {
  size_t active_bytes;  // handed out and not yet released (rounded to size classes)
  size_t cached_bytes;  // released and kept for reuse
  size_t hits;          // allocations served from the cache
  size_t misses;        // allocations that went to the system
};
stats get_stats();
// Frees every cached block.
void clear_cache();
// Upper bound on cached bytes (default 4 GiB, or MLXD_ALLOC_CACHE_MB); blocks beyond it are freed at release.
void set_cache_limit(size_t nbytes);

// n values of T (trivially copyable, left uninitialised) in a block from allocate(), released when the
// buffer goes: scratch memory that faults in no fresh pages once its size class has been used.
template <class T>
class buffer {
 public:
  explicit buffer(size_t n) : n_(n), p_(static_cast<T*>(allocate(n * sizeof(T)))) {}
  ~buffer() { release(p_, n_ * sizeof(T)); }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  T* data() const { return p_; }
  std::span<T> span() const { return {p_, n_}; }

 private:
  size_t n_;
  T* p_;
};

}  // namespace mlxd::allocator
