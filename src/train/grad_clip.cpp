#include "mlxd/train/grad_clip.h"

#include <cmath>
#include <stdexcept>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::train {

namespace {

constexpr int64_t kGrain = int64_t{1} << 16;

}  // namespace

double global_grad_norm(const std::vector<array>& grads) {
  double total = 0.0;
  for (const array& grad : grads) {
    if (grad.type() != dtype::f32) {
      throw std::invalid_argument("[global_grad_norm] gradients must be f32, got " + grad.to_string());
    }
    const array g = contiguous(grad);
    const float* x = g.data<float>();
    // One partial per fixed chunk, added in chunk order: the sum does not depend on the thread count.
    std::vector<double> partial(static_cast<size_t>((g.size() + kGrain - 1) / kGrain), 0.0);
    parallel_for(g.size(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; c += kGrain) {
        double s = 0.0;
        for (int64_t i = c; i < std::min(end, c + kGrain); ++i) s += static_cast<double>(x[i]) * x[i];
        partial[static_cast<size_t>(c / kGrain)] = s;
      }
    });
    for (double s : partial) total += s;
  }
  return std::sqrt(total);
}

clip_result clip_grad_norm(std::vector<array>& grads, double max_norm) {
  if (!(max_norm > 0.0) || !std::isfinite(max_norm)) {
    throw std::invalid_argument("[clip_grad_norm] max_norm must be finite and > 0");
  }
  autograd::no_grad no_tape;
  clip_result r;
  r.norm = global_grad_norm(grads);
  r.finite = std::isfinite(r.norm);
  if (!r.finite || r.norm <= max_norm) return r;
  const auto scale = static_cast<float>(max_norm / (r.norm + 1e-6));
  for (array& grad : grads) {
    const array g = contiguous(grad);
    array out = array::empty(g.shape(), dtype::f32);
    const float* x = g.data<float>();
    float* y = out.mutable_data<float>();
    parallel_for(g.size(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) y[i] = x[i] * scale;
    });
    grad = std::move(out);
  }
  r.clipped = true;
  return r;
}

}  // namespace mlxd::train
