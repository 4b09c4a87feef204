// MLX-community folders (MLX's affine-quantized weights) against tests/models/golden/make_mlx_golden.py:
// the weights mlxd dequantizes at load, bit for bit, and the logits of its NumPy float64 forward.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "mlxd/io/file_text.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/llama_folder.h"

namespace mlxd::models {
namespace {

namespace fs = std::filesystem;

const fs::path folder = fs::path(MLXD_GOLDEN_DIR) / "mlx_qwen2_mixed";

std::map<std::string, array> dequantized_reference() {
  return load_safetensors(folder / "dequantized.safetensors").tensors;
}

bool same_bits(const array& a, const array& b) {
  return a.type() == b.type() && a.shape() == b.shape() &&
         std::memcmp(contiguous(a).raw_data(), contiguous(b).raw_data(), a.nbytes()) == 0;
}

array expected_logits(std::vector<int32_t>* tokens) {
  std::ifstream in(folder / "expected.json");
  const auto j = nlohmann::json::parse(in);
  *tokens = j.at("tokens").get<std::vector<int32_t>>();
  return array::from(j.at("logits").get<std::vector<double>>(), j.at("shape").get<shape_t>(), dtype::f32);
}

double max_relative_error(const array& got, const array& want) {
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i)
    worst = std::max(worst, std::fabs(g[i] - w[i]) / (1 + std::fabs(w[i])));
  return worst;
}

TEST(MlxFolder, EveryWeightIsTheValueItsBitsScaleAndBiasStandFor) {
  const llama_config config = load_llama_config(folder);
  ASSERT_TRUE(config.mlx_quantized);
  const auto got = load_llama_folder_weights(folder, config);
  const auto want = dequantized_reference();
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, w] : want) {
    ASSERT_TRUE(got.contains(name)) << name;
    EXPECT_TRUE(same_bits(got.at(name), w)) << name << ": " << got.at(name).to_string();
  }
}

TEST(MlxFolder, LogitsMatchTheReferenceMappedOrNot) {
  std::vector<int32_t> tokens;
  const array want = expected_logits(&tokens);
  for (bool mmap : {false, true}) {
    const llama_model model = load_llama(folder, {.mmap = mmap});
    kv_cache cache = model.make_cache(16);
    const array got = model.forward(tokens, cache);
    ASSERT_EQ(got.shape(), want.shape());
    EXPECT_LT(max_relative_error(got, want), 1e-4) << "mmap " << mmap;
  }
}

TEST(MlxFolder, AStageDequantizesOnlyItsOwnTensors) {
  const llama_config config = load_llama_config(folder);
  const llama_model stage = load_llama_stage(folder, {1, 2, false, true});
  const auto want = dequantized_reference();
  const auto held = stage.weights();
  std::set<std::string> names;
  for (const auto& [name, w] : held) {
    names.insert(name);
    EXPECT_TRUE(same_bits(w, want.at(name))) << name;
  }
  std::set<std::string> expected;
  for (const auto& entry : stage_tensors(config, {1, 2, false, true})) expected.insert(entry.first);
  EXPECT_EQ(names, expected);
}

// A copy of the folder with config.json or the safetensors header edited, for the refusals.
class MlxFolderFault : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mlxd_mlx_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (const char* f : {"config.json", "model.safetensors"}) {
      fs::copy_file(folder / f, dir_ / f, fs::copy_options::overwrite_existing);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Sets config.json's `quantization` (and MLX's copy of it) to `q`, or removes both when q is null.
  void set_quantization(const nlohmann::json& q) {
    std::ifstream in(dir_ / "config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    for (const char* key : {"quantization", "quantization_config"}) {
      if (q.is_null()) {
        config.erase(key);
      } else {
        config[key] = q;
      }
    }
    std::ofstream(dir_ / "config.json") << config.dump(1);
  }
  nlohmann::json quantization() const {
    std::ifstream in(folder / "config.json");
    return nlohmann::json::parse(in).at("quantization");
  }

  // Replaces `from` by `to` in a file; same lengths keep a safetensors header valid.
  void edit(const char* file, const std::string& from, const std::string& to) {
    std::string text = *io::read_file(dir_ / file);
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::ofstream(dir_ / file, std::ios::binary) << text;
  }

  void expect_load_error(const std::string& fragment) {
    try {
      load_llama(dir_);
      ADD_FAILURE() << "no error";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

TEST_F(MlxFolderFault, BitsThatDoNotMatchTheStoredShapesAreNamed) {
  // down_proj holds 3-bit values in groups of 128; read as 4-bit its rows have 96 values and no whole group.
  nlohmann::json q = quantization();
  q["model.layers.0.mlp.down_proj"]["bits"] = 4;
  set_quantization(q);
  expect_load_error(
      "[mlx] model.layers.0.mlp.down_proj: rows of 96 4-bit values are not whole groups of 128");
}

TEST_F(MlxFolderFault, GroupsThatDoNotMatchTheStoredScalesAreNamed) {
  // gate_proj holds 8-bit values in groups of 64: 64 values a row, one scale each.
  nlohmann::json q = quantization();
  q["model.layers.1.mlp.gate_proj"]["group_size"] = 32;
  set_quantization(q);
  expect_load_error("model.layers.1.mlp.gate_proj: scales ");
  expect_load_error(" are not [128,2]: one per 32 of the 64 8-bit values of each row");
}

TEST_F(MlxFolderFault, AModuleTheConfigLeavesUnquantizedMustNotHaveScales) {
  nlohmann::json q = quantization();
  q["model.layers.1.mlp.up_proj"] = false;
  set_quantization(q);
  expect_load_error("model.layers.1.mlp.up_proj: has scales, but config.json's quantization leaves it");
}

TEST_F(MlxFolderFault, ScalesWithoutBiasesAreRefused) {
  edit("model.safetensors", "model.layers.1.mlp.up_proj.biases", "model.layers.1.mlp.up_proj.biasez");
  expect_load_error("has model.layers.1.mlp.up_proj.scales but no model.layers.1.mlp.up_proj.biases");
}

TEST_F(MlxFolderFault, PackedWordsWithoutTheConfigAreAnUnsupportedDtype) {
  set_quantization(nullptr);
  expect_load_error("unsupported dtype U32");
}

}  // namespace
}  // namespace mlxd::models
