#include "mlxd/tokenizer_gguf/gguf_tokenizer.h"

#include <fstream>

namespace mlxd {
namespace {

// Integers of any GGUF integer type (converters write u32 ids, some i32 or u64).
std::optional<int64_t> as_integer(const gguf_value& v) {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, uint64_t>) {
            if (x > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
          }
          return static_cast<int64_t>(x);
        } else {
          return std::nullopt;
        }
      },
      v.value());
}

[[noreturn]] void wrong_type(std::string_view key, const gguf_value& v, std::string_view wanted) {
  throw tokenizer_error("tokenizer: " + std::string(key) + " must be " + std::string(wanted) + ", got " +
                        std::string(gguf_type_name(v.type())));
}

const gguf_array* find_array(const gguf_metadata& metadata, std::string_view key, gguf_type element,
                             std::string_view wanted) {
  const gguf_value* v = metadata.find(key);
  if (v == nullptr) return nullptr;
  const auto* array = std::get_if<gguf_array>(&v->value());
  if (array == nullptr || (array->type != element && !array->values.empty())) wrong_type(key, *v, wanted);
  return array;
}

std::optional<token_id> find_id(const gguf_metadata& metadata, std::string_view key) {
  const gguf_value* v = metadata.find(key);
  if (v == nullptr) return std::nullopt;
  const auto id = as_integer(*v);
  if (!id) wrong_type(key, *v, "an integer token id");
  if (*id < 0 || *id > INT32_MAX) {
    throw tokenizer_error("tokenizer: " + std::string(key) + " " + std::to_string(*id) +
                          " is not a token id");
  }
  return static_cast<token_id>(*id);
}

std::optional<bool> find_bool(const gguf_metadata& metadata, std::string_view key) {
  const gguf_value* v = metadata.find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type() != gguf_type::boolean) wrong_type(key, *v, "a bool");
  return v->as<bool>();
}

std::string find_string(const gguf_metadata& metadata, std::string_view key) {
  const gguf_value* v = metadata.find(key);
  if (v == nullptr) return {};
  if (v->type() != gguf_type::string) wrong_type(key, *v, "a string");
  return v->as<std::string>();
}

}  // namespace

vocabulary_spec read_gguf_vocabulary(const gguf_metadata& metadata) {
  if (!metadata.contains("tokenizer.ggml.model")) {
    throw tokenizer_error("tokenizer: the GGUF metadata has no tokenizer (no tokenizer.ggml.model)");
  }
  vocabulary_spec spec;
  const std::string model = find_string(metadata, "tokenizer.ggml.model");
  if (model == "gpt2") {
    spec.model = vocabulary_model::byte_level_bpe;
  } else if (model == "llama") {
    spec.model = vocabulary_model::sentencepiece_bpe;
  } else {
    throw tokenizer_error("tokenizer: unsupported tokenizer.ggml.model '" + model +
                          "' (supported: gpt2, llama)");
  }
  const gguf_array* tokens =
      find_array(metadata, "tokenizer.ggml.tokens", gguf_type::string, "an array of strings");
  if (tokens == nullptr) throw tokenizer_error("tokenizer: the GGUF metadata has no tokenizer.ggml.tokens");
  spec.tokens.reserve(tokens->values.size());
  for (const auto& t : tokens->values) spec.tokens.push_back(t.as<std::string>());

  if (const auto* types =
          find_array(metadata, "tokenizer.ggml.token_type", gguf_type::i32, "an array of i32")) {
    spec.types.reserve(types->values.size());
    for (const auto& t : types->values) spec.types.push_back(static_cast<token_type>(t.as<int32_t>()));
  }
  if (const auto* scores = find_array(metadata, "tokenizer.ggml.scores", gguf_type::f32, "an array of f32")) {
    spec.scores.reserve(scores->values.size());
    for (const auto& s : scores->values) spec.scores.push_back(s.as<float>());
  }
  if (const auto* merges =
          find_array(metadata, "tokenizer.ggml.merges", gguf_type::string, "an array of strings")) {
    spec.merges.reserve(merges->values.size());
    for (const auto& m : merges->values) spec.merges.push_back(m.as<std::string>());
  }
  spec.pre_tokenizer = find_string(metadata, "tokenizer.ggml.pre");
  spec.bos = find_id(metadata, "tokenizer.ggml.bos_token_id");
  spec.eos = find_id(metadata, "tokenizer.ggml.eos_token_id");
  spec.eot = find_id(metadata, "tokenizer.ggml.eot_token_id");
  spec.eom = find_id(metadata, "tokenizer.ggml.eom_token_id");
  spec.pad = find_id(metadata, "tokenizer.ggml.padding_token_id");
  spec.unk = find_id(metadata, "tokenizer.ggml.unknown_token_id");
  spec.add_bos = find_bool(metadata, "tokenizer.ggml.add_bos_token");
  spec.add_eos = find_bool(metadata, "tokenizer.ggml.add_eos_token");
  spec.add_space_prefix = find_bool(metadata, "tokenizer.ggml.add_space_prefix").value_or(true);
  spec.chat_template = find_string(metadata, "tokenizer.chat_template");
  return spec;
}

tokenizer load_gguf_tokenizer(const std::filesystem::path& path) {
  gguf_file file;
  try {
    file = load_gguf(path, gguf_load_options{.read_tensors = false});
  } catch (const io_error& e) {
    throw tokenizer_error(e.what());
  }
  try {
    return tokenizer::from_vocabulary(read_gguf_vocabulary(file.metadata));
  } catch (const tokenizer_error& e) {
    throw tokenizer_error(path.string() + ": " + e.what());
  }
}

tokenizer load_tokenizer(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  const bool gguf =
      !std::filesystem::is_directory(path) && in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
  return gguf ? load_gguf_tokenizer(path) : tokenizer::load(path);
}

}  // namespace mlxd
