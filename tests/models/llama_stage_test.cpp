// Pipeline stages of the Llama-family decoder: chaining the stages of any partition gives bit-for-bit the
// whole model's logits, and a stage loaded from a file holds only its own tensors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {
namespace {

llama_config five_layer_config(bool tied) {
  llama_config c;
  c.architecture = "Qwen2ForCausalLM";
  c.vocab_size = 50;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.n_layers = 5;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 6;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  c.attention_bias = true;
  return c;
}

bool bit_equal(const array& a, const array& b) {
  if (a.shape() != b.shape() || a.type() != b.type()) return false;
  const array ca = contiguous(a), cb = contiguous(b);
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

// Stages for the boundaries {0, b1, ..., n_layers}: the first embeds, the last has the head.
std::vector<llama_stage> partition(const std::vector<int>& bounds) {
  std::vector<llama_stage> out;
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    out.push_back({bounds[i], bounds[i + 1], i == 0, i + 2 == bounds.size()});
  return out;
}

// Prefill of `prompt` then one decode step per id of `next`, through the chained stages; logits of each call.
std::vector<array> run_pipeline(const std::vector<llama_model>& stages, const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& next) {
  std::vector<kv_cache> caches;
  for (const llama_model& s : stages) caches.push_back(s.make_cache(32));
  auto step = [&](const std::vector<int32_t>& tokens) {
    array x = stages.front().embed(tokens);
    for (size_t i = 0; i < stages.size(); ++i) x = stages[i].forward_layers(x, caches[i]);
    return stages.back().head(x);
  };
  std::vector<array> out{step(prompt)};
  for (int32_t t : next) out.push_back(step({t}));
  return out;
}

std::vector<array> run_whole(const llama_model& m, const std::vector<int32_t>& prompt,
                             const std::vector<int32_t>& next) {
  kv_cache cache = m.make_cache(32);
  std::vector<array> out{m.forward(prompt, cache)};
  for (int32_t t : next) out.push_back(m.forward({t}, cache));
  return out;
}

class StagePartitions : public ::testing::TestWithParam<std::vector<int>> {};

TEST_P(StagePartitions, ChainedStagesEqualTheWholeModelBitForBit) {
  for (bool tied : {false, true}) {
    const llama_config c = five_layer_config(tied);
    const auto weights = init_llama_weights(c, 42);
    const llama_model whole(c, weights);
    std::vector<llama_model> stages;
    for (const llama_stage& s : partition(GetParam())) stages.emplace_back(c, weights, s);
    const std::vector<int32_t> prompt = {3, 17, 5, 44, 9, 0, 21}, next = {8, 49, 2};
    const auto want = run_whole(whole, prompt, next), got = run_pipeline(stages, prompt, next);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(bit_equal(got[i], want[i])) << "call " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Bounds, StagePartitions,
                         ::testing::Values(std::vector<int>{0, 5}, std::vector<int>{0, 2, 5},
                                           std::vector<int>{0, 4, 5}, std::vector<int>{0, 1, 2, 5},
                                           std::vector<int>{0, 1, 2, 3, 5}, std::vector<int>{0, 0, 3, 5},
                                           std::vector<int>{0, 5, 5}));

// A model folder of `weights` in a fresh temporary directory (the caller removes it).
std::filesystem::path write_folder(const llama_config& c, const std::map<std::string, array>& weights,
                                   const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  save_safetensors(dir / "model.safetensors", weights);
  std::ofstream(dir / "config.json") << to_json(c);
  return dir;
}

TEST(LlamaStage, StageLoadedFromAFolderHoldsOnlyItsTensorsAndMatches) {
  const llama_config c = five_layer_config(false);
  const auto weights = init_llama_weights(c, 7);
  const auto dir = write_folder(c, weights, "mlxd_stage");
  EXPECT_EQ(load_llama_config_any(dir).n_layers, 5);
  std::vector<llama_model> stages;
  for (const llama_stage& s : partition({0, 2, 4, 5})) stages.push_back(load_llama_stage(dir, s));
  std::filesystem::remove_all(dir);  // nothing stays mapped: every tensor was copied
  const auto names = stage_tensors(c, {2, 4, false, false});
  EXPECT_EQ(names.size(), 2u * 12u);  // 9 tensors a layer and 3 biases
  for (const auto& [tensor_name, shape] : names) EXPECT_EQ(tensor_name.rfind("model.layers.", 0), 0u);
  const auto want = run_whole(llama_model(c, weights), {1, 2, 3}, {4, 5});
  const auto got = run_pipeline(stages, {1, 2, 3}, {4, 5});
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(bit_equal(got[i], want[i])) << "call " << i;
}

// A range that grows (a partial re-plan) shares the tensors of the stage it held and reads only the new
// layers; weights() gives back exactly the tensors the stage was built from.
TEST(LlamaStage, AGrownRangeSharesTheHeldLayersAndMatches) {
  const llama_config c = five_layer_config(true);
  const auto weights = init_llama_weights(c, 11);
  const auto dir = write_folder(c, weights, "mlxd_grow");
  const llama_model held = load_llama_stage(dir, {0, 2, true, false});
  const std::map<std::string, array> w = held.weights();
  EXPECT_EQ(w.size(), 1u + 2u * 12u);  // the embedding, and 9 tensors and 3 biases a layer
  for (const auto& [name, a] : w) EXPECT_TRUE(bit_equal(a, weights.at(name))) << name;
  const llama_model grown = load_llama_stage(dir, {0, 4, true, false}, &held);
  const llama_model rest = load_llama_stage(dir, {4, 5, false, true}, &held);  // shares the tied head
  std::filesystem::remove_all(dir);
  const std::map<std::string, array> g = grown.weights();
  EXPECT_EQ(g.size(), 1u + 4u * 12u);
  for (const auto& [name, a] : w)  // the same memory, not a copy
    EXPECT_EQ(g.at(name).raw_data(), a.raw_data()) << name;
  EXPECT_NE(g.at("model.layers.2.mlp.up_proj.weight").raw_data(),
            weights.at("model.layers.2.mlp.up_proj.weight").raw_data());
  std::vector<llama_model> stages;
  stages.push_back(grown);
  stages.push_back(rest);
  const auto want = run_whole(llama_model(c, weights), {1, 2, 3}, {4, 5});
  const auto got = run_pipeline(stages, {1, 2, 3}, {4, 5});
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(bit_equal(got[i], want[i])) << "call " << i;
}

TEST(LlamaStage, GgufStageMatchesTheWholeGgufModel) {
  const std::string path = std::string(MLXD_GOLDEN_DIR) + "/qwen2_bias_tied/model.gguf";
  const llama_model whole = load_llama(path);
  const std::vector<llama_model> stages = {load_llama_stage(path, {0, 1, true, false}),
                                           load_llama_stage(path, {1, 2, false, true})};
  const auto want = run_whole(whole, {3, 1, 4}, {1, 5}), got = run_pipeline(stages, {3, 1, 4}, {1, 5});
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(bit_equal(got[i], want[i])) << "call " << i;
}

TEST(LlamaStage, MisuseIsRefusedWithAClearMessage) {
  const llama_config c = five_layer_config(false);
  const auto weights = init_llama_weights(c, 1);
  const llama_model middle(c, weights, {1, 3, false, false});
  kv_cache cache = middle.make_cache(8);
  EXPECT_EQ(cache.n_layers(), 2);
  EXPECT_THROW(middle.embed({1}), std::invalid_argument);
  EXPECT_THROW(middle.head(zeros({1, 24})), std::invalid_argument);
  EXPECT_THROW(middle.forward({1}, cache), std::invalid_argument);
  EXPECT_THROW(middle.forward_layers(zeros({1, 23}), cache), std::invalid_argument);
  kv_cache wrong = llama_model(c, weights).make_cache(8);
  EXPECT_THROW(middle.forward_layers(zeros({1, 24}), wrong), std::invalid_argument);
  EXPECT_THROW(llama_model(c, weights, {3, 6, false, false}), std::invalid_argument);
  EXPECT_THROW(llama_model(c, weights, {4, 2, false, false}), std::invalid_argument);
  std::map<std::string, array> partial = {{"model.norm.weight", weights.at("model.norm.weight")}};
  try {
    llama_model(c, partial, {0, 0, false, true});
    FAIL() << "a head without lm_head.weight was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos);
  }
}

}  // namespace
}  // namespace mlxd::models
