// Every collective checked against a reference computed locally; shared by the in-process tests and the
// multi-process worker.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "comm_test_util.h"
#include "mlxd/core/ops.h"

namespace mlxd::comm {

using test::bytes_of;
using test::seeded;

inline constexpr dtype all_dtypes[] = {dtype::f32, dtype::f16, dtype::bf16,   dtype::i32,
                                       dtype::i64, dtype::u8,  dtype::boolean};

inline uint64_t seed_of(int rank, int round) {
  return 1000003ULL * static_cast<uint64_t>(rank + 1) + static_cast<uint64_t>(round);
}

// The reduction of every rank's seeded input, computed element by element in double.
inline array reference_reduce(const shape_t& shape, dtype t, reduce_op op, int world, int round) {
  std::vector<double> acc;
  for (int r = 0; r < world; ++r) {
    const auto v = seeded(shape, t, seed_of(r, round)).to_vector<double>();
    if (r == 0) {
      acc = v;
      continue;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (t == dtype::boolean)
        acc[i] = op == reduce_op::min ? double(acc[i] && v[i]) : double(acc[i] || v[i]);
      else if (op == reduce_op::max)
        acc[i] = std::max(acc[i], v[i]);
      else if (op == reduce_op::min)
        acc[i] = std::min(acc[i], v[i]);
      else
        acc[i] += v[i];
    }
  }
  for (auto& a : acc) {
    if (op == reduce_op::mean) a /= world;
    if (t == dtype::u8) a = std::fmod(a, 256.0);
  }
  return array::from(acc, shape, t);
}

inline void expect_equal(const array& got, const array& want, const std::string& what) {
  ASSERT_EQ(got.type(), want.type()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  if (bytes_of(got) == bytes_of(want)) return;
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], w[i], 1e-2 * std::abs(w[i]) + 1e-6) << what << " element " << i;
}

// Every collective on every dtype and several sizes; `round` varies the inputs.
inline void check_all_collectives(group& g, const std::vector<int64_t>& sizes) {
  const int n = g.size(), me = g.rank();
  int round = 0;
  for (dtype t : all_dtypes) {
    for (int64_t len : sizes) {
      ++round;
      const std::string what =
          std::string(name(t)) + "[" + std::to_string(len) + "] world " + std::to_string(n);
      const shape_t shape{len};
      array x = seeded(shape, t, seed_of(me, round));
      for (reduce_op op : {reduce_op::sum, reduce_op::max, reduce_op::min, reduce_op::mean}) {
        if (op == reduce_op::mean && !is_floating(t)) continue;
        expect_equal(g.all_reduce(x, op), reference_reduce(shape, t, op, n, round),
                     what + " all_reduce " + reduce_op_name(op));
      }
      // all_gather: [n, len], row r is rank r's input.
      array gathered = g.all_gather(x);
      ASSERT_EQ(gathered.shape(), (shape_t{n, len})) << what;
      for (int r = 0; r < n; ++r)
        expect_equal(slice(gathered, {r, 0}, {r + 1, len}),
                     reshape(seeded(shape, t, seed_of(r, round)), {1, len}),
                     what + " all_gather row " + std::to_string(r));
      // reduce_scatter over an input of n * len elements.
      const shape_t big{n * len};
      array y = seeded(big, t, seed_of(me, round + 500));
      array part = g.reduce_scatter(y, reduce_op::sum);
      array full = reference_reduce(big, t, reduce_op::sum, n, round + 500);
      expect_equal(part, contiguous(slice(full, {me * len}, {(me + 1) * len})), what + " reduce_scatter");
      // broadcast from the last rank.
      const int root = n - 1;
      array b = g.broadcast(me == root ? x : array::empty({0}, dtype::u8), root);
      expect_equal(b, seeded(shape, t, seed_of(root, round)), what + " broadcast");
    }
  }
  g.barrier();
}

}  // namespace mlxd::comm
