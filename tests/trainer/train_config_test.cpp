// Reading a training config: YAML scalars typed as a reader expects, paths relative to the file,
// overrides, and errors that name the setting.
#include <gtest/gtest.h>

#include "mlxd/trainer/train_config.h"
#include "support/temp_dir.h"

namespace mlxd::trainer {
namespace {

namespace fs = std::filesystem;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const config_error& e) {
    return e.what();
  }
  return "(no config_error)";
}

TEST(yaml_to_json, types_plain_scalars_and_keeps_quoted_ones_as_strings) {
  const auto j = yaml_to_json(
      "a: 3\nb: 3e-4\nc: true\nd: ~\ne: hello\nf: '42'\ng: [1, x]\nh: {k: -2}\ni: +7\nj: 1.5.2\n", "t");
  EXPECT_EQ(j["a"], 3);
  EXPECT_TRUE(j["a"].is_number_integer());
  EXPECT_DOUBLE_EQ(j["b"].get<double>(), 3e-4);
  EXPECT_EQ(j["c"], true);
  EXPECT_TRUE(j["d"].is_null());
  EXPECT_EQ(j["e"], "hello");
  EXPECT_EQ(j["f"], "42");
  EXPECT_EQ(j["g"], nlohmann::json::parse(R"([1, "x"])"));
  EXPECT_EQ(j["h"]["k"], -2);
  EXPECT_EQ(j["i"], 7);
  EXPECT_EQ(j["j"], "1.5.2");
}

TEST(yaml_to_json, reports_the_line_of_a_syntax_error) {
  const std::string m = message_of([] { yaml_to_json("a: 1\nb: [1, 2\nc: 3\n", "run.yaml"); });
  EXPECT_NE(m.find("run.yaml:"), std::string::npos) << m;
}

class train_config_test : public ::testing::Test {
 protected:
  fs::path write(const std::string& text) { return dir_.write("run.yaml", text); }
  mlxd::test::temp_dir dir_;
};

constexpr const char* minimal = R"(model:
  config: {architectures: [LlamaForCausalLM], vocab_size: 64, hidden_size: 16, intermediate_size: 32,
           num_hidden_layers: 1, num_attention_heads: 2}
tokenizer: tok
data:
  train: [a.txt, sub/b.jsonl]
  seq_len: 32
run:
  out: runs/one
  steps: 10
)";

TEST_F(train_config_test, reads_settings_and_resolves_paths_against_the_file) {
  const train_config c = load_train_config(write(minimal));
  EXPECT_EQ(c.model.config["hidden_size"], 16);
  EXPECT_EQ(c.tokenizer, dir_.path() / "tok");
  ASSERT_EQ(c.data.train.size(), 2u);
  EXPECT_EQ(c.data.train[1], dir_.path() / "sub/b.jsonl");
  EXPECT_EQ(c.data.seq_len, 32);
  EXPECT_EQ(c.data.batch_size, 8);  // default
  EXPECT_EQ(c.optim.name, "adamw");
  EXPECT_EQ(c.run.out, dir_.path() / "runs/one");
  EXPECT_EQ(c.run.steps, 10);
  EXPECT_EQ(c.data_parallel.bucket_mb, 8);  // defaults
  EXPECT_TRUE(c.data_parallel.overlap);
  const train_config d =
      load_train_config(write(minimal), {"data_parallel.bucket_mb=2", "data_parallel.overlap=false"});
  EXPECT_EQ(d.data_parallel.bucket_mb, 2);
  EXPECT_FALSE(d.data_parallel.overlap);
}

TEST_F(train_config_test, overrides_replace_settings_and_keep_paths_relative_to_the_working_directory) {
  const train_config c =
      load_train_config(write(minimal), {"optim.lr=3e-4", "data.pack=false", "run.out=elsewhere"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_FALSE(c.data.pack);
  EXPECT_EQ(c.run.out, fs::absolute("elsewhere"));
  EXPECT_NE(message_of([&] { load_train_config(write(minimal), {"optim.lr"}); }).find("KEY=VALUE"),
            std::string::npos);
}

TEST_F(train_config_test, names_the_setting_that_is_wrong) {
  auto error_with = [&](const std::string& extra_or_override) {
    return message_of([&] { load_train_config(write(minimal), {extra_or_override}); });
  };
  EXPECT_NE(error_with("optim.lrr=1").find("optim.lrr is not a setting"), std::string::npos);
  EXPECT_NE(error_with("data.seq_len=long").find("data.seq_len must be an integer"), std::string::npos);
  EXPECT_NE(error_with("optim.lr=-1").find("optim.lr must be > 0"), std::string::npos);
  EXPECT_NE(error_with("run.steps=0").find("run.steps must be >= 1"), std::string::npos);
  EXPECT_NE(error_with("schedule.kind=wavy").find("schedule.kind"), std::string::npos);
  EXPECT_NE(error_with("model.from=somewhere").find("exactly one of"), std::string::npos);
  EXPECT_NE(error_with("run.save_dtype=f8").find("run.save_dtype"), std::string::npos);
  EXPECT_NE(error_with("data.row_streams=3").find("data.row_streams must be true or false"),
            std::string::npos);
  EXPECT_NE(error_with("data_parallel.bucket_mb=0").find("data_parallel.bucket_mb must be in 1..1024"),
            std::string::npos);
  EXPECT_NE(error_with("data_parallel.overlap=2").find("data_parallel.overlap must be true or false"),
            std::string::npos);
  const std::string dpo = message_of([&] {
    load_train_config(write(minimal), {"task=dpo", "dpo.reference=ref", "data.row_streams=true"});
  });
  EXPECT_NE(dpo.find("data.row_streams is for the lm task"), std::string::npos) << dpo;
  EXPECT_NE(message_of([&] { load_train_config(dir_.path() / "missing.yaml"); }).find("cannot read"),
            std::string::npos);
}

}  // namespace
}  // namespace mlxd::trainer
