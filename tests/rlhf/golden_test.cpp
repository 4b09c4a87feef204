// Replays golden values and gradients computed by an independent implementation (PyTorch in float64 with
// TRL's formulas, tests/rlhf/golden/make_golden.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/dpo.h"
#include "mlxd/rlhf/grpo.h"
#include "mlxd/rlhf/kl.h"
#include "mlxd/rlhf/logprobs.h"
#include "mlxd/rlhf/masked.h"
#include "mlxd/rlhf/ppo.h"
#include "mlxd/rlhf/reward_loss.h"
#include "test_util.h"

namespace mlxd::rlhf {
namespace {

using nlohmann::json;

array to_array(const json& j, dtype t = dtype::f32) {
  return array::from(j.at("data").get<std::vector<double>>(), j.at("shape").get<shape_t>(), t);
}
std::vector<double> data(const json& j) {
  return j.at("data").get<std::vector<double>>();
}

json load() {
  std::ifstream in(std::string(MLXD_TEST_DATA_DIR) + "/rlhf/golden/rlhf_golden.json");
  EXPECT_TRUE(in.good()) << "missing tests/rlhf/golden/rlhf_golden.json";
  return json::parse(in);
}

// value_and_grad of f over the named inputs; checks the value's outputs and every golden gradient.
void check_grads(const json& c, const std::vector<std::string>& names,
                 const std::function<array(const std::vector<array>&)>& f) {
  std::vector<array> args;
  for (const std::string& n : names) args.push_back(to_array(c["inputs"][n]));
  const auto [value, grads] = value_and_grad(f, args);
  for (size_t i = 0; i < names.size(); ++i) {
    if (!c["grads"].contains(names[i])) continue;
    SCOPED_TRACE("gradient of " + names[i]);
    EXPECT_TRUE(test::near(grads[i], data(c["grads"][names[i]]), 1e-4, 1e-6));
  }
}

TEST(RlhfGolden, EveryCaseMatchesPyTorch) {
  const json all = load();
  ASSERT_GE(all["cases"].size(), 16u);
  for (const json& c : all["cases"]) {
    const std::string kind = c["kind"];
    SCOPED_TRACE(c["name"].get<std::string>());
    const json& in = c["inputs"];
    const json& out = c["outputs"];
    const json& p = c["params"];
    if (kind == "logprobs") {
      const array labels = to_array(in["labels"], dtype::i32), mask = to_array(in["mask"]),
                  w = to_array(in["w"]);
      const token_logprobs r = sequence_logprobs(to_array(in["logits"]), labels, mask);
      EXPECT_TRUE(test::near(r.tokens, data(out["tokens"]), 1e-5, 1e-5));
      EXPECT_TRUE(test::near(r.sums, data(out["sums"]), 1e-5, 1e-5));
      check_grads(c, {"logits"}, [&](const std::vector<array>& v) {
        return sum(multiply(sequence_logprobs(v[0], labels, mask).sums, w));
      });
    } else if (kind == "reward") {
      const reward_loss_options o{.center_coefficient = p["center_coefficient"]};
      const reward_loss_result r =
          reward_loss(to_array(in["chosen"]), to_array(in["rejected"]), to_array(in["margin"]), o);
      EXPECT_TRUE(test::near(r.losses, data(out["losses"]), 1e-5, 1e-6));
      check_grads(c, {"chosen", "rejected", "margin"},
                  [&](const std::vector<array>& v) { return reward_loss(v[0], v[1], v[2], o).loss; });
    } else if (kind == "dpo") {
      const dpo_options o{.type = parse_dpo_loss_type(p["type"].get<std::string>()),
                          .beta = p["beta"],
                          .label_smoothing = p["label_smoothing"]};
      const std::vector<std::string> names = {"policy_chosen", "policy_rejected", "reference_chosen",
                                              "reference_rejected"};
      const dpo_result r = dpo_loss(to_array(in[names[0]]), to_array(in[names[1]]), to_array(in[names[2]]),
                                    to_array(in[names[3]]), o);
      EXPECT_TRUE(test::near(r.losses, data(out["losses"]), 1e-5, 1e-6));
      EXPECT_TRUE(test::near(r.chosen_rewards, data(out["chosen_rewards"]), 1e-5, 1e-6));
      EXPECT_TRUE(test::near(r.rejected_rewards, data(out["rejected_rewards"]), 1e-5, 1e-6));
      check_grads(c, names,
                  [&](const std::vector<array>& v) { return dpo_loss(v[0], v[1], v[2], v[3], o).loss; });
    } else if (kind == "entropy") {
      const array logits = to_array(in["logits"]), w = to_array(in["w"]);
      const array mask = ones({logits.shape(0), logits.shape(1)});
      EXPECT_TRUE(test::near(entropy_from_logits(logits, mask), data(out["entropy"]), 1e-5, 1e-6));
      check_grads(c, {"logits"}, [&](const std::vector<array>& v) {
        return sum(multiply(entropy_from_logits(v[0], mask), w));
      });
    } else if (kind == "k3") {
      const array w = to_array(in["w"]);
      EXPECT_TRUE(
          test::near(kl_k3(to_array(in["logp"]), to_array(in["ref_logp"])), data(out["k3"]), 1e-5, 1e-6));
      check_grads(c, {"logp", "ref_logp"},
                  [&](const std::vector<array>& v) { return sum(multiply(kl_k3(v[0], v[1]), w)); });
    } else if (kind == "advantages") {
      const array r = to_array(in["rewards"]);
      const int64_t g = p["group_size"];
      EXPECT_TRUE(test::near(group_advantages(r, g).advantages, data(out["grpo"]), 1e-5, 1e-6));
      EXPECT_TRUE(test::near(rloo_advantages(r, g).advantages, data(out["rloo"]), 1e-5, 1e-6));
    } else if (kind == "grpo_loss") {
      const grpo_options o{.clip_low = p["clip_low"], .clip_high = p["clip_high"], .beta = p["beta"]};
      const double global = p["global_tokens"];
      const array old = to_array(in["old_logp"]), ref = to_array(in["ref_logp"]);
      const array adv = to_array(in["advantages"]), mask = to_array(in["mask"]);
      const grpo_result r = grpo_loss(to_array(in["logp"]), old, ref, adv, mask, global, o);
      EXPECT_TRUE(test::near(r.loss, data(out["loss"]), 1e-5, 1e-7));
      EXPECT_TRUE(test::near(r.token_losses, data(out["token_losses"]), 1e-5, 1e-6));
      check_grads(c, {"logp"}, [&](const std::vector<array>& v) {
        return grpo_loss(v[0], old, ref, adv, mask, global, o).loss;
      });
    } else if (kind == "gae") {
      const gae_result r =
          gae(to_array(in["rewards"]), to_array(in["values"]), to_array(in["mask"]), p["gamma"], p["lambda"]);
      EXPECT_TRUE(test::near(r.advantages, data(out["advantages"]), 1e-5, 1e-6));
      EXPECT_TRUE(test::near(r.returns, data(out["returns"]), 1e-5, 1e-6));
    } else if (kind == "ppo_policy") {
      const double clip = p["clip"];
      const array old = to_array(in["old_logp"]), adv = to_array(in["advantages"]);
      const array mask = ones(old.shape());
      EXPECT_TRUE(test::near(clipped_policy_loss(to_array(in["logp"]), old, adv, mask, clip, clip).losses,
                             data(out["losses"]), 1e-5, 1e-6));
      check_grads(c, {"logp"}, [&](const std::vector<array>& v) {
        return masked_mean(clipped_policy_loss(v[0], old, adv, mask, clip, clip).losses, mask);
      });
    } else if (kind == "ppo_value") {
      const double clip = p["clip"];
      const array old = to_array(in["old_values"]), ret = to_array(in["returns"]);
      const array mask = ones(old.shape());
      EXPECT_TRUE(test::near(clipped_value_loss(to_array(in["values"]), old, ret, mask, clip).losses,
                             data(out["losses"]), 1e-5, 1e-6));
      check_grads(c, {"values"}, [&](const std::vector<array>& v) {
        return masked_mean(clipped_value_loss(v[0], old, ret, mask, clip).losses, mask);
      });
    } else if (kind == "whiten") {
      EXPECT_TRUE(
          test::near(whiten(to_array(in["x"]), to_array(in["mask"])), data(out["whitened"]), 1e-5, 1e-6));
    } else {
      ADD_FAILURE() << "unknown golden kind " << kind;
    }
  }
}

}  // namespace
}  // namespace mlxd::rlhf
