// parse_reward_spec: each kind with its defaults and options, and the error for every wrong key or value.
#include <gtest/gtest.h>

#include <stdexcept>

#include "mlxd/rlhf/rewards.h"

namespace mlxd::rlhf {
namespace {

std::string describe(const char* json) {
  return parse_reward_spec(nlohmann::json::parse(json))->describe();
}

std::string error_of(const char* json) {
  try {
    parse_reward_spec(nlohmann::json::parse(json));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(reward_spec, each_kind_with_defaults_and_options) {
  EXPECT_EQ(describe(R"({"kind": "contains", "word": "lord"})"), "contains(\"lord\")");
  EXPECT_EQ(describe(R"({"kind": "contains", "word": "lord", "ignore_case": true, "whole_word": false})"),
            "contains(\"lord\", ignore_case, substring)");
  EXPECT_EQ(describe(R"({"kind": "length", "target": 20})"), "length(20 tokens)");
  EXPECT_EQ(describe(R"({"kind": "length", "target": 7, "unit": "characters"})"), "length(7 characters)");
  EXPECT_EQ(describe(R"({"kind": "regex", "pattern": "^A", "ignore_case": true})"),
            "regex(\"^A\", ignore_case)");
  EXPECT_EQ(describe(R"({"kind": "command", "run": ["python3", "score.py"], "timeout_s": 30})"),
            "command(python3 score.py)");
}

TEST(reward_spec, parsed_rewards_score) {
  const auto f = parse_reward_spec(
      nlohmann::json::parse(R"({"kind": "contains", "word": "LORD", "ignore_case": true})"));
  const std::vector<reward_sample> s = {{"p", "the lord", 2}, {"p", "landlord", 1}};
  EXPECT_EQ(f->score(s), (std::vector<double>{1, 0}));
  const auto g = parse_reward_spec(nlohmann::json::parse(R"({"kind": "length", "target": 2})"));
  EXPECT_EQ(g->score(s), (std::vector<double>{0, -0.5}));
  const auto h = parse_reward_spec(
      nlohmann::json::parse(R"({"kind": "command", "run": ["sh", "-c", "cat >/dev/null; echo 3; echo 4"]})"));
  EXPECT_EQ(h->score(s), (std::vector<double>{3, 4}));
}

TEST(reward_spec, errors_name_the_key) {
  EXPECT_EQ(error_of(R"(["contains"])"), "reward: expected an object with a \"kind\", got [\"contains\"]");
  EXPECT_EQ(error_of(R"({"word": "x"})"), "reward.kind: missing");
  EXPECT_EQ(error_of(R"({"kind": 3})"), "reward.kind: expected a non-empty string, got 3");
  EXPECT_EQ(error_of(R"({"kind": "bleu"})"),
            "reward.kind: unknown kind \"bleu\" (expected contains, length, regex or command)");
  EXPECT_EQ(error_of(R"({"kind": "contains", "word": "x", "case": true})"),
            "reward.case: unknown key for kind \"contains\" (allowed: ignore_case, kind, whole_word, word)");
  EXPECT_EQ(error_of(R"({"kind": "contains"})"), "reward.word: missing");
  EXPECT_EQ(error_of(R"({"kind": "contains", "word": ""})"),
            "reward.word: expected a non-empty string, got \"\"");
  EXPECT_EQ(error_of(R"({"kind": "contains", "word": "x", "ignore_case": "yes"})"),
            "reward.ignore_case: expected true or false, got \"yes\"");
  EXPECT_EQ(error_of(R"({"kind": "length"})"), "reward.target: missing");
  EXPECT_EQ(error_of(R"({"kind": "length", "target": 0})"), "reward.target: expected an integer >= 1, got 0");
  EXPECT_EQ(error_of(R"({"kind": "length", "target": 2.5})"),
            "reward.target: expected an integer >= 1, got 2.5");
  EXPECT_EQ(error_of(R"({"kind": "length", "target": 5, "unit": "words"})"),
            "reward.unit: expected \"tokens\" or \"characters\", got \"words\"");
  EXPECT_EQ(error_of(R"({"kind": "length", "target": 5, "word": "x"})"),
            "reward.word: unknown key for kind \"length\" (allowed: kind, target, unit)");
  EXPECT_NE(error_of(R"j({"kind": "regex", "pattern": "a)"})j")
                .find("reward.pattern: [regex reward] pattern \"a)\" does not compile"),
            std::string::npos);
  EXPECT_EQ(error_of(R"({"kind": "command"})"), "reward.run: missing");
  EXPECT_EQ(error_of(R"({"kind": "command", "run": "python3 score.py"})"),
            "reward.run: expected a non-empty list of strings (the program and its arguments)");
  EXPECT_EQ(error_of(R"({"kind": "command", "run": ["python3", 1]})"),
            "reward.run[1]: expected a string, got 1");
  EXPECT_EQ(error_of(R"({"kind": "command", "run": [""]})"), "reward.run[0]: expected a string, got \"\"");
  EXPECT_EQ(error_of(R"({"kind": "command", "run": ["x"], "timeout_s": 0})"),
            "reward.timeout_s: expected a number of seconds in (0, 86400], got 0");
  EXPECT_EQ(error_of(R"({"kind": "command", "run": ["x"], "timeout_s": 1e300})"),
            "reward.timeout_s: expected a number of seconds in (0, 86400], got 1e+300");
  EXPECT_EQ(error_of(R"({"kind": "command", "run": ["x"], "timeout_s": "30"})"),
            "reward.timeout_s: expected a number of seconds in (0, 86400], got \"30\"");
}

}  // namespace
}  // namespace mlxd::rlhf
