// Per-sequence key/value cache of a decoder: for each layer, keys and values of every position seen so far.
#pragma once

#include <cstdint>
#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::models {

class kv_cache {
 public:
  // Room for `capacity` positions of `n_layers` layers with [n_kv_heads, head_dim] per position, stored as
  // `type`: f32, or f16 (half the memory; keys and values are rounded to f16 as they are written). Throws
  // std::invalid_argument for another dtype.
  kv_cache(int n_layers, int n_kv_heads, int head_dim, int capacity, dtype type = dtype::f32);

  int length() const { return length_; }  // positions stored (the next position to write)
  int capacity() const { return capacity_; }
  int n_layers() const { return static_cast<int>(k_.size()); }
  dtype type() const { return type_; }
  // Bytes the cache holds for its capacity (keys and values of every layer).
  uint64_t capacity_bytes() const;

  // Writes k, v [n_kv_heads, n_new, head_dim] (f32 or f16; converted to type()) for `layer` at positions
  // length()..length()+n_new-1. The length advances only through commit(), once every layer has written the
  // same positions.
  void write(int layer, const array& k, const array& v);
  void commit(int n_new);
  // Forgets every position from `n` on (n <= length()), e.g. to regenerate from a prefix or to rewind a
  // benchmark.
  void truncate(int n);
  // Views of positions [begin, end) of `layer` as stored (dtype type()): [n_kv_heads, end - begin, head_dim].
  array keys(int layer, int end, int begin = 0) const;
  array values(int layer, int end, int begin = 0) const;

 private:
  int n_kv_heads_, head_dim_, capacity_, length_ = 0;
  dtype type_;
  std::vector<array> k_, v_;  // per layer [n_kv_heads, capacity, head_dim]
};

}  // namespace mlxd::models
