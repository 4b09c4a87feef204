// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):
//   p *= 1 - lr * wd;  p -= lr * sign(beta1 * m + (1 - beta1) * g);  m = beta2 * m + (1 - beta2) * g
// sign(0) is 0. State slot: "exp_avg".
#pragma once

#include "mlxd/train/optimizer.h"

namespace mlxd::train {

struct lion_options {
  double beta1 = 0.9;
  double beta2 = 0.99;
  double weight_decay = 0.0;
};

class lion final : public optimizer {
 public:
  // Throws std::invalid_argument for betas outside [0, 1] or a negative weight decay.
  lion(std::vector<std::string> names, const std::vector<array>& params, lion_options options = {},
       std::vector<param_group> groups = {});
  std::string_view name() const override { return "lion"; }

 private:
  void update(const chunk& c, double lr, double weight_decay, int64_t step) const override;
  lion_options options_;
};

}  // namespace mlxd::train
