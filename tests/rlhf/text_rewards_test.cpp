// The text rewards against values worked out by hand: whole words, case folding, lengths in tokens and
// characters, regex matches, and their errors.
#include <gtest/gtest.h>

#include <stdexcept>

#include "mlxd/rlhf/rewards.h"

namespace mlxd::rlhf {
namespace {

std::vector<double> score(const reward_function& f, const std::vector<std::string>& completions,
                          const std::vector<int64_t>& tokens = {}) {
  std::vector<reward_sample> samples;
  for (size_t i = 0; i < completions.size(); ++i)
    samples.push_back({"the prompt", completions[i], tokens.empty() ? 0 : tokens[i]});
  return f.score(samples);
}

const std::vector<std::string> kTexts = {
    "The LORD said", "lordship is not it", "my lord.", "Lord", "overlord", "lordé", "(lord)", ""};

TEST(contains_reward, whole_words_by_default_exact_case) {
  const auto f = make_contains_reward("lord");
  EXPECT_EQ(score(*f, kTexts), (std::vector<double>{0, 0, 1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(f->describe(), "contains(\"lord\")");
}

TEST(contains_reward, ignore_case_folds_ascii) {
  const auto f = make_contains_reward("lord", true);
  EXPECT_EQ(score(*f, kTexts), (std::vector<double>{1, 0, 1, 1, 0, 0, 1, 0}));
  EXPECT_EQ(score(*f, {"LÖRD lörd"}), std::vector<double>{0});
}

TEST(contains_reward, substring_matches_inside_words) {
  const auto f = make_contains_reward("lord", false, false);
  EXPECT_EQ(score(*f, kTexts), (std::vector<double>{0, 1, 1, 0, 1, 1, 1, 0}));
}

TEST(contains_reward, a_later_whole_word_is_found_after_a_partial_one) {
  const auto f = make_contains_reward("lord");
  EXPECT_EQ(score(*f, {"lordlord lord", "lords, lord_x"}), (std::vector<double>{1, 0}));
  // Punctuation at the word's own edge needs no boundary there.
  EXPECT_EQ(score(*make_contains_reward("42."), {"x=42.5"}), std::vector<double>{1});
}

TEST(contains_reward, empty_word_is_refused) {
  EXPECT_THROW(make_contains_reward(""), std::invalid_argument);
}

TEST(length_reward, tokens_and_characters) {
  const auto tokens = make_length_reward(4, length_unit::tokens);
  EXPECT_EQ(score(*tokens, {"a", "b", "c", "d"}, {4, 2, 8, 0}), (std::vector<double>{0, -0.5, -1, -1}));
  const auto chars = make_length_reward(5, length_unit::characters);
  // "héllo" is 6 bytes but 5 characters; the emoji is one character of 4 bytes.
  EXPECT_EQ(score(*chars, {"héllo", "hello world", "\xF0\x9F\x99\x82", ""}),
            (std::vector<double>{0, -1.2, -0.8, -1}));
  EXPECT_EQ(chars->describe(), "length(5 characters)");
  EXPECT_THROW(make_length_reward(0, length_unit::tokens), std::invalid_argument);
}

TEST(regex_reward, matches_anywhere_with_optional_case_folding) {
  const auto f = make_regex_reward("\\bLORD\\b");
  EXPECT_EQ(score(*f, kTexts), (std::vector<double>{1, 0, 0, 0, 0, 0, 0, 0}));
  // \\w is Unicode-aware: "é" continues the word.
  const auto g = make_regex_reward("^lord\\w*$", true);
  EXPECT_EQ(score(*g, {"Lord", "LORDé", "lord words", ""}), (std::vector<double>{1, 1, 0, 0}));
  EXPECT_EQ(g->describe(), "regex(\"^lord\\w*$\", ignore_case)");
}

TEST(regex_reward, ill_formed_utf8_in_a_completion_is_not_an_error) {
  const auto f = make_regex_reward("ab");
  EXPECT_EQ(score(*f, {"\xff"
                       "ab\xc3",
                       "a\xff"
                       "b"}),
            (std::vector<double>{1, 0}));
}

TEST(regex_reward, bad_pattern_and_runaway_match_are_named) {
  try {
    make_regex_reward("ab(c");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("pattern \"ab(c\" does not compile at offset 4"), std::string::npos)
        << e.what();
  }
  const auto f = make_regex_reward("^(a|aa)+$");
  try {
    score(*f, {"ok", std::string(60, 'a') + "b"});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("completion 1 failed: match limit exceeded"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mlxd::rlhf
