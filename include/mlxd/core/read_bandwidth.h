// The read-bandwidth baseline of benchmarks: streams a buffer once and sums it, the least work that still
// reads every byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mlxd {

// Sums `nbytes` at `data` as 32-bit integers (integer adds, so any bit pattern is cheap) with several
// independent AVX-512 accumulators, split over mlxd's kernel threads (set_num_threads) in chunks of at least
// 64 KiB. Falls back to AVX2 or plain 64-bit loads when the CPU lacks AVX-512. The sum only defeats the
// optimiser; its value means nothing.
uint64_t stream_read(const void* data, size_t nbytes);

// "avx512", "avx2" or "scalar": the loop stream_read uses on this CPU.
std::string_view stream_read_kernel();

}  // namespace mlxd
