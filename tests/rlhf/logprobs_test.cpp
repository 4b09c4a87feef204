// sequence_logprobs against a float64 log-softmax written out here, its gradient against central
// differences, and the masked cases: prompt/pad positions, fully masked rows, empty completions, -inf logits.
#include "mlxd/rlhf/logprobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "grad_check.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/kernel_level.h"
#include "mlxd/core/ops.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using test::near;
using test::values;

struct reference {
  std::vector<double> tokens, sums, counts;
};

// log p(label) = x[label] - max - log(sum exp(x - max)) in double, over the logits as stored.
reference reference_logprobs(const array& logits, const std::vector<int64_t>& labels,
                             const std::vector<double>& mask) {
  const int64_t b = logits.shape(0), t = logits.shape(1), v = logits.shape(2);
  const std::vector<double> x = logits.to_vector<double>();
  reference r{std::vector<double>(b * t, 0.0), std::vector<double>(b, 0.0), std::vector<double>(b, 0.0)};
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < t; ++j) {
      const int64_t p = i * t + j;
      if (mask[p] == 0) continue;
      const double* row = x.data() + p * v;
      double m = -INFINITY, s = 0;
      for (int64_t k = 0; k < v; ++k) m = std::max(m, row[k]);
      for (int64_t k = 0; k < v; ++k) s += std::exp(row[k] - m);
      r.tokens[p] = row[labels[p]] - m - std::log(s);
      r.sums[i] += r.tokens[p];
      r.counts[i] += 1;
    }
  }
  return r;
}

std::vector<std::pair<kernel_level, dtype>> levels_and_dtypes() {
  std::vector<std::pair<kernel_level, dtype>> out;
  for (kernel_level k : grad_check::kernel_levels()) {
    for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) out.emplace_back(k, t);
  }
  return out;
}

// Two rows of 5 positions: row 0 has a 2-token prompt and 1 pad, row 1 a 1-token prompt and no pad.
const std::vector<double> kMask = {0, 0, 1, 1, 0, 0, 1, 1, 1, 1};
const std::vector<int64_t> kLabels = {-100, 3, 1, 6, 99, 0, 2, 5, 0, 4};

TEST(SequenceLogprobs, MatchesFloat64ReferenceForEveryFloatDtypeAndKernelLevel) {
  for (const auto& [level, t] : levels_and_dtypes()) {
    const kernel_level_guard guard(level);
    SCOPED_TRACE(std::string(kernel_level_name(level)) + " " + std::string(name(t)));
    const array logits = astype(grad_check::randn({2, 5, 7}, 1, 3.0f), t);
    const array labels = array::from(kLabels, {2, 5}, dtype::i32);
    const token_logprobs got = sequence_logprobs(logits, labels, test::f32(kMask, {2, 5}));
    const reference want = reference_logprobs(logits, kLabels, kMask);
    EXPECT_EQ(got.tokens.type(), dtype::f32);  // fp32 whatever the logits' dtype
    EXPECT_TRUE(near(got.tokens, want.tokens, 1e-5, 1e-5));
    EXPECT_TRUE(near(got.sums, want.sums, 1e-5, 1e-5));
    EXPECT_TRUE(near(got.counts, want.counts, 0, 0));
  }
}

TEST(SequenceLogprobs, StableForHugeLogits) {
  // A spread of 1e4 between logits: exp without the max shift would overflow.
  std::vector<double> x(1 * 2 * 3);
  x = {1e4, 0, -1e4, 5000, 5001, -3};
  const array logits = test::f32(x, {1, 2, 3});
  const std::vector<int64_t> lab = {2, 1};
  const token_logprobs got =
      sequence_logprobs(logits, array::from(lab, {1, 2}, dtype::i32), test::f32({1, 1}, {1, 2}));
  const reference want = reference_logprobs(logits, lab, {1, 1});
  EXPECT_TRUE(near(got.tokens, want.tokens, 1e-6, 1e-4));
  EXPECT_TRUE(test::all_finite(got.tokens));
}

TEST(SequenceLogprobs, GradientMatchesFiniteDifferences) {
  const array logits = grad_check::randn({2, 5, 7}, 2, 2.0f);
  const array labels = array::from(kLabels, {2, 5}, dtype::i32);
  const array mask = test::f32(kMask, {2, 5});
  EXPECT_TRUE(grad_check::check_grad(
      [&](const std::vector<array>& v) {
        const token_logprobs r = sequence_logprobs(v[0], labels, mask);
        return add(grad_check::weighted_sum(r.sums, 7), grad_check::weighted_sum(r.tokens, 8));
      },
      {logits}));
}

TEST(SequenceLogprobs, MaskedPositionsGetNoGradient) {
  const array logits = grad_check::randn({2, 5, 7}, 3);
  const array mask = test::f32(kMask, {2, 5});
  const auto g =
      grad({[&](const std::vector<array>& v) {
             return sum(sequence_logprobs(v[0], array::from(kLabels, {2, 5}, dtype::i32), mask).sums);
           }},
           {logits})[0]
          .to_vector<double>();
  for (int64_t p = 0; p < 10; ++p) {
    for (int64_t k = 0; k < 7; ++k) {
      if (kMask[p] == 0) {
        EXPECT_EQ(g[p * 7 + k], 0.0) << "position " << p;
      }
    }
  }
}

TEST(SequenceLogprobs, NegativeInfinityLogitsAtMaskedPositionsAreHarmless) {
  std::vector<double> x = grad_check::randn({2, 5, 7}, 4).to_vector<double>();
  const array clean = test::f32(x, {2, 5, 7});
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t p = 0; p < 10; ++p) {
    if (kMask[p] != 0) continue;
    for (int64_t k = 0; k < 7; ++k) x[p * 7 + k] = (p % 2 == 0) ? -inf : (k == 3 ? -inf : x[p * 7 + k]);
  }
  // A valid position with -inf on a token it does not predict (a banned token) is fine too.
  x[2 * 7 + 6] = -inf;
  const array dirty = test::f32(x, {2, 5, 7});
  const array labels = array::from(kLabels, {2, 5}, dtype::i32);
  const array mask = test::f32(kMask, {2, 5});
  auto f = [&](const std::vector<array>& v) { return sum(sequence_logprobs(v[0], labels, mask).sums); };
  for (kernel_level level : grad_check::kernel_levels()) {
    const kernel_level_guard guard(level);
    SCOPED_TRACE(kernel_level_name(level));
    const auto [value, grads] = value_and_grad(f, {dirty});
    EXPECT_TRUE(test::all_finite(value));
    EXPECT_TRUE(test::all_finite(grads[0]));
    // The gradient at valid positions is what clean logits give there, apart from the banned token's row.
    const auto [clean_value, clean_grads] = value_and_grad(f, {clean});
    const std::vector<double> gd = grads[0].to_vector<double>(), gc = clean_grads[0].to_vector<double>();
    for (int64_t p = 3; p < 10; ++p) {
      for (int64_t k = 0; k < 7; ++k) {
        if (kMask[p] != 0) {
          EXPECT_NEAR(gd[p * 7 + k], gc[p * 7 + k], 1e-6) << p << " " << k;
        }
      }
    }
    const token_logprobs r = sequence_logprobs(dirty, labels, mask);
    EXPECT_TRUE(near(r.tokens, reference_logprobs(dirty, kLabels, kMask).tokens, 1e-5, 1e-5));
    EXPECT_TRUE(test::all_finite(r.tokens));
  }
}

TEST(SequenceLogprobs, FullyMaskedRowsAndEmptyCompletions) {
  const array logits = grad_check::randn({3, 4, 5}, 5);
  const std::vector<double> mask = {0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  const std::vector<int64_t> lab = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1};
  const array labels = array::from(lab, {3, 4}, dtype::i64);
  const token_logprobs r = sequence_logprobs(logits, labels, test::f32(mask, {3, 4}));
  const reference want = reference_logprobs(logits, lab, mask);
  EXPECT_TRUE(near(r.sums, want.sums, 1e-5, 1e-6));
  EXPECT_EQ(values(r.sums)[0], 0.0);
  EXPECT_EQ(values(r.sums)[2], 0.0);
  EXPECT_TRUE(near(r.counts, {0, 2, 0}, 0, 0));
  const auto g = grad({[&](const std::vector<array>& v) {
                        return sum(sequence_logprobs(v[0], labels, test::f32(mask, {3, 4})).sums);
                      }},
                      {logits})[0];
  const std::vector<double> gv = g.to_vector<double>();
  for (int64_t k = 0; k < 20; ++k) EXPECT_EQ(gv[k], 0.0);  // row 0 entirely

  // Zero-length completions: T = 0 gives zero sums and no error, with and without a tape.
  const array empty = zeros({2, 0, 5});
  const token_logprobs e = sequence_logprobs(empty, zeros({2, 0}, dtype::i32), zeros({2, 0}));
  EXPECT_TRUE(near(e.sums, {0, 0}, 0, 0));
  EXPECT_EQ(e.tokens.shape(), (shape_t{2, 0}));
  const auto ge = grad({[&](const std::vector<array>& v) {
                         return sum(sequence_logprobs(v[0], zeros({2, 0}, dtype::i32), zeros({2, 0})).sums);
                       }},
                       {empty});
  EXPECT_EQ(ge[0].shape(), empty.shape());
}

TEST(SequenceLogprobs, SplittingTheBatchGivesTheSameSumsAndGradients) {
  const array logits = grad_check::randn({2, 5, 7}, 6, 2.0f);
  const array labels = array::from(kLabels, {2, 5}, dtype::i32);
  const array mask = test::f32(kMask, {2, 5});
  auto f = [](const array& y, const array& m) {
    return [=](const std::vector<array>& v) { return sum(sequence_logprobs(v[0], y, m).sums); };
  };
  const auto [whole, whole_grad] = value_and_grad(f(labels, mask), {logits});
  double parts = 0;
  std::vector<array> grads;
  for (int64_t row = 0; row < 2; ++row) {
    auto rows = [&](const array& a) { return slice_axis(a, 0, row, row + 1); };
    const auto [l, g] = value_and_grad(f(rows(labels), rows(mask)), {rows(logits)});
    parts += l.item<double>();
    grads.push_back(g[0]);
  }
  EXPECT_NEAR(parts, whole.item<double>(), 1e-5);
  EXPECT_TRUE(allclose(concatenate(grads, 0), whole_grad[0], 1e-6, 1e-8));
}

TEST(SequenceLogprobs, RejectsBadArguments) {
  const array logits = zeros({2, 3, 4});
  const array mask = ones({2, 3});
  EXPECT_THROW(sequence_logprobs(zeros({2, 3}), zeros({2, 3}, dtype::i32), mask), std::invalid_argument);
  EXPECT_THROW(sequence_logprobs(logits, zeros({2, 3}), mask), std::invalid_argument);  // float labels
  EXPECT_THROW(sequence_logprobs(logits, zeros({2, 4}, dtype::i32), mask), std::invalid_argument);
  EXPECT_THROW(sequence_logprobs(logits, zeros({2, 3}, dtype::i32), ones({3, 2})), std::invalid_argument);
  try {
    sequence_logprobs(logits, full({2, 3}, 4, dtype::i32), mask);
    FAIL() << "a label equal to the vocabulary size must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[sequence_logprobs] label 4"), std::string::npos) << e.what();
  }
  // The same out-of-range label where the mask is 0 is never read.
  EXPECT_NO_THROW(sequence_logprobs(logits, full({2, 3}, 4, dtype::i32), zeros({2, 3})));
}

}  // namespace
}  // namespace mlxd::rlhf
