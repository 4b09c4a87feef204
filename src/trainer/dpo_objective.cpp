#include <memory>

#include "frozen_reference.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"
#include "mlxd/models/llama_config.h"
#include "mlxd/rlhf/dpo.h"
#include "mlxd/rlhf/logprobs.h"
#include "objectives.h"
#include "pair_objective.h"
#include "reference_cache.h"

namespace mlxd::trainer {
namespace fs = std::filesystem;

namespace {

// The summed response log-probs [2N] of a pair batch's rows under `logits`.
array response_logprobs(const array& logits, const pair_batch& b) {
  return rlhf::sequence_logprobs(logits, b.labels, b.mask).sums;
}

// DPO against a frozen reference: the policy's and the reference's summed response log-probs of each pair.
class dpo_objective final : public pair_objective {
 public:
  dpo_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder,
                const shared_weights& shared, int rank)
      : pair_objective(c, std::move(source), encoder), reference_(c, c.dpo.reference, shared) {
    options_.type = rlhf::parse_dpo_loss_type(c.dpo.loss);
    options_.beta = c.dpo.beta;
    options_.label_smoothing = c.dpo.label_smoothing;
    if (c.dpo.cache_reference) {
      std::vector<fs::path> files = reference_.files();
      if (fs::exists(c.tokenizer / "tokenizer.json")) files.push_back(c.tokenizer / "tokenizer.json");
      const std::string name = content_hash(files, "seq_len=" + std::to_string(c.data.seq_len));
      cache_ = std::make_unique<reference_cache>(c.run.out / "reference_cache", name, rank);
    }
  }

  std::optional<micro_batch> next(const policy_view& policy) override {
    const std::optional<pair_batch> next = next_pairs();
    if (!next) return std::nullopt;
    const pair_batch& b = *next;
    const auto [ref_chosen, ref_rejected] = reference_logprobs(b);
    micro_batch m;
    m.units = static_cast<double>(b.pairs);
    m.tokens = b.tokens;
    m.loss_sum = [forward = policy.forward, b, ref_chosen, ref_rejected, o = options_](
                     const std::vector<array>& p, std::vector<double>& stats) {
      const array lp = response_logprobs(forward(p, b.inputs, false), b);
      const rlhf::dpo_result r =
          rlhf::dpo_loss(slice_axis(lp, 0, 0, b.pairs), slice_axis(lp, 0, b.pairs, 2 * b.pairs), ref_chosen,
                         ref_rejected, o);
      stats[0] += static_cast<double>(r.correct);
      stats[1] += sum(r.margins).item<float>();
      stats[2] += sum(r.chosen_rewards).item<float>();
      stats[3] += sum(r.rejected_rewards).item<float>();
      return sum(r.losses);
    };
    return m;
  }

  std::vector<stat_spec> stats() const override {
    return {{"accuracy"}, {"margin"}, {"chosen_reward"}, {"rejected_reward"}};
  }
  nlohmann::json state() const override { return {{"reference", reference_.state_json()}}; }
  void restore_state(const nlohmann::json& state) override {
    reference_.check_state(state.is_object() ? state.value("reference", nlohmann::json()) : state);
  }

 private:
  // The reference's summed log-probs of the chosen [N] and rejected [N] responses, from the cache when it
  // holds every pair of the batch.
  std::pair<array, array> reference_logprobs(const pair_batch& b) {
    std::vector<float> chosen, rejected;
    for (uint64_t key : b.keys) {
      const auto hit = cache_ ? cache_->find(key) : std::nullopt;
      if (!hit) break;
      chosen.push_back(hit->first), rejected.push_back(hit->second);
    }
    if (static_cast<int64_t>(chosen.size()) < b.pairs) {
      autograd::no_grad frozen;
      const std::vector<float> lp = response_logprobs(reference_.logits(b.inputs), b).to_vector<float>();
      chosen.assign(lp.begin(), lp.begin() + b.pairs);
      rejected.assign(lp.begin() + b.pairs, lp.end());
      if (cache_)
        for (int64_t i = 0; i < b.pairs; ++i)
          cache_->add(b.keys[static_cast<size_t>(i)], chosen[static_cast<size_t>(i)],
                      rejected[static_cast<size_t>(i)]);
    }
    return {array::from(chosen, {b.pairs}), array::from(rejected, {b.pairs})};
  }

  rlhf::dpo_options options_;
  frozen_reference reference_;
  std::unique_ptr<reference_cache> cache_;
};

}  // namespace

std::unique_ptr<objective> make_dpo_objective(const train_config& c, data::source_options source,
                                              const data::sample_encoder& encoder,
                                              const shared_weights& shared, int rank) {
  return std::make_unique<dpo_objective>(c, std::move(source), encoder, shared, rank);
}

}  // namespace mlxd::trainer
