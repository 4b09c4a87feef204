// Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_: the L2 norm over all gradients together;
// when it exceeds max_norm every gradient is scaled by max_norm / (norm + 1e-6).
#pragma once

#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::train {

struct clip_result {
  double norm = 0.0;     // the global norm before clipping (inf or nan when a gradient is not finite)
  bool finite = true;    // false: some gradient holds inf or nan; the trainer should skip the step
  bool clipped = false;  // true when the gradients were scaled
};

// The L2 norm of all elements of all `grads` (f32), summed in double with a fixed order (the same for any
// thread count). Throws std::invalid_argument for a gradient that is not f32.
double global_grad_norm(const std::vector<array>& grads);

// Computes the global norm and, when it is finite and above max_norm, replaces each gradient with a scaled
// copy. Non-finite gradients are left as they are. max_norm must be > 0.
clip_result clip_grad_norm(std::vector<array>& grads, double max_norm);

}  // namespace mlxd::train
