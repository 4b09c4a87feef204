#include <memory>
#include <nlohmann/json.hpp>

#include "mlxd/core/autograd.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/rlhf/grpo.h"
#include "mlxd/rlhf/logprobs.h"
#include "mlxd/rlhf/rewards.h"
#include "mlxd/rlhf/rollout.h"
#include "mlxd/rlhf/rollout_batch.h"
#include "mlxd/trainer/reward_model.h"
#include "objectives.h"
#include "reference_cache.h"

namespace mlxd::trainer {
namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// GRPO: for each prompt record, grpo.group_size completions sampled from the policy's current weights on the
// inference path, scored by the configured reward, with advantages relative to their group; the clipped ratio
// loss (plus a k3 penalty toward the reference when kl_beta > 0) summed over completion tokens, so the step
// divides by the completion tokens of all micro-batches and ranks.
class grpo_objective final : public objective {
 public:
  grpo_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder,
                 const shared_weights& shared)
      : cfg_(c), source_(std::move(source)), encoder_(encoder) {
    if (c.grpo.reward.value("kind", "") == "model") {
      const std::filesystem::path dir = c.grpo.reward.at("path").get<std::string>();
      // It reads the policy's token ids, so it must share the policy's tokenizer.
      const auto tokens_of = [](const std::filesystem::path& d) {
        return content_hash({d / "tokenizer.json"}, "");
      };
      if (tokens_of(dir) != tokens_of(c.tokenizer))
        throw config_error("grpo.reward.path: " + dir.string() + " has another tokenizer than " +
                           c.tokenizer.string());
      reward_model_ = std::make_unique<reward_model>(dir);
    } else
      reward_ = rlhf::parse_reward_spec(c.grpo.reward);
    options_.clip_low = c.grpo.clip_low;
    options_.clip_high = c.grpo.clip_high;
    options_.beta = c.grpo.kl_beta;
    if (c.grpo.kl_beta == 0) return;
    reference_model_ = models::load_llama_config(c.grpo.reference);
    if (c.lora && shared.base && c.grpo.reference == c.model.from) {
      reference_ = shared.base;
    } else {
      owned_ = std::make_unique<std::map<std::string, array>>(load_model_weights(c.grpo.reference).tensors);
      reference_ = owned_.get();
    }
  }

  std::optional<micro_batch> next(const policy_view& policy) override {
    const data::cursor start = source_.position();
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> prompts;
    while (static_cast<int64_t>(prompts.size()) < cfg_.data.batch_size) {
      const std::optional<data::record> r = source_.next();
      if (!r) break;
      texts.push_back(prompt_text(*r));
      prompts.push_back(encode(texts.back(), *r));
    }
    if (prompts.empty()) return std::nullopt;
    const int64_t g = cfg_.grpo.group_size;

    rlhf::rollout_options ro;
    ro.group_size = static_cast<int>(g);
    ro.max_new_tokens = cfg_.grpo.max_new_tokens;
    ro.stop_ids = encoder_.tok().eos_ids();
    ro.sampling.temperature = static_cast<float>(cfg_.grpo.temperature);
    ro.sampling.top_p = static_cast<float>(cfg_.grpo.top_p);
    ro.sampling.top_k = cfg_.grpo.top_k;
    // New draws every step and epoch; the prompt's place in the epoch keeps a micro-batch split drawing the
    // same completions as the whole batch.
    ro.sampling.seed = mix(cfg_.data.seed ^ mix(static_cast<uint64_t>(policy.step) + 1) ^
                           mix(static_cast<uint64_t>(start.epoch) << 32));
    ro.first_prompt_index = static_cast<int64_t>(start.position);
    std::vector<rlhf::rollout> rollouts;
    {
      autograd::no_grad sampling;
      rollouts = rlhf::generate_rollouts(policy.model, policy.weights(*policy.params), prompts, ro);
    }

    std::vector<rlhf::reward_sample> samples;
    int64_t completion_tokens = 0;
    for (const rlhf::rollout& r : rollouts) {
      std::vector<int32_t> ids = r.ids;
      if (r.stopped && !ids.empty()) ids.pop_back();  // the stop token is not text
      samples.push_back({texts[static_cast<size_t>(r.prompt_index)], encoder_.tok().decode(ids),
                         static_cast<int64_t>(r.ids.size())});
      completion_tokens += static_cast<int64_t>(r.ids.size());
    }
    const std::vector<double> rewards = score(prompts, rollouts, samples);
    std::vector<float> rf(rewards.begin(), rewards.end());
    const array reward_array = array::from(rf, {static_cast<int64_t>(rf.size())});
    const rlhf::group_advantages_result adv =
        cfg_.grpo.advantage == "rloo"
            ? rlhf::rloo_advantages(reward_array, g)
            : rlhf::group_advantages(reward_array, g, 1e-4, cfg_.grpo.advantage == "grpo");
    double reward_sum = 0;
    for (double r : rewards)
      if (std::isfinite(r)) reward_sum += r;

    const rlhf::rollout_batch b = rlhf::pack_rollouts(prompts, rollouts);
    array ref;
    if (reference_) {
      autograd::no_grad frozen;
      ref = rlhf::sequence_logprobs(models::training_logits(reference_model_, *reference_, b.inputs),
                                    b.labels, b.mask)
                .tokens;
    }
    micro_batch m;
    m.units = 0;
    for (float v : b.mask.to_vector<float>()) m.units += v;
    m.tokens = completion_tokens;
    const std::vector<double> fixed = {
        reward_sum, static_cast<double>(rollouts.size()), static_cast<double>(completion_tokens),
        static_cast<double>(adv.zero_std_groups), static_cast<double>(adv.groups)};
    m.loss_sum = [forward = policy.forward, b, ref, a = adv.advantages, o = options_, fixed](
                     const std::vector<array>& p, std::vector<double>& stats) {
      const array logp = rlhf::sequence_logprobs(forward(p, b.inputs, false), b.labels, b.mask).tokens;
      // A global count of 1 makes the loss the sum over this batch's tokens; the trainer divides.
      const rlhf::grpo_result r = rlhf::grpo_loss(logp, b.old_logprobs, ref, a, b.mask, 1.0, o);
      for (size_t i = 0; i < fixed.size(); ++i) stats[i] += fixed[i];
      stats[5] += r.kl_sum;
      stats[6] += static_cast<double>(r.clipped_low + r.clipped_high);
      return r.loss;
    };
    return m;
  }

  data::cursor position() const override { return source_.position(); }
  void restore(const data::cursor& c) override { source_.restore(c); }
  const char* unit_name() const override { return "completion tokens"; }
  std::vector<stat_spec> stats() const override {
    return {{"reward", 1},
            {"completions", -1, true},
            {"completion_length", 1},
            {"zero_std_fraction", 4},
            {"groups", -1, true},
            {"kl", -1},
            {"clip_fraction", -1}};
  }

 private:
  // The configured reward of each rollout: a function of its text, or a reward model's score of the prompt
  // and completion tokens.
  std::vector<double> score(const std::vector<std::vector<int32_t>>& prompts,
                            const std::vector<rlhf::rollout>& rollouts,
                            const std::vector<rlhf::reward_sample>& samples) const {
    if (reward_) return reward_->score(samples);
    std::vector<std::vector<int32_t>> sequences;
    for (const rlhf::rollout& r : rollouts) {
      sequences.push_back(prompts[static_cast<size_t>(r.prompt_index)]);
      sequences.back().insert(sequences.back().end(), r.ids.begin(), r.ids.end());
    }
    const std::vector<float> s = reward_model_->score(sequences);
    return {s.begin(), s.end()};
  }

  // A prompt record: {"prompt": ...} in JSON lines (other fields ignored), else the line itself.
  static std::string prompt_text(const data::record& r) {
    if (r.path == nullptr || !data::is_jsonl(*r.path)) return r.text;
    const auto j = nlohmann::json::parse(r.text, nullptr, false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw data::data_error(r.where() + ": a GRPO record needs a string field \"prompt\"");
    return j["prompt"].get<std::string>();
  }

  std::vector<int32_t> encode(const std::string& text, const data::record& r) const {
    const tokenizer& t = encoder_.tok();
    std::vector<int32_t> ids;
    if (t.bos_id()) ids.push_back(*t.bos_id());
    for (int32_t id : t.encode(text, false)) ids.push_back(id);
    if (ids.empty()) throw data::data_error(r.where() + ": the prompt encodes to no tokens");
    return ids;
  }

  const train_config& cfg_;
  data::record_source source_;
  const data::sample_encoder& encoder_;
  std::unique_ptr<rlhf::reward_function> reward_;  // or
  std::unique_ptr<reward_model> reward_model_;
  rlhf::grpo_options options_;
  models::llama_config reference_model_;
  std::unique_ptr<std::map<std::string, array>> owned_;
  const std::map<std::string, array>* reference_ = nullptr;
};

}  // namespace

std::unique_ptr<objective> make_grpo_objective(const train_config& c, data::source_options source,
                                               const data::sample_encoder& encoder,
                                               const shared_weights& shared) {
  return std::make_unique<grpo_objective>(c, std::move(source), encoder, shared);
}

}  // namespace mlxd::trainer
