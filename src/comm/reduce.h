// Elementwise reductions over raw buffers, the arithmetic under every collective.
#pragma once

#include <cstdint>

#include "mlxd/comm/group.h"
#include "mlxd/core/dtype.h"

namespace mlxd::comm {

// Throws std::invalid_argument ("[<where>] ...") when `op` does not apply to `t` (mean needs a float).
void check_reduction(const char* where, reduce_op op, dtype t);
// acc[i] = acc[i] (op) x[i] for n elements; mean accumulates as sum. f16/bf16 compute in f32 and round once
// per call, integers wrap, bool sum/max are OR and min is AND.
void reduce_into(void* acc, const void* x, int64_t n, dtype t, reduce_op op);
// acc[i] /= world for the mean (floating dtypes only).
void divide_by(void* acc, int64_t n, dtype t, int world);

}  // namespace mlxd::comm
