#include "mlxd/train/adam.h"

#include <cmath>
#include <stdexcept>

namespace mlxd::train {

adam::adam(std::vector<std::string> names, const std::vector<array>& params, adam_options options,
           bool decoupled, std::vector<param_group> groups)
    : optimizer(std::move(names), params, std::move(groups), options.weight_decay, {"exp_avg", "exp_avg_sq"}),
      options_(options),
      decoupled_(decoupled) {
  const char* fn = decoupled ? "[adamw] " : "[adam] ";
  if (!(options.beta1 >= 0.0 && options.beta1 < 1.0) || !(options.beta2 >= 0.0 && options.beta2 < 1.0)) {
    throw std::invalid_argument(std::string(fn) + "betas must lie in [0, 1)");
  }
  if (!(options.eps >= 0.0)) throw std::invalid_argument(std::string(fn) + "eps must be >= 0");
  if (!(options.weight_decay >= 0.0))
    throw std::invalid_argument(std::string(fn) + "weight_decay must be >= 0");
}

void adam::update(const chunk& c, double lr, double weight_decay, int64_t step) const {
  // Scalars in double, rounded to f32 where PyTorch applies them to f32 tensors; the per-element operations
  // and their order follow torch.optim's single-tensor Adam so results agree to the last bit or two.
  const double t = static_cast<double>(step);
  const double bias1 = 1.0 - std::pow(options_.beta1, t);
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(options_.beta2, t));
  const auto neg_step_size = static_cast<float>(-(lr / bias1));
  const auto b2s = static_cast<float>(bias2_sqrt);
  const auto eps = static_cast<float>(options_.eps);
  const auto b1 = static_cast<float>(options_.beta1);
  const auto c1 = static_cast<float>(1.0 - options_.beta1);
  const auto b2 = static_cast<float>(options_.beta2);
  const auto c2 = static_cast<float>(1.0 - options_.beta2);
  const auto l2 = static_cast<float>(decoupled_ ? 0.0 : weight_decay);
  const auto decay = static_cast<float>(decoupled_ ? 1.0 - lr * weight_decay : 1.0);
  const bool has_l2 = !decoupled_ && weight_decay != 0.0, has_decay = decoupled_ && weight_decay != 0.0;
  float* m = c.slots[0];
  float* v = c.slots[1];
  for (int64_t i = 0; i < c.n; ++i) {
    const float p = has_decay ? c.p[i] * decay : c.p[i];
    const float g = has_l2 ? c.g[i] + l2 * c.p[i] : c.g[i];
    const float mi = m[i] * b1 + c1 * g;
    const float vi = v[i] * b2 + c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / b2s + eps;
    c.out[i] = p + neg_step_size * mi / denom;
  }
}

}  // namespace mlxd::train
