#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "mlxd/core/ops.h"

#include "mlxd/io/gguf.h"
#include "mlxd/models/llama.h"
#include "models/llama_gguf_read.h"

namespace mlxd::models {

void check_weights(const llama_config& config, const std::map<std::string, array>& weights);

namespace {

// llama.cpp's per-layer tensor names and their Hugging Face counterparts.
const std::pair<const char*, const char*> layer_names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},      {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},      {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},          {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},          {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},           {"ffn_down.weight", "mlp.down_proj.weight"}};

// The GGUF architecture of a config (llama.cpp writes Mistral as "llama").
std::string gguf_architecture(const llama_config& c) {
  if (c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM") return "llama";
  if (c.architecture == "Qwen2ForCausalLM") return "qwen2";
  if (c.architecture == "Qwen3ForCausalLM") return "qwen3";
  throw std::invalid_argument("[llama_to_gguf] no GGUF architecture for " + c.architecture);
}

// llama.cpp's converter regroups each head's q/k rows from halves to interleaved pairs: row 2i + j of a head
// comes from row j * head_dim / 2 + i.
array interleave_rows(const array& w, int n_heads, int head_dim) {
  std::vector<int64_t> rows;
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < head_dim / 2; ++i) {
      for (int j = 0; j < 2; ++j) rows.push_back(int64_t{h} * head_dim + j * (head_dim / 2) + i);
    }
  }
  return take(w, array::from(rows, {static_cast<int64_t>(rows.size())}), 0);
}

// The inverse of interleave_rows: row j * head_dim / 2 + i of a head comes from row 2i + j.
array deinterleave_rows(const array& w, int n_heads, int head_dim) {
  std::vector<int64_t> rows;
  for (int h = 0; h < n_heads; ++h) {
    for (int j = 0; j < 2; ++j) {
      for (int i = 0; i < head_dim / 2; ++i) rows.push_back(int64_t{h} * head_dim + 2 * i + j);
    }
  }
  return take(w, array::from(rows, {static_cast<int64_t>(rows.size())}), 0);
}

// llama.cpp stores Llama-3 RoPE scaling as one divisor per frequency (rope_freqs): inverse frequency i is
// base^(-2i/d) / factor_i.
std::vector<float> rope_divisors(const llama_config& c) {
  const std::vector<float> scaled =
      llama3_rope_freqs(c.head_dim, c.rope_theta, c.rope_factor, c.rope_low_freq_factor,
                        c.rope_high_freq_factor, c.rope_original_max_positions);
  std::vector<float> divisors(scaled.size());
  for (size_t i = 0; i < scaled.size(); ++i) {
    const double freq =
        std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) / c.head_dim);
    divisors[i] = static_cast<float>(freq / scaled[i]);
  }
  return divisors;
}

// The Llama-3 scaling parameters whose divisors are `divisors` (within float rounding), searched over the
// values real models use; false when none fits. The factor is the largest divisor (the lowest frequencies').
bool fit_llama3_scaling(const std::vector<float>& divisors, llama_config& c) {
  llama_config trial = c;
  trial.rope_factor = *std::max_element(divisors.begin(), divisors.end());
  for (float low : {1.0f, 2.0f}) {
    for (float high : {2.0f, 4.0f, 8.0f}) {
      if (high <= low) continue;
      for (int original = 16; original <= (1 << 20); original *= 2) {
        trial.rope_low_freq_factor = low;
        trial.rope_high_freq_factor = high;
        trial.rope_original_max_positions = original;
        const std::vector<float> d = rope_divisors(trial);
        bool same = true;
        for (size_t i = 0; i < d.size() && same; ++i)
          same = std::abs(d[i] - divisors[i]) <= 1e-5f * divisors[i];
        if (same) {
          c = trial;
          c.rope_scaling = rope_scaling_type::llama3;
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace

gguf_model llama_to_gguf(const llama_config& c, const std::map<std::string, array>& weights) {
  check_weights(c, weights);
  if (c.rope_interleaved) {
    throw std::invalid_argument("[llama_to_gguf] the weights are already in llama.cpp's interleaved layout");
  }
  const std::string arch = gguf_architecture(c);
  gguf_model out;
  gguf_metadata& m = out.metadata;
  auto u32 = [](int v) { return gguf_value(static_cast<uint32_t>(v)); };
  m.set("general.architecture", arch);
  m.set(arch + ".block_count", u32(c.n_layers));
  m.set(arch + ".context_length", u32(c.max_position_embeddings));
  m.set(arch + ".embedding_length", u32(c.hidden_size));
  m.set(arch + ".feed_forward_length", u32(c.intermediate_size));
  m.set(arch + ".attention.head_count", u32(c.n_heads));
  m.set(arch + ".attention.head_count_kv", u32(c.n_kv_heads));
  m.set(arch + ".attention.key_length", u32(c.head_dim));
  m.set(arch + ".attention.value_length", u32(c.head_dim));
  m.set(arch + ".attention.layer_norm_rms_epsilon", gguf_value(c.rms_norm_eps));
  m.set(arch + ".rope.dimension_count", u32(c.head_dim));
  m.set(arch + ".rope.freq_base", gguf_value(c.rope_theta));
  if (c.rope_scaling == rope_scaling_type::linear) {
    m.set(arch + ".rope.scaling.type", "linear");
    m.set(arch + ".rope.scaling.factor", gguf_value(c.rope_factor));
  }
  if (c.rope_scaling == rope_scaling_type::llama3) {
    const std::vector<float> d = rope_divisors(c);
    out.tensors["rope_freqs.weight"] = array::from(d, {static_cast<int64_t>(d.size())});
  }
  out.tensors["token_embd.weight"] = weights.at("model.embed_tokens.weight");
  out.tensors["output_norm.weight"] = weights.at("model.norm.weight");
  if (!c.tie_word_embeddings) out.tensors["output.weight"] = weights.at("lm_head.weight");
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    for (const auto& [gguf_name, hf_name] : layer_names) {
      auto it = weights.find(h + hf_name);
      if (it == weights.end()) continue;
      array a = it->second;
      const std::string name(gguf_name);
      if (arch == "llama" && (name.starts_with("attn_q.") || name.starts_with("attn_k."))) {
        a = interleave_rows(a, name.starts_with("attn_q.") ? c.n_heads : c.n_kv_heads, c.head_dim);
      }
      out.tensors[g + name] = a;
    }
  }
  return out;
}

llama_gguf_contents read_llama_gguf(const std::filesystem::path& path, bool read_tensors, bool copy) {
  gguf_load_options options;
  options.keep_quantized = true;
  options.read_tensors = read_tensors;
  options.copy = copy;
  const gguf_file file = load_gguf(path, options);
  const gguf_metadata& m = file.metadata;
  const std::string arch = m.get_string("general.architecture");
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("[llama] " + path.string() + ": " + what);
  };
  llama_config c;
  if (arch == "llama") {
    c.architecture = "LlamaForCausalLM";
    c.rope_interleaved = true;
  } else if (arch == "qwen2") {
    c.architecture = "Qwen2ForCausalLM";
  } else if (arch == "qwen3") {
    c.architecture = "Qwen3ForCausalLM";
    c.qk_norm = true;
  } else {
    fail("unsupported GGUF architecture \"" + arch + "\" (supported: llama, qwen2, qwen3)");
  }
  auto u32 = [&](const std::string& key) { return static_cast<int>(m.get_u32(arch + "." + key)); };
  auto has = [&](const std::string& key) { return m.contains(arch + "." + key); };
  c.n_layers = u32("block_count");
  c.hidden_size = u32("embedding_length");
  c.intermediate_size = u32("feed_forward_length");
  c.n_heads = u32("attention.head_count");
  c.n_kv_heads = has("attention.head_count_kv") ? u32("attention.head_count_kv") : c.n_heads;
  c.head_dim = has("attention.key_length") ? u32("attention.key_length") : c.hidden_size / c.n_heads;
  c.max_position_embeddings = u32("context_length");
  c.rms_norm_eps = m.get_f32(arch + ".attention.layer_norm_rms_epsilon");
  if (has("rope.freq_base")) c.rope_theta = m.get_f32(arch + ".rope.freq_base");
  if (has("rope.scaling.type")) {
    const std::string type = m.get_string(arch + ".rope.scaling.type");
    if (type == "linear") {
      c.rope_scaling = rope_scaling_type::linear;
      c.rope_factor = m.get_f32(arch + ".rope.scaling.factor");
    } else if (type != "none") {
      fail("unsupported rope scaling \"" + type + "\"");
    }
  }
  auto info = [&](const std::string& name) -> const gguf_tensor_info* {
    for (const gguf_tensor_info& t : file.tensor_infos)
      if (t.name == name) return &t;
    return nullptr;
  };
  if (const gguf_tensor_info* freqs = info("rope_freqs.weight")) {
    if (c.rope_scaling != rope_scaling_type::none) fail("rope_freqs together with rope.scaling.type");
    if (freqs->shape != shape_t{c.head_dim / 2})
      fail("rope_freqs.weight must hold head_dim / 2 = " + std::to_string(c.head_dim / 2) + " values");
    gguf_load_options mapped;
    mapped.copy = false;
    const array a = astype(load_gguf(path, mapped).tensors.at("rope_freqs.weight"), dtype::f32);
    const std::vector<float> divisors(a.data<float>(), a.data<float>() + a.size());
    for (float d : divisors) {
      if (!(d > 0) || !std::isfinite(d))
        fail("rope_freqs.weight holds a value that is not a positive number");
    }
    if (!fit_llama3_scaling(divisors, c))
      fail(
          "the rope_freqs factors do not follow Llama-3 RoPE scaling (the only per-frequency scaling "
          "supported)");
  }
  // A pipeline stage's file (as mlxd ships them) may hold neither the embedding nor the head nor block 0:
  // then the metadata says what the tensors would.
  const gguf_tensor_info* embed = info("token_embd.weight");
  if (embed && !embed->shape.empty())
    c.vocab_size = static_cast<int>(embed->shape[0]);
  else if (has("vocab_size"))
    c.vocab_size = u32("vocab_size");
  else
    fail("missing tensor token_embd.weight");
  c.tie_word_embeddings =
      m.contains(gguf_tie_embeddings_key) ? m.get_bool(gguf_tie_embeddings_key) : !info("output.weight");
  c.attention_bias = std::any_of(file.tensor_infos.begin(), file.tensor_infos.end(),
                                 [](const gguf_tensor_info& t) { return t.name.ends_with(".attn_q.bias"); });

  llama_gguf_contents out;
  std::map<std::string, array>& weights = out.weights;
  for (const auto& [name, a] : file.tensors) {
    if (name == "token_embd.weight") weights["model.embed_tokens.weight"] = a;
    if (name == "output_norm.weight") weights["model.norm.weight"] = a;
    if (name == "output.weight") weights["lm_head.weight"] = a;
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    for (const auto& [gguf_name, hf_name] : layer_names) {
      auto it = file.tensors.find(g + gguf_name);
      if (it != file.tensors.end()) weights[h + hf_name] = it->second;
    }
  }
  out.config = std::move(c);
  return out;
}

hf_model llama_from_gguf(const std::filesystem::path& path) {
  llama_gguf_contents g = read_llama_gguf(path, true, true);
  hf_model out{std::move(g.config), std::move(g.weights)};
  llama_config& c = out.config;
  if (c.rope_interleaved) {
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string h = "model.layers." + std::to_string(l) + ".self_attn.";
      for (const auto& [name, heads] :
           {std::pair{"q_proj.", c.n_heads}, std::pair{"k_proj.", c.n_kv_heads}}) {
        for (const char* part : {"weight", "bias"}) {
          auto it = out.weights.find(h + name + part);
          if (it == out.weights.end()) continue;
          if (is_quantized(it->second.type())) it->second = astype(it->second, dtype::f32);
          it->second = deinterleave_rows(it->second, heads, c.head_dim);
        }
      }
    }
    c.rope_interleaved = false;
  }
  check_weights(c, out.weights);
  return out;
}

llama_model load_llama_gguf(const std::filesystem::path& path, const llama_load_options& options) {
  llama_gguf_contents g = read_llama_gguf(path, true, !options.mmap);
  return llama_model(std::move(g.config), g.weights);
}

}  // namespace mlxd::models
