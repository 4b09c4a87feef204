// The parts of a loaded tokenizer, in pipeline order. Built once by load_tokenizer_json, then immutable.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"

namespace mlxd::tokenizer_detail {

struct tokenizer_impl {
  std::unique_ptr<added_vocabulary> added;
  std::unique_ptr<normalizer> normalizer_step;        // may be null
  std::unique_ptr<pre_tokenizer> pre_tokenizer_step;  // may be null
  std::unique_ptr<bpe_model> model;
  std::unique_ptr<post_processor> post_processor_step;  // may be null
  std::unique_ptr<decoder> decoder_step;                // may be null: tokens are joined with spaces

  std::vector<std::string> id_to_token;  // [vocab_size]; added tokens override the model's spelling
  std::vector<bool> has_token;           // [vocab_size]; false for ids no token uses
  std::unordered_map<std::string, int32_t> token_to_id;  // model vocabulary and added tokens
  std::unordered_set<std::string> added_contents;        // contents of all added tokens
  std::unordered_set<std::string> special_contents;      // special added tokens + additional_special_tokens
  std::unordered_set<int32_t> special_ids;

  bool clean_up_tokenization_spaces = true;
  std::optional<int32_t> bos, eos, pad, unk;
  std::optional<std::string> chat_template;
};

// Builds a tokenizer from parsed tokenizer.json and tokenizer_config.json (null when absent). Throws
// tokenizer_error for malformed or unsupported content.
std::shared_ptr<const tokenizer_impl> build_tokenizer(const nlohmann::json& tokenizer_json,
                                                      const nlohmann::json& config_json);

// " ." -> "." and the other clean-ups of transformers' clean_up_tokenization.
std::string clean_up_tokenization(std::string text);

}  // namespace mlxd::tokenizer_detail
