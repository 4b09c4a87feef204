// Decoders of tokenizer.json: turn the token strings of an id sequence back into text. Each step maps a list
// of strings to a list of strings (as the reference's decode_chain does); the results are then joined.
// Implemented: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mlxd::tokenizer_detail {

class decoder {
 public:
  virtual ~decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// Builds the decoder a tokenizer.json "decoder" value describes; nullptr for JSON null. `added_tokens` (the
// contents of the added tokens, which ByteLevel passes through unchanged) must outlive the decoder. Throws
// tokenizer_error for an unknown or unsupported type.
std::unique_ptr<decoder> make_decoder(const nlohmann::json& config,
                                      const std::unordered_set<std::string>* added_tokens);

}  // namespace mlxd::tokenizer_detail
