#include "mlxd/train/sgd.h"

#include <stdexcept>

namespace mlxd::train {

sgd::sgd(std::vector<std::string> names, const std::vector<array>& params, sgd_options options,
         std::vector<param_group> groups)
    : optimizer(
          std::move(names), params, std::move(groups), options.weight_decay,
          options.momentum > 0.0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}),
      options_(options) {
  if (!(options.momentum >= 0.0)) throw std::invalid_argument("[sgd] momentum must be >= 0");
  if (!(options.weight_decay >= 0.0)) throw std::invalid_argument("[sgd] weight_decay must be >= 0");
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw std::invalid_argument("[sgd] Nesterov momentum requires momentum > 0 and dampening == 0");
  }
}

void sgd::update(const chunk& c, double lr, double weight_decay, int64_t step) const {
  // Coefficients are rounded to f32 once, as PyTorch does when it applies a Python float to an f32 tensor.
  const auto neg_lr = static_cast<float>(-lr);
  const auto wd = static_cast<float>(weight_decay);
  const auto mu = static_cast<float>(options_.momentum);
  const auto keep = static_cast<float>(1.0 - options_.dampening);
  const bool has_wd = weight_decay != 0.0, nesterov = options_.nesterov;
  if (options_.momentum == 0.0) {
    for (int64_t i = 0; i < c.n; ++i) {
      const float g = has_wd ? c.g[i] + wd * c.p[i] : c.g[i];
      c.out[i] = c.p[i] + neg_lr * g;
    }
    return;
  }
  float* buf = c.slots[0];
  const bool first = step == 1;
  for (int64_t i = 0; i < c.n; ++i) {
    float g = has_wd ? c.g[i] + wd * c.p[i] : c.g[i];
    const float b = first ? g : buf[i] * mu + keep * g;
    buf[i] = b;
    g = nesterov ? g + mu * b : b;
    c.out[i] = c.p[i] + neg_lr * g;
  }
}

}  // namespace mlxd::train
