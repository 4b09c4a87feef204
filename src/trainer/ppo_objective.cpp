#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "frozen_reference.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/core/random.h"
#include "mlxd/rlhf/kl.h"
#include "mlxd/rlhf/logprobs.h"
#include "mlxd/rlhf/masked.h"
#include "mlxd/rlhf/ppo.h"
#include "mlxd/rlhf/rollout_batch.h"
#include "objectives.h"
#include "rollout_source.h"

namespace mlxd::trainer {
namespace {

using row_values = std::vector<std::vector<float>>;  // per rollout, one value per completion token

// The values of `x` [B, T] at each row's valid positions of `mask`, in order.
row_values valid_values(const array& x, const array& mask) {
  const std::vector<float> v = astype(x, dtype::f32).to_vector<float>();
  const std::vector<float> m = mask.to_vector<float>();
  const int64_t rows = mask.shape(0), cols = mask.shape(1);
  row_values out(static_cast<size_t>(rows));
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t t = 0; t < cols; ++t)
      if (m[static_cast<size_t>(b * cols + t)] != 0)
        out[static_cast<size_t>(b)].push_back(v[static_cast<size_t>(b * cols + t)]);
  return out;
}

// The inverse of valid_values: `values` of the rows `rows` laid out at the valid positions of `mask`.
array place(const row_values& values, const std::vector<size_t>& rows, const array& mask) {
  const std::vector<float> m = mask.to_vector<float>();
  const int64_t cols = mask.shape(1);
  std::vector<float> out(m.size(), 0.0f);
  for (size_t i = 0; i < rows.size(); ++i) {
    size_t k = 0;
    for (int64_t t = 0; t < cols; ++t) {
      const size_t at = i * static_cast<size_t>(cols) + static_cast<size_t>(t);
      if (m[at] != 0) out[at] = values[rows[i]].at(k++);
    }
  }
  return array::from(out, mask.shape());
}

// The value head on the final hidden states [B, T, H]: [B, T].
array value_of(const array& hidden, const array& weight, const array& bias) {
  const int64_t b = hidden.shape(0), t = hidden.shape(1), h = hidden.shape(2);
  const array v = add(matmul(reshape(hidden, {b * t, h}), transpose(weight)), bias);
  return reshape(v, {b, t});
}

// One rollout batch with everything its updates read: the rollouts and, per completion token, the values,
// advantages and returns computed when it was sampled.
struct rollout_buffer {
  scored_rollouts s;
  row_values old_values, advantages, returns;
  std::vector<double> kl;     // per rollout: the summed k1 to the reference
  std::vector<double> kl_k3;  // per rollout: the summed k3 (>= 0, lower variance; reported beside k1)
  std::vector<bool> used;     // false: a non-finite reward, left out of the updates
  double beta = 0;
};

// PPO with a value head on the shared backbone: each step samples one completion per prompt of data.
// batch_size prompts, scores it, penalises each token's KL to the reference (beta fixed or adaptive), runs
// GAE and whitens the advantages over all ranks, then makes ppo.epochs x ppo.minibatches optimizer updates
// over shuffled minibatches of that batch (trainer: updates_per_step). Losses are summed over completion
// tokens: the clipped surrogate, value_coef times the clipped value loss, minus entropy_coef times the
// entropy.
class ppo_objective final : public objective {
 public:
  ppo_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder,
                const shared_weights& shared)
      : cfg_(c),
        rollouts_(c, c.ppo.rollout, "ppo", std::move(source), encoder),
        kl_(c.ppo.kl_target > 0
                ? rlhf::kl_controller::adaptive(c.ppo.kl_beta, c.ppo.kl_target, c.ppo.kl_horizon)
                : rlhf::kl_controller::fixed(c.ppo.kl_beta)) {
    if (c.ppo.kl_beta > 0)
      reference_ = std::make_unique<frozen_reference>(c, c.ppo.rollout.reference, shared);
  }

  std::optional<micro_batch> next(const policy_view& policy) override {
    if (!policy.training) {
      // Validation: a fresh batch of held-out prompts as one micro-batch, the policy equal to the sampler.
      std::optional<rollout_buffer> b = make_buffer(policy, false);
      if (!b) return std::nullopt;
      buffer_ = std::move(*b);
      std::vector<size_t> all(buffer_.s.rollouts.size());
      std::iota(all.begin(), all.end(), 0);
      return batch_of(policy, all, true);
    }
    const int64_t per_epoch = cfg_.ppo.minibatches * cfg_.optim.accumulation;
    if (served_ == 0 || served_ == cfg_.ppo.epochs * per_epoch) {
      std::optional<rollout_buffer> b = make_buffer(policy, true);
      if (!b) return std::nullopt;
      buffer_ = std::move(*b);
      served_ = 0;
    }
    const int64_t epoch = served_ / per_epoch, part = served_ % per_epoch;
    if (part == 0) order_ = shuffled(policy.step, epoch);
    ++served_;
    const size_t size = order_.size() / static_cast<size_t>(per_epoch);
    const auto first = order_.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(part) * size);
    return batch_of(policy, {first, first + static_cast<std::ptrdiff_t>(size)}, epoch == 0);
  }

  data::cursor position() const override { return rollouts_.position(); }
  void restore(const data::cursor& c) override {
    rollouts_.restore(c);
    served_ = 0;
  }
  const char* unit_name() const override { return "completion tokens"; }
  int64_t updates_per_step() const override { return cfg_.ppo.epochs * cfg_.ppo.minibatches; }

  std::vector<stat_spec> stats() const override {
    using reduce = stat_spec::reduce;
    return {{"reward", 1},
            {"completions", -1, true},
            {"completion_length", 1},
            {"kl", 1},
            {"kl_beta", 1},
            {"excluded", -1, true},
            {"policy_loss"},
            {"value_loss"},
            {"entropy"},
            {"clip_fraction"},
            {"value_clip_fraction"},
            {"ratio_min", -1, false, reduce::min},
            {"ratio_max", -1, false, reduce::max},
            {"kl_k3", 1}};
  }

  nlohmann::json state() const override {
    nlohmann::json s = {{"kl_controller", nlohmann::json::parse(kl_.to_json())}};
    if (reference_) s["reference"] = reference_->state_json();
    return s;
  }

  void restore_state(const nlohmann::json& state) override {
    if (!state.is_object() || !state.contains("kl_controller"))
      throw config_error("the checkpoint has no KL controller state; it was not written by a ppo run");
    const rlhf::kl_controller saved = rlhf::kl_controller::from_json(state["kl_controller"].dump());
    if (saved.is_adaptive() != kl_.is_adaptive() || saved.target() != kl_.target() ||
        saved.horizon() != kl_.horizon())
      throw config_error("ppo.kl_target or kl_horizon differ from the checkpoint's; resume with the same");
    kl_ = saved;
    if (reference_) reference_->check_state(state.value("reference", nlohmann::json()));
  }

 private:
  // The rows of the batch in a fresh order for each step and epoch, the same on every run.
  std::vector<size_t> shuffled(int64_t step, int64_t epoch) const {
    std::vector<size_t> order(buffer_.s.rollouts.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 gen(cfg_.data.seed ^ (static_cast<uint64_t>(step) * 0x9e3779b97f4a7c15ull) ^
                        (static_cast<uint64_t>(epoch) << 48));
    std::shuffle(order.begin(), order.end(), gen);
    return order;
  }

  // Samples data.batch_size prompts' completions and computes what the updates need, with the policy as it
  // is now. Training whitens over all ranks and adapts beta; validation does neither (its ranks may hold
  // different numbers of prompts, so it cannot meet in a collective).
  std::optional<rollout_buffer> make_buffer(const policy_view& policy, bool training) {
    std::optional<scored_rollouts> s = rollouts_.next(policy, cfg_.data.batch_size, 1);
    if (!s) return std::nullopt;
    rollout_buffer out;
    out.beta = kl_.beta();
    const size_t n = s->rollouts.size();
    out.used.assign(n, true);
    std::vector<float> scores(n, 0.0f);
    for (size_t i = 0; i < n; ++i) {
      out.used[i] = std::isfinite(s->rewards[i]);
      scores[i] = out.used[i] ? static_cast<float>(s->rewards[i]) : 0.0f;
    }
    const rlhf::rollout_batch b = rlhf::pack_rollouts(s->prompts, s->rollouts);
    // Rows with a non-finite reward take no part: no reward, no advantage, no loss.
    std::vector<float> row_keep(b.mask.size());
    const int64_t cols = b.mask.shape(1);
    for (size_t i = 0; i < row_keep.size(); ++i)
      row_keep[i] = out.used[i / static_cast<size_t>(cols)] ? 1.0f : 0.0f;
    const array mask = multiply(b.mask, array::from(row_keep, b.mask.shape()));

    autograd::no_grad constants;
    const array values = value_of(policy.forward_both(*policy.params, b.inputs, false).second,
                                  head(policy, value_weight_name), head(policy, value_bias_name));
    const array ref = reference_
                          ? rlhf::sequence_logprobs(reference_->logits(b.inputs), b.labels, mask).tokens
                          : b.old_logprobs;
    const array rewards = rlhf::kl_penalized_rewards(array::from(scores, {static_cast<int64_t>(n)}),
                                                     b.old_logprobs, ref, mask, out.beta);
    const rlhf::gae_result g = rlhf::gae(rewards, values, mask, cfg_.ppo.gamma, cfg_.ppo.lambda);
    array advantages = g.advantages;
    if (cfg_.ppo.whiten_advantages)
      advantages =
          training ? whiten_over_ranks(policy, g.advantages, mask) : local_whiten(g.advantages, mask);

    out.old_values = valid_values(values, b.mask);
    out.advantages = valid_values(advantages, b.mask);
    out.returns = valid_values(g.returns, b.mask);
    const row_values k1 = valid_values(subtract(b.old_logprobs, ref), b.mask);
    const row_values k3 = valid_values(rlhf::kl_k3(b.old_logprobs, ref), b.mask);
    double kl_sum = 0, used = 0;
    for (size_t i = 0; i < n; ++i) {
      out.kl_k3.push_back(std::accumulate(k3[i].begin(), k3[i].end(), 0.0));
      out.kl.push_back(std::accumulate(k1[i].begin(), k1[i].end(), 0.0));
      if (out.used[i]) kl_sum += out.kl.back(), used += 1;
    }
    if (training && kl_.is_adaptive()) {
      // The controller moves after each batch by the mean KL per completion of all ranks.
      const std::vector<double> t = policy.sum_over_ranks({kl_sum, used});
      // k1 is unbiased but its mean can fall below 0 by sampling noise; the controller reads that as 0.
      if (t[1] > 0) kl_.update(std::max(0.0, t[0] / t[1]), static_cast<int64_t>(t[1]));
    }
    out.s = std::move(*s);
    return out;
  }

  static array local_whiten(const array& x, const array& mask) {
    return sum(mask).item<float>() > 0 ? rlhf::whiten(x, mask) : x;
  }

  // rlhf::whiten over the valid tokens of every rank: the mean, then the unbiased variance, each summed over
  // the ranks, so any split of the batch gives the same advantages.
  static array whiten_over_ranks(const policy_view& policy, const array& x, const array& mask) {
    const std::vector<float> v = x.to_vector<float>(), m = mask.to_vector<float>();
    double n = 0, total = 0;
    for (size_t i = 0; i < v.size(); ++i)
      if (m[i] != 0) n += 1, total += v[i];
    const std::vector<double> first = policy.sum_over_ranks({n, total});
    if (first[0] == 0) return x;  // no valid token anywhere: nothing to whiten
    const double mean = first[1] / first[0];
    double squares = 0;
    for (size_t i = 0; i < v.size(); ++i)
      if (m[i] != 0) squares += (v[i] - mean) * (v[i] - mean);
    const double total_squares = policy.sum_over_ranks({squares})[0];
    const double var = first[0] > 1 ? total_squares / (first[0] - 1) : 0.0;
    const double scale = 1.0 / std::sqrt(var + 1e-8);
    std::vector<float> out(v.size(), 0.0f);
    for (size_t i = 0; i < v.size(); ++i)
      if (m[i] != 0) out[i] = static_cast<float>((v[i] - mean) * scale);
    return array::from(out, x.shape());
  }

  static array head(const policy_view& policy, const char* name) {
    const auto& names = policy.param_names;
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) throw std::logic_error(std::string("the PPO policy has no ") + name);
    return (*policy.params)[static_cast<size_t>(it - names.begin())];
  }

  static size_t index_of(const policy_view& policy, const char* name) {
    const auto& names = policy.param_names;
    return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  }

  // A micro-batch of the buffer's rows `rows`; the rollout statistics are added once per batch (first).
  micro_batch batch_of(const policy_view& policy, const std::vector<size_t>& rows, bool first) const {
    std::vector<rlhf::rollout> picked;
    std::vector<size_t> kept;
    double rollout_stats[6] = {0, 0, 0, 0, 0, 0};
    double k3_sum = 0;
    for (size_t r : rows) {
      const rlhf::rollout& x = buffer_.s.rollouts[r];
      if (first) {
        rollout_stats[1] += 1;
        rollout_stats[2] += static_cast<double>(x.ids.size());
        if (buffer_.used[r]) {
          rollout_stats[0] += buffer_.s.rewards[r];
          rollout_stats[3] += buffer_.kl[r];
          k3_sum += buffer_.kl_k3[r];
        } else {
          rollout_stats[5] += 1;
        }
        rollout_stats[4] += buffer_.beta;
      }
      if (!buffer_.used[r]) continue;
      picked.push_back(x);
      kept.push_back(r);
    }
    micro_batch m;
    m.units = 0;
    m.tokens = 0;
    if (picked.empty()) {
      // Every row of this part had a non-finite reward: it adds its statistics and nothing else.
      m.loss_sum = [first, rollout_stats](const std::vector<array>&, std::vector<double>& stats) {
        if (first)
          for (size_t i = 0; i < 6; ++i) stats[i] += rollout_stats[i];
        return array(0.0f);
      };
      return m;
    }
    const rlhf::rollout_batch b = rlhf::pack_rollouts(buffer_.s.prompts, picked);
    for (const rlhf::rollout& x : picked) m.tokens += static_cast<int64_t>(x.ids.size());
    m.units = static_cast<double>(m.tokens);
    const array old_values = place(buffer_.old_values, kept, b.mask);
    const array advantages = place(buffer_.advantages, kept, b.mask);
    const array returns = place(buffer_.returns, kept, b.mask);
    const size_t w = index_of(policy, value_weight_name), bias = index_of(policy, value_bias_name);
    m.loss_sum = [forward = policy.forward_both, training = policy.training, b, old_values, advantages,
                  returns, w, bias, first, rollout_stats, k3_sum,
                  p = cfg_.ppo](const std::vector<array>& params, std::vector<double>& stats) {
      const auto [logits, hidden] = forward(params, b.inputs, training);
      const array logp = rlhf::sequence_logprobs(logits, b.labels, b.mask).tokens;
      const array values = value_of(hidden, params[w], params[bias]);
      const rlhf::policy_loss_result pl =
          rlhf::clipped_policy_loss(logp, b.old_logprobs, advantages, b.mask, p.clip, p.clip);
      const rlhf::value_loss_result vl =
          rlhf::clipped_value_loss(values, old_values, returns, b.mask, p.value_clip);
      const array policy_sum = sum(pl.losses), value_sum = sum(vl.losses);
      array loss = add(policy_sum, multiply(value_sum, array(static_cast<float>(p.value_coef))));
      array entropy;
      if (p.entropy_coef > 0) {
        entropy = sum(rlhf::entropy_from_logits(logits, b.mask));
        loss = subtract(loss, multiply(entropy, array(static_cast<float>(p.entropy_coef))));
      } else {
        autograd::no_grad metric;
        entropy = sum(rlhf::entropy_from_logits(logits, b.mask));
      }
      if (first) {
        for (size_t i = 0; i < 6; ++i) stats[i] += rollout_stats[i];
        stats[13] += k3_sum;
      }
      stats[6] += policy_sum.item<float>();
      stats[7] += value_sum.item<float>();
      stats[8] += entropy.item<float>();
      stats[9] += static_cast<double>(pl.clipped_low + pl.clipped_high);
      stats[10] += static_cast<double>(vl.clipped);
      stats[11] = std::min(stats[11], pl.ratio_min);
      stats[12] = std::max(stats[12], pl.ratio_max);
      return loss;
    };
    return m;
  }

  const train_config& cfg_;
  rollout_source rollouts_;
  rlhf::kl_controller kl_;
  std::unique_ptr<frozen_reference> reference_;  // with kl_beta > 0
  rollout_buffer buffer_;
  std::vector<size_t> order_;  // this epoch's row order
  int64_t served_ = 0;         // micro-batches handed out from buffer_
};

}  // namespace

std::unique_ptr<objective> make_ppo_objective(const train_config& c, data::source_options source,
                                              const data::sample_encoder& encoder,
                                              const shared_weights& shared) {
  return std::make_unique<ppo_objective>(c, std::move(source), encoder, shared);
}

}  // namespace mlxd::trainer
