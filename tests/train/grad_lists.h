// Gradient lists for the all-reducer tests: seeded per rank, in shapes that exercise bucketing.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/core/ops.h"

namespace mlxd::train::test {

// `exact`: multiples of 1/64 in [-8, 8), whose sums over a few ranks are exact in f32 in any order, so a
// reference added in another order must match bit for bit. Otherwise full-precision normal values.
inline array seeded_grad(const shape_t& shape, uint64_t seed, bool exact) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_size(shape)));
  for (auto& x : v)
    x = exact ? static_cast<float>(static_cast<int>(rng() % 1024) - 512) / 64.0f : normal(rng);
  return array::from(v, shape, dtype::f32);
}

// Rank `rank`'s gradients: odd sizes, many small tensors, a zero-size one, a transposed (non-contiguous)
// view, and `big` elements in one tensor (pick it larger than a bucket).
inline std::vector<array> grad_list(int rank, bool exact, int64_t big) {
  std::vector<shape_t> shapes = {{3}, {7, 11}, {1}, {0}, {big}, {5, 1, 3}};
  for (int i = 0; i < 150; ++i) shapes.push_back({1 + i % 5});
  shapes.push_back({1001});
  std::vector<array> out;
  uint64_t seed = 7919ULL * static_cast<uint64_t>(rank + 1);
  for (const auto& s : shapes) out.push_back(seeded_grad(s, seed++, exact));
  out.push_back(transpose(seeded_grad({13, 9}, seed++, exact), {1, 0}));
  return out;
}

// The elementwise sum over ranks 0..world-1 of grad_list, added in rank order in f32.
inline std::vector<std::vector<float>> reference_sums(int world, bool exact, int64_t big) {
  std::vector<std::vector<float>> acc;
  for (int r = 0; r < world; ++r) {
    const auto grads = grad_list(r, exact, big);
    if (r == 0) acc.resize(grads.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      const auto v = grads[i].to_vector<float>();
      if (r == 0) acc[i] = v;
      for (size_t j = 0; r > 0 && j < v.size(); ++j) acc[i][j] += v[j];
    }
  }
  return acc;
}

}  // namespace mlxd::train::test
