#include "mlxd/tokenizer/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "mlxd/io/file_text.h"
#include "tokenizer/clean_up.h"
#include "tokenizer/config_files.h"
#include "tokenizer/hf_pipeline.h"
#include "tokenizer/sentencepiece_backend.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocabulary_pipeline.h"

namespace mlxd {
namespace {

using tokenizer_detail::tokenizer_impl;

std::string read_file(const std::filesystem::path& path) {
  auto text = io::read_file(path);
  if (!text) throw tokenizer_error("tokenizer: " + path.string() + ": cannot open");
  return std::move(*text);
}

nlohmann::json parse(std::string_view text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw tokenizer_error("tokenizer: " + what + ": " + e.what());
  }
}

std::string read_beside(const std::filesystem::path& file, const char* name) {
  const std::filesystem::path path = file.parent_path() / name;
  return std::filesystem::exists(path) ? read_file(path) : std::string();
}

bool is_gguf(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

// "add_bos_token": true / false in tokenizer_config.json; `fallback` when absent.
bool config_flag(const nlohmann::json& config, const char* key, bool fallback) {
  if (!config.is_object() || !config.contains(key) || !config[key].is_boolean()) return fallback;
  return config[key].get<bool>();
}

std::shared_ptr<tokenizer_impl> json_tokenizer(std::string_view tokenizer_json,
                                               std::string_view config_json) {
  const nlohmann::json json = parse(tokenizer_json, "tokenizer.json");
  const nlohmann::json config =
      config_json.empty() ? nlohmann::json() : parse(config_json, "tokenizer_config.json");
  try {
    auto impl = std::make_shared<tokenizer_impl>();
    auto pipeline = tokenizer_detail::build_hf_pipeline(json, config);
    impl->settings.unk = pipeline->model->unk_id();
    tokenizer_detail::apply_tokenizer_config(config, *pipeline, impl->settings);
    impl->backend = std::move(pipeline);
    return impl;
  } catch (const nlohmann::json::exception& e) {
    throw tokenizer_error(std::string("tokenizer: malformed tokenizer.json: ") + e.what());
  }
}

std::shared_ptr<tokenizer_impl> sentencepiece_tokenizer(std::string_view model_proto,
                                                        std::string_view config_json) {
  const nlohmann::json config =
      config_json.empty() ? nlohmann::json() : parse(config_json, "tokenizer_config.json");
  auto backend = std::make_unique<tokenizer_detail::sentencepiece_backend>(model_proto);
  auto impl = std::make_shared<tokenizer_impl>();
  auto& settings = impl->settings;
  settings.bos = backend->model_bos();
  if (auto eos = backend->model_eos()) settings.eos.push_back(*eos);
  settings.pad = backend->model_pad();
  settings.unk = backend->model_unk();
  settings.clean_up_tokenization_spaces = false;  // SentencePiece decodes without clean-up
  tokenizer_detail::apply_tokenizer_config(config, *backend, settings);
  // As transformers' LlamaTokenizer: BOS unless add_bos_token is false, EOS only if add_eos_token is true.
  const std::optional<int32_t> eos =
      settings.eos.empty() ? std::nullopt : std::optional(settings.eos.front());
  backend->set_special_tokens_to_add(config_flag(config, "add_bos_token", true) ? settings.bos : std::nullopt,
                                     config_flag(config, "add_eos_token", false) ? eos : std::nullopt);
  impl->backend = std::move(backend);
  return impl;
}

}  // namespace

tokenizer tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  return tokenizer(json_tokenizer(tokenizer_json, config_json));
}

tokenizer tokenizer::from_sentencepiece(std::string_view model_proto, std::string_view config_json) {
  return tokenizer(sentencepiece_tokenizer(model_proto, config_json));
}

tokenizer tokenizer::from_vocabulary(const vocabulary_spec& spec) {
  try {
    return tokenizer(tokenizer_detail::build_from_vocabulary(spec));
  } catch (const nlohmann::json::exception& e) {
    throw tokenizer_error(std::string("tokenizer: malformed vocabulary: ") + e.what());
  }
}

tokenizer tokenizer::load(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path)) {
    file = path / "tokenizer.json";
    if (!std::filesystem::exists(file) && std::filesystem::exists(path / "tokenizer.model")) {
      file = path / "tokenizer.model";
    } else if (!std::filesystem::exists(file)) {
      throw tokenizer_error("tokenizer: " + path.string() + ": has no tokenizer.json or tokenizer.model");
    }
  } else if (is_gguf(path)) {
    throw tokenizer_error("tokenizer: " + path.string() +
                          ": a GGUF file (its tokenizer is read by load_tokenizer of mlxd_tokenizer_gguf)");
  }
  const std::string content = read_file(file);
  const std::string config = read_beside(file, "tokenizer_config.json");
  const std::string generation = read_beside(file, "generation_config.json");
  try {
    const bool sentencepiece = file.extension() == ".model";
    auto impl = sentencepiece ? sentencepiece_tokenizer(content, config) : json_tokenizer(content, config);
    if (!generation.empty()) {
      tokenizer_detail::apply_generation_config(parse(generation, "generation_config.json"), *impl->backend,
                                                impl->settings);
    }
    return tokenizer(std::move(impl));
  } catch (const tokenizer_error& e) {
    throw tokenizer_error(file.string() + ": " + e.what());
  }
}

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->backend->encode(tokenizer_detail::sanitize_utf8(text), add_special_tokens);
}

std::string tokenizer::decode_tokens(std::span<const token_id> ids, const decode_options& options) const {
  for (const token_id id : ids) id_to_token(id);  // validates
  return impl_->backend->decode(ids, options.skip_special_tokens);
}

std::string tokenizer::decode(std::span<const token_id> ids, const decode_options& options) const {
  std::string text = decode_tokens(ids, options);
  if (options.clean_up_tokenization_spaces.value_or(impl_->settings.clean_up_tokenization_spaces)) {
    text = tokenizer_detail::clean_up_tokenization(std::move(text));
  }
  return text;
}

std::string tokenizer::decode(std::span<const token_id> ids, bool skip_special_tokens) const {
  return decode(ids, decode_options{skip_special_tokens, std::nullopt});
}

std::optional<token_id> tokenizer::token_to_id(std::string_view token) const {
  return impl_->backend->token_to_id(token);
}

const std::string& tokenizer::id_to_token(token_id id) const {
  const std::string* token = impl_->backend->find_token(id);
  if (token == nullptr) throw invalid_token_id(id, vocab_size());
  return *token;
}

int64_t tokenizer::vocab_size() const {
  return impl_->backend->vocab_size();
}
bool tokenizer::is_special(token_id id) const {
  return impl_->backend->is_special(id);
}

std::optional<token_id> tokenizer::bos_id() const {
  return impl_->settings.bos;
}
std::optional<token_id> tokenizer::eos_id() const {
  const auto& eos = impl_->settings.eos;
  return eos.empty() ? std::nullopt : std::optional<token_id>(eos.front());
}
std::optional<token_id> tokenizer::pad_id() const {
  return impl_->settings.pad;
}
std::optional<token_id> tokenizer::unk_id() const {
  return impl_->settings.unk;
}
const std::vector<token_id>& tokenizer::eos_ids() const {
  return impl_->settings.eos;
}
const std::string& tokenizer::chat_template() const {
  return impl_->settings.chat_template;
}

}  // namespace mlxd
