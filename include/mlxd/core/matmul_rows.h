// How matmul and quantized_matmul divide a product by its rows, for callers that split one into pieces.
#pragma once

#include <cstdint>

namespace mlxd {

// Products of at most this many rows are decode steps, served by kernels that stream the weights once for all
// rows; longer ones (prompts) take the GEMM.
inline constexpr int64_t matmul_few_rows = 16;
// The GEMM's register tile computes this many rows at once: a piece whose rows are a multiple of it fills
// every tile it uses.
inline constexpr int64_t matmul_row_tile = 14;

}  // namespace mlxd
