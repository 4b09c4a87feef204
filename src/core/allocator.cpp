#include "mlxd/core/allocator.h"

#include <sys/mman.h>

#include <bit>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace mlxd::allocator {
namespace {

constexpr size_t huge_page = size_t{2} << 20;

// Powers of two up to 1 MiB, then whole huge pages: repeated shapes land in the same class without much
// waste, and every class is a multiple of its alignment as aligned_alloc requires.
size_t size_class(size_t nbytes) {
  if (nbytes <= 64) return 64;
  if (nbytes <= (size_t{1} << 20)) return std::bit_ceil(nbytes);
  return (nbytes + huge_page - 1) / huge_page * huge_page;
}

size_t default_limit() {
  if (const char* env = std::getenv("MLXD_ALLOC_CACHE_MB")) return std::stoull(env) << 20;
  return size_t{4} << 30;
}

struct cache {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;  // by class, in order: large requests take the best fit
  std::unordered_map<void*, size_t> large_class;     // the class of every block of a huge page or more
  stats counters{};
  size_t limit = default_limit();
};

// A cached block for class `cls`: one of its own class, or for a large class the smallest cached one up to
// twice its size (a prompt's [rows, ffn] and [rows, hidden] activations then share blocks instead of each
// holding its own). Its pages past the bytes asked for stay untouched, so they cost no memory.
void* take_cached(cache& c, size_t cls, size_t& taken_cls) {
  auto it = c.free_blocks.find(cls);
  if (cls >= huge_page && (it == c.free_blocks.end() || it->second.empty())) {
    it = c.free_blocks.upper_bound(cls);
    while (it != c.free_blocks.end() && it->second.empty() && it->first <= 2 * cls) ++it;
    if (it != c.free_blocks.end() && it->first > 2 * cls) it = c.free_blocks.end();
  }
  if (it == c.free_blocks.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  taken_cls = it->first;
  return p;
}

cache& the_cache() {
  static cache* c = new cache();  // never destroyed: arrays may be released during static destruction
  return *c;
}

// Huge pages cover only the whole 2 MiB pages of the `nbytes` asked for, and the rest of a large class is
// kept off them (for systems whose huge pages are always on): a huge page over the class's rounding would be
// resident in full once its first bytes are touched, which for a 1B model's weights (a 4.5 MB matrix in a 6
// MiB class) added 7% to the process's memory.
void* system_allocate(size_t cls, size_t nbytes) {
  const size_t alignment = cls >= huge_page ? huge_page : 64;
  void* p = std::aligned_alloc(alignment, cls);
  if (!p) throw std::bad_alloc();
  if (cls >= huge_page) {
    const size_t whole = nbytes / huge_page * huge_page;
    if (whole > 0) madvise(p, whole, MADV_HUGEPAGE);
    if (whole < cls) madvise(static_cast<char*>(p) + whole, cls - whole, MADV_NOHUGEPAGE);
  }
  return p;
}

}  // namespace

void* allocate(size_t nbytes) {
  const size_t cls = size_class(nbytes);
  cache& c = the_cache();
  {
    std::lock_guard lock(c.mu);
    size_t taken = cls;
    if (void* p = take_cached(c, cls, taken)) {
      c.counters.cached_bytes -= taken;
      c.counters.active_bytes += taken;
      ++c.counters.hits;
      return p;
    }
    ++c.counters.misses;
    c.counters.active_bytes += cls;
  }
  try {
    void* p = system_allocate(cls, nbytes);
    if (cls >= huge_page) {
      std::lock_guard lock(c.mu);
      c.large_class[p] = cls;
    }
    return p;
  } catch (...) {
    std::lock_guard lock(c.mu);
    c.counters.active_bytes -= cls;
    throw;
  }
}

void release(void* p, size_t nbytes) {
  if (!p) return;
  size_t cls = size_class(nbytes);
  cache& c = the_cache();
  {
    std::lock_guard lock(c.mu);
    if (cls >= huge_page) cls = c.large_class.at(p);  // a large block may have served a smaller class
    c.counters.active_bytes -= cls;
    if (c.counters.cached_bytes + cls <= c.limit) {
      c.free_blocks[cls].push_back(p);
      c.counters.cached_bytes += cls;
      return;
    }
    if (cls >= huge_page) c.large_class.erase(p);
  }
  std::free(p);
}

stats get_stats() {
  cache& c = the_cache();
  std::lock_guard lock(c.mu);
  return c.counters;
}

void clear_cache() {
  cache& c = the_cache();
  std::lock_guard lock(c.mu);
  for (auto& [cls, blocks] : c.free_blocks) {
    for (void* p : blocks) {
      if (cls >= huge_page) c.large_class.erase(p);
      std::free(p);
    }
  }
  c.free_blocks.clear();
  c.counters.cached_bytes = 0;
}

void set_cache_limit(size_t nbytes) {
  cache& c = the_cache();
  std::lock_guard lock(c.mu);
  c.limit = nbytes;
}

}  // namespace mlxd::allocator
