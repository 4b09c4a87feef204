// The LoRA forward and adapter gradients against PyTorch (tests/models/golden/make_lora_golden.py), which
// applies LoRA by merging W + (alpha/r) B A: logits, loss, and the gradient of every lora_A and lora_B, with
// the adapters read from the PEFT-layout folder that script wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/lora.h"

namespace mlxd::models {
namespace {

// max |got - want| <= tol * max(1, max |want|).
::testing::AssertionResult close(const array& got, const array& want, double tol) {
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << got.to_string() << " vs " << want.to_string();
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 1, worst = 0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - w[i]));
  if (worst <= tol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max diff " << worst << " at scale " << scale;
}

class LoraGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(LoraGolden, LogitsLossAndAdapterGradients) {
  const std::string golden = MLXD_GOLDEN_DIR;
  const std::string model_dir = golden + "/llama_train/" + GetParam(),
                    lora_dir = golden + "/lora/" + GetParam();
  const llama_config config = load_llama_config(model_dir);
  const auto base = load_safetensors(model_dir + "/model.safetensors").tensors;
  const lora_adapters adapters = load_lora_adapters(lora_dir, &config);
  EXPECT_EQ(adapters.config.rank, 4);
  EXPECT_EQ(adapters.config.targets, lora_modules());
  const auto expected = load_safetensors(lora_dir + "/expected.safetensors").tensors;
  std::ifstream in(model_dir + "/expected.json");
  const auto batches = nlohmann::json::parse(in);
  const shape_t shape{batches.at("rows").get<int64_t>(), batches.at("seq").get<int64_t>()};
  const auto& b0 = batches.at("batches").at(0);
  auto ints = [&](const char* key) { return array::from(b0.at(key).get<std::vector<int32_t>>(), shape); };
  const train_batch batch = make_train_batch(ints("tokens"), ints("segments"));
  const array labels = ints("labels");
  std::ifstream want_in(lora_dir + "/expected.json");
  const double want_loss = nlohmann::json::parse(want_in).at("loss_sum").get<double>();

  const lora_forward f{adapters.config, {0}, true};
  const auto names = lora_param_names(config, adapters.config);
  std::vector<array> values;
  for (const auto& n : names) values.push_back(adapters.params.at(n));
  array logits;
  int64_t n_tokens = 0;
  const auto [loss, grads] = value_and_grad(
      [&](const std::vector<array>& p) {
        auto w = base;
        for (size_t i = 0; i < names.size(); ++i) w.emplace(names[i], p[i]);
        logits = training_logits(config, w, batch, &f);
        const token_loss l = masked_cross_entropy(logits, labels);
        n_tokens = l.n_tokens;
        return multiply(l.sum, array(1.0f / static_cast<float>(l.n_tokens)));
      },
      values);
  EXPECT_TRUE(close(logits, expected.at("logits"), 1e-5));
  EXPECT_NEAR(loss.item<float>() * static_cast<double>(n_tokens), want_loss, 1e-5 * want_loss);
  for (size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_TRUE(close(grads[i], expected.at("grad." + names[i]), 1e-4));
  }
  // The fused model gives the same logits.
  const array fused = training_logits(config, fuse_lora(config, base, adapters), batch);
  EXPECT_TRUE(close(fused, expected.at("logits"), 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Cases, LoraGolden, ::testing::Values("llama", "qwen3_bias_tied"));

}  // namespace
}  // namespace mlxd::models
