#include "mlxd/rlhf/kl.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "checks.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/masked.h"

namespace mlxd::rlhf {

array kl_k1(const array& logp, const array& ref_logp) {
  detail::expect_float("kl_k1", "ref_logp", ref_logp, logp.shape());
  detail::expect_float("kl_k1", "logp", logp, logp.shape());
  return subtract(detail::f32(logp), detail::f32(ref_logp));
}

array kl_k3(const array& logp, const array& ref_logp) {
  detail::expect_float("kl_k3", "ref_logp", ref_logp, logp.shape());
  detail::expect_float("kl_k3", "logp", logp, logp.shape());
  const array d = clip(subtract(detail::f32(ref_logp), detail::f32(logp)), -max_log_ratio, max_log_ratio);
  // expm1(d) - d can round a hair below 0 where d^2/2 is under an ulp of d; the true value is >= 0.
  return maximum(subtract(expm1(d), d), array(0.0f));
}

array kl_penalized_rewards(const array& scores, const array& logp, const array& ref_logp, const array& mask,
                           double beta) {
  constexpr const char* fn = "kl_penalized_rewards";
  if (logp.ndim() != 2) detail::fail(fn, "logp must be [B, T], got " + logp.to_string());
  detail::expect_float(fn, "logp", logp, logp.shape());
  detail::expect_float(fn, "ref_logp", ref_logp, logp.shape());
  detail::expect_float(fn, "scores", scores, {logp.shape(0)});
  if (!(beta >= 0) || !std::isfinite(beta))
    detail::fail(fn, "beta must be finite and >= 0, got " + std::to_string(beta));
  const std::vector<uint8_t> m = valid_mask(mask, logp.shape(), fn).to_vector<uint8_t>();
  const std::vector<double> lp = logp.to_vector<double>(), ref = ref_logp.to_vector<double>();
  const std::vector<double> s = scores.to_vector<double>();
  const int64_t rows = logp.shape(0), cols = logp.shape(1);
  std::vector<float> out(lp.size(), 0.0f);
  for (int64_t b = 0; b < rows; ++b) {
    int64_t last = -1;
    for (int64_t t = 0; t < cols; ++t) {
      const int64_t i = b * cols + t;
      if (!m[i]) continue;
      if (!std::isfinite(lp[i]) || !std::isfinite(ref[i])) {
        detail::fail(fn, "non-finite log-prob at valid position [" + std::to_string(b) + ", " +
                             std::to_string(t) + "]");
      }
      out[i] = static_cast<float>(-beta * (lp[i] - ref[i]));
      last = i;
    }
    if (last >= 0) {
      if (!std::isfinite(s[b])) detail::fail(fn, "non-finite score for row " + std::to_string(b));
      out[last] = static_cast<float>(out[last] + s[b]);
    }
  }
  return array::from(out, logp.shape(), dtype::f32);
}

kl_controller::kl_controller(bool adaptive, double beta, double target, double horizon)
    : adaptive_(adaptive), beta_(beta), target_(target), horizon_(horizon) {
  if (!(beta >= 0) || !std::isfinite(beta))
    detail::fail("kl_controller", "beta must be finite and >= 0, got " + std::to_string(beta));
  if (adaptive && (!(target > 0) || !std::isfinite(target))) {
    detail::fail("kl_controller", "target KL must be finite and > 0, got " + std::to_string(target));
  }
  if (adaptive && (!(horizon > 0) || !std::isfinite(horizon))) {
    detail::fail("kl_controller", "horizon must be finite and > 0, got " + std::to_string(horizon));
  }
}

kl_controller kl_controller::fixed(double beta) {
  return kl_controller(false, beta, 0, 0);
}

kl_controller kl_controller::adaptive(double initial_beta, double target, double horizon) {
  return kl_controller(true, initial_beta, target, horizon);
}

void kl_controller::update(double current, int64_t n_steps) {
  if (!std::isfinite(current) || current < 0) {
    detail::fail("kl_controller::update",
                 "current KL must be finite and >= 0, got " + std::to_string(current));
  }
  if (n_steps < 0)
    detail::fail("kl_controller::update", "n_steps must be >= 0, got " + std::to_string(n_steps));
  if (!adaptive_) return;
  const double error = std::clamp(current / target_ - 1.0, -0.2, 0.2);
  beta_ *= 1.0 + error * static_cast<double>(n_steps) / horizon_;
}

std::string kl_controller::to_json() const {
  return nlohmann::json{{"adaptive", adaptive_}, {"beta", beta_}, {"target", target_}, {"horizon", horizon_}}
      .dump();
}

kl_controller kl_controller::from_json(const std::string& text) {
  constexpr const char* fn = "kl_controller::from_json";
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) detail::fail(fn, "not a JSON object: " + text.substr(0, 80));
  auto number = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number())
      detail::fail(fn, std::string("missing or non-numeric '") + key + "'");
    return j[key].get<double>();
  };
  if (!j.contains("adaptive") || !j["adaptive"].is_boolean())
    detail::fail(fn, "missing or non-boolean 'adaptive'");
  return kl_controller(j["adaptive"].get<bool>(), number("beta"), number("target"), number("horizon"));
}

}  // namespace mlxd::rlhf
