#include "mlxd/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "mlxd/core/allocator.h"
#include "mlxd/core/random.h"
#include "mlxd/core/row_ops.h"
#include "token_draw.h"

namespace mlxd::engine {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("[sampling] " + what);
}

// The raw logits' log-softmax is (logit - max) - log_sum, as log_softmax computes it (max + log_sum would
// round log_sum away for a huge max).
struct normaliser {
  float max = 0, log_sum = 0;
  float logprob(float logit) const { return (logit - max) - log_sum; }
};

normaliser normaliser_of(std::span<const float> logits) {
  normaliser n;
  n.log_sum = std::log(exp_sum_row(logits, &n.max));
  return n;
}

bool adjusts_logits(const sampling_params& p) {
  return !p.logit_bias.empty() || p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f ||
         p.frequency_penalty != 0.0f;
}

}  // namespace

void validate(const sampling_params& p, int vocab_size) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) bad("temperature must be >= 0");
  if (p.top_k < 0) bad("top_k must be >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) bad("top_p must be in (0, 1]");
  if (!(p.min_p >= 0 && p.min_p <= 1)) bad("min_p must be in [0, 1]");
  if (!(p.repetition_penalty > 0) || !std::isfinite(p.repetition_penalty))
    bad("repetition_penalty must be > 0");
  if (!std::isfinite(p.presence_penalty) || !std::isfinite(p.frequency_penalty))
    bad("penalties must be finite");
  if (p.top_logprobs < 0 || p.top_logprobs > 20) bad("top_logprobs must be in [0, 20]");
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab_size)
      bad("logit_bias token " + std::to_string(id) + " is outside the vocabulary");
    if (std::isnan(bias)) bad("logit_bias of token " + std::to_string(id) + " is NaN");
  }
}

sampler::sampler(sampling_params params, int vocab_size)
    : params_(std::move(params)), vocab_size_(vocab_size) {
  validate(params_, vocab_size_);
}

sample_result sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (static_cast<int>(logits.size()) != vocab_size_) {
    bad("got " + std::to_string(logits.size()) + " logits for a vocabulary of " +
        std::to_string(vocab_size_));
  }
  const uint64_t step = step_++;
  // Biases and penalties change a copy; without them (greedy decode, say) the logits are read as they are.
  std::optional<allocator::buffer<float>> scratch;  // no fresh pages to fault in, token after token
  std::span<const float> x = logits;
  if (adjusts_logits(params_)) {
    scratch.emplace(logits.size());
    const std::span<float> y = scratch->span();
    std::copy(logits.begin(), logits.end(), y.begin());
    for (const auto& [id, bias] : params_.logit_bias) y[id] += bias;
    std::unordered_map<int32_t, int> counts;
    for (int32_t id : history) {
      if (id >= 0 && id < vocab_size_) ++counts[id];
    }
    for (const auto& [id, n] : counts) {
      float& v = y[id];
      if (params_.repetition_penalty != 1.0f)
        v = v > 0 ? v / params_.repetition_penalty : v * params_.repetition_penalty;
      v -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(n);
    }
    x = y;
  }

  const auto best = std::max_element(x.begin(), x.end());
  if (*best == -INFINITY) bad("every token is banned (all logits are -inf)");
  int32_t chosen = static_cast<int32_t>(best - x.begin());
  if (params_.temperature != 0.0f && params_.top_k != 1) {
    uint32_t words[4];
    const uint32_t counter[4] = {static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), 0x53414d50u,
                                 0};
    random::philox(counter, params_.seed, words);
    const double r =
        (static_cast<double>(words[0]) + static_cast<double>(words[1] >> 11) * 0x1p-21) * 0x1p-32;
    chosen = detail::draw_token(x, params_, r);
  }

  const normaliser z = normaliser_of(logits);
  sample_result result{chosen, z.logprob(logits[chosen]), {}};
  if (params_.top_logprobs > 0) {
    std::vector<float> lp(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) lp[i] = z.logprob(logits[i]);
    std::vector<int32_t> ids(lp.size());
    std::iota(ids.begin(), ids.end(), 0);
    const size_t n = std::min<size_t>(params_.top_logprobs, ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(),
                      [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
    for (size_t i = 0; i < n; ++i) result.top.push_back({ids[i], lp[ids[i]]});
  }
  return result;
}

}  // namespace mlxd::engine
