// The {"String": s} / {"Regex": r} patterns of tokenizer.json Replace and Split components.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.h"

namespace mlxd::tokenizer_detail {

class string_pattern {
 public:
  // Throws tokenizer_error if `config` is neither form.
  explicit string_pattern(const nlohmann::json& config);

  // Byte ranges of the non-overlapping matches in `text`, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // `text` with every match replaced by `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::optional<regex> regex_;
};

}  // namespace mlxd::tokenizer_detail
