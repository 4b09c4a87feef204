// The sampler chain: turns one position's logits into the next token id.
//
// Order: logit bias, repetition penalty (Hugging Face rule: divide positive logits, multiply negative ones),
// presence and frequency penalties (OpenAI rule: subtract presence once and frequency per occurrence), then
// greedy when temperature is 0, else temperature, top-k, top-p (nucleus), min-p, and one draw. Draw i of a
// sampler seeded with s depends only on (s, i), so the same seed gives the same tokens on any thread count.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace mlxd::engine {

struct sampling_params {
  float temperature = 1.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off; keeps tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::map<int32_t, float> logit_bias;  // added to the logit of a token id; -inf bans it
  uint64_t seed = 0;
  int top_logprobs = 0;  // how many alternatives to report (0..20)
};

// Throws std::invalid_argument naming the field for values outside their ranges.
void validate(const sampling_params& params, int vocab_size);

struct token_logprob {
  int32_t id;
  float logprob;  // log-probability under the model's unmodified distribution
};

struct sample_result {
  int32_t id;
  float logprob;
  std::vector<token_logprob> top;  // the `top_logprobs` most likely tokens, most likely first
};

class sampler {
 public:
  sampler(sampling_params params, int vocab_size);

  // Picks the next token from `logits` [vocab] given the ids generated so far (for the penalties).
  sample_result sample(std::span<const float> logits, std::span<const int32_t> history);

  const sampling_params& params() const { return params_; }
  // The index of the next draw. set_step resumes the draws at `step`: a sequence re-prefilled on another
  // node continues with exactly the draws it would have made.
  uint64_t step() const { return step_; }
  void set_step(uint64_t step) { step_ = step; }

 private:
  sampling_params params_;
  int vocab_size_;
  uint64_t step_ = 0;
};

}  // namespace mlxd::engine
