// Pre-tokenizers of tokenizer.json: cut a normalized section into the pieces the model encodes one by one.
// Implemented: Split (Isolated, Removed; String or Regex pattern), ByteLevel (optionally with GPT-2's regex),
// Metaspace (replacement and prepend_scheme; the whole section stays one piece, as the reference does),
// Sequence.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mlxd::tokenizer_detail {

class pre_tokenizer {
 public:
  virtual ~pre_tokenizer() = default;
  // Appends the pieces of `text` to `out`. `section_index` counts the sections of the input that lie between
  // added tokens (Metaspace's prepend_scheme "first" prepends only in section 0).
  virtual void pre_tokenize(std::string_view text, size_t section_index,
                            std::vector<std::string>& out) const = 0;
};

// Builds the pre-tokenizer a tokenizer.json "pre_tokenizer" value describes; nullptr for JSON null. Throws
// tokenizer_error for an unknown or unsupported type or behavior.
std::unique_ptr<pre_tokenizer> make_pre_tokenizer(const nlohmann::json& config);

}  // namespace mlxd::tokenizer_detail
