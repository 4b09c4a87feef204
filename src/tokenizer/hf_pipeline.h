// The Hugging Face tokenizer pipeline: added tokens, normalizer, pre-tokenizer, BPE model, post-processor,
// decoder, in that order. Built once from tokenizer.json (build_hf_pipeline) or from a vocabulary given as
// data (build_vocabulary_pipeline), then immutable.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_backend.h"

namespace mlxd::tokenizer_detail {

struct hf_pipeline final : tokenizer_backend {
  std::unique_ptr<added_vocabulary> added;
  std::unique_ptr<normalizer> normalizer_step;        // may be null
  std::unique_ptr<pre_tokenizer> pre_tokenizer_step;  // may be null
  std::unique_ptr<bpe_model> model;
  std::unique_ptr<post_processor> post_processor_step;  // may be null
  std::unique_ptr<decoder> decoder_step;                // may be null: tokens are joined with spaces

  std::vector<std::string> id_to_token;  // [vocab_size]; added tokens override the model's spelling
  std::vector<bool> has_token;           // [vocab_size]; false for ids no token uses
  std::unordered_map<std::string, int32_t> token_to_id_map;  // model vocabulary and added tokens
  std::unordered_set<std::string> added_contents;            // contents of all added tokens
  std::unordered_set<std::string> special_contents;  // special added tokens + additional_special_tokens
  std::unordered_set<int32_t> special_ids;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* find_token(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token.size()); }
  bool is_special(int32_t id) const override { return special_ids.contains(id); }

  // Fills the tables above from the model's vocabulary and the added tokens. Throws tokenizer_error for an
  // empty vocabulary or a negative id.
  void index_vocabulary();
};

// Builds the pipeline of a parsed tokenizer.json; `config` (tokenizer_config.json, null when absent) adds its
// additional_special_tokens to the special tokens. Throws tokenizer_error for malformed or unsupported
// content.
std::unique_ptr<hf_pipeline> build_hf_pipeline(const nlohmann::json& tokenizer_json,
                                               const nlohmann::json& config);

}  // namespace mlxd::tokenizer_detail
