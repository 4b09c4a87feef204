#include "mlxd/tokenizer/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace mlxd {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw tokenizer_error("tokenizer: " + path.string() + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw tokenizer_error("tokenizer: " + path.string() + ": read failed");
  return std::move(text).str();
}

nlohmann::json parse(std::string_view text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw tokenizer_error("tokenizer: " + what + ": " + e.what());
  }
}

}  // namespace

tokenizer tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  const nlohmann::json json = parse(tokenizer_json, "tokenizer.json");
  const nlohmann::json config =
      config_json.empty() ? nlohmann::json() : parse(config_json, "tokenizer_config.json");
  try {
    return tokenizer(tokenizer_detail::build_tokenizer(json, config));
  } catch (const nlohmann::json::exception& e) {
    throw tokenizer_error(std::string("tokenizer: malformed tokenizer.json: ") + e.what());
  }
}

tokenizer tokenizer::load(const std::filesystem::path& path) {
  const bool folder = std::filesystem::is_directory(path);
  const std::filesystem::path json_path = folder ? path / "tokenizer.json" : path;
  const std::filesystem::path config_path = json_path.parent_path() / "tokenizer_config.json";
  const std::string json = read_file(json_path);
  const std::string config = std::filesystem::exists(config_path) ? read_file(config_path) : std::string();
  try {
    return from_json(json, config);
  } catch (const tokenizer_error& e) {
    throw tokenizer_error(json_path.string() + ": " + e.what());
  }
}

std::vector<token_id> tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const auto& impl = *impl_;
  const std::string clean = tokenizer_detail::sanitize_utf8(text);
  std::vector<token_id> ids;
  std::vector<std::string> pieces;
  size_t section_index = 0;
  for (const auto& section : impl.added->split(clean, false)) {
    if (section.id >= 0) {
      ids.push_back(section.id);
      ++section_index;
      continue;
    }
    const std::string normalized =
        impl.normalizer_step ? impl.normalizer_step->normalize(section.text) : section.text;
    for (const auto& sub : impl.added->split(normalized, true)) {
      if (sub.id >= 0) {
        ids.push_back(sub.id);
        continue;
      }
      pieces.clear();
      if (impl.pre_tokenizer_step) {
        impl.pre_tokenizer_step->pre_tokenize(sub.text, section_index, pieces);
      } else {
        pieces.push_back(sub.text);
      }
      for (const auto& piece : pieces) impl.model->encode(piece, ids);
    }
    ++section_index;
  }
  return impl.post_processor_step ? impl.post_processor_step->process(std::move(ids), add_special_tokens)
                                  : ids;
}

std::string tokenizer::decode_tokens(std::span<const token_id> ids, const decode_options& options) const {
  const auto& impl = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const token_id id : ids) {
    const std::string& token = id_to_token(id);
    if (options.skip_special_tokens && impl.special_contents.contains(token)) continue;
    tokens.push_back(token);
  }
  std::string text;
  if (impl.decoder_step) {
    for (const auto& piece : impl.decoder_step->decode_chain(std::move(tokens))) text += piece;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i > 0 ? " " : "") + tokens[i];
  }
  return text;
}

std::string tokenizer::decode(std::span<const token_id> ids, const decode_options& options) const {
  std::string text = decode_tokens(ids, options);
  if (options.clean_up_tokenization_spaces.value_or(impl_->clean_up_tokenization_spaces)) {
    text = tokenizer_detail::clean_up_tokenization(std::move(text));
  }
  return text;
}

std::string tokenizer::decode(std::span<const token_id> ids, bool skip_special_tokens) const {
  return decode(ids, decode_options{skip_special_tokens, std::nullopt});
}

std::optional<token_id> tokenizer::token_to_id(std::string_view token) const {
  const auto it = impl_->token_to_id.find(std::string(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

const std::string& tokenizer::id_to_token(token_id id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_token.size() || !impl_->has_token[id]) {
    throw invalid_token_id(id, vocab_size());
  }
  return impl_->id_to_token[id];
}

int64_t tokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->id_to_token.size());
}
bool tokenizer::is_special(token_id id) const {
  return impl_->special_ids.contains(id);
}
std::optional<std::string> tokenizer::chat_template() const {
  return impl_->chat_template;
}

std::optional<token_id> tokenizer::bos_id() const {
  return impl_->bos;
}
std::optional<token_id> tokenizer::eos_id() const {
  return impl_->eos;
}
std::optional<token_id> tokenizer::pad_id() const {
  return impl_->pad;
}
std::optional<token_id> tokenizer::unk_id() const {
  return impl_->unk;
}

}  // namespace mlxd
