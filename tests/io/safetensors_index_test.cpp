// Sharded checkpoints: model.safetensors.index.json and load_model_weights.
#include <random>

#include <gtest/gtest.h>

#include "io_test_util.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {
namespace {

using test::bytes_of;
using test::random_array;

class io_safetensors_index : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(31);
    shard1_ = {{"embed", random_array({8, 4}, dtype::bf16, rng)},
               {"norm", random_array({4}, dtype::f32, rng)}};
    shard2_ = {{"head", random_array({4, 8}, dtype::f16, rng)}, {"step", random_array({}, dtype::i64, rng)}};
    save_safetensors(dir_ / "model-00001-of-00002.safetensors", shard1_, {{"format", "pt"}, {"shard", "1"}});
    save_safetensors(dir_ / "model-00002-of-00002.safetensors", shard2_, {{"format", "mlx"}, {"extra", "2"}});
  }
  void write_index(const std::string& weight_map) {
    test::write_bytes(dir_ / "model.safetensors.index.json",
                      R"({"metadata":{"total_size":123},"weight_map":)" + weight_map + "}");
  }
  static constexpr const char* good_map =
      R"({"embed":"model-00001-of-00002.safetensors","norm":"model-00001-of-00002.safetensors",)"
      R"("head":"model-00002-of-00002.safetensors","step":"model-00002-of-00002.safetensors"})";

  void expect_all_tensors(const safetensors_file& loaded) {
    ASSERT_EQ(loaded.tensors.size(), 4u);
    for (const auto* shard : {&shard1_, &shard2_}) {
      for (const auto& [name, want] : *shard) {
        ASSERT_TRUE(loaded.tensors.contains(name)) << name;
        EXPECT_EQ(loaded.tensors.at(name).shape(), want.shape()) << name;
        EXPECT_EQ(bytes_of(loaded.tensors.at(name)), bytes_of(want)) << name;
      }
    }
  }
  std::string index_error(const std::string& weight_map) {
    write_index(weight_map);
    return test::io_error_of([&] { load_safetensors_index(dir_.path()); });
  }

  test::temp_dir dir_;
  std::map<std::string, array> shard1_, shard2_;
};

TEST_F(io_safetensors_index, loads_the_union_of_the_shards) {
  write_index(good_map);
  for (const bool copy : {true, false}) {
    SCOPED_TRACE(copy ? "copy" : "mmap");
    const auto from_folder = load_safetensors_index(dir_.path(), {.copy = copy});
    expect_all_tensors(from_folder);
    // The first shard in name order wins metadata conflicts.
    EXPECT_EQ(from_folder.metadata,
              (std::map<std::string, std::string>{{"format", "pt"}, {"shard", "1"}, {"extra", "2"}}));
    expect_all_tensors(load_safetensors_index(dir_ / "model.safetensors.index.json", {.copy = copy}));
  }
}

TEST_F(io_safetensors_index, load_model_weights_prefers_the_index) {
  write_index(good_map);
  save_safetensors(dir_ / "model.safetensors", std::map<std::string, array>{{"other", array(2.0f)}});
  expect_all_tensors(load_model_weights(dir_.path()));
  std::filesystem::remove(dir_ / "model.safetensors.index.json");
  const auto single = load_model_weights(dir_.path());
  ASSERT_EQ(single.tensors.size(), 1u);
  EXPECT_EQ(single.tensors.at("other").item<float>(), 2.0f);
}

TEST_F(io_safetensors_index, load_model_weights_without_weights) {
  test::temp_dir empty;
  const std::string message = test::io_error_of([&] { load_model_weights(empty.path()); });
  EXPECT_NE(message.find("holds neither model.safetensors.index.json nor model.safetensors"),
            std::string::npos)
      << message;
}

TEST_F(io_safetensors_index, shard_names_must_stay_in_the_folder) {
  for (const std::string shard :
       {"../model-00001-of-00002.safetensors", "sub/x.safetensors", "/etc/passwd", "..", ".", "", "a\\\\b"}) {
    SCOPED_TRACE(shard);
    const std::string message = index_error(R"({"embed":")" + shard + R"("})");
    EXPECT_NE(message.find("which is not a plain file name in the index's folder"), std::string::npos)
        << message;
  }
}

TEST_F(io_safetensors_index, mapped_tensor_missing_from_its_shard) {
  const std::string message = index_error(R"({"embed":"model-00002-of-00002.safetensors"})");
  EXPECT_NE(
      message.find(
          "tensor 'embed' is mapped to shard 'model-00002-of-00002.safetensors', which does not hold it"),
      std::string::npos)
      << message;
}

TEST_F(io_safetensors_index, tensor_in_two_shards) {
  save_safetensors(dir_ / "model-00002-of-00002.safetensors",
                   std::map<std::string, array>{{"head", shard2_.at("head")}, {"norm", shard1_.at("norm")}});
  const std::string message =
      index_error(R"({"embed":"model-00001-of-00002.safetensors","norm":"model-00001-of-00002.safetensors",)"
                  R"("head":"model-00002-of-00002.safetensors"})");
  EXPECT_NE(message.find("tensor 'norm' appears in both shard 'model-00001-of-00002.safetensors' and shard "
                         "'model-00002-of-00002.safetensors'"),
            std::string::npos)
      << message;
}

TEST_F(io_safetensors_index, malformed_index_files) {
  const auto index_path = dir_ / "model.safetensors.index.json";
  const auto expect_fault = [&](const std::string& text, const std::string& fault) {
    test::write_bytes(index_path, text);
    const std::string message = test::io_error_of([&] { load_safetensors_index(index_path); });
    EXPECT_EQ(message.rfind("safetensors: " + index_path.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(fault), std::string::npos) << "message: " << message << "\nexpected: " << fault;
  };
  expect_fault("{", "index is not valid JSON");
  expect_fault("[]", "index is not a JSON object");
  expect_fault(R"({"metadata":{}})", "index has no 'weight_map'");
  expect_fault(R"({"weight_map":[]})", "'weight_map' is not a JSON object");
  expect_fault(R"({"weight_map":{}})", "'weight_map' is empty");
  expect_fault(R"({"weight_map":{"embed":1}})", "'weight_map' value of 'embed' is not a string");
  expect_fault(R"({"weight_map":{"embed":"a.safetensors","embed":"b.safetensors"}})",
               "duplicate key 'embed'");

  std::filesystem::remove(index_path);
  const std::string message = test::io_error_of([&] { load_safetensors_index(dir_.path()); });
  EXPECT_NE(message.find("model.safetensors.index.json: cannot open"), std::string::npos) << message;
}

TEST_F(io_safetensors_index, a_bad_shard_names_the_shard_file) {
  write_index(R"({"embed":"missing.safetensors"})");
  const std::string missing = test::io_error_of([&] { load_safetensors_index(dir_.path()); });
  EXPECT_NE(missing.find("safetensors: " + (dir_ / "missing.safetensors").string() + ": cannot open"),
            std::string::npos)
      << missing;

  test::write_bytes(dir_ / "model-00002-of-00002.safetensors", "short");
  write_index(good_map);
  const std::string message = test::io_error_of([&] { load_safetensors_index(dir_.path()); });
  EXPECT_NE(message.find("model-00002-of-00002.safetensors: file is 5 bytes"), std::string::npos) << message;
}

}  // namespace
}  // namespace mlxd
