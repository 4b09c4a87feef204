// Rollouts against independent paths: greedy decoding one sequence at a time with llama_model::forward, the
// sampling-time log-probs against the teacher-forced training forward, and the sampling invariants (seeded
// determinism, distinct group members, stop ids, batch composition).
#include "mlxd/rlhf/rollout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_train.h"
#include "mlxd/rlhf/logprobs.h"
#include "mlxd/rlhf/rollout_batch.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "tiny_model.h"

namespace mlxd::rlhf {
namespace {

using models::tiny::random_weights;
using models::tiny::tiny_config;

const std::vector<std::vector<int32_t>> kPrompts = {{3, 1, 4}, {9}, {2, 7, 1, 8, 2}};

rollout_options sampled(int group, int max_new, uint64_t seed) {
  rollout_options o;
  o.group_size = group;
  o.max_new_tokens = max_new;
  o.sampling.temperature = 1.0f;
  o.sampling.seed = seed;
  return o;
}

// Greedy decoding of one prompt, one token per forward call, and the f64 log-softmax of each chosen token.
std::pair<std::vector<int32_t>, std::vector<double>> greedy(const models::llama_model& m,
                                                            const std::vector<int32_t>& prompt, int n) {
  models::kv_cache cache = m.make_cache(static_cast<int>(prompt.size()) + n);
  array logits = m.forward(prompt, cache);
  std::vector<int32_t> ids;
  std::vector<double> lps;
  for (int i = 0; i < n; ++i) {
    const std::vector<double> all = logits.to_vector<double>();
    const int64_t v = logits.shape(1);
    const std::vector<double> row(all.end() - v, all.end());
    const auto best = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    double z = 0;
    for (double x : row) z += std::exp(x - row[best]);
    ids.push_back(best);
    lps.push_back(-std::log(z));
    logits = m.forward({best}, cache);
  }
  return {ids, lps};
}

// The teacher-forced log-probs of the packed rollouts through the training forward, per rollout.
void expect_match_training(const models::llama_config& c, const std::map<std::string, array>& w,
                           const std::vector<std::vector<int32_t>>& prompts, const std::vector<rollout>& rs,
                           double tol) {
  const rollout_batch b = pack_rollouts(prompts, rs);
  const token_logprobs lp = sequence_logprobs(models::training_logits(c, w, b.inputs), b.labels, b.mask);
  const std::vector<double> got = lp.tokens.to_vector<double>(), old = b.old_logprobs.to_vector<double>();
  const std::vector<double> mask = b.mask.to_vector<double>();
  double n_mask = 0, worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    n_mask += mask[i];
    worst = std::max(worst, std::fabs(got[i] - old[i]));
  }
  size_t n_generated = 0;
  for (const rollout& r : rs) n_generated += r.ids.size();
  EXPECT_EQ(n_mask, static_cast<double>(n_generated));
  EXPECT_LE(worst, tol);
}

TEST(rollout, greedy_equals_forward_one_sequence_at_a_time) {
  for (bool qwen : {false, true}) {
    const models::llama_config c = tiny_config(qwen, !qwen);
    const auto w = random_weights(c, 11);
    const models::llama_model m(c, w);
    rollout_options o;
    o.group_size = 2;
    o.max_new_tokens = 7;
    o.sampling.temperature = 0.0f;
    const std::vector<rollout> rs = generate_rollouts(m, kPrompts, o);
    ASSERT_EQ(rs.size(), kPrompts.size() * 2);
    for (size_t i = 0; i < rs.size(); ++i) {
      const auto [ids, lps] = greedy(m, kPrompts[i / 2], 7);
      EXPECT_EQ(rs[i].prompt_index, static_cast<int>(i / 2));
      EXPECT_EQ(rs[i].member, static_cast<int>(i % 2));
      EXPECT_EQ(rs[i].ids, ids) << "rollout " << i << " qwen " << qwen;
      EXPECT_FALSE(rs[i].stopped);
      for (size_t t = 0; t < lps.size(); ++t) EXPECT_NEAR(rs[i].logprobs[t], lps[t], 1e-5);
    }
  }
}

TEST(rollout, sampling_logprobs_equal_the_training_forward) {
  for (bool qwen : {false, true}) {
    const models::llama_config c = tiny_config(qwen, qwen);
    const auto w = random_weights(c, 5);
    rollout_options o = sampled(3, 6, 42);
    o.stop_ids = {0};
    const std::vector<rollout> rs = generate_rollouts(c, w, kPrompts, o);
    expect_match_training(c, w, kPrompts, rs, 1e-4);
  }
}

TEST(rollout, same_seed_same_completions_new_seed_new_ones) {
  const models::llama_config c = tiny_config(false, true);
  const models::llama_model m(c, random_weights(c, 3));
  const auto a = generate_rollouts(m, kPrompts, sampled(2, 8, 7));
  const auto b = generate_rollouts(m, kPrompts, sampled(2, 8, 7));
  const auto d = generate_rollouts(m, kPrompts, sampled(2, 8, 8));
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids);
    EXPECT_EQ(a[i].logprobs, b[i].logprobs);
    differs = differs || a[i].ids != d[i].ids;
  }
  EXPECT_TRUE(differs);
}

TEST(rollout, members_of_a_group_differ_at_temperature_one) {
  const models::llama_config c = tiny_config(false, true);
  const models::llama_model m(c, random_weights(c, 3));
  const int g = 6;
  const auto rs = generate_rollouts(m, kPrompts, sampled(g, 10, 1));
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    std::set<std::vector<int32_t>> distinct;
    for (int i = 0; i < g; ++i) distinct.insert(rs[p * g + i].ids);
    EXPECT_EQ(distinct.size(), static_cast<size_t>(g)) << "prompt " << p;
  }
}

TEST(rollout, stop_ids_end_a_completion_and_are_kept) {
  const models::llama_config c = tiny_config(true, false);
  const models::llama_model m(c, random_weights(c, 9));
  const auto free = generate_rollouts(m, kPrompts, sampled(4, 12, 3));
  // Stop on a token some completion generates before its end.
  const int32_t stop = free[0].ids[3];
  rollout_options o = sampled(4, 12, 3);
  o.stop_ids = {stop};
  const auto stopped = generate_rollouts(m, kPrompts, o);
  int n_stopped = 0;
  for (size_t i = 0; i < free.size(); ++i) {
    const auto& ids = free[i].ids;
    EXPECT_EQ(ids.size(), 12u);
    EXPECT_FALSE(free[i].stopped);
    const auto end = std::find(ids.begin(), ids.end(), stop);
    const std::vector<int32_t> want(ids.begin(), end == ids.end() ? end : end + 1);
    EXPECT_EQ(stopped[i].ids, want) << "rollout " << i;
    EXPECT_EQ(stopped[i].stopped, end != ids.end());
    ASSERT_EQ(stopped[i].logprobs.size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(stopped[i].logprobs[t], free[i].logprobs[t], 1e-5);
    n_stopped += stopped[i].stopped;
  }
  EXPECT_GE(n_stopped, 2);
}

TEST(rollout, batch_of_different_lengths_equals_one_prompt_at_a_time) {
  const models::llama_config c = tiny_config(false, false);
  const models::llama_model m(c, random_weights(c, 21));
  rollout_options o = sampled(2, 9, 17);
  o.sampling.temperature = 0.8f;
  o.sampling.top_k = 6;
  o.sampling.top_p = 0.95f;
  o.stop_ids = {4};
  const auto all = generate_rollouts(m, kPrompts, o);
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    rollout_options one = o;
    one.first_prompt_index = static_cast<int64_t>(p);
    const auto alone = generate_rollouts(m, {kPrompts[p]}, one);
    // The same prompt named by an id instead of its place (as the trainer names a record by file and line).
    rollout_options named = o;
    named.prompt_ids = {static_cast<int64_t>(p)};
    const auto by_id = generate_rollouts(m, {kPrompts[p]}, named);
    ASSERT_EQ(alone.size(), 2u);
    ASSERT_EQ(by_id.size(), 2u);
    for (int g = 0; g < 2; ++g) EXPECT_EQ(by_id[g].ids, alone[g].ids) << "prompt " << p << " member " << g;
    for (int g = 0; g < 2; ++g) {
      const rollout& r = all[p * 2 + g];
      EXPECT_EQ(alone[g].prompt_index, 0);
      EXPECT_EQ(alone[g].ids, r.ids) << "prompt " << p << " member " << g;
      EXPECT_EQ(alone[g].stopped, r.stopped);
      ASSERT_EQ(alone[g].logprobs.size(), r.logprobs.size());
      for (size_t t = 0; t < r.logprobs.size(); ++t) EXPECT_NEAR(alone[g].logprobs[t], r.logprobs[t], 1e-5);
    }
  }
}

TEST(rollout, bad_input_is_named) {
  const models::llama_config c = tiny_config(false, true);
  const models::llama_model m(c, random_weights(c, 1));
  auto fails = [&](std::vector<std::vector<int32_t>> prompts, rollout_options o, const std::string& what) {
    try {
      generate_rollouts(m, prompts, o);
      ADD_FAILURE() << "no error for " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  const rollout_options ok = sampled(2, 4, 0);
  fails({{1}, {}}, ok, "prompt 1 is empty");
  fails({{1, 11}}, ok, "prompt 0 holds token 11");
  rollout_options o = ok;
  o.stop_ids = {-1};
  fails({{1}}, o, "stop id -1");
  o = ok;
  o.group_size = 0;
  fails({{1}}, o, "group_size");
  o = ok;
  o.max_new_tokens = 0;
  fails({{1}}, o, "max_new_tokens");
  o = ok;
  o.max_new_tokens = c.max_position_embeddings;
  fails({{1}}, o, "exceeds max_position_embeddings");
  o = ok;
  o.sampling.temperature = -1;
  fails({{1}}, o, "temperature");
  o = ok;
  o.prompt_ids = {1, 2};
  fails({{1}}, o, "prompt_ids must hold one id per prompt");
  EXPECT_TRUE(generate_rollouts(m, {}, ok).empty());
  const models::llama_model stage(c, random_weights(c, 1), models::llama_stage{0, 1, true, false});
  EXPECT_THROW(generate_rollouts(stage, {{1}}, ok), std::invalid_argument);
}

// The shipped 1.9M-parameter bf16 model on real text: KJV-style completions that stop at EOS, whose
// sampling log-probs match the training forward on the bf16 weights.
TEST(rollout, default_model_matches_its_training_forward) {
  const std::filesystem::path dir = MLXD_DEFAULT_MODEL_DIR;
  const models::llama_config c = models::load_llama_config(dir);
  const std::map<std::string, array> w = load_model_weights(dir).tensors;
  const tokenizer tok = tokenizer::load(dir);
  const std::vector<std::vector<int32_t>> prompts = {tok.encode("And God said"),
                                                     tok.encode("In the beginning")};
  rollout_options o = sampled(3, 16, 2024);
  o.sampling.temperature = 0.9f;
  o.sampling.top_p = 0.95f;
  o.stop_ids = tok.eos_ids();
  const auto rs = generate_rollouts(c, w, prompts, o);
  ASSERT_EQ(rs.size(), 6u);
  std::set<std::string> texts;
  for (const rollout& r : rs) {
    texts.insert(tok.decode(r.ids, true));
    const bool eos = std::find(o.stop_ids.begin(), o.stop_ids.end(), r.ids.back()) != o.stop_ids.end();
    EXPECT_EQ(r.stopped, eos);
    if (!r.stopped) {
      EXPECT_EQ(r.ids.size(), 16u);
    }
  }
  EXPECT_GE(texts.size(), 2u);
  expect_match_training(c, w, prompts, rs, 1e-4);
}

}  // namespace
}  // namespace mlxd::rlhf
