#include "grad_check.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <sstream>

namespace mlxd::grad_check {
namespace {

// The value `v` becomes once stored in dtype `t` (f16/bf16 round).
double stored(double v, dtype t) {
  return array::from(std::vector<double>{v}, {1}, t).item<double>();
}

double evaluate(const loss_fn& f, const std::vector<array>& args) {
  return f(args).item<double>();
}

}  // namespace

::testing::AssertionResult matches_numeric(const loss_fn& f, const std::vector<array>& inputs,
                                           const std::vector<array>& analytic, const options& opts) {
  if (analytic.size() != inputs.size()) {
    return ::testing::AssertionFailure()
           << analytic.size() << " gradients for " << inputs.size() << " inputs";
  }
  std::ostringstream problems;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const array& x = inputs[i];
    if (analytic[i].shape() != x.shape() || analytic[i].type() != x.type()) {
      problems << "\n  input " << i << " " << x.to_string() << ": gradient is " << analytic[i].to_string();
      continue;
    }
    const std::vector<double> ana = analytic[i].to_vector<double>();
    if (!is_floating(x.type())) {
      if (std::any_of(ana.begin(), ana.end(), [](double g) { return g != 0; })) {
        problems << "\n  input " << i << " " << x.to_string() << ": non-zero gradient for a non-float input";
      }
      continue;
    }
    const std::vector<double> values = x.to_vector<double>();
    std::vector<array> args = inputs;
    int64_t n_bad = 0, worst = -1;
    double worst_ratio = 0, worst_num = 0;
    for (size_t j = 0; j < values.size(); ++j) {
      const double h = opts.step * std::max(1.0, std::fabs(values[j]));
      std::vector<double> perturbed = values;
      const double up = stored(values[j] + h, x.type()), down = stored(values[j] - h, x.type());
      perturbed[j] = up;
      args[i] = array::from(perturbed, x.shape(), x.type());
      const double f_up = evaluate(f, args);
      perturbed[j] = down;
      args[i] = array::from(perturbed, x.shape(), x.type());
      const double f_down = evaluate(f, args);
      const double num = (f_up - f_down) / (up - down);
      const double ratio = std::fabs(num - ana[j]) / (opts.atol + opts.rtol * std::fabs(num));
      if (!(ratio <= 1.0)) {  // also catches NaN
        ++n_bad;
        if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = static_cast<int64_t>(j), worst_num = num;
      }
    }
    if (n_bad > 0) {
      problems << "\n  input " << i << " " << x.to_string() << ": " << n_bad << " of " << values.size()
               << " elements differ; worst at flat index " << worst << ": analytic " << ana[worst]
               << ", numeric " << worst_num;
    }
  }
  const std::string text = problems.str();
  if (text.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "gradients disagree with central differences:" << text;
}

::testing::AssertionResult check_grad(const loss_fn& f, const std::vector<array>& inputs,
                                      const options& opts) {
  std::pair<array, std::vector<array>> result;
  double direct = 0;
  try {
    result = value_and_grad(f, inputs);
    direct = evaluate(f, inputs);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw: " << e.what();
  }
  const double value = result.first.item<double>();
  if (!(std::fabs(value - direct) <= 1e-6 * (1.0 + std::fabs(direct)))) {
    return ::testing::AssertionFailure() << "value_and_grad gave " << value << " but f gives " << direct;
  }
  return matches_numeric(f, inputs, result.second, opts);
}

array randn(const shape_t& shape, uint64_t stream, float scale) {
  return random::normal(key_for(stream), shape, 0.0f, scale);
}

array randu(const shape_t& shape, uint64_t stream, float lo, float hi) {
  return random::uniform(key_for(stream), shape, lo, hi);
}

array signed_uniform(const shape_t& shape, uint64_t stream, float lo, float hi) {
  std::vector<float> v = randu(shape, stream, lo, hi).to_vector<float>();
  const std::vector<float> coin =
      random::uniform(random::split(key_for(stream), 1), shape).to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = coin[i] < 0.5f ? -v[i] : v[i];
  return array::from(v, shape, dtype::f32);
}

array away_from(const array& x, const std::vector<float>& points, float margin) {
  std::vector<float> v = x.to_vector<float>();
  for (float& e : v) {
    for (float p : points) {
      if (std::fabs(e - p) < margin) e = e >= p ? p + margin : p - margin;
    }
  }
  return array::from(v, x.shape(), dtype::f32);
}

array distinct_values(const shape_t& shape, uint64_t stream, float spacing) {
  const int64_t n = shape_size(shape);
  const std::vector<int64_t> perm = argsort(random::uniform(key_for(stream), {n})).to_vector<int64_t>();
  const std::vector<float> jitter =
      random::uniform(random::split(key_for(stream), 1), {n}, 0.0f, 0.3f * spacing).to_vector<float>();
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    v[perm[k]] = (static_cast<float>(k) - static_cast<float>(n - 1) / 2.0f) * spacing + jitter[k];
  }
  return array::from(v, shape, dtype::f32);
}

std::vector<kernel_level> kernel_levels() {
  std::vector<kernel_level> levels;
  for (int i = 0; i <= static_cast<int>(best_kernel_level()); ++i)
    levels.push_back(static_cast<kernel_level>(i));
  return levels;
}

array weighted_sum(const array& out, uint64_t stream) {
  return sum(multiply(out, random::normal(key_for(stream), out.shape())));
}

}  // namespace mlxd::grad_check
