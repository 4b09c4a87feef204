#include "mlxd/rlhf/grpo.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "checks.h"
#include "mlxd/core/autograd.h"
#include "mlxd/core/ops.h"
#include "mlxd/rlhf/kl.h"
#include "mlxd/rlhf/masked.h"
#include "mlxd/rlhf/ppo.h"

namespace mlxd::rlhf {
namespace {

// Calls fn(group values, finite flags, out advantages) per group; fn returns whether the group had zero std.
template <class Fn>
group_advantages_result per_group(const char* name, const array& rewards, int64_t g, Fn fn) {
  const int64_t n = detail::expect_vector(name, "rewards", rewards);
  if (g < 1) detail::fail(name, "group size must be >= 1, got " + std::to_string(g));
  if (n % g != 0)
    detail::fail(name, std::to_string(n) + " rewards are not whole groups of " + std::to_string(g));
  const std::vector<double> r = rewards.to_vector<double>();
  std::vector<float> adv(r.size(), 0.0f);
  group_advantages_result out;
  out.groups = n / g;
  for (int64_t k = 0; k < out.groups; ++k) {
    std::vector<double> vals;
    std::vector<int64_t> idx;
    for (int64_t i = k * g; i < (k + 1) * g; ++i) {
      if (std::isfinite(r[i])) {
        vals.push_back(r[i]), idx.push_back(i);
      } else {
        ++out.excluded;
      }
    }
    // Exactly equal rewards must give exactly 0, which a computed std of rounding noise would not.
    const bool tied = vals.size() < 2 || *std::max_element(vals.begin(), vals.end()) ==
                                             *std::min_element(vals.begin(), vals.end());
    if (tied) {
      ++out.zero_std_groups;
      continue;
    }
    std::vector<double> a = fn(vals);
    for (size_t j = 0; j < idx.size(); ++j) adv[idx[j]] = static_cast<float>(a[j]);
  }
  out.advantages = array::from(adv, rewards.shape(), dtype::f32);
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

group_advantages_result group_advantages(const array& rewards, int64_t group_size, double eps,
                                         bool scale_by_std) {
  if (!(eps >= 0) || !std::isfinite(eps))
    detail::fail("group_advantages", "eps must be finite and >= 0, got " + std::to_string(eps));
  return per_group("group_advantages", rewards, group_size, [&](const std::vector<double>& v) {
    const double mu = mean_of(v);
    double ss = 0;
    for (double x : v) ss += (x - mu) * (x - mu);
    const double sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
    std::vector<double> a(v.size());
    for (size_t i = 0; i < v.size(); ++i) a[i] = scale_by_std ? (v[i] - mu) / (sd + eps) : v[i] - mu;
    return a;
  });
}

group_advantages_result rloo_advantages(const array& rewards, int64_t group_size) {
  return per_group("rloo_advantages", rewards, group_size, [&](const std::vector<double>& v) {
    double total = 0;
    for (double x : v) total += x;
    const double others = static_cast<double>(v.size() - 1);
    std::vector<double> a(v.size());
    for (size_t i = 0; i < v.size(); ++i) a[i] = v[i] - (total - v[i]) / others;
    return a;
  });
}

grpo_result grpo_loss(const array& logp, const array& old_logp, const array& ref_logp,
                      const array& advantages, const array& mask, double global_tokens,
                      const grpo_options& o) {
  constexpr const char* fn = "grpo_loss";
  if (logp.ndim() != 2) detail::fail(fn, "logp must be [B, T], got " + logp.to_string());
  detail::expect_float(fn, "advantages", advantages, {logp.shape(0)});
  if (!(o.beta >= 0) || !std::isfinite(o.beta))
    detail::fail(fn, "beta must be finite and >= 0, got " + std::to_string(o.beta));
  const array a = broadcast_to(expand_dims(detail::f32(advantages), 1), logp.shape());
  const policy_loss_result p = clipped_policy_loss(logp, old_logp, a, mask, o.clip_low, o.clip_high);
  grpo_result r;
  r.token_losses = p.losses;
  if (o.beta > 0) {
    detail::expect_float(fn, "ref_logp", ref_logp, logp.shape());
    const array k3 = masked_zero(kl_k3(logp, ref_logp), mask);
    r.token_losses = add(r.token_losses, multiply(array(static_cast<float>(o.beta)), k3));
    autograd::no_grad metrics_only;
    r.kl_sum = sum(k3).item<double>();
  }
  r.loss = token_mean(r.token_losses, mask, global_tokens);
  r.tokens = p.tokens;
  r.clipped_low = p.clipped_low;
  r.clipped_high = p.clipped_high;
  r.ratio_min = p.ratio_min;
  r.ratio_max = p.ratio_max;
  return r;
}

}  // namespace mlxd::rlhf
