// Finite-difference checks of the reduction, linear-algebra and neural-network vjps.
#include <cmath>
#include <string>

#include "grad_check.h"

namespace mlxd {
namespace {

using grad_check::check_grad;
using grad_check::distinct_values;
using grad_check::randn;
using grad_check::weighted_sum;

std::string axes_name(const axes_t& axes, bool keepdims) {
  std::string s = "axes {";
  for (int a : axes) s += std::to_string(a) + ",";
  return s + "} keepdims " + (keepdims ? "true" : "false");
}

const std::vector<axes_t>& axes_sets() {
  static const std::vector<axes_t> sets = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};
  return sets;
}

TEST(GradReduce, SumMeanLogsumexpVarOverAxisSets) {
  const array x = randn({3, 4, 5}, 1);
  for (const axes_t& axes : axes_sets()) {
    for (bool keep : {false, true}) {
      SCOPED_TRACE(axes_name(axes, keep));
      EXPECT_TRUE(
          check_grad([=](const std::vector<array>& v) { return weighted_sum(sum(v[0], axes, keep)); }, {x}));
      EXPECT_TRUE(
          check_grad([=](const std::vector<array>& v) { return weighted_sum(mean(v[0], axes, keep)); }, {x}));
      EXPECT_TRUE(check_grad(
          [=](const std::vector<array>& v) { return weighted_sum(logsumexp(v[0], axes, keep)); }, {x}));
      for (int ddof : {0, 1}) {
        SCOPED_TRACE("ddof " + std::to_string(ddof));
        EXPECT_TRUE(check_grad(
            [=](const std::vector<array>& v) { return weighted_sum(var(v[0], axes, keep, ddof)); }, {x}));
      }
    }
  }
}

TEST(GradReduce, MaxMinWithoutTies) {
  const array x = distinct_values({3, 4, 5}, 2);
  for (const axes_t& axes : axes_sets()) {
    for (bool keep : {false, true}) {
      SCOPED_TRACE(axes_name(axes, keep));
      EXPECT_TRUE(
          check_grad([=](const std::vector<array>& v) { return weighted_sum(max(v[0], axes, keep)); }, {x}));
      EXPECT_TRUE(
          check_grad([=](const std::vector<array>& v) { return weighted_sum(min(v[0], axes, keep)); }, {x}));
    }
  }
}

TEST(GradReduce, MaxSplitsTheGradientEvenlyAmongTies) {
  const array x = array::from({1.0f, 3.0f, 3.0f, 2.0f, -1.0f, -1.0f, -1.0f, -4.0f}, {2, 4});
  const auto gmax = grad([](const std::vector<array>& v) { return sum(max(v[0], {1})); }, {x});
  EXPECT_EQ(gmax[0].to_vector<float>(),
            (std::vector<float>{0, 0.5f, 0.5f, 0, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f, 0}));
  const auto gmin = grad([](const std::vector<array>& v) { return sum(min(v[0], {1})); }, {x});
  EXPECT_EQ(gmin[0].to_vector<float>(), (std::vector<float>{1, 0, 0, 0, 0, 0, 0, 1}));
}

struct matmul_case {
  shape_t a, b;
};

TEST(GradMatmul, ShapesBatchesAndVectors) {
  const std::vector<matmul_case> cases = {
      {{3, 4}, {4, 5}},
      {{2, 3, 4}, {4, 5}},
      {{3, 4}, {2, 4, 5}},
      {{2, 1, 3, 4}, {3, 4, 5}},
      {{4}, {4, 5}},
      {{3, 4}, {4}},
      {{4}, {4}},
      {{4}, {2, 4, 5}},
      {{2, 3, 4}, {4}},
      {{1, 4}, {4, 5}},
      {{2, 3, 4}, {1, 4, 2}},
  };
  for (kernel_level level : grad_check::kernel_levels()) {
    kernel_level_guard guard(level);
    uint64_t stream = 0;
    for (const matmul_case& c : cases) {
      SCOPED_TRACE(shape_to_string(c.a) + " x " + shape_to_string(c.b) + " at " +
                   std::string(kernel_level_name(level)));
      EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(matmul(v[0], v[1])); },
                             {randn(c.a, ++stream), randn(c.b, ++stream)}));
    }
  }
}

TEST(GradMatmul, TransposedViewsAsOperands) {
  for (kernel_level level : grad_check::kernel_levels()) {
    kernel_level_guard guard(level);
    SCOPED_TRACE(std::string(kernel_level_name(level)));
    // a^T b, a b^T, a^T b^T with a: [4, 3], b: [5, 4] stored transposed.
    EXPECT_TRUE(check_grad(
        [](const std::vector<array>& v) { return weighted_sum(matmul(transpose(v[0]), transpose(v[1]))); },
        {randn({4, 3}, 1), randn({5, 4}, 2)}));
    EXPECT_TRUE(
        check_grad([](const std::vector<array>& v) { return weighted_sum(matmul(transpose(v[0]), v[1])); },
                   {randn({4, 3}, 3), randn({4, 5}, 4)}));
    EXPECT_TRUE(
        check_grad([](const std::vector<array>& v) { return weighted_sum(matmul(v[0], transpose(v[1]))); },
                   {randn({3, 4}, 5), randn({5, 4}, 6)}));
    // Batched swapaxes views: [2, 4, 3]^T x [2, 4, 5].
    EXPECT_TRUE(check_grad(
        [](const std::vector<array>& v) { return weighted_sum(matmul(swapaxes(v[0], -1, -2), v[1])); },
        {randn({2, 4, 3}, 7), randn({2, 4, 5}, 8)}));
    // One row times stored-transposed weights: the matrix-vector (decode) path, as a row and as a vector.
    EXPECT_TRUE(
        check_grad([](const std::vector<array>& v) { return weighted_sum(matmul(v[0], transpose(v[1]))); },
                   {randn({1, 6}, 9), randn({5, 6}, 10)}));
    EXPECT_TRUE(
        check_grad([](const std::vector<array>& v) { return weighted_sum(matmul(v[0], transpose(v[1]))); },
                   {randn({6}, 11), randn({5, 6}, 12)}));
    // A strided slice as the left operand.
    EXPECT_TRUE(check_grad(
        [](const std::vector<array>& v) {
          return weighted_sum(matmul(slice(v[0], {0, 1}, {6, 8}, {2, 2}), v[1]));
        },
        {randn({6, 8}, 13), randn({4, 2}, 14)}));
  }
}

TEST(GradNN, SoftmaxAndLogSoftmaxAlongEachAxis) {
  for (kernel_level level : grad_check::kernel_levels()) {
    kernel_level_guard guard(level);
    const array x = randn({2, 3, 37}, 1, 2.0f);  // rows of 37: SIMD body and tail
    for (int axis : {-1, 0, 1, 2}) {
      SCOPED_TRACE("axis " + std::to_string(axis) + " at " + std::string(kernel_level_name(level)));
      EXPECT_TRUE(
          check_grad([=](const std::vector<array>& v) { return weighted_sum(softmax(v[0], axis)); }, {x}));
      EXPECT_TRUE(check_grad(
          [=](const std::vector<array>& v) { return weighted_sum(log_softmax(v[0], axis)); }, {x}));
    }
  }
}

TEST(GradNN, RmsNormInputAndWeight) {
  for (kernel_level level : grad_check::kernel_levels()) {
    kernel_level_guard guard(level);
    SCOPED_TRACE(std::string(kernel_level_name(level)));
    const array x = randn({3, 40}, 1), weight = add(array(1.0f), randn({40}, 2, 0.5f));
    EXPECT_TRUE(check_grad(
        [](const std::vector<array>& v) { return weighted_sum(rms_norm(v[0], v[1], 1e-5f)); }, {x, weight}));
    // A large eps makes its term in the gradient matter.
    EXPECT_TRUE(
        check_grad([](const std::vector<array>& v) { return weighted_sum(rms_norm(v[0], v[1], 0.5f)); },
                   {randn({4, 6}, 3, 0.5f), randn({6}, 4)}));
  }
}

TEST(GradNN, LayerNormInputWeightAndBias) {
  const array x = randn({2, 3, 8}, 1, 1.5f), weight = add(array(1.0f), randn({8}, 2, 0.5f)),
              bias = randn({8}, 3);
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) { return weighted_sum(layer_norm(v[0], v[1], v[2], 1e-5f)); },
      {x, weight, bias}));
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) { return weighted_sum(layer_norm(v[0], v[1], array(), 1e-5f)); },
      {x, weight}));
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) { return weighted_sum(layer_norm(v[0], array(), array(), 0.1f)); },
      {x}));
}

rope_options rope_with(int dims, bool traditional, int64_t offset, float base = 10000.0f,
                       float scale = 1.0f) {
  rope_options o;
  o.dims = dims;
  o.traditional = traditional;
  o.offset = offset;
  o.base = base;
  o.scale = scale;
  return o;
}

TEST(GradNN, RopeVariants) {
  struct rope_case {
    std::string name;
    rope_options opts;
    shape_t shape;  // [..., seq, head_dim]
  };
  rope_options llama3 = rope_with(8, false, 5);
  llama3.inv_freqs = llama3_rope_freqs(8, 10000.0f, 8.0f, 1.0f, 4.0f, 64);
  rope_options llama3_traditional = llama3;
  llama3_traditional.traditional = true;
  const std::vector<rope_case> cases = {
      {"neox full", rope_with(0, false, 0), {2, 5, 8}},
      {"traditional full", rope_with(0, true, 0), {2, 5, 8}},
      {"neox partial offset", rope_with(4, false, 3), {2, 5, 8}},
      {"traditional partial offset scaled", rope_with(6, true, 7, 500000.0f, 0.5f), {3, 4, 8}},
      {"neox 4-d partial", rope_with(4, false, 11), {2, 3, 5, 6}},
      {"llama3 neox", llama3, {2, 5, 8}},
      {"llama3 traditional", llama3_traditional, {2, 5, 8}},
  };
  uint64_t stream = 0;
  for (const rope_case& c : cases) {
    SCOPED_TRACE(c.name);
    const rope_options opts = c.opts;
    EXPECT_TRUE(check_grad([opts](const std::vector<array>& v) { return weighted_sum(rope(v[0], opts)); },
                           {randn(c.shape, ++stream)}));
  }
}

TEST(GradNN, Llama3FreqsChangeTheGradient) {
  const rope_options plain = rope_with(8, false, 40);
  rope_options scaled = plain;
  scaled.inv_freqs = llama3_rope_freqs(8, 10000.0f, 8.0f, 1.0f, 4.0f, 64);
  const array x = randn({3, 8}, 1);
  auto loss = [](const rope_options& o) {
    return [o](const std::vector<array>& v) { return weighted_sum(rope(v[0], o)); };
  };
  EXPECT_FALSE(allclose(grad(loss(plain), {x})[0], grad(loss(scaled), {x})[0], 1e-3, 1e-3));
}

TEST(GradIndex, TakeAccumulatesRepeatedIndices) {
  const array a = randn({5, 3}, 1);
  const array rows = array::from(std::vector<int64_t>{2, 0, 2, 4, 2}, {5}, dtype::i64);
  EXPECT_TRUE(
      check_grad([rows](const std::vector<array>& v) { return weighted_sum(take(v[0], rows, 0)); }, {a}));
  // 2-d i32 indices (one negative) along a middle axis.
  const array idx = array::from(std::vector<int32_t>{1, 1, 0, -1}, {2, 2}, dtype::i32);
  EXPECT_TRUE(check_grad([idx](const std::vector<array>& v) { return weighted_sum(take(v[0], idx, 1)); },
                         {randn({2, 3, 4}, 2)}));
  EXPECT_TRUE(check_grad([idx](const std::vector<array>& v) { return weighted_sum(take(v[0], idx, -1)); },
                         {randn({2, 3, 4}, 3)}));

  // A 0-d index drops the axis.
  const array three = array::from(std::vector<int64_t>{3}, {}, dtype::i64);
  EXPECT_TRUE(
      check_grad([three](const std::vector<array>& v) { return weighted_sum(take(v[0], three, 0)); }, {a}));

  // Exactly: each row's gradient counts how often it was taken.
  const std::vector<float> g =
      grad([rows](const std::vector<array>& v) { return sum(take(v[0], rows, 0)); }, {a})[0]
          .to_vector<float>();
  const std::vector<float> counts = {1, 1, 1, 0, 0, 0, 3, 3, 3, 0, 0, 0, 1, 1, 1};
  EXPECT_EQ(g, counts);
}

TEST(GradIndex, CumsumForwardReverseExclusive) {
  const array x = randn({3, 4, 5}, 1);
  for (int axis : {0, 1, -1}) {
    for (bool reverse : {false, true}) {
      for (bool inclusive : {true, false}) {
        SCOPED_TRACE("axis " + std::to_string(axis) + (reverse ? " reverse" : "") +
                     (inclusive ? "" : " exclusive"));
        EXPECT_TRUE(check_grad(
            [=](const std::vector<array>& v) { return weighted_sum(cumsum(v[0], axis, reverse, inclusive)); },
            {x}));
      }
    }
  }
}

TEST(GradIndex, TopkAndSortValues) {
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(topk(v[0], 3, -1).first); },
                         {distinct_values({3, 6}, 1)}));
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(topk(v[0], 2, 0).first); },
                         {distinct_values({6, 4}, 2)}));
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(topk(v[0], 5, 1).first); },
                         {distinct_values({2, 5, 3}, 3)}));
  for (int axis : {-1, 0, 1}) {
    SCOPED_TRACE("sort axis " + std::to_string(axis));
    EXPECT_TRUE(check_grad([axis](const std::vector<array>& v) { return weighted_sum(sort(v[0], axis)); },
                           {distinct_values({3, 4, 5}, 4 + static_cast<uint64_t>(axis + 1))}));
  }
}

TEST(GradNN, CrossEntropyWithIgnoredPositions) {
  const array logits = randn({2, 3, 5}, 1, 2.0f);
  const array targets = array::from(std::vector<int64_t>{1, 4, -100, 0, 2, 3}, {2, 3}, dtype::i64);
  auto loss = [targets](const std::vector<array>& v) { return weighted_sum(cross_entropy(v[0], targets)); };
  EXPECT_TRUE(check_grad(loss, {logits}));
  const std::vector<float> g = grad(loss, {logits})[0].to_vector<float>();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(g[2 * 5 + i], 0.0f) << "ignored position, class " << i;

  // An ignore_index that is also a valid class id, with i32 targets.
  const array targets32 = array::from(std::vector<int32_t>{3, 0, 3, 1}, {4}, dtype::i32);
  EXPECT_TRUE(check_grad(
      [targets32](const std::vector<array>& v) { return weighted_sum(cross_entropy(v[0], targets32, 3)); },
      {randn({4, 6}, 2)}));
  // The mean over valid positions, as a training loss takes it.
  EXPECT_TRUE(check_grad(
      [targets](const std::vector<array>& v) { return sum(cross_entropy(v[0], targets)) / array(5.0f); },
      {logits}));
}

TEST(GradNN, CrossEntropyKernelsMatchTheReference) {
  const array logits = randn({7, 300}, 3, 3.0f);
  const array targets = array::from(std::vector<int32_t>{5, -100, 299, 0, 17, -100, 150}, {7}, dtype::i32);
  auto loss = [targets](const std::vector<array>& v) { return weighted_sum(cross_entropy(v[0], targets)); };
  array want_value, want_grad;
  {
    kernel_level_guard level(kernel_level::reference);
    want_value = cross_entropy(logits, targets);
    want_grad = grad(loss, {logits})[0];
  }
  for (kernel_level l : grad_check::kernel_levels()) {
    SCOPED_TRACE(kernel_level_name(l));
    kernel_level_guard level(l);
    EXPECT_TRUE(allclose(cross_entropy(logits, targets), want_value, 1e-5, 1e-6));
    EXPECT_TRUE(allclose(grad(loss, {logits})[0], want_grad, 1e-5, 1e-6));
  }
}

TEST(GradNN, SoftmaxWithACausalMask) {
  // scores [4, 4] + mask with -inf above the diagonal, as attention uses it.
  std::vector<float> m(16, 0.0f);
  for (int i = 0; i < 4; ++i) {
    for (int j = i + 1; j < 4; ++j) m[i * 4 + j] = -INFINITY;
  }
  const array mask = array::from(m, {4, 4}, dtype::f32);
  for (kernel_level level : grad_check::kernel_levels()) {
    kernel_level_guard guard(level);
    SCOPED_TRACE(std::string(kernel_level_name(level)));
    const loss_fn f = [mask](const std::vector<array>& v) {
      return weighted_sum(softmax(add(v[0], mask), -1));
    };
    EXPECT_TRUE(check_grad(f, {randn({4, 4}, 1)}));
    const std::vector<float> g = grad(f, {randn({4, 4}, 1)})[0].to_vector<float>();
    for (int i = 0; i < 16; ++i) {
      if (m[i] != 0.0f) {
        EXPECT_EQ(g[i], 0.0f) << "masked position " << i;
      }
    }
  }
}

// The same values as f16 and as f32 leaves: gradients agree to f16 precision and keep the leaf's dtype.
TEST(GradDtype, HalfLeavesMatchF32Leaves) {
  auto row = [](const array& a, int64_t i) { return reshape(slice_axis(a, 0, i, i + 1), {a.shape(1)}); };
  const std::vector<std::pair<std::string, loss_fn>> losses = {
      {"unary", [](const std::vector<array>& v) { return weighted_sum(add(silu(v[0]), tanh(v[0]))); }},
      {"binary",
       [](const std::vector<array>& v) {
         return weighted_sum(divide(multiply(v[0], v[1]), add(array(4.0f), v[1])));
       }},
      {"reduce",
       [](const std::vector<array>& v) {
         return add(weighted_sum(var(v[0], {1})), weighted_sum(logsumexp(v[0], {0})));
       }},
      {"matmul", [](const std::vector<array>& v) { return weighted_sum(matmul(v[0], transpose(v[1]))); }},
      {"matvec",
       [](const std::vector<array>& v) {
         return weighted_sum(matmul(slice_axis(v[0], 0, 1, 2), transpose(v[1])));
       }},
      {"softmax", [](const std::vector<array>& v) { return weighted_sum(softmax(v[0], 0)); }},
      {"rms_norm",
       [row](const std::vector<array>& v) { return weighted_sum(rms_norm(v[0], row(v[1], 0), 1e-5f)); }},
      {"layer_norm",
       [row](const std::vector<array>& v) {
         return weighted_sum(layer_norm(v[0], row(v[1], 0), row(v[1], 1), 1e-5f));
       }},
      {"rope", [](const std::vector<array>& v) { return weighted_sum(rope(v[0], rope_with(4, false, 2))); }},
      {"layout",
       [](const std::vector<array>& v) {
         return weighted_sum(
             concatenate({slice(v[0], {0, 1}, {3, 6}, {2, 2}), slice(transpose(v[1]), {0, 0}, {2, 3})}, 1));
       }},
      {"take cumsum",
       [](const std::vector<array>& v) {
         return weighted_sum(
             cumsum(take(v[0], array::from(std::vector<int64_t>{2, 0, 2}, {3}, dtype::i64), 0), 1));
       }},
      {"sort", [](const std::vector<array>& v) { return weighted_sum(sort(v[0], 1)); }},
      {"cross_entropy",
       [](const std::vector<array>& v) {
         return weighted_sum(
             cross_entropy(v[0], array::from(std::vector<int64_t>{1, 5, -100}, {3}, dtype::i64)));
       }},
  };
  // x: [3, 6], y: [3, 6]; rows of y double as rms_norm/layer_norm weight and bias.
  const array x32 = astype(astype(distinct_values({3, 6}, 1, 0.15f), dtype::f16), dtype::f32);
  const array y32 = astype(astype(randn({3, 6}, 2), dtype::f16), dtype::f32);
  for (const auto& [name, f] : losses) {
    for (dtype half : {dtype::f16, dtype::bf16}) {
      SCOPED_TRACE(name + " " + std::string(mlxd::name(half)));
      const array xh = astype(x32, half), yh = astype(y32, half);
      const std::vector<array> g32 = grad(f, {x32, y32});
      std::vector<array> gh;
      ASSERT_NO_THROW(gh = grad(f, {xh, yh}));
      const double tol = half == dtype::f16 ? 2e-2 : 1e-1;
      for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(gh[i].type(), half);
        EXPECT_TRUE(allclose(astype(gh[i], dtype::f32), g32[i], tol, tol)) << "input " << i;
      }
    }
  }
}

TEST(GradNn, DropoutPassesTheMaskedScaledCotangent) {
  const array x = randn({6, 5}, 40);
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) { return weighted_sum(random::dropout({3}, v[0], 0.4f)); }, {x}));
  // d/dx sum(dropout(x)) is the mask itself: 0 or 1 / (1 - p).
  const array g =
      grad([](const std::vector<array>& v) { return sum(random::dropout({3}, v[0], 0.4f)); }, {x})[0];
  const auto mask = divide(random::dropout({3}, x, 0.4f), x).to_vector<float>();
  const auto got = g.to_vector<float>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_FLOAT_EQ(got[i], mask[i]);
}

}  // namespace
}  // namespace mlxd
