#include "mlxd/models/llama_train.h"

#include <cmath>
#include <stdexcept>

#include "llama_rope.h"
#include "lora_branch.h"
#include "mlxd/core/ops.h"
#include "mlxd/models/llama.h"
#include "mlxd/models/lora.h"

namespace mlxd::models {

void check_weights(const llama_config& config, const std::map<std::string, array>& weights,
                   const llama_stage& stage);

namespace {

void fail(const std::string& what) {
  throw std::invalid_argument("[llama_train] " + what);
}

void check_rows(const array& a, const char* name) {
  if (a.ndim() != 2 || (a.type() != dtype::i32 && a.type() != dtype::i64))
    fail(std::string(name) + " must be an i32 or i64 [batch, seq] array, got " + a.to_string());
}

// y = x W^T (+ b): x [N, in], W [out, in].
array linear(const array& x, const array& w, const array& b = array()) {
  const array y = matmul(x, transpose(w));
  return b.size() ? add(y, b) : y;
}

struct forward_state {
  const llama_config& c;
  const std::map<std::string, array>& p;
  int64_t n_rows, seq;
  array positions;  // [batch, seq]
  array segments;   // [batch, seq]
  rope_options rope;
  const lora_forward* lora = nullptr;
  std::map<std::string, lora_site> lora_at;  // adapted modules by path ("model.layers.0.self_attn.q_proj")

  const array& w(const std::string& name) const { return p.at(name); }
  array maybe(const std::string& name) const {
    auto it = p.find(name);
    return it == p.end() ? array() : it->second;
  }
  // The linear layer `module` ("model.layers.0.mlp.up_proj") of h [N, in], with its adapter branch if any.
  array proj(const array& h, const std::string& module, bool biased = false) const {
    const array y = linear(h, w(module + ".weight"), biased ? maybe(module + ".bias") : array());
    if (lora_at.empty()) return y;
    auto it = lora_at.find(module);
    return it == lora_at.end() ? y : add(y, lora_branch(h, *lora, p, it->second));
  }

  // h [batch * seq, hidden] -> attention output [batch * seq, hidden].
  array attention(const array& h, const std::string& pre) const {
    const int64_t n = n_rows * seq;
    array q = reshape(proj(h, pre + "q_proj", true), {n_rows, seq, c.n_heads, c.head_dim});
    array k = reshape(proj(h, pre + "k_proj", true), {n_rows, seq, c.n_kv_heads, c.head_dim});
    const array v = reshape(proj(h, pre + "v_proj", true), {n_rows, seq, c.n_kv_heads, c.head_dim});
    if (c.qk_norm) {
      q = rms_norm(q, w(pre + "q_norm.weight"), c.rms_norm_eps);
      k = rms_norm(k, w(pre + "k_norm.weight"), c.rms_norm_eps);
    }
    q = rope_at(q, positions, rope);
    k = rope_at(k, positions, rope);
    auto heads_first = [](const array& y) { return transpose(y, {0, 2, 1, 3}); };  // [batch, heads, seq, hd]
    const array out = causal_attention(heads_first(q), heads_first(k), heads_first(v), segments,
                                       1.0f / std::sqrt(static_cast<float>(c.head_dim)));
    return proj(reshape(transpose(out, {0, 2, 1, 3}), {n, int64_t{c.n_heads} * c.head_dim}), pre + "o_proj");
  }
};

}  // namespace

train_batch make_train_batch(const array& tokens, const array& segments) {
  check_rows(tokens, "tokens");
  check_rows(segments, "segments");
  if (segments.shape() != tokens.shape())
    fail("segments " + segments.to_string() + " must have the shape of tokens " + tokens.to_string());
  const int64_t n_rows = tokens.shape(0), seq = tokens.shape(1);
  const std::vector<int64_t> seg = segments.to_vector<int64_t>();
  std::vector<int32_t> pos(seg.size());
  for (int64_t b = 0; b < n_rows; ++b) {
    for (int64_t t = 0; t < seq; ++t) {
      const int64_t i = b * seq + t;
      pos[i] = t > 0 && seg[i] == seg[i - 1] ? pos[i - 1] + 1 : 0;
    }
  }
  return {astype(tokens, dtype::i32), astype(segments, dtype::i32), array::from(pos, {n_rows, seq})};
}

train_batch make_train_batch(const array& tokens) {
  check_rows(tokens, "tokens");
  return make_train_batch(tokens, zeros(tokens.shape(), dtype::i32));
}

std::vector<std::string> llama_param_names(const llama_config& c) {
  std::vector<std::string> names{"model.embed_tokens.weight"};
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    names.push_back(p + "input_layernorm.weight");
    for (const char* m : {"q", "k", "v"}) {
      names.push_back(p + "self_attn." + m + "_proj.weight");
      if (c.attention_bias) names.push_back(p + "self_attn." + m + "_proj.bias");
    }
    if (c.qk_norm) {
      names.push_back(p + "self_attn.q_norm.weight");
      names.push_back(p + "self_attn.k_norm.weight");
    }
    names.push_back(p + "self_attn.o_proj.weight");
    names.push_back(p + "post_attention_layernorm.weight");
    for (const char* m : {"gate", "up", "down"}) names.push_back(p + "mlp." + m + "_proj.weight");
  }
  names.push_back("model.norm.weight");
  if (!c.tie_word_embeddings) names.push_back("lm_head.weight");
  return names;
}

std::map<std::string, array> bind_params(const std::vector<std::string>& names,
                                         const std::vector<array>& values) {
  if (names.size() != values.size()) {
    fail(std::to_string(values.size()) + " parameter values for " + std::to_string(names.size()) + " names");
  }
  std::map<std::string, array> out;
  for (size_t i = 0; i < names.size(); ++i) out.emplace(names[i], values[i]);
  return out;
}

array training_logits(const llama_config& c, const std::map<std::string, array>& params,
                      const train_batch& batch) {
  return training_logits(c, params, batch, nullptr);
}

array training_hidden(const llama_config& c, const std::map<std::string, array>& params,
                      const train_batch& batch, const lora_forward* lora) {
  check_weights(c, params, whole_model(c));
  for (const std::string& name : llama_param_names(c)) {
    if (is_quantized(params.at(name).type()))
      fail("weight " + name + " is block-quantized; training needs float");
  }
  check_rows(batch.tokens, "tokens");
  if (batch.segments.shape() != batch.tokens.shape() || batch.positions.shape() != batch.tokens.shape()) {
    fail("segments " + batch.segments.to_string() + " and positions " + batch.positions.to_string() +
         " must have the shape of tokens " + batch.tokens.to_string());
  }
  const int64_t n_rows = batch.tokens.shape(0), seq = batch.tokens.shape(1);
  if (n_rows < 1 || seq < 1) fail("empty batch " + batch.tokens.to_string());
  for (int64_t t : batch.tokens.to_vector<int64_t>()) {
    if (t < 0 || t >= c.vocab_size) {
      fail("token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(c.vocab_size));
    }
  }
  forward_state st{c, params, n_rows, seq, batch.positions, batch.segments, llama_rope_options(c), lora, {}};
  if (lora) {
    check_lora_params(c, lora->config, params);
    for (lora_site& s : lora_sites(c, lora->config)) st.lora_at.emplace(s.module, std::move(s));
  }
  const float eps = c.rms_norm_eps;
  // [batch * seq, hidden]
  array x =
      astype(take(st.w("model.embed_tokens.weight"), reshape(batch.tokens, {n_rows * seq})), dtype::f32);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    x = add(x, st.attention(rms_norm(x, st.w(p + "input_layernorm.weight"), eps), p + "self_attn."));
    const array h = rms_norm(x, st.w(p + "post_attention_layernorm.weight"), eps);
    const array gated = multiply(silu(st.proj(h, p + "mlp.gate_proj")), st.proj(h, p + "mlp.up_proj"));
    x = add(x, st.proj(gated, p + "mlp.down_proj"));
  }
  return reshape(rms_norm(x, st.w("model.norm.weight"), eps), {n_rows, seq, c.hidden_size});
}

array training_logits(const llama_config& c, const std::map<std::string, array>& params,
                      const train_batch& batch, const lora_forward* lora) {
  const array h = training_hidden(c, params, batch, lora);
  const int64_t n_rows = h.shape(0), seq = h.shape(1);
  const array& head = params.at(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return reshape(linear(reshape(h, {n_rows * seq, c.hidden_size}), head), {n_rows, seq, c.vocab_size});
}

token_loss masked_cross_entropy(const array& logits, const array& labels, int64_t ignore_index) {
  int64_t n = 0;
  for (int64_t l : labels.to_vector<int64_t>()) n += l != ignore_index;
  return {sum(cross_entropy(logits, labels, ignore_index)), n};
}

}  // namespace mlxd::models
