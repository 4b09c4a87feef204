// Adam and AdamW with bias correction, matching torch.optim.Adam / AdamW (single-tensor path) operation for
// operation in f32, with the scalar coefficients computed in double as PyTorch does:
//   Adam:  g += wd * p                               (L2 penalty folded into the gradient)
//   AdamW: p *= 1 - lr * wd                          (decoupled decay, before the moment update)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Note eps is added after the bias correction of sqrt(v), as PyTorch does. (PyTorch 2.x writes the m update
// as lerp(m, g, 1 - beta1), which differs from this 1.13 form only in rounding.) State slots: "exp_avg",
// "exp_avg_sq".
#pragma once

#include "mlxd/train/optimizer.h"

namespace mlxd::train {

struct adam_options {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // torch's defaults: 0 for Adam; pass 0.01 for torch's AdamW default
};

class adam final : public optimizer {
 public:
  // decoupled = true gives AdamW. Throws std::invalid_argument for betas outside [0, 1), eps < 0 or a
  // negative weight decay.
  adam(std::vector<std::string> names, const std::vector<array>& params, adam_options options = {},
       bool decoupled = false, std::vector<param_group> groups = {});
  std::string_view name() const override { return decoupled_ ? "adamw" : "adam"; }

 private:
  void update(const chunk& c, double lr, double weight_decay, int64_t step) const override;
  adam_options options_;
  bool decoupled_;
};

}  // namespace mlxd::train
