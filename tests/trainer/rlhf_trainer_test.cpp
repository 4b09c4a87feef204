// The trainer's RLHF tasks on a tiny model: DPO starts at log 2 with zero margins, is invariant to how a
// step's pairs are split into micro-batches, caches the reference's log-probs without changing a step,
// resumes exactly; the reward model trains, is written as a sequence classifier and scores what the trainer
// scored; GRPO samples its groups, does nothing on tied rewards and is invariant to micro-batching.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "mlxd/core/ops.h"
#include "mlxd/data/sample_encoder.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/trainer/reward_model.h"
#include "mlxd/trainer/run.h"
#include "mlxd/trainer/trainer.h"
#include "rlhf_test_util.h"
#include "trainer_fixture.h"

namespace mlxd::trainer {
namespace {

namespace fs = std::filesystem;

using test::max_abs_diff;
using test::stat;

class rlhf_trainer_test : public test::trainer_fixture {
 protected:
  // Pairs whose chosen response is a verse's ending and whose rejected one is another verse's.
  fs::path preference_file() const {
    const char* prompts[] = {"And God said,", "And the earth", "In the beginning", "And God saw"};
    const char* endings[] = {" Let there be light: and there was light.", " was without form, and void.",
                             " God created the heaven and the earth.", " the light, that it was good."};
    std::string jsonl;
    for (int round = 0; round < 5; ++round)
      for (int i = 0; i < 4; ++i) {
        nlohmann::json j = {{"prompt", prompts[i]},
                            {"chosen", endings[i]},
                            {"rejected", endings[(i + 1 + round % 3) % 4]},
                            {"id", round * 4 + i}};
        jsonl += j.dump() + "\n";
      }
    return dir_.write("prefs.jsonl", jsonl);
  }

  nlohmann::json task_doc(const std::string& task, const std::string& out, int64_t steps,
                          const fs::path& base) {
    nlohmann::json doc = config_doc(out, steps);
    doc.erase("tokenizer");
    doc["model"] = {{"from", base.string()}, {"seed", 11}};
    doc["data"] = {{"train", {preference_file().string()}},
                   {"validation_fraction", 0.25},
                   {"seq_len", 24},
                   {"batch_size", 4},
                   {"seed", 5}};
    doc["task"] = task;
    doc["schedule"] = {{"kind", "constant"}};
    return doc;
  }
};

TEST_F(rlhf_trainer_test, dpo_starts_at_log_2_with_the_reference_equal_to_the_policy) {
  const fs::path base = pretrained("base");
  trainer t(parse_train_config(task_doc("dpo", "dpo", 5, base), dir_.path()));
  const step_result r = t.step();
  EXPECT_NEAR(r.loss, std::log(2.0), 1e-6);
  EXPECT_NEAR(stat(r.stats, "margin"), 0.0, 1e-6);
  EXPECT_EQ(stat(r.stats, "accuracy"), 0.0);  // a tie is not a win
  EXPECT_GT(r.grad_norm, 0.0);
  EXPECT_GT(r.tokens, 0);
}

TEST_F(rlhf_trainer_test, dpo_step_is_the_same_for_any_split_into_micro_batches) {
  const fs::path base = pretrained("base");
  nlohmann::json whole = task_doc("dpo", "whole", 3, base);
  nlohmann::json split = task_doc("dpo", "split", 3, base);
  split["data"]["batch_size"] = 1;
  split["optim"]["accumulation"] = 4;
  trainer a(parse_train_config(whole, dir_.path())), b(parse_train_config(split, dir_.path()));
  for (int i = 0; i < 3; ++i) {
    const step_result ra = a.step(), rb = b.step();
    EXPECT_NEAR(ra.loss, rb.loss, 1e-5) << "step " << i;
    EXPECT_NEAR(stat(ra.stats, "margin"), stat(rb.stats, "margin"), 1e-5);
  }
  EXPECT_LT(max_abs_diff(a.params(), b.params()), 2e-5);
}

TEST_F(rlhf_trainer_test, cached_reference_log_probs_give_the_same_steps) {
  const fs::path base = pretrained("base");
  nlohmann::json cached = task_doc("dpo", "cached", 12, base);
  nlohmann::json plain = task_doc("dpo", "plain", 12, base);
  plain["dpo"] = {{"cache_reference", false}};
  trainer a(parse_train_config(cached, dir_.path())), b(parse_train_config(plain, dir_.path()));
  // 15 training pairs, 4 a step: the cache serves the later epochs.
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(a.step().loss, b.step().loss, 1e-5) << "step " << i;
  EXPECT_LT(max_abs_diff(a.params(), b.params()), 1e-5);
  size_t lines = 0;
  for (const auto& e : fs::directory_iterator(dir_.path() / "cached" / "reference_cache")) {
    std::ifstream in(e.path());
    for (std::string l; std::getline(in, l);) ++lines;
  }
  EXPECT_GE(lines, 10u);  // one per distinct training pair seen
  EXPECT_LE(lines, 16u);
  EXPECT_FALSE(fs::exists(dir_.path() / "plain" / "reference_cache"));
}

TEST_F(rlhf_trainer_test, dpo_resumes_exactly) {
  const fs::path base = pretrained("base");
  nlohmann::json straight = task_doc("dpo", "straight", 6, base);
  trainer s(parse_train_config(straight, dir_.path()));
  while (s.steps_done() < 6) s.step();
  nlohmann::json resumed = task_doc("dpo", "resumed", 6, base);
  {
    trainer first(parse_train_config(resumed, dir_.path()));
    for (int i = 0; i < 3; ++i) first.step();
    first.save_checkpoint();
  }
  trainer second(parse_train_config(resumed, dir_.path()));
  ASSERT_TRUE(second.resumed_from());
  while (second.steps_done() < 6) second.step();
  EXPECT_EQ(max_abs_diff(s.params(), second.params()), 0.0);
}

TEST_F(rlhf_trainer_test, dpo_with_lora_uses_the_base_as_reference) {
  const fs::path base = pretrained("base");
  nlohmann::json doc = task_doc("dpo", "lora", 4, base);
  doc["lora"] = {{"rank", 4}, {"alpha", 8}, {"targets", {"q_proj", "v_proj"}}};
  trainer t(parse_train_config(doc, dir_.path()));
  EXPECT_NEAR(t.step().loss, std::log(2.0), 1e-6);  // B = 0 at the start: the policy is the base
  for (const auto& n : t.param_names()) EXPECT_NE(n.find("lora_"), std::string::npos) << n;
}

TEST_F(rlhf_trainer_test, reward_model_trains_saves_and_scores_like_the_trainer) {
  const fs::path base = pretrained("base");
  nlohmann::json doc = task_doc("reward", "reward", 40, base);
  doc["optim"]["lr"] = 3e-3;
  const train_config c = parse_train_config(doc, dir_.path());
  trainer t(c);
  EXPECT_EQ(t.param_names().back(), "score.weight");
  const step_result first = t.step();
  EXPECT_NEAR(first.loss, std::log(2.0), 0.05);  // a head drawn from N(0, 0.02) scores both sides near 0
  const run_summary s = run_training(t, nullptr);
  EXPECT_LT(s.last.loss, 0.3);
  EXPECT_GT(stat(s.last.stats, "accuracy"), 0.9);

  const models::llama_config saved = models::load_llama_config(model_dir(c));
  EXPECT_EQ(saved.num_labels, 1);
  const reward_model rm(model_dir(c));
  // The saved model scores a pair as the trainer's forward does: the chosen reward it reports on a batch of
  // one pair equals the score of that pair's chosen sequence.
  const mlxd::data::sample_encoder enc(tokenizer::load(base), {});
  mlxd::data::record r;
  r.text = R"({"prompt": "And God said,", "chosen": " Let there be light: and there was light.", )"
           R"("rejected": " was without form, and void."})";
  const fs::path file = dir_.write("one.jsonl", r.text + "\n");
  r.path = &file;
  const mlxd::data::preference_sample p = enc.encode_preference(r);
  const std::vector<float> scores = rm.score({p.chosen.ids, p.rejected.ids});
  EXPECT_GT(scores[0], scores[1]);

  nlohmann::json one = task_doc("reward", "check", 1, model_dir(c));
  one["data"] = {{"train", {file.string()}}, {"batch_size", 1}, {"seq_len", 64}};  // nothing cut
  one["run"]["eval_batches"] = 1;
  trainer again(parse_train_config(one, dir_.path()));  // reads the head back from the folder
  const step_result r1 = again.step();
  EXPECT_NEAR(stat(r1.stats, "chosen_reward"), scores[0], 1e-4);
  EXPECT_NEAR(stat(r1.stats, "rejected_reward"), scores[1], 1e-4);
}

nlohmann::json grpo_doc(nlohmann::json doc, const nlohmann::json& reward) {
  doc["task"] = "grpo";
  doc["data"]["validation_fraction"] = 0;
  doc["grpo"] = {{"group_size", 4}, {"max_new_tokens", 8}, {"reward", reward}};
  return doc;
}

TEST_F(rlhf_trainer_test, grpo_samples_groups_and_reports_their_rewards) {
  const fs::path base = pretrained("base");
  // Length rewards differ between the members of a group, so advantages are not all 0.
  trainer t(parse_train_config(
      grpo_doc(task_doc("dpo", "grpo", 3, base), {{"kind", "length"}, {"target", 4}, {"unit", "tokens"}}),
      dir_.path()));
  const step_result r = t.step();
  EXPECT_EQ(stat(r.stats, "completions"), 16.0);  // 4 prompts x 4
  EXPECT_EQ(stat(r.stats, "groups"), 4.0);
  const double length = stat(r.stats, "completion_length");
  EXPECT_GE(length, 1.0);
  EXPECT_LE(length, 8.0);
  EXPECT_LE(stat(r.stats, "reward"), 0.0);  // -|len - 4| / 4
  EXPECT_LT(stat(r.stats, "zero_std_fraction"), 1.0);
  EXPECT_GT(r.grad_norm, 0.0);
  // One epoch of the inference path against the training forward: ratios 1 up to rounding, none clipped.
  EXPECT_EQ(stat(r.stats, "clip_fraction"), 0.0);
  EXPECT_NEAR(stat(r.stats, "ratio_min"), 1.0, 1e-3);
  EXPECT_NEAR(stat(r.stats, "ratio_max"), 1.0, 1e-3);
  EXPECT_LE(stat(r.stats, "ratio_min"), stat(r.stats, "ratio_max"));
  // Sampling at temperature 1 from a barely trained model: well above 0, below log(vocabulary).
  EXPECT_GT(stat(r.stats, "entropy"), 0.1);
  EXPECT_LT(stat(r.stats, "entropy"), std::log(300.0));
  EXPECT_EQ(stat(r.stats, "kl_k1"), 0.0);  // no reference without kl_beta
}

TEST_F(rlhf_trainer_test, grpo_with_tied_rewards_moves_nothing) {
  const fs::path base = pretrained("base");
  nlohmann::json doc = grpo_doc(task_doc("dpo", "tied", 2, base), {{"kind", "contains"}, {"word", "zebra"}});
  doc["optim"]["weight_decay"] = 0.0;  // AdamW would shrink the weights even with zero gradients
  trainer t(parse_train_config(doc, dir_.path()));
  const std::vector<array> before = t.params();
  const step_result r = t.step();
  EXPECT_EQ(stat(r.stats, "reward"), 0.0);
  EXPECT_EQ(stat(r.stats, "zero_std_fraction"), 1.0);
  EXPECT_EQ(r.loss, 0.0);
  EXPECT_EQ(r.grad_norm, 0.0);
  EXPECT_EQ(max_abs_diff(before, t.params()), 0.0);
}

TEST_F(rlhf_trainer_test, grpo_step_is_the_same_for_any_split_into_micro_batches) {
  const fs::path base = pretrained("base");
  const nlohmann::json reward = {{"kind", "length"}, {"target", 5}, {"unit", "tokens"}};
  nlohmann::json whole = grpo_doc(task_doc("dpo", "whole", 2, base), reward);
  nlohmann::json split = grpo_doc(task_doc("dpo", "split", 2, base), reward);
  split["data"]["batch_size"] = 2;
  split["optim"]["accumulation"] = 2;
  trainer a(parse_train_config(whole, dir_.path())), b(parse_train_config(split, dir_.path()));
  for (int i = 0; i < 2; ++i) {
    const step_result ra = a.step(), rb = b.step();
    EXPECT_NEAR(stat(ra.stats, "reward"), stat(rb.stats, "reward"), 1e-9)
        << "the same completions, step " << i;
    EXPECT_EQ(stat(ra.stats, "completion_length"), stat(rb.stats, "completion_length"));
    EXPECT_NEAR(ra.loss, rb.loss, 1e-6) << "step " << i;
  }
  EXPECT_LT(max_abs_diff(a.params(), b.params()), 2e-5);
}

TEST_F(rlhf_trainer_test, grpo_resumes_exactly) {
  // Rollouts draw from (data.seed, step, epoch, prompt position), so a resumed run samples what the
  // uninterrupted one sampled.
  const fs::path base = pretrained("base");
  const nlohmann::json reward = {{"kind", "length"}, {"target", 3}, {"unit", "tokens"}};
  trainer s(parse_train_config(grpo_doc(task_doc("dpo", "straight", 4, base), reward), dir_.path()));
  while (s.steps_done() < 4) s.step();
  const train_config c =
      parse_train_config(grpo_doc(task_doc("dpo", "resumed", 4, base), reward), dir_.path());
  {
    trainer first(c);
    first.step(), first.step();
    first.save_checkpoint();
  }
  trainer second(c);
  ASSERT_TRUE(second.resumed_from());
  while (second.steps_done() < 4) second.step();
  EXPECT_EQ(max_abs_diff(s.params(), second.params()), 0.0);
}

TEST_F(rlhf_trainer_test, a_pair_that_is_not_a_preference_record_is_named) {
  const fs::path base = pretrained("base");
  nlohmann::json doc = task_doc("dpo", "bad", 2, base);
  doc["data"]["train"] = {dir_.write("bad.jsonl", R"({"prompt": "a", "chosen": "b"})"
                                                  "\n")
                              .string()};
  doc["data"].erase("validation_fraction");
  trainer t(parse_train_config(doc, dir_.path()));
  try {
    t.step();
    FAIL() << "expected a data error";
  } catch (const mlxd::data::data_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rejected"), std::string::npos) << e.what();
  }
}

TEST_F(rlhf_trainer_test, rlhf_settings_are_checked) {
  const fs::path base = pretrained("base");
  auto error_of = [&](nlohmann::json doc) {
    try {
      parse_train_config(doc, dir_.path());
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  nlohmann::json doc = task_doc("dpo", "x", 1, base);
  doc["dpo"] = {{"betaa", 0.1}};
  EXPECT_NE(error_of(doc).find("dpo.betaa is not a setting"), std::string::npos);
  doc["dpo"] = {{"loss", "sigmoid"}, {"label_smoothing", 0.1}};
  EXPECT_NE(error_of(doc).find("label_smoothing applies only"), std::string::npos);
  doc["dpo"] = {{"loss", "kto"}};
  EXPECT_NE(error_of(doc).find("dpo.loss must be"), std::string::npos);
  doc["dpo"] = {{"beta", 0}};
  EXPECT_NE(error_of(doc).find("dpo.beta must be > 0"), std::string::npos);
  doc.erase("dpo");
  doc["task"] = "ppo2";
  EXPECT_NE(error_of(doc).find("task must be"), std::string::npos);
  doc["task"] = "grpo";
  EXPECT_NE(error_of(doc).find("grpo.reward must say"), std::string::npos);
  doc["grpo"] = {{"reward", {{"kind", "contains"}}}};
  EXPECT_NE(error_of(doc).find("grpo.reward.word"), std::string::npos);
  doc["grpo"] = {{"reward", {{"kind", "contains"}, {"word", "x"}}}, {"advantage", "ppo"}};
  EXPECT_NE(error_of(doc).find("grpo.advantage must be"), std::string::npos);
  doc["grpo"] = {{"reward", {{"kind", "model"}}}};
  EXPECT_NE(error_of(doc).find("grpo.reward.path must name"), std::string::npos);
  doc["grpo"] = {{"reward", {{"kind", "model"}, {"path", "rm"}, {"scale", 2}}}};
  EXPECT_NE(error_of(doc).find("grpo.reward.scale is not a setting"), std::string::npos);
  doc["task"] = "reward";
  doc["reward"] = {{"center_coefficient", -1}};
  EXPECT_NE(error_of(doc).find("reward.center_coefficient"), std::string::npos);
}

}  // namespace
}  // namespace mlxd::trainer
