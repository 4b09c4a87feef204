// tokenizer::from_vocabulary on small hand-made vocabularies: SentencePiece BPE by score (leftmost on equal
// scores, byte fallback, the dummy prefix), byte-level BPE by rank with each pre-tokenizer name, control and
// user-defined tokens, the BOS/EOS defaults, and the errors of inconsistent specs.
#include <gtest/gtest.h>

#include "mlxd/tokenizer/stream_decoder.h"
#include "mlxd/tokenizer/tokenizer.h"

namespace mlxd {
namespace {

using ids = std::vector<token_id>;

// <unk> <s> </s>, the 256 byte tokens, then a few pieces with scores.
vocabulary_spec sentencepiece_spec() {
  vocabulary_spec spec;
  spec.model = vocabulary_model::sentencepiece_bpe;
  spec.tokens = {"<unk>", "<s>", "</s>"};
  spec.types = {token_type::unknown, token_type::control, token_type::control};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    spec.tokens.push_back(name);
    spec.types.push_back(token_type::byte);
  }
  // ids 259...: ▁ a b ab ▁a aa ▁aa <|tool|>
  for (const char* piece : {"\u2581", "a", "b", "ab", "\u2581a", "aa", "\u2581aa", "<|tool|>"}) {
    spec.tokens.push_back(piece);
    spec.types.push_back(token_type::normal);
  }
  spec.types.back() = token_type::user_defined;
  spec.scores.assign(spec.tokens.size(), 0.0f);
  spec.scores[262] = -1.0f;  // ab
  spec.scores[263] = -2.0f;  // ▁a
  spec.scores[264] = -1.0f;  // aa: ties with ab
  spec.scores[265] = -3.0f;  // ▁aa
  spec.bos = 1;
  spec.eos = 2;
  spec.unk = 0;
  return spec;
}

TEST(vocabulary, sentencepiece_merges_best_score_first_and_leftmost_on_ties) {
  const tokenizer tok = tokenizer::from_vocabulary(sentencepiece_spec());
  // "▁aab": ab and aa score the same; aa is leftmost: ▁ aa b -> ▁aa b.
  EXPECT_EQ(tok.encode("aab", false), (ids{265, 261}));
  // "▁abaa": ab (left) and aa tie: ab first, then aa, then nothing makes ▁ab: ▁ ab aa.
  EXPECT_EQ(tok.encode("abaa", false), (ids{259, 262, 264}));
  EXPECT_EQ(tok.encode("aab", true), (ids{1, 265, 261}));     // BOS by default for SentencePiece
  EXPECT_EQ(tok.decode(tok.encode("aab", true)), "<s> aab");  // as the tokenizer.json decoder does
  EXPECT_EQ(tok.decode(tok.encode("aab", true), true), "aab");
}

TEST(vocabulary, sentencepiece_byte_fallback_and_literal_tokens) {
  const tokenizer tok = tokenizer::from_vocabulary(sentencepiece_spec());
  EXPECT_EQ(tok.encode("\xC3\xA9", false), (ids{259, 3 + 0xC3, 3 + 0xA9}));  // ▁é: é is not a piece
  EXPECT_EQ(tok.encode("a<s>a", false), (ids{263, 1, 263}));  // <s> matched; each stretch gets ▁
  EXPECT_EQ(tok.encode("<|tool|>", false), (ids{266}));       // user-defined: matched
  EXPECT_FALSE(tok.is_special(266));
  EXPECT_TRUE(tok.is_special(0) && tok.is_special(1));
  EXPECT_EQ(tok.decode(ids{263, 3 + 0xC3, 3 + 0xA9}), "a\xC3\xA9");
  stream_decoder stream(tok);
  EXPECT_EQ(stream.push(263), "a");
  EXPECT_EQ(stream.push(3 + 0xC3), "");  // half of é is held back
  EXPECT_EQ(stream.push(3 + 0xA9), "\xC3\xA9");
}

TEST(vocabulary, sentencepiece_without_space_prefix_and_with_eos) {
  vocabulary_spec spec = sentencepiece_spec();
  spec.add_space_prefix = false;
  spec.add_bos = false;
  spec.add_eos = true;
  const tokenizer tok = tokenizer::from_vocabulary(spec);
  EXPECT_EQ(tok.encode("aab", true), (ids{264, 261, 2}));
  EXPECT_EQ(tok.decode(ids{259, 260}), " a");  // no dummy prefix to strip
}

// Byte-level: 'a'..'z' and "Ġ" (space) as single characters, a few merges.
vocabulary_spec byte_level_spec(const std::string& pre) {
  vocabulary_spec spec;
  spec.pre_tokenizer = pre;
  for (char c = 'a'; c <= 'z'; ++c) spec.tokens.emplace_back(1, c);
  // ids 26...: "Ġ" is the space; "Ã©" spells the bytes of é.
  for (const char* t : {"\u0120", "\u0120a", "ab", "\u0120ab", "1", "2", "3", "4", "12", "123", "\u00e9",
                        "\u00c3", "\u00a9", "\u00c3\u00a9"}) {
    spec.tokens.push_back(t);
  }
  spec.merges = {"a b", "\u0120 ab", "\u0120 a", "1 2", "12 3", "\u00c3 \u00a9"};
  spec.tokens.push_back("<|end|>");
  spec.types.assign(spec.tokens.size(), token_type::normal);
  spec.types.back() = token_type::control;
  spec.eos = static_cast<token_id>(spec.tokens.size() - 1);
  spec.eot = 0;
  return spec;
}

TEST(vocabulary, byte_level_merges_by_rank_with_each_pre_tokenizer) {
  const tokenizer gpt2 = tokenizer::from_vocabulary(byte_level_spec(""));
  const token_id end = static_cast<token_id>(gpt2.vocab_size() - 1);
  EXPECT_EQ(gpt2.encode("ab ab<|end|>", true), (ids{28, 29, end}));  // no BOS for gpt2
  EXPECT_EQ(gpt2.encode("1234", false), (ids{35, 33}));              // merges 123, then 4
  EXPECT_EQ(gpt2.decode(ids{28, 29, end}), "ab ab<|end|>");
  EXPECT_EQ(gpt2.decode(ids{28, 29, end}, true), "ab ab");
  EXPECT_EQ(gpt2.eos_ids(), (ids{end, 0}));  // eos, then end of turn
  const tokenizer llama3 = tokenizer::from_vocabulary(byte_level_spec("llama-bpe"));
  EXPECT_EQ(llama3.encode("1234", false), (ids{35, 33}));  // \p{N}{1,3}: 123 | 4
  const tokenizer qwen2 = tokenizer::from_vocabulary(byte_level_spec("qwen2"));
  EXPECT_EQ(qwen2.encode("1234", false), (ids{30, 31, 32, 33}));  // one digit per piece
  EXPECT_EQ(qwen2.encode("e\u0301", false), (ids{39}));           // NFC first: é, whose bytes are "Ã©"
  EXPECT_EQ(gpt2.encode("\u00e9", false), (ids{39}));
}

TEST(vocabulary, inconsistent_specs_give_tokenizer_error_naming_the_fault) {
  auto fails_with = [](const vocabulary_spec& spec, const std::string& fault) {
    try {
      tokenizer::from_vocabulary(spec);
      ADD_FAILURE() << "no error for " << fault;
    } catch (const tokenizer_error& e) {
      EXPECT_NE(std::string(e.what()).find(fault), std::string::npos) << e.what();
    }
  };
  fails_with(vocabulary_spec{}, "vocabulary is empty");
  vocabulary_spec spec = byte_level_spec("starcoder");
  fails_with(spec, "unsupported pre-tokenizer 'starcoder'");
  spec = byte_level_spec("");
  spec.types.pop_back();
  fails_with(spec, "token types: 40 for 41 tokens");
  spec = byte_level_spec("");
  spec.types[3] = static_cast<token_type>(17);
  fails_with(spec, "token 3 has unknown type 17");
  spec = byte_level_spec("");
  spec.bos = 41;
  fails_with(spec, "bos token id 41 is outside the vocabulary (size 41)");
  spec = byte_level_spec("");
  spec.merges.push_back("nospace");
  fails_with(spec, "merge 6 has no space");
  spec = sentencepiece_spec();
  spec.scores.clear();
  fails_with(spec, "token scores: 0 for 267 tokens");
}

}  // namespace
}  // namespace mlxd
