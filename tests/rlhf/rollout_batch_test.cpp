// pack_rollouts' layout written out by hand: shifted labels, the completion mask, old log-probs at the
// masked positions, padding in a segment of its own, empty completions and bad input.
#include "mlxd/rlhf/rollout_batch.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace mlxd::rlhf {
namespace {

template <class T>
std::vector<T> v(const array& a) {
  return a.to_vector<T>();
}

TEST(pack_rollouts, rows_labels_mask_and_old_logprobs) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}};
  const std::vector<rollout> rs = {
      {1, 0, {7}, {-3.0f}, true}, {0, 0, {5, 6}, {-1.0f, -2.0f}, false}, {0, 1, {}, {}, false}};
  const rollout_batch b = pack_rollouts(prompts, rs);
  ASSERT_EQ(b.labels.shape(), (shape_t{3, 4}));
  EXPECT_EQ(v<int32_t>(b.inputs.tokens), (std::vector<int32_t>{4, 0, 0, 0, 1, 2, 3, 5, 1, 2, 0, 0}));
  EXPECT_EQ(v<int32_t>(b.labels), (std::vector<int32_t>{7, 0, 0, 0, 2, 3, 5, 6, 2, 3, 0, 0}));
  EXPECT_EQ(v<float>(b.mask), (std::vector<float>{1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(v<float>(b.old_logprobs), (std::vector<float>{-3, 0, 0, 0, 0, 0, -1, -2, 0, 0, 0, 0}));
  EXPECT_EQ(v<int32_t>(b.inputs.segments), (std::vector<int32_t>{0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(v<int32_t>(b.inputs.positions), (std::vector<int32_t>{0, 0, 1, 2, 0, 1, 2, 3, 0, 1, 0, 1}));
}

TEST(pack_rollouts, one_token_prompt_with_no_completion_is_all_padding) {
  const rollout_batch b = pack_rollouts({{9}}, std::vector<rollout>{{0, 0, {}, {}, false}});
  EXPECT_EQ(b.labels.shape(), (shape_t{1, 1}));
  EXPECT_EQ(v<float>(b.mask), std::vector<float>{0});
  EXPECT_EQ(v<int32_t>(b.inputs.segments), std::vector<int32_t>{1});
}

TEST(pack_rollouts, bad_input_is_named) {
  const std::vector<std::vector<int32_t>> prompts = {{1}, {}};
  EXPECT_THROW(pack_rollouts(prompts, std::vector<rollout>{}), std::invalid_argument);
  auto message = [&](const rollout& r) {
    try {
      pack_rollouts(prompts, std::vector<rollout>{{0, 0, {2}, {-1.0f}, false}, r});
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({2, 0, {2}, {-1.0f}, false}), "[pack_rollouts] rollout 1 names prompt 2 of 2");
  EXPECT_EQ(message({1, 0, {2}, {-1.0f}, false}), "[pack_rollouts] rollout 1 has an empty prompt");
  EXPECT_EQ(message({0, 0, {2, 3}, {-1.0f}, false}), "[pack_rollouts] rollout 1 has 1 logprobs for 2 tokens");
}

}  // namespace
}  // namespace mlxd::rlhf
