#include "mlxd/tokenizer_gguf/gguf_tokenizer_export.h"

#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "mlxd/io/file_text.h"
#include "mlxd/tokenizer/tokenizer_error.h"
#include "sentencepiece_export.h"

namespace mlxd {
namespace {

using json = nlohmann::json;

// llama.cpp's token types.
constexpr int32_t type_normal = 1, type_control = 3, type_user_defined = 4;

json read_json(const std::filesystem::path& path) {
  const auto text = io::read_file(path);
  if (!text) throw tokenizer_error("cannot read " + path.string());
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    throw tokenizer_error(path.string() + ": " + e.what());
  }
}

// The GGUF pre name of a byte-level pre-tokenizer: ByteLevel with its own regex is GPT-2's; a Split on the
// Llama-3 or Qwen2 pattern followed by ByteLevel without regex is those.
std::string pre_name(const json& pre) {
  if (pre.is_object() && pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true) &&
      !pre.value("add_prefix_space", false))
    return "gpt2";
  static const std::map<std::string, std::string> patterns = {
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       "llama-bpe"},
      {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
       "qwen2"}};
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
    const json& split = pre["pretokenizers"][0];
    const json& bytes = pre["pretokenizers"][1];
    if (split.value("type", "") == "Split" && split.contains("pattern") && split["pattern"].is_object() &&
        split["pattern"].contains("Regex") && split["pattern"]["Regex"].is_string() &&
        bytes.value("type", "") == "ByteLevel" && !bytes.value("use_regex", true)) {
      auto it = patterns.find(split["pattern"]["Regex"].get<std::string>());
      if (it != patterns.end()) return it->second;
    }
  }
  throw tokenizer_error("the pre-tokenizer " + pre.dump().substr(0, 200) +
                        " has no GGUF name (supported: GPT-2's ByteLevel, the Llama-3 and Qwen2 splits)");
}

// A special token of tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> token_text(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

void add_gguf_tokenizer(const std::filesystem::path& folder, gguf_metadata& metadata) {
  const json config = std::filesystem::exists(folder / "tokenizer_config.json")
                          ? read_json(folder / "tokenizer_config.json")
                          : json::object();
  if (!std::filesystem::exists(folder / "tokenizer.json") &&
      std::filesystem::exists(folder / "tokenizer.model")) {
    const std::filesystem::path path = folder / "tokenizer.model";
    const auto bytes = io::read_file(path);
    if (!bytes) throw tokenizer_error("cannot read " + path.string());
    gguf_metadata out = metadata;
    detail::add_sentencepiece_tokenizer(*bytes, path.string(), out);
    if (config.contains("chat_template") && config["chat_template"].is_string())
      out.set("tokenizer.chat_template", config["chat_template"].get<std::string>());
    metadata = std::move(out);
    return;
  }
  const json tok = read_json(folder / "tokenizer.json");
  const json& model = tok.at("model");
  if (model.value("type", "") != "BPE" || !model.contains("vocab") || !model["vocab"].is_object())
    throw tokenizer_error("only byte-level BPE tokenizers go into GGUF here (model type " +
                          model.value("type", std::string("?")) + ")");
  // GGUF's byte-level model has no normalizer of its own; its "qwen2" pre-tokenizer implies NFC.
  const json normalizer = tok.value("normalizer", json());
  const bool nfc = normalizer.is_object() && normalizer.value("type", "") == "NFC";
  if (!normalizer.is_null() && !nfc)
    throw tokenizer_error("GGUF's byte-level model has no normalizer like tokenizer.json's " +
                          normalizer.dump().substr(0, 200));
  const std::string pre = pre_name(tok.value("pre_tokenizer", json()));
  if (nfc && pre != "qwen2")
    throw tokenizer_error("an NFC normalizer goes with the Qwen2 split only in GGUF");

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  auto place = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id > INT32_MAX) throw tokenizer_error("token id " + std::to_string(id) + " out of range");
    if (tokens.size() <= static_cast<size_t>(id)) tokens.resize(id + 1), types.resize(id + 1, 0);
    tokens[id] = text;
    types[id] = type;
  };
  for (const auto& [text, id] : model["vocab"].items()) place(id.get<int64_t>(), text, type_normal);
  std::map<std::string, int32_t> ids;
  if (tok.contains("added_tokens")) {
    for (const json& a : tok["added_tokens"]) {
      const std::string text = a.at("content").get<std::string>();
      place(a.at("id").get<int64_t>(), text, a.value("special", false) ? type_control : type_user_defined);
    }
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == 0) throw tokenizer_error("the vocabulary has no token with id " + std::to_string(i));
    ids[tokens[i]] = static_cast<int32_t>(i);
  }
  // Merges are "a b" strings or [a, b] pairs (newer files); GGUF holds the strings.
  std::vector<std::string> merges;
  for (const json& m : model.value("merges", json::array())) {
    if (m.is_string())
      merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2)
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    else
      throw tokenizer_error("a merge is neither \"a b\" nor [a, b]: " + m.dump());
  }

  gguf_metadata out = metadata;
  out.set("tokenizer.ggml.model", "gpt2");
  out.set("tokenizer.ggml.pre", pre);
  out.set("tokenizer.ggml.tokens", gguf_value::array_of(gguf_type::string, tokens));
  out.set("tokenizer.ggml.token_type", gguf_value::array_of(gguf_type::i32, types));
  out.set("tokenizer.ggml.merges", gguf_value::array_of(gguf_type::string, merges));
  const std::pair<const char*, const char*> specials[] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                                          {"eos_token", "tokenizer.ggml.eos_token_id"},
                                                          {"pad_token", "tokenizer.ggml.padding_token_id"},
                                                          {"unk_token", "tokenizer.ggml.unknown_token_id"}};
  for (const auto& [key, gguf_key] : specials) {
    const auto text = token_text(config, key);
    if (!text) continue;
    auto it = ids.find(*text);
    if (it == ids.end())
      throw tokenizer_error(std::string(key) + " \"" + *text + "\" is not in the vocabulary");
    out.set(gguf_key, gguf_value(static_cast<uint32_t>(it->second)));
  }
  // A post-processor whose template starts (ends) with a special token is how tokenizer.json files add BOS
  // (EOS); as when loading tokenizer.json, add_bos_token of tokenizer_config.json does not count.
  const json post = tok.value("post_processor", json());
  bool add_bos = false, add_eos = false;
  if (post.is_object() && post.value("type", "") == "TemplateProcessing") {
    const json single = post.value("single", json::array());
    auto special_id = [&](const json& piece) -> std::optional<int32_t> {
      if (!piece.is_object() || !piece.contains("SpecialToken")) return std::nullopt;
      const std::string text = piece["SpecialToken"].value("id", "");
      auto it = ids.find(text);
      if (it == ids.end())
        throw tokenizer_error("the post-processor adds \"" + text + "\", not in the vocabulary");
      return it->second;
    };
    if (single.is_array() && !single.empty()) {
      if (const auto bos = special_id(single.front())) {
        out.set("tokenizer.ggml.bos_token_id", gguf_value(static_cast<uint32_t>(*bos)));
        add_bos = true;
      }
      if (const auto eos = special_id(single.back())) {
        out.set("tokenizer.ggml.eos_token_id", gguf_value(static_cast<uint32_t>(*eos)));
        add_eos = true;
      }
    }
  } else if (post.is_object() && post.value("type", "") != "ByteLevel") {
    throw tokenizer_error("the post-processor " + post.value("type", std::string("?")) + " has no GGUF form");
  }
  out.set("tokenizer.ggml.add_bos_token", gguf_value(add_bos));
  out.set("tokenizer.ggml.add_eos_token", gguf_value(add_eos));
  if (config.contains("chat_template") && config["chat_template"].is_string())
    out.set("tokenizer.chat_template", config["chat_template"].get<std::string>());
  metadata = std::move(out);
}

}  // namespace mlxd
