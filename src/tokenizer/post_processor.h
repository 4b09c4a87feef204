// Post-processors of tokenizer.json: add the special tokens (BOS/EOS) around an encoded sequence when
// add_special_tokens is set. Implemented: TemplateProcessing (single-sequence template), ByteLevel (changes
// only offsets, so nothing here), Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mlxd::tokenizer_detail {

class post_processor {
 public:
  virtual ~post_processor() = default;
  virtual std::vector<int32_t> process(std::vector<int32_t> ids, bool add_special_tokens) const = 0;
};

// Builds the post-processor a tokenizer.json "post_processor" value describes; nullptr for JSON null. Throws
// tokenizer_error for an unknown type or a template that names an undeclared special token.
std::unique_ptr<post_processor> make_post_processor(const nlohmann::json& config);

}  // namespace mlxd::tokenizer_detail
