// The tokenizer on small hand-written tokenizer.json files: merge order, both merge forms, ignore_merges,
// byte fallback, added-token flags, Metaspace, decoders, and the errors of malformed files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/stream_decoder.h"
#include "mlxd/tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlxd {
namespace {

using json = nlohmann::json;
using ids = std::vector<token_id>;

// A SentencePiece-style BPE: Metaspace, byte fallback for everything outside a tiny vocabulary.
json sentencepiece_like(json merges) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"\u2581", 2},  {"a", 3},
                {"b", 4},     {"ab", 5},  {"\u2581a", 6}, {"aa", 7}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 10 + b;
  }
  return {{"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", merges},
            {"byte_fallback", true},
            {"unk_token", "<unk>"}}},
          {"added_tokens", json::array({{{"id", 1}, {"content", "<s>"}, {"special", true}}})},
          {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                          {{"type", "ByteFallback"}},
                          {{"type", "Fuse"}},
                          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}}};
}

TEST(synthetic, merges_apply_by_rank_in_either_form_leftmost_first) {
  for (const json& merges :
       {json::array({"a a", "a b", "\u2581 a"}),
        json::array({json::array({"a", "a"}), json::array({"a", "b"}), json::array({"\u2581", "a"})})}) {
    const tokenizer tok = tokenizer::from_json(sentencepiece_like(merges).dump());
    // "▁aaab": (a,a) has the best rank and merges leftmost first: ▁ aa a b -> then (a,b) -> ▁ aa ab.
    EXPECT_EQ(tok.encode("aaab", false), (ids{2, 7, 5}));
    EXPECT_EQ(tok.decode(tok.encode("aaab", false)), "aaab");
  }
}

TEST(synthetic, byte_fallback_spells_unknown_characters_and_stream_holds_partial_ones) {
  const tokenizer tok = tokenizer::from_json(sentencepiece_like(json::array({"a b"})).dump());
  EXPECT_EQ(tok.encode("\xC3\xA9", false), (ids{2, 10 + 0xC3, 10 + 0xA9}));  // "▁é"
  EXPECT_EQ(tok.decode(ids{2, 10 + 0xC3, 10 + 0xA9}), "\xC3\xA9");
  stream_decoder stream(tok);
  EXPECT_EQ(stream.push(2), "");
  EXPECT_EQ(stream.push(10 + 0xC3), "");  // half of é
  EXPECT_EQ(stream.push(10 + 0xA9), "\xC3\xA9");
  EXPECT_EQ(stream.push(3), "a");
  EXPECT_EQ(stream.finish(), "");
}

TEST(synthetic, added_token_flags) {
  json spec = sentencepiece_like(json::array());
  spec["added_tokens"] = json::array(
      {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}},
       {{"id", 0}, {"content", "ab"}, {"special", false}, {"single_word", true}, {"normalized", false}}});
  const tokenizer tok = tokenizer::from_json(spec.dump());
  EXPECT_EQ(tok.encode("a  <s>  b", false), (ids{2, 3, 1, 2, 4}));  // the spaces beside <s> are swallowed
  EXPECT_EQ(tok.encode("ab", false), (ids{0}));                     // a word of its own
  EXPECT_EQ(tok.encode("aab", false), (ids{2, 3, 3, 4}));           // inside a word: not the added token
  EXPECT_EQ(tok.decode(ids{1, 3}, true), "a");
}

TEST(synthetic, ignore_merges_takes_whole_words_from_the_vocabulary) {
  json spec = {{"model",
                {{"type", "BPE"},
                 {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"abb", 3}}},
                 {"merges", json::array({"a b"})},
                 {"ignore_merges", true}}}};
  EXPECT_EQ(tokenizer::from_json(spec.dump()).encode("abb"), (ids{3}));
  spec["model"]["ignore_merges"] = false;
  EXPECT_EQ(tokenizer::from_json(spec.dump()).encode("abb"), (ids{2, 1}));
}

TEST(synthetic, malformed_files_give_tokenizer_error) {
  EXPECT_THROW(tokenizer::from_json("{"), tokenizer_error);
  EXPECT_THROW(tokenizer::from_json("{}"), tokenizer_error);
  EXPECT_THROW(tokenizer::from_json(R"({"model": {"type": "WordPiece", "vocab": {}}})"), tokenizer_error);
  EXPECT_THROW(tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})"),
               tokenizer_error);
  json bad_regex = sentencepiece_like(json::array());
  bad_regex["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_THROW(tokenizer::from_json(bad_regex.dump()), tokenizer_error);
  EXPECT_THROW(tokenizer::load("/no/such/folder"), tokenizer_error);
}

TEST(synthetic, ill_formed_utf8_becomes_one_replacement_per_maximal_subpart) {
  using tokenizer_detail::sanitize_utf8;
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(sanitize_utf8("\xE4\xBD"), "\xEF\xBF\xBD");                              // truncated 3-byte: one
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(tokenizer_detail::ends_with_incomplete_utf8("a\xF0\x9F"));
  EXPECT_FALSE(tokenizer_detail::ends_with_incomplete_utf8("a\xC3\xA9"));
}

}  // namespace
}  // namespace mlxd
