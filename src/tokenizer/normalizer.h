// Normalizers of tokenizer.json: rewrite the text of each section between added tokens before
// pre-tokenization. Implemented: NFC, NFD, NFKC, NFKD (ICU), Prepend, Replace (String or Regex pattern),
// Sequence.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace mlxd::tokenizer_detail {

class normalizer {
 public:
  virtual ~normalizer() = default;
  // `text` is valid UTF-8; so is the result.
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds the normalizer a tokenizer.json "normalizer" value describes; nullptr for JSON null. Throws
// tokenizer_error for an unknown or unsupported type.
std::unique_ptr<normalizer> make_normalizer(const nlohmann::json& config);

}  // namespace mlxd::tokenizer_detail
