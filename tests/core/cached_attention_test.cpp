// cached_attention (the decode step's attention over a KV cache) at every kernel level against its plain
// reference, and the reference against softmax(scale q K^T + causal mask) V written with other ops.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "mlxd/core/cached_attention.h"
#include "test_util.h"

namespace mlxd {
namespace {

using test::close;

struct attention_case {
  int64_t n_kv, group, n_tokens, seq, dim;
};

// The first `seq` positions of a cache [n_kv, capacity, dim] of `type`: a view whose heads are strided as a
// real cache's are.
array cache_view(uint64_t seed, const attention_case& c, dtype type) {
  const array full = astype(test::randn(seed, {c.n_kv, c.seq + 5, c.dim}), type);
  return slice_axis(full, 1, 0, c.seq);
}

// The same attention from matmul, a mask and softmax: token t of the last n_tokens sees keys 0 .. seq - T +
// t.
array attention_by_ops(const array& q, const array& k, const array& v, const attention_case& c, float scale) {
  std::vector<float> mask(static_cast<size_t>(c.n_tokens * c.seq));
  for (int64_t t = 0; t < c.n_tokens; ++t) {
    for (int64_t s = 0; s < c.seq; ++s)
      mask[t * c.seq + s] = s <= c.seq - c.n_tokens + t ? 0.0f : -std::numeric_limits<float>::infinity();
  }
  array scores = multiply(matmul(q, swapaxes(astype(k, dtype::f32), 1, 2)), array(scale));
  scores = add(reshape(scores, {c.n_kv, c.group, c.n_tokens, c.seq}), array::from(mask, {c.n_tokens, c.seq}));
  const array probs = reshape(softmax(scores, -1), {c.n_kv, c.group * c.n_tokens, c.seq});
  return matmul(probs, astype(v, dtype::f32));
}

const attention_case attention_cases[] = {
    {1, 1, 1, 1, 64},  {2, 1, 1, 7, 64},  {2, 4, 1, 70, 64}, {3, 2, 3, 300, 128},
    {1, 1, 8, 33, 80}, {2, 3, 2, 19, 20}, {1, 2, 1, 5, 3},   {2, 1, 4, 4, 48},
};

TEST(CachedAttention, EveryLevelMatchesTheReferenceForF32AndF16Caches) {
  uint64_t seed = 1;
  for (const attention_case& c : attention_cases) {
    for (dtype type : {dtype::f32, dtype::f16}) {
      const array q = test::randn(seed++, {c.n_kv, c.group * c.n_tokens, c.dim});
      const array k = cache_view(seed++, c, type), v = cache_view(seed++, c, type);
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
      array want;
      {
        kernel_level_guard guard(kernel_level::reference);
        want = cached_attention(q, k, v, c.group, scale);
      }
      const std::string what = "dim " + std::to_string(c.dim) + " seq " + std::to_string(c.seq) + " group " +
                               std::to_string(c.group) + " T " + std::to_string(c.n_tokens) + " " +
                               std::string(name(type));
      ASSERT_EQ(want.shape(), q.shape()) << what;
      EXPECT_TRUE(close(want, attention_by_ops(q, k, v, c, scale), 2e-5, 2e-6)) << what;
      for (kernel_level level : test::fast_levels()) {
        kernel_level_guard guard(level);
        EXPECT_TRUE(close(cached_attention(q, k, v, c.group, scale), want, 2e-5, 2e-6))
            << what << " level " << kernel_level_name(level);
      }
    }
  }
}

// Scores in the thousands: the softmax subtracts its maximum, so the result is the value row of the best key
// (not NaN or inf), at every level.
TEST(CachedAttention, HugeScoresPickTheBestKey) {
  const attention_case c{1, 1, 1, 9, 16};
  const array q = test::randn(7, {1, 1, 16});
  const array k = cache_view(8, c, dtype::f32), v = cache_view(9, c, dtype::f32);
  const float scale = 1e4f;
  const auto scores = matmul(q, swapaxes(k, 1, 2)).to_vector<float>();
  const int64_t best = std::max_element(scores.begin(), scores.end()) - scores.begin();
  const array want = reshape(slice_axis(v, 1, best, best + 1), {1, 1, 16});
  for (kernel_level level : test::fast_levels()) {
    kernel_level_guard guard(level);
    EXPECT_TRUE(close(cached_attention(q, k, v, 1, scale), want, 1e-6, 1e-6)) << kernel_level_name(level);
  }
}

// A cache whose rows are not contiguous (keys read through a transposed layout) gives the same result as a
// contiguous copy of it.
TEST(CachedAttention, NonContiguousRowsAreCopiedFirst) {
  const array q = test::randn(3, {2, 1, 8});
  const array kt = test::randn(4, {2, 8, 6}), v = test::randn(5, {2, 6, 8});
  const array k = swapaxes(kt, 1, 2);
  ASSERT_FALSE(k.is_contiguous());
  EXPECT_TRUE(
      close(cached_attention(q, k, v, 1, 0.5f), cached_attention(q, contiguous(k), v, 1, 0.5f), 0, 0));
}

TEST(CachedAttention, RejectsShapesThatDoNotFit) {
  const array q = zeros({2, 4, 8}), kv = zeros({2, 6, 8});
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] {
              cached_attention(q, zeros({3, 6, 8}), zeros({3, 6, 8}), 2, 1.0f);
            }).find("must be [n_kv, group * T, head_dim]"),
            std::string::npos);
  EXPECT_NE(message([&] {
              cached_attention(q, kv, zeros({2, 6, 4}), 2, 1.0f);
            }).find("values"),
            std::string::npos);
  EXPECT_NE(message([&] { cached_attention(q, kv, kv, 3, 1.0f); }).find("group 3"), std::string::npos);
  // T = 4 queries need at least 4 keys.
  EXPECT_NE(message([&] {
              cached_attention(q, zeros({2, 3, 8}), zeros({2, 3, 8}), 1, 1.0f);
            }).find("S >= T"),
            std::string::npos);
  EXPECT_NE(message([&] { cached_attention(astype(q, dtype::i32), kv, kv, 2, 1.0f); }).find("must be float"),
            std::string::npos);
}

}  // namespace
}  // namespace mlxd
