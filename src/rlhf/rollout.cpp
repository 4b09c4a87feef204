#include "mlxd/rlhf/rollout.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"

namespace mlxd::rlhf {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("[generate_rollouts] " + what);
}

void check(const models::llama_model& model, const std::vector<std::vector<int32_t>>& prompts,
           const rollout_options& o) {
  const models::llama_config& c = model.config();
  const models::llama_stage& s = model.stage();
  if (!s.embedding || !s.head || s.n_layers() != c.n_layers)
    bad("the model holds a pipeline stage, not all of it");
  if (o.group_size < 1) bad("group_size must be >= 1, got " + std::to_string(o.group_size));
  if (o.max_new_tokens < 1) bad("max_new_tokens must be >= 1, got " + std::to_string(o.max_new_tokens));
  if (o.first_prompt_index < 0) bad("first_prompt_index must be >= 0");
  if (!o.prompt_ids.empty() && o.prompt_ids.size() != prompts.size())
    bad("prompt_ids must hold one id per prompt");
  engine::validate(o.sampling, c.vocab_size);
  for (int32_t id : o.stop_ids) {
    if (id < 0 || id >= c.vocab_size) bad("stop id " + std::to_string(id) + " is outside the vocabulary");
  }
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::string name = "prompt " + std::to_string(p);
    if (prompts[p].empty()) bad(name + " is empty");
    for (int32_t id : prompts[p]) {
      if (id < 0 || id >= c.vocab_size)
        bad(name + " holds token " + std::to_string(id) + ", outside the vocabulary");
    }
    const int64_t need = static_cast<int64_t>(prompts[p].size()) + o.max_new_tokens;
    if (c.max_position_embeddings > 0 && need > c.max_position_embeddings) {
      bad(name + " of " + std::to_string(prompts[p].size()) + " tokens plus max_new_tokens " +
          std::to_string(o.max_new_tokens) + " exceeds max_position_embeddings " +
          std::to_string(c.max_position_embeddings));
    }
  }
}

// A cache of `capacity` positions holding a copy of `src`'s positions (kv_cache copies share buffers).
models::kv_cache copy_cache(const models::llama_model& model, const models::kv_cache& src, int capacity) {
  models::kv_cache out = model.make_cache(capacity);
  const int n = src.length();
  for (int l = 0; l < src.n_layers(); ++l) out.write(l, src.keys(l, n), src.values(l, n));
  out.commit(n);
  return out;
}

// Each sequence's own seed, from Philox keyed by the call's seed: members and prompts draw independently.
uint64_t sequence_seed(uint64_t seed, int64_t prompt, int member) {
  const auto p = static_cast<uint64_t>(prompt);
  const uint32_t counter[4] = {static_cast<uint32_t>(p), static_cast<uint32_t>(p >> 32),
                               static_cast<uint32_t>(member), 0x524f4c4cu};
  uint32_t words[4];
  random::philox(counter, seed, words);
  return static_cast<uint64_t>(words[0]) | static_cast<uint64_t>(words[1]) << 32;
}

// Logits of any float dtype as contiguous f32 rows for the sampler.
array f32_rows(const array& logits) {
  return contiguous(astype(logits, dtype::f32));
}

struct sequence {
  rollout result;
  models::kv_cache cache;
  engine::sampler sampler;
  bool done = false;
};

// Samples the next token of `s` from its logits row and records it; ends the sequence on a stop id or length.
void advance(sequence& s, const float* logits, int vocab, const rollout_options& o) {
  const engine::sample_result r = s.sampler.sample({logits, static_cast<size_t>(vocab)}, s.result.ids);
  s.result.ids.push_back(r.id);
  s.result.logprobs.push_back(r.logprob);
  s.result.stopped = std::find(o.stop_ids.begin(), o.stop_ids.end(), r.id) != o.stop_ids.end();
  s.done = s.result.stopped || static_cast<int>(s.result.ids.size()) >= o.max_new_tokens;
}

}  // namespace

std::vector<rollout> generate_rollouts(const models::llama_model& model,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const rollout_options& o) {
  check(model, prompts, o);
  if (prompts.empty()) return {};
  const int vocab = model.config().vocab_size;
  engine::sampling_params params = o.sampling;
  params.top_logprobs = 0;

  // Prefill every prompt once, in one batched pass.
  std::vector<models::kv_cache> prompt_caches;
  std::vector<models::kv_cache*> prompt_ptrs;
  for (const auto& p : prompts)
    prompt_caches.push_back(model.make_cache(static_cast<int>(p.size()) + o.max_new_tokens));
  for (auto& c : prompt_caches) prompt_ptrs.push_back(&c);
  const array first = f32_rows(model.forward_batch(prompts, prompt_ptrs));  // [P, vocab]

  std::vector<sequence> seqs;
  seqs.reserve(prompts.size() * o.group_size);
  for (size_t p = 0; p < prompts.size(); ++p) {
    const int capacity = prompt_caches[p].capacity();
    for (int g = 0; g < o.group_size; ++g) {
      const int64_t id =
          o.prompt_ids.empty() ? o.first_prompt_index + static_cast<int64_t>(p) : o.prompt_ids[p];
      params.seed = sequence_seed(o.sampling.seed, id, g);
      // The last member takes the prompt's cache itself; the others take copies.
      models::kv_cache cache =
          g + 1 < o.group_size ? copy_cache(model, prompt_caches[p], capacity) : std::move(prompt_caches[p]);
      sequence s{rollout{static_cast<int>(p), g, {}, {}, false}, std::move(cache),
                 engine::sampler(params, vocab)};
      advance(s, first.data<float>() + p * vocab, vocab, o);
      seqs.push_back(std::move(s));
    }
  }
  prompt_caches.clear();

  // One batched step per token over the unfinished sequences.
  for (;;) {
    std::vector<sequence*> active;
    std::vector<std::vector<int32_t>> tokens;
    std::vector<models::kv_cache*> caches;
    for (sequence& s : seqs) {
      if (s.done) continue;
      active.push_back(&s);
      tokens.push_back({s.result.ids.back()});
      caches.push_back(&s.cache);
    }
    if (active.empty()) break;
    const array logits = f32_rows(model.forward_batch(tokens, caches));  // [n_active, vocab]
    for (size_t i = 0; i < active.size(); ++i)
      advance(*active[i], logits.data<float>() + i * vocab, vocab, o);
  }

  std::vector<rollout> out;
  out.reserve(seqs.size());
  for (sequence& s : seqs) out.push_back(std::move(s.result));
  return out;
}

std::vector<rollout> generate_rollouts(const models::llama_config& config,
                                       const std::map<std::string, array>& weights,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const rollout_options& options) {
  return generate_rollouts(models::llama_model(config, weights), prompts, options);
}

}  // namespace mlxd::rlhf
