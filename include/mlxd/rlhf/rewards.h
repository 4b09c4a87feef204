// Programmatic rewards for GRPO/PPO: functions of a completion's decoded text, scored a batch at a time.
//
//   contains  1 when the completion contains `word` (as a whole word unless whole_word is false), else 0
//   length    -|len - target| / target, len in tokens or in characters (Unicode code points)
//   regex     1 when the PCRE2 pattern matches somewhere in the completion, else 0
//   command   a user program run once per batch: one JSON line {"prompt": ..., "completion": ...} per sample
//             on its stdin, one number per line on its stdout, in order
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

namespace mlxd::rlhf {

struct reward_sample {
  std::string prompt;             // the prompt's text
  std::string completion;         // the completion's decoded text (what the reward judges)
  int64_t completion_tokens = 0;  // generated tokens, for length rewards in tokens
};

// A reward function. score is const and may be called from one thread at a time per object.
class reward_function {
 public:
  virtual ~reward_function() = default;
  // One reward per sample, in order. NaN is allowed (GRPO leaves it out of the group's baseline). Throws
  // std::runtime_error when the rewards cannot be computed (a failing command, a regex over its match limit).
  virtual std::vector<double> score(std::span<const reward_sample> samples) const = 0;
  // A short description for logs, e.g. contains("lord", ignore_case).
  virtual std::string describe() const = 0;
};

// Throws std::invalid_argument for an empty word. ignore_case folds ASCII letters only.
std::unique_ptr<reward_function> make_contains_reward(std::string word, bool ignore_case = false,
                                                      bool whole_word = true);
enum class length_unit { tokens, characters };
// Throws std::invalid_argument unless target >= 1.
std::unique_ptr<reward_function> make_length_reward(int64_t target, length_unit unit);
// A PCRE2 pattern in UTF mode (invalid UTF-8 in a completion never matches across the bad bytes). Throws
// std::invalid_argument with PCRE2's message and offset for a pattern that does not compile.
std::unique_ptr<reward_function> make_regex_reward(const std::string& pattern, bool ignore_case = false);
// argv[0] is looked up in PATH; no shell is involved. Each score call runs the command once, in its own
// process group, with stdin/stdout as above and stderr captured. It throws std::runtime_error naming the
// command when it cannot start, exits non-zero or by a signal (with the end of its stderr), prints more or
// fewer lines than samples, prints a line that is not a number (naming the line), or runs longer than
// timeout_s (the process group is killed). Throws std::invalid_argument for an empty argv or timeout_s
// outside (0, 86400].
std::unique_ptr<reward_function> make_command_reward(std::vector<std::string> argv, double timeout_s = 60);

// A reward from its JSON spec, with exactly these keys (others are an error):
//   {"kind": "contains", "word": "lord", "ignore_case": false, "whole_word": true}
//   {"kind": "length", "target": 20, "unit": "tokens" | "characters"}
//   {"kind": "regex", "pattern": "\\bLORD\\b", "ignore_case": false}
//   {"kind": "command", "run": ["python3", "score.py"], "timeout_s": 60}
// Optional keys are those with a default above. Throws std::invalid_argument naming the key and what was
// expected ("reward.word: expected a non-empty string").
std::unique_ptr<reward_function> parse_reward_spec(const nlohmann::json& spec);

}  // namespace mlxd::rlhf
