// KL estimators between the policy and the reference per token, the KL-penalised token rewards of PPO, and
// the KL coefficient controllers (fixed, or adaptive toward a target KL as in Ziegler et al. 2019).
#pragma once

#include <cstdint>
#include <string>

#include "mlxd/core/array.h"

namespace mlxd::rlhf {

// The largest |log-ratio| fed to an exponential: exp(20) ~ 4.9e8 stays finite in f32 and in its gradient.
inline constexpr double max_log_ratio = 20.0;

// k1 = logp - ref_logp per token (an unbiased estimate of KL(policy || reference) on policy samples; can be
// negative). Float arrays of one shape; f32 result, differentiable.
array kl_k1(const array& logp, const array& ref_logp);
// k3 = exp(d) - d - 1 with d = clamp(ref_logp - logp, -max_log_ratio, max_log_ratio) (Schulman's low-variance
// estimator): >= 0 everywhere, computed as expm1(d) - d so it keeps its precision for small d. f32,
// differentiable (zero gradient where d is clamped).
array kl_k3(const array& logp, const array& ref_logp);

// PPO's per-token rewards: -beta * (logp - ref_logp) at every valid token, plus score[b] at the last valid
// token of row b (rows with no valid token get nothing). logp, ref_logp, mask [B, T]; scores [B]. f32, no
// gradient (rewards are constants of the loss). Throws std::invalid_argument for bad shapes, beta < 0, or
// non-finite values at valid positions.
array kl_penalized_rewards(const array& scores, const array& logp, const array& ref_logp, const array& mask,
                           double beta);

// The KL coefficient. Fixed: beta never changes. Adaptive (TRL's AdaptiveKLController): after a batch of
// n_steps samples with mean KL `current`, beta *= 1 + clamp(current / target - 1, -0.2, 0.2) * n_steps /
// horizon.
class kl_controller {
 public:
  static kl_controller fixed(double beta);
  static kl_controller adaptive(double initial_beta, double target, double horizon);

  double beta() const { return beta_; }
  bool is_adaptive() const { return adaptive_; }
  double target() const { return target_; }
  double horizon() const { return horizon_; }
  // Throws std::invalid_argument for a non-finite or negative current KL or a negative n_steps.
  void update(double current, int64_t n_steps);

  // The whole state as one JSON object, e.g. {"adaptive":true,"beta":0.1,"target":6,"horizon":10000};
  // doubles round-trip exactly. from_json throws std::invalid_argument naming a missing or bad field.
  std::string to_json() const;
  static kl_controller from_json(const std::string& text);

  bool operator==(const kl_controller&) const = default;

 private:
  kl_controller(bool adaptive, double beta, double target, double horizon);
  bool adaptive_ = false;
  double beta_ = 0, target_ = 0, horizon_ = 0;
};

}  // namespace mlxd::rlhf
