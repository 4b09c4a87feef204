#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

#include "kv_attention.h"
#include "llama_rope.h"
#include "mlxd/core/cached_attention.h"
#include "mlxd/core/matmul_rows.h"
#include "mlxd/core/ops.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {

void check_weights(const llama_config& config, const std::map<std::string, array>& weights,
                   const llama_stage& stage);

namespace {

array optional(const std::map<std::string, array>& w, const std::string& key) {
  auto it = w.find(key);
  return it == w.end() ? array() : it->second;
}

// y = x W^T (+ b): x [T, in], W [out, in] (float, or block-quantized and multiplied without dequantizing).
array linear(const array& x, const array& w, const array& b = array()) {
  const array y = is_quantized(w.type()) ? quantized_matmul(x, w) : matmul(x, transpose(w));
  return b.size() ? add(y, b) : y;
}

// The SwiGLU MLP, one product per statement: a full expression would keep its four [T, ffn] intermediates
// alive until its end, three are enough.
array mlp_rows(const array& h, const llama_layer& layer) {
  array a = silu(linear(h, layer.w_gate));
  a = multiply(a, linear(h, layer.w_up));
  return linear(a, layer.w_down);
}

// Rows of a prompt that go through the MLP at once. An intermediate [rows, ffn] f32 may take 4 MiB (as much
// as a 512-token chunk's hidden states of a 1B model) or half the bytes of one MLP weight, whichever is more:
// a 512-token prompt held three of 16 MiB, which put a 1B q4_0 model 12% over model + KV cache + 10%. The
// rows are whole GEMM tiles, at least 8 of them, to amortise packing each weight again per block.
int64_t mlp_block_rows(const array& w_up) {
  const int64_t intermediate_row = w_up.shape(0) * static_cast<int64_t>(sizeof(float));
  const int64_t bytes = std::max(int64_t{4} << 20, static_cast<int64_t>(w_up.nbytes() / 2));
  return std::max(8 * matmul_row_tile, bytes / intermediate_row / matmul_row_tile * matmul_row_tile);
}

// The MLP over blocks of rows. Every block has more than matmul_few_rows rows (a short tail joins the block
// before it), so it takes the prompt's product as the whole would, with the same bits on AVX-512.
array mlp(const array& h, const llama_layer& layer) {
  const int64_t rows = h.shape(0), most = mlp_block_rows(layer.w_up);
  if (rows <= most + matmul_few_rows) return mlp_rows(h, layer);
  std::vector<array> outs;
  for (int64_t b = 0; b < rows; b += most) {
    const int64_t e = rows - (b + most) <= matmul_few_rows ? rows : b + most;
    outs.push_back(mlp_rows(slice_axis(h, 0, b, e), layer));
    if (e == rows) break;
  }
  return concatenate(outs, 0);
}

// Additive causal mask [T, S]: query t (at position pos0 + t) sees keys 0..pos0 + t.
array causal_mask(int64_t n_tokens, int64_t pos0) {
  const int64_t n_keys = pos0 + n_tokens;
  array mask = array::empty({n_tokens, n_keys}, dtype::f32);  // written in place: no second copy alive
  float* m = mask.mutable_data<float>();
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t s = 0; s < n_keys; ++s) m[t * n_keys + s] = s <= pos0 + t ? 0.0f : -INFINITY;
  }
  return mask;
}

}  // namespace

llama_model::llama_model(llama_config config, const std::map<std::string, array>& w)
    : llama_model(config, w, whole_model(config)) {}

llama_model::llama_model(llama_config config, const std::map<std::string, array>& w, const llama_stage& stage)
    : config_(std::move(config)), stage_(stage) {
  check_weights(config_, w, stage_);
  if (stage_.embedding) embed_ = w.at("model.embed_tokens.weight");
  if (stage_.head) {
    lm_head_ = w.at(config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    final_norm_ = w.at("model.norm.weight");
  }
  for (int l = stage_.layer_begin; l < stage_.layer_end; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    llama_layer layer;
    layer.attn_norm = w.at(p + "input_layernorm.weight");
    layer.mlp_norm = w.at(p + "post_attention_layernorm.weight");
    layer.wq = w.at(p + "self_attn.q_proj.weight");
    layer.wk = w.at(p + "self_attn.k_proj.weight");
    layer.wv = w.at(p + "self_attn.v_proj.weight");
    layer.wo = w.at(p + "self_attn.o_proj.weight");
    layer.bq = optional(w, p + "self_attn.q_proj.bias");
    layer.bk = optional(w, p + "self_attn.k_proj.bias");
    layer.bv = optional(w, p + "self_attn.v_proj.bias");
    layer.q_norm = optional(w, p + "self_attn.q_norm.weight");
    layer.k_norm = optional(w, p + "self_attn.k_norm.weight");
    layer.w_gate = w.at(p + "mlp.gate_proj.weight");
    layer.w_up = w.at(p + "mlp.up_proj.weight");
    layer.w_down = w.at(p + "mlp.down_proj.weight");
    layers_.push_back(std::move(layer));
  }
  rope_ = llama_rope_options(config_);
}

std::map<std::string, array> llama_model::weights() const {
  std::map<std::string, array> w;
  if (stage_.embedding || (stage_.head && config_.tie_word_embeddings))
    w["model.embed_tokens.weight"] = stage_.embedding ? embed_ : lm_head_;
  if (stage_.head) {
    w["model.norm.weight"] = final_norm_;
    if (!config_.tie_word_embeddings) w["lm_head.weight"] = lm_head_;
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    const llama_layer& l = layers_[i];
    const std::string p = "model.layers." + std::to_string(stage_.layer_begin + static_cast<int>(i)) + ".";
    const std::pair<const char*, const array*> named[] = {
        {"input_layernorm.weight", &l.attn_norm}, {"post_attention_layernorm.weight", &l.mlp_norm},
        {"self_attn.q_proj.weight", &l.wq},       {"self_attn.k_proj.weight", &l.wk},
        {"self_attn.v_proj.weight", &l.wv},       {"self_attn.o_proj.weight", &l.wo},
        {"self_attn.q_proj.bias", &l.bq},         {"self_attn.k_proj.bias", &l.bk},
        {"self_attn.v_proj.bias", &l.bv},         {"self_attn.q_norm.weight", &l.q_norm},
        {"self_attn.k_norm.weight", &l.k_norm},   {"mlp.gate_proj.weight", &l.w_gate},
        {"mlp.up_proj.weight", &l.w_up},          {"mlp.down_proj.weight", &l.w_down}};
    for (const auto& [name, a] : named)
      if (a->size() > 0) w[p + name] = *a;
  }
  return w;
}

uint64_t llama_model::decode_weight_bytes() const {
  uint64_t n = lm_head_.nbytes() + final_norm_.nbytes();
  for (const llama_layer& l : layers_) {
    for (const array* a : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm,
                           &l.k_norm, &l.mlp_norm, &l.w_gate, &l.w_up, &l.w_down})
      n += a->nbytes();
  }
  return n;
}

kv_cache llama_model::make_cache(int capacity, dtype kv_type) const {
  return kv_cache(stage_.n_layers(), config_.n_kv_heads, config_.head_dim, capacity, kv_type);
}

array llama_model::attention(array x, const llama_layer& layer, int index, kv_cache& cache) const {
  array q = linear(x, layer.wq, layer.bq);  // [T, heads * head_dim]
  array k = linear(x, layer.wk, layer.bk);  // [T, kv * head_dim]
  array v = linear(x, layer.wv, layer.bv);  // [T, kv * head_dim]
  x = array();  // the normed rows end with the projections, not with the attention
  return linear(attend(std::move(q), std::move(k), std::move(v), layer, index, cache), layer.wo);
}

array llama_model::attend(array q_rows, array k_rows, array v_rows, const llama_layer& layer, int index,
                          kv_cache& cache) const {
  const llama_config& c = config_;
  const int64_t n_tokens = q_rows.shape(0), pos0 = cache.length(), group = c.n_heads / c.n_kv_heads;
  // [T, heads * head_dim] -> [heads, T, head_dim]: a view that holds the rows' buffer alone, so rope's result
  // replaces it rather than adding to it.
  auto heads = [&](array y, int n) { return transpose(reshape(y, {n_tokens, n, c.head_dim}), {1, 0, 2}); };
  array q = heads(std::move(q_rows), c.n_heads);
  array k = heads(std::move(k_rows), c.n_kv_heads);
  const array v = heads(std::move(v_rows), c.n_kv_heads);
  if (c.qk_norm) {
    q = rms_norm(q, layer.q_norm, c.rms_norm_eps);
    k = rms_norm(k, layer.k_norm, c.rms_norm_eps);
  }
  rope_options ro = rope_;
  ro.offset = pos0;
  q = rope(q, ro);
  k = rope(k, ro);
  cache.write(index, astype(k, dtype::f32), astype(v, dtype::f32));
  const int64_t n_keys = pos0 + n_tokens;
  // Query heads sharing a kv head are stacked: [kv, group * T, head_dim].
  const array qg = reshape(q, {c.n_kv_heads, group * n_tokens, c.head_dim});
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // [kv, group * T, head_dim] -> [T, heads * head_dim]
  auto tokens_first = [&](const array& out) {
    return reshape(transpose(reshape(out, {c.n_heads, n_tokens, c.head_dim}), {1, 0, 2}),
                   {n_tokens, int64_t{c.n_heads} * c.head_dim});
  };
  const auto end = static_cast<int>(n_keys);
  if (n_tokens <= detail::direct_attention_tokens) {
    return tokens_first(cached_attention(qg, cache.keys(index, end), cache.values(index, end), group, scale));
  }
  const array mask = causal_mask(n_tokens, pos0);
  if (cache.type() != dtype::f32) {
    return tokens_first(detail::attend_by_rows(qg, group, mask, [&](const array& q_part, const array& m) {
      return detail::attend_blocks(q_part, cache, index, n_keys, m, scale);
    }));
  }
  const array keys = cache.keys(index, end);      // [kv, S, head_dim]
  const array values = cache.values(index, end);  // [kv, S, head_dim]
  return tokens_first(detail::attend_by_rows(qg, group, mask, [&](const array& q_part, const array& m) {
    array s = matmul(q_part, swapaxes(keys, 1, 2));  // a statement per step: two score arrays alive, not four
    s = multiply(s, array(scale));
    s = add(s, m);
    s = softmax(s, -1);
    return matmul(s, values);
  }));
}

namespace {

// f of each prefill_chunk-long piece of tokens in order, the results joined along the positions.
array by_chunks(const std::vector<int32_t>& tokens,
                const std::function<array(const std::vector<int32_t>&)>& f) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n <= llama_model::prefill_chunk) return f(tokens);
  std::vector<array> parts;
  for (int64_t b = 0; b < n; b += llama_model::prefill_chunk) {
    const int64_t e = std::min<int64_t>(n, b + llama_model::prefill_chunk);
    parts.push_back(f(std::vector<int32_t>(tokens.begin() + b, tokens.begin() + e)));
  }
  return concatenate(parts, 0);
}

}  // namespace

array llama_model::forward(const std::vector<int32_t>& tokens, kv_cache& cache) const {
  if (!stage_.embedding || !stage_.head || stage_.n_layers() != config_.n_layers)
    throw std::invalid_argument("[llama] forward needs the whole model; this one holds a pipeline stage");
  return by_chunks(
      tokens, [&](const std::vector<int32_t>& chunk) { return head(forward_layers(embed(chunk), cache)); });
}

array llama_model::forward_last(const std::vector<int32_t>& tokens, kv_cache& cache) const {
  if (!stage_.embedding || !stage_.head || stage_.n_layers() != config_.n_layers)
    throw std::invalid_argument("[llama] forward needs the whole model; this one holds a pipeline stage");
  // Chunks before the last only fill the cache: their hidden states go as soon as they are made.
  const auto n = static_cast<int64_t>(tokens.size());
  int64_t b = 0;
  for (; n - b > prefill_chunk; b += prefill_chunk)
    forward_layers(embed(std::vector<int32_t>(tokens.begin() + b, tokens.begin() + b + prefill_chunk)),
                   cache);
  const array y = forward_layers(embed(std::vector<int32_t>(tokens.begin() + b, tokens.end())), cache);
  return head(slice_axis(y, 0, y.shape(0) - 1, y.shape(0)));
}

array llama_model::final_hidden(const std::vector<int32_t>& tokens, kv_cache& cache) const {
  if (!stage_.embedding || !stage_.head || stage_.n_layers() != config_.n_layers)
    throw std::invalid_argument(
        "[llama] final_hidden needs the whole model; this one holds a pipeline stage");
  return by_chunks(tokens, [&](const std::vector<int32_t>& chunk) {
    return final_norm(forward_layers(embed(chunk), cache));  // [T, hidden]
  });
}

array llama_model::embed(const std::vector<int32_t>& tokens) const {
  if (!stage_.embedding) throw std::invalid_argument("[llama] this pipeline stage holds no embedding");
  if (tokens.empty()) throw std::invalid_argument("[llama] forward needs at least one token");
  for (int32_t t : tokens) {
    if (t < 0 || t >= config_.vocab_size) {
      throw std::invalid_argument("[llama] token id " + std::to_string(t) + " is outside the vocabulary of " +
                                  std::to_string(config_.vocab_size));
    }
  }
  const auto n = static_cast<int64_t>(tokens.size());
  return astype(take(embed_, array::from(tokens, {n})), dtype::f32);  // [T, hidden]
}

array llama_model::forward_layers(array hidden, kv_cache& cache) const {
  if (hidden.ndim() != 2 || hidden.shape(0) < 1 || hidden.shape(1) != config_.hidden_size ||
      hidden.type() != dtype::f32) {
    throw std::invalid_argument("[llama] stage input is " + hidden.to_string() + ", expected f32[n_tokens, " +
                                std::to_string(config_.hidden_size) + "]");
  }
  if (cache.n_layers() != stage_.n_layers()) {
    throw std::invalid_argument("[llama] a cache of " + std::to_string(cache.n_layers()) +
                                " layers for a stage of " + std::to_string(stage_.n_layers()));
  }
  const int64_t n = hidden.shape(0);
  if (cache.length() + n > cache.capacity()) {
    throw std::invalid_argument("[llama] " + std::to_string(cache.length() + n) +
                                " positions exceed the context of " + std::to_string(cache.capacity()));
  }
  const float eps = config_.rms_norm_eps;
  array x = std::move(hidden);  // [T, hidden]; the caller's embedding, if moved in, ends with the first layer
  for (int l = 0; l < stage_.n_layers(); ++l) {
    const llama_layer& layer = layers_[l];
    x = add(x, attention(rms_norm(x, layer.attn_norm, eps), layer, l, cache));
    const array h = rms_norm(x, layer.mlp_norm, eps);
    x = add(x, mlp(h, layer));
  }
  cache.commit(static_cast<int>(n));
  return x;
}

namespace {

// Checks that each sequence's `rows` new positions fit its cache, one of this stage's.
void check_batch_caches(const llama_stage& stage, const std::vector<int64_t>& rows,
                        const std::vector<kv_cache*>& caches) {
  if (rows.empty() || rows.size() != caches.size())
    throw std::invalid_argument("[llama] a batch needs one cache per sequence and at least one sequence");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 1) throw std::invalid_argument("[llama] a batch holds a sequence with no tokens");
    if (caches[i] == nullptr || caches[i]->n_layers() != stage.n_layers())
      throw std::invalid_argument("[llama] a batch holds a missing cache or one of another model");
    if (caches[i]->length() + rows[i] > caches[i]->capacity()) {
      throw std::invalid_argument("[llama] " + std::to_string(caches[i]->length() + rows[i]) +
                                  " positions exceed the context of " +
                                  std::to_string(caches[i]->capacity()));
    }
  }
}

}  // namespace

array llama_model::batch_layers(array x, const std::vector<int64_t>& begin,
                                const std::vector<kv_cache*>& caches) const {
  const float eps = config_.rms_norm_eps;
  for (int l = 0; l < stage_.n_layers(); ++l) {
    const llama_layer& layer = layers_[l];
    const array h = rms_norm(x, layer.attn_norm, eps);
    const array q = linear(h, layer.wq, layer.bq);  // [T_all, heads * head_dim]
    const array k = linear(h, layer.wk, layer.bk);  // [T_all, kv * head_dim]
    const array v = linear(h, layer.wv, layer.bv);
    std::vector<array> outs;
    for (size_t i = 0; i < caches.size(); ++i) {
      auto rows = [&](const array& a) { return slice_axis(a, 0, begin[i], begin[i + 1]); };
      outs.push_back(attend(rows(q), rows(k), rows(v), layer, l, *caches[i]));
    }
    x = add(x, linear(outs.size() == 1 ? outs[0] : concatenate(outs, 0), layer.wo));
    const array m = rms_norm(x, layer.mlp_norm, eps);
    x = add(x, mlp(m, layer));
  }
  for (size_t i = 0; i < caches.size(); ++i) caches[i]->commit(static_cast<int>(begin[i + 1] - begin[i]));
  return x;
}

array llama_model::forward_batch(const std::vector<std::vector<int32_t>>& tokens,
                                 const std::vector<kv_cache*>& caches) const {
  if (!stage_.embedding || !stage_.head || stage_.n_layers() != config_.n_layers)
    throw std::invalid_argument(
        "[llama] forward_batch needs the whole model; this one holds a pipeline stage");
  std::vector<int64_t> rows;
  for (const auto& t : tokens) rows.push_back(static_cast<int64_t>(t.size()));
  check_batch_caches(stage_, rows, caches);
  std::vector<int32_t> all;
  std::vector<int64_t> begin;  // first row of each sequence
  for (const auto& t : tokens) {
    begin.push_back(static_cast<int64_t>(all.size()));
    all.insert(all.end(), t.begin(), t.end());
  }
  begin.push_back(static_cast<int64_t>(all.size()));
  const array x = batch_layers(embed(all), begin, caches);  // [T_all, hidden]
  std::vector<int64_t> last;
  for (size_t i = 0; i < tokens.size(); ++i) last.push_back(begin[i + 1] - 1);
  return head(take(x, array::from(last, {static_cast<int64_t>(last.size())})));  // [n_seqs, vocab]
}

std::vector<array> llama_model::forward_layers_batch(const std::vector<array>& hidden,
                                                     const std::vector<kv_cache*>& caches) const {
  std::vector<int64_t> rows, begin = {0};
  for (const array& h : hidden) {
    if (h.ndim() != 2 || h.shape(0) < 1 || h.shape(1) != config_.hidden_size || h.type() != dtype::f32) {
      throw std::invalid_argument("[llama] stage input is " + h.to_string() + ", expected f32[n_tokens, " +
                                  std::to_string(config_.hidden_size) + "]");
    }
    rows.push_back(h.shape(0));
    begin.push_back(begin.back() + h.shape(0));
  }
  check_batch_caches(stage_, rows, caches);
  const array x = batch_layers(hidden.size() == 1 ? hidden[0] : concatenate(hidden, 0), begin, caches);
  std::vector<array> out;
  for (size_t i = 0; i < hidden.size(); ++i)
    out.push_back(contiguous(slice_axis(x, 0, begin[i], begin[i + 1])));
  return out;
}

array llama_model::head(const array& x) const {
  return linear(final_norm(x), lm_head_);  // [T, vocab]
}

array llama_model::final_norm(const array& x) const {
  if (!stage_.head) throw std::invalid_argument("[llama] this pipeline stage holds no LM head");
  return rms_norm(x, final_norm_, config_.rms_norm_eps);  // [T, hidden]
}

}  // namespace mlxd::models
