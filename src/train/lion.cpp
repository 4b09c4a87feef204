#include "mlxd/train/lion.h"

#include <stdexcept>

namespace mlxd::train {

lion::lion(std::vector<std::string> names, const std::vector<array>& params, lion_options options,
           std::vector<param_group> groups)
    : optimizer(std::move(names), params, std::move(groups), options.weight_decay, {"exp_avg"}),
      options_(options) {
  if (!(options.beta1 >= 0.0 && options.beta1 <= 1.0) || !(options.beta2 >= 0.0 && options.beta2 <= 1.0)) {
    throw std::invalid_argument("[lion] betas must lie in [0, 1]");
  }
  if (!(options.weight_decay >= 0.0)) throw std::invalid_argument("[lion] weight_decay must be >= 0");
}

void lion::update(const chunk& c, double lr, double weight_decay, int64_t /*step*/) const {
  const auto neg_lr = static_cast<float>(-lr);
  const auto decay = static_cast<float>(1.0 - lr * weight_decay);
  const auto b1 = static_cast<float>(options_.beta1), c1 = static_cast<float>(1.0 - options_.beta1);
  const auto b2 = static_cast<float>(options_.beta2), c2 = static_cast<float>(1.0 - options_.beta2);
  const bool has_decay = weight_decay != 0.0;
  float* m = c.slots[0];
  for (int64_t i = 0; i < c.n; ++i) {
    const float g = c.g[i];
    const float u = m[i] * b1 + c1 * g;
    const float sign = static_cast<float>(u > 0.0f) - static_cast<float>(u < 0.0f);
    const float p = has_decay ? c.p[i] * decay : c.p[i];
    c.out[i] = p + neg_lr * sign;
    m[i] = m[i] * b2 + c2 * g;
  }
}

}  // namespace mlxd::train
