// The rewards computed from the completion's text alone: a word it contains, and its length.
#include <cmath>
#include <stdexcept>

#include "mlxd/rlhf/rewards.h"

namespace mlxd::rlhf {
namespace {

char fold(char c, bool ignore_case) {
  return ignore_case && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Letters, digits, '_' and every byte of a non-ASCII character continue a word.
bool word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || u == '_' || (u >= '0' && u <= '9') || ((u | 0x20) >= 'a' && (u | 0x20) <= 'z');
}

class contains_reward final : public reward_function {
 public:
  contains_reward(std::string word, bool ignore_case, bool whole_word)
      : word_(std::move(word)), ignore_case_(ignore_case), whole_word_(whole_word) {
    if (word_.empty()) throw std::invalid_argument("[contains reward] the word is empty");
  }

  std::vector<double> score(std::span<const reward_sample> samples) const override {
    std::vector<double> out;
    for (const reward_sample& s : samples) out.push_back(contains(s.completion) ? 1.0 : 0.0);
    return out;
  }

  std::string describe() const override {
    return "contains(\"" + word_ + "\"" + (ignore_case_ ? ", ignore_case" : "") +
           (whole_word_ ? "" : ", substring") + ")";
  }

 private:
  bool contains(const std::string& text) const {
    const size_t n = word_.size();
    for (size_t i = 0; i + n <= text.size(); ++i) {
      size_t k = 0;
      while (k < n && fold(text[i + k], ignore_case_) == fold(word_[k], ignore_case_)) ++k;
      if (k < n) continue;
      if (!whole_word_) return true;
      const bool open = i == 0 || !word_byte(text[i - 1]) || !word_byte(word_.front());
      const bool close = i + n == text.size() || !word_byte(text[i + n]) || !word_byte(word_.back());
      if (open && close) return true;
    }
    return false;
  }

  std::string word_;
  bool ignore_case_, whole_word_;
};

class length_reward final : public reward_function {
 public:
  length_reward(int64_t target, length_unit unit) : target_(target), unit_(unit) {
    if (target_ < 1)
      throw std::invalid_argument("[length reward] target must be >= 1, got " + std::to_string(target));
  }

  std::vector<double> score(std::span<const reward_sample> samples) const override {
    std::vector<double> out;
    for (const reward_sample& s : samples) {
      const double len =
          static_cast<double>(unit_ == length_unit::tokens ? s.completion_tokens : code_points(s.completion));
      out.push_back(-std::fabs(len - static_cast<double>(target_)) / static_cast<double>(target_));
    }
    return out;
  }

  std::string describe() const override {
    return "length(" + std::to_string(target_) + (unit_ == length_unit::tokens ? " tokens)" : " characters)");
  }

 private:
  // Every byte but UTF-8 continuation bytes starts a character (a stray byte counts as one).
  static int64_t code_points(const std::string& s) {
    int64_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  }

  int64_t target_;
  length_unit unit_;
};

}  // namespace

std::unique_ptr<reward_function> make_contains_reward(std::string word, bool ignore_case, bool whole_word) {
  return std::make_unique<contains_reward>(std::move(word), ignore_case, whole_word);
}

std::unique_ptr<reward_function> make_length_reward(int64_t target, length_unit unit) {
  return std::make_unique<length_reward>(target, unit);
}

}  // namespace mlxd::rlhf
