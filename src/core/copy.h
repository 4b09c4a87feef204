// Element copies between layouts and dtypes, used by contiguous, astype, concatenate and vjps.
#pragma once

#include "mlxd/core/array.h"

namespace mlxd::detail {

// Writes `src` (any layout and dtype) into `dst`, a same-shaped array or view of a buffer this op just
// created.
void copy_into(const array& src, const array& dst);

// A view of `a` starting at index `begin` with per-axis `step`, of the given shape (no autograd, no copy).
array strided_window(const array& a, const shape_t& begin, const shape_t& step, const shape_t& shape);

}  // namespace mlxd::detail
