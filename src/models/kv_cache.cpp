#include "mlxd/models/kv_cache.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "mlxd/core/ops.h"

namespace mlxd::models {

kv_cache::kv_cache(int n_layers, int n_kv_heads, int head_dim, int capacity, dtype type)
    : n_kv_heads_(n_kv_heads), head_dim_(head_dim), capacity_(capacity), type_(type) {
  if (type != dtype::f32 && type != dtype::f16)
    throw std::invalid_argument("[kv_cache] a cache stores f32 or f16, not " + std::string(mlxd::name(type)));
  for (int l = 0; l < n_layers; ++l) {
    k_.push_back(zeros({n_kv_heads, capacity, head_dim}, type));
    v_.push_back(zeros({n_kv_heads, capacity, head_dim}, type));
  }
}

uint64_t kv_cache::capacity_bytes() const {
  uint64_t n = 0;
  for (size_t l = 0; l < k_.size(); ++l) n += k_[l].nbytes() + v_[l].nbytes();
  return n;
}

void kv_cache::write(int layer, const array& k, const array& v) {
  const shape_t want{n_kv_heads_, k.shape(1), head_dim_};
  auto is_float = [](const array& a) { return a.type() == dtype::f32 || a.type() == dtype::f16; };
  if (k.shape() != want || v.shape() != want || !is_float(k) || !is_float(v)) {
    throw std::invalid_argument("[kv_cache] write of " + k.to_string() + " / " + v.to_string() +
                                ", expected f32 or f16" + shape_to_string(want));
  }
  const int64_t n_new = k.shape(1);
  if (length_ + n_new > capacity_) {
    throw std::invalid_argument("[kv_cache] " + std::to_string(length_ + n_new) +
                                " positions exceed the capacity " + std::to_string(capacity_));
  }
  // The cache owns these buffers and no view of the written range escapes before the write.
  const size_t item = size_of(type_);
  for (const auto& [src, dst] : {std::pair{contiguous(astype(k, type_)), k_[layer]},
                                 std::pair{contiguous(astype(v, type_)), v_[layer]}}) {
    auto* d = dst.mutable_data<unsigned char>();
    const auto* s = static_cast<const unsigned char*>(src.raw_data());
    for (int h = 0; h < n_kv_heads_; ++h) {
      std::memcpy(d + (static_cast<int64_t>(h) * capacity_ + length_) * head_dim_ * item,
                  s + h * n_new * head_dim_ * item, item * n_new * head_dim_);
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

array kv_cache::keys(int layer, int end, int begin) const {
  return slice_axis(k_[layer], 1, begin, end);
}
array kv_cache::values(int layer, int end, int begin) const {
  return slice_axis(v_[layer], 1, begin, end);
}

}  // namespace mlxd::models
