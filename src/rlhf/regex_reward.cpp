// The regex reward, on PCRE2 (the engine the tokenizer already uses): compiled once, matched per completion.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "mlxd/rlhf/rewards.h"

namespace mlxd::rlhf {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buffer), n);
}

class regex_reward final : public reward_function {
 public:
  regex_reward(std::string pattern, bool ignore_case)
      : pattern_(std::move(pattern)), ignore_case_(ignore_case) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    // MATCH_INVALID_UTF: completions are model output, so ill-formed UTF-8 must not be an error. UCP: \w,
    // \b and \d know non-ASCII letters and digits.
    const uint32_t flags =
        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (ignore_case ? PCRE2_CASELESS : 0u);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(), flags,
                                     &error, &offset, nullptr);
    if (code == nullptr) {
      throw std::invalid_argument("[regex reward] pattern \"" + pattern_ + "\" does not compile at offset " +
                                  std::to_string(offset) + ": " + pcre2_message(error));
    }
    code_.reset(code);
  }

  std::vector<double> score(std::span<const reward_sample> samples) const override {
    const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), &pcre2_match_data_free);
    if (!data) throw std::runtime_error("[regex reward] out of memory for match data");
    std::vector<double> out;
    for (size_t i = 0; i < samples.size(); ++i) {
      const std::string& text = samples[i].completion;
      const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0,
                                 data.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) {
        out.push_back(0.0);
      } else if (rc >= 0) {
        out.push_back(1.0);
      } else {
        throw std::runtime_error("[regex reward] matching \"" + pattern_ + "\" against completion " +
                                 std::to_string(i) + " failed: " + pcre2_message(rc));
      }
    }
    return out;
  }

  std::string describe() const override {
    return "regex(\"" + pattern_ + "\"" + (ignore_case_ ? ", ignore_case)" : ")");
  }

 private:
  struct code_free {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  std::string pattern_;
  bool ignore_case_;
  std::unique_ptr<pcre2_code, code_free> code_;
};

}  // namespace

std::unique_ptr<reward_function> make_regex_reward(const std::string& pattern, bool ignore_case) {
  return std::make_unique<regex_reward>(pattern, ignore_case);
}

}  // namespace mlxd::rlhf
