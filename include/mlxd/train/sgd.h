// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay, with
// torch.optim.SGD's semantics: g += wd * p; buf = g on the first step, else buf = momentum * buf +
// (1 - dampening) * g; g = nesterov ? g + momentum * buf : buf; p -= lr * g.
#pragma once

#include "mlxd/train/optimizer.h"

namespace mlxd::train {

struct sgd_options {
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0
};

class sgd final : public optimizer {
 public:
  // Throws std::invalid_argument for a negative momentum or weight decay, or an invalid Nesterov setting.
  // State slot (when momentum > 0): "momentum_buffer".
  sgd(std::vector<std::string> names, const std::vector<array>& params, sgd_options options = {},
      std::vector<param_group> groups = {});
  std::string_view name() const override { return "sgd"; }

 private:
  void update(const chunk& c, double lr, double weight_decay, int64_t step) const override;
  sgd_options options_;
};

}  // namespace mlxd::train
