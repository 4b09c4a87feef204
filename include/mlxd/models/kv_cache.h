// Per-sequence key/value cache of a decoder: for each layer, keys and values of every position seen so far.
#pragma once

#include <vector>

#include "mlxd/core/array.h"

namespace mlxd::models {

class kv_cache {
 public:
  // Room for `capacity` positions of `n_layers` layers with [n_kv_heads, head_dim] per position, f32.
  kv_cache(int n_layers, int n_kv_heads, int head_dim, int capacity);

  int length() const { return length_; }  // positions stored (the next position to write)
  int capacity() const { return capacity_; }
  int n_layers() const { return static_cast<int>(k_.size()); }

  // Writes k, v [n_kv_heads, n_new, head_dim] for `layer` at positions length()..length()+n_new-1. The length
  // advances only through commit(), once every layer has written the same positions.
  void write(int layer, const array& k, const array& v);
  void commit(int n_new);
  // Forgets every position from `n` on (n <= length()), e.g. to regenerate from a prefix or to rewind a
  // benchmark.
  void truncate(int n);
  // Views of the first `n` positions of `layer`: [n_kv_heads, n, head_dim].
  array keys(int layer, int n) const;
  array values(int layer, int n) const;

 private:
  int n_kv_heads_, head_dim_, capacity_, length_ = 0;
  std::vector<array> k_, v_;  // per layer [n_kv_heads, capacity, head_dim]
};

}  // namespace mlxd::models
