#include "rollout_source.h"

#include "mlxd/core/autograd.h"
#include "reference_cache.h"

namespace mlxd::trainer {
namespace {

uint64_t splitmix_finaliser(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

rollout_source::rollout_source(const train_config& c, const rollout_settings& s, std::string name,
                               data::source_options source, const data::sample_encoder& encoder)
    : cfg_(c), settings_(s), name_(std::move(name)), source_(std::move(source)), encoder_(encoder) {
  if (s.reward.value("kind", "") != "model") {
    reward_ = rlhf::parse_reward_spec(s.reward);
    return;
  }
  const std::filesystem::path dir = s.reward.at("path").get<std::string>();
  // It reads the policy's token ids, so it must share the policy's tokenizer.
  const auto tokens_of = [](const std::filesystem::path& d) {
    return content_hash({d / "tokenizer.json"}, "");
  };
  if (tokens_of(dir) != tokens_of(c.tokenizer))
    throw config_error(name_ + ".reward.path: " + dir.string() + " has another tokenizer than " +
                       c.tokenizer.string());
  reward_model_ = std::make_unique<reward_model>(dir);
}

std::optional<scored_rollouts> rollout_source::next(const policy_view& policy, int64_t n_prompts,
                                                    int group_size) {
  const data::cursor start = source_.position();
  scored_rollouts out;
  std::vector<std::string> texts;
  rlhf::rollout_options ro;
  while (static_cast<int64_t>(out.prompts.size()) < n_prompts) {
    const std::optional<data::record> r = source_.next();
    if (!r) break;
    // The record's file and line name the prompt in the seeds, whichever rank reads it.
    ro.prompt_ids.push_back(static_cast<int64_t>((r->file << 40) | r->line));
    data::prompt_sample p = encoder_.encode_prompt(*r);
    texts.push_back(std::move(p.text));
    out.prompts.push_back(std::move(p.ids));
  }
  if (out.prompts.empty()) return std::nullopt;

  ro.group_size = group_size;
  ro.max_new_tokens = settings_.max_new_tokens;
  ro.stop_ids = encoder_.tok().eos_ids();
  ro.sampling.temperature = static_cast<float>(settings_.temperature);
  ro.sampling.top_p = static_cast<float>(settings_.top_p);
  ro.sampling.top_k = settings_.top_k;
  const auto mix = splitmix_finaliser;
  ro.sampling.seed = mix(cfg_.data.seed ^ mix(static_cast<uint64_t>(policy.step) + 1) ^
                         mix(static_cast<uint64_t>(start.epoch) << 32));
  {
    autograd::no_grad sampling;
    out.rollouts = rlhf::generate_rollouts(policy.model, policy.weights(*policy.params), out.prompts, ro);
  }
  for (const rlhf::rollout& r : out.rollouts) out.completion_tokens += static_cast<int64_t>(r.ids.size());
  out.rewards = score(out, texts);
  return out;
}

// The configured reward of each rollout: a function of its text, or a reward model's score of the prompt
// and completion tokens.
std::vector<double> rollout_source::score(const scored_rollouts& s,
                                          const std::vector<std::string>& texts) const {
  if (reward_) {
    std::vector<rlhf::reward_sample> samples;
    for (const rlhf::rollout& r : s.rollouts) {
      std::vector<int32_t> ids = r.ids;
      if (r.stopped && !ids.empty()) ids.pop_back();  // the stop token is not text
      samples.push_back({texts[static_cast<size_t>(r.prompt_index)], encoder_.tok().decode(ids),
                         static_cast<int64_t>(r.ids.size())});
    }
    return reward_->score(samples);
  }
  std::vector<std::vector<int32_t>> sequences;
  for (const rlhf::rollout& r : s.rollouts) {
    sequences.push_back(s.prompts[static_cast<size_t>(r.prompt_index)]);
    sequences.back().insert(sequences.back().end(), r.ids.begin(), r.ids.end());
  }
  const std::vector<float> scores = reward_model_->score(sequences);
  return {scores.begin(), scores.end()};
}

}  // namespace mlxd::trainer
