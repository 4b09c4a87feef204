#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/string_pattern.h"

namespace mlxd::tokenizer_detail {
namespace {

// GPT-2's split, used by ByteLevel when use_regex is true.
constexpr const char* gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class split final : public pre_tokenizer {
 public:
  explicit split(const nlohmann::json& config)
      : pattern_(config.at("pattern")), invert_(config.value("invert", false)) {
    const std::string behavior = config.value("behavior", "Isolated");
    if (behavior == "Removed") {
      keep_matches_ = false;
    } else if (behavior != "Isolated") {
      throw tokenizer_error("unsupported Split behavior '" + behavior + "'");
    }
  }
  void pre_tokenize(std::string_view text, size_t, std::vector<std::string>& out) const override {
    size_t last = 0;
    for (const auto& [begin, end] : pattern_.find_all(text)) {
      if (!invert_ && begin > last) out.emplace_back(text.substr(last, begin - last));
      if (invert_ || keep_matches_) out.emplace_back(text.substr(begin, end - begin));
      last = end;
    }
    if (!invert_ && last < text.size()) out.emplace_back(text.substr(last));
  }

 private:
  string_pattern pattern_;
  bool invert_;  // the pieces are the matches alone
  bool keep_matches_ = true;
};

class byte_level final : public pre_tokenizer {
 public:
  explicit byte_level(const nlohmann::json& config)
      : add_prefix_space_(config.value("add_prefix_space", false)) {
    if (config.value("use_regex", true)) regex_.emplace(gpt2_pattern);
  }
  void pre_tokenize(std::string_view text, size_t, std::vector<std::string>& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && (text.empty() || text.front() != ' ')) {
      prefixed.reserve(text.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(text);
      text = prefixed;
    }
    if (!regex_) {
      out.push_back(bytes_to_unicode(text));
      return;
    }
    for (const auto& [begin, end] : regex_->find_all(text))
      out.push_back(bytes_to_unicode(text.substr(begin, end - begin)));
  }

 private:
  bool add_prefix_space_;
  std::optional<regex> regex_;
};

class metaspace final : public pre_tokenizer {
 public:
  explicit metaspace(const nlohmann::json& config)
      : replacement_(config.value("replacement", "\u2581")),
        scheme_(config.value("prepend_scheme", "always")) {
    if (scheme_ != "always" && scheme_ != "first" && scheme_ != "never") {
      throw tokenizer_error("unsupported Metaspace prepend_scheme '" + scheme_ + "'");
    }
  }
  void pre_tokenize(std::string_view text, size_t section_index,
                    std::vector<std::string>& out) const override {
    std::string piece;
    for (char c : text) {
      if (c == ' ') {
        piece += replacement_;
      } else {
        piece.push_back(c);
      }
    }
    const bool prepend = scheme_ == "always" || (scheme_ == "first" && section_index == 0);
    if (prepend && !piece.starts_with(replacement_)) piece = replacement_ + piece;
    out.push_back(std::move(piece));
  }

 private:
  std::string replacement_;
  std::string scheme_;
};

class sequence final : public pre_tokenizer {
 public:
  explicit sequence(std::vector<std::unique_ptr<pre_tokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::string_view text, size_t section_index,
                    std::vector<std::string>& out) const override {
    std::vector<std::string> pieces{std::string(text)};
    for (const auto& step : steps_) {
      std::vector<std::string> next;
      for (const auto& piece : pieces) step->pre_tokenize(piece, section_index, next);
      pieces = std::move(next);
    }
    for (auto& piece : pieces) out.push_back(std::move(piece));
  }

 private:
  std::vector<std::unique_ptr<pre_tokenizer>> steps_;
};

}  // namespace

std::unique_ptr<pre_tokenizer> make_pre_tokenizer(const nlohmann::json& config) {
  if (config.is_null()) return nullptr;
  const std::string type = config.value("type", "");
  if (type == "Split") return std::make_unique<split>(config);
  if (type == "ByteLevel") return std::make_unique<byte_level>(config);
  if (type == "Metaspace") return std::make_unique<metaspace>(config);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<pre_tokenizer>> steps;
    for (const auto& step : config.at("pretokenizers")) {
      if (auto built = make_pre_tokenizer(step)) steps.push_back(std::move(built));
    }
    return std::make_unique<sequence>(std::move(steps));
  }
  throw tokenizer_error("unsupported pre_tokenizer type '" + type + "'");
}

}  // namespace mlxd::tokenizer_detail
