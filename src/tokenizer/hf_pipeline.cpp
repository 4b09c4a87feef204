#include "tokenizer/hf_pipeline.h"

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::tokenizer_detail {

std::vector<int32_t> hf_pipeline::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  size_t section_index = 0;
  for (const auto& section : added->split(text, false)) {
    if (section.id >= 0) {
      ids.push_back(section.id);
      ++section_index;
      continue;
    }
    const std::string normalized = normalizer_step ? normalizer_step->normalize(section.text) : section.text;
    for (const auto& sub : added->split(normalized, true)) {
      if (sub.id >= 0) {
        ids.push_back(sub.id);
        continue;
      }
      pieces.clear();
      if (pre_tokenizer_step) {
        pre_tokenizer_step->pre_tokenize(sub.text, section_index, pieces);
      } else {
        pieces.push_back(sub.text);
      }
      for (const auto& piece : pieces) model->encode(piece, ids);
    }
    ++section_index;
  }
  return post_processor_step ? post_processor_step->process(std::move(ids), add_special_tokens) : ids;
}

std::string hf_pipeline::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const std::string& token = id_to_token[id];
    if (skip_special_tokens && special_contents.contains(token)) continue;
    tokens.push_back(token);
  }
  std::string text;
  if (decoder_step) {
    for (const auto& piece : decoder_step->decode_chain(std::move(tokens))) text += piece;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i > 0 ? " " : "") + tokens[i];
  }
  return text;
}

std::optional<int32_t> hf_pipeline::token_to_id(std::string_view token) const {
  const auto it = token_to_id_map.find(std::string(token));
  if (it == token_to_id_map.end()) return std::nullopt;
  return it->second;
}

const std::string* hf_pipeline::find_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token.size() || !has_token[id]) return nullptr;
  return &id_to_token[id];
}

void hf_pipeline::index_vocabulary() {
  int32_t max_id = -1;
  for (const auto& [token, id] : model->vocab()) max_id = std::max(max_id, id);
  for (const auto& token : added->tokens()) max_id = std::max(max_id, token.id);
  if (max_id < 0) throw tokenizer_error("the vocabulary is empty");
  id_to_token.resize(static_cast<size_t>(max_id) + 1);
  has_token.resize(static_cast<size_t>(max_id) + 1);
  for (const auto& [token, id] : model->vocab()) {
    if (id < 0) throw tokenizer_error("negative token id in vocabulary");
    id_to_token[id] = token;
    has_token[id] = true;
    token_to_id_map.emplace(token, id);
  }
  for (const auto& token : added->tokens()) {
    if (token.id < 0) throw tokenizer_error("negative added token id");
    id_to_token[token.id] = token.content;
    has_token[token.id] = true;
    token_to_id_map[token.content] = token.id;
    added_contents.insert(token.content);
    if (token.special) {
      special_contents.insert(token.content);
      special_ids.insert(token.id);
    }
  }
}

}  // namespace mlxd::tokenizer_detail
