// The configuration files beside a tokenizer: tokenizer_config.json (special tokens by name, clean-up,
// chat template) and generation_config.json (BOS/EOS ids). They fill tokenizer_settings, whatever the kind of
// tokenizer.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/tokenizer_backend.h"

namespace mlxd::tokenizer_detail {

// Applies a parsed tokenizer_config.json (null: none). bos_token, eos_token and pad_token, when present,
// replace the setting with the id of the token they name (none when it is null or not in the vocabulary);
// unk_token replaces it only when it names a token; clean_up_tokenization_spaces and chat_template replace
// theirs when given.
void apply_tokenizer_config(const nlohmann::json& config, const tokenizer_backend& vocabulary,
                            tokenizer_settings& settings);

// Applies a parsed generation_config.json: bos_token_id fills bos when the tokenizer has none; eos_token_id
// (an id or a list) fills eos when empty and adds the other ids to eos. Throws tokenizer_error naming the key
// when a value is not an integer (or a list of them) or names no token of `vocabulary`.
void apply_generation_config(const nlohmann::json& config, const tokenizer_backend& vocabulary,
                             tokenizer_settings& settings);

}  // namespace mlxd::tokenizer_detail
