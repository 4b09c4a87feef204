// The tape's contract: it records only inside value_and_grad, accumulates over repeated uses, gives zeros to
// unused inputs, survives integer and bool intermediates, and rejects non-scalar outputs. Also checks that
// the gradient checker itself rejects wrong gradients.
#include <pthread.h>

#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "grad_check.h"

namespace mlxd {
namespace {

using grad_check::check_grad;
using grad_check::matches_numeric;
using grad_check::randn;
using grad_check::weighted_sum;

TEST(GradChecker, RejectsAWrongGradient) {
  const array x = randn({3, 4}, 1);
  const loss_fn f = [](const std::vector<array>& v) { return weighted_sum(tanh(v[0])); };
  const std::vector<array> right = grad(f, {x});
  ASSERT_TRUE(matches_numeric(f, {x}, right));
  // Scaled by 5 %, with one element off, transposed in value, or for the wrong function.
  EXPECT_FALSE(matches_numeric(f, {x}, {multiply(right[0], array(1.05f))}));
  std::vector<float> one_off = right[0].to_vector<float>();
  one_off[7] += 0.05f;
  EXPECT_FALSE(matches_numeric(f, {x}, {array::from(one_off, {3, 4}, dtype::f32)}));
  EXPECT_FALSE(matches_numeric(f, {x}, {reshape(transpose(reshape(right[0], {4, 3})), {3, 4})}));
  const loss_fn sigmoid_f = [](const std::vector<array>& v) { return weighted_sum(sigmoid(v[0])); };
  EXPECT_FALSE(matches_numeric(f, {x}, grad(sigmoid_f, {x})));
  // A gradient of the wrong shape or dtype is rejected too.
  EXPECT_FALSE(matches_numeric(f, {x}, {reshape(right[0], {4, 3})}));
  EXPECT_FALSE(matches_numeric(f, {x}, {astype(right[0], dtype::f16)}));
}

TEST(GradChecker, RejectsAMissingFactor) {
  // d/dx sum(x^2) is 2x; x alone is the classic slip.
  const array x = randn({5}, 2);
  const loss_fn f = [](const std::vector<array>& v) { return sum(square(v[0])); };
  EXPECT_FALSE(matches_numeric(f, {x}, {x}));
  EXPECT_TRUE(matches_numeric(f, {x}, {multiply(x, array(2.0f))}));
}

TEST(GradTape, NothingIsRecordedOutsideValueAndGrad) {
  EXPECT_FALSE(autograd::is_recording());
  const array x = randn({2, 3}, 1);
  const array y = sum(exp(matmul(x, transpose(x))));
  EXPECT_EQ(y.grad_node(), nullptr);
  EXPECT_EQ(x.grad_node(), nullptr);

  bool recorded_inside = false;
  bool other_thread_recording = true;
  const auto [value, grads] = value_and_grad(
      [&](const std::vector<array>& v) {
        recorded_inside = autograd::is_recording();
        std::thread([&] { other_thread_recording = autograd::is_recording(); }).join();
        const array out = sum(exp(v[0]));
        EXPECT_NE(out.grad_node(), nullptr);
        return out;
      },
      {x});
  EXPECT_TRUE(recorded_inside);
  EXPECT_FALSE(other_thread_recording) << "the tape is per thread";
  EXPECT_FALSE(autograd::is_recording());
  // Neither the caller's arrays nor the returned ones carry tape state, and new ops on them record nothing.
  EXPECT_EQ(x.grad_node(), nullptr);
  EXPECT_EQ(value.grad_node(), nullptr);
  EXPECT_EQ(grads[0].grad_node(), nullptr);
  EXPECT_EQ(exp(value).grad_node(), nullptr);
  EXPECT_EQ(multiply(grads[0], x).grad_node(), nullptr);

  // record() itself is a no-op without a tape, even for a tracked input.
  array tracked = randn({2}, 2);
  tracked.set_grad_node(std::make_shared<autograd::node>());
  const array out = neg(tracked);
  EXPECT_EQ(out.grad_node(), nullptr);
}

// An array computed inside the loss and kept by the caller (a metric, or a recurrent state carried into the
// next step as a constant) must not keep the finished tape alive, or link the next step's tape to it.
TEST(GradTape, IntermediatesThatEscapeTheLossCarryNoTape) {
  const array w = randn({3}, 1);
  array state;
  grad(
      [&state](const std::vector<array>& v) {
        state = tanh(v[0]);
        return sum(state);
      },
      {w});
  EXPECT_FALSE(state.grad_node()) << "the first step's tape outlives value_and_grad";
  array next_state;
  const std::vector<array> g = grad(
      [&](const std::vector<array>& v) {
        next_state = multiply(state, v[0]);
        return sum(next_state);
      },
      {w});
  EXPECT_TRUE(allclose(g[0], tanh(w), 1e-6, 1e-6));
  EXPECT_FALSE(next_state.grad_node()) << "the second step's tape outlives value_and_grad";
}

TEST(GradTape, RecordingStopsWhenTheFunctionThrows) {
  EXPECT_THROW(value_and_grad([](const std::vector<array>&) -> array { throw std::runtime_error("boom"); },
                              {randn({2}, 1)}),
               std::runtime_error);
  EXPECT_FALSE(autograd::is_recording());
}

TEST(GradTape, RejectsNonScalarAndNonFloatOutputs) {
  const array x = randn({2, 3}, 1);
  try {
    value_and_grad([](const std::vector<array>& v) { return exp(v[0]); }, {x});
    FAIL() << "a [2, 3] output was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("[value_and_grad]", 0), 0u) << e.what();
  }
  EXPECT_FALSE(autograd::is_recording());
  EXPECT_THROW(grad([](const std::vector<array>& v) { return sum(v[0], {0}); }, {x}), std::invalid_argument);
  EXPECT_THROW(grad([](const std::vector<array>& v) { return argmax(flatten(v[0]), 0); }, {x}),
               std::invalid_argument);
  // A size-1 array of any rank is a scalar.
  EXPECT_NO_THROW(grad([](const std::vector<array>& v) { return sum(v[0], {}, true); }, {x}));
}

TEST(GradTape, ALeafUsedTwiceAccumulates) {
  const array x = randn({3, 4}, 1);
  // d/dx (sum(x * x) + sum(x)) = 2x + 1.
  const loss_fn f = [](const std::vector<array>& v) { return add(sum(multiply(v[0], v[0])), sum(v[0])); };
  EXPECT_TRUE(check_grad(f, {x}));
  EXPECT_TRUE(allclose(grad(f, {x})[0], add(multiply(x, array(2.0f)), array(1.0f)), 1e-6, 1e-6));
  // The same leaf along several paths, through views and a matmul with itself.
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        const array a = v[0];
        return weighted_sum(
            add(matmul(a, transpose(a)), matmul(slice_axis(a, 1, 0, 2), transpose(slice_axis(a, 1, 2, 4)))));
      },
      {x}));
  // The same argument passed twice is two leaves.
  const std::vector<array> g =
      grad([](const std::vector<array>& v) { return sum(multiply(v[0], v[1])); }, {x, x});
  EXPECT_TRUE(array_equal(g[0], x));
  EXPECT_TRUE(array_equal(g[1], x));
}

TEST(GradTape, AnIntermediateUsedTwiceAccumulates) {
  // y = tanh(x) feeds y * y, a view of y, and a matmul with itself.
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        const array y = tanh(v[0]);  // [3, 4]
        return add(add(weighted_sum(multiply(y, y)), weighted_sum(transpose(y), 2)),
                   weighted_sum(matmul(y, transpose(y)), 3));
      },
      {randn({3, 4}, 1)}));
}

TEST(GradTape, UnusedInputsGetZerosOfTheirShapeAndDtype) {
  const array x = randn({3}, 1), unused = randn({2, 2}, 2), unused_half = astype(randn({4}, 3), dtype::f16);
  const std::vector<array> g =
      grad([](const std::vector<array>& v) { return weighted_sum(exp(v[0])); }, {x, unused, unused_half});
  EXPECT_TRUE(check_grad([](const std::vector<array>& v) { return weighted_sum(exp(v[0])); }, {x, unused}));
  EXPECT_TRUE(array_equal(g[1], zeros({2, 2})));
  EXPECT_EQ(g[2].type(), dtype::f16);
  EXPECT_TRUE(array_equal(g[2], zeros({4}, dtype::f16)));
  // A loss that ignores every argument.
  const std::vector<array> none = grad([](const std::vector<array>&) { return sum(randn({3}, 4)); }, {x});
  EXPECT_TRUE(array_equal(none[0], zeros({3})));
  // An input used only through a comparison has no gradient.
  const std::vector<array> through_cmp =
      grad([](const std::vector<array>& v) { return sum(astype(greater(v[0], v[1]), dtype::f32)); },
           {x, randn({3}, 5)});
  EXPECT_TRUE(array_equal(through_cmp[0], zeros({3})));
}

TEST(GradTape, IntegerAndBoolIntermediatesDoNotBreakTheGraph) {
  // y has no near-ties within a row (argmax is stable) and x stays 0.15 from y and 0.05 from 0 (masks are
  // stable).
  const array y = grad_check::distinct_values({4, 5}, 2);
  const array x =
      grad_check::away_from(add(y, grad_check::signed_uniform({4, 5}, 1, 0.2f, 1.0f)), {0.0f}, 0.05f);
  EXPECT_TRUE(check_grad(
      [](const std::vector<array>& v) {
        const array positive = greater(v[0], array(0.0f));                 // bool [4, 5]
        const array mask = astype(less_equal(v[0], v[1]), dtype::f32);     // f32 from bool
        const array count = sum(astype(positive, dtype::i32), {1}, true);  // i64 [4, 1]
        const array best = argmax(v[1], 1);                                // i64 [4]
        const array picked = take(v[0], best, 1);                          // [4, 4]
        return add(add(weighted_sum(where(positive, v[0], multiply(v[0], array(0.1f)))),
                       weighted_sum(multiply(mask, v[1]), 7)),
                   add(weighted_sum(multiply(v[0], count), 8), weighted_sum(picked, 9)));
      },
      {x, y}));
}

TEST(GradTape, NoGradInsideTheLossStopsTheGradient) {
  const array x = randn({3}, 1);
  // sum(x * stop(x)): the stopped factor is a constant, so the gradient is x, not 2x.
  const std::vector<array> g = grad(
      [](const std::vector<array>& v) {
        array stopped;
        {
          autograd::no_grad guard;
          EXPECT_FALSE(autograd::is_recording());
          stopped = exp(v[0]);
        }
        EXPECT_TRUE(autograd::is_recording());
        EXPECT_EQ(stopped.grad_node(), nullptr);
        return sum(multiply(v[0], stopped));
      },
      {x});
  EXPECT_TRUE(allclose(g[0], exp(x), 1e-6, 1e-6));
}

TEST(GradTape, ReturningALeafOrAnIntegerInput) {
  const std::vector<array> g = grad([](const std::vector<array>& v) { return v[0]; }, {array(2.5f)});
  EXPECT_EQ(g[0].item<float>(), 1.0f);
  // Integer inputs get zero gradients (as f32), and their values can drive indexing.
  const array idx = array::from(std::vector<int64_t>{2, 0}, {2}, dtype::i64);
  const std::vector<array> gi =
      grad([](const std::vector<array>& v) { return sum(take(v[0], v[1], 0)); }, {randn({3}, 1), idx});
  EXPECT_EQ(gi[0].to_vector<float>(), (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(gi[1].shape(), idx.shape());
  EXPECT_TRUE(array_equal(gi[1], zeros({2})));
}

TEST(GradTape, HalfPrecisionLeavesGetHalfPrecisionGradients) {
  const array x = astype(randn({2, 3}, 1), dtype::f16);
  const std::vector<array> g =
      grad([](const std::vector<array>& v) { return sum(multiply(v[0], v[0])); }, {x});
  EXPECT_EQ(g[0].type(), dtype::f16);
  EXPECT_TRUE(allclose(astype(g[0], dtype::f32), multiply(astype(x, dtype::f32), array(2.0f)), 1e-3, 1e-3));
}

TEST(GradTape, ConcurrentTapesOnTwoThreadsAreIndependent) {
  const loss_fn f = [](const std::vector<array>& v) { return weighted_sum(softmax(matmul(v[0], v[1]), -1)); };
  const loss_fn g = [](const std::vector<array>& v) { return weighted_sum(rms_norm(v[0], v[1], 1e-5f), 2); };
  const std::vector<array> fx = {randn({4, 5}, 1), randn({5, 6}, 2)};
  const std::vector<array> gx = {randn({4, 5}, 3), randn({5}, 4)};
  const std::vector<array> f_serial = grad(f, fx), g_serial = grad(g, gx);
  std::vector<array> f_threaded, g_threaded;  // each written by one thread only
  std::thread a([&] {
    for (int i = 0; i < 50; ++i) f_threaded = grad(f, fx);
  });
  std::thread b([&] {
    for (int i = 0; i < 50; ++i) g_threaded = grad(g, gx);
  });
  a.join();
  b.join();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(array_equal(f_threaded[i], f_serial[i]));
    EXPECT_TRUE(array_equal(g_threaded[i], g_serial[i]));
  }
}

TEST(GradTape, RepeatedCallsAreIndependent) {
  const array x = randn({3, 3}, 1);
  const loss_fn f = [](const std::vector<array>& v) { return weighted_sum(softmax(matmul(v[0], v[0]), -1)); };
  const std::vector<array> first = grad(f, {x});
  const std::vector<array> second = grad(f, {x});
  EXPECT_TRUE(array_equal(first[0], second[0]));
}

// Runs fn on a new thread with a stack of `bytes` and waits for it.
void run_with_stack(size_t bytes, std::function<void()> fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, bytes);
  pthread_t thread;
  auto body = [](void* p) -> void* {
    (*static_cast<std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, body, &fn), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

// Neither the backward pass nor releasing the tape may recurse once per recorded op: an unrolled recurrence
// of 50k steps must fit in a 1 MiB stack. (On the 8 MiB main stack the same failure appears at about 120k
// steps.)
TEST(GradTapeDeathTest, ALongChainNeedsNoDeepRecursion) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        float g = 0;
        run_with_stack(size_t{1} << 20, [&g] {
          const loss_fn f = [](const std::vector<array>& v) {
            array h = v[0];
            for (int i = 0; i < 50000; ++i) h = add(h, array(1e-6f));
            return sum(h);
          };
          g = grad(f, {randn({1}, 1)})[0].item<float>();
        });
        std::exit(g == 1.0f ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace mlxd
