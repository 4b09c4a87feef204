#include "mlxd/rlhf/dpo.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "checks.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"

namespace mlxd::rlhf {
namespace {

constexpr const char* fn = "dpo_loss";

void check_options(const dpo_options& o) {
  if (!(o.beta > 0) || !std::isfinite(o.beta))
    detail::fail(fn, "beta must be finite and > 0, got " + std::to_string(o.beta));
  const double e = o.label_smoothing;
  const std::string got = "label_smoothing " + std::to_string(e);
  switch (o.type) {
    case dpo_loss_type::conservative:
      if (!(e >= 0 && e <= 0.5)) detail::fail(fn, got + " is outside [0, 0.5] for the conservative loss");
      break;
    case dpo_loss_type::robust:
      if (!(e >= 0 && e < 0.5)) detail::fail(fn, got + " is outside [0, 0.5) for the robust loss");
      break;
    default:
      if (e != 0) {
        detail::fail(fn, got + " has no meaning for the " + std::string(name(o.type)) +
                             " loss (use conservative or robust)");
      }
  }
}

}  // namespace

dpo_loss_type parse_dpo_loss_type(std::string_view s) {
  for (dpo_loss_type t : {dpo_loss_type::sigmoid, dpo_loss_type::conservative, dpo_loss_type::robust,
                          dpo_loss_type::hinge, dpo_loss_type::ipo}) {
    if (name(t) == s) return t;
  }
  detail::fail("parse_dpo_loss_type", "unknown DPO loss '" + std::string(s) +
                                          "' (expected sigmoid, conservative, robust, hinge or ipo)");
}

std::string_view name(dpo_loss_type t) {
  switch (t) {
    case dpo_loss_type::sigmoid:
      return "sigmoid";
    case dpo_loss_type::conservative:
      return "conservative";
    case dpo_loss_type::robust:
      return "robust";
    case dpo_loss_type::hinge:
      return "hinge";
    case dpo_loss_type::ipo:
      return "ipo";
  }
  return "?";
}

dpo_result dpo_loss(const array& policy_chosen, const array& policy_rejected, const array& reference_chosen,
                    const array& reference_rejected, const dpo_options& o) {
  const int64_t n = detail::expect_vector(fn, "policy_chosen", policy_chosen);
  detail::expect_float(fn, "policy_rejected", policy_rejected, policy_chosen.shape());
  detail::expect_float(fn, "reference_chosen", reference_chosen, policy_chosen.shape());
  detail::expect_float(fn, "reference_rejected", reference_rejected, policy_chosen.shape());
  check_options(o);
  const array pc = detail::f32(policy_chosen), pr = detail::f32(policy_rejected);
  const array rc = detail::f32(reference_chosen), rr = detail::f32(reference_rejected);
  const array h = subtract(subtract(pc, pr), subtract(rc, rr));
  const array beta(static_cast<float>(o.beta));
  const array bh = multiply(beta, h);
  const array e(static_cast<float>(o.label_smoothing)), keep(static_cast<float>(1.0 - o.label_smoothing));
  dpo_result r;
  // With e = 0 the e-terms are left out, not multiplied by 0: at h = +inf they would be 0 * -inf.
  switch (o.type) {
    case dpo_loss_type::sigmoid:
      r.losses = neg(log_sigmoid(bh));
      break;
    case dpo_loss_type::conservative:
      r.losses = neg(multiply(keep, log_sigmoid(bh)));
      if (o.label_smoothing > 0) r.losses = subtract(r.losses, multiply(e, log_sigmoid(neg(bh))));
      break;
    case dpo_loss_type::robust:
      r.losses = neg(multiply(keep, log_sigmoid(bh)));
      if (o.label_smoothing > 0) r.losses = add(r.losses, multiply(e, log_sigmoid(neg(bh))));
      r.losses = divide(r.losses, array(static_cast<float>(1.0 - 2.0 * o.label_smoothing)));
      break;
    case dpo_loss_type::hinge:
      r.losses = maximum(subtract(array(1.0f), bh), array(0.0f));
      break;
    case dpo_loss_type::ipo:
      r.losses = square(subtract(h, array(static_cast<float>(1.0 / (2.0 * o.beta)))));
      break;
  }
  r.loss = n > 0 ? mean(r.losses) : zeros({}, dtype::f32);
  autograd::no_grad metrics_only;
  r.chosen_rewards = multiply(beta, subtract(pc, rc));
  r.rejected_rewards = multiply(beta, subtract(pr, rr));
  r.margins = subtract(r.chosen_rewards, r.rejected_rewards);
  const std::vector<float> c = r.chosen_rewards.to_vector<float>(), j = r.rejected_rewards.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) r.correct += c[i] > j[i] ? 1 : 0;
  r.accuracy = static_cast<double>(r.correct) / static_cast<double>(std::max<int64_t>(n, 1));
  return r;
}

}  // namespace mlxd::rlhf
