#include "tokenizer/config_files.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "mlxd/tokenizer/tokenizer_error.h"

namespace mlxd::tokenizer_detail {
namespace {

// A config token is "<s>", {"content": "<s>", ...} or null.
std::optional<int32_t> config_token_id(const nlohmann::json& value, const tokenizer_backend& vocabulary) {
  if (value.is_string()) return vocabulary.token_to_id(value.get<std::string>());
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return vocabulary.token_to_id(value["content"].get<std::string>());
  }
  return std::nullopt;
}

int32_t generation_id(const nlohmann::json& value, const char* key, const tokenizer_backend& vocabulary) {
  if (!value.is_number_integer()) {
    throw tokenizer_error(std::string("generation_config.json: ") + key + " must be a token id, got " +
                          value.dump());
  }
  const auto id = value.get<int64_t>();
  if (id < 0 || id > INT32_MAX || vocabulary.find_token(static_cast<int32_t>(id)) == nullptr) {
    throw tokenizer_error(std::string("generation_config.json: ") + key + " " + std::to_string(id) +
                          " is not in the vocabulary (size " + std::to_string(vocabulary.vocab_size()) + ")");
  }
  return static_cast<int32_t>(id);
}

}  // namespace

void apply_tokenizer_config(const nlohmann::json& config, const tokenizer_backend& vocabulary,
                            tokenizer_settings& settings) {
  if (!config.is_object()) return;
  if (config.contains("bos_token")) settings.bos = config_token_id(config["bos_token"], vocabulary);
  if (config.contains("eos_token")) {
    settings.eos.clear();
    if (auto eos = config_token_id(config["eos_token"], vocabulary)) settings.eos.push_back(*eos);
  }
  if (config.contains("pad_token")) settings.pad = config_token_id(config["pad_token"], vocabulary);
  if (config.contains("unk_token")) {
    if (auto unk = config_token_id(config["unk_token"], vocabulary)) settings.unk = unk;
  }
  const auto clean = config.find("clean_up_tokenization_spaces");
  if (clean != config.end() && clean->is_boolean())
    settings.clean_up_tokenization_spaces = clean->get<bool>();
  const auto chat = config.find("chat_template");
  if (chat != config.end() && chat->is_string()) settings.chat_template = chat->get<std::string>();
  if (chat != config.end() && chat->is_array()) {
    // Several named templates: [{"name": "default", "template": "..."}, {"name": "tool_use", ...}].
    for (const auto& named : *chat) {
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
          named["template"].is_string()) {
        settings.chat_template = named["template"].get<std::string>();
      }
    }
  }
}

void apply_generation_config(const nlohmann::json& config, const tokenizer_backend& vocabulary,
                             tokenizer_settings& settings) {
  if (!config.is_object()) throw tokenizer_error("generation_config.json is not a JSON object");
  const auto bos = config.find("bos_token_id");
  if (bos != config.end() && !bos->is_null()) {
    const int32_t id = generation_id(*bos, "bos_token_id", vocabulary);
    if (!settings.bos) settings.bos = id;
  }
  const auto eos = config.find("eos_token_id");
  if (eos == config.end() || eos->is_null()) return;
  std::vector<int32_t> ids;
  if (eos->is_array()) {
    for (const auto& item : *eos) ids.push_back(generation_id(item, "eos_token_id", vocabulary));
  } else {
    ids.push_back(generation_id(*eos, "eos_token_id", vocabulary));
  }
  for (const int32_t id : ids) {
    if (std::find(settings.eos.begin(), settings.eos.end(), id) == settings.eos.end())
      settings.eos.push_back(id);
  }
}

}  // namespace mlxd::tokenizer_detail
