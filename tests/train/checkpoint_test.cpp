#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "checkpoint_support.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/io/io_error.h"
#include "mlxd/train/adam.h"
#include "mlxd/train/checkpoint.h"
#include "support/temp_dir.h"

namespace mlxd::train {
namespace {

namespace fs = std::filesystem;
using ckpt_test::expect_same_state;
using ckpt_test::make_state;
using mlxd::test::temp_dir;

TEST(Checkpoint, RoundTripIsBitIdentical) {
  temp_dir root("ckpt_roundtrip");
  checkpoint_state saved = make_state(42, 1000);
  saved.data_cursor = R"({"file":"train.jsonl","offset":123456789012,"epoch":2,"order":[3,1,2]})";
  saved.rng = {0xfedcba9876543210ull, 7};
  // A real optimizer's state, with odd floats that must survive exactly.
  std::vector<array> params{random::normal({4, 0}, {17, 5}), random::normal({4, 1}, {5})};
  adam opt({"a.weight", "a.bias"}, params, {}, true);
  opt.step(params, {random::normal({5, 0}, {17, 5}), random::normal({5, 1}, {5})}, 1e-3);
  saved.optimizer_state = opt.state();
  saved.weights.emplace("tiny", array::from({1e-45f, -0.0f, 3.4028235e38f}, {3}));

  const fs::path dir = save_checkpoint(root.path(), saved);
  EXPECT_EQ(dir, root.path() / "step-0000000042");
  EXPECT_TRUE(is_complete_checkpoint(dir));
  ASSERT_EQ(latest_complete_checkpoint(root.path()), dir);
  const checkpoint_state loaded = load_checkpoint(dir);
  expect_same_state(saved, loaded);
  EXPECT_EQ(loaded.rng.seed, 0xfedcba9876543210ull);
  EXPECT_EQ(loaded.rng.stream, 7u);
  EXPECT_EQ(loaded.data_cursor, R"({"epoch":2,"file":"train.jsonl","offset":123456789012,"order":[3,1,2]})");

  adam resumed({"a.weight", "a.bias"}, params, {}, true);
  resumed.load_state(loaded.optimizer_state);
  EXPECT_EQ(resumed.steps_taken(), 1);
}

TEST(Checkpoint, KeepsTheLastK) {
  temp_dir root("ckpt_keep");
  for (int64_t step : {10, 20, 30, 40, 50})
    save_checkpoint(root.path(), make_state(step, 10), {.keep_last = 2});
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(root.path())) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"step-0000000040", "step-0000000050"}));
  EXPECT_EQ(load_checkpoint(*latest_complete_checkpoint(root.path())).step, 50);
}

TEST(Checkpoint, IncompleteDirectoriesAreSkipped) {
  temp_dir root("ckpt_incomplete");
  save_checkpoint(root.path(), make_state(100, 50));
  const fs::path good = root.path() / "step-0000000100";

  // A newer save interrupted before its manifest: files present, no manifest.
  const fs::path no_manifest = save_checkpoint(root.path(), make_state(200, 50), {.keep_last = 5});
  fs::remove(no_manifest / "manifest.json");
  EXPECT_FALSE(is_complete_checkpoint(no_manifest));
  EXPECT_EQ(latest_complete_checkpoint(root.path()), good);

  // A manifest naming a short file, and one naming a missing file.
  const fs::path short_file = save_checkpoint(root.path(), make_state(300, 50), {.keep_last = 5});
  fs::resize_file(short_file / "weights.safetensors", fs::file_size(short_file / "weights.safetensors") - 1);
  const fs::path missing = save_checkpoint(root.path(), make_state(400, 50), {.keep_last = 5});
  fs::remove(missing / "optimizer.safetensors");
  // A manifest that is not JSON, and a directory that is not a checkpoint at all.
  const fs::path garbage = save_checkpoint(root.path(), make_state(500, 50), {.keep_last = 5});
  std::ofstream(garbage / "manifest.json") << "{\"format\":";
  fs::create_directories(root.path() / "step-0000000900");
  fs::create_directories(root.path() / "step-9x");

  for (const fs::path& bad : {short_file, missing, garbage}) {
    EXPECT_FALSE(is_complete_checkpoint(bad)) << bad;
    EXPECT_THROW(load_checkpoint(bad), io_error) << bad;
  }
  ASSERT_EQ(latest_complete_checkpoint(root.path()), good);
  expect_same_state(make_state(100, 50), load_checkpoint(good));

  // The next complete save prunes the incomplete ones older than it.
  save_checkpoint(root.path(), make_state(600, 50), {.keep_last = 2});
  EXPECT_TRUE(fs::exists(good));
  for (const fs::path& bad : {no_manifest, short_file, missing, garbage})
    EXPECT_FALSE(fs::exists(bad)) << bad;
  EXPECT_TRUE(fs::exists(root.path() / "step-0000000900"));  // newer than the save: not ours to judge
}

TEST(Checkpoint, ResavingAStepReplacesIt) {
  temp_dir root("ckpt_resave");
  save_checkpoint(root.path(), make_state(5, 20));
  checkpoint_state second = make_state(5, 30);
  save_checkpoint(root.path(), second);
  expect_same_state(second, load_checkpoint(root.path() / "step-0000000005"));
}

TEST(Checkpoint, MissingRootAndBadArguments) {
  temp_dir root("ckpt_args");
  EXPECT_EQ(latest_complete_checkpoint(root.path() / "nope"), std::nullopt);
  checkpoint_state s = make_state(1, 4);
  s.data_cursor = "{not json";
  EXPECT_THROW(save_checkpoint(root.path(), s), std::invalid_argument);
  EXPECT_FALSE(fs::exists(root.path() / "step-0000000001"));
  s = make_state(-1, 4);
  EXPECT_THROW(save_checkpoint(root.path(), s), std::invalid_argument);
  EXPECT_THROW(save_checkpoint(root.path(), make_state(1, 4), {.keep_last = 0}), std::invalid_argument);
  EXPECT_THROW(load_checkpoint(root.path() / "step-0000000001"), io_error);
}

}  // namespace
}  // namespace mlxd::train
