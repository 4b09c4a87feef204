// The Llama-family decoder: embeddings, n_layers of (RMSNorm, GQA attention with RoPE, RMSNorm, SwiGLU MLP),
// final RMSNorm and the LM head. Weights use the Hugging Face names and [out, in] layout; the 2-d ones may be
// block-quantized (q8_0, q4_0, q4_k, q6_k).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"
#include "mlxd/models/kv_cache.h"
#include "mlxd/models/llama_config.h"

namespace mlxd::models {

struct llama_layer {
  array attn_norm;       // [hidden]
  array wq, wk, wv, wo;  // [n_heads*head_dim, hidden], [n_kv*head_dim, hidden] x2, [hidden, n_heads*head_dim]
  array bq, bk, bv;      // biases (Qwen2) or empty
  array q_norm, k_norm;  // [head_dim] (Qwen3) or empty
  array mlp_norm;        // [hidden]
  array w_gate, w_up, w_down;  // [ffn, hidden] x2, [hidden, ffn]
};

// The part of the decoder one pipeline stage runs: decoder layers [layer_begin, layer_end), plus the token
// embedding on the first stage and the final norm and LM head on the last. A stage may hold no layers (a
// coordinator that only embeds and samples).
struct llama_stage {
  int layer_begin = 0;
  int layer_end = 0;
  bool embedding = false;  // holds model.embed_tokens (first stage)
  bool head = false;  // holds model.norm and the LM head (last stage; with tied embeddings, embed_tokens)
  int n_layers() const { return layer_end - layer_begin; }
};
// Every layer, the embedding and the head.
llama_stage whole_model(const llama_config& config);
// Throws std::invalid_argument unless 0 <= layer_begin <= layer_end <= config.n_layers.
void check_stage(const llama_config& config, const llama_stage& stage);

class llama_model {
 public:
  // Takes the weights by HF name; throws std::invalid_argument naming any missing tensor or wrong shape.
  llama_model(llama_config config, const std::map<std::string, array>& weights);
  // Only the tensors of `stage` are needed (others in `weights` are ignored).
  llama_model(llama_config config, const std::map<std::string, array>& weights, const llama_stage& stage);

  const llama_config& config() const { return config_; }
  const llama_stage& stage() const { return stage_; }
  // The stage's tensors by HF name, shared (not copied): what the constructor took.
  std::map<std::string, array> weights() const;

  // Prompts longer than this run in consecutive chunks of it, as a pipeline's prefill sends them, so that one
  // node and a cluster compute the same bits for any length (and attention's scores stay [chunk, context]).
  static constexpr int prefill_chunk = 512;

  // Logits [n_tokens, vocab] for `tokens` placed at positions cache.length()...; appends their keys and
  // values. Needs the whole model: forward == head(forward_layers(embed(chunk), cache)) chunk by chunk.
  array forward(const std::vector<int32_t>& tokens, kv_cache& cache) const;
  // The logits [1, vocab] of the last of `tokens`, placed, chunked and cached as forward places them: what
  // generation needs after a prompt. The LM head multiplies that one row only (as llama.cpp's prompt
  // processing does), so its bits are those of forward({last}, ...) on the same cache, not of forward's row.
  array forward_last(const std::vector<int32_t>& tokens, kv_cache& cache) const;
  // Several sequences in one pass: tokens[i] at positions caches[i]->length()... of its own cache. The linear
  // layers run once on the rows of every sequence (each weight is read once per step); attention runs per
  // sequence. Returns the logits [n_seqs, vocab] of each sequence's last token. Needs the whole model.
  array forward_batch(const std::vector<std::vector<int32_t>>& tokens,
                      const std::vector<kv_cache*>& caches) const;
  // The final-norm hidden states [n_tokens, hidden] of `tokens` (what the LM head multiplies), placed,
  // chunked and cached as forward places them. Needs the whole model: forward == linear(final_hidden,
  // lm_head).
  array final_hidden(const std::vector<int32_t>& tokens, kv_cache& cache) const;
  // The pieces a pipeline stage runs. embed: [n_tokens, hidden] f32 (first stage only; ids are checked).
  // forward_layers: the stage's layers on hidden states x [n_tokens, hidden] f32 at positions
  // cache.length()..., appending their keys and values to `cache` (one of make_cache) and committing them;
  // returns [n_tokens, hidden]. head: logits [n_tokens, vocab] of hidden states (last stage only);
  // head(x) == linear(final_norm(x), lm_head), final_norm being [n_tokens, hidden] (last stage only).
  array embed(const std::vector<int32_t>& tokens) const;
  array forward_layers(array x, kv_cache& cache) const;
  // forward_layers for several sequences in one pass, as forward_batch runs them: hidden[i] [T_i, hidden] at
  // positions caches[i]->length()...; returns each sequence's [T_i, hidden]. With at most 16 rows in all,
  // each row gets the very bits forward_layers gives it alone (the linear layers run row by row; see matmul).
  std::vector<array> forward_layers_batch(const std::vector<array>& hidden,
                                          const std::vector<kv_cache*>& caches) const;
  array head(const array& x) const;
  array final_norm(const array& x) const;
  // A cache for the stage's layers storing `kv_type` (f32, or f16 for half the memory; see kv_cache).
  kv_cache make_cache(int capacity, dtype kv_type = dtype::f32) const;
  // Bytes of weights one decode step reads in full: the stage's layers, final norm and LM head (the embedding
  // contributes one row, not counted). The numerator of the memory-bandwidth bound of decoding.
  uint64_t decode_weight_bytes() const;

 private:
  array attention(array x, const llama_layer& layer, int index, kv_cache& cache) const;
  // The stage's layers on the rows x [T_all, hidden] of several sequences, rows begin[i]..begin[i+1] being
  // sequence i's at the end of caches[i]; commits every cache.
  array batch_layers(array x, const std::vector<int64_t>& begin, const std::vector<kv_cache*>& caches) const;
  // Attention of one sequence from its projected rows q [T, heads*head_dim], k, v [T, kv*head_dim]: writes k,
  // v to `cache` and returns [T, heads*head_dim], before the output projection.
  array attend(array q, array k, array v, const llama_layer& layer, int index, kv_cache& cache) const;
  llama_config config_;
  llama_stage stage_;
  array embed_;    // [vocab, hidden]; empty unless stage_.embedding
  array lm_head_;  // [vocab, hidden]; the embedding when tied; empty unless stage_.head
  array final_norm_;
  std::vector<llama_layer> layers_;  // the stage's layers, layers_[0] is layer stage_.layer_begin
  rope_options rope_;                // the config's RoPE settings (offset 0)
};

struct llama_load_options {
  // false (the default): the weights are read into memory the process owns, once, at load. true: the
  // safetensors or GGUF files are mapped read-only and the weights are views of the mapping (tensors that
  // must be rearranged or are misaligned, such as the q/k rows of a "llama" GGUF file, are still copied).
  // Mapping saves memory and load time, but the host may evict mapped pages while the model runs and read
  // them back from disk (llama.cpp fell from 6.7 to 1.4 tokens/s so), hence it is not the default.
  bool mmap = false;
};

// Loads a Hugging Face model folder (config.json and safetensors weights) or, for a path ending in .gguf, a
// GGUF file (architectures llama, qwen2, qwen3). Q8_0, Q4_0, Q4_K and Q6_K weights stay block-quantized in
// memory and the linear layers multiply them with quantized_matmul; the embedding dequantizes the rows it
// gathers. Other quantized GGUF types are refused with their name.
llama_model load_llama(const std::filesystem::path& path, const llama_load_options& options = {});
// The GGUF part of load_llama: config from the "<arch>.*" metadata, tensors renamed from llama.cpp's names.
llama_model load_llama_gguf(const std::filesystem::path& path, const llama_load_options& options = {});

// A Llama-family model as GGUF metadata and tensors, laid out as llama.cpp's converter does (the inverse of
// load_llama_gguf): "<arch>.*" keys, llama.cpp tensor names, and for the "llama" architecture (Llama,
// Mistral) the q/k rows regrouped for interleaved RoPE. `weights` use the HF names (checked as llama_model
// does); tensors are shared, not copied. Llama-3 RoPE scaling becomes llama.cpp's rope_freqs tensor (one
// divisor per frequency). Throws std::invalid_argument for weights already in the interleaved layout.
// The key with which a GGUF file holding part of a model (a shipped pipeline stage) records whether the
// model ties its embeddings; a whole model's file says it by having output.weight or not. Such a file also
// sets "<arch>.vocab_size", since it may lack token_embd.weight.
inline constexpr const char* gguf_tie_embeddings_key = "mlxd.tie_word_embeddings";
struct gguf_model {
  gguf_metadata metadata;
  std::map<std::string, array> tensors;
};
gguf_model llama_to_gguf(const llama_config& config, const std::map<std::string, array>& weights);
// A GGUF file as a Hugging Face model (the inverse of llama_to_gguf): config and weights under HF names, q/k
// rows of "llama" files regrouped back to halves (quantized ones dequantized to f32 first); other
// block-quantized weights stay quantized (convert them with astype before writing safetensors).
struct hf_model {
  llama_config config;
  std::map<std::string, array> weights;
};
hf_model llama_from_gguf(const std::filesystem::path& path);
// Loads only the tensors of `stage` from a model folder or GGUF file (the file is mapped and just those
// tensors are copied into memory the process owns), so a pipeline stage holds its own layers and nothing
// else. Tensors that `held` (a stage loaded from the same unchanged files) has are shared from it instead
// of read: a range that grows reads only its new layers. Throws like load_llama, and std::invalid_argument
// for a stage outside the model.
llama_model load_llama_stage(const std::filesystem::path& path, const llama_stage& stage,
                             const llama_model* held = nullptr);
// The config of a model folder or GGUF file, without loading tensors.
llama_config load_llama_config_any(const std::filesystem::path& path);
// The HF names and shapes of the tensors `stage` needs.
std::vector<std::pair<std::string, shape_t>> stage_tensors(const llama_config& config,
                                                           const llama_stage& stage);

// Seeded random weights for `config` (normal * 0.02, norms 1) under HF names, for tests and pre-training.
std::map<std::string, array> init_llama_weights(const llama_config& config, uint64_t seed);

}  // namespace mlxd::models
