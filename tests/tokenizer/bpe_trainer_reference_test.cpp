// A tokenizer folder written by the BPE trainer, read by Hugging Face tokenizers (JS, installed by the
// tokenizer_reference fixture): the same ids with and without special tokens, and the same decoded text, on
// the lines of a King James Bible sample and on hand-picked and random multilingual text.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "mlxd/tokenizer/bpe_trainer.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

namespace mlxd {
namespace {

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(BpeTrainerReference, EncodesAsHuggingFaceTokenizers) {
  const std::filesystem::path sample = std::filesystem::path(MLXD_TEST_DATA_DIR) / "kjv_sample.txt";
  const std::string corpus = read(sample);
  bpe_trainer_options o;
  o.vocab_size = 1200;
  bpe_trainer trainer(o);
  add_files(trainer, {sample});
  trainer.add_text("你好，世界！ 日本語のテキスト 😀😃 Привет, мир! naïve café 3.14159 x = f(y);\n");
  test::temp_dir dir;
  save_tokenizer_files(trainer.train(), {}, dir.path());

  nlohmann::json texts = nlohmann::json::array();
  std::istringstream lines(corpus);
  for (std::string line; std::getline(lines, line);) texts.push_back(line);
  texts.push_back(corpus.substr(0, 5000));  // many lines at once: newlines inside pieces
  for (const char* s :
       {"", " ", "  \n\n\t x", "Hello, world!", "I'm sure they'll say it's what we've done",
        "12345678901234567890", "你好，世界！", "👨‍👩‍👧‍👦 family 🇫🇷",
        "<s>In the beginning</s>", "<|im_start|>user\nHi<|im_end|>\n", "Ġ Ċ byte-level characters",
        "\xEF\xBF\xBD replacement", "trailing spaces   ", "tab\tseparated\n1\t2"}) {
    texts.push_back(s);
  }
  std::mt19937 rng(5);
  const std::vector<std::string> fragments = {"the",  " LORD", " ", "\n",    "\t",   "42",   "😀",
                                              "中文", "é",     "?", "'s",    "<s>",  "</s>", "Ġ",
                                              "  ",   "unto",  ",", "Jesus", "\r\n", "ß"};
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int j = std::uniform_int_distribution<int>(1, 12)(rng); j > 0; --j) {
      s += fragments[std::uniform_int_distribution<size_t>(0, fragments.size() - 1)(rng)];
    }
    texts.push_back(s);
  }
  const auto inputs = dir.write("inputs.json", texts.dump());
  const auto out = dir.path() / "out.json";
  const std::string command = "cd '" + std::string(MLXD_TOKENIZER_REFERENCE_DIR) +
                              "' && node encode_trained.mjs '" + dir.path().string() + "' '" +
                              inputs.string() + "' '" + out.string() + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const auto expected = nlohmann::json::parse(read(out));
  ASSERT_EQ(expected.size(), texts.size());

  const auto tok = tokenizer::load(dir.path());
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const auto plain = tok.encode(text, false);
    ASSERT_EQ(plain, expected[i]["plain"].get<std::vector<token_id>>()) << "text: " << text;
    ASSERT_EQ(tok.encode(text, true), expected[i]["ids"].get<std::vector<token_id>>()) << "text: " << text;
    ASSERT_EQ(tok.decode(plain), expected[i]["decoded"].get<std::string>()) << "text: " << text;
    ASSERT_EQ(tok.decode(plain), text);
  }
  // A real vocabulary: well under one token per 3 bytes of the text it learned from.
  EXPECT_LT(tok.encode(corpus, false).size() * 3, corpus.size());
}

}  // namespace
}  // namespace mlxd
