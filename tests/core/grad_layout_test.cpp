// Finite-difference checks of the layout vjps, and of every op family on non-contiguous inputs: views taken
// inside the loss from a contiguous leaf, and leaves that are themselves views created before grad.
#include <functional>
#include <string>

#include "grad_check.h"

namespace mlxd {
namespace {

using grad_check::check_grad;
using grad_check::distinct_values;
using grad_check::randn;
using grad_check::weighted_sum;
using loss = std::function<array(const std::vector<array>&)>;

TEST(GradLayout, ConcatenateAndStack) {
  const std::vector<array> parts = {randn({2, 3}, 1), randn({2, 1}, 2), randn({2, 4}, 3)};
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(concatenate(v, 1)); }, parts));
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(concatenate(v, 0)); },
                         {randn({1, 3}, 4), randn({3, 3}, 5)}));
  const std::vector<array> same = {randn({2, 3}, 6), randn({2, 3}, 7), randn({2, 3}, 8)};
  for (int axis : {0, 1, 2, -1}) {
    SCOPED_TRACE("stack axis " + std::to_string(axis));
    EXPECT_TRUE(
        check_grad([axis](const std::vector<array>& v) { return weighted_sum(stack(v, axis)); }, same));
  }
}

TEST(GradLayout, SplitPartsAndUnusedParts) {
  const array x = randn({4, 6}, 1);
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        const std::vector<array> p = split(v[0], 3, 1);
        return add(add(weighted_sum(p[0], 1), weighted_sum(p[1], 2)), weighted_sum(p[2], 3));
      },
      {x}));
  // Only the middle part of an index split matters: the other rows get zero gradient.
  const loss middle = [](const std::vector<array>& v) {
    return weighted_sum(split(v[0], shape_t{1, 3}, 0)[1]);
  };
  EXPECT_TRUE(check_grad(middle, {x}));
  const std::vector<float> g = grad(middle, {x})[0].to_vector<float>();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(g[i], 0.0f);
  for (int i = 18; i < 24; ++i) EXPECT_EQ(g[i], 0.0f);
}

TEST(GradLayout, SliceWithStepsAndNegativeBounds) {
  const array x = randn({5, 7}, 1);
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        return weighted_sum(slice(v[0], {0, 1}, {5, 7}, {2, 3}));
      },
      {x}));
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        return weighted_sum(slice(v[0], {-4, -6}, {-1, 100}, {1, 2}));
      },
      {x}));
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) { return weighted_sum(slice_axis(v[0], 1, 2, 6, 3)); }, {x}));
  // A slice of a slice of a transpose.
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        const array t = slice(transpose(v[0]), {1, 0}, {7, 5}, {2, 1});  // [3, 5]
        return weighted_sum(slice(t, {0, 1}, {3, 5}, {1, 2}));
      },
      {x}));
}

TEST(GradLayout, ReshapeTransposeSwapaxes) {
  const array x = randn({2, 3, 4}, 1);
  const std::vector<std::pair<std::string, std::function<array(const array&)>>> ops = {
      {"reshape",
       [](const array& a) {
         return reshape(a, {4, -1});
       }},
      {"flatten", [](const array& a) { return flatten(a); }},
      {"transpose perm",
       [](const array& a) {
         return transpose(a, {1, 2, 0});
       }},
      {"transpose reverse", [](const array& a) { return transpose(a); }},
      {"swapaxes", [](const array& a) { return swapaxes(a, 0, -1); }},
      // Reshaping a transposed view needs a copy.
      {"reshape of transpose",
       [](const array& a) {
         return reshape(transpose(a, {2, 0, 1}), {8, 3});
       }},
      {"transpose of reshape",
       [](const array& a) {
         return transpose(reshape(a, {6, 4}));
       }},
  };
  for (const auto& [name, op] : ops) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(check_grad([op](const std::vector<array>& v) { return weighted_sum(op(v[0])); }, {x}));
  }
}

TEST(GradLayout, BroadcastExpandSqueeze) {
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        return weighted_sum(broadcast_to(v[0], {3, 4}));
      },
      {randn({4}, 1)}));
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        return weighted_sum(broadcast_to(v[0], {2, 3, 4}));
      },
      {randn({3, 1}, 2)}));
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        return weighted_sum(broadcast_to(v[0], {2, 3}));
      },
      {randn({}, 3)}));
  for (int axis : {0, 1, 2, -1}) {
    SCOPED_TRACE("expand_dims " + std::to_string(axis));
    EXPECT_TRUE(
        check_grad([axis](const std::vector<array>& v) { return weighted_sum(expand_dims(v[0], axis)); },
                   {randn({2, 3}, 4)}));
  }
  const array x = randn({1, 3, 1, 2}, 5);
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(squeeze(v[0])); }, {x}));
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(squeeze(v[0], {2})); }, {x}));
  // The gradient keeps the leaf's shape even though the ops dropped its unit axes.
  EXPECT_EQ(grad([](const std::vector<array>& v) { return sum(squeeze(v[0])); }, {x})[0].shape(), x.shape());
}

TEST(GradLayout, AstypeRoundTripAndContiguous) {
  const array x = randn({3, 4}, 1);
  const loss round_trip = [](const std::vector<array>& v) {
    return weighted_sum(astype(astype(v[0], dtype::f16), dtype::f32));
  };
  // The round trip is piecewise constant at the f16 grid, so step across many grid points.
  EXPECT_TRUE(check_grad(round_trip, {x}, {.step = 0.25, .rtol = 1e-2, .atol = 1e-3}));
  // Analytically it is the identity: the gradient is the weighting itself, up to f16 rounding of the
  // cotangent.
  const array w = random::normal(grad_check::key_for(1000), {3, 4});
  EXPECT_TRUE(allclose(grad(round_trip, {x})[0], w, 1e-3, 1e-6));
  const loss bf16 = [](const std::vector<array>& v) {
    return weighted_sum(astype(astype(v[0], dtype::bf16), dtype::f32));
  };
  EXPECT_TRUE(allclose(grad(bf16, {x})[0], w, 1e-2, 1e-6));

  EXPECT_TRUE(
      check_grad([](const std::vector<array>& v) { return weighted_sum(contiguous(transpose(v[0]))); }, {x}));
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(contiguous(v[0])); }, {x}));
}

// How a [rows, cols] operand is produced from a stored base.
struct view_case {
  std::string name;
  shape_t base_shape;
  std::function<array(const array&)> make;
};

std::vector<view_case> view_cases() {
  auto transposed = [](const array& b) { return transpose(b); };                   // [6, 4] -> [4, 6]
  auto strided = [](const array& b) { return slice(b, {1, 1}, {7, 9}, {2, 2}); };  // [7, 9] -> [3, 4]
  auto broadcast = [](const array& b) { return broadcast_to(b, {3, 6}); };         // [1, 6] -> [3, 6]
  auto swapped = [](const array& b) { return squeeze(swapaxes(b, 0, 2), {1}); };   // [6, 1, 4] -> [4, 6]
  auto window = [](const array& b) { return slice_axis(b, 0, 2, 5); };             // [5, 6] -> [3, 6]
  return {
      {"transpose", {6, 4}, transposed},     {"strided slice", {7, 9}, strided},
      {"broadcast", {1, 6}, broadcast},      {"squeezed swapaxes", {6, 1, 4}, swapped},
      {"offset row window", {5, 6}, window},
  };
}

// Ops on a [rows, cols] operand, cols even; each must see every element and stay away from kinks.
std::vector<std::pair<std::string, std::function<array(const array&)>>> view_ops() {
  return {
      {"exp", [](const array& a) { return exp(a); }},
      {"tanh", [](const array& a) { return tanh(a); }},
      {"multiply", [](const array& a) { return multiply(a, randn(a.shape(), 50)); }},
      {"add row", [](const array& a) { return add(a, randn({a.shape(1)}, 51)); }},
      {"divide by", [](const array& a) { return divide(randn(a.shape(), 52), add(array(5.0f), a)); }},
      {"sum axis 0", [](const array& a) { return sum(a, {0}); }},
      {"mean", [](const array& a) { return mean(a); }},
      {"max axis -1", [](const array& a) { return max(a, {-1}); }},
      {"logsumexp axis 1", [](const array& a) { return logsumexp(a, {1}); }},
      {"var axis 0", [](const array& a) { return var(a, {0}); }},
      {"softmax", [](const array& a) { return softmax(a, -1); }},
      {"log_softmax axis 0", [](const array& a) { return log_softmax(a, 0); }},
      {"matmul left",
       [](const array& a) {
         return matmul(a, randn({a.shape(1), 3}, 53));
       }},
      {"matmul right",
       [](const array& a) {
         return matmul(randn({2, a.shape(0)}, 54), a);
       }},
      {"rms_norm", [](const array& a) { return rms_norm(a, randn({a.shape(1)}, 55), 1e-5f); }},
      {"layer_norm",
       [](const array& a) { return layer_norm(a, randn({a.shape(1)}, 56), randn({a.shape(1)}, 57), 1e-5f); }},
      {"rope",
       [](const array& a) {
         rope_options o;
         o.dims = 2;
         o.traditional = true;
         o.offset = 1;
         return rope(a, o);
       }},
      {"take",
       [](const array& a) {
         return take(a, array::from(std::vector<int64_t>{0, 1, 0}, {3}, dtype::i64), 1);
       }},
      {"cumsum", [](const array& a) { return cumsum(a, 0, true); }},
      {"sort", [](const array& a) { return sort(a, -1); }},
      {"topk", [](const array& a) { return topk(a, 2, -1).first; }},
      {"reshape", [](const array& a) { return reshape(a, {-1}); }},
      {"contiguous", [](const array& a) { return contiguous(a); }},
      {"astype f16", [](const array& a) { return astype(astype(a, dtype::f16), dtype::f32); }},
      {"concatenate",
       [](const array& a) {
         return concatenate({a, square(a)}, 1);
       }},
      {"where",
       [](const array& a) { return where(greater(randn(a.shape(), 58), array(0.0f)), a, square(a)); }},
      {"cross_entropy",
       [](const array& a) {
         const array t =
             array::from(std::vector<int64_t>(static_cast<size_t>(a.shape(0)), 1), {a.shape(0)}, dtype::i64);
         return cross_entropy(a, t);
       }},
  };
}

TEST(GradNonContiguous, ViewTakenInsideTheLoss) {
  uint64_t stream = 0;
  for (const view_case& vc : view_cases()) {
    for (const auto& [name, op] : view_ops()) {
      SCOPED_TRACE(name + " of " + vc.name + " taken inside the loss");
      const auto make = vc.make;
      const auto f = op;
      const grad_check::options opts{.step = name == "astype f16" ? 0.25 : 1e-2};
      EXPECT_TRUE(check_grad([make, f](const std::vector<array>& v) { return weighted_sum(f(make(v[0]))); },
                             {distinct_values(vc.base_shape, ++stream)}, opts));
    }
  }
}

TEST(GradNonContiguous, LeafIsAViewCreatedBeforeGrad) {
  uint64_t stream = 100;
  for (const view_case& vc : view_cases()) {
    const array leaf = vc.make(distinct_values(vc.base_shape, ++stream));
    if (vc.name != "offset row window") {
      ASSERT_FALSE(leaf.is_contiguous()) << vc.name;
    }
    for (const auto& [name, op] : view_ops()) {
      // A broadcast leaf's rows are equal; max, sort and topk work within a row, whose values are distinct.
      SCOPED_TRACE(name + " of a " + vc.name + " leaf");
      const auto f = op;
      const grad_check::options opts{.step = name == "astype f16" ? 0.25 : 1e-2};
      EXPECT_TRUE(
          check_grad([f](const std::vector<array>& v) { return weighted_sum(f(v[0])); }, {leaf}, opts));
    }
  }
}

}  // namespace
}  // namespace mlxd
