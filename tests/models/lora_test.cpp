// The LoRA forward: gradients against finite differences, B = 0 giving the base model, fused weights giving
// the adapted logits (training forward and llama_model), and dropout driven by the key.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "grad_check.h"
#include "lora_test_util.h"
#include "mlxd/core/autograd.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_train.h"

namespace mlxd::models {
namespace {

using namespace lora_test;

std::vector<array> gather(const std::map<std::string, array>& w, const std::vector<std::string>& names) {
  std::vector<array> out;
  for (const auto& n : names) out.push_back(w.at(n));
  return out;
}

train_batch packed_batch() {
  return make_train_batch(i32({1, 4, 9, 2, 7, 3, 0, 10, 5, 5, 8, 6}, {2, 6}),
                          i32({0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0}, {2, 6}));
}

TEST(Lora, NamesAndShapesFollowPeft) {
  const llama_config c = tiny_config(false);
  lora_config l;  // q_proj, v_proj, rank 8
  const auto names = lora_param_names(c, l);
  ASSERT_EQ(names.size(), 8u);
  EXPECT_EQ(names[0], "model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(names[3], "model.layers.0.self_attn.v_proj.lora_B.weight");
  EXPECT_EQ(names[7], "model.layers.1.self_attn.v_proj.lora_B.weight");
  const auto p = init_lora_params(c, all_targets(3, 6.0), 1);
  EXPECT_EQ(p.at("model.layers.1.self_attn.k_proj.lora_A.weight").shape(), (shape_t{3, 8}));
  EXPECT_EQ(p.at("model.layers.1.self_attn.k_proj.lora_B.weight").shape(), (shape_t{4, 3}));
  EXPECT_EQ(p.at("model.layers.0.mlp.down_proj.lora_A.weight").shape(), (shape_t{3, 12}));
  EXPECT_EQ(p.at("model.layers.0.mlp.down_proj.lora_B.weight").shape(), (shape_t{8, 3}));
  // A is uniform within +-1/sqrt(in), seeded; B is zero.
  const auto a = p.at("model.layers.0.mlp.down_proj.lora_A.weight").to_vector<float>();
  for (float v : a) EXPECT_LE(std::fabs(v), 1.0f / std::sqrt(12.0f));
  EXPECT_TRUE(array_equal(
      p.at("model.layers.0.mlp.down_proj.lora_A.weight"),
      init_lora_params(c, all_targets(3, 6.0), 1).at("model.layers.0.mlp.down_proj.lora_A.weight")));
  EXPECT_FALSE(array_equal(
      p.at("model.layers.0.mlp.down_proj.lora_A.weight"),
      init_lora_params(c, all_targets(3, 6.0), 2).at("model.layers.0.mlp.down_proj.lora_A.weight")));
  EXPECT_EQ(max(abs(p.at("model.layers.0.mlp.down_proj.lora_B.weight"))).item<float>(), 0.0f);
}

TEST(Lora, BadConfigsAreNamed) {
  const llama_config c = tiny_config(false);
  lora_config l;
  l.targets = {"q_proj", "qkv_proj"};
  EXPECT_THROW(lora_param_names(c, l), std::invalid_argument);
  l.targets = {"q_proj", "q_proj"};
  EXPECT_THROW(lora_param_names(c, l), std::invalid_argument);
  l.targets = {};
  EXPECT_THROW(lora_param_names(c, l), std::invalid_argument);
  l = lora_config{};
  l.rank = 0;
  EXPECT_THROW(init_lora_params(c, l, 0), std::invalid_argument);
  l = lora_config{};
  l.dropout = 1.0;
  EXPECT_THROW(check_lora_config(l), std::invalid_argument);
  // Missing and mis-shaped adapters are named by the forward.
  auto w = merged(random_weights(c, 1), init_lora_params(c, lora_config{}, 2));
  const lora_forward f{lora_config{}, {0}, false};
  w.erase("model.layers.1.self_attn.v_proj.lora_B.weight");
  try {
    training_logits(c, w, packed_batch(), &f);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.self_attn.v_proj.lora_B.weight"), std::string::npos);
  }
  w["model.layers.1.self_attn.v_proj.lora_B.weight"] = zeros({4, 7});
  EXPECT_THROW(training_logits(c, w, packed_batch(), &f), std::invalid_argument);
}

TEST(Lora, ZeroBGivesTheBaseModelAndGradientOnlyToB) {
  for (bool qwen : {false, true}) {
    SCOPED_TRACE(qwen);
    const llama_config c = tiny_config(qwen);
    const auto base = random_weights(c, 3);
    const lora_config l = all_targets(4, 8.0);
    const auto adapters = init_lora_params(c, l, 9);
    const lora_forward f{l, {0}, true};
    const train_batch batch = packed_batch();
    EXPECT_TRUE(
        array_equal(training_logits(c, merged(base, adapters), batch, &f), training_logits(c, base, batch)));
    const auto names = lora_param_names(c, l);
    const array labels = i32({4, 9, -100, 7, 3, 1, 10, 5, 5, 8, 6, -100}, {2, 6});
    const auto grads = grad(
        [&](const std::vector<array>& p) {
          return masked_cross_entropy(training_logits(c, merged(base, bind_params(names, p)), batch, &f),
                                      labels)
              .sum;
        },
        gather(adapters, names));
    for (size_t i = 0; i < names.size(); ++i) {
      SCOPED_TRACE(names[i]);
      const float g = max(abs(grads[i])).item<float>();
      if (names[i].ends_with("lora_A.weight"))
        EXPECT_EQ(g, 0.0f);
      else
        EXPECT_GT(g, 1e-4f);
    }
  }
}

TEST(Lora, GradientsMatchFiniteDifferences) {
  for (bool qwen : {false, true}) {
    SCOPED_TRACE(qwen);
    const llama_config c = tiny_config(qwen);
    const auto base = random_weights(c, 5);
    // Between them the two runs cover every module.
    lora_config l = all_targets(2, 5.0);
    l.targets = qwen ? std::vector<std::string>{"k_proj", "o_proj", "gate_proj"}
                     : std::vector<std::string>{"q_proj", "v_proj", "up_proj", "down_proj"};
    const auto adapters = trained_adapters(c, l, 6);
    const lora_forward f{l, {0}, true};
    const train_batch batch = packed_batch();
    const array labels = i32({4, 9, -100, 7, 3, 1, 10, 5, 5, 8, 6, -100}, {2, 6});
    const auto names = lora_param_names(c, l);
    const loss_fn loss = [&](const std::vector<array>& p) {
      return masked_cross_entropy(training_logits(c, merged(base, bind_params(names, p)), batch, &f), labels)
          .sum;
    };
    EXPECT_TRUE(
        grad_check::check_grad(loss, gather(adapters, names), {.step = 1e-3, .rtol = 1e-2, .atol = 1e-2}));
  }
}

TEST(Lora, FusedWeightsGiveTheAdaptedLogits) {
  for (bool qwen : {false, true}) {
    SCOPED_TRACE(qwen);
    const llama_config c = tiny_config(qwen);
    const auto base = random_weights(c, 7);
    lora_config l = all_targets(3, 4.5);
    l.targets = {"q_proj", "v_proj", "o_proj", "down_proj"};
    lora_adapters ad{l, trained_adapters(c, l, 8), ""};
    const lora_forward f{l, {0}, true};
    const std::vector<int32_t> tokens{3, 1, 4, 1, 5, 9, 2, 6};
    const train_batch batch = make_train_batch(i32(tokens, {1, 8}));
    const array adapted = training_logits(c, merged(base, ad.params), batch, &f);
    EXPECT_GT(max_abs_diff(adapted, training_logits(c, base, batch)), 1e-2);  // the adapters matter
    const auto fused = fuse_lora(c, base, ad);
    EXPECT_TRUE(array_equal(fused.at("model.layers.0.mlp.up_proj.weight"),
                            base.at("model.layers.0.mlp.up_proj.weight")));
    EXPECT_LE(max_abs_diff(training_logits(c, fused, batch), adapted), 1e-5);
    const llama_model m(c, fused);
    kv_cache cache = m.make_cache(8);
    EXPECT_LE(max_abs_diff(m.forward(tokens, cache), reshape(adapted, {8, c.vocab_size})), 1e-5);
    // bf16 base weights stay bf16 when fused.
    std::map<std::string, array> half;
    for (const auto& [k, v] : base) half[k] = astype(v, dtype::bf16);
    EXPECT_EQ(fuse_lora(c, half, ad).at("model.layers.1.self_attn.q_proj.weight").type(), dtype::bf16);
  }
}

TEST(Lora, FusingChecksTheAdaptersAgainstTheModel) {
  const llama_config c = tiny_config(false);
  const lora_config l = all_targets(2, 2.0);
  lora_adapters ad{l, trained_adapters(c, l, 1), ""};
  auto base = random_weights(c, 1);
  ad.params.erase("model.layers.0.mlp.up_proj.lora_A.weight");
  EXPECT_THROW(fuse_lora(c, base, ad), std::invalid_argument);
  ad.params = trained_adapters(c, l, 1);
  base.erase("model.layers.1.mlp.gate_proj.weight");
  EXPECT_THROW(fuse_lora(c, base, ad), std::invalid_argument);
}

TEST(Lora, DropoutFollowsTheKeyAndOnlyWhileTraining) {
  const llama_config c = tiny_config(false);
  const auto base = random_weights(c, 2);
  const lora_config l = all_targets(2, 4.0, 0.3);
  const auto w = merged(base, trained_adapters(c, l, 3));
  const train_batch batch = packed_batch();
  auto logits = [&](random::key k, bool training) {
    const lora_forward f{l, k, training};
    return training_logits(c, w, batch, &f);
  };
  EXPECT_TRUE(array_equal(logits({1}, true), logits({1}, true)));
  EXPECT_FALSE(array_equal(logits({1}, true), logits({2}, true)));
  lora_config no_dropout = l;
  no_dropout.dropout = 0.0;
  const lora_forward plain{no_dropout, {1}, true};
  const array eval = logits({1}, false);
  EXPECT_TRUE(array_equal(eval, logits({2}, false)));
  EXPECT_TRUE(array_equal(eval, training_logits(c, w, batch, &plain)));
  EXPECT_GT(max_abs_diff(eval, logits({1}, true)), 1e-3);
}

}  // namespace
}  // namespace mlxd::models
