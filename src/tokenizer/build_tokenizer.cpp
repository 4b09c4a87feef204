#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"
#include "tokenizer/tokenizer_impl.h"

namespace mlxd::tokenizer_detail {
namespace {

// A config token is "<s>", {"content": "<s>", ...} or null.
std::optional<int32_t> config_token_id(const nlohmann::json& config, const char* key,
                                       const tokenizer_impl& impl) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const auto& value = config[key];
  std::string content;
  if (value.is_string()) {
    content = value.get<std::string>();
  } else if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    content = value["content"].get<std::string>();
  } else {
    return std::nullopt;
  }
  const auto it = impl.token_to_id.find(content);
  if (it == impl.token_to_id.end()) return std::nullopt;
  return it->second;
}

// "chat_template": "..." or [{"name": "default", "template": "..."}, {"name": "tool_use", ...}].
std::optional<std::string> config_chat_template(const nlohmann::json& config) {
  const auto it = config.find("chat_template");
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) return std::nullopt;
  std::optional<std::string> first;
  for (const auto& named : *it) {
    if (!named.is_object() || !named.contains("template") || !named["template"].is_string()) continue;
    if (named.value("name", "") == "default") return named["template"].get<std::string>();
    if (!first) first = named["template"].get<std::string>();
  }
  return first;
}

}  // namespace

std::shared_ptr<const tokenizer_impl> build_tokenizer(const nlohmann::json& json,
                                                      const nlohmann::json& config) {
  if (!json.is_object() || !json.contains("model")) throw tokenizer_error("tokenizer.json has no \"model\"");
  auto impl = std::make_shared<tokenizer_impl>();
  impl->model = std::make_unique<bpe_model>(json["model"]);
  impl->added = std::make_unique<added_vocabulary>(json.value("added_tokens", nlohmann::json::array()));
  impl->normalizer_step = make_normalizer(json.value("normalizer", nlohmann::json()));
  impl->pre_tokenizer_step = make_pre_tokenizer(json.value("pre_tokenizer", nlohmann::json()));
  impl->post_processor_step = make_post_processor(json.value("post_processor", nlohmann::json()));
  impl->decoder_step = make_decoder(json.value("decoder", nlohmann::json()), &impl->added_contents);

  int32_t max_id = -1;
  for (const auto& [token, id] : impl->model->vocab()) max_id = std::max(max_id, id);
  for (const auto& token : impl->added->tokens()) max_id = std::max(max_id, token.id);
  if (max_id < 0) throw tokenizer_error("tokenizer.json has an empty vocabulary");
  impl->id_to_token.resize(static_cast<size_t>(max_id) + 1);
  impl->has_token.resize(static_cast<size_t>(max_id) + 1);
  for (const auto& [token, id] : impl->model->vocab()) {
    if (id < 0) throw tokenizer_error("negative token id in vocabulary");
    impl->id_to_token[id] = token;
    impl->has_token[id] = true;
    impl->token_to_id.emplace(token, id);
  }
  for (const auto& token : impl->added->tokens()) {
    if (token.id < 0) throw tokenizer_error("negative added token id");
    impl->id_to_token[token.id] = token.content;
    impl->has_token[token.id] = true;
    impl->token_to_id[token.content] = token.id;
    impl->added_contents.insert(token.content);
    if (token.special) {
      impl->special_contents.insert(token.content);
      impl->special_ids.insert(token.id);
    }
  }
  impl->unk = impl->model->unk_id();
  if (config.is_object()) {
    for (const auto& extra : config.value("additional_special_tokens", nlohmann::json::array())) {
      if (extra.is_string()) impl->special_contents.insert(extra.get<std::string>());
    }
    const auto clean = config.find("clean_up_tokenization_spaces");
    if (clean != config.end() && clean->is_boolean()) impl->clean_up_tokenization_spaces = clean->get<bool>();
    impl->bos = config_token_id(config, "bos_token", *impl);
    impl->eos = config_token_id(config, "eos_token", *impl);
    impl->pad = config_token_id(config, "pad_token", *impl);
    if (auto unk = config_token_id(config, "unk_token", *impl)) impl->unk = unk;
    impl->chat_template = config_chat_template(config);
  }
  return impl;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<std::string_view, std::string_view> rules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : rules) {
    std::string out;
    out.reserve(text.size());
    size_t last = 0;
    for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, last)) {
      out.append(text, last, pos - last);
      out.append(to);
      last = pos + from.size();
    }
    out.append(text, last);
    text = std::move(out);
  }
  return text;
}

}  // namespace mlxd::tokenizer_detail
