#include "tokenizer/string_pattern.h"

#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::tokenizer_detail {

string_pattern::string_pattern(const nlohmann::json& config) {
  if (config.is_object() && config.contains("String") && config["String"].is_string()) {
    literal_ = config["String"].get<std::string>();
    if (literal_.empty()) throw tokenizer_error("empty String pattern");
  } else if (config.is_object() && config.contains("Regex") && config["Regex"].is_string()) {
    regex_.emplace(config["Regex"].get<std::string>());
  } else {
    throw tokenizer_error("pattern must be {\"String\": ...} or {\"Regex\": ...}, got " + config.dump());
  }
}

std::vector<std::pair<size_t, size_t>> string_pattern::find_all(std::string_view text) const {
  if (regex_) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t pos = text.find(literal_); pos != std::string_view::npos; pos = text.find(literal_, pos)) {
    matches.emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
  return matches;
}

std::string string_pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (const auto& [begin, end] : find_all(text)) {
    out.append(text.substr(last, begin - last));
    out.append(content);
    last = end;
  }
  out.append(text.substr(last));
  return out;
}

}  // namespace mlxd::tokenizer_detail
