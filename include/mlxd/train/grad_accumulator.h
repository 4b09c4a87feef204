// Sums the gradients of several micro-batches into f32 buffers it owns. The trainer adds the gradients of
// each micro-batch's summed (not averaged) loss, then takes the sum scaled by 1 / (global token count), so
// that B x 1 and 1 x B accumulation give the same gradient up to f32 summation order. Not thread-safe.
#pragma once

#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::train {

class grad_accumulator {
 public:
  // Adds one micro-batch's gradients (f32, any layout). The first call after construction or take() fixes
  // the count and shapes; later calls must match them, else std::invalid_argument (nothing is added).
  void add(const std::vector<array>& grads);
  // Micro-batches added since the last take().
  int micro_batches() const { return count_; }
  // Returns the sums multiplied by `scale` and starts over. Throws std::logic_error when nothing was added.
  std::vector<array> take(double scale = 1.0);
  // Drops what was added.
  void reset();

 private:
  std::vector<array> sums_;  // owned exclusively, updated in place
  int count_ = 0;
};

}  // namespace mlxd::train
