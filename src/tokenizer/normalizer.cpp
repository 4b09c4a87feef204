#include "tokenizer/normalizer.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <climits>
#include <nlohmann/json.hpp>
#include <vector>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/string_pattern.h"

namespace mlxd::tokenizer_detail {
namespace {

class unicode_form final : public normalizer {
 public:
  explicit unicode_form(const std::string& type) {
    UErrorCode status = U_ZERO_ERROR;
    if (type == "NFC") form_ = icu::Normalizer2::getNFCInstance(status);
    if (type == "NFD") form_ = icu::Normalizer2::getNFDInstance(status);
    if (type == "NFKC") form_ = icu::Normalizer2::getNFKCInstance(status);
    if (type == "NFKD") form_ = icu::Normalizer2::getNFKDInstance(status);
    if (U_FAILURE(status) || form_ == nullptr) throw tokenizer_error("ICU has no " + type + " normalizer");
  }
  std::string normalize(std::string_view text) const override {
    if (text.size() > static_cast<size_t>(INT32_MAX))
      throw tokenizer_error("text over 2 GiB cannot be normalized");
    const icu::UnicodeString in =
        icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
    UErrorCode status = U_ZERO_ERROR;
    const icu::UnicodeString normalized = form_->normalize(in, status);
    if (U_FAILURE(status))
      throw tokenizer_error(std::string("Unicode normalization failed: ") + u_errorName(status));
    std::string out;
    normalized.toUTF8String(out);
    return out;
  }

 private:
  const icu::Normalizer2* form_ = nullptr;  // owned by ICU, immutable and thread-safe
};

class prepend final : public normalizer {
 public:
  explicit prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text) const override { return prefix_ + std::string(text); }

 private:
  std::string prefix_;
};

class replace final : public normalizer {
 public:
  replace(const nlohmann::json& pattern, std::string content)
      : pattern_(pattern), content_(std::move(content)) {}
  std::string normalize(std::string_view text) const override { return pattern_.replace_all(text, content_); }

 private:
  string_pattern pattern_;
  std::string content_;
};

class sequence final : public normalizer {
 public:
  explicit sequence(std::vector<std::unique_ptr<normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string out(text);
    for (const auto& step : steps_) out = step->normalize(out);
    return out;
  }

 private:
  std::vector<std::unique_ptr<normalizer>> steps_;
};

}  // namespace

std::unique_ptr<normalizer> make_normalizer(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD")
    return std::make_unique<unicode_form>(type);
  if (type == "Prepend") return std::make_unique<prepend>(config.at("prepend").get<std::string>());
  if (type == "Replace") return std::make_unique<replace>(config.at("pattern"), config.value("content", ""));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<normalizer>> steps;
    for (const auto& step : config.at("normalizers")) {
      if (auto built = make_normalizer(step)) steps.push_back(std::move(built));
    }
    return std::make_unique<sequence>(std::move(steps));
  }
  throw tokenizer_error("unsupported normalizer type '" + type + "'");
}

}  // namespace mlxd::tokenizer_detail
