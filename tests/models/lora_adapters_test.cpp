// PEFT adapter folders: bit-exact round trip, PEFT's key prefix and config fields, and clear errors for
// malformed, unsupported or mismatched adapters.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "lora_test_util.h"
#include "mlxd/io/safetensors.h"

namespace mlxd::models {
namespace {

namespace fs = std::filesystem;
using namespace lora_test;

class LoraAdapters : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mlxd_lora_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    config_ = all_targets(3, 7.0, 0.05);
    config_.targets = {"k_proj", "o_proj", "up_proj"};
    params_ = trained_adapters(model_, config_, 4);
    save_lora_adapters(dir_, config_, params_, "tiny-base");
  }
  void TearDown() override { fs::remove_all(dir_); }

  nlohmann::json read_config() const {
    std::ifstream in(dir_ / "adapter_config.json");
    return nlohmann::json::parse(in);
  }
  void write_config(const nlohmann::json& j) const {
    std::ofstream(dir_ / "adapter_config.json") << j.dump();
  }
  // load_lora_adapters must throw std::invalid_argument whose message holds `needle`.
  void expect_error(const std::string& needle, bool with_model = true) const {
    try {
      load_lora_adapters(dir_, with_model ? &model_ : nullptr);
      ADD_FAILURE() << "no error; wanted one naming " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
  llama_config model_ = tiny_config(true);
  lora_config config_;
  std::map<std::string, array> params_;
};

TEST_F(LoraAdapters, RoundTripIsBitExactInPeftLayout) {
  const lora_adapters back = load_lora_adapters(dir_, &model_);
  EXPECT_EQ(back.config.rank, 3);
  EXPECT_EQ(back.config.alpha, 7.0);
  EXPECT_EQ(back.config.dropout, 0.05);
  EXPECT_EQ(back.config.targets, config_.targets);
  EXPECT_EQ(back.base_model, "tiny-base");
  ASSERT_EQ(back.params.size(), params_.size());
  for (const auto& [name, a] : params_) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(array_equal(back.params.at(name), a));
  }
  // PEFT's names and fields on disk.
  const auto raw = load_safetensors(dir_ / "adapter_model.safetensors").tensors;
  EXPECT_TRUE(raw.contains("base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"));
  const auto j = read_config();
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["r"], 3);
  EXPECT_EQ(j["lora_alpha"], 7);
  EXPECT_TRUE(j["lora_alpha"].is_number_integer());
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["target_modules"], nlohmann::json({"k_proj", "o_proj", "up_proj"}));
  // Without a model the pairs are still checked; "all-linear" targets every module.
  EXPECT_EQ(load_lora_adapters(dir_).params.size(), params_.size());
  auto all = read_config();
  all["target_modules"] = "all-linear";
  write_config(all);
  EXPECT_EQ(load_lora_adapters(dir_).config.targets, lora_modules());
  expect_error(
      "missing adapter tensor model.layers.0.self_attn.q_proj.lora_A.weight");  // the model needs all
}

TEST_F(LoraAdapters, MalformedConfigIsNamed) {
  std::ofstream(dir_ / "adapter_config.json") << "{\"r\": 3,";
  expect_error("adapter_config.json: not valid JSON");
  const nlohmann::json good = [&] {
    save_lora_adapters(dir_, config_, params_, "");
    return read_config();
  }();
  EXPECT_TRUE(good["base_model_name_or_path"].is_null());
  struct edit {
    const char* key;
    nlohmann::json value;
    const char* needle;
  };
  for (const edit& e : {edit{"peft_type", "IA3", "only LORA"}, edit{"r", "8", "\"r\" must be an integer"},
                        edit{"r", 0, "rank must be >= 1"}, edit{"lora_alpha", nullptr, "\"lora_alpha\""},
                        edit{"lora_dropout", 1.5, "dropout must be in [0, 1)"},
                        edit{"target_modules", ".*proj", "regular expressions"},
                        edit{"target_modules", {"k_proj", "qkv"}, "unknown target module \"qkv\""},
                        edit{"bias", "all", "\"bias\""}, edit{"use_dora", true, "\"use_dora\""},
                        edit{"use_rslora", true, "\"use_rslora\""},
                        edit{"rank_pattern", {{"q_proj", 4}}, "\"rank_pattern\""}}) {
    SCOPED_TRACE(e.needle);
    nlohmann::json j = good;
    j[e.key] = e.value;
    write_config(j);
    expect_error(e.needle);
  }
  nlohmann::json j = good;
  j.erase("peft_type");
  write_config(j);
  expect_error("\"peft_type\" is missing");
  fs::remove(dir_ / "adapter_config.json");
  EXPECT_THROW(load_lora_adapters(dir_), io_error);
}

TEST_F(LoraAdapters, TensorsMustMatchTheConfigAndModel) {
  auto write = [&](std::map<std::string, array> p, std::map<std::string, array> extra = {}) {
    std::map<std::string, array> prefixed;
    for (auto& [k, v] : p) prefixed.emplace("base_model.model." + k, v);
    for (auto& [k, v] : extra) prefixed.emplace(k, v);
    save_safetensors(dir_ / "adapter_model.safetensors", prefixed);
  };
  auto p = params_;
  p.erase("model.layers.0.self_attn.o_proj.lora_A.weight");
  write(p);
  expect_error("no partner model.layers.0.self_attn.o_proj.lora_A.weight", false);
  p.erase("model.layers.0.self_attn.o_proj.lora_B.weight");
  write(p);
  expect_error("missing adapter tensor model.layers.0.self_attn.o_proj.lora_A.weight");
  p = params_;
  p["model.layers.1.self_attn.k_proj.lora_A.weight"] = zeros({3, 9});
  write(p);
  expect_error("model.layers.1.self_attn.k_proj.lora_A.weight is f32[3,9]");
  p = params_;
  p["model.layers.1.self_attn.k_proj.lora_B.weight"] = zeros({4, 2});  // rank 2 where r = 3
  write(p);
  expect_error("r = 3", false);
  write(params_, {{"base_model.model.model.layers.0.mlp.up_proj.bias", zeros({12})}});
  expect_error("unexpected tensor model.layers.0.mlp.up_proj.bias");
  p = params_;
  p["model.layers.0.mlp.gate_proj.lora_A.weight"] = zeros({3, 8});
  p["model.layers.0.mlp.gate_proj.lora_B.weight"] = zeros({12, 3});
  write(p);
  expect_error("adapts gate_proj, which target_modules does not list");
  p = params_;
  p["model.layers.5.mlp.up_proj.lora_A.weight"] = zeros({3, 8});
  p["model.layers.5.mlp.up_proj.lora_B.weight"] = zeros({12, 3});
  write(p);
  expect_error("model.layers.5.mlp.up_proj.lora_A.weight adapts no module of the model");
  EXPECT_EQ(load_lora_adapters(dir_).params.size(), params_.size() + 2);  // fine without a model
  fs::remove(dir_ / "adapter_model.safetensors");
  EXPECT_THROW(load_lora_adapters(dir_), io_error);
}

}  // namespace
}  // namespace mlxd::models
