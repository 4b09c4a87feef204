// A model folder's files around the tokenizer: which tokenizer file is loaded, tokenizer_config.json's
// special tokens and chat template, generation_config.json's BOS/EOS ids (one or a list), and the errors of
// each.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "mlxd/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

namespace mlxd {
namespace {

using json = nlohmann::json;
using ids = std::vector<token_id>;

// A character-level tokenizer.json: a b c, and <s> </s> <|eot|> as special added tokens.
std::string tiny_tokenizer_json() {
  json added = json::array();
  int id = 3;
  for (const char* t : {"<s>", "</s>", "<|eot|>"})
    added.push_back({{"id", id++}, {"content", t}, {"special", true}});
  return json{
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}}}, {"merges", json::array()}}},
      {"added_tokens", added}}
      .dump();
}

std::string error_of(const std::filesystem::path& folder) {
  try {
    tokenizer::load(folder);
  } catch (const tokenizer_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(config_files, generation_config_adds_eos_ids_and_fills_bos) {
  test::temp_dir folder;
  folder.write("tokenizer.json", tiny_tokenizer_json());
  folder.write("tokenizer_config.json", R"({"eos_token": "<|eot|>"})");
  folder.write("generation_config.json", R"({"bos_token_id": 3, "eos_token_id": [4, 5]})");
  const tokenizer tok = tokenizer::load(folder.path());
  EXPECT_EQ(tok.eos_id(), 5);
  EXPECT_EQ(tok.eos_ids(), (ids{5, 4}));  // the config's EOS first, then the others without repeats
  EXPECT_EQ(tok.bos_id(), 3);

  folder.write("tokenizer_config.json", R"({"bos_token": "<s>"})");
  folder.write("generation_config.json", R"({"bos_token_id": 4, "eos_token_id": 4})");
  const tokenizer single = tokenizer::load(folder.path() / "tokenizer.json");
  EXPECT_EQ(single.bos_id(), 3);  // tokenizer_config.json wins
  EXPECT_EQ(single.eos_id(), 4);
  EXPECT_EQ(single.eos_ids(), (ids{4}));
}

TEST(config_files, generation_config_errors_name_the_key_and_the_id) {
  test::temp_dir folder;
  folder.write("tokenizer.json", tiny_tokenizer_json());
  folder.write("generation_config.json", R"({"eos_token_id": [2, 99]})");
  EXPECT_NE(error_of(folder.path())
                .find("generation_config.json: eos_token_id 99 is not in the vocabulary (size 6)"),
            std::string::npos)
      << error_of(folder.path());
  folder.write("generation_config.json", R"({"bos_token_id": "<s>"})");
  EXPECT_NE(error_of(folder.path()).find("bos_token_id must be a token id"), std::string::npos);
  folder.write("generation_config.json", R"({"eos_token_id": -1})");
  EXPECT_NE(error_of(folder.path()).find("eos_token_id -1 is not in the vocabulary"), std::string::npos);
  folder.write("generation_config.json", "[1, 2");
  EXPECT_NE(error_of(folder.path()).find("generation_config.json"), std::string::npos);
}

TEST(config_files, chat_template_from_a_string_or_the_default_of_a_list) {
  test::temp_dir folder;
  folder.write("tokenizer.json", tiny_tokenizer_json());
  EXPECT_EQ(tokenizer::load(folder.path()).chat_template(), "");
  folder.write("tokenizer_config.json", R"({"chat_template": "{{ messages }}"})");
  EXPECT_EQ(tokenizer::load(folder.path()).chat_template(), "{{ messages }}");
  folder.write(
      "tokenizer_config.json",
      R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  EXPECT_EQ(tokenizer::load(folder.path()).chat_template(), "D");
}

TEST(config_files, a_folder_prefers_tokenizer_json_and_falls_back_to_tokenizer_model) {
  test::temp_dir folder;
  EXPECT_NE(error_of(folder.path()).find("has no tokenizer.json or tokenizer.model"), std::string::npos);
  folder.write("tokenizer.model", "not a SentencePiece model");
  const std::string bad = error_of(folder.path());
  EXPECT_NE(bad.find("tokenizer.model: "), std::string::npos) << bad;
  EXPECT_NE(bad.find("not a SentencePiece model"), std::string::npos) << bad;
  folder.write("tokenizer.json", tiny_tokenizer_json());
  EXPECT_EQ(tokenizer::load(folder.path()).encode("abc"), (ids{0, 1, 2}));
  // A GGUF file is named as such rather than parsed as JSON.
  const auto gguf = folder.write("model.gguf", std::string("GGUF\x03\0\0\0", 8));
  EXPECT_NE(error_of(gguf).find("a GGUF file"), std::string::npos);
}

TEST(config_files, malformed_sentencepiece_bytes_never_crash) {
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng());
    try {
      const tokenizer tok = tokenizer::from_sentencepiece(bytes);
      tok.encode("hello");
    } catch (const tokenizer_error&) {
    }
  }
}

}  // namespace
}  // namespace mlxd
