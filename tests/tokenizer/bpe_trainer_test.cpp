// The BPE trainer: merges on hand corpora against hand-computed ones (counts, tie-breaking, overlapping
// pairs, special tokens), lossless round trips of arbitrary UTF-8 through the written tokenizer folder, the
// written files as the loader reads them, and bad options.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "mlxd/tokenizer/bpe_trainer.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

namespace mlxd {
namespace {

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::pair<int32_t, int32_t> merge(int32_t l, int32_t r) {
  return {l, r};
}

std::vector<std::string> merged_tokens(const bpe_vocabulary& v) {
  return {v.tokens.begin() + static_cast<std::ptrdiff_t>(v.special_tokens.size()) + 256, v.tokens.end()};
}

bpe_vocabulary train(const std::string& text, int64_t vocab_size, int64_t min_frequency = 2,
                     std::vector<std::string> special = {}) {
  bpe_trainer_options o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  o.special_tokens = std::move(special);
  bpe_trainer t(o);
  t.add_text(text);
  return t.train();
}

// The Hugging Face course's example: hug x10, pug x5, pun x12, bun x4, hugs x5 (one word a line, so the
// pieces are exactly the words). By hand: u+g (20), u+n (16), h+ug (15), p+un (12), then hug+s and p+ug tie
// at 5 and "hug" < "p" goes first, then p+ug (5), b+un (4); every word is then one token.
TEST(BpeTrainer, MergesEqualHandComputed) {
  const std::string corpus = repeat("hug\n", 10) + repeat("pug\n", 5) + repeat("pun\n", 12) +
                             repeat("bun\n", 4) + repeat("hugs\n", 5);
  const auto v = train(corpus, 1000);
  EXPECT_EQ(merged_tokens(v), (std::vector<std::string>{"ug", "un", "hug", "pun", "hugs", "pug", "bun"}));
  ASSERT_EQ(v.merges.size(), 7u);
  EXPECT_EQ(v.merges[0], merge('u', 'g'));
  EXPECT_EQ(v.merges[2], merge('h', 256));  // h + ug
  EXPECT_EQ(v.tokens.size(), 256u + 7u);
}

TEST(BpeTrainer, VocabSizeStopsTraining) {
  const std::string corpus = repeat("hug\n", 10) + repeat("pug\n", 5) + repeat("pun\n", 12);
  const auto v = train(corpus, 258);
  // p+u (17) first; then pu+n (12) beats h+u and u+g (10 each).
  EXPECT_EQ(merged_tokens(v), (std::vector<std::string>{"pu", "pun"}));
}

// Equal counts: the smaller left bytes first, then the smaller right bytes.
TEST(BpeTrainer, TiesGoToTheSmallestPair) {
  const auto v = train("zy\nab\nac\nba\n", 1000, 1);
  EXPECT_EQ(merged_tokens(v), (std::vector<std::string>{"ab", "ac", "ba", "zy"}));
}

// "aaaa" holds three adjacent (a, a) pairs; merging goes left to right without overlap ("aa aa"), and the
// counts follow: then (aa, aa) once per word.
TEST(BpeTrainer, OverlappingPairsCountLikeTheEncoder) {
  const auto v = train(repeat("aaaa\n", 3) + repeat("aaa\n", 2), 1000, 1);
  EXPECT_EQ(merged_tokens(v), (std::vector<std::string>{"aa", "aaaa", "aaa"}));
}

TEST(BpeTrainer, MinFrequencyStopsTraining) {
  const auto v = train(repeat("ab\n", 3) + "cd\n", 1000, 2);
  EXPECT_EQ(merged_tokens(v), (std::vector<std::string>{"ab"}));
}

// Special tokens in the corpus are cut out before counting, and no merge may spell one: " hi" is spelled
// "Ġhi" in the vocabulary, so after " "+"h" (a tie with h+i at 20, " " < "h") the only pair left is refused.
TEST(BpeTrainer, SpecialTokensAreNotLearned) {
  const auto v = train(repeat("<s>xy<s>\n", 20) + repeat(" hi\n", 20), 1000, 2, {"<s>", "Ġhi"});
  EXPECT_EQ(merged_tokens(v), (std::vector<std::string>{" h", "xy"}));
  EXPECT_EQ(v.tokens[0], "<s>");
  EXPECT_EQ(v.tokens[1], "Ġhi");
  EXPECT_EQ(v.tokens[2 + 'a'], "a");
  EXPECT_EQ(v.merges[0], merge(2 + ' ', 2 + 'h'));
}

TEST(BpeTrainer, RejectsBadOptions) {
  bpe_trainer_options o;
  o.vocab_size = 100;
  EXPECT_THROW(bpe_trainer{o}, std::invalid_argument);
  o.vocab_size = 1000;
  o.special_tokens = {"<s>", "<s>"};
  EXPECT_THROW(bpe_trainer{o}, std::invalid_argument);
  o.special_tokens = {""};
  EXPECT_THROW(bpe_trainer{o}, std::invalid_argument);
  o.special_tokens = {};
  o.pattern = "(unclosed";
  EXPECT_THROW(bpe_trainer{o}, tokenizer_error);
  o.pattern = std::string(llama3_pattern);
  const auto v = bpe_trainer(o).train();
  tokenizer_files_options f;
  f.bos_token = "<nope>";
  EXPECT_THROW(tokenizer_json(v, f), std::invalid_argument);
}

// A random string of code points from many scripts, controls, emoji, the byte-level characters themselves,
// U+FFFD and the highest planes.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x00, 0x7F},        {0x80, 0x7FF},    {0x0400, 0x04FF},   {0x0100, 0x0143}, {0x4E00, 0x9FFF},
      {0xAC00, 0xD7A3},    {0x0600, 0x06FF}, {0x1F300, 0x1FAFF}, {0xFFF0, 0xFFFD}, {0xE000, 0xF8FF},
      {0x10000, 0x10FFFF}, {0x20, 0x20},     {0x0A, 0x0A},       {0x2000, 0x206F}};
  std::uniform_int_distribution<size_t> pick(0, ranges.size() - 1), length(0, 40);
  std::string out;
  const size_t n = length(rng);
  for (size_t i = 0; i < n; ++i) {
    const auto [lo, hi] = ranges[pick(rng)];
    char32_t cp = std::uniform_int_distribution<char32_t>(lo, hi)(rng);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

const std::string& mixed_corpus() {
  static const std::string text = [] {
    std::string s;
    std::mt19937 rng(7);
    for (int i = 0; i < 300; ++i) {
      s += "In the beginning God created the heaven and the earth. 你好，世界！ 😀 Привет, мир! 12345 ";
      s += random_text(rng) + "\n";
    }
    return s;
  }();
  return text;
}

TEST(BpeTrainer, WrittenFolderRoundTripsArbitraryUtf8) {
  bpe_trainer_options o;
  o.vocab_size = 700;
  bpe_trainer t(o);
  t.add_text(mixed_corpus());
  const auto v = t.train();
  EXPECT_EQ(v.tokens.size(), 700u);
  test::temp_dir dir;
  save_tokenizer_files(v, {}, dir.path());
  const auto tok = tokenizer::load(dir.path());
  EXPECT_EQ(tok.vocab_size(), 700);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.eos_ids(), (std::vector<token_id>{1, 3}));
  EXPECT_FALSE(tok.chat_template().empty());

  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    const std::string s = random_text(rng);
    const auto ids = tok.encode(s, false);
    ASSERT_EQ(tok.decode(ids), s) << "case " << i;
    const auto with_bos = tok.encode(s, true);
    ASSERT_EQ(with_bos.size(), ids.size() + 1);
    ASSERT_EQ(with_bos[0], 0);
    ASSERT_EQ(tok.decode(with_bos, true), s);
  }
  // Spaces before punctuation stay (clean_up_tokenization_spaces is off), the learned words are whole tokens.
  EXPECT_EQ(tok.decode(tok.encode("hello , world ? don 't", false)), "hello , world ? don 't");
  EXPECT_EQ(tok.encode(" beginning", false).size(), 1u);
  EXPECT_EQ(tok.encode("<|im_start|>user", false)[0], 2);
  // Ill-formed UTF-8 is read as U+FFFD, as every Hugging Face tokenizer does.
  EXPECT_EQ(tok.decode(tok.encode(std::string("a\xff"
                                              "b"),
                                  false)),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(BpeTrainer, ChunkedFilesCountLikeOneText) {
  bpe_trainer_options o;
  o.vocab_size = 600;
  test::temp_dir dir;
  std::string big;
  while (big.size() < (size_t{3} << 20)) big += mixed_corpus();
  const auto file = dir.write("corpus.txt", big);
  bpe_trainer whole(o), chunked(o);
  whole.add_text(big);
  add_files(chunked, {file});
  EXPECT_EQ(whole.n_words(), chunked.n_words());
  EXPECT_EQ(whole.train().merges, chunked.train().merges);
  EXPECT_THROW(add_files(chunked, {dir.path() / "missing.txt"}), std::runtime_error);
}

TEST(BpeTrainer, ConfigFiles) {
  const auto v = train("x", 300, 2, {"<s>", "</s>"});
  const auto config = nlohmann::json::parse(tokenizer_config_json(v, {}));
  EXPECT_EQ(config["bos_token"], "<s>");
  EXPECT_EQ(config["clean_up_tokenization_spaces"], false);
  EXPECT_FALSE(config.contains("chat_template"));  // no <|im_start|>/<|im_end|> tokens
  const auto json = nlohmann::json::parse(tokenizer_json(v, {}));
  EXPECT_EQ(json["model"]["vocab"]["Ġ"], 2 + ' ');
  EXPECT_EQ(json["added_tokens"].size(), 2u);
}

}  // namespace
}  // namespace mlxd
