#include "mlxd/rlhf/masked.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace mlxd::rlhf {

array valid_mask(const array& mask, const shape_t& shape, const char* fn) {
  if (mask.shape() != shape) {
    throw std::invalid_argument(std::string("[") + fn + "] mask " + mask.to_string() + " is not of shape " +
                                shape_to_string(shape));
  }
  const std::vector<double> m = mask.to_vector<double>();
  std::vector<uint8_t> valid(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    if (std::isnan(m[i])) {
      throw std::invalid_argument(std::string("[") + fn + "] mask is NaN at flat index " + std::to_string(i));
    }
    valid[i] = m[i] != 0 ? 1 : 0;
  }
  return array::from(valid, mask.shape(), dtype::boolean);
}

int64_t count_valid(const array& mask) {
  const std::vector<double> m = mask.to_vector<double>();
  return static_cast<int64_t>(std::count_if(m.begin(), m.end(), [](double v) { return v != 0; }));
}

array masked_zero(const array& x, const array& mask) {
  // where, not multiply: 0 * inf is NaN in the value and 0 * NaN in the gradient.
  return where(valid_mask(mask, x.shape(), "masked_zero"), astype(x, dtype::f32), zeros({}, dtype::f32));
}

array masked_sum(const array& x, const array& mask, const axes_t& axes) {
  return sum(masked_zero(x, mask), axes);
}

array masked_mean(const array& x, const array& mask, const axes_t& axes) {
  const array counts = sum(astype(valid_mask(mask, x.shape(), "masked_mean"), dtype::f32), axes);
  return divide(masked_sum(x, mask, axes), maximum(counts, array(1.0f)));
}

array token_mean(const array& x, const array& mask, double global_count) {
  if (!std::isfinite(global_count) || global_count < 0) {
    throw std::invalid_argument("[token_mean] global token count must be finite and >= 0, got " +
                                std::to_string(global_count));
  }
  return divide(masked_sum(x, mask), array(static_cast<float>(std::max(global_count, 1.0))));
}

array last_valid(const array& x, const array& mask) {
  if (x.ndim() < 2) throw std::invalid_argument("[last_valid] x must be [B, T, ...], got " + x.to_string());
  const int64_t rows = x.shape(0), cols = x.shape(1);
  const std::vector<uint8_t> m = valid_mask(mask, {rows, cols}, "last_valid").to_vector<uint8_t>();
  std::vector<int64_t> flat(rows);
  for (int64_t b = 0; b < rows; ++b) {
    int64_t t = cols - 1;
    while (t >= 0 && !m[b * cols + t]) --t;
    if (t < 0)
      throw std::invalid_argument("[last_valid] row " + std::to_string(b) + " has no valid position");
    flat[b] = b * cols + t;
  }
  shape_t merged = x.shape();
  merged.erase(merged.begin());
  merged[0] = rows * cols;
  return take(reshape(x, merged), array::from(flat, {rows}, dtype::i64), 0);
}

array whiten(const array& x, const array& mask, bool shift_mean, double eps) {
  const array valid = valid_mask(mask, x.shape(), "whiten");
  if (!(eps > 0)) throw std::invalid_argument("[whiten] eps must be > 0, got " + std::to_string(eps));
  const std::vector<double> v = x.to_vector<double>();
  const std::vector<uint8_t> m = valid.to_vector<uint8_t>();
  double n = 0, s = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!m[i]) continue;
    if (!std::isfinite(v[i]))
      throw std::invalid_argument("[whiten] non-finite value at flat index " + std::to_string(i));
    n += 1, s += v[i];
  }
  if (n == 0) throw std::invalid_argument("[whiten] the mask selects no position of " + x.to_string());
  const double mu = s / n;
  double ss = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (m[i]) ss += (v[i] - mu) * (v[i] - mu);
  }
  const double var = n > 1 ? ss / (n - 1) : 0.0;
  const double inv = 1.0 / std::sqrt(var + eps);
  std::vector<float> out(v.size(), 0.0f);
  for (size_t i = 0; i < v.size(); ++i) {
    if (m[i]) out[i] = static_cast<float>(((v[i] - mu) * inv) + (shift_mean ? 0.0 : mu));
  }
  return array::from(out, x.shape(), dtype::f32);
}

}  // namespace mlxd::rlhf
