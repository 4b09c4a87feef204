#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "mlxd/train/schedule.h"

namespace mlxd::train {
namespace {

TEST(Schedule, Constant) {
  const schedule s = constant_schedule(3e-4);
  EXPECT_DOUBLE_EQ(s(0), 3e-4);
  EXPECT_DOUBLE_EQ(s(1'000'000), 3e-4);
}

TEST(Schedule, LinearWarmup) {
  const schedule s = linear_warmup(1.0, 4);
  EXPECT_DOUBLE_EQ(s(0), 0.0);
  EXPECT_DOUBLE_EQ(s(1), 0.25);
  EXPECT_DOUBLE_EQ(s(3), 0.75);
  EXPECT_DOUBLE_EQ(s(4), 1.0);
  EXPECT_DOUBLE_EQ(s(100), 1.0);
  const schedule from = linear_warmup(2.0, 2, 1.0);
  EXPECT_DOUBLE_EQ(from(0), 1.0);
  EXPECT_DOUBLE_EQ(from(1), 1.5);
  EXPECT_DOUBLE_EQ(from(2), 2.0);
}

TEST(Schedule, CosineWithMinLr) {
  const schedule s = cosine_decay(1.0, 4, 0.2);
  EXPECT_DOUBLE_EQ(s(0), 1.0);
  // 0.2 + 0.8 * (1 + cos(pi/4)) / 2
  EXPECT_NEAR(s(1), 0.2 + 0.4 * (1.0 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(s(2), 0.6, 1e-15);
  EXPECT_NEAR(s(3), 0.2 + 0.4 * (1.0 - std::sqrt(0.5)), 1e-15);
  EXPECT_DOUBLE_EQ(s(4), 0.2);
  EXPECT_DOUBLE_EQ(s(50), 0.2);
}

TEST(Schedule, LinearDecay) {
  const schedule s = linear_decay(1.0, 0.5, 5);
  EXPECT_DOUBLE_EQ(s(0), 1.0);
  EXPECT_DOUBLE_EQ(s(2), 0.8);
  EXPECT_DOUBLE_EQ(s(5), 0.5);
  EXPECT_DOUBLE_EQ(s(9), 0.5);
}

TEST(Schedule, StepDecay) {
  const schedule s = step_decay(0.8, 3, 0.5);
  EXPECT_DOUBLE_EQ(s(0), 0.8);
  EXPECT_DOUBLE_EQ(s(2), 0.8);
  EXPECT_DOUBLE_EQ(s(3), 0.4);
  EXPECT_DOUBLE_EQ(s(5), 0.4);
  EXPECT_DOUBLE_EQ(s(6), 0.2);
  EXPECT_DOUBLE_EQ(s(9), 0.1);
}

TEST(Schedule, JoinedSchedulesCountStepsFromTheirBoundary) {
  const schedule s =
      join_schedules({constant_schedule(0.1), linear_decay(1.0, 0.0, 10), constant_schedule(7.0)}, {3, 8});
  EXPECT_DOUBLE_EQ(s(0), 0.1);
  EXPECT_DOUBLE_EQ(s(2), 0.1);
  EXPECT_DOUBLE_EQ(s(3), 1.0);  // the second schedule's step 0
  EXPECT_DOUBLE_EQ(s(5), 0.8);
  EXPECT_DOUBLE_EQ(s(7), 0.6);
  EXPECT_DOUBLE_EQ(s(8), 7.0);
  EXPECT_DOUBLE_EQ(s(1000), 7.0);
}

TEST(Schedule, WarmupCosine) {
  const schedule s = warmup_cosine(2.0, 2, 6, 0.0);
  EXPECT_DOUBLE_EQ(s(0), 0.0);
  EXPECT_DOUBLE_EQ(s(1), 1.0);
  EXPECT_DOUBLE_EQ(s(2), 2.0);
  EXPECT_NEAR(s(4), 1.0, 1e-15);  // half way through the 4 cosine steps
  EXPECT_NEAR(s(6), 0.0, 1e-15);
}

TEST(Schedule, BadArgumentsThrow) {
  EXPECT_THROW(constant_schedule(-1.0), std::invalid_argument);
  EXPECT_THROW(constant_schedule(NAN), std::invalid_argument);
  EXPECT_THROW(linear_warmup(1.0, 0), std::invalid_argument);
  EXPECT_THROW(cosine_decay(1.0, 0), std::invalid_argument);
  EXPECT_THROW(linear_decay(1.0, 0.0, -3), std::invalid_argument);
  EXPECT_THROW(step_decay(1.0, 0, 0.5), std::invalid_argument);
  EXPECT_THROW(join_schedules({}, {}), std::invalid_argument);
  EXPECT_THROW(join_schedules({constant_schedule(1.0), constant_schedule(2.0)}, {}), std::invalid_argument);
  EXPECT_THROW(
      join_schedules({constant_schedule(1.0), constant_schedule(2.0), constant_schedule(3.0)}, {5, 5}),
      std::invalid_argument);
  EXPECT_THROW(warmup_cosine(1.0, 10, 10), std::invalid_argument);
  EXPECT_THROW(constant_schedule(1.0)(-1), std::invalid_argument);
}

}  // namespace
}  // namespace mlxd::train
