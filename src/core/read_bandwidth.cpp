#include "mlxd/core/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "mlxd/core/thread_pool.h"

namespace mlxd {
namespace {

// Four 64-byte loads in flight per iteration keep enough misses outstanding to saturate a core's read path.
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi32(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi32(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_add_epi32(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_add_epi32(a3, _mm512_loadu_si512(p + i + 192));
  }
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
  uint64_t s = 0;
  for (uint32_t v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi32(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi32(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi32(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi32(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
  uint64_t s = 0;
  for (uint32_t v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  uint64_t a[4] = {};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      a[l] += w;
    }
  }
  uint64_t s = a[0] + a[1] + a[2] + a[3];
  for (; i < n; ++i) s += p[i];
  return s;
}

using sum_fn = uint64_t (*)(const uint8_t*, size_t);

sum_fn pick() {
  if (__builtin_cpu_supports("avx512f")) return sum_avx512;
  if (__builtin_cpu_supports("avx2")) return sum_avx2;
  return sum_scalar;
}

}  // namespace

uint64_t stream_read(const void* data, size_t nbytes) {
  static const sum_fn sum = pick();
  const auto* p = static_cast<const uint8_t*>(data);
  constexpr size_t page = 4096;
  const size_t per_thread = nbytes / (4 * static_cast<size_t>(num_threads()));
  const size_t chunk = std::max<size_t>(64 * 1024, (per_thread + page - 1) / page * page);
  std::atomic<uint64_t> total{0};
  parallel_for(static_cast<int64_t>(nbytes), static_cast<int64_t>(chunk), [&](int64_t b, int64_t e) {
    total.fetch_add(sum(p + b, static_cast<size_t>(e - b)), std::memory_order_relaxed);
  });
  return total.load();
}

std::string_view stream_read_kernel() {
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "scalar";
}

}  // namespace mlxd
