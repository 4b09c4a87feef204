// causal_attention against the same attention composed of matmul, an additive mask and softmax (values and
// gradients), by finite differences, and its argument checks.
#include <cmath>
#include <stdexcept>

#include "grad_check.h"

namespace mlxd {
namespace {

using grad_check::check_grad;
using grad_check::randn;
using grad_check::weighted_sum;

// The reference: scores [b, h, t, s] + (0 or -inf) from the causal segment mask, softmax, times v; kv heads
// repeated for their query heads.
array composed_attention(const array& q, const array& k, const array& v, const std::vector<int32_t>& seg,
                         float scale) {
  const int64_t B = q.shape(0), H = q.shape(1), KV = k.shape(1), T = q.shape(2);
  std::vector<float> m(static_cast<size_t>(B * T * T));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t s = 0; s < T; ++s) {
        const bool same = seg.empty() || seg[b * T + s] == seg[b * T + t];
        m[(b * T + t) * T + s] = s <= t && same ? 0.0f : -INFINITY;
      }
    }
  }
  std::vector<array> ks, vs;
  for (int64_t h = 0; h < H; ++h) {
    const int64_t kvh = h / (H / KV);
    ks.push_back(slice_axis(k, 1, kvh, kvh + 1));
    vs.push_back(slice_axis(v, 1, kvh, kvh + 1));
  }
  const array kr = concatenate(ks, 1), vr = concatenate(vs, 1);
  array scores = multiply(matmul(q, swapaxes(kr, 2, 3)), array(scale));
  scores = add(scores, array::from(m, {B, 1, T, T}));
  return matmul(softmax(scores, -1), vr);
}

struct attention_case {
  const char* name;
  int64_t rows, heads, kv_heads, seq, head_dim;
  std::vector<int32_t> seg;  // empty: one segment per row
};

std::vector<int32_t> segments_of(int64_t rows, int64_t seq, uint64_t stream) {
  // Runs of random lengths; the last id of each row reappears after another run (a non-contiguous segment).
  std::vector<int32_t> seg;
  const auto lens = randn({rows * seq}, stream).to_vector<float>();
  for (int64_t b = 0; b < rows; ++b) {
    int32_t id = 0;
    for (int64_t t = 0; t < seq; ++t) {
      if (t > 0 && std::fabs(lens[b * seq + t]) > 1.6f) ++id;
      seg.push_back(t >= seq - 3 ? 0 : id);
    }
  }
  return seg;
}

TEST(CausalAttention, MatchesComposedAttention) {
  const std::vector<attention_case> cases = {
      {"one segment, mha", 2, 2, 2, 9, 4, {}},
      {"packed gqa across blocks", 2, 4, 2, 150, 8, segments_of(2, 150, 5)},
      {"mqa, short", 1, 3, 1, 5, 6, {0, 0, 1, 1, 1}},
  };
  uint64_t stream = 10;
  for (const attention_case& c : cases) {
    SCOPED_TRACE(c.name);
    const array q = randn({c.rows, c.heads, c.seq, c.head_dim}, ++stream);
    const array k = randn({c.rows, c.kv_heads, c.seq, c.head_dim}, ++stream);
    const array v = randn({c.rows, c.kv_heads, c.seq, c.head_dim}, ++stream);
    const array seg = c.seg.empty() ? array() : array::from(c.seg, {c.rows, c.seq});
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    EXPECT_TRUE(allclose(causal_attention(q, k, v, seg, scale), composed_attention(q, k, v, c.seg, scale),
                         1e-4, 1e-5));
    const auto fused = grad(
        [&](const std::vector<array>& x) {
          return weighted_sum(causal_attention(x[0], x[1], x[2], seg, scale));
        },
        {q, k, v});
    const auto composed = grad(
        [&](const std::vector<array>& x) {
          return weighted_sum(composed_attention(x[0], x[1], x[2], c.seg, scale));
        },
        {q, k, v});
    for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(allclose(fused[i], composed[i], 1e-4, 1e-5)) << "input " << i;
  }
}

TEST(CausalAttention, GradientMatchesFiniteDifferences) {
  const array seg = array::from(std::vector<int32_t>{0, 0, 0, 1, 1, 0, 0, 0, 0, 0}, {2, 5});
  EXPECT_TRUE(check_grad(
      [&](const std::vector<array>& x) {
        return weighted_sum(causal_attention(x[0], x[1], x[2], seg, 0.7f));
      },
      {randn({2, 4, 5, 3}, 1), randn({2, 2, 5, 3}, 2), randn({2, 2, 5, 3}, 3)}));
}

TEST(CausalAttention, RejectsBadShapes) {
  const array q = randn({1, 4, 5, 3}, 1), k = randn({1, 3, 5, 3}, 2), k2 = randn({1, 2, 5, 3}, 3);
  EXPECT_THROW(causal_attention(q, k, k, array(), 1.0f), std::invalid_argument);  // 4 heads, 3 kv heads
  EXPECT_THROW(causal_attention(q, k2, randn({1, 2, 4, 3}, 4), array(), 1.0f), std::invalid_argument);
  EXPECT_THROW(causal_attention(q, k2, k2, zeros({1, 4}, dtype::i32), 1.0f), std::invalid_argument);
  EXPECT_THROW(causal_attention(q, k2, k2, zeros({1, 5}), 1.0f), std::invalid_argument);  // float segments
  EXPECT_THROW(causal_attention(reshape(q, {4, 5, 3}), k2, k2, array(), 1.0f), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd
