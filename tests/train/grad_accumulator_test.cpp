#include <gtest/gtest.h>

#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/train/grad_accumulator.h"

namespace mlxd::train {
namespace {

TEST(GradAccumulator, SumsMicroBatchesAndScales) {
  grad_accumulator acc;
  const array a = array::from({1.0f, 2.0f}, {2});
  acc.add({a, array::from({10.0f}, {1})});
  acc.add({array::from({3.0f, 4.0f}, {2}), array::from({20.0f}, {1})});
  acc.add({array::from({5.0f, 6.0f}, {2}), array::from({30.0f}, {1})});
  EXPECT_EQ(acc.micro_batches(), 3);
  const auto out = acc.take(0.5);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].to_vector<float>(), (std::vector<float>{4.5f, 6.0f}));
  EXPECT_EQ(out[1].to_vector<float>(), (std::vector<float>{30.0f}));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1.0f, 2.0f}));  // inputs are never written
  EXPECT_EQ(acc.micro_batches(), 0);
  EXPECT_THROW(acc.take(), std::logic_error);
}

TEST(GradAccumulator, TakenArraysStayFixedWhileAccumulatingAgain) {
  grad_accumulator acc;
  acc.add({array::from({1.0f}, {1})});
  const auto first = acc.take();
  acc.add({array::from({7.0f}, {1})});
  acc.add({array::from({1.0f}, {1})});
  EXPECT_EQ(first[0].item<float>(), 1.0f);
  EXPECT_EQ(acc.take()[0].item<float>(), 8.0f);
}

TEST(GradAccumulator, StridedAndLargeInputsMatchElementwiseSums) {
  grad_accumulator acc;
  const array x = random::normal({1, 0}, {400, 500});
  const array y = random::normal({2, 0}, {500, 400});
  acc.add({x});
  acc.add({transpose(y)});
  const auto out = acc.take(0.25);
  const auto want = multiply(add(x, transpose(y)), scalar(0.25, dtype::f32)).to_vector<float>();
  EXPECT_EQ(out[0].to_vector<float>(), want);
}

TEST(GradAccumulator, MismatchedMicroBatchesAreRejected) {
  grad_accumulator acc;
  acc.add({zeros({2, 3})});
  EXPECT_THROW(acc.add({zeros({3, 2})}), std::invalid_argument);
  EXPECT_THROW(acc.add({zeros({2, 3}), zeros({1})}), std::invalid_argument);
  EXPECT_THROW(acc.add({zeros({2, 3}, dtype::bf16)}), std::invalid_argument);
  EXPECT_EQ(acc.micro_batches(), 1);
  acc.reset();
  EXPECT_EQ(acc.micro_batches(), 0);
  acc.add({zeros({3, 2})});  // after reset any shape starts a new sum
  EXPECT_EQ(acc.micro_batches(), 1);
}

}  // namespace
}  // namespace mlxd::train
