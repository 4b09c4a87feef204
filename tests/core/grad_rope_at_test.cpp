// rope_at (per-row positions, as packed training batches use): equal to rope at each position, gradients by
// finite differences, results independent of the calls before them, and its argument checks.
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "grad_check.h"

namespace mlxd {
namespace {

using grad_check::check_grad;
using grad_check::randn;
using grad_check::weighted_sum;

TEST(RopeAt, EachRowMatchesRopeAtItsPosition) {
  for (bool traditional : {false, true}) {
    rope_options o;
    o.traditional = traditional;
    o.offset = 2;
    o.scale = 0.5f;
    o.inv_freqs = llama3_rope_freqs(8, 10000.0f, 8.0f, 1.0f, 4.0f, 64);
    const array x = randn({2, 3, 4, 8}, 1);  // [batch, seq, heads, head_dim]
    const std::vector<int32_t> pos{0, 1, 2, 5, 0, 9};
    const array got = rope_at(x, array::from(pos, {2, 3}), o);
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t t = 0; t < 3; ++t) {
        rope_options at = o;
        at.offset = o.offset + pos[b * 3 + t];
        // rope rotates the first row of a [.., 1, head_dim] slice by `offset`.
        const array row = reshape(slice(x, {b, t, 0, 0}, {b + 1, t + 1, 4, 8}), {4, 1, 8});
        const array want = rope(row, at);
        EXPECT_TRUE(allclose(reshape(slice(got, {b, t, 0, 0}, {b + 1, t + 1, 4, 8}), {4, 1, 8}), want, 0, 0));
      }
    }
  }
}

TEST(RopeAt, GradientMatchesFiniteDifferences) {
  rope_options o;
  o.dims = 6;
  const array pos = array::from(std::vector<int32_t>{3, 0, 1, 7, 2, 2}, {3, 2});
  EXPECT_TRUE(check_grad([&](const std::vector<array>& v) { return weighted_sum(rope_at(v[0], pos, o)); },
                         {randn({3, 2, 2, 8}, 2)}));
}

// rope keeps the last call's sin/cos tables per thread. Each call below differs from the one before it in
// one thing the tables depend on, and its result must equal the one a new thread (no tables yet) computes.
TEST(RopeAt, ResultsDoNotDependOnEarlierCalls) {
  const array x = randn({2, 3, 4, 8}, 4);
  const array p1 = array::from(std::vector<int32_t>{0, 1, 2, 3, 4, 5}, {2, 3});
  const array p2 = array::from(std::vector<int32_t>{0, 1, 2, 3, 4, 6}, {2, 3});
  const rope_options o;
  std::vector<std::pair<array, rope_options>> calls{{p1, o}, {p2, o}};
  for (int change = 0; change < 5; ++change) {
    rope_options c = o;
    if (change == 0) c.base = 500.0f;
    if (change == 1) c.scale = 0.25f;
    if (change == 2) c.offset = 3;
    if (change == 3) c.dims = 4;
    if (change == 4) c.inv_freqs = llama3_rope_freqs(8, 10000.0f, 8.0f, 1.0f, 4.0f, 64);
    calls.emplace_back(p1, o);
    calls.emplace_back(p1, c);
  }
  calls.emplace_back(p1, o);
  for (size_t i = 0; i < calls.size(); ++i) {
    const auto& [p, opts] = calls[i];
    const array here = rope_at(x, p, opts);
    array fresh;
    std::thread([&, &p = p, &opts = opts] { fresh = rope_at(x, p, opts); }).join();
    EXPECT_TRUE(allclose(here, fresh, 0, 0)) << "call " << i;
  }
}

TEST(RopeAt, RejectsBadPositions) {
  const array x = randn({2, 3, 4}, 3);
  rope_options o;
  EXPECT_THROW(rope_at(x, array::from(std::vector<int32_t>{0, 1, 2}, {3}), o), std::invalid_argument);
  EXPECT_THROW(rope_at(x, array::from(std::vector<int32_t>{0, -1}, {2}), o), std::invalid_argument);
  EXPECT_THROW(rope_at(x, array::from(std::vector<float>{0, 1}, {2}), o), std::invalid_argument);
  EXPECT_THROW(rope_at(x, zeros({2, 3, 4}, dtype::i32), o), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd
