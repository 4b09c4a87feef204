#include "mlxd/models/llama_config.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "mlxd/io/file_text.h"

namespace mlxd::models {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw std::invalid_argument("[llama_config] " + source + ": " + what);
}

template <class T>
T field(const json& j, const char* key, const std::string& source);

// MLX's "quantization" object: "bits", "group_size", optionally "mode" (only "affine" is read), and
// per-module entries (an object with bits and group_size, or false for a module left unquantized).
mlx_quantization::params mlx_params(const json& j, const std::string& where, const std::string& source) {
  mlx_quantization::params p{field<int>(j, "bits", source), field<int>(j, "group_size", source)};
  if (p.bits < 2 || p.bits > 8 || p.bits == 7) {
    bad(source, where + "bits " + std::to_string(p.bits) + " is not one MLX packs (2, 3, 4, 5, 6 or 8)");
  }
  if (p.group_size != 32 && p.group_size != 64 && p.group_size != 128) {
    bad(source, where + "group_size " + std::to_string(p.group_size) + " is not 32, 64 or 128");
  }
  return p;
}

mlx_quantization parse_mlx_quantization(const json& q, const std::string& source) {
  if (q.contains("mode") && q["mode"] != "affine") {
    bad(source, "MLX weights quantized in mode " + q["mode"].dump() +
                    ", which mlxd does not read (it reads MLX's \"affine\" mode)");
  }
  mlx_quantization out;
  out.defaults = mlx_params(q, "quantization: ", source);
  for (const auto& [key, value] : q.items()) {
    if (value.is_object()) {
      out.modules[key] = mlx_params(value, "quantization of " + key + ": ", source);
    } else if (value.is_boolean()) {
      if (value.get<bool>()) bad(source, "quantization of " + key + ": true is not an override");
      out.modules[key] = std::nullopt;
    }
  }
  return out;
}

// Weights that GPTQ, AWQ, bitsandbytes... quantized are refused by the config, saying what to use instead.
// MLX writes its "quantization" object a second time as "quantization_config", without a quant_method.
void refuse_foreign_quantization(const json& j, const std::string& source) {
  if (!j.contains("quantization_config") || !j["quantization_config"].is_object()) return;
  if (j.contains("quantization") && j["quantization"].is_object()) return;
  const json& q = j["quantization_config"];
  const std::string method = q.contains("quant_method") && q["quant_method"].is_string()
                                 ? q["quant_method"].get<std::string>()
                                 : std::string("an unnamed method");
  bad(source,
      "weights quantized by " + method +
          ", which mlxd does not read: use the unquantized Hugging Face folder (`mlxd quantize` makes "
          "Q8_0, Q4_0, Q4_K or Q6_K GGUF from it) or a GGUF file");
}

template <class T>
T field(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) bad(source, std::string("missing \"") + key + "\"");
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    bad(source, std::string("\"") + key + "\" has the wrong type");
  }
}

template <class T>
T optional_field(const json& j, const char* key, T fallback, const std::string& source) {
  return j.contains(key) && !j[key].is_null() ? field<T>(j, key, source) : fallback;
}

}  // namespace

std::optional<mlx_quantization::params> mlx_quantization::of(const std::string& weight_name) const {
  const std::string suffix = ".weight";
  if (weight_name.size() > suffix.size() && weight_name.ends_with(suffix)) {
    auto it = modules.find(weight_name.substr(0, weight_name.size() - suffix.size()));
    if (it != modules.end()) return it->second;
  }
  return defaults;
}

llama_config parse_llama_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    bad(source, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad(source, "not a JSON object");
  llama_config c;
  const auto archs =
      optional_field<std::vector<std::string>>(j, "architectures", {"LlamaForCausalLM"}, source);
  c.architecture = archs.empty() ? "" : archs[0];
  // A sequence classifier (a reward model) is the same backbone with a "score" head instead of the LM head.
  const std::string classifier = "ForSequenceClassification";
  if (c.architecture.size() > classifier.size() && c.architecture.ends_with(classifier)) {
    c.architecture = c.architecture.substr(0, c.architecture.size() - classifier.size()) + "ForCausalLM";
    c.num_labels = optional_field<int>(j, "num_labels", 2, source);
    if (c.num_labels < 1) bad(source, "num_labels must be >= 1");
  }
  refuse_foreign_quantization(j, source);
  if (j.contains("quantization") && j["quantization"].is_object())
    c.mlx_quantized = parse_mlx_quantization(j["quantization"], source);
  static const char* known[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                "Qwen3ForCausalLM"};
  bool ok = false;
  for (const char* k : known) ok = ok || c.architecture == k;
  if (!ok)
    bad(source,
        "unsupported architecture \"" + c.architecture + "\" (supported: Llama, Mistral, Qwen2, Qwen3)");
  c.vocab_size = field<int>(j, "vocab_size", source);
  c.hidden_size = field<int>(j, "hidden_size", source);
  c.intermediate_size = field<int>(j, "intermediate_size", source);
  c.n_layers = field<int>(j, "num_hidden_layers", source);
  c.n_heads = field<int>(j, "num_attention_heads", source);
  c.n_kv_heads = optional_field<int>(j, "num_key_value_heads", c.n_heads, source);
  c.head_dim = optional_field<int>(j, "head_dim", c.n_heads > 0 ? c.hidden_size / c.n_heads : 0, source);
  c.rms_norm_eps = optional_field<float>(j, "rms_norm_eps", 1e-6f, source);
  c.rope_theta = optional_field<float>(j, "rope_theta", 10000.0f, source);
  c.max_position_embeddings = optional_field<int>(j, "max_position_embeddings", 2048, source);
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", false, source);
  c.attention_bias = optional_field<bool>(j, "attention_bias", c.architecture == "Qwen2ForCausalLM", source);
  c.qk_norm = c.architecture == "Qwen3ForCausalLM";
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const json& r = j["rope_scaling"];
    const std::string type = r.contains("rope_type") ? field<std::string>(r, "rope_type", source)
                                                     : optional_field<std::string>(r, "type", "", source);
    c.rope_factor = field<float>(r, "factor", source);
    if (type == "linear") {
      c.rope_scaling = rope_scaling_type::linear;
    } else if (type == "llama3") {
      c.rope_scaling = rope_scaling_type::llama3;
      c.rope_low_freq_factor = field<float>(r, "low_freq_factor", source);
      c.rope_high_freq_factor = field<float>(r, "high_freq_factor", source);
      c.rope_original_max_positions = field<int>(r, "original_max_position_embeddings", source);
    } else if (type != "default") {
      bad(source, "unsupported rope_scaling type \"" + type + "\" (supported: linear, llama3)");
    }
  }
  auto positive = [&](int v, const char* what) {
    if (v <= 0) bad(source, std::string(what) + " must be positive, got " + std::to_string(v));
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.n_layers, "num_hidden_layers");
  positive(c.n_heads, "num_attention_heads");
  positive(c.n_kv_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  if (c.n_heads % c.n_kv_heads != 0) {
    bad(source, "num_attention_heads " + std::to_string(c.n_heads) +
                    " is not a multiple of num_key_value_heads " + std::to_string(c.n_kv_heads));
  }
  if (c.head_dim % 2 != 0) bad(source, "head_dim must be even for RoPE, got " + std::to_string(c.head_dim));
  if (!(c.rope_factor > 0)) bad(source, "rope_scaling factor must be positive");
  return c;
}

llama_config load_llama_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  const auto text = io::read_file(path);
  if (!text) throw std::invalid_argument("[llama_config] cannot read " + path.string());
  return parse_llama_config(*text, path.string());
}

std::string to_json(const llama_config& c) {
  const std::string family = c.architecture.substr(0, c.architecture.rfind("ForCausalLM"));
  json j = {{"architectures", {c.num_labels > 0 ? family + "ForSequenceClassification" : c.architecture}},
            {"model_type", c.architecture == "Qwen2ForCausalLM"     ? "qwen2"
                           : c.architecture == "Qwen3ForCausalLM"   ? "qwen3"
                           : c.architecture == "MistralForCausalLM" ? "mistral"
                                                                    : "llama"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_heads},
            {"num_key_value_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"max_position_embeddings", c.max_position_embeddings},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"attention_bias", c.attention_bias}};
  if (c.num_labels > 0) j["num_labels"] = c.num_labels;
  if (c.rope_scaling == rope_scaling_type::linear)
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_factor}};
  if (c.rope_scaling == rope_scaling_type::llama3) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_factor},
                         {"low_freq_factor", c.rope_low_freq_factor},
                         {"high_freq_factor", c.rope_high_freq_factor},
                         {"original_max_position_embeddings", c.rope_original_max_positions}};
  }
  return j.dump(2);
}

}  // namespace mlxd::models
