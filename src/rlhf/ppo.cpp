#include "mlxd/rlhf/ppo.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/kl.h"
#include "mlxd/rlhf/masked.h"

namespace mlxd::rlhf {

gae_result gae(const array& rewards, const array& values, const array& mask, double gamma, double lambda) {
  constexpr const char* fn = "gae";
  if (rewards.ndim() != 2) detail::fail(fn, "rewards must be [B, T], got " + rewards.to_string());
  detail::expect_float(fn, "rewards", rewards, rewards.shape());
  detail::expect_float(fn, "values", values, rewards.shape());
  if (!(gamma >= 0 && gamma <= 1) || !(lambda >= 0 && lambda <= 1)) {
    detail::fail(fn, "gamma and lambda must lie in [0, 1], got " + std::to_string(gamma) + " and " +
                         std::to_string(lambda));
  }
  const std::vector<uint8_t> m = valid_mask(mask, rewards.shape(), fn).to_vector<uint8_t>();
  const std::vector<double> r = rewards.to_vector<double>(), v = values.to_vector<double>();
  const int64_t rows = rewards.shape(0), cols = rewards.shape(1);
  std::vector<float> adv(r.size(), 0.0f), ret(r.size(), 0.0f);
  for (int64_t b = 0; b < rows; ++b) {
    double next_value = 0, next_adv = 0;
    for (int64_t t = cols - 1; t >= 0; --t) {
      const int64_t i = b * cols + t;
      if (!m[i]) continue;
      if (!std::isfinite(r[i]) || !std::isfinite(v[i])) {
        detail::fail(fn, "non-finite reward or value at valid position [" + std::to_string(b) + ", " +
                             std::to_string(t) + "]");
      }
      const double delta = r[i] + gamma * next_value - v[i];
      next_adv = delta + gamma * lambda * next_adv;
      next_value = v[i];
      adv[i] = static_cast<float>(next_adv);
      ret[i] = static_cast<float>(next_adv + v[i]);
    }
  }
  return {array::from(adv, rewards.shape(), dtype::f32), array::from(ret, rewards.shape(), dtype::f32)};
}

policy_loss_result clipped_policy_loss(const array& logp, const array& old_logp, const array& advantages,
                                       const array& mask, double clip_low, double clip_high) {
  constexpr const char* fn = "clipped_policy_loss";
  detail::expect_float(fn, "logp", logp, logp.shape());
  detail::expect_float(fn, "old_logp", old_logp, logp.shape());
  detail::expect_float(fn, "advantages", advantages, logp.shape());
  if (!(clip_low >= 0 && clip_low < 1) || !(clip_high >= 0) || !std::isfinite(clip_high)) {
    detail::fail(fn, "clip_low must lie in [0, 1) and clip_high be finite and >= 0, got " +
                         std::to_string(clip_low) + " and " + std::to_string(clip_high));
  }
  const array valid = valid_mask(mask, logp.shape(), fn);
  const array a = detail::f32(advantages);
  const array ratio =
      exp(clip(subtract(detail::f32(logp), detail::f32(old_logp)), -max_log_ratio, max_log_ratio));
  const array unclipped = neg(multiply(a, ratio));
  const array clipped = neg(multiply(a, clip(ratio, 1.0 - clip_low, 1.0 + clip_high)));
  policy_loss_result r;
  r.losses = masked_zero(maximum(unclipped, clipped), valid);
  autograd::no_grad metrics_only;
  const std::vector<uint8_t> m = valid.to_vector<uint8_t>();
  const std::vector<float> rv = ratio.to_vector<float>(), av = a.to_vector<float>();
  r.ratio_min = std::numeric_limits<double>::infinity();
  r.ratio_max = -r.ratio_min;
  for (size_t i = 0; i < m.size(); ++i) {
    if (!m[i]) continue;
    ++r.tokens;
    r.clipped_low += rv[i] < 1.0 - clip_low && av[i] < 0 ? 1 : 0;
    r.clipped_high += rv[i] > 1.0 + clip_high && av[i] > 0 ? 1 : 0;
    r.ratio_min = std::min<double>(r.ratio_min, rv[i]);
    r.ratio_max = std::max<double>(r.ratio_max, rv[i]);
  }
  return r;
}

value_loss_result clipped_value_loss(const array& values, const array& old_values, const array& returns,
                                     const array& mask, double clip_range) {
  constexpr const char* fn = "clipped_value_loss";
  detail::expect_float(fn, "values", values, values.shape());
  detail::expect_float(fn, "old_values", old_values, values.shape());
  detail::expect_float(fn, "returns", returns, values.shape());
  if (!(clip_range >= 0) || !std::isfinite(clip_range))
    detail::fail(fn, "clip must be finite and >= 0, got " + std::to_string(clip_range));
  const array valid = valid_mask(mask, values.shape(), fn);
  const array v = detail::f32(values), old = detail::f32(old_values), ret = detail::f32(returns);
  const array v_clip = add(old, clip(subtract(v, old), -clip_range, clip_range));
  const array e1 = square(subtract(v, ret)), e2 = square(subtract(v_clip, ret));
  value_loss_result r;
  r.losses = masked_zero(multiply(array(0.5f), maximum(e1, e2)), valid);
  autograd::no_grad metrics_only;
  const std::vector<uint8_t> m = valid.to_vector<uint8_t>();
  const std::vector<float> a = e1.to_vector<float>(), b = e2.to_vector<float>();
  for (size_t i = 0; i < m.size(); ++i) {
    if (!m[i]) continue;
    ++r.tokens;
    r.clipped += b[i] > a[i] ? 1 : 0;
  }
  return r;
}

array entropy_from_logits(const array& logits, const array& mask) {
  constexpr const char* fn = "entropy_from_logits";
  if (logits.ndim() != 3 || !is_floating(logits.type()))
    detail::fail(fn, "logits must be a float [B, T, V] array, got " + logits.to_string());
  const array valid = valid_mask(mask, {logits.shape(0), logits.shape(1)}, fn);
  const array x = detail::f32(logits);
  const array p = softmax(x, -1), logp = log_softmax(x, -1);
  // p log p is 0 where p is 0; substituting 0 for log p there keeps -inf * 0 out of both passes.
  const array safe_logp = where(greater(p, array(0.0f)), logp, zeros({}, dtype::f32));
  return masked_zero(neg(sum(multiply(p, safe_logp), {2})), valid);
}

}  // namespace mlxd::rlhf
