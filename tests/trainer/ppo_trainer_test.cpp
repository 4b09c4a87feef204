// PPO through the trainer on a tiny model: a step is one rollout batch and epochs x minibatches updates
// whose statistics are consistent; any split of the minibatches into micro-batches gives the same step; a
// run resumes exactly with its adaptive KL coefficient; a checkpoint resumed against another reference is
// refused; rollouts whose reward is not a number take no part; the value head stays out of the model.
#include <gtest/gtest.h>

#include <cmath>

#include "mlxd/io/safetensors.h"
#include "mlxd/train/checkpoint.h"
#include "mlxd/trainer/trainer.h"
#include "rlhf_test_util.h"
#include "trainer_fixture.h"

namespace mlxd::trainer {
namespace {

namespace fs = std::filesystem;
using test::max_abs_diff;
using test::stat;

class ppo_trainer_test : public test::trainer_fixture {
 protected:
  fs::path prompt_file() const {
    std::string jsonl;
    for (const char* p : {"And God said,", "And the earth", "In the beginning", "And God saw",
                          "And the evening", "And God called", "And the Spirit", "And God divided"})
      jsonl += nlohmann::json{{"prompt", p}}.dump() + "\n";
    return dir_.write("prompts.jsonl", jsonl);
  }

  // PPO from `base` on 4 prompts a step, 2 epochs of 2 minibatches, rewarded for 4-token completions.
  nlohmann::json ppo_doc(const std::string& out, int64_t steps, const fs::path& base) const {
    nlohmann::json doc = config_doc(out, steps);
    doc.erase("tokenizer");
    doc["model"] = {{"from", base.string()}, {"seed", 11}};
    doc["data"] = {{"train", {prompt_file().string()}}, {"batch_size", 4}, {"seed", 5}};
    doc["task"] = "ppo";
    doc["schedule"] = {{"kind", "constant"}};
    doc["ppo"] = {{"max_new_tokens", 8},
                  {"epochs", 2},
                  {"minibatches", 2},
                  {"kl_beta", 0.05},
                  {"reward", {{"kind", "length"}, {"target", 4}, {"unit", "tokens"}}}};
    return doc;
  }
};

TEST_F(ppo_trainer_test, a_step_makes_epochs_times_minibatches_updates) {
  const fs::path base = pretrained("base");
  trainer t(parse_train_config(ppo_doc("ppo", 3, base), dir_.path()));
  const step_result r = t.step();
  EXPECT_EQ(stat(r.stats, "completions"), 4.0);  // counted once, not once per epoch
  const double length = stat(r.stats, "completion_length");
  EXPECT_GE(length, 1.0);
  EXPECT_LE(length, 8.0);
  EXPECT_LE(stat(r.stats, "reward"), 0.0);  // -|len - 4| / 4
  // The reference is the policy the first batch was sampled from: k1 is rounding only.
  EXPECT_NEAR(stat(r.stats, "kl"), 0.0, 1e-4);
  EXPECT_EQ(stat(r.stats, "kl_beta"), 0.05);
  // The first update sees ratio 1; later ones moved the policy, so the ratios spread around 1.
  EXPECT_LE(stat(r.stats, "ratio_min"), 1.0 + 1e-4);
  EXPECT_GE(stat(r.stats, "ratio_max"), 1.0 - 1e-4);
  EXPECT_LT(stat(r.stats, "ratio_min"), stat(r.stats, "ratio_max"));
  const double clipped = stat(r.stats, "clip_fraction");
  EXPECT_GE(clipped, 0.0);
  EXPECT_LE(clipped, 1.0);
  // The value head starts at 0 and the returns are not all 0.
  EXPECT_GT(stat(r.stats, "value_loss"), 0.0);
  EXPECT_GT(stat(r.stats, "entropy"), 0.1);
  // loss = policy_loss + value_coef * value_loss (entropy_coef 0), as means over the same tokens.
  EXPECT_NEAR(r.loss, stat(r.stats, "policy_loss") + 0.1 * stat(r.stats, "value_loss"), 1e-5);
  // tokens counts the completion tokens of all 4 updates: each row is read once per epoch.
  EXPECT_EQ(static_cast<double>(r.tokens), 2.0 * 4.0 * length);
  const step_result second = t.step();
  EXPECT_GT(stat(second.stats, "kl"), 0.0) << "the policy moved away from the reference";
  EXPECT_GT(stat(second.stats, "kl_k3"), 0.0);

  // An entropy bonus is subtracted from the loss.
  nlohmann::json doc = ppo_doc("bonus", 1, base);
  doc["ppo"]["entropy_coef"] = 0.01;
  trainer b(parse_train_config(doc, dir_.path()));
  const step_result rb = b.step();
  EXPECT_NEAR(
      rb.loss,
      stat(rb.stats, "policy_loss") + 0.1 * stat(rb.stats, "value_loss") - 0.01 * stat(rb.stats, "entropy"),
      1e-5);
}

TEST_F(ppo_trainer_test, a_step_is_the_same_for_any_split_of_its_minibatches) {
  const fs::path base = pretrained("base");
  nlohmann::json whole = ppo_doc("whole", 2, base), split = ppo_doc("split", 2, base);
  split["optim"]["accumulation"] = 2;  // each minibatch of 2 rows as 2 micro-batches of 1
  trainer a(parse_train_config(whole, dir_.path())), b(parse_train_config(split, dir_.path()));
  for (int i = 0; i < 2; ++i) {
    const step_result ra = a.step(), rb = b.step();
    EXPECT_EQ(stat(ra.stats, "reward"), stat(rb.stats, "reward")) << "the same completions, step " << i;
    EXPECT_NEAR(ra.loss, rb.loss, 1e-5) << "step " << i;
    EXPECT_NEAR(stat(ra.stats, "value_loss"), stat(rb.stats, "value_loss"), 1e-5) << "step " << i;
  }
  EXPECT_LT(max_abs_diff(a.params(), b.params()), 2e-5);
}

TEST_F(ppo_trainer_test, resumes_exactly_with_its_adaptive_kl_coefficient) {
  const fs::path base = pretrained("base");
  auto doc = [&](const std::string& out) {
    nlohmann::json d = ppo_doc(out, 4, base);
    d["ppo"]["kl_target"] = 0.01;  // the KL per completion soon exceeds it, so beta grows
    d["ppo"]["kl_horizon"] = 10;
    return d;
  };
  trainer s(parse_train_config(doc("straight"), dir_.path()));
  std::vector<double> betas;
  while (s.steps_done() < 4) betas.push_back(stat(s.step().stats, "kl_beta"));
  EXPECT_EQ(betas[0], 0.05);
  EXPECT_NE(betas[3], betas[2]) << "the adaptive controller moved beta";

  const train_config c = parse_train_config(doc("resumed"), dir_.path());
  fs::path saved;
  {
    trainer first(c);
    first.step(), first.step();
    saved = first.save_checkpoint();
  }
  const nlohmann::json manifest = nlohmann::json::parse(train::load_checkpoint(saved).data_cursor);
  EXPECT_TRUE(manifest["task"]["kl_controller"]["adaptive"].get<bool>());
  EXPECT_TRUE(manifest["task"]["reference"].contains("hash"));
  trainer second(c);
  ASSERT_TRUE(second.resumed_from());
  EXPECT_EQ(stat(second.step().stats, "kl_beta"), betas[2]);
  EXPECT_EQ(stat(second.step().stats, "kl_beta"), betas[3]);
  EXPECT_EQ(max_abs_diff(s.params(), second.params()), 0.0);
}

TEST_F(ppo_trainer_test, a_checkpoint_is_not_resumed_against_another_reference) {
  const fs::path base = pretrained("base"), other = dir_.path() / "other";
  {
    // The same architecture from another seed.
    nlohmann::json doc = config_doc("other_run", 3);
    doc["model"]["seed"] = 4;
    trainer t(parse_train_config(doc, dir_.path()));
    t.save_model(other);
  }
  {
    trainer first(parse_train_config(ppo_doc("run", 4, base), dir_.path()));
    first.step();
    first.save_checkpoint();
  }
  nlohmann::json doc = ppo_doc("run", 4, base);
  doc["ppo"]["reference"] = other.string();
  try {
    trainer second(parse_train_config(doc, dir_.path()));
    FAIL() << "expected the reference to be refused";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not the one the checkpoint was trained against"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(ppo_trainer_test, rollouts_without_a_reward_take_no_part) {
  const fs::path base = pretrained("base");
  nlohmann::json doc = ppo_doc("nan", 2, base);
  // A user command that answers "nan" for every sample.
  doc["ppo"]["reward"] = {{"kind", "command"}, {"run", {"awk", "{ print \"nan\" }"}}};
  doc["optim"]["weight_decay"] = 0.0;
  trainer t(parse_train_config(doc, dir_.path()));
  const std::vector<array> before = t.params();
  const step_result r = t.step();
  EXPECT_EQ(stat(r.stats, "excluded"), 4.0);
  EXPECT_EQ(stat(r.stats, "completions"), 4.0);
  EXPECT_EQ(r.loss, 0.0);
  EXPECT_NE(r.skipped.find("no completion tokens"), std::string::npos) << r.skipped;
  EXPECT_EQ(max_abs_diff(before, t.params()), 0.0);
}

TEST_F(ppo_trainer_test, the_model_folder_holds_the_policy_without_its_value_head) {
  const fs::path base = pretrained("base");
  trainer t(parse_train_config(ppo_doc("saved", 1, base), dir_.path()));
  t.step();
  EXPECT_NE(std::find(t.param_names().begin(), t.param_names().end(), "value_head.weight"),
            t.param_names().end());
  t.save_model(dir_.path() / "saved" / "model");
  const auto weights = load_model_weights(dir_.path() / "saved" / "model").tensors;
  EXPECT_FALSE(weights.contains("value_head.weight"));
  EXPECT_FALSE(weights.contains("value_head.bias"));
  EXPECT_TRUE(weights.contains("model.norm.weight"));
}

TEST_F(ppo_trainer_test, ppo_settings_are_checked) {
  const fs::path base = pretrained("base");
  auto error_of = [&](const nlohmann::json& doc) {
    try {
      parse_train_config(doc, dir_.path());
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  nlohmann::json doc = ppo_doc("x", 1, base);
  doc["ppo"]["epochs"] = 0;
  EXPECT_NE(error_of(doc).find("ppo.epochs must be >= 1"), std::string::npos);
  doc = ppo_doc("x", 1, base);
  doc["ppo"]["minibatches"] = 3;
  EXPECT_NE(error_of(doc).find("must divide into ppo.minibatches"), std::string::npos);
  doc = ppo_doc("x", 1, base);
  doc["ppo"]["kl_beta"] = 0;
  doc["ppo"]["kl_target"] = 1;
  EXPECT_NE(error_of(doc).find("ppo.kl_target adapts kl_beta"), std::string::npos);
  doc = ppo_doc("x", 1, base);
  doc["ppo"].erase("reward");
  EXPECT_NE(error_of(doc).find("ppo.reward must say"), std::string::npos);
  doc = ppo_doc("x", 1, base);
  doc["ppo"]["lamda"] = 0.9;
  EXPECT_NE(error_of(doc).find("ppo.lamda is not a setting"), std::string::npos);
  doc = ppo_doc("x", 1, base);
  doc["ppo"]["clip"] = 1.5;
  EXPECT_NE(error_of(doc).find("ppo.clip must be in (0, 1)"), std::string::npos);
}

}  // namespace
}  // namespace mlxd::trainer
