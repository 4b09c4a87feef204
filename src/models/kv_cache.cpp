#include "mlxd/models/kv_cache.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "mlxd/core/ops.h"

namespace mlxd::models {

kv_cache::kv_cache(int n_layers, int n_kv_heads, int head_dim, int capacity)
    : n_kv_heads_(n_kv_heads), head_dim_(head_dim), capacity_(capacity) {
  for (int l = 0; l < n_layers; ++l) {
    k_.push_back(zeros({n_kv_heads, capacity, head_dim}));
    v_.push_back(zeros({n_kv_heads, capacity, head_dim}));
  }
}

void kv_cache::write(int layer, const array& k, const array& v) {
  const shape_t want{n_kv_heads_, k.shape(1), head_dim_};
  if (k.shape() != want || v.shape() != want || k.type() != dtype::f32 || v.type() != dtype::f32) {
    throw std::invalid_argument("[kv_cache] write of " + k.to_string() + " / " + v.to_string() +
                                ", expected f32" + shape_to_string(want));
  }
  const int64_t n_new = k.shape(1);
  if (length_ + n_new > capacity_) {
    throw std::invalid_argument("[kv_cache] " + std::to_string(length_ + n_new) +
                                " positions exceed the capacity " + std::to_string(capacity_));
  }
  // The cache owns these buffers and no view of the written range escapes before the write.
  for (const auto& [src, dst] : {std::pair{contiguous(k), k_[layer]}, std::pair{contiguous(v), v_[layer]}}) {
    float* d = dst.mutable_data<float>();
    for (int h = 0; h < n_kv_heads_; ++h) {
      std::memcpy(d + (static_cast<int64_t>(h) * capacity_ + length_) * head_dim_,
                  src.data<float>() + h * n_new * head_dim_, sizeof(float) * n_new * head_dim_);
    }
  }
}

void kv_cache::commit(int n_new) {
  length_ += n_new;
}

void kv_cache::truncate(int n) {
  if (n < 0 || n > length_) {
    throw std::invalid_argument("[kv_cache] cannot truncate " + std::to_string(length_) + " positions to " +
                                std::to_string(n));
  }
  length_ = n;
}

array kv_cache::keys(int layer, int n) const {
  return slice_axis(k_[layer], 1, 0, n);
}
array kv_cache::values(int layer, int n) const {
  return slice_axis(v_[layer], 1, 0, n);
}

}  // namespace mlxd::models
