#include "mlxd/train/grad_accumulator.h"

#include <cstring>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/core/thread_pool.h"

namespace mlxd::train {

namespace {

constexpr int64_t kGrain = int64_t{1} << 16;

}  // namespace

void grad_accumulator::add(const std::vector<array>& grads) {
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].type() != dtype::f32) {
      throw std::invalid_argument("[grad_accumulator::add] gradient " + std::to_string(i) + " is " +
                                  grads[i].to_string() + "; expected f32");
    }
  }
  if (count_ > 0) {
    if (grads.size() != sums_.size()) {
      throw std::invalid_argument("[grad_accumulator::add] got " + std::to_string(grads.size()) +
                                  " gradients, earlier micro-batches had " + std::to_string(sums_.size()));
    }
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].shape() != sums_[i].shape()) {
        throw std::invalid_argument("[grad_accumulator::add] gradient " + std::to_string(i) + " is " +
                                    grads[i].to_string() + ", earlier ones " + sums_[i].to_string());
      }
    }
  }
  // A private copy on the first add: the caller's arrays stay immutable and the sums can be updated in place.
  const bool first = count_ == 0;
  if (first) sums_.assign(grads.size(), array());
  for (size_t i = 0; i < grads.size(); ++i) {
    const array g = contiguous(grads[i]);
    if (first) sums_[i] = array::empty(g.shape(), dtype::f32);
    const float* x = g.data<float>();
    float* s = sums_[i].mutable_data<float>();
    parallel_for(g.size(), kGrain, [&](int64_t begin, int64_t end) {
      if (first) {
        std::memcpy(s + begin, x + begin, static_cast<size_t>(end - begin) * sizeof(float));
      } else {
        for (int64_t k = begin; k < end; ++k) s[k] += x[k];
      }
    });
  }
  ++count_;
}

std::vector<array> grad_accumulator::take(double scale) {
  if (count_ == 0) throw std::logic_error("[grad_accumulator::take] no gradients were added");
  if (scale != 1.0) {
    const auto f = static_cast<float>(scale);
    for (array& a : sums_) {
      float* s = a.mutable_data<float>();
      parallel_for(a.size(), kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) s[k] *= f;
      });
    }
  }
  std::vector<array> out = std::move(sums_);
  reset();
  return out;
}

void grad_accumulator::reset() {
  sums_.clear();
  count_ = 0;
}

}  // namespace mlxd::train
