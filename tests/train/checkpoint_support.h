// Helpers shared by the checkpoint tests: a deterministic checkpoint_state.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/train/checkpoint.h"

namespace mlxd::train::ckpt_test {

// A state whose tensors (n x 64 floats each) and scalars are determined by `step`.
inline checkpoint_state make_state(int64_t step, int64_t n) {
  checkpoint_state s;
  s.step = step;
  s.schedule_step = step + 1;
  const auto k = static_cast<uint64_t>(step < 0 ? 0 : step);
  s.weights.emplace("embed.weight", random::normal({k, 1}, {n, 64}));
  s.weights.emplace("layers.0.bias", random::normal({k, 2}, {64}));
  s.weights.emplace("ids", arange(0, n, 1, dtype::i32));
  s.optimizer_state.emplace("step", array::from(std::vector<int64_t>{step}, {}));
  s.optimizer_state.emplace("exp_avg/embed.weight", random::normal({k, 3}, {n, 64}));
  s.optimizer_name = "adamw";
  s.rng = {k * 31, k};
  s.data_cursor = "{\"offset\":" + std::to_string(step * 8) + "}";
  return s;
}

inline void expect_same_arrays(const std::map<std::string, array>& a, const std::map<std::string, array>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, x] : a) {
    ASSERT_TRUE(b.contains(name)) << name;
    const array& y = b.at(name);
    EXPECT_EQ(x.type(), y.type()) << name;
    EXPECT_EQ(x.shape(), y.shape()) << name;
    const array cx = contiguous(x), cy = contiguous(y);
    ASSERT_EQ(cx.nbytes(), cy.nbytes()) << name;
    EXPECT_EQ(std::memcmp(cx.raw_data(), cy.raw_data(), cx.nbytes()), 0) << name << " differs";
  }
}

inline void expect_same_state(const checkpoint_state& a, const checkpoint_state& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.schedule_step, b.schedule_step);
  EXPECT_EQ(a.optimizer_name, b.optimizer_name);
  EXPECT_EQ(a.rng.seed, b.rng.seed);
  EXPECT_EQ(a.rng.stream, b.rng.stream);
  EXPECT_EQ(nlohmann::json::parse(a.data_cursor), nlohmann::json::parse(b.data_cursor));
  expect_same_arrays(a.weights, b.weights);
  expect_same_arrays(a.optimizer_state, b.optimizer_state);
}

}  // namespace mlxd::train::ckpt_test
